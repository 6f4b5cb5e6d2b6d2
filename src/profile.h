/*
 * profile.h - what a run collected: interned frames, interned stacks with counts, per-thread
 * totals (including GIL states) and per-thread timelines for the formats that need order.
 *
 * Memory grows with distinct frames and stacks, and with changes of stack on a thread (the
 * timeline is run-length encoded), never with the plain number of samples. Writers read a
 * profile and never reach back into the target.
 */
#ifndef MIXSPY_PROFILE_H
#define MIXSPY_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sample.h"
#include "util/util.h"

struct profile_thread {
	int pid;
	uint64_t thread_id;
	int os_tid;
	const char *name;           /* latest known thread name, or NULL */
	uint64_t samples;
	uint64_t gil[GIL_NSTATES];  /* samples per GIL state */
};

struct profile_stack {
	uint32_t thread;    /* index into threads */
	uint32_t nframes;
	uint32_t *frames;   /* frame ids, ROOT FIRST */
	uint64_t count;
	uint64_t gil[GIL_NSTATES];
};

/* One run of identical consecutive samples of one thread. */
struct profile_run {
	uint32_t stack;
	uint32_t count;
	double start;   /* seconds since the start of the run, of the first sample */
	double end;     /* time of the last sample of the run */
};

struct profile_timeline {
	VEC(struct profile_run) runs;
};

struct profile {
	struct interner *strs;       /* shared, not owned */
	VEC(struct frame) frames;    /* id -> frame */
	VEC(struct profile_stack) stacks;
	VEC(struct profile_thread) threads;
	VEC(struct profile_timeline) timelines;  /* parallel to threads */
	struct hmap frame_index;     /* hash -> id (with collision chain via frame_next) */
	VEC(uint32_t) frame_next;
	struct hmap stack_index;
	VEC(uint32_t) stack_next;
	struct hmap thread_index;

	/* run metadata, filled by record */
	int rate;
	const char *title;           /* the mixspy command line */
	const char *python_version;  /* e.g. "3.11.7" */
	double start_wall;           /* epoch seconds */
	double duration;             /* seconds */
	uint64_t samples;            /* per-thread stacks recorded */
	uint64_t errors;
	uint64_t merge_mismatches;   /* --native samples whose merge fell back */
};

void profile_init(struct profile *p, struct interner *strs, int rate);
void profile_free(struct profile *p);

/* Intern one frame; returns its id. Strings in f must come from p->strs. */
uint32_t profile_frame_id(struct profile *p, const struct frame *f);

/* Record one sample: s->frames are leaf first; extra_root (may be NULL, count nroot) are pseudo
 * frames placed at the root, root first. Returns the stack id. */
uint32_t profile_add(struct profile *p, const struct sample *s, const struct frame *extra_root, size_t nroot);

/* Add `count` samples of an already known stack (merge of profiles). */
void profile_add_stack_count(struct profile *p, uint32_t stack, uint64_t count, double t);

/* Find or create a stack from root-first frame ids on a thread (for readers of saved profiles). */
uint32_t profile_stack_id(struct profile *p, uint32_t thread, const uint32_t *frames_root_first, size_t n);
uint32_t profile_thread_id(struct profile *p, int pid, uint64_t thread_id, int os_tid, const char *name);

#endif
