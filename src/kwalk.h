/*
 * kwalk.h - memory of a running thread copied inside the kernel, in a tick of its own CPU clock,
 * instead of in a ptrace stop (record and top with --bpf). An eBPF program on a per-thread
 * CPU-clock perf event, armed for one overflow at a time, copies the ranges asked for (what the
 * thread's last chain read needed: py_next_reads) while the thread stands in the timer
 * interrupt, and hands them back through a ring buffer; the thread loses the copy's time and the
 * interrupt's, and is never scheduled out for it. Needs root (CAP_BPF and CAP_PERFMON) and a
 * kernel with BPF ring buffers (5.8+); kwalk_open says when it cannot be had.
 */
#ifndef MIXSPY_KWALK_H
#define MIXSPY_KWALK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "target.h"
#include "util/util.h"

struct kwalk;

int kwalk_open(struct kwalk **out, struct err *e);
void kwalk_close(struct kwalk *k);
/* Arm thread tid and wait up to timeout_us for the copy of v[0..n): each buf filled and ok[i]
 * set where its range was copied (ranges past what one copy holds are not). *copy_us: how long
 * the copy held the thread. 0: copied; E_AGAIN: the thread did not run long enough for the
 * tick to catch it (asleep, or waiting for a CPU) - pause it instead; E_NOPROC: no such thread. */
int kwalk_readv(struct kwalk *k, pid_t tid, const struct target_iov *v, size_t n, bool *ok, double timeout_us,
		double *copy_us, struct err *e);
/* Thread tid is gone: let its perf event go. */
void kwalk_forget(struct kwalk *k, pid_t tid);

#endif
