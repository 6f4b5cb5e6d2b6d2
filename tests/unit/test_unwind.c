/*
 * test_unwind.c - native unwinding and symbolization against live processes: the chain.c fixture
 * (built at -O0 and -O2 next to this test, in fixtures/) with a known call chain and an inlined
 * function, and real interpreters (pyenv 3.12, Debian's stripped 3.11) busy in a loop or in C code
 * of many kinds. Each sample pauses one thread, snapshots it, unwinds the copy twice - by the CFI
 * steps and by libunwind alone, which must agree - resumes it and symbolizes.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "symbolize/symbolize.h"
#include "unit.h"
#include "unwind/unwind.h"

#define MAX_IPS 256
#define MAX_FRAMES 512

struct child {
	pid_t pid;
	FILE *out;   /* its stdout */
};

static int child_start(struct child *c, char *const argv[])
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* dies with the test: a test that aborts (a sanitizer's report) leaves no spinner */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	c->pid = pid;
	c->out = fdopen(p[0], "r");
	return 0;
}

static void child_stop(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	fclose(c->out);
}

struct stack {
	struct sym_frame f[MAX_FRAMES];
	size_t n;
	size_t nips;
	bool truncated;
};

static size_t walks_compared, walks_differ;
static uint64_t ref_steps;   /* libunwind steps of the reference walks */

/* The walk just made (CFI steps here, libunwind where they don't serve) against libunwind
 * stepping every frame of the same snapshot: the same return addresses, to the same end. */
static void check_same_walk(struct unwinder *u, struct symbolizer *s, const struct unwind_snapshot *snap,
			    const uint64_t *ips, size_t n, bool truncated)
{
	uint64_t ref[MAX_IPS];
	size_t nref = 0;
	bool ref_truncated = false;
	struct err e = {0};
	uint64_t cfi0, lu0, cfi1, lu1;
	unwinder_step_counts(u, &cfi0, &lu0);
	unwinder_libunwind_only(u, true);
	int rc = unwind_frames(u, snap, ref, MAX_IPS, &nref, &ref_truncated, &e);
	unwinder_libunwind_only(u, false);
	unwinder_step_counts(u, &cfi1, &lu1);
	ref_steps += lu1 - lu0;
	walks_compared++;
	if (rc == 0 && nref == n && ref_truncated == truncated && !memcmp(ref, ips, n * sizeof *ips))
		return;
	walks_differ++;
	fprintf(stderr, "walk of tid %d: %zu frames%s by CFI steps, %zu%s by libunwind (rc %d)\n", (int)snap->tid, n,
		truncated ? " (truncated)" : "", nref, ref_truncated ? " (truncated)" : "", rc);
	for (size_t k = 0; k < n || k < nref; k++) {
		struct sym_frame a = { 0 }, b = { 0 };
		size_t na = 0, nb = 0;
		if (k < n)
			sym_lookup(s, ips[k], k > 0, &a, 1, &na);
		if (k < nref)
			sym_lookup(s, ref[k], k > 0, &b, 1, &nb);
		fprintf(stderr, "  #%zu %#llx %s %s | %#llx %s\n", k, k < n ? (unsigned long long)ips[k] : 0ull,
			na ? a.func : "", na && a.module ? a.module : "", k < nref ? (unsigned long long)ref[k] : 0ull,
			nb ? b.func : "");
	}
	CHECK(0);
}

/* Pause tid, snapshot, resume, then unwind and symbolize (inlined frames expanded). Modules the
 * target loaded since the last sample are seen first. */
static int sample(struct target *t, struct unwinder *u, struct symbolizer *s, struct unwind_snapshot *snap,
		  pid_t tid, struct stack *st)
{
	struct err e = {0};
	bool changed = false;
	if (target_refresh_maps(t, &changed, &e) == 0 && changed) {
		unwinder_maps_changed(u);
		symbolizer_maps_changed(s);
	}
	uint64_t ips[MAX_IPS];
	if (target_pause_thread(t, tid, &e) != 0) {
		fprintf(stderr, "pause: %s\n", e.msg);
		return -1;
	}
	int rc = unwind_capture(u, tid, NULL, snap, false, &e);
	if (rc != 0) {
		target_resume_thread(t, tid);
		fprintf(stderr, "capture: %s\n", e.msg);
		return -1;
	}
	/* walked while it is still paused: a walk past the copy reads the stack live, and both
	 * walks must see the same (resumed, a frame larger than recent walks needed - list.sort's
	 * merge state - read back garbage, differently each time) */
	rc = unwind_frames(u, snap, ips, MAX_IPS, &st->nips, &st->truncated, &e);
	if (rc == 0)
		check_same_walk(u, s, snap, ips, st->nips, st->truncated);
	target_resume_thread(t, tid);
	if (rc != 0)
		return -1;
	st->n = 0;
	for (size_t i = 0; i < st->nips; i++) {
		size_t k = 0;
		sym_lookup(s, ips[i], i > 0, st->f + st->n, MAX_FRAMES - st->n, &k);
		st->n += k;
	}
	return 0;
}

static void print_stack(const struct stack *st)
{
	for (size_t i = 0; i < st->n; i++)
		fprintf(stderr, "  #%zu %s%s %s:%d [%s] sym=%s\n", i, st->f[i].func, st->f[i].inlined ? " (inlined)" : "",
			st->f[i].file ? st->f[i].file : "?", st->f[i].line, st->f[i].module ? st->f[i].module : "?",
			st->f[i].symbol ? st->f[i].symbol : "-");
	fprintf(stderr, "  %zu ips, truncated=%d\n", st->nips, st->truncated);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);
	return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

static int find_func(const struct stack *st, const char *name)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->f[i].func, name) == 0 || (st->f[i].symbol && strcmp(st->f[i].symbol, name) == 0))
			return (int)i;
	return -1;
}

static char *fixture_path(const char *name)
{
	static char buf[PATH_MAX + 64];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(buf, sizeof(buf), "%s/fixtures/%s", self, name);
	return buf;
}

static void check_chain(const char *fixture)
{
	char *path = fixture_path(fixture);
	if (!path || access(path, X_OK) != 0) {
		fprintf(stderr, "fixture %s missing (build it with make)\n", path ? path : fixture);
		CHECK(0);
		return;
	}
	char *argv[] = { path, NULL };
	struct child c;
	CHECK(child_start(&c, argv) == 0);
	long ktid = 0, itid = 0;
	int kfirst = 0, klast = 0, ifirst = 0, ilast = 0, icall = 0;
	char what[16];
	long tid;
	int a, b, d;
	for (int i = 0; i < 2 && fscanf(c.out, "%15s %ld %d %d %d", what, &tid, &a, &b, &d) == 5; i++) {
		if (strcmp(what, "kernel") == 0) {
			ktid = tid; kfirst = a; klast = b;
		} else {
			itid = tid; ifirst = a; ilast = b; icall = d;
		}
	}
	CHECK(ktid == c.pid && itid > 0);
	usleep(20000);   /* let both get into their loops */

	struct target t;
	struct err e = {0};
	struct interner *strs = interner_new();
	struct unwinder *u = NULL;
	struct symbolizer *s = NULL;
	struct unwind_snapshot snap = {0};
	static struct stack st;
	CHECK(target_attach(&t, c.pid, &e) == 0);
	bool changed;
	CHECK(target_refresh_maps(&t, &changed, &e) == 0);
	CHECK(unwinder_new(&u, &t, &e) == 0);
	CHECK(symbolizer_new(&s, &t, strs, &e) == 0);

	/* Main thread: kernel <- middle <- outer <- main <- libc start-up, kernel's line inside its loop. */
	for (int round = 0; round < 5; round++) {
		CHECK(sample(&t, u, s, &snap, (pid_t)ktid, &st) == 0);
		bool ok = st.n >= 4 && strcmp(st.f[0].func, "kernel") == 0 && strcmp(st.f[1].func, "middle") == 0 &&
			  strcmp(st.f[2].func, "outer") == 0 && strcmp(st.f[3].func, "main") == 0 &&
			  ends_with(st.f[0].file, "chain.c") && st.f[0].line >= kfirst && st.f[0].line <= klast &&
			  !st.f[0].inlined && st.f[0].symbol && strcmp(st.f[0].symbol, "kernel") == 0 &&
			  !st.truncated && find_func(&st, "__libc_start_call_main") > 3;
		if (!ok) {
			fprintf(stderr, "%s main thread, round %d (loop lines %d-%d):\n", fixture, round, kfirst, klast);
			print_stack(&st);
		}
		CHECK(ok);
	}

	/* Second thread: the inlined spin_inline is a frame of its own, then inl_host at the call line. */
	for (int round = 0; round < 5; round++) {
		CHECK(sample(&t, u, s, &snap, (pid_t)itid, &st) == 0);
		bool ok = st.n >= 3 && strcmp(st.f[0].func, "spin_inline") == 0 && st.f[0].inlined &&
			  st.f[0].line >= ifirst && st.f[0].line <= ilast && strcmp(st.f[1].func, "inl_host") == 0 &&
			  !st.f[1].inlined && st.f[1].line == icall && st.f[0].symbol &&
			  strcmp(st.f[0].symbol, "inl_host") == 0 && strcmp(st.f[2].func, "inl_outer") == 0 &&
			  find_func(&st, "start_thread") > 2 && !st.truncated;
		if (!ok) {
			fprintf(stderr, "%s inline thread, round %d (loop lines %d-%d, call %d):\n", fixture, round,
				ifirst, ilast, icall);
			print_stack(&st);
		}
		CHECK(ok);
	}

	unwind_snapshot_free(&snap);
	symbolizer_free(s);
	unwinder_free(u);
	target_close(&t);
	interner_free(strs);
	child_stop(&c);
}

/*
 * The symbols and inlined chains from the tables (the default) against libdw's own lookups
 * (dwfl_module_addrinfo, dwarf_getscopes: sym_reference) for
 * n addresses spread over the executable mapping of the file whose path ends in `file`, plus every
 * address of its first `dense` bytes: the same frames (function, file, line, inlined, symbol) at
 * each, as return addresses and as the innermost pc. Returns how many addresses had an inlined
 * frame (so a caller can tell the comparison reached some).
 */
static size_t check_tables_agree(struct target *t, struct interner *strs, const char *file, size_t n, size_t dense)
{
	struct err e = {0};
	struct symbolizer *fast = NULL, *slow = NULL;
	CHECK(symbolizer_new(&fast, t, strs, &e) == 0);
	CHECK(symbolizer_new(&slow, t, strs, &e) == 0);
	if (!fast || !slow)
		return 0;
	sym_reference(slow, true);
	const struct map *mp = NULL;
	for (size_t i = 0; i < t->maps.n && !mp; i++)
		if (t->maps.v[i].x && ends_with(t->maps.v[i].path, file))
			mp = &t->maps.v[i];
	CHECK(mp != NULL);
	size_t inl = 0, bad = 0, len = mp ? (size_t)(mp->end - mp->start) : 0;
	for (size_t i = 0; mp && i < n + dense && bad < 5; i++) {
		uint64_t pc = i < dense ? mp->start + i : mp->start + (uint64_t)((double)(i - dense) * len / n);
		if (pc >= mp->end)
			continue;
		for (int ret = 0; ret < 2; ret++) {
			struct sym_frame a[32], b[32];
			size_t na = 0, nb = 0;
			sym_lookup(fast, pc, ret, a, 32, &na);
			sym_lookup(slow, pc, ret, b, 32, &nb);
			bool same = na == nb;
			for (size_t k = 0; same && k < na; k++)
				same = a[k].func == b[k].func && a[k].file == b[k].file && a[k].line == b[k].line &&
				       a[k].inlined == b[k].inlined && a[k].symbol == b[k].symbol;
			inl += same && na > 1;
			if (!same) {
				bad++;
				fprintf(stderr, "%s %#llx (%s): tables %zu frames, libdw %zu\n", file,
					(unsigned long long)pc, ret ? "return" : "pc", na, nb);
				for (size_t k = 0; k < na || k < nb; k++)
					fprintf(stderr, "  %-40s | %s\n", k < na ? a[k].func : "", k < nb ? b[k].func : "");
			}
		}
	}
	CHECK(bad == 0);
	symbolizer_free(fast);
	symbolizer_free(slow);
	return inl;
}

static void test_tables_agree(void)
{
	char *path = fixture_path("chain_O2");
	char *argv[] = { path, NULL };
	struct child c;
	CHECK(child_start(&c, argv) == 0);
	char line[128];
	CHECK(fgets(line, sizeof line, c.out) != NULL);
	struct target t;
	struct err e = {0};
	struct interner *strs = interner_new();
	bool changed;
	CHECK(target_attach(&t, c.pid, &e) == 0);
	CHECK(target_refresh_maps(&t, &changed, &e) == 0);
	/* every address of the fixture's code, where spin_inline is inlined into inl_host */
	CHECK(check_tables_agree(&t, strs, "/chain_O2", 0, 64 * 1024) > 0);
	/* libc's symbols only (no DWARF here), some of them entry points inside others */
	check_tables_agree(&t, strs, "/libc.so.6", 3000, 0);
	target_close(&t);
	child_stop(&c);
	/* an interpreter built with DWARF (pyenv's; Debian's is stripped): 1,500 addresses over its
	 * code, with _PyEval_EvalFrameDefault's heavy inlining */
	const char *py = "/root/.pyenv/versions/3.11.7/bin/python3.11";
	if (access(py, X_OK) == 0) {
		char *pargv[] = { (char *)py, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(120)", NULL };
		CHECK(child_start(&c, pargv) == 0);
		CHECK(fgets(line, sizeof line, c.out) != NULL);
		CHECK(target_attach(&t, c.pid, &e) == 0);
		CHECK(target_refresh_maps(&t, &changed, &e) == 0);
		CHECK(check_tables_agree(&t, strs, "/libpython3.11.so.1.0", 1500, 0) > 0);
		target_close(&t);
		child_stop(&c);
	} else {
		fprintf(stderr, "skip: %s not installed (tables against dwarf_getscopes on the fixture only)\n", py);
	}
	interner_free(strs);
}

static void test_chain_O0(void) { check_chain("chain_O0"); }
static void test_chain_O2(void) { check_chain("chain_O2"); }

/* A busy interpreter: its main thread is in _PyEval_EvalFrameDefault, and the walk reaches the
 * C start-up code without being truncated. */
static void check_python_args(const char *python, const char *flag, const char *body, int min_evals)
{
	if (access(python, X_OK) != 0) {
		fprintf(stderr, "skip: %s not installed\n", python);
		return;
	}
	char script[512];
	snprintf(script, sizeof(script), "import sys\nsys.stdout.write('ready\\n'); sys.stdout.flush()\n%s\n", body);
	char *argv[] = { (char *)python, (char *)flag, "-c", script, NULL };
	if (!flag[0]) {
		argv[1] = "-c";
		argv[2] = script;
		argv[3] = NULL;
	}
	struct child c;
	CHECK(child_start(&c, argv) == 0);
	char line[64] = "";
	CHECK(fgets(line, sizeof(line), c.out) != NULL && strcmp(line, "ready\n") == 0);
	usleep(50000);

	struct target t;
	struct err e = {0};
	struct interner *strs = interner_new();
	struct unwinder *u = NULL;
	struct symbolizer *s = NULL;
	struct unwind_snapshot snap = {0};
	static struct stack st;
	bool changed;
	CHECK(target_attach(&t, c.pid, &e) == 0);
	CHECK(target_refresh_maps(&t, &changed, &e) == 0);
	CHECK(unwinder_new(&u, &t, &e) == 0);
	ref_steps = 0;
	CHECK(symbolizer_new(&s, &t, strs, &e) == 0);
	for (int round = 0; round < 5; round++) {
		CHECK(sample(&t, u, s, &snap, c.pid, &st) == 0);
		int ev = find_func(&st, "_PyEval_EvalFrameDefault"), evals = 0;
		for (size_t i = 0; i < st.n; i++)
			evals += st.f[i].symbol && strcmp(st.f[i].symbol, "_PyEval_EvalFrameDefault") == 0;
		int start = find_func(&st, "__libc_start_call_main");
		if (start < 0)
			start = find_func(&st, "main");
		bool ok = ev >= 0 && start > ev && !st.truncated && evals >= min_evals;
		if (!ok || (round == 0 && getenv("UNWIND_TEST_VERBOSE"))) {
			fprintf(stderr, "%s round %d:\n", python, round);
			print_stack(&st);
		}
		CHECK(ok);
		usleep(3000);
	}
	/* more walks, only compared with libunwind's (each sample does), at random points */
	for (int round = 0; round < 300; round++) {
		CHECK(sample(&t, u, s, &snap, c.pid, &st) == 0);
		usleep(500);
	}
	uint64_t cfi = 0, lu = 0;
	unwinder_step_counts(u, &cfi, &lu);
	lu -= ref_steps;
	ref_steps = 0;
	if (getenv("UNWIND_TEST_VERBOSE"))
		fprintf(stderr, "%s: %llu CFI steps, %llu libunwind steps\n", python, (unsigned long long)cfi,
			(unsigned long long)lu);
	CHECK(cfi > 10 * lu);   /* the walks of an interpreter are CFI steps nearly all */
	unwind_snapshot_free(&snap);
	symbolizer_free(s);
	unwinder_free(u);
	target_close(&t);
	interner_free(strs);
	child_stop(&c);
}

static void check_python(const char *python)
{
	check_python_args(python, "", "while True: pass", 1);
}

/* -X perf (3.12+): every Python call goes through a trampoline without CFI in anonymous memory,
 * so the walk must step over them by hand to see all eight eval frames and reach main. */
static void test_python312_perf_trampolines(void)
{
	check_python_args("/root/.pyenv/versions/3.12.1/bin/python3.12", "-Xperf",
			  "def f(n):\n    if n:\n        return f(n - 1)\n    while True: pass\nf(7)", 8);
}

/* Walks through C code of many kinds - sorting, json, re, hashlib, zlib, a thread woken and put
 * to sleep - each compared with libunwind's (the rounds of check_python_args). */
static const char varied_body[] =
	"import json, re, hashlib, zlib, threading, random, time\n"
	"def napper():\n"
	"    while True: time.sleep(0.001)\n"
	"threading.Thread(target=napper, daemon=True).start()\n"
	"data = [random.random() for _ in range(3000)]\n"
	"while True:\n"
	"    sorted(data); json.dumps(data[:300]); re.findall(r'[0-9]+[.][0-9]', str(data[:80]))\n"
	"    hashlib.sha256(str(data).encode()).digest(); zlib.compress(str(data[:400]).encode())\n";
static void test_python312_varied(void)
{
	check_python_args("/root/.pyenv/versions/3.12.1/bin/python3.12", "", varied_body, 1);
}
static void test_debian_python311_varied(void) { check_python_args("/usr/bin/python3.11", "", varied_body, 1); }

static void test_python312(void) { check_python("/root/.pyenv/versions/3.12.1/bin/python3.12"); }
static void test_python310(void) { check_python("/root/.pyenv/versions/3.10.13/bin/python3.10"); }
static void test_debian_python311(void) { check_python("/usr/bin/python3.11"); }

int main(void)
{
	RUN(test_chain_O0);
	RUN(test_chain_O2);
	RUN(test_tables_agree);
	RUN(test_python312);
	RUN(test_python310);
	RUN(test_python312_perf_trampolines);
	RUN(test_debian_python311);
	RUN(test_python312_varied);
	RUN(test_debian_python311_varied);
	fprintf(stderr, "unwind: %zu walks compared with libunwind's, %zu differ\n", walks_compared, walks_differ);
	return unit_report("unwind");
}
