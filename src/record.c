/*
 * record.c - `mixspy record`: sample into a profile and write it in the chosen format. The file
 * is opened before sampling starts (an unwritable path fails at once) and written on every way
 * out: duration, Ctrl-C, SIGTERM, or the target exiting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "output/output.h"
#include "profile.h"
#include "sampler.h"

struct record {
	const struct config *c;
	struct profile prof;
	struct interner *strs;
	bool tty;
	double last_status;
	enum stop_reason reason;
	uint64_t samples, errors, mismatches;
	char last_error[512];
	VEC(struct frame) roots;
	bool announced;       /* the "Sampling process" line, printed once the target is attached */
};

/* Announced at the first tick, not before attaching: a target we can't attach to gives one line,
 * the error, as py-spy does. */
static void announce(struct record *r)
{
	if (r->announced)
		return;
	r->announced = true;
	if (r->c->duration > 0)
		fprintf(stderr, "mixspy> Sampling process %d times a second for %g seconds. Press Control-C to exit.\n",
			r->c->rate, r->c->duration);
	else
		fprintf(stderr, "mixspy> Sampling process %d times a second. Press Control-C to exit.\n", r->c->rate);
}

static const char *thread_label(struct record *r, const struct sample *s)
{
	char buf[256];
	if (s->os_tid)
		snprintf(buf, sizeof buf, "thread (%d)", s->os_tid);
	else
		snprintf(buf, sizeof buf, "thread (0x%llX)", (unsigned long long)s->thread_id);
	if (s->thread_name)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ": %s", s->thread_name);
	return intern(r->strs, buf);
}

static struct frame pseudo(const char *name)
{
	return (struct frame){ .kind = FRAME_PSEUDO, .name = name, .file = "", .short_file = "" };
}

static void on_samples(void *ctx, struct sampler *sm, struct spy *spy, struct sample *s, size_t n)
{
	struct record *r = ctx;
	for (size_t i = 0; i < n; i++) {
		r->roots.n = 0;
		if (r->c->gil_split)
			vec_push(&r->roots, pseudo(intern(r->strs, gil_state_name(s[i].gil))));
		if (r->c->subprocesses) {
			struct spy *chain[32];
			size_t k = sampler_lineage(sm, spy->t.pid, chain, 32);
			for (size_t j = 0; j < k; j++) {
				struct strbuf sb;
				sb_init(&sb);
				sb_addf(&sb, "process %d:\"%s\"", chain[j]->t.pid, chain[j]->t.cmdline);
				vec_push(&r->roots, pseudo(intern(r->strs, sb.buf)));
				sb_free(&sb);
			}
		}
		if (r->c->threads)
			vec_push(&r->roots, pseudo(thread_label(r, &s[i])));
		profile_add(&r->prof, &s[i], r->roots.v, r->roots.n);
	}
}

static bool on_tick(void *ctx, struct sampler *sm, double elapsed)
{
	struct record *r = ctx;
	announce(r);
	r->reason = sm->reason;
	r->samples = sm->samples;
	r->errors = sm->errors;
	r->mismatches = sm->merge_mismatches;
	memcpy(r->last_error, sm->last_error, sizeof r->last_error);
	r->prof.duration = elapsed;
	if (r->tty && !r->c->hideprogress && (elapsed - r->last_status >= 0.1 || sm->reason)) {
		r->last_status = elapsed;
		if (sm->errors)
			fprintf(stderr, "\r\033[Kmixspy> Collected %llu samples (%llu errors) in %.1fs",
				(unsigned long long)sm->samples, (unsigned long long)sm->errors, elapsed);
		else
			fprintf(stderr, "\r\033[Kmixspy> Collected %llu samples in %.1fs", (unsigned long long)sm->samples,
				elapsed);
		if (sm->reason)
			fputc('\n', stderr);
	}
	return false;
}

static char *default_output(const struct config *c)
{
	char stamp[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", &tm);
	struct strbuf sb;
	sb_init(&sb);
	if (c->program) {
		const char *base = strrchr(c->program[0], '/');
		sb_adds(&sb, base ? base + 1 : c->program[0]);
	} else {
		sb_addf(&sb, "%d", c->pid);
	}
	sb_addf(&sb, "-%s.%s", stamp, format_extension(c->format));
	return sb_detach(&sb);
}

static void print_gil_summary(const struct profile *p)
{
	for (size_t i = 0; i < p->threads.n; i++) {
		const struct profile_thread *t = &p->threads.v[i];
		uint64_t total = 0;
		for (int g = 0; g < GIL_NSTATES; g++)
			total += t->gil[g];
		if (!total)
			continue;
		char tid[32];
		if (t->os_tid)
			snprintf(tid, sizeof tid, "%d", t->os_tid);
		else
			snprintf(tid, sizeof tid, "0x%llX", (unsigned long long)t->thread_id);
		fprintf(stderr, "mixspy> GIL: thread %s%s%s%s: held %.0f%% released %.0f%% waiting %.0f%% idle %.0f%%\n", tid,
			t->name ? " \"" : "", t->name ? t->name : "", t->name ? "\"" : "", 100.0 * t->gil[GIL_HELD] / total,
			100.0 * t->gil[GIL_RELEASED] / total, 100.0 * t->gil[GIL_WAITING] / total,
			100.0 * t->gil[GIL_IDLE] / total);
	}
}

int record_run(const struct config *c, int *status, struct err *e)
{
	struct record r = { .c = c };
	r.strs = interner_new();
	char *path = c->output ? xstrdup(c->output) : default_output(c);
	FILE *out = fopen(path, "wb");
	if (!out) {
		int rc = err_set(e, E_IO, "Failed to create output file '%s': %s", path, strerror(errno));
		free(path);
		interner_free(r.strs);
		return rc;
	}
	profile_init(&r.prof, r.strs, c->rate);
	r.prof.title = intern(r.strs, c->title);
	r.prof.start_wall = now_wall();
	r.tty = isatty(STDERR_FILENO);
	struct sampler_hooks h = { .ctx = &r, .on_samples = on_samples, .on_tick = on_tick };
	int rc = sampler_run(c, r.strs, &h, status, e);
	if (rc) {
		fclose(out);
		unlink(path);
		goto done;
	}
	if (r.reason == STOP_EXITED)
		fprintf(stderr, "mixspy> Stopped sampling because process exited\n");
	else if (r.reason == STOP_SIGNAL)
		fprintf(stderr, "mixspy> Stopped sampling because Control-C pressed\n");
	r.prof.samples = r.samples;
	r.prof.errors = r.errors;
	r.prof.merge_mismatches = r.mismatches;
	struct output_opts oo = { .full_filenames = c->full_filenames, .lineno = !c->nolineno };
	rc = output_write(c->format, &r.prof, &oo, out, e);
	if (fclose(out) != 0 && !rc)
		rc = err_set(e, E_IO, "Failed to write '%s': %s", path, strerror(errno));
	if (rc)
		goto done;
	fprintf(stderr, "mixspy> ");
	fprintf(stderr, format_wrote_message(c->format), path);
	fprintf(stderr, " Samples: %llu Errors: %llu\n", (unsigned long long)r.samples, (unsigned long long)r.errors);
	if (r.errors && r.last_error[0])
		fprintf(stderr, "mixspy> Last error: %s\n", r.last_error);
	if (c->native)
		fprintf(stderr, "mixspy> Native merge mismatches: %llu of %llu samples (kept as Python stacks with their native leaf)\n",
			(unsigned long long)r.mismatches, (unsigned long long)r.samples);
	if (format_hint(c->format))
		fprintf(stderr, "mixspy> %s\n", format_hint(c->format));
	print_gil_summary(&r.prof);
done:
	profile_free(&r.prof);
	vec_free(&r.roots);
	free(path);
	interner_free(r.strs);
	return rc;
}
