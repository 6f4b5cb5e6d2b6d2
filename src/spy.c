/*
 * spy.c - the stacks of one process at one instant (see spy.h).
 *
 * Blocking mode pauses each Python thread only while its frame chain (and, with --native, its
 * registers and stack top) is copied, then resumes it; everything else (lines, names,
 * unwinding, symbolizing, merging) works on the copies. Idle state is read from /proc before
 * the pause, since a paused thread always looks asleep.
 */
#include "spy.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "kwalk.h"
#include "native.h"

int spy_open(struct spy *s, pid_t pid, struct target *launched, const struct spy_opts *o,
	     struct interner *strs, double timeout, struct err *e)
{
	memset(s, 0, sizeof(*s));
	const char *stats = getenv("MIXSPY_STATS");
	s->stats = stats && !strcmp(stats, "1");
	s->no_prime = getenv("MIXSPY_NO_PRIME") != NULL;
	s->pause_log = s->stats && getenv("MIXSPY_PAUSE_LOG") && *getenv("MIXSPY_PAUSE_LOG");
	s->strs = strs;
	s->o = *o;
	int rc;
	if (launched) {
		s->t = *launched;
	} else {
		rc = target_attach(&s->t, pid, e);
		if (rc)
			return rc;
	}
	s->t.keep_seized = o->keep_seized;
	double deadline = now_monotonic() + timeout;
	for (;;) {
		/* The maps are re-read on every try: a program we just launched maps libpython (and
		 * then starts the interpreter) after we first look. */
		rc = launched ? target_launched_ready(&s->t, e) : 0;
		if (!rc)
			rc = target_refresh_maps(&s->t, NULL, e);
		if (!rc)
			rc = py_open(&s->py, &s->t, strs, o->full_filenames, e);
		if (!rc)
			break;
		/* A program we just launched may not have loaded or started its interpreter yet. */
		bool retry = rc == E_AGAIN || rc == E_NOTPY || (launched && rc == E_NOPROC && target_alive(&s->t));
		if (!retry || now_monotonic() >= deadline || !target_alive(&s->t)) {
			if (!target_alive(&s->t) && rc != E_VERSION)
				rc = err_set(e, E_NOPROC, "Process %d exited before a Python interpreter was found", s->t.pid);
			if (!launched)
				target_close(&s->t);
			return rc;
		}
		usleep(10000);
	}
	if (o->bpf) {
		rc = kwalk_open(&s->kwalk, e);
		if (rc) {
			spy_close(s);
			return rc;
		}
	}
	if (o->native) {
		rc = native_open(s, e);
		if (rc) {
			spy_close(s);
			return rc;
		}
		/* a thread off its CPU is read where it stands, from the registers its switch watch
		 * noted (read_off_cpu); MIXSPY_NO_WATCH_REGS: paused instead (for comparison) */
		s->t.watch_regs = !getenv("MIXSPY_NO_WATCH_REGS");
	} else {
		/* a GIL waiter's watch notes the futex it sleeps on (read_syscall_memo) */
		s->t.watch_args = !o->nonblocking && !getenv("MIXSPY_NO_WATCH_REGS");
	}
	return 0;
}

static int float_cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static double cpu_seconds(void)
{
	struct timespec ts;
	return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + ts.tv_nsec * 1e-9 : 0.0;
}

/* MIXSPY_PAUSE_LOG=PATH (with MIXSPY_STATS=1): every pause as "start duration" (CLOCK_MONOTONIC
 * seconds, microseconds), one a line, appended to PATH - bench.py matches them against the
 * stalls the target itself saw. */
static void spy_write_pause_log(struct spy *s)
{
	FILE *f = fopen(getenv("MIXSPY_PAUSE_LOG"), "ae");
	if (!f)
		return;
	for (size_t i = 0; i < s->pause_at.n && i < s->pause_us.n; i++)
		fprintf(f, "%.7f %.1f\n", s->pause_at.v[i], s->pause_us.v[i]);
	fclose(f);
}

/* MIXSPY_STATS=1 (for bench/run.sh): how long each target thread stood still per sample,
 * mixspy's peak RSS, and when it sampled (first and last sample, CLOCK_MONOTONIC) with its CPU
 * time at the first sample and now - what sampling cost apart from attaching; one line on
 * stderr, printed when the spy closes. */
static void spy_report_stats(struct spy *s)
{
	if (s->pause_log)
		spy_write_pause_log(s);
	size_t n = s->pause_us.n;
	struct rusage ru;
	long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
	if (n)
		qsort(s->pause_us.v, n, sizeof(float), float_cmp);
	uint64_t cfi = 0, lu = 0;
	native_step_counts(s, &cfi, &lu);
#define PCT(p) (n ? s->pause_us.v[(size_t)((double)(n - 1) * (p))] : 0.0f)
	fprintf(stderr, "mixspy-stats: pid %d pauses %zu pause_us p50 %.1f p90 %.1f p99 %.1f max %.1f maxrss_kb %ld "
		"first_sample_mono %.6f unpaused %llu last_sample_mono %.6f cpu_at_first %.6f cpu_now %.6f "
		"reads_since_first %llu ticks_since_first %llu watched %llu off_cpu %llu kwalk %llu past %llu "
		"off_cpu_waiters %llu cfi_steps %llu libunwind_steps %llu primes %llu quiet_tries %llu "
		"stop_regs %llu noted %llu\n",
		(int)s->t.pid, n, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0), rss_kb, s->first_sample_mono,
		(unsigned long long)s->unpaused_reads, s->last_sample_mono, s->cpu_at_first, cpu_seconds(),
		(unsigned long long)(s->t.reads - s->reads_at_first), (unsigned long long)s->ticks_since_first,
		(unsigned long long)s->watched_reads, (unsigned long long)s->off_cpu_reads,
		(unsigned long long)s->kwalk_reads, (unsigned long long)s->kwalk_past,
		(unsigned long long)s->off_cpu_waiters, (unsigned long long)cfi, (unsigned long long)lu,
		(unsigned long long)s->t.primes, (unsigned long long)s->quiet_tries,
		(unsigned long long)s->stop_regs, (unsigned long long)s->noted_reads);
#undef PCT
}

void spy_close(struct spy *s)
{
	if (s->stats && s->py)
		spy_report_stats(s);
	vec_free(&s->pause_us);
	vec_free(&s->pause_at);
	native_close(s);
	kwalk_close(s->kwalk);
	s->kwalk = NULL;
	py_close(s->py);
	s->py = NULL;
	target_close(&s->t);
	vec_free(&s->samples);
	vec_free(&s->frames);
	vec_free(&s->frame_starts);
	vec_free(&s->sample_threads);
	vec_free(&s->first_read);
	vec_free(&s->plan);
	vec_free(&s->ranges);
	vec_free(&s->chases);
	for (int k = 0; k < 2; k++) {
		vec_free(&s->memo[k]);
		hmap_free(&s->memo_ix[k]);
	}
	hmap_free(&s->ns_tids);
	hmap_free(&s->running);
	hmap_free(&s->sys_arg);
	hmap_free(&s->slept_on);
}

const struct py_thread *spy_sample_thread(const struct spy *s, size_t i)
{
	return i < s->sample_threads.n ? s->sample_threads.v[i] : NULL;
}

/* py-spy's fallback idle heuristic: a thread parked in one of these is waiting, even when the
 * OS says it runs (or the OS state is unknown). */
static bool idle_by_frame(const struct py_thread *th)
{
	if (!th->frames.n)
		return false;
	const struct py_frame *f = &th->frames.v[0];
	const char *file = f->file ? f->file : "";
	size_t n = strlen(file);
#define ENDS(s) (n >= sizeof(s) - 1 && strcmp(file + n - (sizeof(s) - 1), s) == 0)
	if (!strcmp(f->name, "wait") && ENDS("threading.py"))
		return true;
	if (!strcmp(f->name, "select") && ENDS("selectors.py"))
		return true;
	if (!strcmp(f->name, "poll") && (ENDS("asyncore.py") || strstr(file, "zmq") || strstr(file, "gevent") ||
					  strstr(file, "tornado")))
		return true;
#undef ENDS
	return false;
}

/* The innermost pid of /proc/PID/task/TID/status's NSpid line: the thread's id in its own PID
 * namespace. 0 when unknown. */
static pid_t ns_tid_of(pid_t pid, pid_t tid)
{
	char path[80], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", pid, tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	pid_t last = 0;
	while (fgets(buf, sizeof buf, f)) {
		if (strncmp(buf, "NSpid:", 6) != 0)
			continue;
		char *p = buf + 6, *end;
		for (long v; (v = strtol(p, &end, 10)), end != p; p = end)
			last = v > 0 && v < INT32_MAX ? (pid_t)v : 0;
		break;
	}
	fclose(f);
	return last;
}

/* Is the target in another PID namespace than ours (a container)? Then the thread ids the
 * interpreter stores (3.11+ native_thread_id) are that namespace's, not the ones we pause. */
static bool other_pidns(struct spy *s)
{
	if (!s->pidns) {
		char path[64];
		struct stat a, b;
		snprintf(path, sizeof path, "/proc/%d/ns/pid", s->t.pid);
		s->pidns = stat(path, &a) == 0 && stat("/proc/self/ns/pid", &b) == 0 &&
				   (a.st_ino != b.st_ino || a.st_dev != b.st_dev) ? 2 : 1;
	}
	return s->pidns == 2;
}

/* s->running: bit 0, running; RUN_SYSCALL, the syscall file was read for it then (bits 8 and
 * up: its system call number + 2, s->sys_arg: its first argument). */
#define RUN_SYSCALL 2

/* /proc/PID/task/TID/syscall: "nr arg1 ... arg6 sp pc" (nr in decimal, the rest in hex) while
 * blocked in a system call, "-1 sp pc" while blocked outside one, "running" while runnable.
 * Returns 1 running (*nr -1), 0 not, < 0 gone. A thread paused on the instruction that makes a
 * system call is taken to be in it (target_pending_syscall). */
struct sys_state {
	long nr;            /* system call number, -1 when blocked outside one */
	uint64_t arg0;
	uint64_t sp, pc;    /* user stack pointer and pc where it entered the kernel (0: unknown) */
};

#define SYS_FUTEX_X86_64 202
#define SYS_RESTART_SYSCALL_X86_64 219

static int read_syscall_file(struct spy *s, pid_t tid, struct sys_state *st)
{
	char buf[256];
	*st = (struct sys_state){ .nr = -1 };
	if (target_task_read(&s->t, tid, TASK_SYSCALL, buf, sizeof buf) <= 0)
		return E_NOPROC;
	char *end;
	long v = strtol(buf, &end, 10);
	if (end == buf)
		return 1;   /* "running" */
	/* the arguments, then sp and pc */
	uint64_t f[8];
	int k = 0;
	for (char *p = end; k < 8; p = end) {
		uint64_t x = strtoull(p, &end, 16);
		if (end == p)
			break;
		f[k++] = x;
	}
	if (k >= 2 && (v >= 0 ? k == 8 : k == 2)) {
		st->sp = f[k - 2];
		st->pc = f[k - 1];
	}
	st->nr = v < 0 ? -1 : v;
	if (v >= 0 && k >= 1)
		st->arg0 = f[0];
	/* Stopped on its way back into a system call our last pause interrupted: in it. */
	if (v < 0 && target_pending_syscall(&s->t, tid, st->pc, &st->nr, &st->arg0))
		v = st->nr;
	bool futex = v == SYS_FUTEX_X86_64 || v == SYS_RESTART_SYSCALL_X86_64;
	/* Its last sleep as far as we know (read_off_cpu). Stopped by a pause of ours outside any
	 * system call (-1), it was running: a switch watch shows that stop as a switch to sleep
	 * until the thread runs again, and it must not pass for a sleep on the GIL. */
	hmap_put(&s->slept_on, (uint64_t)tid, v >= 0 && futex ? st->arg0 : UINT64_MAX);
	return 0;
}

/* A thread's CPU time and count of times it was put on a CPU (/proc/PID/task/TID/schedstat),
 * with what its syscall file said when they were read. */
struct sched_memo {
	uint64_t runtime, runs;
	bool timed;          /* runtime and runs were read */
	uint64_t run;        /* as s->running holds it */
	struct sys_state sys;
	bool watched;        /* its switch watch's head, read before the files (target_watch) */
	uint64_t head;
};

/* Into v: the thread's CPU time and count of times it ran; false when unknown (a kernel built
 * without sched_info prints zeros). */
static bool read_schedstat(struct spy *s, pid_t tid, uint64_t v[2])
{
	char buf[128];
	if (target_task_read(&s->t, tid, TASK_SCHEDSTAT, buf, sizeof buf) <= 0)
		return false;
	char *p = buf, *end;
	uint64_t f[3];
	for (int i = 0; i < 3; i++, p = end) {
		f[i] = strtoull(p, &end, 10);
		if (end == p)
			return false;
	}
	v[0] = f[0];
	v[1] = f[2];
	return f[0] || f[2];
}

/* Into this tick's memo: what is known of tid now. */
static void memo_keep(struct spy *s, pid_t tid, const struct sched_memo *m)
{
	hmap_put(&s->memo_ix[s->memo_cur], (uint64_t)tid, s->memo[s->memo_cur].n);
	vec_push(&s->memo[s->memo_cur], *m);
}

/* tid's memo of this tick (which: memo_cur) or of the last one (memo_cur ^ 1); NULL if none. */
static const struct sched_memo *memo_of(const struct spy *s, int which, pid_t tid)
{
	uint64_t ix;
	return hmap_get(&s->memo_ix[which], (uint64_t)tid, &ix) ? &s->memo[which].v[ix] : NULL;
}

/* Do the switch watches note rdi (watch_args, or --native's watch_regs)? */
static bool watch_notes_rdi(const struct spy *s)
{
	return s->t.watch_args || s->t.watch_regs;
}

static bool in_gil(const struct spy *s, uint64_t addr)
{
	return addr >= s->gil_lo && addr < s->gil_hi;
}

/*
 * A thread that was waiting for the GIL last tick (m), taken off its CPU to sleep with the first
 * argument of its system call (rdi, as its watch noted it: watch_args, or --native's
 * watch_regs) inside the GIL, sleeps in futex() on the GIL still - what its syscall file would
 * say, read from the ring instead (rdi is a system call's first argument as the kernel saved it
 * on entry; a wait on anything else, or a sleep outside a system call, has its own). The note's
 * sp and pc are those the syscall file shows, and its head dates it (--native: its stack read
 * asleep stands while the head does not move). One woken since and not yet on a CPU counts as
 * asleep, as it does for a watch whose head did not move. On the 100-thread workload this
 * replaced the syscall files of ~13 of its 19 GIL waiters a tick (--native: and their
 * schedstat): mixspy's CPU per tick went from ~465 to ~363 us Python-only, ~645 to ~570 us
 * --native.
 */
static bool gil_sleep_noted(struct spy *s, pid_t tid, const struct sched_memo *m, struct sys_state *sys)
{
	uint64_t head, regs[TARGET_NREGS];
	bool got = false;
	if (!watch_notes_rdi(s) || target_off_cpu(&s->t, tid, &head, regs, &got) != CPU_SLEPT ||
	    !got)
		return false;
	struct user_regs_struct u;
	memcpy(&u, regs, sizeof u);
	if (!in_gil(s, u.rdi))
		return false;
	*sys = (struct sys_state){ .nr = m->sys.nr, .arg0 = u.rdi, .sp = u.rsp, .pc = u.rip };
	hmap_put(&s->slept_on, (uint64_t)tid, u.rdi);
	struct sched_memo n = { .run = RUN_SYSCALL | (uint64_t)(sys->nr + 2) << 8, .sys = *sys, .watched = true,
				.head = head };
	memo_keep(s, tid, &n);
	s->noted_reads++;
	return true;
}

/* The syscall file of a thread that was asleep last tick, or what it said then when the thread
 * has not been on a CPU since: its schedstat (CPU time, times it ran) did not move, so it is
 * asleep on the same call, with the same stack. schedstat costs the kernel less than the syscall
 * file (no ptrace access check, no wait for the thread to be off its CPU): measured on the
 * 100-thread workload, the syscall files of its 80 idle threads were half of mixspy's CPU time.
 * The memo is read before the syscall file, so a thread that runs between the two reads shows
 * moved CPU time next tick. Returns what read_syscall_file returns. */
static int read_syscall_memo(struct spy *s, pid_t tid, struct sys_state *sys)
{
	uint64_t st[2] = { 0, 0 }, head = 0;
	const struct sched_memo *m = memo_of(s, s->memo_cur ^ 1, tid);
	/* Watched: not switched in or out since last tick's read (the head did not move), it sleeps
	 * on as read then, and nothing is read of it now. */
	bool watched = target_switches(&s->t, tid, &head);
	if (watched && m && m->watched && m->head == head && !(m->run & 1)) {
		*sys = m->sys;
		memo_keep(s, tid, m);
		s->watched_reads++;
		return 0;
	}
	/* Python-only, a thread that was waiting for the GIL last tick wakes every few milliseconds
	 * (its timed wait): its schedstat will have moved, so it is not read. (--native checks the
	 * schedstat of the threads it reads asleep, so it reads them all.) */
	bool on_gil = m && m->sys.nr >= 0 && in_gil(s, m->sys.arg0);
	if (on_gil && watched && gil_sleep_noted(s, tid, m, sys))
		return 0;
	bool skip = !s->o.native && on_gil;
	bool have = !skip && read_schedstat(s, tid, st);
	if (have && m && m->timed && m->runtime == st[0] && m->runs == st[1] && !(m->run & 1)) {
		*sys = m->sys;
		struct sched_memo keep = *m;
		keep.watched = watched;
		keep.head = head;
		memo_keep(s, tid, &keep);
		/* asleep for a whole tick: watched from now on (its head is of use from the next
		 * tick's read on, read before it) */
		if (!watched)
			target_watch(&s->t, tid);
		return 0;
	}
	int r = read_syscall_file(s, tid, sys);
	/* a GIL waiter is read from its watch from next tick on (gil_sleep_noted) */
	if (r == 0 && watch_notes_rdi(s) && !watched && sys->nr >= 0 && in_gil(s, sys->arg0))
		target_watch(&s->t, tid);
	if (r >= 0) {
		struct sched_memo n = { st[0], st[1], have, (uint64_t)r | RUN_SYSCALL | (uint64_t)(sys->nr + 2) << 8, *sys,
					watched, head };
		memo_keep(s, tid, &n);
	}
	return r;
}

/* Has the thread not been on a CPU since its memo was read? Its switch watch's head, or its
 * schedstat, did not move. */
static bool slept_on(struct spy *s, pid_t tid, const struct sched_memo *m)
{
	uint64_t head, st[2];
	if (m->watched && target_switches(&s->t, tid, &head))
		return head == m->head;
	return read_schedstat(s, tid, st) && st[0] == m->runtime && st[1] == m->runs;
}

/* What this tick's memo says of a thread asleep: its user sp and pc, NULL when not known. */
static const struct sched_memo *asleep_memo(const struct spy *s, pid_t tid)
{
	const struct sched_memo *m = memo_of(s, s->memo_cur, tid);
	return m && !(m->run & 1) && (m->timed || m->watched) && m->sys.sp && m->sys.pc ? m : NULL;
}

/* The running state of each OS thread that a Python thread may look up. When every Python
 * thread's OS tid is known already (3.11+, or mapped on an earlier tick) and no PID namespace
 * needs translating, only those threads' files are read (kept open, one pread each): the GIL
 * holder's stat (it is paused next: its last CPU decides how to wait for it), every other
 * thread's syscall file (or its schedstat, see read_syscall_memo), which tells both whether it
 * runs and, asleep, on what (measured on the 100-thread workload: reading stat and then syscall
 * for each of its 80 idle threads was half of mixspy's CPU time). Otherwise every thread of the
 * process is listed and its stat read. */
static void read_running(struct spy *s, const struct py_thread *threads, size_t nthreads)
{
	pid_t *tids = NULL;
	size_t n = 0;
	bool ns = other_pidns(s);
	hmap_clear(&s->running);
	hmap_clear(&s->sys_arg);
	bool known = !ns;
	for (size_t i = 0; known && i < nthreads; i++)
		known = threads[i].os_tid || s->o.nonblocking;   /* nonblocking never maps tids */
	target_task_files_trim(&s->t, 3 * (nthreads + 16));
	s->memo_cur ^= 1;
	hmap_clear(&s->memo_ix[s->memo_cur]);
	s->memo[s->memo_cur].n = 0;
	if (known) {
		for (size_t i = 0; i < nthreads; i++) {
			pid_t tid = threads[i].os_tid;
			if (!tid)
				continue;
			if (threads[i].holds_gil) {
				/* watched: taken off its CPU while runnable, it is read where it stands
				 * (sample_thread; --native, from the registers the watch noted) */
				if (!s->o.native || s->t.watch_regs)
					target_watch(&s->t, tid);
				int r = target_thread_running(&s->t, tid);
				if (r >= 0)
					hmap_put(&s->running, (uint64_t)tid, (uint64_t)r);
				continue;
			}
			struct sys_state sys;
			int r = read_syscall_memo(s, tid, &sys);
			if (r < 0)
				continue;
			hmap_put(&s->running, (uint64_t)tid, (uint64_t)r | RUN_SYSCALL | (uint64_t)(sys.nr + 2) << 8);
			hmap_put(&s->sys_arg, (uint64_t)tid, sys.arg0);
		}
		if (s->t.watches.n > s->running.n)
			target_watch_prune(&s->t, &s->running);   /* threads gone */
		return;
	}
	if (ns)
		hmap_clear(&s->ns_tids);
	if (target_threads(&s->t, &tids, &n, NULL))
		return;
	for (size_t i = 0; i < n; i++) {
		int r = target_thread_running(&s->t, tids[i]);
		if (r >= 0)
			hmap_put(&s->running, (uint64_t)tids[i], (uint64_t)r);
		pid_t inner = ns ? ns_tid_of(s->t.pid, tids[i]) : 0;
		if (inner)
			hmap_put(&s->ns_tids, (uint64_t)inner, (uint64_t)tids[i]);
	}
	free(tids);
}

/* Thread ids stored by the interpreter (3.11+), translated to ours for a namespaced target;
 * an id with no match is dropped (the read then goes unpaused, checked for tearing). */
static void translate_ns_tids(struct spy *s, struct py_thread *threads, size_t n)
{
	if (s->pidns != 2 || py_get_layout(s->py)->tstate_native_thread_id < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t tid = 0;
		if (threads[i].os_tid && !hmap_get(&s->ns_tids, (uint64_t)threads[i].os_tid, &tid))
			tid = 0;
		threads[i].os_tid = (int)tid;
	}
}

/*
 * GIL state of one sample. The rule, in order:
 *   held      the thread holds the GIL (2.7-3.12: it is the GIL's holder, read once per tick;
 *             3.13+: its own tstate bit).
 *   waiting   --native: take_gil (or PyEval_RestoreThread & co.) is on its native stack; or, in
 *             every mode, it sits in futex() on an address inside the GIL's own mutex and
 *             condition variables (py_gil_sync_range; 2.7: its semaphore), read from
 *             /proc/PID/task/TID/syscall (nr 202 futex, or 219 restart_syscall after one of our
 *             pauses, first argument). A waiter sleeps (state S), so "running but not the
 *             holder" would never find it; a thread on any other futex (a Lock, a Queue, a join)
 *             is idle. The previous holder parked on switch_cond until a waiter takes over
 *             counts as waiting too: the GIL hand-off blocks it.
 *             Blocking mode reads the file once the thread is paused: a waiter just woken but
 *             not yet on a CPU reads R in /proc/.../stat and "running" in the syscall file, but
 *             paused it shows the futex it is returning from (measured on the contention
 *             workload: 15-30% of contender samples were such "released" waiters otherwise). A
 *             thread R in stat but paused inside a futex of its own is parked (our previous pause
 *             woke it and it was not back asleep yet): idle.
 * Waiting samples are kept without --idle: the thread wants to run Python.
 * Unknown where the GIL lives (stripped 2.7/3.6) or no OS tid (--nonblocking before 3.11): only
 * --native finds waiters.
 */
/*
 * A thread that runs while its frame chain is read (--nonblocking, or a thread we could not
 * pause) can tear it: frames popped and pushed mid-walk give a chain that never existed. Read
 * it a second time and keep it only when both reads saw the same frames running the same code;
 * otherwise the sample is an error, not a stack. (The innermost line may differ: it is taken
 * from the second read, which is the one kept.)
 */
static int check_not_torn(struct spy *s, struct py_thread *th, struct err *e)
{
	s->first_read.n = 0;
	for (size_t k = 0; k < th->frames.n; k++) {
		vec_push(&s->first_read, th->frames.v[k].addr);
		vec_push(&s->first_read, th->frames.v[k].code);
	}
	bool truncated = th->truncated;
	int rc = py_read_frames(s->py, th, s->o.linemode, e);
	if (rc)
		return rc;
	bool same = th->frames.n * 2 == s->first_read.n && th->truncated == truncated;
	for (size_t k = 0; same && k < th->frames.n; k++)
		same = th->frames.v[k].addr == s->first_read.v[2 * k] && th->frames.v[k].code == s->first_read.v[2 * k + 1];
	if (!same)
		return err_set(e, E_READ, "The stack of thread %#lx changed while it was read (torn read)",
			       (unsigned long)th->thread_id);
	/* Two reads can agree on the same cut chain: from 3.11 every chain ends at the entry frame
	 * of the outermost eval call, so one that ends elsewhere was cut while it was read. */
	if (!py_chain_complete(s->py, th))
		return err_set(e, E_READ, "The stack of thread %#lx was cut while it was read (torn read)",
			       (unsigned long)th->thread_id);
	return 0;
}

static enum gil_state gil_state_of(bool active, bool owns_gil, bool waiting)
{
	if (owns_gil)
		return GIL_HELD;
	if (waiting)
		return GIL_WAITING;
	return active ? GIL_RELEASED : GIL_IDLE;
}

enum futex_wait { FUTEX_NONE, FUTEX_GIL, FUTEX_OTHER };

/* x86_64 system calls that only wait (never work on the caller's behalf): poll, select, pause,
 * nanosleep, wait4, waitid, epoll_wait, clock_nanosleep, pselect6, ppoll, epoll_pwait,
 * epoll_pwait2. */
static bool sleep_syscall(long nr)
{
	static const long nrs[] = { 7, 23, 34, 35, 61, 247, 232, 230, 270, 271, 281, 441 };
	for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++)
		if (nr == nrs[i])
			return true;
	return false;
}

/* Is tid asleep in futex(), on an address in [lo, hi) (the GIL) or elsewhere (a lock of its
 * own)? From its syscall file as read_running read it this tick, or afresh (`fresh`, or not
 * read then). A futex wait we interrupted by pausing the thread goes on as restart_syscall, its
 * arguments intact. */
static enum futex_wait futex_wait_of(struct spy *s, pid_t tid, uint64_t lo, uint64_t hi, bool fresh, bool *in_syscall)
{
	if (in_syscall)
		*in_syscall = false;
	long nr;
	uint64_t uaddr, run;
	struct sys_state sys;
	if (!fresh && hmap_get(&s->running, (uint64_t)tid, &run) && (run & RUN_SYSCALL)) {
		nr = (long)(run >> 8) - 2;
		if (!hmap_get(&s->sys_arg, (uint64_t)tid, &uaddr))
			uaddr = 0;
	} else if (read_syscall_file(s, tid, &sys) != 0) {
		return FUTEX_NONE;
	} else {
		nr = sys.nr;
		uaddr = sys.arg0;
	}
	if (in_syscall)
		*in_syscall = nr >= 0;
	/* Parked in a sleep of its own (time.sleep is select before 3.11, clock_nanosleep after):
	 * a thread our last pause woke is runnable for a moment on its way back in. */
	if (sleep_syscall(nr))
		return FUTEX_OTHER;
	if (nr != SYS_FUTEX_X86_64 && nr != SYS_RESTART_SYSCALL_X86_64)
		return FUTEX_NONE;
	return uaddr >= lo && uaddr < hi ? FUTEX_GIL : FUTEX_OTHER;
}

/* What the first pass of a tick found out about one thread, before reading its frames. */
struct thread_plan {
	bool skip;             /* not sampled this tick */
	int running;           /* from /proc (1 running, 0 not) */
	bool check_futex;      /* not the GIL holder: what it sleeps on tells waiting from idle */
	bool asleep;           /* asleep in a system call when /proc was read */
	enum futex_wait fw;
	bool quiet;            /* its frames were read without a pause, and that read stands */
	void *snapshot;        /* quiet, --native: its registers (pc, sp) and stack, read asleep */
};

/*
 * Asleep and not holding the GIL, a thread's Python frames stand still for as long as it does
 * not take the GIL: Python-only, such threads are read without a pause, all together. The bytes
 * their last copies found - thread states, data stack chunks or frame objects, code objects -
 * are copied for all of them in one vectored read (target_hold), each chain is then walked from
 * that copy (a part of a chain that moved is read on its own), and the reads stand when two GIL
 * marks around the batch show that no thread took the GIL meanwhile (the count of hand-overs did
 * not move; the last holder itself is not in the batch). Should the GIL change hands, each of
 * them is paused and read again, as any other thread. Measured on the 100-thread workload (19
 * GIL waiters a tick): the GIL waiters were paused every tick at first - each woken from its
 * futex wait and stopped; read one by one without a pause, they still cost ~5 reads each (~100
 * process_vm_readv a tick); together, 3.
 */
static void read_quiet(struct spy *s, struct py_thread *threads, struct thread_plan *plan, size_t n)
{
	size_t nq = 0;
	for (size_t i = 0; i < n; i++)
		nq += plan[i].quiet;
	if (!nq)
		return;
	s->quiet_tries += nq;
	struct py_gil_mark before, after;
	int mr = py_gil_mark(s->py, &before);
	if (mr == E_NOTPY)
		s->gil_marks = -1;   /* this version does not say (2.7, 3.6) */
	s->ranges.n = 0;
	for (size_t i = 0; i < n; i++) {
		if (plan[i].quiet && (mr || threads[i].tstate == before.last_holder))
			plan[i].quiet = false;
		if (!plan[i].quiet)
			continue;
		py_next_reads(s->py, &threads[i], &s->ranges);
		struct target_iov stack;
		const struct sched_memo *m = s->o.native ? asleep_memo(s, threads[i].os_tid) : NULL;
		if (m && native_asleep_range(s, threads[i].os_tid, m->sys.sp, &stack))
			vec_push(&s->ranges, stack);
	}
	if (mr)
		return;
	target_hold(&s->t, s->ranges.v, s->ranges.n);
	bool ok_any = false;
	for (size_t i = 0; i < n; i++) {
		struct err fe = { 0 };
		if (plan[i].quiet && py_read_frames(s->py, &threads[i], s->o.linemode, &fe) != 0)
			plan[i].quiet = false;   /* paused and read again below */
		if (plan[i].quiet && s->o.native) {
			const struct sched_memo *m = asleep_memo(s, threads[i].os_tid);
			if (m)
				native_capture_asleep(s, i, threads[i].os_tid, m->sys.sp, m->sys.pc, &plan[i].snapshot);
			plan[i].quiet = plan[i].snapshot != NULL;
		}
		ok_any |= plan[i].quiet;
	}
	target_unhold(&s->t);
	bool stands = ok_any && py_gil_mark(s->py, &after) == 0 && after.switches == before.switches;
	for (size_t i = 0; i < n; i++) {
		if (plan[i].quiet && !stands)
			plan[i].quiet = false;
		/* --native: its stack and registers hold only if it did not run since /proc said
		 * where it sleeps - its schedstat did not move */
		if (plan[i].quiet && plan[i].snapshot) {
			const struct sched_memo *m = asleep_memo(s, threads[i].os_tid);
			plan[i].quiet = m && slept_on(s, threads[i].os_tid, m);
		}
		if (!plan[i].quiet && plan[i].snapshot) {
			native_snapshot_free(plan[i].snapshot);
			plan[i].snapshot = NULL;
		}
		s->unpaused_reads += plan[i].quiet;
	}
}

/* The first pass over the threads: which to sample, and what /proc says of them. */
static void plan_threads(struct spy *s, struct py_thread *threads, size_t n, struct thread_plan *plan)
{
	uint64_t gil_lo = 0, gil_hi = 0;   /* read when a sleeping thread needs it */
	bool gil_range_read = false;
	for (size_t i = 0; i < n; i++) {
		struct py_thread *th = &threads[i];
		struct thread_plan *pl = &plan[i];
		*pl = (struct thread_plan){ .skip = true, .fw = FUTEX_NONE };
		if (s->o.gil_only && !th->holds_gil)
			continue;
		if (th->unborn)
			continue;   /* its frames may be read once it runs, under another's id */
		uint64_t run = 1;
		if (th->os_tid && !hmap_get(&s->running, (uint64_t)th->os_tid, &run)) {
			/* no such OS thread: it exited meanwhile - or (mapped by its id) it ended
			 * and this is a new thread on its stack */
			kwalk_forget(s->kwalk, th->os_tid);
			hmap_del(&s->slept_on, (uint64_t)th->os_tid);
			py_forget_os_tid(s->py, th);
			continue;
		}
		pl->running = (int)(run & 1);
		pl->check_futex = !th->holds_gil && th->os_tid;
		if (pl->check_futex && !gil_range_read) {
			gil_range_read = true;
			py_gil_sync_range(s->py, &gil_lo, &gil_hi);
			s->gil_lo = gil_lo;
			s->gil_hi = gil_hi ? gil_hi : gil_lo;
		}
		/* Paused, the syscall it was in (or woken from, not yet back in user space) shows; not
		 * paused, only a sleeping thread's does (a runnable one reads "running"). A sleeping
		 * thread's is read before pausing: still asleep in a system call and not waiting for
		 * the GIL, it is dropped without --idle (or --gil), so it is left alone (a pause would
		 * only wake it). One that woke meanwhile is paused and read again, as always. */
		if (pl->check_futex && pl->running == 0)
			pl->fw = futex_wait_of(s, th->os_tid, s->gil_lo, s->gil_hi, false, &pl->asleep);
		if (pl->asleep && pl->fw != FUTEX_GIL && !s->o.idle && !s->o.gil_only)
			continue;
		pl->skip = false;
		pl->quiet = !s->o.nonblocking && !th->holds_gil && s->gil_marks >= 0 &&
			    (s->o.native ? pl->asleep && asleep_memo(s, th->os_tid) : pl->check_futex);
	}
}

enum { SAMPLE_DONE = 0, SAMPLE_SKIP = 1, SAMPLE_RETRY = 2 };

/* --bpf: how long a read waits for the tick to catch a thread that was running (10 us of its
 * CPU time, then mixspy's next look at the ring); past it, it is paused instead. */
#define KWALK_WAIT_US 2000.0

/*
 * --bpf: th's frame chain copied in a tick of its own clock (kwalk.h) instead of in a pause:
 * everything its walk can need, chased from the thread state (py_tick_reads), copied in one go
 * and held (target_hold_copied); the chain is then walked from that copy as py_copy_frames
 * walks any. A walk that needed anything more - a stack past what was copied - read it from the
 * running thread, so it does not stand: E_AGAIN, and the thread is paused and read as ever.
 */
static int read_in_tick(struct spy *s, struct py_thread *th, double copy[2], void **native_snapshot,
			struct err *e)
{
	s->chases.n = 0;
	py_tick_reads(s->py, th, &s->chases);
	/* --native: the registers come with the copy, and the stack above sp */
	uint64_t stack_end = 0;
	size_t stack = s->o.native ? native_tick_len(s, th->os_tid, &stack_end) : 0;
	if (stack) {
		struct target_chase c = { 0, stack, KWALK_BASE_SP, 0, stack_end };
		vec_push(&s->chases, c);
	}
	const struct target_iov *got;
	size_t ngot;
	uint64_t regs[KWALK_NREGS];
	int rc = kwalk_copy(s->kwalk, th->os_tid, s->chases.v, s->chases.n, KWALK_WAIT_US, &got, &ngot, copy, regs, e);
	if (rc)
		return rc;
	target_hold_copied(&s->t, got, ngot, true);
	uint64_t reads = s->t.reads;
	rc = py_copy_frames(s->py, th, NULL, NULL, e);
	if (!rc && stack)
		native_capture_regs(s, th->os_tid, regs, KWALK_NREGS, false, native_snapshot);
	bool live = s->t.reads != reads;
	if (!rc && !live)
		th->holds_gil = py_thread_holds_gil(s->py, th);   /* from the copy, where it holds the words */
	target_unhold(&s->t);
	if (!rc && (live || (stack && !*native_snapshot))) {
		s->kwalk_past++;
		rc = err_set(e, E_AGAIN, "Thread %d's chain went past its copy in the tick", (int)th->os_tid);
	}
	if (rc && *native_snapshot) {
		native_snapshot_free(*native_snapshot);
		*native_snapshot = NULL;
	}
	return rc;
}

/*
 * Python-only, a thread off its CPU stands still until it is put back: its frames are read
 * where they stand, without a pause, and the read stands if its switch watch's head did not
 * move meanwhile (else it is paused and read again). A pause would wait for it to get a CPU
 * (a millisecond or more on a busy machine), stop it at once and leave it to wait for one
 * again. Which threads (with *fw set to what a pause would have found; its running state is
 * the plan's):
 *  - the GIL's holder, preempted (taken off its CPU while runnable): while it waits for a
 *    CPU, so does every thread that waits for the GIL;
 *  - a thread that went to sleep and has not run since the read of its syscall file this tick
 *    (its head is the one read then): asleep on what that read said, or woken and not yet run
 *    (read_quiet's batch did not stand for it: the GIL changed hands meanwhile);
 *  - a thread runnable this tick whose last switch was to sleep, and the last sleep of which
 *    we know was on the GIL: a waiter woken (its timed wait, or the GIL released) that waits
 *    for a CPU to take the GIL. Paused, its stop showed the GIL's futex every time (153 of 153
 *    on the 100-thread workload); those pauses were half of the time it was paused, p50
 *    117 us, p90 1 ms, and while such a waiter stands, the holder that dropped the GIL for it
 *    waits too. One that slept on anything else is paused, as one preempted without the GIL
 *    (stopped, it shows the GIL's futex or no system call at all, by the instant).
 */
static bool read_off_cpu(struct spy *s, const struct py_thread *th, const struct thread_plan *pl, uint64_t *head,
			 enum futex_wait *fw, uint64_t *regs)
{
	bool got_regs = false;
	enum target_cpu where = target_off_cpu(&s->t, th->os_tid, head, s->o.native ? regs : NULL, &got_regs);
	if (s->o.native && !got_regs)
		return false;
	if (th->holds_gil)
		return where == CPU_PREEMPTED || where == CPU_SLEPT;
	if (where != CPU_SLEPT || !pl->check_futex)
		return false;
	uint64_t addr;
	const struct sched_memo *m = memo_of(s, s->memo_cur, th->os_tid);
	if (m && m->watched && m->head == *head && !(m->run & 1))
		return true;   /* asleep as planned: the plan's *fw stands */
	if (!hmap_get(&s->slept_on, (uint64_t)th->os_tid, &addr) || addr < s->gil_lo || addr >= s->gil_hi)
		return false;
	*fw = FUTEX_GIL;
	return true;
}

/* Just before a running th is paused: read what the pause will read (its last chain's ranges,
 * and --native the stack where it stood last time), so that the pause finds them warm
 * (target_prime). On the deep workload (Debian's 3.11, 100 Hz, one process, mixspy runs with
 * and without it alternated) the median pause went from 60.3 to 54.1 us Python-only, the
 * --native pause's first read from 13.8 to 8.5 us; primed on every other tick of one run,
 * --native pauses were 2 to 6.5 us shorter in 3 of 4 runs (mixspy's reads of the thread list
 * before it warm part of the same path). A thread not running is not primed: its pause is
 * spent waking it. */
static void prime_pause(struct spy *s, const struct py_thread *th, const struct target_iov *stack)
{
	if (s->no_prime)
		return;
	s->ranges.n = 0;
	if (stack)
		vec_push(&s->ranges, *stack);
	py_next_reads(s->py, th, &s->ranges);
	target_prime(&s->t, s->ranges.v, s->ranges.n);
}

/* One thread's sample of this tick, as planned: read asleep (quiet, when the plan read it so),
 * off its CPU, in the tick (--bpf), paused, or unpaused (--nonblocking). SAMPLE_SKIP: no sample
 * of it this tick; SAMPLE_RETRY: its read asleep cannot be walked or found it awake, or its read
 * off its CPU did not stand: ask again, with the next attempt (1 after a read asleep: off its
 * CPU where it is, else paused; otherwise paused); a negative code: the process is gone. */
static int sample_thread(struct spy *s, struct py_thread *th, const struct thread_plan *pl, int attempt, double t,
			 struct err *e)
{
	int rc;
	bool again = attempt > 0;
	bool quiet = pl->quiet && !again;
	int running = pl->running;
	enum futex_wait fw = pl->fw;
	bool paused = false;
	struct err fe = { 0 };
	double pause_t0 = 0;   /* MIXSPY_STATS: just before the interrupt */
	uint64_t head0 = 0, regs[TARGET_NREGS];
	bool off_cpu = !quiet && (attempt == 0 || (attempt == 1 && pl->quiet)) && !s->o.nonblocking &&
		       (!s->o.native || s->t.watch_regs) && th->os_tid && read_off_cpu(s, th, pl, &head0, &fw, regs);
	/* --bpf: a running thread's frames copied where a tick of its own clock catches it, in
	 * the kernel (kwalk.h); one the tick misses (it went to sleep, or waits for a CPU) is
	 * paused as ever. */
	bool kernel = false;
	double copy[2] = { 0, 0 };   /* --bpf: when the copy in the tick began, and its microseconds */
	void *tick_snapshot = NULL;   /* --bpf --native: the registers and stack it copied */
	if (!quiet && !off_cpu && !again && s->kwalk && th->os_tid && running == 1) {
		int kr_rc = read_in_tick(s, th, copy, &tick_snapshot, &fe);
		if (kr_rc == E_NOPROC)
			return SAMPLE_SKIP;   /* gone between listing and arming */
		kernel = kr_rc == 0;
	}
	/* --native: where the stack top is guessed to be, for the pause below to read with the
	 * frame chain (and to prime) */
	struct target_iov stack;
	bool guess = false;
	if (!quiet && !off_cpu && !kernel && !s->o.nonblocking && th->os_tid) {
		guess = s->o.native && native_stack_guess(s, th->os_tid, &stack);
		if (running == 1)
			prime_pause(s, th, guess ? &stack : NULL);
		if (s->stats)
			pause_t0 = now_monotonic();
		if (target_pause_thread(&s->t, th->os_tid, NULL) == 0)
			paused = true;
		else
			return SAMPLE_SKIP;   /* gone between listing and pausing */
	}
	if (quiet && pl->check_futex && !pl->asleep) {
		/* Runnable when /proc was read, read without a pause since: where it is now tells a
		 * GIL waiter passing through (asleep on the GIL again) from a thread at work without
		 * the GIL, which is paused and read again as any other - paused, the futex a waiter
		 * just woken from still shows. */
		bool now_asleep = false;
		fw = futex_wait_of(s, th->os_tid, s->gil_lo, s->gil_hi, true, &now_asleep);
		if (!now_asleep)
			return SAMPLE_RETRY;
	} else if (pl->check_futex && paused) {
		/* read again even for a thread asleep before: it may have woken since, and the state
		 * must be the one of the stack copied now (stopped outside any system call, it was
		 * running) */
		bool in_syscall = true;
		fw = futex_wait_of(s, th->os_tid, s->gil_lo, s->gil_hi, true, &in_syscall);
		if (!in_syscall)
			running = 1;
	}
	bool futex_waiting = fw == FUTEX_GIL;
	/* Runnable only because our last pause woke it from its lock: it is parked. */
	if ((paused || quiet) && fw == FUTEX_OTHER)
		running = 0;
	if (quiet && futex_waiting)
		running = 0;
	void *native_snapshot = quiet ? pl->snapshot : kernel ? tick_snapshot : NULL;
	if (quiet) {
		rc = 0;
	} else if (kernel) {
		s->kwalk_reads++;
		if (s->stats) {
			vec_push(&s->pause_us, (float)copy[1]);
			if (s->pause_log)
				vec_push(&s->pause_at, copy[0]);
		}
		rc = py_decode_frames(s->py, th, s->o.linemode, &fe);
	} else if (off_cpu) {
		/* --native: its stack from the sp it left with, which it has not been back to */
		if (s->o.native)
			native_capture_regs(s, th->os_tid, regs, TARGET_NREGS, true, &native_snapshot);
		rc = s->o.native && !native_snapshot ? E_AGAIN : py_copy_frames(s->py, th, NULL, NULL, &fe);
		th->holds_gil = py_thread_holds_gil(s->py, th);
		uint64_t head1;
		if (rc == E_AGAIN || !(target_switches(&s->t, th->os_tid, &head1) && head1 == head0)) {
			native_snapshot_free(native_snapshot);
			return SAMPLE_RETRY;   /* put back on a CPU meanwhile */
		}
		s->off_cpu_reads++;
		s->off_cpu_waiters += pl->check_futex;
		if (!rc)
			rc = py_decode_frames(s->py, th, s->o.linemode, &fe);
	} else if (paused) {
		/* Paused: copy only what changes (the frame chain, who holds the GIL now, the
		 * native registers and stack top); the rest is worked out once it runs again. */
		/* --native: the stack top is read ahead (where it was last time) with the frame
		 * chain's first read; the registers, read after it, say whether that was it. */
		/* 3.11+: the chain is walked through that read once the thread runs again (should
		 * the walk need more, it is paused and read again, walked while it stands). */
		bool guess_ok = false;
		rc = again ? py_copy_frames(s->py, th, guess ? &stack : NULL, &guess_ok, &fe)
			   : py_copy_frames_begin(s->py, th, guess ? &stack : NULL, &guess_ok, &fe);
		th->holds_gil = py_thread_holds_gil(s->py, th);
		if (!rc && s->o.native)
			native_capture(s, th->os_tid, guess_ok, &native_snapshot);
		target_resume_thread(&s->t, th->os_tid);
		if (s->stats) {
			vec_push(&s->pause_us, (float)((now_monotonic() - pause_t0) * 1e6));
			if (s->pause_log)
				vec_push(&s->pause_at, pause_t0);
		}
		if (!rc && !again)
			rc = py_copy_frames_end(s->py, th, &fe);
		if (rc == E_AGAIN) {
			native_snapshot_free(native_snapshot);
			return SAMPLE_RETRY;
		}
		if (!rc)
			rc = py_decode_frames(s->py, th, s->o.linemode, &fe);
	} else {
		rc = py_read_frames(s->py, th, s->o.linemode, &fe);
		if (!rc)
			rc = check_not_torn(s, th, &fe);
	}
	if (rc) {
		s->errors++;
		snprintf(s->last_error, sizeof s->last_error, "%s", fe.msg);
		native_snapshot_free(native_snapshot);
		if (rc == E_NOPROC)
			return err_set(e, rc, "%s", fe.msg);
		return SAMPLE_SKIP;
	}
	bool active = running == 1 && !idle_by_frame(th);
	/* --gil keeps the holder only: judged again now that holds_gil was re-read paused. */
	if (s->o.gil_only && !th->holds_gil) {
		native_snapshot_free(native_snapshot);
		return SAMPLE_SKIP;
	}
	if (!s->o.idle && !active && !futex_waiting && !(s->o.gil_only && th->holds_gil)) {
		native_snapshot_free(native_snapshot);
		return SAMPLE_SKIP;
	}
	size_t start = s->frames.n;
	bool waiting = futex_waiting;
	if (native_snapshot) {
		bool on_stack = false;
		bool merged = native_merge(s, th, native_snapshot, &on_stack);
		waiting |= on_stack;
		native_snapshot_free(native_snapshot);
		if (!merged) {
			/* read asleep or in the tick, but its walk needs more: paused and read again */
			if (kernel) {
				s->kwalk_reads--;
				s->kwalk_past++;
			}
			return SAMPLE_RETRY;
		}
	} else {
		for (size_t k = 0; k < th->frames.n; k++) {
			const struct py_frame *pf = &th->frames.v[k];
			struct frame f = { .kind = FRAME_PYTHON, .name = pf->name, .file = pf->file,
					   .short_file = pf->short_file, .line = pf->line };
			vec_push(&s->frames, f);
		}
	}
	/* A thread with no frame at all (starting up, or finalizing as the process exits) has
	 * nothing to show: every writer would drop it, so it is not a sample. */
	if (s->frames.n == start)
		return SAMPLE_SKIP;
	struct sample smp = {
		.pid = s->t.pid, .thread_id = th->thread_id, .os_tid = th->os_tid, .thread_name = th->name,
		.process_cmdline = s->t.cmdline, .active = active, .owns_gil = th->holds_gil,
		.gil = gil_state_of(active, th->holds_gil, waiting), .time = t,
		.nframes = s->frames.n - start,
	};
	vec_push(&s->samples, smp);
	vec_push(&s->frame_starts, start);
	vec_push(&s->sample_threads, th);
	return SAMPLE_DONE;
}

int spy_sample(struct spy *s, double t, struct sample **out, size_t *n, struct err *e)
{
	struct py_thread *threads;
	size_t nthreads;
	s->samples.n = 0;
	s->frames.n = 0;
	s->frame_starts.n = 0;
	s->sample_threads.n = 0;

	native_check_maps(s, t);
	int rc = py_read_threads(s->py, &threads, &nthreads, e);
	if (rc)
		return rc;
	/* Activity first, for every thread at once: pausing a thread (even to map its tid) wakes
	 * it, and a paused thread always reads as sleeping. */
	read_running(s, threads, nthreads);
	translate_ns_tids(s, threads, nthreads);
	/* Versions before 3.11 don't store the OS tid; pausing needs it (nonblocking mode goes
	 * without, as py-spy does). */
	if (!s->o.nonblocking)
		py_map_os_tids(s->py, threads, nthreads, NULL);
	if (s->o.thread_names)
		py_read_thread_names(s->py, threads, nthreads);
	vec_reserve(&s->plan, nthreads);
	struct thread_plan *plan = s->plan.v;
	plan_threads(s, threads, nthreads, plan);
	read_quiet(s, threads, plan, nthreads);

	for (size_t i = 0; i < nthreads; i++) {
		if (plan[i].skip)
			continue;
		int r = sample_thread(s, &threads[i], &plan[i], 0, t, e);
		for (int attempt = 1; r == SAMPLE_RETRY && attempt < 3; attempt++)
			r = sample_thread(s, &threads[i], &plan[i], attempt, t, e);
		if (r < 0)
			return r;
	}
	/* Frames were appended to one growing array: point the samples at them now that it no
	 * longer moves. */
	for (size_t i = 0; i < s->samples.n; i++)
		s->samples.v[i].frames = s->frames.v + s->frame_starts.v[i];
	if (s->stats && s->samples.n) {
		s->last_sample_mono = now_monotonic();
		if (!s->first_sample_mono) {
			s->first_sample_mono = s->last_sample_mono;
			s->cpu_at_first = cpu_seconds();
			s->reads_at_first = s->t.reads;
		}
		s->ticks_since_first++;
	}
	*out = s->samples.v;
	*n = s->samples.n;
	return 0;
}
