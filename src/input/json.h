/*
 * json.h - a small, bounded JSON parser for the files mixspy reads back (speedscope). It builds
 * the whole document as an array of nodes linked by index; strings are decoded to UTF-8 in one
 * buffer. Garbage input gives an error with the byte offset, never a crash: nesting depth, sizes
 * and every escape are checked.
 */
#ifndef MIXSPY_JSON_H
#define MIXSPY_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

#define JSON_NONE UINT32_MAX
#define JSON_MAX_DEPTH 256

struct json_node {
	enum json_type type;
	uint32_t key;     /* object member: offset of its key in strs; JSON_NONE otherwise */
	uint32_t next;    /* next sibling, or JSON_NONE */
	uint32_t child;   /* array / object: first element, or JSON_NONE */
	uint32_t count;   /* array / object: number of elements */
	uint32_t str;     /* string: offset in strs */
	double num;
};

struct json_doc {
	VEC(struct json_node) nodes;   /* node 0 is the root */
	struct strbuf strs;            /* NUL-separated decoded strings */
};

/* Parse text (len bytes, need not be NUL-terminated). 0 or E_ARG with the offset of the error. */
int json_parse(struct json_doc *d, const char *text, size_t len, struct err *e);
void json_free(struct json_doc *d);

/* Accessors; every one accepts JSON_NONE or an out-of-range index and answers "absent". */
const struct json_node *json_node(const struct json_doc *d, uint32_t i);
enum json_type json_type_of(const struct json_doc *d, uint32_t i);   /* JSON_NULL when absent */
uint32_t json_get(const struct json_doc *d, uint32_t obj, const char *key);
uint32_t json_first(const struct json_doc *d, uint32_t i);   /* first element of an array/object */
uint32_t json_next(const struct json_doc *d, uint32_t i);
uint32_t json_count(const struct json_doc *d, uint32_t i);
/* String value (or NULL when not a string); number value (def when not a number). */
const char *json_str(const struct json_doc *d, uint32_t i);
double json_num(const struct json_doc *d, uint32_t i, double def);
const char *json_key(const struct json_doc *d, uint32_t i);

#endif
