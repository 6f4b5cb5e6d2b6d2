/*
 * unit.h - the unit tests' few macros. Each test file has a main() that calls its tests with RUN
 * and ends with `return unit_report("name");`, which prints "N passed, N failed".
 */
#ifndef MIXSPY_UNIT_H
#define MIXSPY_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;

#define CHECK(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			unit_cur_failed = 1; \
		} \
	} while (0)
#define CHECK_EQ_INT(a, b) do { \
		long long _a = (long long)(a), _b = (long long)(b); \
		if (_a != _b) { \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, _a, #b, _b); \
			unit_cur_failed = 1; \
		} \
	} while (0)
#define CHECK_EQ_STR(a, b) do { \
		const char *_a = (a), *_b = (b); \
		if (!_a || !_b || strcmp(_a, _b) != 0) { \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)"); \
			unit_cur_failed = 1; \
		} \
	} while (0)
#define RUN(fn) do { \
		unit_cur_failed = 0; \
		fn(); \
		if (unit_cur_failed) { unit_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
		else unit_passed++; \
	} while (0)

static inline int unit_report(const char *suite)
{
	printf("%s: %d passed, %d failed\n", suite, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
