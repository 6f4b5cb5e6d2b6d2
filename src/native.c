/*
 * native.c - the --native half of a spy (see native.h): the unwinder, symbolizer and Cython maps
 * of one process, one reusable stack snapshot, and the per-sample work after the thread has
 * been resumed: unwind, symbolize (inlined functions become frames), translate Cython frames,
 * classify, merge.
 */
#include "native.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/user.h>

#include "../cython/cython.h"
#include "../symbolize/symbolize.h"
#include "../unwind/unwind.h"
#include "merge.h"
#include "spy.h"

#define MAX_NATIVE 512
#define MAX_INLINE 16

/* A copy of one thread's registers and stack top, kept until its sample is merged. */
struct native_snap {
	struct unwind_snapshot snap;
	bool in_use;
};

struct native_state {
	struct unwinder *uw;
	struct symbolizer *sym;
	struct cy_maps *cy;
	struct native_snap paused;        /* the thread paused now */
	VEC(struct native_snap *) asleep;  /* threads read asleep this tick, by their slot */
	uint64_t ips[MAX_NATIVE];
	VEC(struct native_frame) nat;
	VEC(struct frame) merged;
	const char *truncated_name;
	double maps_quiet_until;   /* no maps re-read for unknown pcs before this (see below) */
};

int native_open(struct spy *s, struct err *e)
{
	struct native_state *n = xcalloc(1, sizeof(*n));
	/* No network here or in production: never let libdw go looking for debuginfod servers. */
	unsetenv("DEBUGINFOD_URLS");
	int rc = unwinder_new(&n->uw, &s->t, e);
	if (!rc)
		rc = symbolizer_new(&n->sym, &s->t, s->strs, e);
	if (rc) {
		if (n->uw)
			unwinder_free(n->uw);
		free(n);
		return rc;
	}
	n->cy = cy_new(s->strs, s->t.root);
	n->truncated_name = intern(s->strs, "[truncated]");
	s->native = n;
	return 0;
}

void native_close(struct spy *s)
{
	struct native_state *n = s->native;
	if (!n)
		return;
	unwind_snapshot_free(&n->paused.snap);
	for (size_t i = 0; i < n->asleep.n; i++) {
		unwind_snapshot_free(&n->asleep.v[i]->snap);
		free(n->asleep.v[i]);
	}
	vec_free(&n->asleep);
	unwinder_free(n->uw);
	symbolizer_free(n->sym);
	cy_free(n->cy);
	vec_free(&n->nat);
	vec_free(&n->merged);
	free(n);
	s->native = NULL;
}

/* Re-read the target's maps; when they changed, the unwinder and symbolizer rebuild what they
 * must. True when they changed. */
static bool refresh_maps(struct spy *s, double now)
{
	bool changed = false;
	s->last_maps_check = now;
	if (target_refresh_maps(&s->t, &changed, NULL) || !changed)
		return false;
	unwinder_maps_changed(s->native->uw);
	symbolizer_maps_changed(s->native->sym);
	return true;
}

void native_check_maps(struct spy *s, double now)
{
	if (s->native && now - s->last_maps_check > NATIVE_MAPS_EVERY)
		refresh_maps(s, now);
}

/* A pc outside every mapping we know: the thread runs code mapped since the maps were last
 * read (a module imported meanwhile - launched programs import theirs after the first
 * samples). Unwound and symbolized with the old maps, such a sample would lose its module's
 * frames and mismatch (seen in `make demo`: 16 of 405 samples). The maps are re-read then
 * (and the same copy walked again); a pc that stays unknown - garbage at the end of a walk,
 * or code outside any file - does not make every sample re-read them: after a re-read that
 * found nothing new, the next one waits NATIVE_MAPS_QUIET. */
#define NATIVE_MAPS_QUIET 0.1

static bool pcs_mapped(const struct spy *s, const uint64_t *ips, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!target_map_at(&s->t, ips[i]))
			return false;
	return true;
}

bool native_stack_guess(struct spy *s, pid_t tid, struct target_iov *iov)
{
	struct native_state *n = s->native;
	return n && !n->paused.in_use && unwind_stack_guess(n->uw, tid, &n->paused.snap, iov);
}

void native_capture(struct spy *s, pid_t tid, bool guess_ok, void **snapshot)
{
	struct native_state *n = s->native;
	*snapshot = NULL;
	if (!n || n->paused.in_use)
		return;
	/* A watched thread's stop noted its registers: read from the ring, they spare the pause a
	 * PTRACE_GETREGS (~5 us of the ~60 us a pause of the deep workload's holder takes) */
	struct user_regs_struct r;
	bool noted = target_stop_regs(&s->t, tid, (uint64_t *)&r);
	s->stop_regs += noted;
	if (unwind_capture(n->uw, tid, noted ? &r : NULL, &n->paused.snap, guess_ok, NULL) == 0) {
		n->paused.in_use = true;
		*snapshot = &n->paused;
	}
}

void native_step_counts(struct spy *s, uint64_t *cfi, uint64_t *libunwind)
{
	*cfi = *libunwind = 0;
	if (s->native)
		unwinder_step_counts(s->native->uw, cfi, libunwind);
}

size_t native_tick_len(struct spy *s, pid_t tid, uint64_t *end)
{
	*end = 0;
	return s->native ? unwind_tick_len(s->native->uw, tid, end) : 0;
}

void native_capture_regs(struct spy *s, pid_t tid, const uint64_t *regs, size_t nregs, bool off_cpu, void **snapshot)
{
	struct native_state *n = s->native;
	*snapshot = NULL;
	if (!n || n->paused.in_use)
		return;
	struct user_regs_struct r;
	memset(&r, 0, sizeof r);
	memcpy(&r, regs, nregs * 8 < sizeof r ? nregs * 8 : sizeof r);
	if (unwind_capture_regs(n->uw, tid, &r, off_cpu, &n->paused.snap, NULL) == 0) {
		n->paused.in_use = true;
		*snapshot = &n->paused;
	}
}

bool native_asleep_range(struct spy *s, pid_t tid, uint64_t sp, struct target_iov *iov)
{
	if (!s->native)
		return false;
	*iov = unwind_asleep_range(s->native->uw, tid, sp);
	return iov->len > 0;
}

void native_capture_asleep(struct spy *s, size_t slot, pid_t tid, uint64_t sp, uint64_t pc, void **snapshot)
{
	struct native_state *n = s->native;
	*snapshot = NULL;
	if (!n)
		return;
	while (n->asleep.n <= slot) {
		struct native_snap *blank = xcalloc(1, sizeof *blank);   /* handed out: never moves */
		vec_push(&n->asleep, blank);
	}
	struct native_snap *ns = n->asleep.v[slot];
	if (!ns->in_use && unwind_capture_asleep(n->uw, tid, sp, pc, &ns->snap, NULL) == 0) {
		ns->in_use = true;
		*snapshot = ns;
	}
}

void native_snapshot_free(void *snapshot)
{
	struct native_snap *ns = snapshot;
	if (ns)
		ns->in_use = false;
}

static const char *basename_of(struct spy *s, const char *path)
{
	if (!path)
		return "";
	const char *b = strrchr(path, '/');
	return b ? intern(s->strs, b + 1) : path;
}

/* MIXSPY_DEBUG_MERGE=1: each mismatched sample's native frames (with their roles) and Python
 * frames go to stderr, for finding why a merge failed. */
static void debug_mismatch(const struct native_state *n, const struct py_thread *th, size_t nips, int rc)
{
	static int on = -1;
	if (on < 0)
		on = getenv("MIXSPY_DEBUG_MERGE") && *getenv("MIXSPY_DEBUG_MERGE");
	if (!on)
		return;
	static const char role_ch[] = { [NATIVE_KEEP] = 'K', [NATIVE_EVAL] = 'E', [NATIVE_HIDE] = '-' };
	fprintf(stderr, "mixspy-merge: mismatch: %zu pcs (unwind rc %d), %zu native frames, %zu python frames\n",
		nips, rc, n->nat.n, th->frames.n);
	for (size_t i = 0; i < n->nat.n; i++)
		fprintf(stderr, "mixspy-merge:   native %c %s %s:%d\n", role_ch[n->nat.v[i].role],
			n->nat.v[i].f.name ? n->nat.v[i].f.name : "?", n->nat.v[i].f.short_file, n->nat.v[i].f.line);
	for (size_t i = 0; i < th->frames.n; i++)
		fprintf(stderr, "mixspy-merge:   python%s %s %s:%d\n", th->frames.v[i].is_entry ? "*" : " ",
			th->frames.v[i].name, th->frames.v[i].short_file, th->frames.v[i].line);
}

bool native_merge(struct spy *s, struct py_thread *th, void *snapshot, bool *waiting)
{
	struct native_state *n = s->native;
	const struct unwind_snapshot *snap = &((struct native_snap *)snapshot)->snap;
	size_t nips = 0;
	bool truncated = false;
	*waiting = false;
	n->nat.n = 0;
	int rc = unwind_frames(n->uw, snap, n->ips, MAX_NATIVE, &nips, &truncated, NULL);
	if (!rc && !pcs_mapped(s, n->ips, nips)) {
		double now = now_monotonic();
		if (now >= n->maps_quiet_until) {
			if (refresh_maps(s, now))
				rc = unwind_frames(n->uw, snap, n->ips, MAX_NATIVE, &nips, &truncated, NULL);
			else
				n->maps_quiet_until = now + NATIVE_MAPS_QUIET;
		}
	}
	if (rc == E_AGAIN)
		return false;   /* a thread read asleep whose walk needs more than its pc and sp */
	if (rc)
		nips = 0;
	const char *pybin = py_binary_path(s->py);
	const char *exe = s->t.exe;
	struct sym_frame sf[MAX_INLINE];
	for (size_t i = 0; i < nips; i++) {
		size_t nsf = 0;
		if (sym_lookup(n->sym, n->ips[i], i > 0, sf, MAX_INLINE, &nsf) != 0 || nsf == 0)
			continue;
		const char *symbol = sf[nsf - 1].symbol;
		bool in_interp = sf[nsf - 1].module && ((pybin && !strcmp(sf[nsf - 1].module, pybin)) ||
							(exe && !strcmp(sf[nsf - 1].module, exe)));
		for (size_t k = 0; k < nsf; k++) {
			struct native_frame nf = { 0 };
			nf.f.kind = FRAME_NATIVE;
			nf.f.name = sf[k].func;
			nf.f.file = sf[k].file ? sf[k].file : sf[k].module ? sf[k].module : "";
			nf.f.short_file = basename_of(s, nf.f.file);
			nf.f.line = sf[k].line;
			nf.f.module = sf[k].module;
			nf.f.addr = sf[k].addr;
			nf.physical = k == nsf - 1;
			nf.unnamed = nsf == 1 && !symbol && !sf[k].file;
			/* Only the real function of a pc decides eval-ness; inlined ones are hidden or kept
			 * by their own name. */
			nf.role = merge_classify(nf.physical ? symbol : NULL, sf[k].func, in_interp);
			if (nf.role == NATIVE_EVAL && !nf.physical)
				nf.role = NATIVE_HIDE;
			if (nf.role == NATIVE_KEEP && !in_interp) {
				const char *csym = nf.physical ? symbol : sf[k].func;
				if (cy_is_forwarding(sf[k].func)) {
					nf.role = NATIVE_HIDE;
				} else if (cy_translate_frame(n->cy, &nf.f, csym)) {
					/* A __pyx_pw_ wrapper right over its __pyx_pf_ implementation is one
					 * function to the user. */
					if (n->nat.n && n->nat.v[n->nat.n - 1].f.kind == FRAME_CYTHON &&
					    n->nat.v[n->nat.n - 1].f.name == nf.f.name)
						nf.role = NATIVE_HIDE;
				}
			}
			vec_push(&n->nat, nf);
		}
	}
	/* A libc without .symtab (Debian unstable's, beside the 3.14 interpreter) leaves the static
	 * __libc_start_call_main unnamed: an unnamed frame called by a start-up frame of its own
	 * module is start-up too. */
	for (size_t i = 1; i < n->nat.n; i++) {
		struct native_frame *callee = &n->nat.v[i - 1], *caller = &n->nat.v[i];
		if (callee->unnamed && callee->f.module == caller->f.module && caller->role == NATIVE_HIDE &&
		    merge_is_startup(caller->f.name))
			callee->role = NATIVE_HIDE;
		/* 3.12+ `-X perf`: each eval call goes through a trampoline in anonymous code. */
		if (caller->unnamed && !caller->f.module && callee->role == NATIVE_EVAL)
			caller->role = NATIVE_HIDE;
	}
	if (truncated) {
		struct native_frame nf = { .f = { .kind = FRAME_PSEUDO, .name = n->truncated_name, .file = "",
						  .short_file = "" }, .role = NATIVE_KEEP, .physical = true };
		vec_push(&n->nat, nf);
	}
	size_t max = n->nat.n + th->frames.n + 1;
	vec_reserve(&n->merged, max);
	size_t nout = 0;
	struct merge_result res;
	merge_stacks(n->nat.v, n->nat.n, th->frames.v, th->frames.n, n->merged.v, max, &nout, &res);
	if (res.mismatch) {
		s->merge_mismatches++;
		debug_mismatch(n, th, nips, rc);
	}
	*waiting = res.waiting;
	for (size_t i = 0; i < nout; i++)
		vec_push(&s->frames, n->merged.v[i]);
	return true;
}

int native_instruction(struct spy *s, uint64_t pc, char *buf, size_t len)
{
	if (len)
		buf[0] = 0;
	if (!s->native)
		return E_INTERNAL;
	return sym_instruction(s->native->sym, pc, buf, len);
}
