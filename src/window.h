/*
 * window.h - fixed-length time windows of a recording, for `record --upload` and `--rotate`.
 *
 * A window is a profile of its own covering [from, until) in whole Unix seconds. Windows are
 * aligned to multiples of their length (a 10 s window starts at :00, :10, ...), so the first one
 * is usually partial; the next starts exactly where the previous ended, so a run is covered with
 * no gaps and no overlaps.
 */
#ifndef MIXSPY_WINDOW_H
#define MIXSPY_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "output/output.h"
#include "profile.h"

struct window {
	struct profile prof;
	int64_t from;       /* Unix seconds */
	int len;            /* seconds */
	bool on;
};

/* Start the first window, the one holding `wall` (epoch seconds). */
void window_begin(struct window *w, struct interner *strs, int rate, int len, double wall);
/* The end of the current window. */
int64_t window_until(const struct window *w);
/* Serialize the current window (ending at `until`) with the writer of format f into a malloc'd
 * buffer, then start the next window at `until`. */
int window_cut(struct window *w, int64_t until, enum format f, const struct output_opts *o, char **buf,
	       size_t *len, struct err *e);
void window_end(struct window *w);

/* The file name of a rotated window: "STEM-<local time of from>.EXT", where STEM.EXT is the
 * -o name (the format's extension is recognised, "x.pb.gz" -> "x") or default_stem. */
char *window_path(const char *output, const char *default_stem, enum format f, int64_t from);

#endif
