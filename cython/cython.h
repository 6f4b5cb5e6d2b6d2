/*
 * cython.h - Cython frames made readable: mangled C names (__pyx_pf_5mypkg_7fastmod_3run) to
 * dotted Python names (mypkg.fastmod.run), and lines of the generated C file mapped back to the
 * .pyx line through Cython's marker comments (a block comment opening with "file.pyx":N). Maps are built lazily per C
 * file and cached, misses included.
 */
#ifndef MIXSPY_CYTHON_H
#define MIXSPY_CYTHON_H

#include <stdbool.h>
#include <stddef.h>

#include "../src/sample.h"
#include "../src/util/util.h"

struct cy_maps;

/* root: prefix for opening files of the target (e.g. "/proc/PID/root"), or "" */
struct cy_maps *cy_new(struct interner *strs, const char *root);
void cy_free(struct cy_maps *c);

/* Demangle a Cython symbol to its dotted name; NULL when sym is not a Cython function.
 * module_path (the .so, may be NULL) helps resolve ambiguous names. Result interned. */
const char *cy_demangle(struct cy_maps *c, const char *sym, const char *module_path);
/* Cython call helpers and wrappers that only forward a call (folded into what they wrap). */
bool cy_is_forwarding(const char *sym);
/* Is outer_sym the __pyx_pw_ wrapper of the __pyx_pf_ implementation inner_sym? The wrapper only
 * parses arguments: a wrapper frame directly over (calling) its implementation is folded into it. */
bool cy_is_wrapper_of(const char *outer_sym, const char *inner_sym);
/* Map a generated C file line to its .pyx file and line. */
bool cy_map_line(struct cy_maps *c, const char *c_file, int c_line, const char *module_path,
		 const char **pyx_file, int *pyx_line);
/* Apply both to a native frame: sets kind FRAME_CYTHON, name, file, short_file, line when the
 * frame is Cython code. Returns true when it changed the frame. */
bool cy_translate_frame(struct cy_maps *c, struct frame *f, const char *symbol);

#endif
