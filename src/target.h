/*
 * target.h - one target process: its pid, memory maps, memory reads, threads, pausing and idle
 * state. Reads use process_vm_readv with /proc/PID/mem as the fallback. Nothing here knows
 * about Python.
 */
#ifndef MIXSPY_TARGET_H
#define MIXSPY_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/util.h"

struct map {
	uint64_t start, end, offset;
	uint64_t inode;
	bool r, w, x;
	char *path;   /* NULL for anonymous mappings; "[stack]" etc. kept as is */
};

struct target_run;
struct target_held {
	uint64_t addr;
	size_t len, off;   /* off: where its bytes are in held_buf */
};

struct target {
	pid_t pid;
	bool launched;        /* we started it (so we may wait for it) */
	int exit_status;      /* for launched targets, once reaped: a shell-like status (128+sig) */
	bool reaped;
	int memfd;            /* /proc/PID/mem, opened lazily; -1 */
	bool no_vm_readv;     /* process_vm_readv is not available (ENOSYS) */
	char *exe;            /* readlink /proc/PID/exe */
	char *cmdline;        /* space-joined argv */
	char root[48];        /* "/proc/PID/root" for files in the target's mount namespace */
	VEC(struct map) maps;
	char *maps_raw;       /* last /proc/PID/maps text, to notice changes */
	uint64_t maps_generation;  /* bumped whenever the maps changed */
	/* Threads under PTRACE_SEIZE: tid -> TRACEE_* bits (see target.c). With keep_seized they
	 * stay seized between pauses (an interrupt + continue is cheaper than seize + interrupt +
	 * detach) and target_service forwards the signals they stop for; otherwise each resume
	 * detaches. */
	struct hmap tracees;
	bool keep_seized;
	/* /proc/PID/task/TID/{stat,syscall,schedstat} kept open between samples: (tid << 2 | file) -> fd */
	struct hmap task_fds;
	/* tid -> mapping of its switch watch (see target_watch); watch_off: none can be opened */
	struct hmap watches;
	bool watch_off;
	bool watch_regs;      /* watches note the user registers at each switch out (--native) */
	bool watch_args;      /* or (Python-only) only sp, pc and rdi: where it sleeps, and on what */
	/* tid -> the CPU it last ran on (from its stat, read by target_thread_running) */
	struct hmap task_cpu;
	/* target_readv's scratch for reading neighbouring ranges as one (kept between calls) */
	VEC(struct target_run) runs;
	VEC(uint32_t) order;
	VEC(uint8_t) run_buf;
	/* target_hold: ranges copied ahead, which reads are served from until target_unhold */
	VEC(struct target_held) held;
	VEC(uint8_t) held_buf;
	VEC(struct target_iov) held_iov;   /* scratch of target_hold and of reads around it */
	VEC(bool) held_ok;
	bool holding;
	bool hold_prefix;       /* target_hold_copied's `prefix` */
	/* target_prime's scratch: what it reads is thrown away */
	VEC(uint8_t) prime_buf;
	VEC(struct target_iov) prime_iov;
	VEC(bool) prime_ok;
	uint64_t primes;        /* target_prime's reads (for MIXSPY_STATS; not in `reads`) */
	uint64_t held_served;   /* reads served from them (for MIXSPY_STATS) */
	uint64_t reads;         /* system calls that read its memory (for MIXSPY_STATS) */
};

/* A wait status of a process that ended as a shell reports it: its exit code, or 128 + signal. */
int target_exit_code(int status);

/* Attach to an existing process (checks it exists and we may read it). */
int target_attach(struct target *t, pid_t pid, struct err *e);
/* Start argv as a child; it runs at once. stdout/stderr are inherited. */
int target_launch(struct target *t, char *const argv[], struct err *e);
/* For launched targets: fill exe, cmdline and maps once the program has exec'd. */
int target_launched_ready(struct target *t, struct err *e);
void target_close(struct target *t);

/* Read len bytes at addr: 0, or E_READ / E_NOPROC. Never partial. */
int target_read(struct target *t, uint64_t addr, void *buf, size_t len);
/* Read up to len bytes, returning how many were read (>= 0) or a negative code. */
ssize_t target_read_partial(struct target *t, uint64_t addr, void *buf, size_t len);
/* Many reads in one system call (process_vm_readv with several remote iovecs). ok[i] tells
 * whether read i was complete. Returns the number of complete reads. Ranges that lie close
 * together are read as one (see target.c). */
struct target_iov {
	uint64_t addr;
	void *buf;
	size_t len;
};
size_t target_readv(struct target *t, const struct target_iov *iov, size_t n, bool *ok);
/* Copy the ranges want[0..n) (their buf is ignored) in as few reads as target_readv makes, and
 * serve every later read that lies inside one of them from that copy until target_unhold: the
 * memory of threads that stand still, read for all of them at once instead of a few reads each.
 * Only the ranges asked for serve reads (not the gaps between them that a merged read also
 * copied), so a read of anything else - a word that must be fresh - still reaches the target.
 * Returns how many ranges were copied. */
size_t target_hold(struct target *t, const struct target_iov *want, size_t n);
/* Read the ranges want[0..n) (their buf is ignored; at most TARGET_PRIME_MAX bytes in all, the
 * first ones first) and throw the bytes away, just before the thread they belong to is paused to
 * read them again. The pause's reads then find warm what a read after 10 ms of idling finds cold
 * - the target's page tables and pages, the kernel's copy path: measured with bench/floor.c at
 * 100 Hz, a 27 KB copy in a pause cost ~30 us more than a bare pause, and ~1 us more when the
 * same range had been read just before the interrupt (into another buffer). Costs mixspy one
 * read; the thread runs meanwhile. */
#define TARGET_PRIME_MAX (256 * 1024)
void target_prime(struct target *t, const struct target_iov *want, size_t n);
/* Hold bytes already copied (v[i].buf, from v[i].addr) as target_hold holds what it reads. With
 * `prefix`, a partial read (target_read_partial) that starts inside a held range is served the
 * part it holds, as a read at the end of a mapping is (kwalk's copies end where a chunk ends). */
void target_hold_copied(struct target *t, const struct target_iov *v, size_t n, bool prefix);
/* A range to copy with others in one go (kwalk.h): at addr, or - base >= 0 - at the pointer the
 * copy of range `base` holds `at` bytes into it, plus addr (KWALK_BASE_SP: at the thread's user
 * stack pointer, plus addr). A range that would run past `end` (when not 0, and it starts below
 * it) stops there: a copy from sp ends where the stack's mapping does. */
struct target_chase {
	uint64_t addr;
	size_t len;
	int base;
	size_t at;
	uint64_t end;
};
void target_unhold(struct target *t);
/* Read a NUL-terminated string of at most max-1 bytes. */
int target_read_cstr(struct target *t, uint64_t addr, char *buf, size_t max);
static inline int target_read_u64(struct target *t, uint64_t addr, uint64_t *v) { return target_read(t, addr, v, 8); }

/* Re-read /proc/PID/maps; *changed is set when it differs from last time. */
int target_refresh_maps(struct target *t, bool *changed, struct err *e);
const struct map *target_map_at(const struct target *t, uint64_t addr);
bool target_is_mapped(const struct target *t, uint64_t addr, size_t len);
/* Path to open a file of the target (through /proc/PID/root). Caller frees. */
char *target_file_path(const struct target *t, const char *path);

/* Thread ids from /proc/PID/task. */
int target_threads(struct target *t, pid_t **tids, size_t *n, struct err *e);
/* 1 when the thread's state is R (running), 0 when not, negative when it is gone. */
int target_thread_running(struct target *t, pid_t tid);
/* /proc/PID/task/TID/<file> (TASK_STAT, TASK_SYSCALL or TASK_SCHEDSTAT) into buf, NUL-terminated:
 * the length, or -1. The file stays open between calls (each read at offset 0 makes it anew), so
 * a sample costs one system call per file instead of three; target_task_files_trim closes them
 * all once more than max are open (threads come and go). */
enum { TASK_STAT = 0, TASK_SYSCALL = 1, TASK_SCHEDSTAT = 2 };
ssize_t target_task_read(struct target *t, pid_t tid, int file, char *buf, size_t size);
void target_task_files_trim(struct target *t, size_t max);
/* A switch watch on a thread: a perf event of the thread's own that notes, in a ring that is
 * mapped read-only, each time the thread is put on or taken off a CPU. Its head moves with each
 * note, so a thread whose head did not move since it was read asleep has slept on, and what was
 * read then holds - without a system call (reading 80 idle threads' schedstat every tick was a
 * third of mixspy's CPU on the 100-thread workload). The last note tells a thread taken off its
 * CPU while still runnable (preempted: it stands still until it is put back). Each note costs the
 * thread a little at each switch (some hundreds of ns). target_watch returns 0 when the thread is
 * watched (now or already), -1 when not: not allowed here (no perf events, perf_event_paranoid,
 * seccomp, locked memory limit: then no more are tried), too many, or the thread is gone.
 * With watch_regs set (--native), each switch out also notes the thread's user registers as
 * they stand until it runs again (those of its system call, or where it was preempted), when
 * perf_event_paranoid allows (else watch_regs is cleared and watches note switches only).
 * With watch_args set instead, only rsp, rip and rdi are noted (a system call's first argument:
 * a futex's address), which costs a switch less (same fallback).
 * target_switches gives the head of a watched thread (false when it is not watched);
 * target_off_cpu too, and where its last note left it: taken off its CPU while runnable
 * (preempted), or going to sleep (it may have been woken since, and wait for a CPU) - or
 * stopped by a pause of ours, which looks the same; with regs
 * (may be NULL), the registers it left with (TARGET_NREGS words, laid out as struct
 * user_regs_struct; with watch_args only rsp, rip and rdi are filled in), *got_regs saying
 * whether they were noted.
 * target_watch_prune drops the watches of threads not in live (tid -> anything; NULL: all). The
 * MIXSPY_NO_SWITCH_WATCH environment variable turns watches off. */
int target_watch(struct target *t, pid_t tid);
bool target_switches(struct target *t, pid_t tid, uint64_t *head);
enum target_cpu { CPU_UNKNOWN, CPU_ON, CPU_PREEMPTED, CPU_SLEPT };
#define TARGET_NREGS 27
enum target_cpu target_off_cpu(struct target *t, pid_t tid, uint64_t *head, uint64_t *regs, bool *got_regs);
/* A thread paused by us (target_pause_thread), watched with registers: the registers its stop's
 * switch out noted (TARGET_NREGS words, as PTRACE_GETREGS gives them, orig_rax aside) - false
 * when that note is not in the ring yet (the stop is reported before the thread is off its
 * CPU), or there is no watch with registers. */
bool target_stop_regs(struct target *t, pid_t tid, uint64_t *regs);
void target_watch_prune(struct target *t, const struct hmap *live);
/* Process still exists and is not a zombie. For launched targets this also reaps it. */
bool target_alive(struct target *t);
/* /proc/PID/stat state letter, or 0 when gone. */
char target_state(pid_t pid);
/* Parent pid, or -1. */
pid_t target_ppid(pid_t pid);
/* Read /proc/PID/cmdline as a space-joined string (caller frees); NULL when gone. */
char *target_read_cmdline(pid_t pid);

/* Pause one thread (PTRACE_SEIZE unless already seized, PTRACE_INTERRUPT, wait for the stop)
 * and resume it (PTRACE_CONT when keep_seized, else PTRACE_DETACH; a signal that arrived
 * meanwhile is delivered). A paused thread must always be resumed. */
int target_pause_thread(struct target *t, pid_t tid, struct err *e);
int target_resume_thread(struct target *t, pid_t tid);
/* For keep_seized targets, between samples: forward at once the signals seized threads stopped
 * for, keep job-control stops in force, forget threads that exited, and release threads not
 * paused for a while. Cheap: one waitpid(WNOHANG) per seized thread. */
void target_service(struct target *t);
/* Detach every seized thread (each is interrupted first: only a stopped tracee can be
 * detached). target_close does it too; the kernel does it if mixspy dies. */
void target_release_all(struct target *t);
/* Paused by us in user space with pc on a syscall instruction: the system call it is about to
 * make (number, first argument). A sleep that a pause interrupts is restarted so: the kernel puts
 * the pc back on the instruction and the call's number back in rax, and a thread that loses its
 * CPU before it gets there is stopped by the next pause outside any system call, its syscall
 * file reading -1 - an idle thread that would pass for a running one. Measured: 180 of 3,000
 * pauses of a thread in time.sleep, one pause after another, on a loaded machine. */
bool target_pending_syscall(struct target *t, pid_t tid, uint64_t pc, long *nr, uint64_t *arg0);
/* Register fs_base of a stopped thread (pthread_self on x86_64). */
int target_thread_fs_base(pid_t tid, uint64_t *fs_base);

#endif
