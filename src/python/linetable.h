/*
 * linetable.h - instruction offset -> source line, for each format CPython has used: co_lnotab
 * (<= 3.9; 2.7 with unsigned line deltas), the 3.10 co_linetable (PEP 626) and the 3.11+
 * location table. Pure functions over bytes copied from the target; every read is bounded.
 */
#ifndef MIXSPY_LINETABLE_H
#define MIXSPY_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* addr is the byte offset of the current instruction (callers convert 3.10's code units and
 * 3.11+'s pointers to bytes). Returns the line, firstlineno when addr < 0, or -1 when the
 * instruction has no line. major/minor pick the lnotab signedness (2.7 unsigned). */
int py_line_for(enum py_linetable_kind kind, int major, int minor, const uint8_t *table, size_t len,
		int firstlineno, int64_t addr);

#endif
