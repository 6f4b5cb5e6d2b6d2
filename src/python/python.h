/*
 * python.h - what the interpreter inside a target says: its version, its thread states, each
 * thread's frame chain (functions, files, lines), the GIL holder, thread names, and locals for
 * `dump --locals`. Reads go through target.h; offsets come from layout.h. Knows nothing about
 * output or native stacks.
 */
#ifndef MIXSPY_PYTHON_H
#define MIXSPY_PYTHON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../target.h"
#include "../util/util.h"
#include "layout.h"

struct py_version {
	int major, minor, micro;
	char level[4];    /* "" for final, "a", "b", "rc" */
	int serial;
	char str[32];     /* "3.11.7", "3.13.0rc1" */
};

struct py_frame {
	const char *name;        /* co_name (qualname from 3.11), interned */
	const char *file;        /* co_filename, interned */
	const char *short_file;  /* shortened (or == file with full filenames), interned */
	int line;                /* per the line mode */
	int firstlineno;
	uint64_t code;           /* code object address */
	uint64_t addr;           /* frame address */
	bool is_entry;           /* outermost frame of its native eval activation (for merge) */
};

/* A frame as copied while its thread is paused, before its code object is looked at. */
struct py_rawframe {
	uint64_t frame;
	uint64_t code;           /* code object (3.14: tag bits cleared) */
	uint64_t instr;          /* 3.11+: prev_instr / instr_ptr */
	int32_t lasti;           /* <= 3.10: f_lasti */
	uint8_t owner;           /* 3.11+ */
	bool is_entry;           /* 3.11 is_entry */
};

struct py_spec_ix {
	uint64_t addr;
	uint32_t index;
};

struct py_thread {
	uint64_t tstate;
	uint64_t thread_id;      /* pthread_self() */
	int os_tid;              /* 0 when unknown */
	const char *name;        /* threading name, interned, or NULL */
	bool holds_gil;
	/* made for a thread that is starting and not yet its own: no thread id, no native id
	 * (3.8+), or the id of the thread that starts it (pre-allocated by it, 2.7-3.12) */
	bool unborn;
	VEC(struct py_frame) frames;   /* innermost first */
	VEC(struct py_rawframe) raw;   /* what py_copy_frames copied, innermost first */
	bool truncated;          /* the chain hit the depth limit or a bad pointer */
	/* 3.10 and older: the frame addresses of the last chain copied for tstate spec_tstate,
	 * innermost first (read ahead in one vectored read by the next copy) */
	VEC(uint64_t) spec;
	VEC(struct py_spec_ix) spec_ix;  /* spec by address (see copy_frames_object) */
	uint64_t spec_tstate;
	/* 3.11+: what the last copy for tstate spec_tstate found - the eval loop's C frame (3.11,
	 * 3.12) and the data stack chunks it copied - read ahead by the next copy's first read */
	uint64_t spec_cframe;
	struct { uint64_t addr; size_t len; } spec_chunks[4];
	int spec_nchunks;
	/* 3.12+: frames its recent copies found outside the data stack (the entry shims in the eval
	 * loop's C frames), newest first, for py_tick_reads */
	uint64_t seen_shims[8];
	bool walk_live;          /* 3.11+: its last walk read more than the first read copied */
};

enum py_linemode {
	PY_LINE_CURRENT = 0,     /* the line being executed */
	PY_LINE_FUNCTION = 1,    /* co_firstlineno (--function) */
	PY_LINE_NONE = 2,        /* 0 (--nolineno) */
};

struct py_proc;

/* Find the interpreter in t: version, runtime, interpreter state, layout. */
int py_open(struct py_proc **out, struct target *t, struct interner *strs, bool full_filenames, struct err *e);
void py_close(struct py_proc *p);
const struct py_version *py_get_version(const struct py_proc *p);
const struct py_layout *py_get_layout(const struct py_proc *p);
const char *py_binary_path(const struct py_proc *p);   /* the ELF object holding the runtime */
uint64_t py_interp_addr(const struct py_proc *p);

/* List the thread states of the main interpreter (no frames yet). The array belongs to p and
 * is reused by the next call. os_tid is filled where the version stores it or the mapping is
 * cached; holds_gil from the GIL holder. */
int py_read_threads(struct py_proc *p, struct py_thread **threads, size_t *n, struct err *e);
/* Read th's frame chain into th->frames: py_copy_frames then py_decode_frames. */
int py_read_frames(struct py_proc *p, struct py_thread *th, enum py_linemode mode, struct err *e);
/* The ranges the next py_read_frames of th will read if its stack did not change since its last
 * copy (the thread state's fields, the data stack chunks or frame objects it found then, the
 * code objects it ran): appended to *out (buf NULL), for target_hold - so that reading many
 * threads that stand still costs one vectored read. */
struct py_ranges { struct target_iov *v; size_t n, cap; };   /* a VEC (util.h) */
void py_next_reads(struct py_proc *p, const struct py_thread *th, struct py_ranges *out);
/* What one copy made in an instant must hold for py_copy_frames to walk th's chain from it
 * alone, wherever the chain is by then: ranges chased from the thread state (frame -> previous
 * frame up to 3.10; the current data stack chunk -> older chunks from 3.11) with the GIL's words,
 * appended to *out (bases index *out from its start) - for kwalk. It also drops what th's last
 * copy noted to read ahead, which a walk of that copy must not go and read. */
struct py_chases { struct target_chase *v; size_t n, cap; };   /* a VEC (util.h) */
void py_tick_reads(struct py_proc *p, struct py_thread *th, struct py_chases *out);
/* The part that needs the thread paused: copy the chain (frame, code pointer, instruction) into
 * th->raw, with as few reads as possible (3.11+: the thread's data stack in one read). `extra`
 * (may be NULL) is one more range to copy in the same first read - the native stack, so that a
 * --native pause costs one read less; *extra_ok says whether it was read whole (false: read it
 * yourself). */
int py_copy_frames(struct py_proc *p, struct py_thread *th, const struct target_iov *extra, bool *extra_ok,
		   struct err *e);
/* py_copy_frames in two parts, so that the thread need stand still for the first alone: from
 * 3.11, _begin copies the thread state and data stack (the first read) and _end walks the chain
 * through that copy, once the thread runs again. A walk that had to read anything more (an older
 * chunk, a frame outside the data stack) read it from the running thread: _end then fails with
 * E_AGAIN (read it again paused, with py_copy_frames). Up to 3.10, and for a thread whose last
 * walk had to read more (3.12+'s entry shims live on the C stack), _begin does it all. Between
 * the two, nothing but py_thread_holds_gil may use p. */
int py_copy_frames_begin(struct py_proc *p, struct py_thread *th, const struct target_iov *extra, bool *extra_ok,
			 struct err *e);
int py_copy_frames_end(struct py_proc *p, struct py_thread *th, struct err *e);
/* The rest, after the thread runs again: code objects (validated in one vectored read, cached
 * by address), names, lines, entry marks. */
int py_decode_frames(struct py_proc *p, struct py_thread *th, enum py_linemode mode, struct err *e);
/* Does th->raw end where a real chain ends? (3.11: an is_entry frame; 3.12+: a shim frame;
 * always true before 3.11, whose chains can't tell.) For reads of a running thread. */
bool py_chain_complete(struct py_proc *p, const struct py_thread *th);
/* Does th hold the GIL right now? (re-read while th is paused; the list's view may be stale) */
bool py_thread_holds_gil(struct py_proc *p, const struct py_thread *th);
/* Fill os_tid for threads where the version doesn't store it, by matching thread_id against
 * each OS thread's fs_base (needs the OS threads to be ptrace-stoppable). */
int py_map_os_tids(struct py_proc *p, struct py_thread *threads, size_t n, struct err *e);
/* th's OS thread is gone while its thread state is not: its thread id was mapped for an ended
 * thread whose stack it reuses (and its thread state came at the same address). The next
 * py_map_os_tids maps it again. */
void py_forget_os_tid(struct py_proc *p, const struct py_thread *th);
/* Fill thread names from threading._active (3.6+ and 2.7). Missing names stay NULL. */
int py_read_thread_names(struct py_proc *p, struct py_thread *threads, size_t n);
/* The thread state holding the GIL, 0 for none. */
int py_gil_holder(struct py_proc *p, uint64_t *tstate);
/* True when the GIL is currently locked (3.7+), or the holder is known (older). */
bool py_gil_locked(struct py_proc *p);
/* Who had the GIL last and how often it has changed hands (3.7+: the GIL's last_holder and
 * switch_number; the count moves each time a thread takes it from another). A thread that is
 * not the last holder in two marks with the same count has not held the GIL in between - so
 * it ran no Python and its frame chain did not change. E_NOTPY: not known for this version
 * (2.7, 3.6). */
struct py_gil_mark {
	uint64_t last_holder;
	uint64_t switches;
};
int py_gil_mark(struct py_proc *p, struct py_gil_mark *m);
/* The bytes [*lo, *hi) of the GIL's own synchronisation objects (its mutex and condition
 * variables; 2.7: its semaphore): a thread taking the GIL sleeps in futex() on an address in
 * there. Returns 0, or E_NOTPY when this build does not tell where they are. */
int py_gil_sync_range(struct py_proc *p, uint64_t *lo, uint64_t *hi);

/* Locals and arguments of one frame, for dump --locals. */
struct py_local {
	const char *name;
	char *repr;      /* owned; "?" when unreadable */
	bool is_arg;
	uint64_t addr;
};
int py_frame_locals(struct py_proc *p, const struct py_frame *f, size_t repr_budget,
		    struct py_local **out, size_t *n, struct err *e);
void py_locals_free(struct py_local *l, size_t n);

/* Shorten a file name as py-spy does: drop the directories above the top package. Result
 * interned. */
const char *py_shorten_filename(struct py_proc *p, const char *file);

#endif
