/*
 * chrometrace.c - the Chrome trace event format (JSON array form) as py-spy writes it: per
 * thread, each change of stack closes the frames that went away ("E", leaf first) and opens the
 * new ones ("B", root first), at the time of the change in microseconds. Thread names go in "M"
 * metadata events. Loadable by chrome://tracing, Perfetto and speedscope.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define CT_FLUSH (64 * 1024)

struct ct_writer {
	const struct profile *p;
	const struct output_opts *o;
	FILE *out;
	struct strbuf sb;
	bool first;
	bool failed;
};

static void ct_flush(struct ct_writer *w, bool force)
{
	if (!w->sb.len || (!force && w->sb.len < CT_FLUSH))
		return;
	if (fwrite(w->sb.buf, 1, w->sb.len, w->out) != w->sb.len)
		w->failed = true;
	sb_reset(&w->sb);
}

static void ct_sep(struct ct_writer *w)
{
	if (!w->first)
		sb_adds(&w->sb, ",\n");
	w->first = false;
}

static long long ct_us(double seconds)
{
	return seconds > 0 ? llround(seconds * 1e6) : 0;
}

/* Frames are the same trace entry when name and file match, and the line when lines are on. */
static bool ct_same(const struct ct_writer *w, uint32_t a, uint32_t b)
{
	if (a == b)
		return true;
	const struct frame *x = &w->p->frames.v[a], *y = &w->p->frames.v[b];
	if (w->o->lineno && x->line != y->line)
		return false;
	return strcmp(x->name ? x->name : "?", y->name ? y->name : "?") == 0 &&
	       strcmp(x->file ? x->file : "", y->file ? y->file : "") == 0;
}

static void ct_event(struct ct_writer *w, const struct profile_thread *t, uint32_t fid, char ph, long long ts)
{
	const struct frame *f = &w->p->frames.v[fid];
	ct_sep(w);
	sb_adds(&w->sb, "{\"args\":{\"filename\":\"");
	out_add_json(&w->sb, f->file ? f->file : "");
	sb_adds(&w->sb, "\"");
	if (w->o->lineno && f->line > 0)
		sb_addf(&w->sb, ",\"line\":%d", f->line);
	sb_adds(&w->sb, "},\"cat\":\"mixspy\",\"name\":\"");
	out_add_json(&w->sb, f->name ? f->name : "?");
	sb_addf(&w->sb, "\",\"ph\":\"%c\",\"pid\":%d,\"tid\":%llu,\"ts\":%lld}",
		ph, t->pid, (unsigned long long)t->thread_id, ts);
	ct_flush(w, false);
}

static void ct_thread(struct ct_writer *w, size_t ti)
{
	const struct profile *p = w->p;
	const struct profile_thread *t = &p->threads.v[ti];
	const struct profile_timeline *tl = &p->timelines.v[ti];
	const struct profile_stack *prev = NULL;
	long long ts = 0;

	for (size_t r = 0; r < tl->runs.n; r++) {
		const struct profile_run *run = &tl->runs.v[r];
		const struct profile_stack *cur = &p->stacks.v[run->stack];
		long long at = ct_us(run->start);
		ts = at > ts ? at : ts;
		/* Length of the common root-first prefix of the two stacks. */
		uint32_t keep = 0;
		if (prev)
			while (keep < prev->nframes && keep < cur->nframes &&
			       ct_same(w, prev->frames[keep], cur->frames[keep]))
				keep++;
		for (uint32_t i = prev ? prev->nframes : 0; i-- > keep;)
			ct_event(w, t, prev->frames[i], 'E', ts);
		for (uint32_t i = keep; i < cur->nframes; i++)
			ct_event(w, t, cur->frames[i], 'B', ts);
		prev = cur;
	}
	if (prev) {
		/* The last run lasts until one sampling period after its last sample. */
		long long end = ct_us(tl->runs.v[tl->runs.n - 1].end + 1.0 / p->rate);
		ts = end > ts ? end : ts;
		for (uint32_t i = prev->nframes; i-- > 0;)
			ct_event(w, t, prev->frames[i], 'E', ts);
	}
}

int write_chrometrace(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct ct_writer w = { .p = p, .o = o, .out = out, .first = true };
	sb_init(&w.sb);
	sb_addc(&w.sb, '[');
	for (size_t i = 0; i < p->threads.n; i++) {
		const struct profile_thread *t = &p->threads.v[i];
		if (!p->timelines.v[i].runs.n)
			continue;
		ct_sep(&w);
		sb_addf(&w.sb, "{\"args\":{\"name\":\"");
		if (t->name) {
			out_add_json(&w.sb, t->name);
		} else {
			sb_adds(&w.sb, "Thread ");
			out_thread_tid(&w.sb, t);
		}
		sb_addf(&w.sb, "\"},\"cat\":\"__metadata\",\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%llu,\"ts\":0}",
			t->pid, (unsigned long long)t->thread_id);
	}
	for (size_t i = 0; i < p->threads.n; i++)
		ct_thread(&w, i);
	sb_adds(&w.sb, "]\n");
	ct_flush(&w, true);
	sb_free(&w.sb);
	if (w.failed)
		return err_set(e, E_IO, "writing chrome trace failed");
	return 0;
}
