/*
 * unwind_bench.c - micro-benchmark of the native-stack path on a busy Python process (pyenv 3.10
 * and 3.12, 30 Python frames deep): the pause (seize + interrupt -> registers and stack copy ->
 * detach), the copy alone, the unwind of one snapshot, and symbolizing one sample's addresses with
 * a warm cache and from a fresh symbolizer (cold). Prints median and p99 in microseconds.
 * Built by mk/native.mk (`make unwind-bench`); not part of `make test`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define SAMPLES 2000
#define COLD_ROUNDS 20
#define MAX_IPS 256
#define MAX_FRAMES 1024

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void bench_print(const char *what, double *v, size_t n)
{
	if (n == 0) {
		printf("  %-28s (no data)\n", what);
		return;
	}
	qsort(v, n, sizeof(*v), bench_cmp);
	size_t p99 = (n * 99) / 100;
	if (p99 >= n)
		p99 = n - 1;
	printf("  %-28s median %8.1f us   p99 %8.1f us   (n=%zu)\n", what, v[n / 2] * 1e6, v[p99] * 1e6, n);
}

static pid_t bench_spawn(const char *python, FILE **out)
{
	static const char script[] =
		"import sys\n"
		"def f(n):\n"
		"    if n:\n"
		"        return f(n - 1)\n"
		"    sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
		"    while True: pass\n"
		"f(30)\n";
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(python, python, "-c", script, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = fdopen(p[0], "r");
	return pid;
}

static void bench_one(const char *python)
{
	if (access(python, X_OK) != 0) {
		printf("%s: not installed, skipped\n", python);
		return;
	}
	FILE *out;
	pid_t pid = bench_spawn(python, &out);
	char line[32];
	if (pid < 0 || !fgets(line, sizeof(line), out)) {
		printf("%s: did not start\n", python);
		return;
	}
	usleep(100000);

	struct target t;
	struct err e = {0};
	bool changed;
	struct interner *strs = interner_new();
	struct unwinder *u = NULL;
	struct symbolizer *s = NULL;
	if (target_attach(&t, pid, &e) || target_refresh_maps(&t, &changed, &e) || unwinder_new(&u, &t, &e) ||
	    symbolizer_new(&s, &t, strs, &e)) {
		printf("%s: %s\n", python, e.msg);
		goto out;
	}

	static double pause[SAMPLES], copy[SAMPLES], unw[SAMPLES], symw[SAMPLES], symc[COLD_ROUNDS];
	static uint64_t ips[MAX_IPS], cold_ips[MAX_IPS];
	static struct sym_frame frames[MAX_FRAMES];
	struct unwind_snapshot snap = {0};
	size_t n_ok = 0, nips = 0, cold_n = 0, truncated_count = 0, depth_sum = 0;
	for (int i = 0; i < SAMPLES; i++) {
		double t0 = now_monotonic();
		if (target_pause_thread(&t, pid, &e) != 0)
			continue;
		double t1 = now_monotonic();
		int rc = unwind_capture(u, pid, NULL, &snap, false, &e);
		double t2 = now_monotonic();
		target_resume_thread(&t, pid);
		double t3 = now_monotonic();
		if (rc != 0)
			continue;
		bool truncated;
		if (unwind_frames(u, &snap, ips, MAX_IPS, &nips, &truncated, &e) != 0)
			continue;
		double t4 = now_monotonic();
		size_t nf = 0;
		for (size_t k = 0; k < nips; k++) {
			size_t got = 0;
			sym_lookup(s, ips[k], k > 0, frames + nf, MAX_FRAMES - nf, &got);
			nf += got;
		}
		double t5 = now_monotonic();
		pause[n_ok] = t3 - t0;
		copy[n_ok] = t2 - t1;
		unw[n_ok] = t4 - t3;
		symw[n_ok] = t5 - t4;
		n_ok++;
		truncated_count += truncated;
		depth_sum += nips;
		if (!cold_n) {
			memcpy(cold_ips, ips, nips * sizeof(*ips));
			cold_n = nips;
		}
		usleep(200);
	}
	/* Cold: a fresh symbolizer per round resolves one sample (reports modules, loads DWARF). */
	for (int r = 0; r < COLD_ROUNDS && cold_n; r++) {
		struct symbolizer *c = NULL;
		double t0 = now_monotonic();
		if (symbolizer_new(&c, &t, strs, &e) != 0)
			break;
		size_t nf = 0;
		for (size_t k = 0; k < cold_n; k++) {
			size_t got = 0;
			sym_lookup(c, cold_ips[k], k > 0, frames + nf, MAX_FRAMES - nf, &got);
			nf += got;
		}
		symc[r] = now_monotonic() - t0;
		symbolizer_free(c);
	}
	printf("%s: %zu samples, %.1f native frames on average, %zu truncated\n", python, n_ok,
	       n_ok ? (double)depth_sum / (double)n_ok : 0.0, truncated_count);
	/* The first samples pay for cache misses; keep them in the figures (p99 shows them). */
	bench_print("pause (seize..detach)", pause, n_ok);
	bench_print("  of which regs+stack copy", copy, n_ok);
	bench_print("unwind", unw, n_ok);
	bench_print("symbolize warm", symw, n_ok);
	bench_print("symbolize cold", symc, cold_n ? COLD_ROUNDS : 0);
	unwind_snapshot_free(&snap);
out:
	symbolizer_free(s);
	unwinder_free(u);
	target_close(&t);
	interner_free(strs);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fclose(out);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench_one(argv[i]);
		return 0;
	}
	bench_one("/root/.pyenv/versions/3.10.13/bin/python3.10");
	bench_one("/root/.pyenv/versions/3.12.1/bin/python3.12");
	return 0;
}
