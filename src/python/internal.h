/*
 * internal.h - the state src/python/ keeps about one target interpreter, shared by the files of
 * that folder only (python.c: discovery and frames; the others: thread names, locals, reprs).
 */
#ifndef MIXSPY_PY_INTERNAL_H
#define MIXSPY_PY_INTERNAL_H

#include "../util/util.h"
#include "layout.h"
#include "pyobj.h"
#include "python.h"

/* What we keep of one code object, by address. */
struct py_code {
	uint64_t addr;
	uint64_t name_ptr, file_ptr, table_ptr;  /* to notice a reused address */
	const char *name;
	const char *file;
	const char *short_file;
	int firstlineno;
	int firsttraceable;       /* 3.11+ */
	uint8_t *table;           /* line table bytes */
	size_t table_len;
	int64_t ncodeunits;       /* 3.11+ ob_size, for bounds */
};

struct py_proc {
	struct target *t;
	struct interner *strs;
	bool full_filenames;
	struct py_version version;
	struct py_layout layout;      /* copy: 3.13+ overlays _Py_DebugOffsets */
	struct py_reader rd;
	char *binary;                 /* path of the ELF object holding the runtime */
	uint64_t bias;                /* load bias of that object */
	uint64_t runtime;             /* _PyRuntime (3.7+), 0 otherwise */
	uint64_t interp;              /* main PyInterpreterState */
	uint64_t tstate_current_sym;  /* 2.7/3.6: address of _PyThreadState_Current */
	uint64_t gil_sync_lo, gil_sync_hi;  /* 3.6: the GIL's static mutexes and conds (ceval.c) */
	uint64_t gil_lock_sym;        /* 2.7: address of the static `interpreter_lock` pointer */
	bool gil_static_tried;        /* 2.7/3.6: the two above were looked up */
	VEC(struct py_thread) threads;
	VEC(struct py_code) codes;
	struct hmap code_index;       /* code addr -> index in codes */
	struct hmap short_names;      /* interned file ptr -> interned short name ptr */
	struct hmap tid_map;          /* thread_id -> os tid (versions without native_thread_id) */
	struct hmap tid_ts;           /* thread_id -> the thread state it was mapped for */
	struct hmap tid_tried;        /* thread state -> mappings that found no OS thread for it */
	struct hmap tid_fs;           /* os tid -> its pthread_self (fs_base), read once per OS thread */
	struct hmap thread_names;     /* thread_id -> interned name ptr */
	struct hmap thread_objs;      /* thread_id -> its Thread object when the name was read */
	struct hmap names_tid;        /* thread_id -> the OS thread wearing it at the last read */
	VEC(uint64_t) names_fresh;    /* thread ids whose names are read again, whatever was kept */
	uint64_t names_generation;
	uint64_t names_interval;      /* calls between retries for nameless threads */
	uint64_t names_active;        /* threading._active once found, and its type then */
	uint64_t names_active_type;
	uint64_t names_key_type;      /* the type of _active's keys (int) at the last read */
	VEC(uint64_t) names_pairs;    /* read_names scratch: key, Thread object, key, ... */
	VEC(struct target_iov) names_iov;
	/* Memory copied in bulk for the current py_copy_frames (3.11+ data stack chunks: the current
	 * one, then older ones as the chain reaches them). */
	struct py_region {
		uint64_t addr;
		size_t len;
		uint8_t *buf;
		size_t cap;
		/* during a 3.11+ copy: the chunk whose read-ahead buf holds (0: none, incomplete, or
		 * taken), ahead_len bytes of it */
		uint64_t ahead;
		size_t ahead_len;
	} regions[8];
	int nregions;
	uint64_t chunk_prev;          /* the next older data stack chunk not copied yet, 0 if none */
	/* 3.11+: the thread state's fields read by the first read of the current pause (from
	 * tsnap_addr, tsnap_len bytes; 0 outside a pause), and 3.7-3.11's GIL holder word read with
	 * them (gilsnap_ok) - so the GIL check while paused costs no further read */
	uint8_t tsnap[512];
	uint64_t tsnap_addr;
	size_t tsnap_len;
	uint64_t gilsnap;
	bool gilsnap_ok;
	/* during a 3.11+ copy: the thread whose chunks were read ahead (into regions[k], as its
	 * `ahead` says). A chunk is taken from whichever region holds it (ahead_take): the current
	 * chunk of one pause is an older one at the next when the chain grew into a new chunk, and
	 * back. */
	const struct py_thread *ahead_th;
	/* py_copy_frames_begin: a 3.11+ walk left for py_copy_frames_end (its first frame and the
	 * current frame's cframe; walk_th NULL: none pending) */
	struct py_thread *walk_th;
	uint64_t walk_f, walk_cframe, walk_ds0;
	/* py_copy_frames' extra range, read with the first read of the copy (then cleared) */
	const struct target_iov *extra;
	bool *extra_ok;
	/* The thread states of the previous tick, read ahead in one vectored read by the next */
	VEC(uint64_t) ts_prev;
	struct hmap ts_prev_ix;       /* thread state address -> its index in ts_prev */
	struct hmap ids_seen;         /* mark_unborn scratch: thread id -> index */
	struct hmap born;             /* state -> id, of those the last list took for started */
	VEC(struct target_iov) ts_iov;
	VEC(bool) ts_ok;
	uint8_t *ts_buf;
	size_t ts_cap;
	/* 3.10 and older: the frames of the previous sample's chain, read in one vectored read */
	uint8_t *spec_buf;
	size_t spec_cap;
	/* py_decode_frames scratch: distinct code objects of one sample and their bytes */
	VEC(uint64_t) batch_codes;
	VEC(struct target_iov) batch_iov;
	VEC(bool) batch_ok;
	uint8_t *batch_buf;
	size_t batch_cap;
	uint64_t gil_ptr;             /* 3.12+: cached interp->ceval.gil */
	struct strbuf scratch;
};

/* An empty py_proc over t (no discovery): py_open's first step, and how the frame fuzzer builds
 * one around a fake target. Freed by py_close. */
struct py_proc *py_proc_new(struct target *t, struct interner *strs, bool full_filenames);

#endif
