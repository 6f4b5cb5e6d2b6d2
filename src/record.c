/*
 * record.c - `mixspy record`: sample into a profile and write it in the chosen format. The file
 * is opened before sampling starts (an unwritable path fails at once) and written on every way
 * out: duration, Ctrl-C, SIGTERM, or the target exiting.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "output/output.h"
#include "profile.h"
#include "sampler.h"
#include "sudo.h"
#include "upload.h"
#include "window.h"

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
	/* --upload and --rotate: the current window of each (see window.h) */
	struct window upw, rotw;
	struct uploader *up;
	char *stem;           /* default file stem for rotated files */
	uint64_t rotated;
	bool windows_started;
	double run_start_wall; /* the sampler's start, epoch seconds */
	int window_rc;        /* the first error while cutting windows */
	struct err window_err;
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

static void windows_begin(struct record *r, struct sampler *sm);

static void on_samples(void *ctx, struct sampler *sm, struct spy *spy, struct sample *s, size_t n)
{
	struct record *r = ctx;
	if (r->c->upload || r->c->rotate)
		windows_begin(r, sm);
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
		for (struct window *w = &r->upw; w; w = w == &r->upw ? &r->rotw : NULL)
			if (w->on)
				profile_add(&w->prof, &s[i], r->roots.v, r->roots.n);
	}
}

/* ---- windows: --upload and --rotate ------------------------------------------------------ */

/* The uploader starts at the first tick, after a launched program was forked (no thread may
 * exist across that fork). */
static void windows_begin(struct record *r, struct sampler *sm)
{
	const struct config *c = r->c;
	if (r->windows_started)
		return;
	r->windows_started = true;
	r->run_start_wall = sm->start_wall;
	if (c->upload) {
		window_begin(&r->upw, r->strs, c->rate, c->interval, sm->start_wall);
		r->upw.prof.title = r->prof.title;
		struct upload_opts uo = { .url = c->upload, .app_name = c->app_name ? c->app_name : r->stem,
					  .tags = c->tags, .rate = c->rate, .pprof = c->format == FORMAT_PPROF };
		struct err e = { 0 };
		if (uploader_start(&r->up, &uo, &e)) {
			fprintf(stderr, "mixspy> Not uploading: %s\n", e.msg);
			window_end(&r->upw);
		}
	}
	if (c->rotate) {
		window_begin(&r->rotw, r->strs, c->rate, c->rotate, sm->start_wall);
		r->rotw.prof.title = r->prof.title;
	}
}

static void window_keep(struct record *r, struct window *w, int64_t until)
{
	const struct config *c = r->c;
	struct output_opts oo = { .full_filenames = c->full_filenames, .lineno = !c->nolineno };
	int64_t from = w->from;
	uint64_t n = w->prof.samples;
	char *buf;
	size_t len;
	struct err e = { 0 };
	if (w == &r->upw) {
		if (window_cut(w, until, c->format == FORMAT_PPROF ? FORMAT_PPROF : FORMAT_RAW, &oo, &buf, &len, &e) == 0)
			uploader_push(r->up, from, until, buf, len);
		else if (!r->window_rc)
			r->window_rc = -1, r->window_err = e;
		return;
	}
	if (window_cut(w, until, c->format, &oo, &buf, &len, &e) != 0) {
		if (!r->window_rc)
			r->window_rc = -1, r->window_err = e;
		return;
	}
	char *path = window_path(c->output, r->stem, c->format, from);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		if (f)
			fclose(f);
		fprintf(stderr, "mixspy> Failed to write '%s': %s\n", path, strerror(errno));
	} else {
		sudo_chown_path(path);
		r->rotated++;
		fprintf(stderr, "%smixspy> ", r->tty && !c->hideprogress ? "\r\033[K" : "");
		fprintf(stderr, format_wrote_message(c->format), path);
		fprintf(stderr, " Samples: %llu\n", (unsigned long long)n);
	}
	free(path);
	free(buf);
}

/* Cut every window that ended by `wall`; at the end of the run (final), also the partial one. */
static void windows_tick(struct record *r, double wall, bool final)
{
	for (struct window *w = &r->upw; w; w = w == &r->upw ? &r->rotw : NULL) {
		if (!w->on)
			continue;
		while (wall >= (double)window_until(w))
			window_keep(r, w, window_until(w));
		int64_t end = (int64_t)ceil(wall);
		if (final && end > w->from)
			window_keep(r, w, end);
	}
}

static bool on_tick(void *ctx, struct sampler *sm, double elapsed)
{
	struct record *r = ctx;
	announce(r);
	if (r->c->upload || r->c->rotate) {
		windows_begin(r, sm);
		windows_tick(r, sm->start_wall + elapsed, false);
	}
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
	time_rfc3339(stamp, sizeof stamp, time(NULL));
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

/* --app-name's default: the script of `python app.py`, else the program's name, else pid-PID. */
static char *default_app_name(const struct config *c)
{
	if (!c->program)
		return xstrdup("");
	const char *prog = c->program[0], *base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	if (!strncmp(base, "python", 6) && c->program[1] && c->program[1][0] != '-') {
		const char *script = strrchr(c->program[1], '/');
		script = script ? script + 1 : c->program[1];
		size_t n = strlen(script);
		if (n > 3 && !strcmp(script + n - 3, ".py"))
			n -= 3;
		return xstrndup(script, n);
	}
	return xstrdup(base);
}

/* Upload totals after the run, and the last failure if any. */
static void upload_summary(struct record *r)
{
	struct upload_stats st;
	uploader_finish(r->up, 15.0, &st);
	r->up = NULL;
	fprintf(stderr, "mixspy> Uploaded %llu of %llu windows to %s (%llu failed, %llu dropped, %llu retries)\n",
		(unsigned long long)st.sent, (unsigned long long)st.queued, r->c->upload, (unsigned long long)st.failed,
		(unsigned long long)st.dropped, (unsigned long long)st.retries);
	if (st.sent != st.queued && st.last_error[0])
		fprintf(stderr, "mixspy> Last upload error: %s\n", st.last_error);
}

int record_run(const struct config *c, int *status, struct err *e)
{
	struct record r = { .c = c };
	r.strs = interner_new();
	char *app = default_app_name(c);
	if (!app[0]) {
		free(app);
		struct strbuf sb;
		sb_init(&sb);
		sb_addf(&sb, "pid-%d", c->pid);
		app = sb_detach(&sb);
	}
	r.stem = app;
	char *path = c->output ? xstrdup(c->output) : default_output(c);
	/* With --rotate the windows are the files; no file covers the whole run. */
	bool existed = path_exists(path);
	FILE *out = c->rotate ? NULL : fopen(path, "wb");
	if (!out && !c->rotate) {
		int rc = err_set(e, E_IO, "Failed to create output file '%s': %s", path, strerror(errno));
		free(path);
		free(r.stem);
		interner_free(r.strs);
		return rc;
	}
	if (out)
		sudo_chown_fd(fileno(out));
	profile_init(&r.prof, r.strs, c->rate);
	r.prof.title = intern(r.strs, c->title);
	r.prof.start_wall = now_wall();
	r.tty = isatty(STDERR_FILENO);
	struct sampler_hooks h = { .ctx = &r, .on_samples = on_samples, .on_tick = on_tick };
	int rc = sampler_run(c, r.strs, &h, status, e);
	if (r.windows_started) {
		/* The windows still open end where the run ended, even after an error. */
		windows_tick(&r, r.run_start_wall + r.prof.duration, true);
		if (r.up)
			upload_summary(&r);
		if (c->rotate)
			fprintf(stderr, "mixspy> Wrote %llu rotated files\n", (unsigned long long)r.rotated);
		if (r.window_rc)
			fprintf(stderr, "mixspy> Failed to write a window: %s\n", r.window_err.msg);
	}
	if (rc) {
		if (out) {
			fclose(out);
			remove_new_output(path, existed);
		}
		goto done;
	}
	if (r.reason == STOP_EXITED)
		fprintf(stderr, "mixspy> Stopped sampling because process exited\n");
	else if (r.reason == STOP_SIGNAL)
		fprintf(stderr, "mixspy> Stopped sampling because Control-C pressed\n");
	r.prof.samples = r.samples;
	r.prof.errors = r.errors;
	r.prof.merge_mismatches = r.mismatches;
	if (!out) {   /* --rotate: the files are written; only the summary remains */
		fprintf(stderr, "mixspy> Samples: %llu Errors: %llu\n", (unsigned long long)r.samples, (unsigned long long)r.errors);
		print_gil_summary(&r.prof);
		goto done;
	}
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
	window_end(&r.upw);
	window_end(&r.rotw);
	free(r.stem);
	profile_free(&r.prof);
	vec_free(&r.roots);
	free(path);
	interner_free(r.strs);
	return rc;
}
