/*
 * kwalk.h - memory of a running thread copied inside the kernel, in a tick of its own CPU clock,
 * instead of in a ptrace stop (record and top with --bpf). An eBPF program on a per-thread
 * CPU-clock perf event, armed for one overflow at a time, copies the ranges asked for while the
 * thread stands in the timer interrupt - each at an address, or at a pointer found in an earlier
 * range's copy, which is how the Python reader has it follow a frame chain (py_tick_reads) - and
 * hands them back through a ring buffer (the request is written in place, in a map mmapped by
 * mixspy, and taken by exactly one copy). The thread loses the copy's time and the interrupt's,
 * and is never scheduled out for it. Needs root (CAP_BPF and CAP_PERFMON) and a kernel with BPF
 * ring buffers (5.8+); kwalk_open says when it cannot be had.
 */
#ifndef MIXSPY_KWALK_H
#define MIXSPY_KWALK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kwalk_abi.h"
#include "target.h"
#include "util/util.h"

struct kwalk;

int kwalk_open(struct kwalk **out, struct err *e);
void kwalk_close(struct kwalk *k);
/* Arm thread tid and wait up to timeout_us for the copy of c[0..n). 0: *out[0..*nout) are the
 * ranges copied, at the addresses they were found (valid until the next call), copy[] when the
 * copy began (CLOCK_MONOTONIC seconds) and how long it held the thread (microseconds), and regs
 * (may be NULL; KWALK_NREGS words, user_regs_struct's first) its user registers then. E_AGAIN: the thread did not run long enough for the tick to
 * catch it (asleep, or waiting for a CPU) - pause it instead; E_NOPROC: no such thread. */
int kwalk_copy(struct kwalk *k, pid_t tid, const struct target_chase *c, size_t n, double timeout_us,
	       const struct target_iov **out, size_t *nout, double copy[2], uint64_t *regs, struct err *e);
/* Thread tid is gone: let its perf event go. */
void kwalk_forget(struct kwalk *k, pid_t tid);

#endif
