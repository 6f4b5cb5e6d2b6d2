/*
 * output.h - the writers: each turns a profile into one file format. None knows how samples were
 * taken. output_write picks the writer by format.
 */
#ifndef MIXSPY_OUTPUT_H
#define MIXSPY_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "../profile.h"

enum format {
	FORMAT_FLAMEGRAPH = 0,
	FORMAT_RAW,
	FORMAT_SPEEDSCOPE,
	FORMAT_CHROMETRACE,
	FORMAT_PPROF,
	FORMAT_PSTATS,
	FORMAT_CALLGRIND,
	FORMAT_COUNT,
};

struct output_opts {
	bool full_filenames;  /* labels use the full path instead of the short one */
	bool lineno;          /* line numbers are shown (false with --nolineno) */
};

/* "flamegraph", "raw", ... (case-insensitive) -> format; -1 when unknown. */
int format_parse(const char *name);
const char *format_name(enum format f);
const char *format_extension(enum format f);  /* "svg", "txt", "json", "pb.gz", ... */
/* The line record prints after writing, e.g. "Wrote flamegraph data to '%s'." */
const char *format_wrote_message(enum format f);
/* Extra hint lines after writing (may be NULL). */
const char *format_hint(enum format f);

int output_write(enum format f, const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);

int write_flamegraph(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_raw(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_speedscope(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_chrometrace(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_pprof(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_pstats(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);
int write_callgrind(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e);

#endif
