/*
 * sampler.h - the only loop: ticks at --rate with exponential gaps (so periodic code is not
 * aliased), samples every profiled process (following subprocesses), and stops on duration,
 * Ctrl-C, SIGTERM or when the targets exit. What to do with the samples is the caller's (record,
 * top) through hooks.
 */
#ifndef MIXSPY_SAMPLER_H
#define MIXSPY_SAMPLER_H

#include <signal.h>
#include <stdbool.h>

#include "cli.h"
#include "sample.h"
#include "spy.h"
#include "util/util.h"

/* The one piece of global mutable state: set by the signal handler. */
extern volatile sig_atomic_t sampler_stop_signal;
/* Set by SIGCHLD; sampler_service (called every tick, and by idle hooks when set) clears it. */
extern volatile sig_atomic_t sampler_child_signal;

enum stop_reason {
	STOP_NONE = 0,
	STOP_DURATION,
	STOP_SIGNAL,      /* Ctrl-C or SIGTERM */
	STOP_EXITED,      /* every target exited */
	STOP_HOOK,        /* the caller asked (top: q) */
};

struct sampler;

struct sampler_hooks {
	void *ctx;
	/* One tick's samples of one process. parents: the profiled ancestors' pids, outermost first. */
	void (*on_samples)(void *ctx, struct sampler *sm, struct spy *spy, struct sample *s, size_t n);
	/* After every tick; return true to stop. */
	bool (*on_tick)(void *ctx, struct sampler *sm, double elapsed);
	/* Sleeping until the next tick: return true to stop early (top uses it for keys). */
	bool (*idle)(void *ctx, struct sampler *sm, double until);
};

struct sampler_proc {
	struct spy spy;
	/* Errors are counted once the process is still alive half a second later: reads that fail
	 * while a process shuts down (its interpreter torn down) are its exit, not sampling errors. */
	uint64_t pending_errors;
	double pending_since;
	char pending_msg[512];
	pid_t ppid;
	bool open;
	bool dead;
};

struct sampler {
	const struct config *c;
	struct interner *strs;
	VEC(struct sampler_proc *) procs;
	struct hmap tried;        /* pids we tried to open (Python or not) */
	pid_t root_pid;
	bool launched;
	int exit_status;          /* of the launched program, once it exited */
	bool root_exited;
	uint64_t ticks;
	uint64_t samples;         /* per-thread stacks produced */
	uint64_t errors;
	uint64_t merge_mismatches; /* --native samples whose stacks did not line up */
	uint64_t late_ticks;
	double max_lateness;
	double start;             /* monotonic */
	double start_wall;
	enum stop_reason reason;
	char last_error[512];
};

/* Attach (c->pid) or launch (c->program), then loop until stopped. *status is the launched
 * program's exit status (0 when attached). */
int sampler_run(const struct config *c, struct interner *strs, const struct sampler_hooks *h, int *status,
		struct err *e);
/* Number of processes currently profiled. */
size_t sampler_nprocs(const struct sampler *sm);
/* Forward pending signals to the seized threads of every process (see target_service). */
void sampler_service(struct sampler *sm);
/* The chain of profiled ancestors of pid, outermost first, including pid itself. */
size_t sampler_lineage(const struct sampler *sm, pid_t pid, struct spy **out, size_t max);
/* The profiled process with that pid, or NULL. */
struct spy *sampler_find(const struct sampler *sm, pid_t pid);

#endif
