/*
 * input.h - readers of saved profiles (the inverse of the writers, for `mixspy merge`): raw
 * collapsed stacks, speedscope JSON and pprof (gzipped or plain protobuf). Each adds the file's
 * samples to a profile, so several files read into one profile add up.
 *
 * What a file cannot tell is filled in plainly: raw files have no threads (one thread, pid 0) and
 * no rate; speedscope files store seconds, from which the rate is inferred as the smallest one
 * that makes every weight a whole number of samples; pprof files carry the period. Frame kinds
 * come from the file name (.py python, .pyx/.pxd/.pxi cython, a pprof mapping native) and short
 * file names are the names in the file.
 */
#ifndef MIXSPY_INPUT_H
#define MIXSPY_INPUT_H

#include <stddef.h>

#include "profile.h"

enum input_format { INPUT_UNKNOWN = 0, INPUT_RAW, INPUT_SPEEDSCOPE, INPUT_PPROF };

struct input_info {
	enum input_format format;
	int rate;            /* samples per second the file records, 0 when it does not */
	uint64_t samples;    /* samples added */
	double duration;     /* seconds the file covers (0 when unknown) */
	double start_wall;   /* epoch seconds of its start, 0 when unknown */
};

/* Largest input file, and largest decompressed pprof, that we accept. */
#define INPUT_MAX_BYTES ((size_t)4 << 30)

/* Guess the format from the first bytes. */
enum input_format input_detect(const unsigned char *data, size_t len);
const char *input_format_name(enum input_format f);

/* Read a file and add its samples to p; timeline entries start at time_offset seconds. */
int input_read_file(struct profile *p, const char *path, double time_offset, struct input_info *info,
		    struct err *e);
/* The same for bytes already in memory (format detected). */
int input_read(struct profile *p, const unsigned char *data, size_t len, double time_offset,
	       struct input_info *info, struct err *e);

/* The readers, one per format. */
int input_read_raw(struct profile *p, const char *data, size_t len, double time_offset, struct input_info *info,
		   struct err *e);
int input_read_speedscope(struct profile *p, const char *data, size_t len, double time_offset,
			  struct input_info *info, struct err *e);
int input_read_pprof(struct profile *p, const unsigned char *data, size_t len, double time_offset,
		     struct input_info *info, struct err *e);

/* Shared by the readers: a frame from its parts, strings interned in p->strs, kind guessed from
 * the file name when module is NULL. */
struct frame input_frame(struct profile *p, const char *name, const char *file, int line, const char *module,
			 uint64_t addr);
/* A thread from a writer's thread id text ("1234" OS tid, or "0x7F..." Python thread id). */
uint32_t input_thread(struct profile *p, int pid, const char *tid_text, const char *name);

#endif
