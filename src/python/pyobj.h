/*
 * pyobj.h - reading Python objects out of the target: strings (2.7 str, PEP 393 unicode),
 * bytes, ints, floats, containers and their reprs, dict lookups and instance attributes. Every
 * length and count read from the target is bounded; garbage gives an error, never a crash.
 */
#ifndef MIXSPY_PYOBJ_H
#define MIXSPY_PYOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../target.h"
#include "../util/util.h"
#include "layout.h"

#define PYOBJ_MAX_STR 16384   /* characters; longer strings are refused */

struct py_reader {
	struct target *t;
	const struct py_layout *L;
	int major, minor;
	/* addresses of a few type objects (0 when unknown), for type checks */
	uint64_t type_code, type_unicode, type_str2, type_bytes;
	long repr_nodes;      /* objects the current pyobj_repr may still visit (set by it) */
};

/* Read a str (3.x unicode, or 2.7 str/unicode) as UTF-8 into sb (appended). */
int pyobj_read_str(struct py_reader *r, uint64_t addr, struct strbuf *sb);
/* Read a bytes object (2.7: str) into a malloc'd buffer, at most max bytes. */
int pyobj_read_bytes(struct py_reader *r, uint64_t addr, size_t max, uint8_t **out, size_t *len);
/* tp_name of the object's type into sb. */
int pyobj_type_name(struct py_reader *r, uint64_t addr, struct strbuf *sb);

#define PYOBJ_MAX_ITEMS 100000   /* containers with more items (or dict slots) are refused */
#define PYOBJ_MAX_DEPTH 32       /* nesting depth of a repr; deeper values print as "..." */
#define PYOBJ_MAX_REPR_NODES 4096 /* objects one repr visits; more print as "..." (a list holding
				     itself n times would otherwise cost n^depth reads) */

/* tp_flags bits that mark the built-in families (their meaning is the same in 2.7 and 3.x, except
 * that 2.7 calls 1 << 27 "string" and 1 << 28 "unicode"). */
#define PYOBJ_TPFLAGS_INT_SUBCLASS (1ul << 23)     /* 2.7 only */
#define PYOBJ_TPFLAGS_LONG_SUBCLASS (1ul << 24)
#define PYOBJ_TPFLAGS_LIST_SUBCLASS (1ul << 25)
#define PYOBJ_TPFLAGS_TUPLE_SUBCLASS (1ul << 26)
#define PYOBJ_TPFLAGS_BYTES_SUBCLASS (1ul << 27)
#define PYOBJ_TPFLAGS_UNICODE_SUBCLASS (1ul << 28)
#define PYOBJ_TPFLAGS_DICT_SUBCLASS (1ul << 29)

/* The type object of addr, and a type's tp_flags. */
int pyobj_type(struct py_reader *r, uint64_t addr, uint64_t *type);
int pyobj_type_flags(struct py_reader *r, uint64_t type, uint64_t *flags);

/* An int (2.7: int or long; 3.12+: the lv_tag layout). Values that don't fit in 64 bits set
 * *overflow and give only the sign in *value (+1 / -1). bool reads as 0 / 1. */
int pyobj_read_long(struct py_reader *r, uint64_t addr, int64_t *value, bool *overflow);
/* A float's value. */
int pyobj_read_float(struct py_reader *r, uint64_t addr, double *value);
/* Items of a tuple or a list (by the type's flags) into a malloc'd array, at most max of them
 * (more is refused with E_READ). */
int pyobj_read_items(struct py_reader *r, uint64_t addr, size_t max, uint64_t **items, size_t *n);
/* Number of items of a set or frozenset. */
int pyobj_set_size(struct py_reader *r, uint64_t addr, int64_t *n);

/* Iteration over a dict's live entries (2.7, 3.6-3.10, 3.11+ general and unicode keys, split
 * tables). Entries come in slot order (insertion order from 3.6, except split tables). */
struct pyobj_dict_iter {
	uint64_t entries;         /* address of slot 0 */
	uint64_t values;          /* split tables: the value array, else 0 */
	size_t entry_size, key_off, value_off;
	size_t n, i;              /* slots, next slot */
	uint8_t buf[32 * 24];     /* a batch of slots read at once */
	size_t buf_first, buf_n;
	uint64_t vbuf[32];
	size_t vbuf_first, vbuf_n;
};
int pyobj_dict_iter_init(struct py_reader *r, uint64_t dict, struct pyobj_dict_iter *it);
/* 1 with the next entry, 0 at the end, or E_READ. */
int pyobj_dict_iter_next(struct py_reader *r, struct pyobj_dict_iter *it, uint64_t *key, uint64_t *value);
/* The value under the str key `key`: 0 with *value set, or 0 with *value = 0 when absent. */
int pyobj_dict_get_str(struct py_reader *r, uint64_t dict, const char *key, uint64_t *value);
/* An attribute stored in an object's instance dict: tp_dictoffset dicts, 3.11+ managed dicts and
 * their values arrays (3.11 obj-4 words, 3.12 tagged, 3.13+ inline). *value = 0 when absent.
 * Works on modules too (their md_dict is the tp_dictoffset dict). */
int pyobj_instance_attr(struct py_reader *r, uint64_t obj, const char *name, uint64_t *value);

/* py-spy's repr of a value (dump --locals), appended to sb: str double-quoted with ' and newline
 * escaped, ints, +bigint/-bigint, floats as Rust prints them, True/False/None, dict/list/tuple
 * summaries within `budget` characters, numpy scalars, else "<typename at 0xADDR>". On an error
 * sb is left as it was. */
int pyobj_repr(struct py_reader *r, uint64_t addr, size_t budget, struct strbuf *sb);
/* Rust's Display of a double (shortest round trip, never an exponent); f32 when single. */
void pyobj_format_double(struct strbuf *sb, double v, bool single);

#endif
