/*
 * debug_offsets.h - the offsets CPython 3.13+ publishes about itself (_Py_DebugOffsets, the
 * first member of _PyRuntime), validated and laid over the built-in layout table.
 */
#ifndef MIXSPY_PY_DEBUG_OFFSETS_H
#define MIXSPY_PY_DEBUG_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"
#include "layout.h"

/* How many bytes to read from the start of _PyRuntime for this 3.x minor; 0 when the version
 * publishes no debug offsets (or one we don't know the shape of). */
size_t py_debug_offsets_size(int minor);

/* buf/len: bytes read from the start of _PyRuntime of a CPython 3.<minor> target. Checks the
 * cookie, the version, that the build has the GIL, and that every size and offset is sane,
 * then writes to *out the built-in table for 3.<minor> with the published offsets laid over
 * it (fields the struct is silent about keep the table's value). *out is untouched on error. */
int py_debug_offsets_apply(const uint8_t *buf, size_t len, int minor, struct py_layout *out,
			   struct err *e);

#endif
