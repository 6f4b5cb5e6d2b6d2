/*
 * fuzz_linetable.c - py_line_for over every line-table format. Input: byte 0 picks the
 * format/version, bytes 1-8 the instruction offset, 9-12 the first line, the rest the table.
 * Every offset up to the table's own extent is asked too, so whole tables get walked.
 */
#include <string.h>

#include "python/linetable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 13)
		return 0;
	static const struct { enum py_linetable_kind kind; int major, minor; } fmts[] = {
		{ PYLINES_LNOTAB, 2, 7 }, { PYLINES_LNOTAB, 3, 5 }, { PYLINES_LNOTAB, 3, 9 },
		{ PYLINES_310, 3, 10 }, { PYLINES_LOCATIONS, 3, 11 }, { PYLINES_LOCATIONS, 3, 14 },
	};
	int f = data[0] % (int)(sizeof fmts / sizeof fmts[0]);
	int64_t addr;
	int32_t first;
	memcpy(&addr, data + 1, 8);
	memcpy(&first, data + 9, 4);
	const uint8_t *table = data + 13;
	size_t len = size - 13;
	volatile int sink = py_line_for(fmts[f].kind, fmts[f].major, fmts[f].minor, table, len, first, addr);
	for (int64_t a = 0; a < (int64_t)len * 8 + 8 && a < 4096; a += 2)
		sink = py_line_for(fmts[f].kind, fmts[f].major, fmts[f].minor, table, len, first, a);
	sink = py_line_for(fmts[f].kind, fmts[f].major, fmts[f].minor, NULL, len, first, addr);
	(void)sink;
	return 0;
}
