/*
 * native.h - the --native half of a spy: open the unwinder, symbolizer and Cython maps for a
 * process; capture a paused thread's registers and stack; later, unwind, symbolize and merge
 * that snapshot with the thread's Python frames into spy->frames (via merge.h).
 */
#ifndef MIXSPY_NATIVE_H
#define MIXSPY_NATIVE_H

#include <stdbool.h>
#include <sys/types.h>

#include "python/python.h"
#include "util/util.h"

struct spy;

int native_open(struct spy *s, struct err *e);
void native_close(struct spy *s);
/* Notice modules loaded (dlopen) or unloaded since the maps were last read: re-reads them when
 * NATIVE_MAPS_EVERY seconds have passed (now: CLOCK_MONOTONIC). A sample whose walk meets code
 * outside the known maps has them re-read at once (native_merge). Nothing without --native. */
#define NATIVE_MAPS_EVERY 0.25
void native_check_maps(struct spy *s, double now);
/* Thread tid is paused: the stack range to read ahead with the pause's first read (false: none;
 * see unwind_stack_guess), then the capture of what unwinding needs, told whether that read got
 * the range. *snapshot is NULL on failure. */
bool native_stack_guess(struct spy *s, pid_t tid, struct target_iov *iov);
void native_capture(struct spy *s, pid_t tid, bool guess_ok, void **snapshot);
/* --bpf: the stack a capture from a copy in the tick needs above sp (bytes) and where the stack
 * it was last seen on ends (*end, 0 if not known), and the capture
 * from the registers the tick took (22 words of user_regs_struct's start; the stack comes from
 * the held copy), in the same slot as native_capture's. off_cpu: the registers a switch watch
 * noted as the thread left its CPU (all of user_regs_struct), the stack read where it stands. */
size_t native_tick_len(struct spy *s, pid_t tid, uint64_t *end);
/* Frames stepped so far by their CFI rules and by libunwind (0 and 0 without --native). */
void native_step_counts(struct spy *s, uint64_t *cfi, uint64_t *libunwind);
void native_capture_regs(struct spy *s, pid_t tid, const uint64_t *regs, size_t nregs, bool off_cpu, void **snapshot);
/* A thread asleep in the kernel, not paused, whose user pc and sp are known (its syscall file):
 * the stack range its capture reads (for target_hold), and the capture itself, kept in the
 * tick's slot `slot` (one per thread) until merged. The caller checks that the thread did not
 * run while it was read. */
bool native_asleep_range(struct spy *s, pid_t tid, uint64_t sp, struct target_iov *iov);
void native_capture_asleep(struct spy *s, size_t slot, pid_t tid, uint64_t sp, uint64_t pc, void **snapshot);
void native_snapshot_free(void *snapshot);
/* Append the merged (native + Python) frames of th, leaf first, to s->frames; *waiting is set
 * when the thread is blocked taking the GIL. False, with nothing appended, when the snapshot is
 * of a thread read asleep whose walk needs more registers than its pc and sp: pause it. */
bool native_merge(struct spy *s, struct py_thread *th, void *snapshot, bool *waiting);

/* The instruction at pc (a native frame's addr) in the target, as "mnemonic operands"; for
 * `dump --native`. 0, or a negative code (also when the spy has no native state). */
int native_instruction(struct spy *s, uint64_t pc, char *buf, size_t len);

#endif
