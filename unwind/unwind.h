/*
 * unwind.h - the native stack of one paused thread. While the thread is stopped the caller takes
 * a snapshot (registers and the top of the stack, one process_vm_readv); after it resumes the
 * thread, the snapshot is unwound with libunwind through accessors that serve memory from the
 * copy and unwind tables from a per-module cache. Nothing here knows about Python.
 */
#ifndef MIXSPY_UNWIND_H
#define MIXSPY_UNWIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "../src/target.h"
#include "../src/util/util.h"

struct unwind_snapshot {
	pid_t tid;
	struct user_regs_struct regs;
	uint8_t *stack;       /* stack + stack_skip: copy of [sp, sp + stack_len) */
	size_t stack_skip;
	size_t stack_cap;
	size_t stack_len;
	uint64_t sp;
	uint64_t stack_end;   /* end of the mapping that holds sp (0: not known) */
	uint64_t guess_addr;  /* the range unwind_stack_guess proposed */
	size_t guess_len;
	bool partial;         /* only pc and sp are known (unwind_capture_asleep) */
	bool whole;           /* the copy is all there is (taken in the tick, unwind_capture_regs): a
			       * walk that needs more of the stack fails, it does not read it live */
};

struct unwinder;

int unwinder_new(struct unwinder **out, struct target *t, struct err *e);
void unwinder_free(struct unwinder *u);
/* Step every frame with libunwind, not by the CFI rules kept here (MIXSPY_UNWIND=libunwind does
 * the same; the tests compare the two walks). */
void unwinder_libunwind_only(struct unwinder *u, bool on);
/* Frames stepped so far by their CFI rules here, and by libunwind. */
void unwinder_step_counts(const struct unwinder *u, uint64_t *cfi, uint64_t *libunwind);
/* The target's maps changed (dlopen): drop what depends on them. */
void unwinder_maps_changed(struct unwinder *u);

/* Thread tid must be ptrace-stopped by the caller. Copies registers (PTRACE_GETREGS, or regs
 * when the caller has them: noted as the thread stopped) and stack. */
int unwind_capture(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs, struct unwind_snapshot *snap,
		   bool guess_ok, struct err *e);
/* The same from registers the caller has (kwalk: taken in the thread's own tick; off_cpu: noted
 * as the thread left its CPU, which it has not had since), the stack read through the target
 * (whose held copy serves it). Off its CPU the copy costs the thread nothing: it takes the wide
 * margin of a sleeper's. A walk that needs more than the copy fails with E_AGAIN. */
int unwind_capture_regs(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs, bool off_cpu,
			struct unwind_snapshot *snap, struct err *e);
/* How much stack above sp a capture of tid copies (its recent walks' need and a margin), and
 * where the mapping of its last sp ends (*end; 0 if not known). */
size_t unwind_tick_len(struct unwinder *u, pid_t tid, uint64_t *end);
/* A thread asleep in the kernel, not paused: its user pc and sp (from /proc/PID/task/TID/syscall)
 * are all the registers known, and its stack stands still while it sleeps. Copies the stack from
 * sp up (as much as the thread's recent walks used); a walk of this snapshot that needs any
 * other register fails with E_AGAIN (unwind_frames) - pause the thread then. The caller checks
 * that the thread did not run meanwhile. */
int unwind_capture_asleep(struct unwinder *u, pid_t tid, uint64_t sp, uint64_t pc, struct unwind_snapshot *snap,
			  struct err *e);
/* The stack range unwind_capture_asleep will read for tid at sp (for target_hold). */
struct target_iov unwind_asleep_range(struct unwinder *u, pid_t tid, uint64_t sp);
/* Before the capture, while paused: the stack range to read ahead (*iov, into snap), from the
 * thread's sp at its last capture - a page below it, and above it as much as its recent walks
 * used. The caller reads it with its own first read of the pause; when the registers then show
 * the range holds the stack (unwind_capture with guess_ok), that is the copy and the capture
 * costs no read of its own. False: no guess (first capture of tid). */
bool unwind_stack_guess(struct unwinder *u, pid_t tid, struct unwind_snapshot *snap, struct target_iov *iov);
void unwind_snapshot_free(struct unwind_snapshot *snap);

/* Unwind a snapshot (thread may be running again): ips[0] is the pc of the innermost frame,
 * the others are return addresses. *truncated is set when the walk stopped because the
 * snapshot ended or max was reached, rather than at the outermost frame. E_AGAIN: a partial
 * snapshot whose walk needed a register it does not have, or did not reach the outermost
 * frame (nothing in ips is to be used). */
int unwind_frames(struct unwinder *u, const struct unwind_snapshot *snap, uint64_t *ips, size_t max,
		  size_t *n, bool *truncated, struct err *e);

#endif
