/*
 * kwalk.c - the user half of the read-in-the-tick (see kwalk.h): loads the eBPF object built
 * from kwalk.bpf.c (linked into mixspy, kwalk_obj.S), keeps one disabled CPU-clock perf event
 * per thread it was asked about, and per read writes the ranges to copy into the mmapped
 * request, arms it for the thread, arms that event for one overflow (PERF_EVENT_IOC_REFRESH 1)
 * and waits for the record on the ring buffer.
 *
 * The event's period is the kernel's shortest for a software clock (10 us of the thread's own
 * CPU time): a running thread is caught 10 us after it is armed, wherever it is, user or kernel
 * mode. The record says which request it answers (seq): one that comes after its read gave up
 * is dropped by the next.
 *
 * (Tried and left: the copy in the scheduler's own timer tick - the irq_vectors:local_timer_entry
 * tracepoint - which would cost the thread no interrupt of its own. On this class of VM its
 * standstills were no shorter: 90-94 us against 85-94 us, with the same 34 us copy.)
 */
#include "kwalk.h"
#include "kwalk_abi.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char kwalk_obj[], kwalk_obj_end[];

#define KWALK_PERIOD_NS 10000
#define KWALK_NAP_NS 20000
#define KWALK_BUSY_US 2000.0   /* the longest wait for a copy still under way */
#define KWALK_PAGE 4096

struct kwalk {
	struct bpf_object *obj;
	int prog_fd;
	struct ring_buffer *rb;
	struct hmap events;        /* tid -> perf event fd */
	uint32_t seq;
	struct kwalk_req *req;     /* the map's value, mmapped */
	size_t req_len;
	VEC(uint32_t) first;       /* per range asked for: its first range in req */
	/* the answer to request seq, once got: the ranges copied and their bytes */
	bool got;
	double copy_at, copy_us;
	uint64_t regs[KWALK_NREGS];
	VEC(struct target_iov) copied;
	VEC(uint8_t) bytes;
};

static int on_record(void *ctx, void *data, size_t len)
{
	struct kwalk *k = ctx;
	const struct kwalk_rec *r = data;
	if (len < sizeof *r || r->seq != k->seq || k->got)   /* an answer to an older request */
		return 0;
	k->copied.n = 0;
	/* the ranges copied fill less than KWALK_DATA (make_request): the bytes never move */
	vec_reserve(&k->bytes, KWALK_DATA);
	size_t at = 0;
	for (unsigned int j = 0; j < k->req->n && j < KWALK_MAX_RANGES; j++) {
		const struct kwalk_range *q = &k->req->r[j];
		if (!KWALK_OK(r, j) || q->off + q->len > KWALK_DATA || at + q->len > KWALK_DATA)
			continue;
		memcpy(k->bytes.v + at, r->data + q->off, q->len);
		struct target_iov v = { r->addr[j], k->bytes.v + at, kwalk_clip(r->addr[j], q->len, q->end) };
		vec_push(&k->copied, v);
		at += q->len;
	}
	memcpy(k->regs, r->regs, sizeof k->regs);
	k->copy_at = (double)r->t0 * 1e-9;   /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	k->copy_us = (double)(r->t1 - r->t0) * 1e-3;
	k->got = true;
	return 0;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level, (void)fmt, (void)ap;
	return 0;
}

int kwalk_open(struct kwalk **out, struct err *e)
{
	*out = NULL;
	libbpf_set_print(silent);
	struct kwalk *k = xcalloc(1, sizeof *k);
	hmap_init(&k->events);
	k->obj = bpf_object__open_mem(kwalk_obj, (size_t)(kwalk_obj_end - kwalk_obj), NULL);
	int rc = k->obj ? bpf_object__load(k->obj) : -errno;
	if (rc) {
		int err = rc < 0 ? -rc : errno;
		kwalk_close(k);
		return err_set(e, err == EPERM || err == EACCES ? E_PERM : E_INTERNAL,
			       "Can't load the eBPF frame walk (--bpf): %s", strerror(err));
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(k->obj, "kwalk");
	int req_fd = bpf_object__find_map_fd_by_name(k->obj, "req");
	k->prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (k->prog_fd < 0 || req_fd < 0) {
		kwalk_close(k);
		return err_set(e, E_INTERNAL, "The eBPF frame walk (--bpf) is incomplete");
	}
	long page = sysconf(_SC_PAGESIZE);
	k->req_len = (sizeof *k->req + (size_t)page - 1) & ~((size_t)page - 1);
	void *m = mmap(NULL, k->req_len, PROT_READ | PROT_WRITE, MAP_SHARED, req_fd, 0);
	if (m == MAP_FAILED) {
		int err = errno;
		kwalk_close(k);
		return err_set(e, E_INTERNAL, "Can't map the eBPF frame walk's request (--bpf): %s", strerror(err));
	}
	k->req = m;
	k->rb = ring_buffer__new(bpf_object__find_map_fd_by_name(k->obj, "records"), on_record, k, NULL);
	if (!k->rb) {
		kwalk_close(k);
		return err_set(e, E_INTERNAL, "Can't open the eBPF frame walk's ring buffer (--bpf)");
	}
	*out = k;
	return 0;
}

void kwalk_close(struct kwalk *k)
{
	if (!k)
		return;
	uint64_t tid, fd;
	for (size_t i = 0; hmap_next(&k->events, &i, &tid, &fd);)
		close((int)fd);
	hmap_free(&k->events);
	if (k->req)
		munmap(k->req, k->req_len);
	ring_buffer__free(k->rb);
	bpf_object__close(k->obj);
	vec_free(&k->first);
	vec_free(&k->copied);
	vec_free(&k->bytes);
	free(k);
}

/* The thread's event: a CPU clock of its own, off until armed, with the walk attached. */
static int event_of(struct kwalk *k, pid_t tid)
{
	uint64_t fd;
	if (hmap_get(&k->events, (uint64_t)tid, &fd))
		return (int)fd;
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_CPU_CLOCK;
	a.sample_period = KWALK_PERIOD_NS;
	a.disabled = 1;
	int f = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (f < 0)
		return -errno;
	if (ioctl(f, PERF_EVENT_IOC_SET_BPF, k->prog_fd)) {
		int err = errno;
		close(f);
		return -err;
	}
	hmap_put(&k->events, (uint64_t)tid, (uint64_t)f);
	return f;
}

void kwalk_forget(struct kwalk *k, pid_t tid)
{
	uint64_t fd;
	if (k && hmap_get(&k->events, (uint64_t)tid, &fd)) {
		close((int)fd);
		hmap_del(&k->events, (uint64_t)tid);
	}
}

/* The request for c[0..n): a range longer than KWALK_PIECE in pieces of that length, and one
 * reached through a pointer in pages (KWALK_PAGE): a read in the kernel's interrupt cannot fault
 * a page in, and fails whole if one page of it was never touched - the unused end of a data
 * stack chunk - so each page is copied or not on its own, and what was copied from the start
 * serves the walk (target_hold_copied's prefix reads). Each piece is laid after the last in the
 * record's data, 8-byte aligned, as far as they fit; those that do not fit are left out. */
static void make_request(struct kwalk *k, const struct target_chase *c, size_t n)
{
	struct kwalk_req *q = k->req;
	q->n = 0;
	k->first.n = 0;
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		vec_push(&k->first, UINT32_MAX);
		size_t len = c[i].len, step = c[i].base != -1 ? KWALK_PAGE : KWALK_PIECE;
		size_t pieces = (len + step - 1) / step;
		int base = -1;
		size_t at = 0;
		if (c[i].base == KWALK_BASE_SP) {
			base = KWALK_BASE_SP;
		} else if (c[i].base >= 0) {
			uint32_t b = (size_t)c[i].base < i ? k->first.v[c[i].base] : UINT32_MAX;
			if (b == UINT32_MAX)
				continue;
			size_t bstep = c[c[i].base].base >= 0 ? KWALK_PAGE : KWALK_PIECE;
			b += (uint32_t)(c[i].at / bstep);
			at = c[i].at % bstep;
			if (b >= q->n || at + 8 > q->r[b].len || (q->r[b].off + at) % 8)
				continue;
			base = (int)b;
		}
		if (!len || used + len >= KWALK_DATA || q->n + pieces > KWALK_MAX_RANGES)
			continue;
		k->first.v[i] = q->n;
		for (size_t p = 0; p < len; p += step) {
			size_t l = len - p < step ? len - p : step;
			q->r[q->n++] = (struct kwalk_range){ c[i].addr + p, (unsigned int)l, (unsigned int)used, base,
							     (unsigned int)at, 0, c[i].end };
			used += (l + 7) & ~(size_t)7;
		}
	}
}

/* Disarmed, and no copy under way (one reads the ranges while it runs: at most some tens of
 * microseconds). False if one still runs after KWALK_BUSY_US. */
static bool disarm(struct kwalk *k)
{
	struct kwalk_req *q = k->req;
	__atomic_store_n(&q->arm, 0, __ATOMIC_SEQ_CST);
	double until = now_monotonic() + KWALK_BUSY_US * 1e-6;
	struct timespec nap = { 0, 5000 };
	while (__atomic_load_n(&q->busy, __ATOMIC_ACQUIRE))
		if (now_monotonic() > until || nanosleep(&nap, NULL) < 0)
			return false;
	return true;
}

int kwalk_copy(struct kwalk *k, pid_t tid, const struct target_chase *c, size_t n, double timeout_us,
	       const struct target_iov **out, size_t *nout, double copy[2], uint64_t *regs, struct err *e)
{
	*out = NULL;
	*nout = 0;
	copy[0] = copy[1] = 0;
	int fd = event_of(k, tid);
	if (fd < 0)
		return err_set(e, fd == -ESRCH ? E_NOPROC : E_AGAIN, "Can't watch thread %d's clock: %s", (int)tid,
			       strerror(-fd));
	if (!disarm(k))
		return err_set(e, E_AGAIN, "The last copy in the tick is still under way");
	make_request(k, c, n);
	if (++k->seq == 0)
		k->seq = 1;
	k->got = false;
	__atomic_store_n(&k->req->arm, (uint64_t)k->seq << 32 | (uint32_t)tid, __ATOMIC_RELEASE);
	if (ioctl(fd, PERF_EVENT_IOC_REFRESH, 1)) {
		int err = errno;
		__atomic_store_n(&k->req->arm, 0, __ATOMIC_SEQ_CST);
		kwalk_forget(k, tid);
		return err_set(e, err == ESRCH ? E_NOPROC : E_AGAIN, "Can't arm thread %d's clock: %s", (int)tid,
			       strerror(err));
	}
	/* Polled, in short naps: the record wakes nobody (see kwalk.bpf.c). */
	double deadline = now_monotonic() + timeout_us * 1e-6;
	struct timespec nap = { 0, KWALK_NAP_NS };
	while (ring_buffer__consume(k->rb) >= 0 && !k->got && now_monotonic() < deadline)
		nanosleep(&nap, NULL);
	if (!k->got) {
		/* not caught: off again, and whatever came meanwhile taken */
		__atomic_store_n(&k->req->arm, 0, __ATOMIC_SEQ_CST);
		ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
		ring_buffer__consume(k->rb);
		if (!k->got)
			return err_set(e, E_AGAIN, "Thread %d did not run while armed", (int)tid);
	}
	*out = k->copied.v;
	*nout = k->copied.n;
	copy[0] = k->copy_at;
	copy[1] = k->copy_us;
	if (regs)
		memcpy(regs, k->regs, sizeof k->regs);
	return 0;
}
