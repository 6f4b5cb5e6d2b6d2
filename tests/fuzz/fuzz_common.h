/*
 * fuzz_common.h - what the memory-image fuzzers share: the versions they pick from, and how an
 * input is split into a header and the image.
 *
 * Input: byte 0 picks the version, byte 1 holds option bits, the rest is target memory placed
 * at FAKE_BASE.
 */
#ifndef MIXSPY_FUZZ_COMMON_H
#define MIXSPY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "python/layouts/layouts.h"

static const int fuzz_versions[][2] = {
	{ 2, 7 }, { 3, 6 }, { 3, 7 }, { 3, 8 }, { 3, 9 }, { 3, 10 }, { 3, 11 }, { 3, 12 }, { 3, 13 }, { 3, 14 },
};
#define FUZZ_NVERSIONS (sizeof fuzz_versions / sizeof fuzz_versions[0])
#define FUZZ_HEADER 2

static inline const struct py_layout *fuzz_layout(uint8_t sel, int *major, int *minor)
{
	const int *v = fuzz_versions[sel % FUZZ_NVERSIONS];
	*major = v[0];
	*minor = v[1];
	return py_layout_for(v[0], v[1]);
}

#endif
