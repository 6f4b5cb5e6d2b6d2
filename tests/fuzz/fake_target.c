/*
 * fake_target.c - target.h over an in-memory image (see fake_target.h). Only what the readers
 * in src/python/ need is real; pausing and thread listing succeed without doing anything, and
 * the process is always alive (so errors surface as E_READ, as they do for a live target).
 */
#include "fake_target.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t *image;
static size_t image_len;

void fake_target_init(struct target *t, const uint8_t *data, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->pid = 1;
	t->memfd = -1;
	image = data;
	image_len = len;
	struct map m = { .start = FAKE_BASE, .end = FAKE_BASE + len, .r = true, .w = true };
	if (len)
		vec_push(&t->maps, m);
}

void fake_target_free(struct target *t)
{
	vec_free(&t->maps);
	image = NULL;
	image_len = 0;
}

ssize_t target_read_partial(struct target *t, uint64_t addr, void *buf, size_t len)
{
	(void)t;
	if (len == 0)
		return 0;
	if (addr < FAKE_BASE || addr - FAKE_BASE >= image_len)
		return E_READ;
	size_t off = (size_t)(addr - FAKE_BASE);
	size_t n = image_len - off < len ? image_len - off : len;
	memcpy(buf, image + off, n);
	return (ssize_t)n;
}

int target_read(struct target *t, uint64_t addr, void *buf, size_t len)
{
	ssize_t r = target_read_partial(t, addr, buf, len);
	if (r < 0)
		return (int)r;
	return (size_t)r == len ? 0 : E_READ;
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

const struct map *target_map_at(const struct target *t, uint64_t addr)
{
	for (size_t i = 0; i < t->maps.n; i++)
		if (addr >= t->maps.v[i].start && addr < t->maps.v[i].end)
			return &t->maps.v[i];
	return NULL;
}

bool target_is_mapped(const struct target *t, uint64_t addr, size_t len)
{
	const struct map *m = target_map_at(t, addr);
	return m && addr + len <= m->end && addr + len >= addr;
}

char *target_file_path(const struct target *t, const char *path)
{
	(void)t;
	return xstrdup(path);
}

int target_threads(struct target *t, pid_t **tids, size_t *n, struct err *e)
{
	(void)t;
	(void)e;
	*tids = xmalloc(sizeof(pid_t));
	(*tids)[0] = 1;
	*n = 1;
	return 0;
}

int target_thread_running(struct target *t, pid_t tid) { (void)t; (void)tid; return 1; }
bool target_alive(struct target *t) { (void)t; return true; }
char target_state(pid_t pid) { (void)pid; return 'R'; }
pid_t target_ppid(pid_t pid) { (void)pid; return -1; }
int target_pause_thread(struct target *t, pid_t tid, struct err *e) { (void)t; (void)tid; (void)e; return 0; }
int target_resume_thread(struct target *t, pid_t tid) { (void)t; (void)tid; return 0; }

int target_thread_fs_base(pid_t tid, uint64_t *fs_base)
{
	(void)tid;
	*fs_base = FAKE_BASE;
	return 0;
}

size_t target_readv(struct target *t, const struct target_iov *iov, size_t n, bool *ok)
{
	size_t good = 0;
	for (size_t i = 0; i < n; i++) {
		ok[i] = target_read(t, iov[i].addr, iov[i].buf, iov[i].len) == 0;
		good += ok[i];
	}
	return good;
}

/* Held ranges only save system calls: here every read goes to the fake memory. */
size_t target_hold(struct target *t, const struct target_iov *want, size_t n)
{
	(void)t;
	(void)want;
	(void)n;
	return 0;
}

void target_unhold(struct target *t) { (void)t; }
