/*
 * test_linetable.c - py_line_for against line tables made by real interpreters (2.7 to 3.14),
 * dumped with the line CPython's own PyCode_Addr2Line gives for every instruction offset
 * (tests/unit/data/gen_linetables.py -> data/linetables/VERSION.txt), plus hand-made edge cases and
 * garbage that must neither crash nor hang.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/layout.h"
#include "python/linetable.h"
#include "unit.h"
#include "util/util.h"

#define DATA_DIR "tests/unit/data/linetables"

struct dump {
	int major, minor, micro;
	long codes, offsets, mismatches;
	long truncated_calls;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* "table <hex>" -> bytes; "-" is empty. Returns 0 or -1 on a malformed line. */
static int parse_table(const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strcspn(hex, "\n");

	*out = NULL;
	*len = 0;
	if (n == 1 && hex[0] == '-')
		return 0;
	if (n % 2)
		return -1;
	*out = xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		(*out)[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

/* Check one code object: "lines" holds the expected line per offset, run-length encoded. */
static void check_code(struct dump *d, const char *name, int first, int step, long nbytes,
		       const uint8_t *table, size_t len, char *lines)
{
	const struct py_layout *l = py_layout_for(d->major, d->minor);
	long addr = 0;
	char *save = NULL;

	CHECK(l != NULL);
	if (!l)
		return;
	d->codes++;
	for (char *tok = strtok_r(lines, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char *star = strchr(tok, '*');
		long want = strtol(tok, NULL, 10), count = star ? strtol(star + 1, NULL, 10) : 1;

		for (long k = 0; k < count; k++, addr += step) {
			int got = py_line_for(l->linetable, d->major, d->minor, table, len, first, addr);

			d->offsets++;
			if (got != want) {
				if (d->mismatches++ < 10)
					fprintf(stderr, "%d.%d %s +%ld: line %d, CPython says %ld\n", d->major,
						d->minor, name, addr, got, want);
				unit_cur_failed = 1;
			}
		}
	}
	CHECK_EQ_INT(addr, (nbytes + step - 1) / step * step);
	/* Before the first instruction (3.10's f_lasti -1, 3.11's prev_instr - 1) is firstlineno. */
	CHECK_EQ_INT(py_line_for(l->linetable, d->major, d->minor, table, len, first, -1), first);
	CHECK_EQ_INT(py_line_for(l->linetable, d->major, d->minor, table, len, first, -2), first);
	/* Every prefix of the table, as a torn read would give: bounded, whatever it returns. */
	for (size_t cut = 0; cut < len; cut += 1 + len / 64)
		for (long a = 0; a < nbytes; a += 1 + nbytes / 16, d->truncated_calls++)
			(void)py_line_for(l->linetable, d->major, d->minor, table, cut, first, a);
}

static void check_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct dump d = {0};
	char *line = NULL, name[256] = "";
	size_t cap = 0;
	uint8_t *table = NULL;
	size_t len = 0;
	int first = 0, step = 0;
	long nbytes = 0;

	CHECK(f != NULL);
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "version %d %d %d", &d.major, &d.minor, &d.micro) == 3)
			continue;
		if (sscanf(line, "code %255s %d %d %ld", name, &first, &step, &nbytes) == 4)
			continue;
		if (strncmp(line, "table ", 6) == 0) {
			free(table);
			CHECK(parse_table(line + 6, &table, &len) == 0);
		} else if (strncmp(line, "lines ", 6) == 0) {
			CHECK(step == 1 || step == 2);
			if (step == 1 || step == 2)
				check_code(&d, name, first, step, nbytes, table, len, line + 6);
		}
	}
	free(table);
	free(line);
	fclose(f);
	CHECK(d.major > 0);
	CHECK(d.codes > 0);
	printf("  %d.%d.%d: %ld code objects, %ld offsets checked, %ld mismatches\n", d.major, d.minor,
	       d.micro, d.codes, d.offsets, d.mismatches);
}

static int by_name(const void *a, const void *b)
{
	return strverscmp(*(char *const *)a, *(char *const *)b);
}

static void test_real_tables(void)
{
	DIR *dir = opendir(DATA_DIR);
	VEC(char *) names = {0};
	struct dirent *de;

	CHECK(dir != NULL);
	if (!dir) {
		fprintf(stderr, "run from the repository top: %s not found\n", DATA_DIR);
		return;
	}
	while ((de = readdir(dir)))
		if (strstr(de->d_name, ".txt"))
			vec_push(&names, xstrdup(de->d_name));
	closedir(dir);
	qsort(names.v, names.n, sizeof(names.v[0]), by_name);
	CHECK(names.n >= 10);   /* 2.7, 3.6 ... 3.14 */
	for (size_t i = 0; i < names.n; i++) {
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", DATA_DIR, names.v[i]);
		check_file(path);
		free(names.v[i]);
	}
	vec_free(&names);
}

/* Hand-made tables for the corners the real ones may not reach. */
static void test_lnotab_signedness(void)
{
	/* +2 bytes: line +1; +2 bytes: line -3 (0xfd), or +253 when deltas are unsigned (2.7). */
	static const uint8_t t[] = {2, 1, 2, 0xfd, 2, 1};

	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, sizeof(t), 10, 0), 10);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, sizeof(t), 10, 2), 11);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, sizeof(t), 10, 5), 8);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, sizeof(t), 10, 6), 9);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, sizeof(t), 10, 1000), 9);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 2, 7, t, sizeof(t), 10, 5), 264);
	/* An odd trailing byte is ignored, as CPython's len/2 loop does. */
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, t, 3, 10, 100), 11);
	CHECK_EQ_INT(py_line_for(PYLINES_LNOTAB, 3, 8, NULL, 0, 7, 100), 7);
}

static void test_pep626(void)
{
	/* [0,4) line 5+1; zero-length entry +2; [4,6) no line; [6,10) line 8+1=9; then the end. */
	static const uint8_t t[] = {4, 1, 0, 2, 2, 0x80, 4, 1};

	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, 0), 6);
	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, 3), 6);
	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, 4), -1);
	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, 6), 9);
	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, 10), -1);
	CHECK_EQ_INT(py_line_for(PYLINES_310, 3, 10, t, sizeof(t), 5, -1), 5);
}

static void test_locations(void)
{
	/* code 13 (no columns) +3, 2 units; short form (code 0) 1 unit + 1 column byte; code 15
	 * (no line) 1 unit; code 14 (long) delta -2 with 3 varints, 1 unit; code 11 (+1) 2 units
	 * with 2 column bytes; code 13 with a 2-chunk varint: +100 -> u = 200 = 0x48|0x40, 3. */
	static const uint8_t t[] = {
		0x80 | 13 << 3 | 1, 6,
		0x80 | 0 << 3 | 0, 0x11,
		0x80 | 15 << 3 | 0,
		0x80 | 14 << 3 | 0, 5, 0, 1, 2,
		0x80 | 11 << 3 | 1, 4, 8,
		0x80 | 13 << 3 | 0, 0x48 | 0x40, 3,
	};

	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 0), 13);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 3), 13);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 4), 13);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 6), -1);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 8), 11);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 10), 12);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 13), 12);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 14), 112);
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t), 10, 16), -1);
	/* A varint cut off by the end of the table reads what is there and stops. */
	CHECK_EQ_INT(py_line_for(PYLINES_LOCATIONS, 3, 11, t, sizeof(t) - 1, 10, 14), 10 + 3 - 2 + 1 + 4);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Garbage: random bytes, random lengths, huge and negative addresses. Under ASan (make
 * test-asan) this also proves every read stays inside the buffer. */
static void test_garbage(void)
{
	static const enum py_linetable_kind kinds[] = {PYLINES_LNOTAB, PYLINES_310, PYLINES_LOCATIONS};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uint8_t buf[512];

	for (int round = 0; round < 20000; round++) {
		size_t len = next_rand(&seed) % sizeof(buf);
		int64_t addr = (int64_t)(next_rand(&seed) % 4096) - 8;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)next_rand(&seed);
		if (round % 3 == 0)  /* all continuation-free bytes and long varints */
			memset(buf, round % 2 ? 0xff : 0x7f, len);
		for (size_t k = 0; k < 3; k++) {
			/* Any value will do; the point is that each call returns. */
			(void)py_line_for(kinds[k], 3, 11, buf, len, 1, addr);
			(void)py_line_for(kinds[k], 3, 11, buf, len, 1, INT64_MAX);
			(void)py_line_for(kinds[k], 2, 7, buf, len, INT32_MAX, addr);
		}
	}
	CHECK_EQ_INT(py_line_for((enum py_linetable_kind)99, 3, 11, buf, 4, 1, 0), -1);
}

int main(void)
{
	RUN(test_lnotab_signedness);
	RUN(test_pep626);
	RUN(test_locations);
	RUN(test_garbage);
	RUN(test_real_tables);
	return unit_report("linetable");
}
