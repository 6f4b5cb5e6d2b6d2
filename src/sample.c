/*
 * sample.c - small helpers over frames and samples shared by the writers and views.
 */
#include "sample.h"
#include "util/util.h"

const char *gil_state_name(enum gil_state g)
{
	switch (g) {
	case GIL_HELD: return "held";
	case GIL_RELEASED: return "released";
	case GIL_WAITING: return "waiting";
	case GIL_IDLE: return "idle";
	default: return "unknown";
	}
}

void frame_label(struct strbuf *sb, const struct frame *f, bool short_names)
{
	const char *file = short_names && f->short_file ? f->short_file : f->file;
	sb_adds(sb, f->name ? f->name : "?");
	if (file && *file) {
		if (f->line > 0)
			sb_addf(sb, " (%s:%d)", file, f->line);
		else
			sb_addf(sb, " (%s)", file);
	}
}
