/*
 * kwalk.c - the user half of the read-in-the-tick (see kwalk.h): loads the eBPF object built
 * from kwalk.bpf.c (linked into mixspy, kwalk_obj.S), keeps one disabled CPU-clock perf event
 * per thread it was asked about, and per read writes the ranges to copy, arms that event for one
 * overflow (PERF_EVENT_IOC_REFRESH 1) and waits for the record on the ring buffer.
 *
 * The event's period is the kernel's shortest for a software clock (10 us of the thread's own
 * CPU time): a running thread is caught 10 us after it is armed, wherever it is, user or kernel
 * mode. The record says which request it answers (seq): one that comes after its read gave up
 * is dropped by the next.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char kwalk_obj[], kwalk_obj_end[];

#define KWALK_PERIOD_NS 10000
#define KWALK_NAP_NS 20000

struct kwalk {
	struct bpf_object *obj;
	int prog_fd, req_fd;
	struct ring_buffer *rb;
	struct hmap events;        /* tid -> perf event fd */
	uint64_t seq;
	struct kwalk_req *req;
	/* the read waiting for its record: where each piece's bytes go */
	const struct target_iov *v;
	size_t n;
	bool *ok;
	VEC(uint32_t) piece_of;    /* per range of req: the iov it is a piece of */
	bool got;
	double copy_us;
};

/* The record of request seq: each iov ok when all its pieces were copied. */
static int on_record(void *ctx, void *data, size_t len)
{
	struct kwalk *k = ctx;
	const struct kwalk_rec *r = data;
	if (len < sizeof *r || r->seq != k->seq || k->got)
		return 0;
	/* an iov is ok when it was asked for (has pieces) and none of its pieces failed */
	for (unsigned int j = 0; j < k->req->n; j++)
		k->ok[k->piece_of.v[j]] = true;
	for (unsigned int j = 0; j < k->req->n; j++) {
		const struct kwalk_range *q = &k->req->r[j];
		uint32_t i = k->piece_of.v[j];
		if (!(r->ok[j / 64] >> (j % 64) & 1))
			k->ok[i] = false;
		else
			memcpy((uint8_t *)k->v[i].buf + (q->addr - k->v[i].addr), r->data + q->off, q->len);
	}
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
	k->req = xcalloc(1, sizeof *k->req);
	k->obj = bpf_object__open_mem(kwalk_obj, (size_t)(kwalk_obj_end - kwalk_obj), NULL);
	int rc = k->obj ? bpf_object__load(k->obj) : -errno;
	if (rc) {
		int err = rc < 0 ? -rc : errno;
		kwalk_close(k);
		return err_set(e, err == EPERM || err == EACCES ? E_PERM : E_INTERNAL,
			       "Can't load the eBPF frame walk (--bpf): %s", strerror(err));
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(k->obj, "kwalk");
	k->req_fd = bpf_object__find_map_fd_by_name(k->obj, "req");
	k->prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (k->prog_fd < 0 || k->req_fd < 0) {
		kwalk_close(k);
		return err_set(e, E_INTERNAL, "The eBPF frame walk (--bpf) is incomplete");
	}
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
	ring_buffer__free(k->rb);
	bpf_object__close(k->obj);
	vec_free(&k->piece_of);
	free(k->req);
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

/* The request for v[0..n): each range in pieces of at most KWALK_PIECE, laid one after another
 * in the record's data as far as they fit; those that do not fit are left out (not ok). */
static void make_request(struct kwalk *k, pid_t tid, const struct target_iov *v, size_t n, bool *ok)
{
	struct kwalk_req *q = k->req;
	q->seq = ++k->seq;
	q->tid = (unsigned int)tid;
	q->n = 0;
	k->piece_of.n = 0;
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		ok[i] = false;
		size_t pieces = (v[i].len + KWALK_PIECE - 1) / KWALK_PIECE;
		if (!v[i].len || used + v[i].len >= KWALK_DATA || q->n + pieces > KWALK_MAX_RANGES)
			continue;
		for (size_t at = 0; at < v[i].len; at += KWALK_PIECE) {
			size_t len = v[i].len - at < KWALK_PIECE ? v[i].len - at : KWALK_PIECE;
			q->r[q->n++] = (struct kwalk_range){ v[i].addr + at, (unsigned int)len, (unsigned int)used };
			vec_push(&k->piece_of, (uint32_t)i);
			used += len;
		}
	}
	q->used = (unsigned int)used;
}

int kwalk_readv(struct kwalk *k, pid_t tid, const struct target_iov *v, size_t n, bool *ok, double timeout_us,
		double *copy_us, struct err *e)
{
	*copy_us = 0;
	int fd = event_of(k, tid);
	if (fd < 0)
		return err_set(e, fd == -ESRCH ? E_NOPROC : E_AGAIN, "Can't watch thread %d's clock: %s", (int)tid,
			       strerror(-fd));
	make_request(k, tid, v, n, ok);
	k->v = v, k->n = n, k->ok = ok;
	int zero = 0;
	k->got = false;
	if (bpf_map_update_elem(k->req_fd, &zero, k->req, 0) || ioctl(fd, PERF_EVENT_IOC_REFRESH, 1)) {
		int err = errno;
		kwalk_forget(k, tid);
		return err_set(e, err == ESRCH ? E_NOPROC : E_AGAIN, "Can't arm thread %d's clock: %s", (int)tid,
			       strerror(err));
	}
	/* Polled, in short naps: the record wakes nobody (see kwalk.bpf.c). */
	double deadline = now_monotonic() + timeout_us * 1e-6;
	struct timespec nap = { 0, KWALK_NAP_NS };
	while (!k->got && ring_buffer__consume(k->rb) >= 0 && !k->got && now_monotonic() < deadline)
		nanosleep(&nap, NULL);
	if (!k->got) {
		/* not caught: off again, and whatever came meanwhile taken */
		ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
		ring_buffer__consume(k->rb);
		if (!k->got) {
			for (size_t i = 0; i < n; i++)
				ok[i] = false;
			return err_set(e, E_AGAIN, "Thread %d did not run while armed", (int)tid);
		}
	}
	*copy_us = k->copy_us;
	return 0;
}
