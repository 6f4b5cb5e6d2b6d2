/*
 * spy.h - one target process being profiled: its target, interpreter reader and (with --native)
 * unwinder, symbolizer and Cython maps; and the one operation every command needs: the stacks
 * of its threads at this instant (spy_sample). The sampler calls it per tick, dump once.
 */
#ifndef MIXSPY_SPY_H
#define MIXSPY_SPY_H

#include <stdbool.h>

#include "python/python.h"
#include "sample.h"
#include "target.h"
#include "util/util.h"

struct spy_opts {
	bool native;
	bool nonblocking;
	bool bpf;             /* running threads' frames copied by the eBPF walk (kwalk.h), not paused */
	bool idle;            /* keep idle threads */
	bool gil_only;        /* keep only the GIL holder (--gil) */
	bool full_filenames;
	enum py_linemode linemode;
	bool thread_names;
	bool keep_seized;     /* threads stay seized between samples (record, top; not dump) */
};

struct native_state;
struct kwalk;
struct thread_plan;
struct sched_memo;

struct spy {
	struct target t;
	struct py_proc *py;
	struct interner *strs;
	struct spy_opts o;
	struct native_state *native;   /* --native only */
	struct kwalk *kwalk;          /* --bpf, where the kernel allows it */
	uint64_t kwalk_reads;         /* MIXSPY_STATS=1: threads read by kwalk */
	uint64_t kwalk_past;          /* ... and copies that fell short of the walk (then paused) */
	VEC(struct sample) samples;
	VEC(struct frame) frames;     /* storage for the samples' frames */
	VEC(size_t) frame_starts;
	VEC(struct py_thread *) sample_threads;   /* the Python thread of each sample */
	struct hmap running;          /* tid -> running state, read at the start of a sample (spy.c) */
	struct hmap sys_arg;          /* tid -> first system call argument, where that was read */
	struct hmap slept_on;         /* tid -> the futex of the last system call it was read asleep
				       * in (UINT64_MAX: another call), as far back as it goes */
	/* tid -> index in memo[]: each thread's schedstat and syscall file as read this tick
	 * (memo_cur) and last tick (see read_syscall_memo in spy.c) */
	VEC(struct sched_memo) memo[2];
	struct hmap memo_ix[2];
	int memo_cur;
	uint64_t watched_reads;       /* MIXSPY_STATS=1: threads whose state a switch watch kept */
	uint64_t noted_reads;         /* ... GIL waiters found asleep on it by their watch's note */
	uint64_t off_cpu_reads;       /* ... and threads read unpaused, off their CPU (read_off_cpu) */
	uint64_t off_cpu_waiters;     /* ... of which not the GIL's holder when the tick began */
	VEC(uint64_t) first_read;     /* --nonblocking: frame and code addresses of the first read */
	int pidns;                    /* target's PID namespace: 0 not checked yet, 1 ours, 2 another */
	struct hmap ns_tids;          /* pidns 2: the target's own thread ids -> ours (from NSpid) */
	uint64_t errors;
	uint64_t merge_mismatches;
	bool stats;                   /* MIXSPY_STATS=1: time every pause, report them at spy_close */
	VEC(float) pause_us;          /* pause -> resume of each sampled thread, microseconds */
	VEC(double) pause_at;         /* MIXSPY_PAUSE_LOG: when each of them began (CLOCK_MONOTONIC) */
	bool pause_log;
	bool no_prime;                /* MIXSPY_NO_PRIME: pauses without target_prime (for comparison) */
	uint64_t unpaused_reads;      /* MIXSPY_STATS=1: threads read without a pause (see spy.c) */
	uint64_t quiet_tries;         /* ... threads tried so (in read_quiet's batch) */
	uint64_t stop_regs;           /* ... --native pauses whose registers came from the watch */
	int gil_marks;                /* py_gil_mark works: 0 not tried yet, 1 yes, -1 no */
	uint64_t gil_lo, gil_hi;      /* py_gil_sync_range, as read this tick */
	VEC(struct thread_plan) plan; /* per thread, this tick (spy.c) */
	struct py_ranges ranges;      /* what the quiet threads' reads will need (spy.c) */
	struct py_chases chases;      /* --bpf: what a copy in the tick must hold (spy.c) */
	double first_sample_mono;     /* MIXSPY_STATS=1: CLOCK_MONOTONIC of the first sample, 0 before */
	double last_sample_mono;      /* ... and of the last one */
	double cpu_at_first;          /* mixspy's CPU seconds (user + system) at the first sample */
	uint64_t reads_at_first;      /* target reads (system calls) made before it */
	uint64_t ticks_since_first;
	double last_maps_check;       /* --native: when the maps were last re-read (native.c) */
	char last_error[512];
};

/* Open an existing process (pid) or a launched one (t already filled by target_launch).
 * Retries while the interpreter is still starting, up to `timeout` seconds. */
int spy_open(struct spy *s, pid_t pid, struct target *launched, const struct spy_opts *o,
	     struct interner *strs, double timeout, struct err *e);
void spy_close(struct spy *s);
/* The Python thread (with its frames) behind sample i of the last spy_sample. */
const struct py_thread *spy_sample_thread(const struct spy *s, size_t i);

/* The stacks of the process's Python threads now. The samples (and their frames) stay valid
 * until the next call. Threads filtered out by idle / --gil are not returned. */
int spy_sample(struct spy *s, double t, struct sample **out, size_t *n, struct err *e);

#endif
