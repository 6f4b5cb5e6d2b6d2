/*
 * test_debug_offsets.c - py_debug_offsets_apply on _Py_DebugOffsets bytes captured from live
 * CPython 3.13.0 and Debian's 3.14 (tests/unit/data/debug_offsets_31X.hex, made by
 * gen_debug_offsets.py): the overlay must equal the generated table, and damaged copies must be
 * refused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/debug_offsets.h"
#include "python/layout.h"
#include "unit.h"
#include "util/util.h"

/* Read a fixture: '#' comment lines, then hex. Returns the byte count, 0 on failure. */
static size_t load_hex(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t n = 0;

	if (!f) {
		fprintf(stderr, "%s not found (run from the repository top)\n", path);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		for (char *p = line; p[0] && p[1] && p[0] != '\n' && n < cap; p += 2) {
			unsigned v;

			if (sscanf(p, "%2x", &v) != 1)
				break;
			buf[n++] = (uint8_t)v;
		}
	}
	fclose(f);
	return n;
}

static void put_slot(uint8_t *buf, size_t i, uint64_t v)
{
	memcpy(buf + 8 * i, &v, sizeof(v));
}

static void check_version(int minor, const char *path, size_t tstate_next_slot, size_t size_slot)
{
	uint8_t buf[1024], bad[1024];
	size_t want = py_debug_offsets_size(minor), n = load_hex(path, buf, sizeof(buf));
	const struct py_layout *table = py_layout_for(3, minor);
	struct py_layout out, before;
	struct err e = {0};

	CHECK(want > 0);
	CHECK_EQ_INT(n, want);
	CHECK(table != NULL);
	if (n != want || !table)
		return;

	/* The live offsets agree with the headers: the overlay is the table, field for field. */
	memset(&out, 0xaa, sizeof(out));
	CHECK_EQ_INT(py_debug_offsets_apply(buf, n, minor, &out, &e), 0);
	CHECK(memcmp(&out, table, sizeof(out)) == 0);
	CHECK_EQ_INT(out.tstate_next, 8);
	CHECK_EQ_INT(out.gil_locked, table->gil_locked);

	/* A published value wins over the table. */
	memcpy(bad, buf, n);
	put_slot(bad, tstate_next_slot, 24);
	CHECK_EQ_INT(py_debug_offsets_apply(bad, n, minor, &out, &e), 0);
	CHECK_EQ_INT(out.tstate_next, 24);

	/* Refusals leave *out alone. */
	before = out;
	memcpy(bad, buf, n);
	bad[0] = 'X';
	CHECK_EQ_INT(py_debug_offsets_apply(bad, n, minor, &out, &e), E_READ);
	CHECK(strstr(e.msg, "cookie") != NULL);
	CHECK_EQ_INT(py_debug_offsets_apply(buf, n - 1, minor, &out, &e), E_READ);
	CHECK_EQ_INT(py_debug_offsets_apply(NULL, n, minor, &out, &e), E_READ);
	CHECK_EQ_INT(py_debug_offsets_apply(buf, n, minor == 13 ? 14 : 13, &out, &e), E_VERSION);
	memcpy(bad, buf, n);
	put_slot(bad, 2, 1);   /* free_threaded */
	CHECK_EQ_INT(py_debug_offsets_apply(bad, n, minor, &out, &e), E_VERSION);
	memcpy(bad, buf, n);
	put_slot(bad, size_slot, 1u << 20);   /* thread state size */
	CHECK_EQ_INT(py_debug_offsets_apply(bad, n, minor, &out, &e), E_READ);
	memcpy(bad, buf, n);
	put_slot(bad, tstate_next_slot, 100000);   /* past sizeof(PyThreadState) */
	CHECK_EQ_INT(py_debug_offsets_apply(bad, n, minor, &out, &e), E_READ);
	CHECK(memcmp(&out, &before, sizeof(out)) == 0);
}

static void test_313(void)
{
	check_version(13, "tests/unit/data/debug_offsets_313.hex", 21, 19);
}

static void test_314(void)
{
	check_version(14, "tests/unit/data/debug_offsets_314.hex", 24, 22);
}

static void test_other_versions(void)
{
	uint8_t buf[8] = "xdebugpy";
	struct py_layout out;
	struct err e = {0};

	CHECK_EQ_INT(py_debug_offsets_size(12), 0);
	CHECK_EQ_INT(py_debug_offsets_size(15), 0);
	CHECK_EQ_INT(py_debug_offsets_size(13), 584);
	CHECK_EQ_INT(py_debug_offsets_size(14), 760);
	CHECK_EQ_INT(py_debug_offsets_apply(buf, sizeof(buf), 12, &out, &e), E_VERSION);
	CHECK_EQ_INT(py_debug_offsets_apply(buf, sizeof(buf), 15, &out, &e), E_VERSION);
}

static void test_layout_lookup(void)
{
	static const int minors[] = {6, 7, 8, 9, 10, 11, 12, 13, 14};

	CHECK(py_layout_for(2, 7) != NULL && py_layout_for(2, 7)->strings == PYSTR_PY2);
	for (size_t i = 0; i < sizeof(minors) / sizeof(minors[0]); i++) {
		const struct py_layout *l = py_layout_for(3, minors[i]);

		CHECK(l != NULL);
		if (l)
			CHECK_EQ_INT(l->minor, minors[i]);
	}
	CHECK(py_layout_for(3, 5) == NULL);
	CHECK(py_layout_for(3, 15) == NULL);
	CHECK(py_layout_for(2, 6) == NULL);
	CHECK(py_layout_for(4, 0) == NULL);
}

int main(void)
{
	RUN(test_313);
	RUN(test_314);
	RUN(test_other_versions);
	RUN(test_layout_lookup);
	return unit_report("debug_offsets");
}
