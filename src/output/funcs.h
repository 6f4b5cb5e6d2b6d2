/*
 * funcs.h - frames grouped into functions, for the formats that count per function (pstats,
 * callgrind) rather than per frame. A function is (file, name): its frames differ only by line
 * (and, for native code, address). Internal to src/output/.
 */
#ifndef MIXSPY_OUTPUT_FUNCS_H
#define MIXSPY_OUTPUT_FUNCS_H

#include "output.h"

struct out_func {
	const char *name;     /* valid UTF-8 without newlines; "?" when unknown */
	const char *file;     /* full source path; for native code without one, its object; "" if none */
	const char *object;   /* native: the ELF object; NULL otherwise */
	enum frame_kind kind;
	int line;             /* smallest line seen (the def line under --function); 0 when unknown */
	uint32_t chain;       /* next function with the same hash */
};

struct out_funcs {
	struct interner *strs;           /* owns the strings above */
	VEC(struct out_func) list;
	uint32_t *of_frame;              /* profile frame id -> function index */
	struct hmap index;
};

void out_funcs_build(struct out_funcs *fs, const struct profile *p, const struct output_opts *o);
void out_funcs_free(struct out_funcs *fs);

#endif
