/*
 * test_target.c - target_pending_syscall against a live child: a thread paused on the instruction
 * that makes a system call is taken to be in that call. The state is the one a sleep our pause
 * interrupted is left in when the thread loses its CPU on its way back in; here it is made
 * exactly, by moving a paused child's pc onto a syscall instruction with the call's number in rax.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/target.h"
#include "unit.h"

/* A syscall instruction of our own, and after it a trap should the call ever return. */
extern const char pending_syscall_insn[];
__asm__(".text\n"
	".globl pending_syscall_insn\n"
	"pending_syscall_insn:\n"
	"\tsyscall\n"
	"\tud2\n");

static struct timespec long_sleep = { 60, 0 };

static void spin(int fd)
{
	if (write(fd, "r", 1) != 1)
		_exit(1);
	for (;;)
		__asm__ volatile("pause");
}

static pid_t start_spinner(void)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		spin(p[1]);
	}
	close(p[1]);
	char c;
	ssize_t r = pid > 0 ? read(p[0], &c, 1) : -1;   /* readiness: it is in its loop */
	close(p[0]);
	return r == 1 ? pid : -1;
}

/* The syscall file's nr and pc (the last field). */
static int syscall_file(struct target *t, pid_t tid, long *nr, uint64_t *pc)
{
	char buf[256];
	if (target_task_read(t, tid, TASK_SYSCALL, buf, sizeof buf) <= 0)
		return -1;
	char *end;
	*nr = strtol(buf, &end, 10);
	if (end == buf)
		return 1;   /* running */
	const char *last = strrchr(buf, ' ');
	*pc = last ? strtoull(last + 1, NULL, 16) : 0;
	return 0;
}

static void test_pending_syscall(void)
{
	pid_t pid = start_spinner();
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	struct target t;
	struct err e = { 0 };
	CHECK_EQ_INT(target_attach(&t, pid, &e), 0);
	long nr = 0, got_nr = -2;
	uint64_t pc = 0, arg0 = 0;
	/* paused until it is caught in its loop (first it may be still on its way out of write) */
	for (int i = 0; i < 1000; i++) {
		CHECK_EQ_INT(target_pause_thread(&t, pid, &e), 0);
		if (syscall_file(&t, pid, &nr, &pc) == 0 && nr == -1)
			break;
		target_resume_thread(&t, pid);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	/* paused in its loop, outside any system call, on a pause instruction: no call pending */
	CHECK_EQ_INT(syscall_file(&t, pid, &nr, &pc), 0);
	CHECK_EQ_INT(nr, -1);
	CHECK(pc != 0);
	CHECK(!target_pending_syscall(&t, pid, pc, &got_nr, &arg0));

	/* moved onto the syscall instruction, nanosleep's number in rax: nanosleep is pending */
	struct user_regs_struct r;
	CHECK(ptrace(PTRACE_GETREGS, pid, 0, &r) == 0);
	r.rip = (uint64_t)(uintptr_t)pending_syscall_insn;
	r.rax = SYS_nanosleep;
	r.rdi = (uint64_t)(uintptr_t)&long_sleep;
	r.rsi = 0;
	CHECK(ptrace(PTRACE_SETREGS, pid, 0, &r) == 0);
	CHECK_EQ_INT(syscall_file(&t, pid, &nr, &pc), 0);
	CHECK_EQ_INT(nr, -1);   /* what /proc says: outside any call */
	CHECK_EQ_INT(pc, (uint64_t)(uintptr_t)pending_syscall_insn);
	CHECK(target_pending_syscall(&t, pid, pc, &got_nr, &arg0));
	CHECK_EQ_INT(got_nr, SYS_nanosleep);
	CHECK_EQ_INT(arg0, (uint64_t)(uintptr_t)&long_sleep);
	/* a pc the registers do not hold (a stale read) is not taken */
	CHECK(!target_pending_syscall(&t, pid, pc + 1, &got_nr, &arg0));

	/* let go, it makes the call: /proc now says so itself, and nothing is pending any more */
	CHECK_EQ_INT(target_resume_thread(&t, pid), 0);
	int rc = 1;
	for (int i = 0; i < 2000 && (rc != 0 || nr != SYS_nanosleep); i++) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
		rc = syscall_file(&t, pid, &nr, &pc);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(nr, SYS_nanosleep);
	CHECK(!target_pending_syscall(&t, pid, pc, &got_nr, &arg0));   /* not paused by us */
	target_close(&t);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	RUN(test_pending_syscall);
	return unit_report("target");
}
