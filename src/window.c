/*
 * window.c - time windows of a recording: a fresh profile per window, serialized into memory
 * when the window is cut (for the uploader) and the names of rotated files.
 */
#include "window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void window_begin(struct window *w, struct interner *strs, int rate, int len, double wall)
{
	memset(w, 0, sizeof(*w));
	w->len = len > 0 ? len : 10;
	int64_t t = (int64_t)floor(wall);
	w->from = t - t % w->len;
	profile_init(&w->prof, strs, rate);
	w->prof.start_wall = (double)w->from;
	w->on = true;
}

int64_t window_until(const struct window *w)
{
	return w->from + w->len;
}

int window_cut(struct window *w, int64_t until, enum format f, const struct output_opts *o, char **buf,
	       size_t *len, struct err *e)
{
	*buf = NULL;
	*len = 0;
	w->prof.start_wall = (double)w->from;
	w->prof.duration = (double)(until - w->from);
	FILE *mem = open_memstream(buf, len);
	int rc = mem ? output_write(f, &w->prof, o, mem, e) : err_set(e, E_NOMEM, "open_memstream failed");
	if (mem && fclose(mem) != 0 && !rc)
		rc = err_set(e, E_IO, "writing a window failed");
	if (rc) {
		free(*buf);
		*buf = NULL;
		*len = 0;
	}
	/* The next window keeps the run's metadata but none of the counts. */
	struct interner *strs = w->prof.strs;
	int rate = w->prof.rate;
	const char *title = w->prof.title, *pyver = w->prof.python_version;
	profile_free(&w->prof);
	profile_init(&w->prof, strs, rate);
	w->prof.title = title;
	w->prof.python_version = pyver;
	w->from = until;
	w->prof.start_wall = (double)until;
	return rc;
}

void window_end(struct window *w)
{
	if (w->on)
		profile_free(&w->prof);
	w->on = false;
}

char *window_path(const char *output, const char *default_stem, enum format f, int64_t from)
{
	const char *ext = format_extension(f);
	struct strbuf sb;
	sb_init(&sb);
	if (output) {
		size_t n = strlen(output), el = strlen(ext);
		const char *slash = strrchr(output, '/');
		const char *dot = strrchr(slash ? slash : output, '.');
		if (n > el + 1 && output[n - el - 1] == '.' && !strcmp(output + n - el, ext)) {
			sb_add(&sb, output, n - el - 1);
		} else if (dot && dot != (slash ? slash + 1 : output)) {
			ext = dot + 1;
			sb_add(&sb, output, (size_t)(dot - output));
		} else {
			sb_adds(&sb, output);
		}
	} else {
		sb_adds(&sb, default_stem);
	}
	char stamp[64];
	time_rfc3339(stamp, sizeof stamp, (time_t)from);
	sb_addf(&sb, "-%s.%s", stamp, ext);
	return sb_detach(&sb);
}
