/*
 * floor.c - what this machine charges for a pause before mixspy reads anything: a child busy in
 * a plain C loop (no Python, writing over a 32 KB buffer as a running thread writes its stack) is
 * seized once and then, RATE times a second for SECONDS, interrupted, waited for, and let go -
 * the same calls mixspy's pause makes (PTRACE_INTERRUPT, a waitpid poll, PTRACE_CONT). Each
 * pause is timed as mixspy times its own: from before the interrupt to after the resume. Of
 * every three pauses, one reads nothing, one copies COPY bytes of the child's buffer while it
 * stands (one process_vm_readv, as a --native pause copies stack and frames), and one copies
 * them too, after reading them once just before the interrupt and throwing them away (primed, as
 * mixspy's pauses of running threads are: target_prime). All three are measured side by side,
 * in the same stretch. With two CPUs or more the child runs on one and we on another.
 *
 *   floor SECONDS RATE COPY  ->  "bare N p50 p99 copy N p50 p99 primed N p50 p99" (microseconds)
 *
 * Its other mode stands in for a profiler's CPU time alone: RATE times a second it wakes and
 * spins for US microseconds, touching nothing of the target (with DUTY_MS, only in every other
 * DUTY_MS phase, as below).
 *
 *   floor burn US RATE SECONDS [DUTY_MS]
 *
 * A third stands in for the pauses alone, on a thread of a workload (the deep one's): RATE times
 * a second it interrupts thread TID, waits for the stop and lets it go, reading nothing - in
 * every other DUTY_MS phase of the monotonic clock, as mixspy samples under MIXSPY_DUTY, so that
 * bench.py measures what bare pauses cost that workload the way it measures mixspy.
 *
 *   floor pause TID RATE SECONDS DUTY_MS  ->  "pauses N p50 p99"
 *
 * Run by bench/bench.py; `make bench` builds it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_LEN (32 * 1024)
#define MAX_PAUSES 200000

static char child_buf[BUF_LEN];

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_row(const char *what, double *v, size_t n)
{
	qsort(v, n, sizeof *v, by_value);
	printf("%s %zu %.1f %.1f", what, n, n ? v[n / 2] : 0.0, n ? v[(size_t)((double)(n - 1) * 0.99)] : 0.0);
}

/* Wait for the interrupt's stop: poll for up to 1 ms (the child runs on another CPU and stops
 * within microseconds), then block. */
static int wait_stop(pid_t pid)
{
	int status;
	double until = now_us() + 1000.0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG | __WALL);
		if (r == pid)
			return WIFSTOPPED(status) ? 0 : -1;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_us() > until)
			break;
	}
	if (waitpid(pid, &status, __WALL) != pid)
		return -1;
	return WIFSTOPPED(status) ? 0 : -1;
}

/* In a phase off: every other phase of phase_us microseconds of the monotonic clock, those
 * where floor(t / phase_us) is odd (as under MIXSPY_DUTY); never with phase_us 0. */
static int phase_off(double phase_us)
{
	return phase_us > 0 && ((long long)(now_us() / phase_us) & 1);
}

static int burn(double us, int rate, double secs, double duty_ms)
{
	struct timespec gap = { 0, 1000000000L / rate };
	double end = now_us() + secs * 1e6, phase = duty_ms * 1e3;
	volatile unsigned long spins = 0;
	while (now_us() < end) {
		nanosleep(&gap, NULL);
		if (phase_off(phase))
			continue;
		double until = now_us() + us;
		while (now_us() < until)
			spins++;
	}
	return 0;
}

static int pause_only(pid_t tid, int rate, double secs, double duty_ms)
{
	double *v = calloc(MAX_PAUSES, sizeof(double));
	size_t n = 0;
	if (!v || ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
		perror("floor: PTRACE_SEIZE");
		free(v);
		return 1;
	}
	struct timespec gap = { 0, 1000000000L / rate };
	double end = now_us() + secs * 1e6, phase = duty_ms * 1e3;
	int rc = 0;
	while (now_us() < end && n < MAX_PAUSES) {
		nanosleep(&gap, NULL);
		if (phase_off(phase))
			continue;
		double t0 = now_us();
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 || wait_stop(tid) != 0 || ptrace(PTRACE_CONT, tid, 0, 0) != 0) {
			perror("floor: pause");
			rc = 1;
			break;
		}
		v[n++] = now_us() - t0;
	}
	/* a detach needs the thread stopped */
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) == 0 && wait_stop(tid) == 0)
		ptrace(PTRACE_DETACH, tid, 0, 0);
	print_row("pauses", v, n);
	printf("\n");
	free(v);
	return rc;
}

int main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "burn") && atof(argv[2]) >= 0 && atoi(argv[3]) > 0)
		return burn(atof(argv[2]), atoi(argv[3]), atof(argv[4]), argc == 6 ? atof(argv[5]) : 0);
	if (argc == 6 && !strcmp(argv[1], "pause") && atoi(argv[2]) > 0 && atoi(argv[3]) > 0 && atof(argv[5]) >= 1)
		return pause_only((pid_t)atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atof(argv[5]));
	if (argc != 4) {
		fprintf(stderr, "usage: floor SECONDS RATE COPY | floor burn US RATE SECONDS [DUTY_MS] | floor pause TID RATE SECONDS DUTY_MS\n");
		return 2;
	}
	double secs = atof(argv[1]);
	int rate = atoi(argv[2]);
	size_t copy = (size_t)atol(argv[3]);
	if (secs <= 0 || rate <= 0 || copy > BUF_LEN) {
		fprintf(stderr, "floor: SECONDS and RATE must be positive, COPY at most %d\n", BUF_LEN);
		return 2;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pid_t pid = fork();
	if (pid < 0) {
		perror("floor: fork");
		return 1;
	}
	if (pid == 0) {
		if (ncpu > 1)
			pin_to(1);
		for (unsigned long i = 0;; i++)
			child_buf[(i * 64) % BUF_LEN] = (char)i;
	}
	if (ncpu > 1)
		pin_to(0);
	int rc = 1;
	double *bare = calloc(MAX_PAUSES, sizeof(double)), *copied = calloc(MAX_PAUSES, sizeof(double));
	double *primed = calloc(MAX_PAUSES, sizeof(double));
	char *local = malloc(BUF_LEN), *thrown = malloc(BUF_LEN);
	size_t nb = 0, nc = 0, np = 0;
	if (!bare || !copied || !primed || !local || !thrown || ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
		perror("floor: PTRACE_SEIZE");
		goto out;
	}
	struct timespec gap = { 0, 1000000000L / rate };
	double end = now_us() + secs * 1e6;
	for (int i = 0; now_us() < end && nb < MAX_PAUSES && nc < MAX_PAUSES && np < MAX_PAUSES; i++) {
		int kind = i % 3;   /* 0 bare, 1 copy, 2 primed copy */
		nanosleep(&gap, NULL);
		struct iovec r = { child_buf, copy };
		if (kind == 2) {
			struct iovec t = { thrown, copy };
			process_vm_readv(pid, &t, 1, &r, 1, 0);
		}
		double t0 = now_us();
		if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0 || wait_stop(pid) != 0) {
			perror("floor: pause");
			goto out;
		}
		if (kind) {
			struct iovec l = { local, copy };
			if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)copy) {
				perror("floor: process_vm_readv");
				goto out;
			}
		}
		if (ptrace(PTRACE_CONT, pid, 0, 0) != 0) {
			perror("floor: PTRACE_CONT");
			goto out;
		}
		double t = now_us() - t0;
		if (kind == 2)
			primed[np++] = t;
		else if (kind == 1)
			copied[nc++] = t;
		else
			bare[nb++] = t;
	}
	print_row("bare", bare, nb);
	printf(" ");
	print_row("copy", copied, nc);
	printf(" ");
	print_row("primed", primed, np);
	printf("\n");
	rc = 0;
out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, __WALL);
	free(bare);
	free(copied);
	free(primed);
	free(local);
	free(thrown);
	return rc;
}
