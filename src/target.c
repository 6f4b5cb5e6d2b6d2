/*
 * target.c - one target process: attach or launch, /proc/PID/maps, memory reads
 * (process_vm_readv, falling back to /proc/PID/mem), threads, idle state, and pausing one thread
 * at a time with PTRACE_SEIZE + PTRACE_INTERRUPT (never PTRACE_ATTACH's SIGSTOP).
 */
#include "target.h"
#include "sudo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static char *read_file(const char *path, size_t max, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct strbuf sb;
	sb_init(&sb);
	char buf[16384];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		sb_add(&sb, buf, (size_t)r);
		if (sb.len > max)
			break;
	}
	close(fd);
	if (len_out)
		*len_out = sb.len;
	if (!sb.buf)
		sb_add(&sb, "", 0);
	return sb_detach(&sb);
}

char *target_read_cmdline(pid_t pid)
{
	char path[64];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	char *s = read_file(path, 1 << 16, &len);
	if (!s)
		return NULL;
	while (len > 0 && s[len - 1] == 0)
		len--;
	for (size_t i = 0; i < len; i++)
		if (s[i] == 0)
			s[i] = ' ';
	s[len] = 0;
	return s;
}

/* The fields after the comm: the comm may contain ')' so start after the last one. */
static const char *stat_after_comm(const char *stat)
{
	const char *p = strrchr(stat, ')');
	return p && p[1] ? p + 2 : NULL;   /* a ')' that ends the text has no fields after it */
}

char target_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = 0;
	const char *p = stat_after_comm(buf);
	return p ? *p : 0;
}

pid_t target_ppid(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = 0;
	const char *p = stat_after_comm(buf);
	int ppid;
	if (!p || sscanf(p, "%*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

int target_exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void target_init(struct target *t, pid_t pid)
{
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->memfd = -1;
	snprintf(t->root, sizeof t->root, "/proc/%d/root", pid);
}

static int target_fill_info(struct target *t, struct err *e)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/exe", t->pid);
	ssize_t n = readlink(path, buf, sizeof buf - 1);
	if (n < 0) {
		if (errno == EACCES || errno == EPERM)
			return err_set(e, E_PERM, "Permission Denied");
		if (target_state(t->pid) == 'Z')
			return err_set(e, E_NOPROC, "Process %d is a zombie (it has exited)", t->pid);
		return err_set(e, E_NOPROC, "Failed to get process executable name. Check that the process is running.");
	}
	buf[n] = 0;
	t->exe = xstrdup(buf);
	t->cmdline = target_read_cmdline(t->pid);
	if (!t->cmdline)
		t->cmdline = xstrdup(t->exe);
	return 0;
}

int target_attach(struct target *t, pid_t pid, struct err *e)
{
	target_init(t, pid);
	if (pid <= 0 || kill(pid, 0) < 0) {
		if (pid > 0 && errno == EPERM)
			return err_set(e, E_PERM, "Permission Denied");
		return err_set(e, E_NOPROC, "Failed to open process %d - check if it is running.", pid);
	}
	char st = target_state(pid);
	if (st == 'Z' || st == 'X')
		return err_set(e, E_NOPROC, "Process %d is a zombie (it has exited)", pid);
	int rc = target_fill_info(t, e);
	if (rc)
		return rc;
	rc = target_refresh_maps(t, NULL, e);
	if (rc)
		return rc;
	/* Prove we may read its memory now rather than on the first sample. */
	uint64_t probe;
	if (t->maps.n && target_read(t, t->maps.v[0].start, &probe, sizeof probe) == E_PERM)
		return err_set(e, E_PERM, "Permission Denied");
	return 0;
}

int target_launch(struct target *t, char *const argv[], struct err *e)
{
	int pfd[2];
	struct sudo_user su;   /* under sudo, the program runs as the invoking user */
	sudo_user_get(&su);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return err_set(e, E_IO, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		return err_set(e, E_IO, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		int drop = sudo_user_become(&su);
		if (drop == 0)
			execvp(argv[0], argv);
		int err = drop ? -drop : errno;
		ssize_t w = write(pfd[1], &err, sizeof err);
		(void)w;
		_exit(127);
	}
	close(pfd[1]);
	int child_err = 0;
	ssize_t r;
	do
		r = read(pfd[0], &child_err, sizeof child_err);
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof child_err) {
		waitpid(pid, NULL, 0);
		return err_set(e, E_ARG, "Failed to create process '%s': %s", argv[0], strerror(child_err));
	}
	target_init(t, pid);
	t->launched = true;
	return 0;
}

/* After launching, the program may still be our fork's image (between fork and exec the
 * pipe closes at exec, so by now exec has happened). Fill exe/cmdline/maps lazily. */
int target_launched_ready(struct target *t, struct err *e)
{
	if (t->exe)
		return 0;
	int rc = target_fill_info(t, e);
	if (rc)
		return rc;
	return target_refresh_maps(t, NULL, e);
}

void target_close(struct target *t)
{
	target_release_all(t);
	hmap_free(&t->tracees);
	hmap_free(&t->task_cpu);
	vec_free(&t->runs);
	vec_free(&t->order);
	vec_free(&t->run_buf);
	vec_free(&t->held);
	vec_free(&t->held_buf);
	vec_free(&t->held_iov);
	vec_free(&t->held_ok);
	vec_free(&t->prime_buf);
	vec_free(&t->prime_iov);
	vec_free(&t->prime_ok);
	if (t->memfd >= 0)
		close(t->memfd);
	for (size_t i = 0; i < t->maps.n; i++)
		free(t->maps.v[i].path);
	vec_free(&t->maps);
	free(t->maps_raw);
	free(t->exe);
	free(t->cmdline);
	t->memfd = -1;
	t->exe = t->cmdline = t->maps_raw = NULL;
	target_task_files_trim(t, 0);
	hmap_free(&t->task_fds);
	target_watch_prune(t, NULL);
	hmap_free(&t->watches);
}

static int errno_to_code(int err)
{
	if (err == EPERM || err == EACCES)
		return E_PERM;
	if (err == ESRCH)
		return E_NOPROC;
	return E_READ;
}

/* The held range that holds addr (and perhaps not all that follows), or NULL. */
static const struct target_held *held_at(const struct target *t, uint64_t addr)
{
	size_t lo = 0, hi = t->held.n;
	while (lo < hi) {   /* the last range starting at or before addr */
		size_t mid = (lo + hi) / 2;
		if (t->held.v[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct target_held *h = lo ? &t->held.v[lo - 1] : NULL;
	return h && addr < h->addr + h->len ? h : NULL;
}

/* The held range that holds all of [addr, addr + len), or NULL. */
static const struct target_held *held_find(const struct target *t, uint64_t addr, size_t len)
{
	const struct target_held *h = held_at(t, addr);
	return h && addr + len >= addr && addr + len <= h->addr + h->len ? h : NULL;
}

static bool held_read(struct target *t, uint64_t addr, void *buf, size_t len)
{
	const struct target_held *h = t->holding ? held_find(t, addr, len) : NULL;
	if (!h)
		return false;
	memcpy(buf, t->held_buf.v + h->off + (addr - h->addr), len);
	t->held_served++;
	return true;
}

ssize_t target_read_partial(struct target *t, uint64_t addr, void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (held_read(t, addr, buf, len))
		return (ssize_t)len;
	const struct target_held *h = t->holding && t->hold_prefix ? held_at(t, addr) : NULL;
	if (h) {
		size_t part = (size_t)(h->addr + h->len - addr);
		memcpy(buf, t->held_buf.v + h->off + (addr - h->addr), part);
		t->held_served++;
		return (ssize_t)part;
	}
	if (!t->no_vm_readv) {
		struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
		t->reads++;
		ssize_t r = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
		if (r >= 0)
			return r;
		if (errno != ENOSYS)
			return errno_to_code(errno);
		t->no_vm_readv = true;
	}
	if (t->memfd < 0) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/mem", t->pid);
		t->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->memfd < 0)
			return errno_to_code(errno);
	}
	t->reads++;
	ssize_t r = pread(t->memfd, buf, len, (off_t)addr);
	if (r < 0)
		return errno_to_code(errno);
	return r;
}

int target_read(struct target *t, uint64_t addr, void *buf, size_t len)
{
	ssize_t r = target_read_partial(t, addr, buf, len);
	if (r < 0)
		return (int)r;
	return (size_t)r == len ? 0 : E_READ;
}

static size_t readv_each(struct target *t, const struct target_iov *iov, size_t n, bool *ok)
{
	size_t done = 0, good = 0;
	while (done < n) {
		/* process_vm_readv stops at the first remote range it can't read: read batches, and
		 * after a short batch, retry its failing item alone so one bad pointer costs one item. */
		struct iovec local[256], remote[256];
		size_t k = 0;
		for (; k < 256 && done + k < n; k++) {
			local[k].iov_base = iov[done + k].buf;
			local[k].iov_len = iov[done + k].len;
			remote[k].iov_base = (void *)(uintptr_t)iov[done + k].addr;
			remote[k].iov_len = iov[done + k].len;
		}
		t->reads += !t->no_vm_readv;
		ssize_t r = t->no_vm_readv ? -1 : process_vm_readv(t->pid, local, k, remote, k, 0);
		size_t got = r > 0 ? (size_t)r : 0, i = 0;
		for (; i < k && got >= iov[done + i].len; i++) {
			got -= iov[done + i].len;
			ok[done + i] = true;
			good++;
		}
		if (i < k) {
			/* item i was short: read it alone (falls back to /proc/PID/mem if needed) */
			ok[done + i] = target_read(t, iov[done + i].addr, iov[done + i].buf, iov[done + i].len) == 0;
			good += ok[done + i];
			i++;
		}
		done += i;
	}
	return good;
}

/*
 * Reading a range costs the kernel a page-table walk and a page pin of its own, so many small
 * ranges on the same pages cost many times what one read of those pages does: 3.10's frame
 * objects sit side by side in pymalloc pools (a 200-deep chain: 206 frames 416 bytes apart on 27
 * pages). Ranges closer than READV_GAP are merged into runs (at most READV_RUN long), read into
 * a scratch buffer and copied out; a run that fails is read range by range, as before.
 */
#define READV_MERGE_MIN 8          /* fewer ranges: not worth sorting */
#define READV_GAP 512
#define READV_RUN (64 * 1024)

struct target_run {
	uint64_t addr;
	size_t len, off;       /* off: where it goes in run_buf */
	uint32_t first, last;  /* its ranges: order[first..last] */
};

static int by_addr(const void *a, const void *b, void *iov)
{
	const struct target_iov *v = iov;
	uint64_t x = v[*(const uint32_t *)a].addr, y = v[*(const uint32_t *)b].addr;
	return x < y ? -1 : x > y;
}

static size_t readv_target(struct target *t, const struct target_iov *iov, size_t n, bool *ok);

size_t target_readv(struct target *t, const struct target_iov *iov, size_t n, bool *ok)
{
	if (!t->holding)
		return readv_target(t, iov, n, ok);
	/* Serve what the held ranges hold; read the rest in one go, in order. */
	size_t good = 0, miss = 0;
	for (size_t i = 0; i < n; i++) {
		ok[i] = held_read(t, iov[i].addr, iov[i].buf, iov[i].len);
		good += ok[i];
		miss += !ok[i];
	}
	if (!miss)
		return good;
	vec_reserve(&t->held_iov, miss);
	vec_reserve(&t->held_ok, miss);
	for (size_t i = 0, k = 0; i < n; i++)
		if (!ok[i]) {
			t->held_iov.v[k] = iov[i];
			t->held_ok.v[k++] = false;
		}
	good += readv_target(t, t->held_iov.v, miss, t->held_ok.v);
	for (size_t i = 0, k = 0; i < n; i++)
		if (!ok[i])
			ok[i] = t->held_ok.v[k++];
	return good;
}

static size_t readv_target(struct target *t, const struct target_iov *iov, size_t n, bool *ok)
{
	if (n < READV_MERGE_MIN || t->no_vm_readv)
		return readv_each(t, iov, n, ok);
	vec_reserve(&t->order, n);
	for (size_t i = 0; i < n; i++)
		t->order.v[i] = (uint32_t)i;
	qsort_r(t->order.v, n, sizeof(uint32_t), by_addr, (void *)iov);
	t->runs.n = 0;
	size_t total = 0;
	for (size_t k = 0; k < n; k++) {
		const struct target_iov *r = &iov[t->order.v[k]];
		struct target_run *last = t->runs.n ? &t->runs.v[t->runs.n - 1] : NULL;
		uint64_t end = last ? last->addr + last->len : 0;
		if (last && r->addr <= end + READV_GAP && r->addr + r->len - last->addr <= READV_RUN) {
			if (r->addr + r->len > end) {
				total += r->addr + r->len - end;
				last->len = r->addr + r->len - last->addr;
			}
			last->last = (uint32_t)k;
			continue;
		}
		struct target_run run = { r->addr, r->len, 0, (uint32_t)k, (uint32_t)k };
		vec_push(&t->runs, run);
		total += r->len;
	}
	if (t->runs.n == n)
		return readv_each(t, iov, n, ok);   /* nothing to merge */
	vec_reserve(&t->run_buf, total);
	/* the runs, as ranges of their own into the scratch buffer, as many per read as fit */
	size_t good = 0, off = 0;
	struct target_iov batch[256];
	bool batch_ok[256];
	for (size_t b = 0; b < t->runs.n; b += 256) {
		size_t m = t->runs.n - b < 256 ? t->runs.n - b : 256;
		for (size_t j = 0; j < m; j++) {
			struct target_run *run = &t->runs.v[b + j];
			run->off = off;
			off += run->len;
			batch[j] = (struct target_iov){ run->addr, t->run_buf.v + run->off, run->len };
			batch_ok[j] = false;
		}
		readv_each(t, batch, m, batch_ok);
		for (size_t j = 0; j < m; j++) {
			struct target_run *run = &t->runs.v[b + j];
			for (uint32_t k = run->first; k <= run->last; k++) {
				const struct target_iov *r = &iov[t->order.v[k]];
				if (batch_ok[j]) {
					memcpy(r->buf, t->run_buf.v + run->off + (r->addr - run->addr), r->len);
					ok[t->order.v[k]] = true;
				} else {
					ok[t->order.v[k]] = readv_each(t, r, 1, &ok[t->order.v[k]]) == 1;
				}
				good += ok[t->order.v[k]];
			}
		}
	}
	return good;
}

static int held_by_addr(const void *a, const void *b)
{
	const struct target_held *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

size_t target_hold(struct target *t, const struct target_iov *want, size_t n)
{
	target_unhold(t);
	/* Overlapping ranges become one (a read is served from one range), sorted by address. */
	t->held.n = 0;
	for (size_t i = 0; i < n; i++)
		if (want[i].len && want[i].addr + want[i].len > want[i].addr) {
			struct target_held h = { want[i].addr, want[i].len, 0 };
			vec_push(&t->held, h);
		}
	if (!t->held.n)
		return 0;
	qsort(t->held.v, t->held.n, sizeof(struct target_held), held_by_addr);
	size_t m = 0, total = 0;
	for (size_t i = 0; i < t->held.n; i++) {
		struct target_held *last = m ? &t->held.v[m - 1] : NULL;
		const struct target_held *h = &t->held.v[i];
		if (last && h->addr <= last->addr + last->len) {
			if (h->addr + h->len > last->addr + last->len) {
				total += h->addr + h->len - (last->addr + last->len);
				last->len = h->addr + h->len - last->addr;
			}
			continue;
		}
		t->held.v[m++] = *h;
		total += h->len;
	}
	t->held.n = m;
	vec_reserve(&t->held_buf, total);
	vec_reserve(&t->held_iov, m);
	vec_reserve(&t->held_ok, m);
	size_t off = 0;
	for (size_t i = 0; i < m; i++) {
		t->held.v[i].off = off;
		t->held_iov.v[i] = (struct target_iov){ t->held.v[i].addr, t->held_buf.v + off, t->held.v[i].len };
		t->held_ok.v[i] = false;
		off += t->held.v[i].len;
	}
	size_t good = readv_target(t, t->held_iov.v, m, t->held_ok.v);
	/* Forget the ranges that could not be read: a read of them goes to the target. */
	size_t keep = 0;
	for (size_t i = 0; i < m; i++)
		if (t->held_ok.v[i])
			t->held.v[keep++] = t->held.v[i];
	t->held.n = keep;
	t->holding = keep > 0;
	return good;
}

void target_prime(struct target *t, const struct target_iov *want, size_t n)
{
	size_t total = 0, m = 0;
	for (; m < n && want[m].len <= TARGET_PRIME_MAX - total; m++)
		total += want[m].len;
	if (!total)
		return;
	vec_reserve(&t->prime_buf, total);
	vec_reserve(&t->prime_iov, m);
	vec_reserve(&t->prime_ok, m);
	size_t off = 0;
	for (size_t i = 0; i < m; i++) {
		t->prime_iov.v[i] = (struct target_iov){ want[i].addr, t->prime_buf.v + off, want[i].len };
		off += want[i].len;
	}
	uint64_t reads = t->reads;
	readv_target(t, t->prime_iov.v, m, t->prime_ok.v);
	t->primes += t->reads - reads;
	t->reads = reads;
}

void target_hold_copied(struct target *t, const struct target_iov *v, size_t n, bool prefix)
{
	target_unhold(t);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].len && v[i].addr + v[i].len > v[i].addr) {
			struct target_held h = { v[i].addr, v[i].len, i };   /* off: its index, for now */
			vec_push(&t->held, h);
			total += v[i].len;
		}
	qsort(t->held.v, t->held.n, sizeof(struct target_held), held_by_addr);
	vec_reserve(&t->held_buf, total);
	/* Overlapping copies are the same instant's bytes: each range keeps its own, the first of
	 * two that overlap serves the overlap (held_find looks for one range holding a read). */
	size_t m = 0, off = 0;
	for (size_t i = 0; i < t->held.n; i++) {
		struct target_held h = t->held.v[i];
		const struct target_iov *src = &v[h.off];
		struct target_held *last = m ? &t->held.v[m - 1] : NULL;
		if (last && h.addr <= last->addr + last->len) {
			if (h.addr + h.len <= last->addr + last->len)
				continue;
			size_t skip = (size_t)(last->addr + last->len - h.addr);   /* append the rest */
			memcpy(t->held_buf.v + off, (const uint8_t *)src->buf + skip, h.len - skip);
			off += h.len - skip;
			last->len += h.len - skip;
			continue;
		}
		memcpy(t->held_buf.v + off, src->buf, h.len);
		h.off = off;
		off += h.len;
		t->held.v[m++] = h;
	}
	t->held.n = m;
	t->holding = m > 0;
	t->hold_prefix = prefix;
}

void target_unhold(struct target *t)
{
	t->hold_prefix = false;
	t->holding = false;
	t->held.n = 0;
}

int target_read_cstr(struct target *t, uint64_t addr, char *buf, size_t max)
{
	if (max == 0)
		return E_READ;
	ssize_t r = target_read_partial(t, addr, buf, max - 1);
	if (r <= 0)
		return r < 0 ? (int)r : E_READ;
	buf[r] = 0;
	return memchr(buf, 0, (size_t)r) || (size_t)r == max - 1 ? 0 : E_READ;
}

static void maps_clear(struct target *t)
{
	for (size_t i = 0; i < t->maps.n; i++)
		free(t->maps.v[i].path);
	t->maps.n = 0;
}

int target_refresh_maps(struct target *t, bool *changed, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", t->pid);
	size_t len;
	char *text = read_file(path, 64u << 20, &len);
	if (!text) {
		if (errno == EACCES || errno == EPERM)
			return err_set(e, E_PERM, "Permission Denied");
		return err_set(e, E_NOPROC, "Failed to read memory maps of process %d", t->pid);
	}
	if (len == 0) {
		free(text);
		return err_set(e, E_NOPROC, "Process %d has no memory maps (exited?)", t->pid);
	}
	if (t->maps_raw && strcmp(t->maps_raw, text) == 0) {
		free(text);
		if (changed)
			*changed = false;
		return 0;
	}
	maps_clear(t);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long start, end, off, inode;
		char perms[8];
		int pathpos = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %*s %llu %n", &start, &end, perms, &off, &inode, &pathpos) < 5)
			continue;
		struct map m = { .start = start, .end = end, .offset = off, .inode = inode,
				 .r = perms[0] == 'r', .w = perms[1] == 'w', .x = perms[2] == 'x' };
		const char *p = pathpos ? line + pathpos : "";
		while (*p == ' ')
			p++;
		m.path = *p ? xstrdup(p) : NULL;
		vec_push(&t->maps, m);
	}
	/* keep the raw text (strtok_r wrote NULs into `text`, so read it again cheaply) */
	free(t->maps_raw);
	t->maps_raw = read_file(path, 64u << 20, NULL);
	free(text);
	t->maps_generation++;
	if (changed)
		*changed = true;
	return 0;
}

const struct map *target_map_at(const struct target *t, uint64_t addr)
{
	size_t lo = 0, hi = t->maps.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct map *m = &t->maps.v[mid];
		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

bool target_is_mapped(const struct target *t, uint64_t addr, size_t len)
{
	const struct map *m = target_map_at(t, addr);
	return m && m->r && addr + len <= m->end && addr + len >= addr;
}

char *target_file_path(const struct target *t, const char *path)
{
	struct strbuf sb;
	sb_init(&sb);
	/* Going through /proc/PID/root finds files in the target's mount namespace (containers);
	 * when we can't, use the path as is. */
	sb_addf(&sb, "%s%s", t->root, path);
	if (access(sb.buf, R_OK) != 0) {
		sb_reset(&sb);
		sb_adds(&sb, path);
	}
	return sb_detach(&sb);
}

int target_threads(struct target *t, pid_t **tids, size_t *n, struct err *e)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", t->pid);
	DIR *d = opendir(path);
	if (!d)
		return err_set(e, E_NOPROC, "Failed to list threads of process %d", t->pid);
	VEC(pid_t) v = { 0 };
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		vec_push(&v, (pid_t)atoi(de->d_name));
	}
	closedir(d);
	*tids = v.v;
	*n = v.n;
	return 0;
}

#define MAX_TASK_FDS 512

void target_task_files_trim(struct target *t, size_t max)
{
	if (t->task_fds.n <= max)
		return;
	size_t it = 0;
	uint64_t k, fd;
	while (hmap_next(&t->task_fds, &it, &k, &fd))
		close((int)fd);
	hmap_clear(&t->task_fds);
}

ssize_t target_task_read(struct target *t, pid_t tid, int file, char *buf, size_t size)
{
	static const char *const names[] = { "stat", "syscall", "schedstat" };
	if (file < 0 || file > TASK_SCHEDSTAT)
		return -1;
	uint64_t key = (uint64_t)(uint32_t)tid << 2 | (uint64_t)file, v;
	ssize_t r;
	if (hmap_get(&t->task_fds, key, &v)) {
		r = pread((int)v, buf, size - 1, 0);
		if (r > 0) {
			buf[r] = 0;
			return r;
		}
		/* the thread is gone (or its id reused by a new one): open afresh */
		close((int)v);
		hmap_del(&t->task_fds, key);
	}
	char path[80];
	snprintf(path, sizeof path, "/proc/%d/task/%d/%s", t->pid, tid, names[file]);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = pread(fd, buf, size - 1, 0);
	if (r > 0 && t->task_fds.n < MAX_TASK_FDS)
		hmap_put(&t->task_fds, key, (uint64_t)fd);
	else
		close(fd);
	if (r <= 0)
		return -1;
	buf[r] = 0;
	return r;
}

/* One data page: the ring is mapped read-only, so the kernel overwrites it and its head only
 * ever moves forward; of its notes only the last (or, with registers, the last two) is ever read
 * (target_off_cpu). */
#define WATCH_PAGES 2
#define MAX_WATCHES 1024

/* The user registers a watch with watch_regs notes at a switch out, in the order of
 * asm/perf_regs.h's bits (x86-64): AX BX CX DX SI DI BP SP IP FLAGS, then R8 to R15 (the
 * segment registers are left out: the unwinder needs none of them). With watch_args: DI, SP and
 * IP alone. A sample with registers cost each switch out about 1 us more than a switch note
 * alone, the three of watch_args about 0.4 us (two threads handing a futex to and fro on one
 * CPU of this machine class). */
#define WATCH_REGS_MASK (0x3ffULL | 0xffULL << 16)
#define WATCH_ARGS_MASK (1ULL << 5 | 1ULL << 7 | 1ULL << 8)
#define WATCH_NREGS 18
/* the sample of them: its header, the ABI word, the registers */
#define WATCH_SAMPLE_SIZE(nregs) (sizeof(struct perf_event_header) + 8 + 8 * (size_t)(nregs))

/* The registers t's watches note at a switch out (0: none, switches only). */
static uint64_t watch_mask(const struct target *t)
{
	return t->watch_regs ? WATCH_REGS_MASK : t->watch_args ? WATCH_ARGS_MASK : 0;
}

static size_t watch_len(void)
{
	return WATCH_PAGES * (size_t)sysconf(_SC_PAGESIZE);
}

static int open_watch(pid_t tid, uint64_t regs)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = PERF_TYPE_SOFTWARE;
	a.context_switch = 1;
	a.exclude_hv = 1;
	if (regs) {
		/* a sample at every switch out (taken in the kernel, so kernel samples are let
		 * in), of the user registers saved at the thread's way into the kernel */
		a.config = PERF_COUNT_SW_CONTEXT_SWITCHES;
		a.sample_period = 1;
		a.sample_type = PERF_SAMPLE_REGS_USER;
		a.sample_regs_user = regs;
	} else {
		a.config = PERF_COUNT_SW_DUMMY;
		a.exclude_kernel = 1;
	}
	return (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

int target_watch(struct target *t, pid_t tid)
{
	uint64_t v;
	if (hmap_get(&t->watches, (uint64_t)(uint32_t)tid, &v))
		return 0;
	if (t->watch_off || t->watches.n >= MAX_WATCHES)
		return -1;
	if (getenv("MIXSPY_NO_SWITCH_WATCH")) {
		t->watch_off = true;
		return -1;
	}
	/* failing for any reason but the thread gone or descriptors used up for now, it will not
	 * change */
#define WATCH_REFUSED(err) ((err) != ESRCH && (err) != EMFILE && (err) != ENFILE)
	uint64_t mask = watch_mask(t);
	int fd = open_watch(tid, mask);
	if (fd < 0 && mask && WATCH_REFUSED(errno)) {
		/* kernel samples not allowed (perf_event_paranoid above 1): switches only */
		t->watch_regs = t->watch_args = false;
		fd = open_watch(tid, 0);
	}
	if (fd < 0) {
		if (WATCH_REFUSED(errno))
			t->watch_off = true;
		return -1;
	}
#undef WATCH_REFUSED
	void *page = mmap(NULL, watch_len(), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);   /* the mapping keeps the event */
	if (page == MAP_FAILED) {
		t->watch_off = true;   /* perf_event_mlock_kb or RLIMIT_MEMLOCK used up */
		return -1;
	}
	hmap_put(&t->watches, (uint64_t)(uint32_t)tid, (uint64_t)(uintptr_t)page);
	return 0;
}

/* The mapped page of tid's watch and, read first, its head; NULL when it is not watched. */
static const volatile struct perf_event_mmap_page *watch_head(struct target *t, pid_t tid, uint64_t *head)
{
	uint64_t v;
	if (!hmap_get(&t->watches, (uint64_t)(uint32_t)tid, &v))
		return NULL;
	const volatile struct perf_event_mmap_page *pg = (const volatile struct perf_event_mmap_page *)(uintptr_t)v;
	*head = pg->data_head;
	/* the read of the head comes before whatever the caller reads of the thread (or the
	 * ring) next */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return pg;
}

bool target_switches(struct target *t, pid_t tid, uint64_t *head)
{
	return watch_head(t, tid, head) != NULL;
}

/* len bytes of the ring ending back bytes before head (a note may wrap around its end); false
 * when the ring never held that much. */
static bool ring_copy(const volatile struct perf_event_mmap_page *pg, uint64_t head, size_t back, void *dst,
		      size_t len)
{
	uint64_t off = pg->data_offset, size = pg->data_size;
	if (head < back + len || !size || off + size > watch_len() || back + len > size)
		return false;
	const char *ring = (const char *)(uintptr_t)pg + off;
	uint64_t at = (head - back - len) % size;
	size_t first = at + len > size ? (size_t)(size - at) : len;
	memcpy(dst, ring + at, first);
	memcpy((char *)dst + first, ring, len - first);
	return true;
}

/* The sample a watch with registers notes just before its switch out: the registers, as
 * struct user_regs_struct lays them out (those not noted are 0). */
static bool switch_regs(const struct target *t, const volatile struct perf_event_mmap_page *pg, uint64_t head,
			uint64_t *out)
{
	uint64_t mask = watch_mask(t);
	int nregs = __builtin_popcountll(mask);
	uint64_t rec[WATCH_SAMPLE_SIZE(WATCH_NREGS) / 8];
	size_t size = WATCH_SAMPLE_SIZE(nregs);
	struct perf_event_header hd;
	if (!mask || !ring_copy(pg, head, sizeof hd, rec, size))
		return false;
	memcpy(&hd, rec, sizeof hd);
	if (hd.type != PERF_RECORD_SAMPLE || hd.size != size || rec[1] != PERF_SAMPLE_REGS_ABI_64)
		return false;
	/* where each perf register (asm/perf_regs.h's numbering) goes */
	static const size_t at[] = {
		offsetof(struct user_regs_struct, rax), offsetof(struct user_regs_struct, rbx),
		offsetof(struct user_regs_struct, rcx), offsetof(struct user_regs_struct, rdx),
		offsetof(struct user_regs_struct, rsi), offsetof(struct user_regs_struct, rdi),
		offsetof(struct user_regs_struct, rbp), offsetof(struct user_regs_struct, rsp),
		offsetof(struct user_regs_struct, rip), offsetof(struct user_regs_struct, eflags),
		0, 0, 0, 0, 0, 0,   /* segment registers: never noted */
		offsetof(struct user_regs_struct, r8), offsetof(struct user_regs_struct, r9),
		offsetof(struct user_regs_struct, r10), offsetof(struct user_regs_struct, r11),
		offsetof(struct user_regs_struct, r12), offsetof(struct user_regs_struct, r13),
		offsetof(struct user_regs_struct, r14), offsetof(struct user_regs_struct, r15),
	};
	struct user_regs_struct u;
	memset(&u, 0, sizeof u);
	const uint64_t *r = rec + 2;
	for (int bit = 0; bit < 24; bit++)
		if (mask >> bit & 1)
			memcpy((char *)&u + at[bit], r++, 8);
	u.orig_rax = UINT64_MAX;
	memcpy(out, &u, sizeof u);
	return u.rsp && u.rip;
}

_Static_assert(sizeof(struct user_regs_struct) == TARGET_NREGS * 8, "TARGET_NREGS");

enum target_cpu target_off_cpu(struct target *t, pid_t tid, uint64_t *head, uint64_t *regs, bool *got_regs)
{
	uint64_t h;
	if (got_regs)
		*got_regs = false;
	const volatile struct perf_event_mmap_page *pg = watch_head(t, tid, &h);
	if (!pg)
		return CPU_UNKNOWN;
	/* the last note: a switch is a header alone (no sample_id_all), 8 bytes */
	struct perf_event_header last;
	if (!ring_copy(pg, h, 0, &last, sizeof last))
		return CPU_UNKNOWN;
	*head = h;
	if (last.type != PERF_RECORD_SWITCH || last.size != sizeof last)
		return CPU_UNKNOWN;
	if (!(last.misc & PERF_RECORD_MISC_SWITCH_OUT))
		return CPU_ON;
	if (regs && got_regs)
		*got_regs = switch_regs(t, pg, h, regs);
	return last.misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT ? CPU_PREEMPTED : CPU_SLEPT;
}

/* Stopped, the thread runs no user code until we let it go: a last note that is a switch out
 * came after the last time it ran (a switch in is noted before it runs), and its registers are
 * those of the kernel entry it stopped in - the stop's own switch out, or one while going to it
 * (PTRACE_GETREGS reads the same saved registers). */
bool target_stop_regs(struct target *t, pid_t tid, uint64_t *regs)
{
	if (!t->watch_regs)
		return false;
	uint64_t h;
	bool got = false;   /* only ever set for a last note that is a switch out */
	target_off_cpu(t, tid, &h, regs, &got);
	return got;
}

static void target_unwatch(struct target *t, pid_t tid)
{
	uint64_t v;
	if (!hmap_get(&t->watches, (uint64_t)(uint32_t)tid, &v))
		return;
	munmap((void *)(uintptr_t)v, watch_len());
	hmap_del(&t->watches, (uint64_t)(uint32_t)tid);
}

void target_watch_prune(struct target *t, const struct hmap *live)
{
	size_t it = 0;
	uint64_t k, v, x;
	VEC(uint64_t) gone = { 0 };
	while (hmap_next(&t->watches, &it, &k, &v))
		if (!live || !hmap_get(live, k, &x))
			vec_push(&gone, k);
	for (size_t i = 0; i < gone.n; i++)
		target_unwatch(t, (pid_t)gone.v[i]);
	vec_free(&gone);
}

int target_thread_running(struct target *t, pid_t tid)
{
	char buf[512];
	if (target_task_read(t, tid, TASK_STAT, buf, sizeof buf) <= 0)
		return E_NOPROC;
	const char *p = stat_after_comm(buf);
	if (!p)
		return E_NOPROC;
	/* Field 39, "processor" (36 fields after the state): where it last ran. A pause spins
	 * rather than sleeps for a thread on another CPU (see wait_for_stop). */
	const char *q = p;
	for (int field = 0; field < 36 && q; field++) {
		q = strchr(q, ' ');
		if (q)
			q++;
	}
	if (q && *q >= '0' && *q <= '9')
		hmap_put(&t->task_cpu, (uint64_t)tid, (uint64_t)strtoul(q, NULL, 10));
	return *p == 'R';
}

/* Per seized thread (t->tracees value): what state we left it in. */
#define TRACEE_PAUSED     (1ULL << 0)   /* stopped by our interrupt right now */
#define TRACEE_GROUP_STOP (1ULL << 1)   /* in a job-control stop: resumed with PTRACE_LISTEN */
#define TRACEE_SEEN_SHIFT 32            /* when last paused: CLOCK_MONOTONIC in 10 ms units, low 32 bits */
#define TRACEE_RELEASE_AFTER 2.0        /* seconds unpaused before a kept thread is released */

static bool service_one(struct target *t, pid_t tid, uint64_t v);

bool target_alive(struct target *t)
{
	if (t->reaped)
		return false;
	if (t->launched) {
		/* A seized main thread reports its stops to this waitpid too: let the service take
		 * those (and its exit), and wait here only when it is not seized. */
		uint64_t v;
		if (hmap_get(&t->tracees, (uint64_t)t->pid, &v)) {
			if (!(v & TRACEE_PAUSED))
				service_one(t, t->pid, v);
			if (t->reaped)
				return false;
			if (hmap_get(&t->tracees, (uint64_t)t->pid, &v)) {
				char st = target_state(t->pid);
				return st != 0 && st != 'Z' && st != 'X';
			}
		}
		int status;
		pid_t r = waitpid(t->pid, &status, WNOHANG);
		if (r == t->pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
			t->reaped = true;
			t->exit_status = target_exit_code(status);
			return false;
		}
	}
	char st = target_state(t->pid);
	return st != 0 && st != 'Z' && st != 'X';
}

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

static uint64_t tracee_stamp(void)
{
	return (uint64_t)(now_monotonic() * 100.0) & 0xffffffffULL;
}

/* A wait status of tid that says it is gone: remember a launched program's exit status. */
static void note_exit(struct target *t, pid_t tid, int status)
{
	if (t->launched && tid == t->pid) {
		t->reaped = true;
		t->exit_status = target_exit_code(status);
	}
	hmap_del(&t->tracees, (uint64_t)tid);
}

/* Waiting for a pause. A thread running on another CPU stops within microseconds of the
 * interrupt; sleeping in waitpid until then would add the time to wake us (two inter-processor
 * interrupts, ~20 us on a VM) to the time the thread stands still. So the first wait polls for
 * up to PAUSE_SPIN_US - never for a thread on our own CPU, which can only stop once we give it
 * the CPU. After that it sleeps in short steps (a SIGCHLD ends them) rather than in a
 * blocking waitpid, and after 1 ms reaps the other seized threads that exited: exiting with
 * the process, they stay zombies until their tracer reaps them, and until then the main thread
 * never reports its own exit - a blocking wait on it would wait for ever. A thread that has not
 * stopped after PAUSE_GIVE_UP seconds (stuck in the kernel) is given up on for this pause; it
 * stays seized, and target_service lets it go on when the interrupt's stop comes late. */
#define PAUSE_SPIN_US 40.0
#define PAUSE_GIVE_UP 1.0

static size_t tracee_list(struct target *t, pid_t **out);

static void reap_others(struct target *t, pid_t tid)
{
	pid_t *tids;
	size_t n = tracee_list(t, &tids);
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		if (tids[i] != tid && hmap_get(&t->tracees, (uint64_t)tids[i], &v) && !(v & TRACEE_PAUSED))
			service_one(t, tids[i], v);
	}
	free(tids);
}

static pid_t wait_report(struct target *t, pid_t tid, int *status, bool first)
{
	uint64_t cpu;
	int here = sched_getcpu();
	double start = now_monotonic();
	if (first && here >= 0 && hmap_get(&t->task_cpu, (uint64_t)tid, &cpu) && cpu != (uint64_t)here) {
		double until = start + PAUSE_SPIN_US * 1e-6;
		do {
			pid_t r = waitpid(tid, status, WNOHANG | __WALL);
			if (r != 0)
				return r;
		} while (now_monotonic() < until);
	}
	double step = 20e-6;
	for (;;) {
		pid_t r = waitpid(tid, status, WNOHANG | __WALL);
		if (r != 0)
			return r;
		if (now_monotonic() - start > PAUSE_GIVE_UP) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (now_monotonic() - start > 1e-3)
			reap_others(t, tid);   /* not on the fast path: one waitpid per seized thread */
		sleep_signalled(NULL, step);   /* the stop's SIGCHLD ends it */
		if (step < 2e-3)
			step *= 2;
	}
}

/* What a tracee's wait status says. REPORT_GONE: it exited (noted); REPORT_EVENT_STOP: a
 * PTRACE_EVENT_STOP - our interrupt, or a job-control stop when *sig is a stop signal;
 * REPORT_SIGNAL: a stop to continue from, delivering *sig (0 after any other ptrace event, of
 * which we ask for none); REPORT_NONE: nothing to act on. */
enum tracee_report { REPORT_NONE, REPORT_GONE, REPORT_EVENT_STOP, REPORT_SIGNAL };

static enum tracee_report read_report(struct target *t, pid_t tid, int status, int *sig)
{
	*sig = 0;
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		note_exit(t, tid, status);
		return REPORT_GONE;
	}
	if (!WIFSTOPPED(status))
		return REPORT_NONE;
	if (status >> 16 == PTRACE_EVENT_STOP) {
		*sig = WSTOPSIG(status);
		return REPORT_EVENT_STOP;
	}
	if (!(status >> 16))
		*sig = WSTOPSIG(status);
	return REPORT_SIGNAL;
}

/* Wait for tid to report the stop our PTRACE_INTERRUPT asked for. A signal that stops it on the
 * way is delivered at once (PTRACE_CONT with it), and the wait goes on: the interrupt still
 * traps right after. A job-control stop (group-stop) also counts as stopped; *group says so.
 * E_AGAIN: it did not stop in time (see above). */
static int wait_for_stop(struct target *t, pid_t tid, bool *group)
{
	*group = false;
	for (int tries = 0; tries < 64; tries++) {
		int status;
		pid_t r = wait_report(t, tid, &status, tries == 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ETIMEDOUT)
				return E_AGAIN;
			return errno == ECHILD ? E_NOPROC : E_INTERNAL;
		}
		int sig;
		enum tracee_report rep = read_report(t, tid, status, &sig);
		if (rep == REPORT_GONE)
			return E_NOPROC;
		if (rep == REPORT_EVENT_STOP) {
			*group = is_stop_signal(sig);
			return 0;   /* our interrupt, or a group-stop: either way it stands still */
		}
		if (rep == REPORT_SIGNAL && ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig) < 0)
			return errno == ESRCH ? E_NOPROC : E_INTERNAL;
	}
	return E_INTERNAL;
}

int target_pause_thread(struct target *t, pid_t tid, struct err *e)
{
	uint64_t v = 0;
	bool seized = hmap_get(&t->tracees, (uint64_t)tid, &v);
	if (!seized) {
		if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) {
			if (errno == EPERM)
				return err_set(e, target_state(tid) ? E_PERM : E_NOPROC, "Permission Denied");
			return err_set(e, E_NOPROC, "thread %d is gone", tid);
		}
		hmap_put(&t->tracees, (uint64_t)tid, 0);
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		hmap_del(&t->tracees, (uint64_t)tid);
		return err_set(e, E_NOPROC, "thread %d is gone", tid);
	}
	bool group = false;
	int rc = wait_for_stop(t, tid, &group);
	if (rc == E_AGAIN)   /* still seized: its late stop is let go by target_service */
		return err_set(e, E_AGAIN, "thread %d did not stop within %.0f s", tid, PAUSE_GIVE_UP);
	if (rc) {
		if (rc != E_NOPROC)
			ptrace(PTRACE_DETACH, tid, 0, 0);
		hmap_del(&t->tracees, (uint64_t)tid);
		return err_set(e, rc, "thread %d did not stop", tid);
	}
	hmap_put(&t->tracees, (uint64_t)tid,
		 TRACEE_PAUSED | (group ? TRACEE_GROUP_STOP : 0) | tracee_stamp() << TRACEE_SEEN_SHIFT);
	return 0;
}

int target_resume_thread(struct target *t, pid_t tid)
{
	uint64_t v = 0;
	if (!hmap_get(&t->tracees, (uint64_t)tid, &v) || !(v & TRACEE_PAUSED))
		return E_INTERNAL;
	long r;
	if (!t->keep_seized) {
		hmap_del(&t->tracees, (uint64_t)tid);
		r = ptrace(PTRACE_DETACH, tid, 0, 0);   /* a group-stopped thread stays stopped */
	} else {
		hmap_put(&t->tracees, (uint64_t)tid, v & ~TRACEE_PAUSED);
		/* In a job-control stop it must stay stopped (until SIGCONT): LISTEN, not CONT. */
		r = ptrace(v & TRACEE_GROUP_STOP ? PTRACE_LISTEN : PTRACE_CONT, tid, 0, 0);
		if (r < 0)
			hmap_del(&t->tracees, (uint64_t)tid);
	}
	if (r < 0)
		return errno == ESRCH ? E_NOPROC : E_INTERNAL;
	return 0;
}

/* Every seized tid, copied out (the table changes while we work through it). */
static size_t tracee_list(struct target *t, pid_t **out)
{
	size_t n = 0, i = 0;
	uint64_t k, v;
	*out = t->tracees.n ? xmalloc(t->tracees.n * sizeof(pid_t)) : NULL;
	while (hmap_next(&t->tracees, &i, &k, &v))
		(*out)[n++] = (pid_t)k;
	return n;
}

/* Handle whatever a seized, running thread has reported; false once it is gone. */
static bool service_one(struct target *t, pid_t tid, uint64_t v)
{
	for (int guard = 0; guard < 64; guard++) {
		int status;
		pid_t r = waitpid(tid, &status, WNOHANG | __WALL);
		if (r == 0)
			return true;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			hmap_del(&t->tracees, (uint64_t)tid);
			return false;
		}
		int sig;
		enum tracee_report rep = read_report(t, tid, status, &sig);
		if (rep == REPORT_GONE)
			return false;
		if (rep == REPORT_NONE)
			continue;
		long rc;
		if (rep == REPORT_EVENT_STOP && is_stop_signal(sig)) {
			/* The process was stopped (SIGSTOP, Ctrl-Z): keep it so until SIGCONT. */
			v |= TRACEE_GROUP_STOP;
			rc = ptrace(PTRACE_LISTEN, tid, 0, 0);
		} else {
			/* A signal to deliver now, the end of a job-control stop, or a late trap of ours. */
			if (rep == REPORT_EVENT_STOP)
				sig = 0;
			v &= ~TRACEE_GROUP_STOP;
			rc = ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig);
		}
		if (rc < 0) {
			hmap_del(&t->tracees, (uint64_t)tid);
			return false;
		}
		hmap_put(&t->tracees, (uint64_t)tid, v);
	}
	return true;
}

static void release_one(struct target *t, pid_t tid)
{
	uint64_t v = 0;
	if (!hmap_get(&t->tracees, (uint64_t)tid, &v))
		return;
	if (!(v & TRACEE_PAUSED)) {
		/* Only a stopped tracee can be detached. */
		bool group = false;
		int rc = ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? E_NOPROC : wait_for_stop(t, tid, &group);
		if (rc == E_AGAIN)
			return;   /* stuck in the kernel: stays seized, serviced (or detached at exit) */
		if (rc) {
			hmap_del(&t->tracees, (uint64_t)tid);
			return;
		}
	}
	hmap_del(&t->tracees, (uint64_t)tid);
	ptrace(PTRACE_DETACH, tid, 0, 0);
}

static bool release_due(uint64_t v, uint64_t now)
{
	uint64_t seen = v >> TRACEE_SEEN_SHIFT;
	return !(v & TRACEE_PAUSED) && ((now - seen) & 0xffffffffULL) > (uint64_t)(TRACEE_RELEASE_AFTER * 100);
}

void target_service(struct target *t)
{
	if (!t->tracees.n)
		return;
	uint64_t now = tracee_stamp();
	/* The common case, every tick: no tracee (nor child) has anything to report - one peek
	 * that leaves any report in place tells, instead of a waitpid per seized thread. */
	siginfo_t si = { 0 };
	bool reports = waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) != 0 || si.si_pid != 0;
	if (!reports) {
		size_t it = 0;
		uint64_t k, v;
		bool due = false;
		while (!due && hmap_next(&t->tracees, &it, &k, &v))
			due = release_due(v, now);
		if (!due)
			return;
	}
	pid_t *tids;
	size_t n = tracee_list(t, &tids);
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		if (!hmap_get(&t->tracees, (uint64_t)tids[i], &v) || (v & TRACEE_PAUSED))
			continue;
		if (reports && !service_one(t, tids[i], v))
			continue;
		if (release_due(v, now))
			release_one(t, tids[i]);
	}
	free(tids);
}

void target_release_all(struct target *t)
{
	if (!t->tracees.n)
		return;
	pid_t *tids;
	size_t n = tracee_list(t, &tids);
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		if (hmap_get(&t->tracees, (uint64_t)tids[i], &v) && service_one(t, tids[i], v))
			release_one(t, tids[i]);
	}
	free(tids);
}

bool target_pending_syscall(struct target *t, pid_t tid, uint64_t pc, long *nr, uint64_t *arg0)
{
	uint64_t v;
	uint8_t ins[2];
	if (!pc || !hmap_get(&t->tracees, (uint64_t)tid, &v) || !(v & TRACEE_PAUSED) || target_read(t, pc, ins, 2) ||
	    ins[0] != 0x0f || ins[1] != 0x05)
		return false;
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0 || r.rip != pc || (int64_t)r.rax < 0)
		return false;
	*nr = (long)r.rax;
	*arg0 = r.rdi;
	return true;
}

int target_thread_fs_base(pid_t tid, uint64_t *fs_base)
{
	struct user_regs_struct regs;
	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return errno == ESRCH ? E_NOPROC : E_INTERNAL;
	*fs_base = regs.fs_base;
	return 0;
}
