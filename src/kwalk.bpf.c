/*
 * kwalk.bpf.c - the kernel half of the copy-in-the-tick (see kwalk.h). It runs on a CPU-clock
 * perf event of the one thread user space armed, in the timer interrupt that caught the thread
 * on its own CPU: the thread stands where it was while the ranges user space asked for are
 * copied into a ring buffer record, as they would be in a ptrace stop, but nothing schedules it
 * out or wakes it back up. A range may start at a pointer read from the copy of an earlier one:
 * that is how a chain (frame -> previous frame, chunk -> previous chunk) is followed here, with
 * no knowledge of what it is a chain of. One copy per arming: the copy takes the arm.
 */
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

#include "kwalk_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);   /* user space writes the request in place */
	__type(key, int);
	__type(value, struct kwalk_req);
} req SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);   /* one record at a time: a small ring stays in the cache */
} records SEC(".maps");

#define RMASK (KWALK_MAX_RANGES - 1)

struct copy_ctx {
	const struct kwalk_req *q;
	struct kwalk_rec *r;
	unsigned long long sp;
};

/* Range k of the request into the record (bpf_loop: verified once, not once per range). */
static long copy_range(unsigned int k, void *data)
{
	struct copy_ctx *c = data;
	const struct kwalk_req *q = c->q;
	struct kwalk_rec *r = c->r;
	k &= RMASK;
	const struct kwalk_range *g = &q->r[k];
	unsigned long long addr = g->addr;
	unsigned int len = g->len, off = g->off;
	r->addr[k] = 0;
	if (len > KWALK_PIECE || off >= KWALK_DATA)
		return 0;
	if (g->base == KWALK_BASE_SP) {
		if (!c->sp)
			return 0;
		addr += c->sp;
	} else if (g->base >= 0) {
		unsigned int b = (unsigned int)g->base;
		if (b >= k || !KWALK_OK(r, b))
			return 0;
		unsigned int at = q->r[b & RMASK].off + g->at;
		unsigned long long ptr = *(unsigned long long *)&r->data[at & (KWALK_DATA - 8)];
		if (!ptr)
			return 0;
		addr += ptr;
	}
	/* clipped where it must end (the stack's end, above sp): a read across it would fail whole */
	len = kwalk_clip(addr, len, g->end);
	if (len == 0 || len > KWALK_PIECE)
		return 0;
	r->addr[k] = addr;
	if (bpf_probe_read_user(&r->data[off & (KWALK_DATA - 1)], len, (void *)addr) == 0)
		r->ok[(k / 64) & (KWALK_MAX_RANGES / 64 - 1)] |= 1ull << (k % 64);
	return 0;
}

/* The copy for the armed thread, if it is the one running here. uregs: the user registers the
 * interrupt saved, when it came from user mode; else those saved at the top of the thread's
 * kernel stack when it entered the kernel (a system call, a fault, an interrupt). */
static __always_inline void take(const unsigned long long *uregs)
{
	int zero = 0;
	struct kwalk_req *q = bpf_map_lookup_elem(&req, &zero);
	if (!q)
		return;
	unsigned int tid = (unsigned int)bpf_get_current_pid_tgid();
	if (!tid || (unsigned int)q->arm != tid)
		return;   /* armed for another thread: an old event */
	__sync_fetch_and_add(&q->busy, 1);
	unsigned long long a = *(volatile unsigned long long *)&q->arm;
	if ((unsigned int)a != tid || __sync_val_compare_and_swap(&q->arm, a, 0) != a)
		goto out;   /* disarmed meanwhile (an old event) */
	struct kwalk_rec *r = bpf_ringbuf_reserve(&records, sizeof *r, 0);
	if (!r)
		goto out;   /* the reader is behind: no copy, it pauses instead */
	r->t0 = bpf_ktime_get_ns();
	r->seq = a >> 32;
	r->tid = tid;
	for (int k = 0; k < KWALK_MAX_RANGES / 64; k++)
		r->ok[k] = 0;
	if (uregs) {
#pragma unroll
		for (int i = 0; i < KWALK_NREGS; i++)
			r->regs[i] = uregs[i];
	} else {
		struct pt_regs *k = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
		if (bpf_probe_read_kernel(r->regs, sizeof r->regs, k) || (r->regs[17] & 3) != 3)
			r->regs[19] = 0;   /* no user sp known (cs, regs[17], not user's): no range from it */
	}
	struct copy_ctx c = { q, r, r->regs[19] };
	bpf_loop(q->n < KWALK_MAX_RANGES ? q->n : KWALK_MAX_RANGES, copy_range, &c, 0);
	r->t1 = bpf_ktime_get_ns();
	/* no wake-up: woken from the thread's own CPU, mixspy would be pulled onto it and take the
	 * CPU from the thread it just spared a stop (kwalk.c polls instead) */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
out:
	__sync_fetch_and_sub(&q->busy, 1);
}

/* A tick of the thread's own CPU clock, armed for one overflow. Returning 1 lets the event's
 * overflow limit (PERF_EVENT_IOC_REFRESH 1) turn it off again. */
SEC("perf_event")
int kwalk(struct bpf_perf_event_data *ctx)
{
	take((ctx->regs.cs & 3) == 3 ? (const unsigned long long *)&ctx->regs : 0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
