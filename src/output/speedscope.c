/*
 * speedscope.c - the speedscope JSON format (https://www.speedscope.app/file-format-schema.json),
 * laid out as py-spy lays it out: one sampled profile per (pid, thread) in seconds, frames shared
 * by all profiles as {name, file, line}. Each run of identical samples of a thread becomes one
 * sample weighing count/rate, so the time order of the timeline survives.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define SS_NONE UINT32_MAX
#define SS_FLUSH (64 * 1024)

struct ss_frame {
	const char *name;
	const char *file;
	int line;
	uint32_t chain;
};

struct ss_frames {
	VEC(struct ss_frame) list;
};

struct ss_thread {
	uint32_t id;     /* index into profile threads */
	char *name;      /* the profile name shown by speedscope */
};

struct ss_writer {
	FILE *out;
	struct strbuf sb;
	bool failed;
};

static void ss_flush(struct ss_writer *w, bool force)
{
	if (!w->sb.len || (!force && w->sb.len < SS_FLUSH))
		return;
	if (fwrite(w->sb.buf, 1, w->sb.len, w->out) != w->sb.len)
		w->failed = true;
	sb_reset(&w->sb);
}

/* speedscope frames differ on (name, full file, line when line numbers are on). */
static uint32_t *ss_map_frames(const struct profile *p, const struct output_opts *o, struct ss_frames *frames)
{
	uint32_t *map = xmalloc((p->frames.n ? p->frames.n : 1) * sizeof(*map));
	struct hmap index;
	hmap_init(&index);
	for (size_t i = 0; i < p->frames.n; i++) {
		const struct frame *f = &p->frames.v[i];
		struct ss_frame k = { f->name ? f->name : "?", f->file ? f->file : "", o->lineno ? f->line : 0, SS_NONE };
		uint64_t parts[3] = { (uint64_t)(uintptr_t)k.name, (uint64_t)(uintptr_t)k.file, (uint64_t)(int64_t)k.line };
		uint64_t h = hash_bytes(parts, sizeof(parts), 0x7373ULL), first;
		bool known = hmap_get(&index, h, &first);
		uint32_t id = SS_NONE;
		if (known) {
			for (id = (uint32_t)first; id != SS_NONE; id = frames->list.v[id].chain) {
				const struct ss_frame *g = &frames->list.v[id];
				/* Names may come from different interners in tests; compare contents. */
				if (g->line == k.line && strcmp(g->name, k.name) == 0 && strcmp(g->file, k.file) == 0)
					break;
			}
		}
		if (id == SS_NONE) {
			k.chain = known ? (uint32_t)first : SS_NONE;
			id = (uint32_t)frames->list.n;
			vec_push(&frames->list, k);
			hmap_put(&index, h, id);
		}
		map[i] = id;
	}
	hmap_free(&index);
	return map;
}

static int ss_thread_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ss_thread *)a)->name, ((const struct ss_thread *)b)->name);
}

static bool ss_several_pids(const struct profile *p)
{
	for (size_t i = 1; i < p->threads.n; i++)
		if (p->threads.v[i].pid != p->threads.v[0].pid)
			return true;
	return false;
}

static void ss_write_profile(struct ss_writer *w, const struct profile *p, const struct ss_thread *th,
			     const uint32_t *map)
{
	const struct profile_thread *t = &p->threads.v[th->id];
	const struct profile_timeline *tl = &p->timelines.v[th->id];
	double period = 1.0 / p->rate;
	uint64_t total = 0;
	for (size_t r = 0; r < tl->runs.n; r++)
		total += tl->runs.v[r].count;
	if (total < t->samples)
		total = t->samples;

	sb_adds(&w->sb, "{\"type\":\"sampled\",\"name\":\"");
	out_add_json(&w->sb, th->name);
	sb_addf(&w->sb, "\",\"unit\":\"seconds\",\"startValue\":0,\"endValue\":%.9g,\"samples\":[",
		(double)total * period);
	for (size_t r = 0; r < tl->runs.n; r++) {
		const struct profile_stack *st = &p->stacks.v[tl->runs.v[r].stack];
		sb_adds(&w->sb, r ? ",[" : "[");
		for (uint32_t i = 0; i < st->nframes; i++)
			sb_addf(&w->sb, i ? ",%u" : "%u", map[st->frames[i]]);
		sb_addc(&w->sb, ']');
		ss_flush(w, false);
	}
	sb_adds(&w->sb, "],\"weights\":[");
	for (size_t r = 0; r < tl->runs.n; r++) {
		sb_addf(&w->sb, r ? ",%.9g" : "%.9g", (double)tl->runs.v[r].count * period);
		ss_flush(w, false);
	}
	sb_adds(&w->sb, "]}");
}

int write_speedscope(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct ss_frames fs = { 0 };
	uint32_t *map = ss_map_frames(p, o, &fs);

	bool pids = ss_several_pids(p);
	struct ss_thread *th = xcalloc(p->threads.n ? p->threads.n : 1, sizeof(*th));
	size_t nth = 0;
	struct strbuf name;
	sb_init(&name);
	for (size_t i = 0; i < p->threads.n; i++) {
		const struct profile_thread *t = &p->threads.v[i];
		if (!p->timelines.v[i].runs.n)
			continue;
		sb_reset(&name);
		if (pids)
			sb_addf(&name, "Process %d ", t->pid);
		sb_adds(&name, "Thread ");
		out_thread_tid(&name, t);
		sb_adds(&name, " \"");
		sb_adds(&name, t->name ? t->name : "");
		sb_adds(&name, "\"");
		th[nth].id = (uint32_t)i;
		th[nth].name = xstrdup(name.buf);
		nth++;
	}
	sb_free(&name);
	qsort(th, nth, sizeof(*th), ss_thread_cmp);

	struct ss_writer w = { .out = out };
	sb_init(&w.sb);
	sb_adds(&w.sb, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"profiles\":[");
	for (size_t i = 0; i < nth; i++) {
		if (i)
			sb_addc(&w.sb, ',');
		ss_write_profile(&w, p, &th[i], map);
	}
	sb_adds(&w.sb, "],\"shared\":{\"frames\":[");
	for (size_t i = 0; i < fs.list.n; i++) {
		const struct ss_frame *f = &fs.list.v[i];
		sb_adds(&w.sb, i ? ",{\"name\":\"" : "{\"name\":\"");
		out_add_json(&w.sb, f->name);
		sb_addc(&w.sb, '"');
		if (*f->file) {
			sb_adds(&w.sb, ",\"file\":\"");
			out_add_json(&w.sb, f->file);
			sb_addc(&w.sb, '"');
		}
		if (f->line > 0)
			sb_addf(&w.sb, ",\"line\":%d", f->line);
		sb_addc(&w.sb, '}');
		ss_flush(&w, false);
	}
	sb_adds(&w.sb, "]},\"activeProfileIndex\":0,\"exporter\":\"mixspy@0.1.0\",\"name\":\"");
	out_add_json(&w.sb, p->title && *p->title ? p->title : "mixspy profile");
	sb_adds(&w.sb, "\"}\n");
	ss_flush(&w, true);

	for (size_t i = 0; i < nth; i++)
		free(th[i].name);
	free(th);
	free(map);
	vec_free(&fs.list);
	sb_free(&w.sb);
	if (w.failed)
		return err_set(e, E_IO, "writing speedscope output failed");
	return 0;
}
