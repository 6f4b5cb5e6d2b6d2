/*
 * util.h - the few data structures every part of mixspy shares: errors as values, a growable byte
 * buffer, a dynamic array, one hash map (u64 -> u64) and one string interner.
 *
 * Everything here is plain memory; nothing knows about processes or Python.
 */
#ifndef MIXSPY_UTIL_H
#define MIXSPY_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>   /* vec_insert */
#include <time.h>

/* ---- errors ---------------------------------------------------------------------------------- */

/* Functions return 0 on success or one of these (negative) and fill a struct err with one line. */
enum {
	E_OK = 0,
	E_NOPROC = -1,   /* no such process, or it exited */
	E_PERM = -2,     /* ptrace / read permission denied */
	E_NOTPY = -3,    /* not a Python process (no interpreter found) */
	E_VERSION = -4,  /* a Python version we don't support */
	E_READ = -5,     /* a read of target memory failed or returned garbage */
	E_ARG = -6,      /* bad command line argument */
	E_IO = -7,       /* file or pipe error on our side */
	E_NOMEM = -8,
	E_INTERNAL = -9,
	E_AGAIN = -10,   /* transient: try again at the next sample */
};

struct err {
	int code;
	char msg[512];
};

/* Fill e (may be NULL) and return code. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- allocation ------------------------------------------------------------------------------ */

/* Out-of-memory in mixspy itself is not survivable in any useful way: these abort with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* After a failed write: delete the output file at path, but only if it is a regular file and
 * did not exist before this run opened it (`existed`, from path_exists). As root, deleting
 * `-o /dev/null` would remove the device for the whole machine. */
bool path_exists(const char *path);
void remove_new_output(const char *path, bool existed);
char *xstrndup(const char *s, size_t n);

/* ---- growable buffer ------------------------------------------------------------------------- */

struct strbuf {
	char *buf;  /* always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_add(struct strbuf *sb, const void *data, size_t len);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addc(struct strbuf *sb, char c);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
/* JSON string body escaping (no surrounding quotes). */
void sb_add_json(struct strbuf *sb, const char *s);
/* XML text / attribute escaping. */
void sb_add_xml(struct strbuf *sb, const char *s);
/* Take ownership of the buffer (caller frees); sb is left empty. */
char *sb_detach(struct strbuf *sb);

/* ---- dynamic array --------------------------------------------------------------------------- */

/* A typed growable array: struct { T *v; size_t n, cap; }. */
#define VEC(T) struct { T *v; size_t n, cap; }
#define vec_push(a, x) do { \
		if ((a)->n == (a)->cap) { \
			(a)->cap = (a)->cap ? (a)->cap * 2 : 8; \
			(a)->v = xrealloc((a)->v, (a)->cap * sizeof(*(a)->v)); \
		} \
		(a)->v[(a)->n++] = (x); \
	} while (0)
#define vec_reserve(a, want) do { \
		if ((want) > (a)->cap) { \
			(a)->cap = (want); \
			(a)->v = xrealloc((a)->v, (a)->cap * sizeof(*(a)->v)); \
		} \
	} while (0)
#define vec_free(a) do { free((a)->v); (a)->v = NULL; (a)->n = (a)->cap = 0; } while (0)
/* x into a at index k (at most a->n), the items from k on moved up by one. */
#define vec_insert(a, k, x) do { \
		size_t vec_at_ = (k); \
		vec_push(a, x); \
		memmove(&(a)->v[vec_at_ + 1], &(a)->v[vec_at_], ((a)->n - 1 - vec_at_) * sizeof(*(a)->v)); \
		(a)->v[vec_at_] = (x); \
	} while (0)

/* ---- hash map: u64 key -> u64 value (open addressing) ---------------------------------------- */

struct hmap {
	uint64_t *keys;
	uint64_t *vals;
	uint8_t *used;
	size_t cap;   /* power of two */
	size_t n;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
void hmap_clear(struct hmap *m);
bool hmap_get(const struct hmap *m, uint64_t key, uint64_t *val);
void hmap_put(struct hmap *m, uint64_t key, uint64_t val);
bool hmap_del(struct hmap *m, uint64_t key);
/* Iterate: for (size_t i = 0; hmap_next(m, &i, &k, &v); ) */
bool hmap_next(const struct hmap *m, size_t *iter, uint64_t *key, uint64_t *val);

/* 64-bit hash of bytes (FNV-1a folded with a mixer); used for keys built from several fields. */
uint64_t hash_bytes(const void *data, size_t len, uint64_t seed);
uint64_t hash_u64(uint64_t x);

/* ---- string interner ------------------------------------------------------------------------- */

/* Interned strings live until interner_free; equal strings get the same pointer, so code may
 * compare interned strings with ==. */
struct interner;

struct interner *interner_new(void);
void interner_free(struct interner *in);
const char *intern(struct interner *in, const char *s);
const char *intern_n(struct interner *in, const char *s, size_t len);
size_t interner_count(const struct interner *in);

/* ---- time ------------------------------------------------------------------------------------ */

double now_monotonic(void);   /* seconds */
double now_wall(void);        /* seconds since the epoch */
/* Sleep up to secs, ending early when pfd (if not NULL) has an event or a signal is handled -
 * SIGCHLD included, which the sampler keeps blocked outside such sleeps (see sampler_run).
 * Returns ppoll's result: > 0 pfd ready, 0 time up, < 0 interrupted (errno EINTR). */
struct pollfd;
int sleep_signalled(struct pollfd *pfd, double secs);
/* Local time t as RFC 3339 at seconds, as py-spy names its files: "2026-11-21T09:35:34Z" in UTC,
 * else with the offset "+01:00" (strftime's %z has no colon). */
void time_rfc3339(char *buf, size_t n, time_t t);

#endif
