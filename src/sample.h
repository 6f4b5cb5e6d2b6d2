/*
 * sample.h - the data every stage passes along: one frame of any kind, and one sample (the stack
 * of one thread at one instant). Frames are leaf first in a sample; the profile stores them
 * root first.
 *
 * All strings are interned (util.h), so equal strings are equal pointers.
 */
#ifndef MIXSPY_SAMPLE_H
#define MIXSPY_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum frame_kind {
	FRAME_PYTHON = 0,
	FRAME_NATIVE = 1,
	FRAME_CYTHON = 2,
	FRAME_PSEUDO = 3,   /* thread / process / GIL-state frames added by record */
};

struct frame {
	enum frame_kind kind;
	const char *name;        /* function (Python: co_name, or qualname from 3.11) */
	const char *file;        /* full path; "" when unknown */
	const char *short_file;  /* shortened as py-spy does (== file with --full-filenames) */
	int line;                /* 0 when unknown or line numbers are off */
	const char *module;      /* native: the ELF object path; NULL otherwise */
	uint64_t addr;           /* native: the pc; 0 otherwise */
};

enum gil_state {
	GIL_HELD = 0,       /* the thread holds the GIL */
	GIL_RELEASED = 1,   /* running (native code) without the GIL */
	GIL_WAITING = 2,    /* blocked taking the GIL */
	GIL_IDLE = 3,       /* not running */
	GIL_NSTATES = 4,
};

const char *gil_state_name(enum gil_state g);

struct sample {
	int pid;
	uint64_t thread_id;          /* Python's thread id (pthread_self) */
	int os_tid;                  /* 0 when unknown */
	const char *thread_name;     /* NULL when unknown */
	const char *process_cmdline; /* for the process pseudo-frame with --subprocesses */
	int ppid;
	bool active;
	bool owns_gil;
	enum gil_state gil;
	double time;                 /* seconds since the start of the run */
	struct frame *frames;        /* leaf first */
	size_t nframes;
};

/* The label py-spy prints for a frame: "name (file:line)", "name (file)" or "name". */
struct strbuf;
void frame_label(struct strbuf *sb, const struct frame *f, bool short_names);

#endif
