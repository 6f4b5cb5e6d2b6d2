/*
 * sampler.c - the sampling loop (see sampler.h).
 *
 * Ticks follow an absolute schedule with exponential gaps of mean 1/rate. When sampling falls
 * more than a second behind, that is reported (once per second), never hidden. With
 * --subprocesses, descendants are looked for every 100 ms and each Python one gets a spy.
 *
 * MIXSPY_DUTY=MS, for bench/ only: sampling in every other MS-millisecond phase of the monotonic
 * clock (those where floor(t / MS) is even), so the target's rate of work with and without a
 * profiler can be compared a tenth of a second apart in one run (bench.py's interleaved
 * slowdowns: this machine's own speed drifts by several percent over seconds). A tick that falls
 * in a phase off is moved by one phase, into the next phase on, at the same offset: the ticks
 * stay a Poisson process of --rate inside the phases on. In the phases off mixspy stays
 * attached: the threads stay seized, which stops nothing (a seized thread stops only when
 * interrupted), and the switch watches stay open (a note costs a context switch some hundreds of
 * ns); dropping them would put a perf_event_open per thread into every phase on.
 */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t sampler_stop_signal;
volatile sig_atomic_t sampler_child_signal;

static void on_signal(int sig)
{
	sampler_stop_signal = sig;
}

/* SIGCHLD: a seized thread stopped (for a signal to forward) or a thread or child exited. */
static void on_child(int sig)
{
	(void)sig;
	sampler_child_signal = 1;
}

void sampler_service(struct sampler *sm)
{
	sampler_child_signal = 0;
	for (size_t i = 0; i < sm->procs.n; i++)
		if (sm->procs.v[i]->open)
			target_service(&sm->procs.v[i]->spy.t);
}

static struct spy_opts opts_of(const struct config *c)
{
	return (struct spy_opts){
		.native = c->native, .nonblocking = c->nonblocking, .bpf = c->bpf, .idle = c->idle,
		.gil_only = c->gil, .full_filenames = c->full_filenames,
		.linemode = c->nolineno ? PY_LINE_NONE : c->function ? PY_LINE_FUNCTION : PY_LINE_CURRENT,
		.thread_names = true, .keep_seized = true,
	};
}

size_t sampler_nprocs(const struct sampler *sm)
{
	size_t n = 0;
	for (size_t i = 0; i < sm->procs.n; i++)
		n += sm->procs.v[i]->open && !sm->procs.v[i]->dead;
	return n;
}

struct spy *sampler_find(const struct sampler *sm, pid_t pid)
{
	for (size_t i = 0; i < sm->procs.n; i++)
		if (sm->procs.v[i]->open && sm->procs.v[i]->spy.t.pid == pid)
			return &sm->procs.v[i]->spy;
	return NULL;
}

size_t sampler_lineage(const struct sampler *sm, pid_t pid, struct spy **out, size_t max)
{
	struct spy *chain[64];
	size_t n = 0;
	for (int depth = 0; depth < 64 && pid > 0; depth++) {
		struct spy *s = sampler_find(sm, pid);
		if (s)
			chain[n++] = s;
		if (pid == sm->root_pid)
			break;
		pid = target_ppid(pid);
	}
	size_t k = 0;
	for (size_t i = n; i-- > 0 && k < max;)
		out[k++] = chain[i];
	return k;
}

static struct sampler_proc *add_proc(struct sampler *sm)
{
	struct sampler_proc *p = xcalloc(1, sizeof(*p));
	vec_push(&sm->procs, p);
	return p;
}

/* Descendants of the root that we have not tried yet: read every /proc/N/stat's ppid. */
static void find_children(struct sampler *sm)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct hmap parent;
	hmap_init(&parent);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid_t pid = atoi(de->d_name);
		pid_t pp = target_ppid(pid);
		if (pp > 0)
			hmap_put(&parent, (uint64_t)pid, (uint64_t)pp);
	}
	closedir(d);
	size_t it = 0;
	uint64_t pid, pp;
	while (hmap_next(&parent, &it, &pid, &pp)) {
		if (hmap_get(&sm->tried, pid, NULL))
			continue;
		/* Is pid a descendant of the root? */
		uint64_t cur = pid, up;
		bool desc = false;
		for (int depth = 0; depth < 64 && hmap_get(&parent, cur, &up); depth++) {
			if ((pid_t)up == sm->root_pid) {
				desc = true;
				break;
			}
			cur = up;
		}
		if (!desc)
			continue;
		hmap_put(&sm->tried, pid, 1);
		struct spy_opts o = opts_of(sm->c);
		struct sampler_proc *p = add_proc(sm);
		struct err e = { 0 };
		if (spy_open(&p->spy, (pid_t)pid, NULL, &o, sm->strs, 0.2, &e) == 0) {
			p->open = true;
			p->ppid = (pid_t)pp;
		} else {
			p->dead = true;   /* not Python (or gone): remember, don't retry */
		}
	}
	hmap_free(&parent);
}

static double exp_gap(double rate, uint64_t *rng)
{
	/* xorshift64*: no global RNG state */
	*rng ^= *rng >> 12;
	*rng ^= *rng << 25;
	*rng ^= *rng >> 27;
	uint64_t r = *rng * 0x2545F4914F6CDD1DULL;
	double u = ((double)(r >> 11) + 0.5) / 9007199254740992.0;
	return -log(u) / rate;
}

/* Sleep until t (CLOCK_MONOTONIC); a SIGCHLD wakes it to forward signals to seized threads.
 * Every pause of the tick just sampled left a SIGCHLD pending (blocked meanwhile): taken here,
 * it would end the sleep at once - a signal delivery and a second sleep each tick. So it is
 * taken off first, and what it may have reported besides our stops is serviced (one peek). */
static void sleep_until(struct sampler *sm, double t)
{
	sigset_t child;
	sigemptyset(&child);
	sigaddset(&child, SIGCHLD);
	struct timespec zero = { 0, 0 };
	if (sigtimedwait(&child, NULL, &zero) == SIGCHLD)
		sampler_service(sm);
	for (;;) {
		double now = now_monotonic();
		if (now >= t || sleep_signalled(NULL, t - now) == 0 || sampler_stop_signal)
			break;
		if (sampler_child_signal)
			sampler_service(sm);
	}
}

/* MIXSPY_DUTY in seconds (see the top of this file), 0 without it. */
static double duty_phase(void)
{
	const char *v = getenv("MIXSPY_DUTY");
	char *end;
	double ms = v ? strtod(v, &end) : 0;
	return v && end != v && !*end && ms >= 1 && ms <= 60000 ? ms / 1e3 : 0;
}

static bool duty_on(double phase, double t)
{
	return ((int64_t)floor(t / phase) & 1) == 0;
}

/* Count a process's pending errors once they are old enough, or at the end (`final`), if it is
 * still alive (see struct sampler_proc). */
static void settle_errors(struct sampler *sm, struct sampler_proc *p, double now, bool final)
{
	if (!p->pending_errors || (!final && now - p->pending_since < 0.5))
		return;
	if (!p->dead && target_alive(&p->spy.t)) {
		sm->errors += p->pending_errors;
		memcpy(sm->last_error, p->pending_msg, sizeof sm->last_error);
	}
	p->pending_errors = 0;
}

static void reap_root(struct sampler *sm, struct target *t)
{
	if (!sm->launched || sm->root_exited)
		return;
	/* Only a reaped program has ended for us: a zombie main thread whose exit status is not
	 * collected yet (its seized threads are reaped first, then it reports) is not over. */
	target_alive(t);
	if (t->reaped) {
		sm->root_exited = true;
		sm->exit_status = t->exit_status;
	}
}

int sampler_run(const struct config *c, struct interner *strs, const struct sampler_hooks *h, int *status,
		struct err *e)
{
	struct sampler sm = { .c = c, .strs = strs };
	hmap_init(&sm.tried);
	*status = 0;
	sampler_stop_signal = 0;
	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Sleeps end on SIGCHLD (they are never restarted); other system calls restart. */
	struct sigaction sc = { 0 };
	sc.sa_handler = on_child;
	sc.sa_flags = SA_RESTART;
	sigemptyset(&sc.sa_mask);
	sigaction(SIGCHLD, &sc, NULL);
	sigset_t child, mask_before;
	sigemptyset(&child);
	sigaddset(&child, SIGCHLD);
	sigprocmask(SIG_BLOCK, NULL, &mask_before);

	struct spy_opts o = opts_of(c);
	struct sampler_proc *root = add_proc(&sm);
	int rc;
	if (c->program) {
		struct target t;
		rc = target_launch(&t, c->program, e);
		if (rc)
			goto out;
		sm.launched = true;
		sm.root_pid = t.pid;
		rc = spy_open(&root->spy, t.pid, &t, &o, strs, c->subprocesses ? 1.0 : 10.0, e);
		if (rc && !(c->subprocesses && (rc == E_NOTPY || rc == E_NOPROC))) {
			/* Not Python: let the program finish (never kill what we launched), pass on its status. */
			int st;
			if (!t.reaped && waitpid(t.pid, &st, 0) == t.pid)
				*status = target_exit_code(st);
			target_close(&t);
			goto out;
		}
		if (rc) {
			root->spy.t = t;   /* keep the target to reap it; no interpreter in it */
			root->dead = true;
			rc = 0;
		} else {
			root->open = true;
		}
	} else {
		sm.root_pid = c->pid;
		rc = spy_open(&root->spy, c->pid, NULL, &o, strs, 2.0, e);
		if (rc && c->subprocesses && rc == E_NOTPY) {
			root->dead = true;
			rc = 0;
		}
		if (rc)
			goto out;
		root->open = !root->dead;
	}
	hmap_put(&sm.tried, (uint64_t)sm.root_pid, 1);
	if (c->subprocesses) {
		find_children(&sm);
		if (!sampler_nprocs(&sm) && !sm.launched) {
			rc = err_set(e, E_NOTPY, "No python processes found in process %d or any of its subprocesses", c->pid);
			goto out;
		}
	}

	/* SIGCHLD is let through only while the sampler sleeps (sleep_signalled): every pause of a
	 * thread sends us one, and taking it mid-pause - the inter-processor interrupt that delivers
	 * it, the handler - kept the target stopped ~20 us longer per sample (measured from the
	 * target's side on this machine class). A stop reported meanwhile waits for the next sleep
	 * or tick. (Blocked only now: a launched program must not inherit the mask.) */
	sigprocmask(SIG_BLOCK, &child, NULL);
	uint64_t rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(now_wall() * 1e6);
	if (!rng)
		rng = 1;
	sm.start = now_monotonic();
	sm.start_wall = now_wall();
	double next = sm.start, last_child_scan = sm.start, window_start = sm.start, window_lost = 0, behind = 0;
	/* --duration counts from the end of the first tick: that tick is warm-up (with --native it
	 * loads the debug info of the modules on the stacks, ~0.1 s of CPU, and on a machine whose
	 * CPUs are all taken, seconds of waiting for one), and a record that spent its whole
	 * duration there came back with one tick. py-spy counts the duration in samples, which
	 * comes to the same. */
	double sampling_from = 0;
	const double duty = duty_phase();
	for (;;) {
		if (sampler_stop_signal) {
			sm.reason = STOP_SIGNAL;
			break;
		}
		double now = now_monotonic();
		double elapsed = now - sm.start;
		if (c->duration > 0 && sampling_from && now - sampling_from >= c->duration) {
			sm.reason = STOP_DURATION;
			break;
		}
		sm.ticks++;
		sampler_service(&sm);
		for (size_t i = 0; i < sm.procs.n; i++) {
			struct sampler_proc *p = sm.procs.v[i];
			if (!p->open || p->dead)
				continue;
			struct sample *samples;
			size_t n;
			struct err se = { 0 };
			uint64_t errs_before = p->spy.errors, mism_before = p->spy.merge_mismatches;
			int r = spy_sample(&p->spy, elapsed, &samples, &n, &se);
			if (r && (r == E_NOPROC || !target_alive(&p->spy.t))) {
				p->dead = true;
				p->pending_errors = 0;
				continue;
			}
			settle_errors(&sm, p, now, false);
			if ((r || p->spy.errors != errs_before) && !p->pending_errors)
				p->pending_since = now;
			if (r) {
				p->pending_errors++;
				snprintf(p->pending_msg, sizeof p->pending_msg, "%s", se.msg);
				continue;
			}
			if (p->spy.errors != errs_before) {
				p->pending_errors += p->spy.errors - errs_before;
				snprintf(p->pending_msg, sizeof p->pending_msg, "%s", p->spy.last_error);
			}
			sm.samples += n;
			sm.merge_mismatches += p->spy.merge_mismatches - mism_before;
			if (h->on_samples && n)
				h->on_samples(h->ctx, &sm, &p->spy, samples, n);
		}
		double warm_up = 0;
		if (!sampling_from) {
			sampling_from = now_monotonic();
			warm_up = sampling_from - now;
		}
		if (sm.launched)
			reap_root(&sm, &root->spy.t);
		if (h->on_tick && h->on_tick(h->ctx, &sm, elapsed)) {
			sm.reason = STOP_HOOK;
			break;
		}
		/* after the first tick's hook, which announces the sampling (record) */
		if (c->duration > 0 && warm_up > 1.0)
			fprintf(stderr, "mixspy> The first sample took %.2fs (warm-up: %s); the duration counts from there\n",
				warm_up, c->native ? "loading debug info" : "reading the process");
		if (c->subprocesses && now - last_child_scan >= 0.1) {
			last_child_scan = now;
			if (!sm.root_exited && (sm.launched || target_state(sm.root_pid)))
				find_children(&sm);
		}
		bool any = false;
		for (size_t i = 0; i < sm.procs.n; i++)
			any |= sm.procs.v[i]->open && !sm.procs.v[i]->dead;
		bool root_running = sm.launched ? !sm.root_exited : false;
		if (!any && !(c->subprocesses && root_running)) {
			sm.reason = STOP_EXITED;
			break;
		}
		/* A late tick never causes a burst of catch-up ticks (they would over-count whatever
		 * the program does at that moment): the next tick is a fresh gap from now. The time
		 * lost to such overruns is what "behind" means; it is reported, at most once per
		 * second, when it cost more than a tenth of that second. The first tick is warm-up
		 * (symbol tables are loaded on first use) and does not count. */
		double gap = exp_gap((double)c->rate, &rng);
		next += gap;
		now = now_monotonic();
		if (now > next) {
			if (sm.ticks > 1) {
				sm.late_ticks++;
				behind += now - next;
				window_lost += now - next;
			}
			next = now;
		}
		if (duty > 0)
			while (!duty_on(duty, next))
				next += duty;
		if (behind > sm.max_lateness)
			sm.max_lateness = behind;
		if (now - window_start >= 1.0) {
			if (window_lost > 0.1 * (now - window_start))
				fprintf(stderr, "mixspy> %.2fs behind in sampling, results may be inaccurate. Try reducing the sampling rate\n",
					behind);
			window_start = now;
			window_lost = 0;
		}
		if (h->idle) {
			if (h->idle(h->ctx, &sm, next)) {
				sm.reason = STOP_HOOK;
				break;
			}
		} else if (next > now) {
			/* A long gap (a low rate) never outlasts --duration. */
			double until = next;
			if (c->duration > 0 && sampling_from + c->duration + 1e-6 < until)
				until = sampling_from + c->duration + 1e-6;
			sleep_until(&sm, until);
		}
	}
	rc = 0;
	for (size_t i = 0; i < sm.procs.n; i++)
		settle_errors(&sm, sm.procs.v[i], now_monotonic(), true);
	if (h->on_tick)
		h->on_tick(h->ctx, &sm, now_monotonic() - sm.start);
out:
	/* Leave every target running; pass on a launched program's exit status once it ends. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	/* Release the threads kept seized before waiting for a launched program: its main thread's
	 * ptrace stops would otherwise answer that wait. */
	for (size_t i = 0; i < sm.procs.n; i++)
		target_release_all(&sm.procs.v[i]->spy.t);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, &mask_before, NULL);
	if (sm.launched && !rc && sm.procs.n) {
		struct target *t = &sm.procs.v[0]->spy.t;
		if (sm.reason == STOP_SIGNAL && sampler_stop_signal == SIGTERM && !sm.root_exited)
			kill(t->pid, SIGTERM);
		if (!sm.root_exited) {
			int st;
			pid_t r;
			while ((r = waitpid(t->pid, &st, 0)) < 0 && errno == EINTR)
				;
			if (r == t->pid)
				sm.exit_status = target_exit_code(st);
			else if (t->reaped)
				sm.exit_status = t->exit_status;
		}
		*status = sm.exit_status;
	}
	for (size_t i = 0; i < sm.procs.n; i++) {
		if (sm.procs.v[i]->open)
			spy_close(&sm.procs.v[i]->spy);
		else if (i == 0 && sm.launched)
			target_close(&sm.procs.v[i]->spy.t);
		free(sm.procs.v[i]);
	}
	vec_free(&sm.procs);
	hmap_free(&sm.tried);
	return rc;
}
