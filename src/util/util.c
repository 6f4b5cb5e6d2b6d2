/*
 * util.c - errors, allocation, strbuf, hash map, string interner, clocks (see util.h).
 */
#include "util.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->code = code;
	}
	return code;
}

static void oom(size_t n)
{
	fprintf(stderr, "Error: out of memory (%zu bytes)\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

void remove_new_output(const char *path, bool existed)
{
	struct stat st;
	if (!existed && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
		unlink(path);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* ---- strbuf ---- */

void sb_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb_init(sb);
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = 0;
}

static void sb_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

void sb_add(struct strbuf *sb, const void *data, size_t len)
{
	sb_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = 0;
}

void sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void sb_addc(struct strbuf *sb, char c)
{
	sb_grow(sb, 1);
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = 0;
}

void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	sb_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(sb, fmt, ap);
	va_end(ap);
}

void sb_add_json(struct strbuf *sb, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': sb_adds(sb, "\\\""); break;
		case '\\': sb_adds(sb, "\\\\"); break;
		case '\n': sb_adds(sb, "\\n"); break;
		case '\r': sb_adds(sb, "\\r"); break;
		case '\t': sb_adds(sb, "\\t"); break;
		default:
			if (*p < 0x20)
				sb_addf(sb, "\\u%04x", *p);
			else
				sb_addc(sb, (char)*p);
		}
	}
}

void sb_add_xml(struct strbuf *sb, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '<': sb_adds(sb, "&lt;"); break;
		case '>': sb_adds(sb, "&gt;"); break;
		case '&': sb_adds(sb, "&amp;"); break;
		case '"': sb_adds(sb, "&quot;"); break;
		case '\'': sb_adds(sb, "&apos;"); break;
		default:
			/* XML 1.0 forbids most control characters even when escaped. */
			if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
				sb_addc(sb, '?');
			else
				sb_addc(sb, (char)*p);
		}
	}
}

char *sb_detach(struct strbuf *sb)
{
	char *p = sb->buf ? sb->buf : xstrdup("");
	sb_init(sb);
	return p;
}

/* ---- hashing ---- */

uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return hash_u64(h);
}

/* ---- hmap ---- */

void hmap_init(struct hmap *m)
{
	memset(m, 0, sizeof(*m));
}

void hmap_free(struct hmap *m)
{
	free(m->keys);
	free(m->vals);
	free(m->used);
	hmap_init(m);
}

void hmap_clear(struct hmap *m)
{
	if (m->used)
		memset(m->used, 0, m->cap);
	m->n = 0;
}

static size_t hmap_slot(const struct hmap *m, uint64_t key, bool *found)
{
	size_t mask = m->cap - 1, i = hash_u64(key) & mask;
	for (;;) {
		if (!m->used[i]) {
			*found = false;
			return i;
		}
		if (m->keys[i] == key) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static void hmap_resize(struct hmap *m, size_t cap)
{
	struct hmap old = *m;
	m->cap = cap;
	m->n = 0;
	m->keys = xcalloc(cap, sizeof(uint64_t));
	m->vals = xcalloc(cap, sizeof(uint64_t));
	m->used = xcalloc(cap, 1);
	for (size_t i = 0; i < old.cap; i++)
		if (old.used[i])
			hmap_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
	free(old.used);
}

bool hmap_get(const struct hmap *m, uint64_t key, uint64_t *val)
{
	if (!m->n)
		return false;
	bool found;
	size_t i = hmap_slot(m, key, &found);
	if (found && val)
		*val = m->vals[i];
	return found;
}

void hmap_put(struct hmap *m, uint64_t key, uint64_t val)
{
	if ((m->n + 1) * 2 >= m->cap)
		hmap_resize(m, m->cap ? m->cap * 2 : 16);
	bool found;
	size_t i = hmap_slot(m, key, &found);
	if (!found) {
		m->used[i] = 1;
		m->keys[i] = key;
		m->n++;
	}
	m->vals[i] = val;
}

bool hmap_del(struct hmap *m, uint64_t key)
{
	if (!m->n)
		return false;
	bool found;
	size_t i = hmap_slot(m, key, &found);
	if (!found)
		return false;
	/* Backward-shift deletion keeps probe chains intact without tombstones. */
	size_t mask = m->cap - 1, j = i;
	m->used[i] = 0;
	m->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (!m->used[j])
			break;
		size_t home = hash_u64(m->keys[j]) & mask;
		bool move = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
		if (move) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->used[i] = 1;
			m->used[j] = 0;
			i = j;
		}
	}
	return true;
}

bool hmap_next(const struct hmap *m, size_t *iter, uint64_t *key, uint64_t *val)
{
	for (; *iter < m->cap; (*iter)++) {
		if (m->used[*iter]) {
			if (key)
				*key = m->keys[*iter];
			if (val)
				*val = m->vals[*iter];
			(*iter)++;
			return true;
		}
	}
	return false;
}

/* ---- interner ---- */

/* Strings are stored in large chunks; the table maps a hash to a chain of entries. */
struct istr {
	struct istr *next;
	uint64_t hash;
	size_t len;
	char s[];
};

struct interner {
	struct istr **buckets;
	size_t cap;
	size_t n;
};

struct interner *interner_new(void)
{
	struct interner *in = xcalloc(1, sizeof(*in));
	in->cap = 1024;
	in->buckets = xcalloc(in->cap, sizeof(*in->buckets));
	return in;
}

void interner_free(struct interner *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->cap; i++) {
		struct istr *e = in->buckets[i];
		while (e) {
			struct istr *next = e->next;
			free(e);
			e = next;
		}
	}
	free(in->buckets);
	free(in);
}

static void interner_grow(struct interner *in)
{
	size_t cap = in->cap * 2;
	struct istr **b = xcalloc(cap, sizeof(*b));
	for (size_t i = 0; i < in->cap; i++) {
		struct istr *e = in->buckets[i];
		while (e) {
			struct istr *next = e->next;
			size_t k = e->hash & (cap - 1);
			e->next = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(in->buckets);
	in->buckets = b;
	in->cap = cap;
}

const char *intern_n(struct interner *in, const char *s, size_t len)
{
	uint64_t h = hash_bytes(s, len, 0);
	for (struct istr *e = in->buckets[h & (in->cap - 1)]; e; e = e->next)
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			return e->s;
	if (in->n * 2 > in->cap)
		interner_grow(in);
	struct istr *e = xmalloc(sizeof(*e) + len + 1);
	e->hash = h;
	e->len = len;
	memcpy(e->s, s, len);
	e->s[len] = 0;
	size_t k = h & (in->cap - 1);
	e->next = in->buckets[k];
	in->buckets[k] = e;
	in->n++;
	return e->s;
}

const char *intern(struct interner *in, const char *s)
{
	return intern_n(in, s, strlen(s));
}

size_t interner_count(const struct interner *in)
{
	return in->n;
}

double now_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int sleep_signalled(struct pollfd *pfd, double secs)
{
	if (secs < 0)
		secs = 0;
	struct timespec ts = { .tv_sec = (time_t)secs };
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	sigset_t mask;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	sigdelset(&mask, SIGCHLD);
	return ppoll(pfd, pfd ? 1 : 0, &ts, &mask);
}

double now_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void time_rfc3339(char *buf, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	long off = tm.tm_gmtoff / 60;
	if (off == 0)
		snprintf(buf + len, n - len, "Z");
	else
		snprintf(buf + len, n - len, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}
