/*
 * linetable.c - instruction byte offset -> source line for every line-table format CPython has
 * used, mirroring what PyCode_Addr2Line (and so traceback) reports for the same offset.
 *
 * The tables are bytes copied from a running target, so they may be torn or garbage: every read
 * is bounded by len, every loop advances at least one byte, and line arithmetic is done in 64
 * bits so no input can overflow it.
 */
#include <limits.h>

#include "linetable.h"

static int clamp_line(int64_t line)
{
	return line < INT_MIN || line > INT_MAX ? -1 : (int)line;
}

/*
 * <= 3.9 co_lnotab: (address delta, line delta) byte pairs. The line delta applies once the
 * address has been reached, so the walk stops at the first pair that starts past addr. Line
 * deltas are signed from 3.6 (loops jump backwards); 2.7 and 3.0-3.5 only ever go forward.
 */
static int lnotab_line(int major, int minor, const uint8_t *t, size_t len, int firstlineno,
		       int64_t addr)
{
	int signed_deltas = major > 3 || (major == 3 && minor >= 6);
	int64_t line = firstlineno, a = 0;

	for (size_t i = 0; i + 1 < len; i += 2) {
		a += t[i];
		if (a > addr)
			break;
		line += signed_deltas ? (int8_t)t[i + 1] : t[i + 1];
	}
	return clamp_line(line);
}

/*
 * 3.10 co_linetable (PEP 626): (byte length, line delta) pairs covering consecutive ranges.
 * A line delta of -128 marks a range with no line; zero-length ranges still move the line.
 */
static int pep626_line(const uint8_t *t, size_t len, int firstlineno, int64_t addr)
{
	int64_t line = firstlineno, end = 0;

	for (size_t i = 0; i + 1 < len; i += 2) {
		int64_t start = end;
		int8_t ldelta = (int8_t)t[i + 1];

		end += t[i];
		if (ldelta != -128)
			line += ldelta;
		if (start <= addr && addr < end)
			return ldelta == -128 ? -1 : clamp_line(line);
	}
	return -1;
}

/* Location-table varint: 6-bit chunks, least significant first, 0x40 = more follows. */
static uint64_t read_varint(const uint8_t *t, size_t len, size_t i)
{
	uint64_t val = 0;
	unsigned shift = 0;

	while (i < len && shift < 64) {
		uint8_t b = t[i++];

		val |= (uint64_t)(b & 63) << shift;
		shift += 6;
		if (!(b & 64))
			break;
	}
	return val;
}

static int64_t read_svarint(const uint8_t *t, size_t len, size_t i)
{
	uint64_t u = read_varint(t, len, i);

	return u & 1 ? -(int64_t)(u >> 1 & INT32_MAX) : (int64_t)(u >> 1 & INT32_MAX);
}

/*
 * 3.11+ location table (Objects/locations.md). Each entry starts with a byte that has bit 7
 * set: bits 3-6 are the form, bits 0-2 the length - 1 in 2-byte code units. Only the line is
 * needed: forms 13 (no columns) and 14 (long) start with a signed varint line delta, 10-12 mean
 * delta 0-2, 15 means "no line", the rest are same-line short forms. Like CPython, the next
 * entry is the next byte with bit 7 set, which skips the column bytes whatever form they take.
 */
static int locations_line(const uint8_t *t, size_t len, int firstlineno, int64_t addr)
{
	int64_t line = firstlineno, end = 0;
	size_t i = 0;

	while (i < len) {
		uint8_t b = t[i];
		int code = (b >> 3) & 15;
		int64_t start = end;

		if (code == 13 || code == 14)
			line += read_svarint(t, len, i + 1);
		else if (code >= 10 && code <= 12)
			line += code - 10;
		end += 2 * ((b & 7) + 1);
		if (start <= addr && addr < end)
			return code == 15 ? -1 : clamp_line(line);
		do
			i++;
		while (i < len && !(t[i] & 128));
	}
	return -1;
}

int py_line_for(enum py_linetable_kind kind, int major, int minor, const uint8_t *table, size_t len,
		int firstlineno, int64_t addr)
{
	if (addr < 0)
		return firstlineno;
	if (!table)
		len = 0;
	switch (kind) {
	case PYLINES_LNOTAB:
		return lnotab_line(major, minor, table, len, firstlineno, addr);
	case PYLINES_310:
		return pep626_line(table, len, firstlineno, addr);
	case PYLINES_LOCATIONS:
		return locations_line(table, len, firstlineno, addr);
	}
	return -1;
}
