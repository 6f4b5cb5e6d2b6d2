/*
 * merge.h - the one place where native and Python stacks meet. Each native eval-loop frame is
 * replaced by the Python frames it runs (one per eval frame up to 3.10; a group ending at an
 * entry frame in 3.11; a group ending above a shim frame from 3.12 - the Python reader marks the
 * last frame of each group with is_entry). CPython's call machinery is hidden; what users care
 * about (time.sleep, locks, GC, I/O built-ins, taking the GIL) stays.
 */
#ifndef MIXSPY_MERGE_H
#define MIXSPY_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "python/python.h"
#include "sample.h"

enum native_role {
	NATIVE_KEEP = 0,     /* show it */
	NATIVE_EVAL,         /* an eval-loop activation: replaced by its Python frames */
	NATIVE_HIDE,         /* interpreter plumbing or thread start-up: dropped */
};

/* One native frame (after symbolizing; inlined functions are frames of their own). */
struct native_frame {
	struct frame f;
	enum native_role role;
	bool physical;       /* the real (non-inlined) function of its pc */
	bool unnamed;        /* no symbol, no debug info: named "module+0xoffset" */
};

/* The role of a frame given its containing ELF symbol name, its own (possibly inlined) function
 * name, and whether it lies in the interpreter's binary. */
enum native_role merge_classify(const char *symbol, const char *func, bool in_interpreter);
/* Thread and process start-up frames (_start, __libc_start_main, start_thread, clone...). */
bool merge_is_startup(const char *func);
/* Frames that mean "this thread is blocked taking the GIL". */
bool merge_is_gil_wait(const char *func);

struct merge_result {
	bool mismatch;       /* eval frames and Python groups did not line up: fell back */
	bool waiting;        /* a GIL-taking frame was on the stack */
};

/* Merge leaf-first native and Python frames into out (leaf first). */
void merge_stacks(const struct native_frame *nat, size_t nn, const struct py_frame *py, size_t np,
		  struct frame *out, size_t max, size_t *nout, struct merge_result *res);

#endif
