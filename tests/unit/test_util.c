/* Unit tests of src/util (hash map, interner, strbuf escaping) and of target_readv's merging of
 * neighbouring ranges, read from this very process. */
#include "unit.h"
#include "target.h"
#include "util/util.h"
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void test_hmap(void)
{
	struct hmap m;
	hmap_init(&m);
	for (uint64_t i = 0; i < 10000; i++)
		hmap_put(&m, i * 7919, i);
	CHECK_EQ_INT(m.n, 10000);
	uint64_t v = 0;
	CHECK(hmap_get(&m, 7919 * 5000, &v));
	CHECK_EQ_INT(v, 5000);
	for (uint64_t i = 0; i < 10000; i += 2)
		CHECK(hmap_del(&m, i * 7919));
	CHECK_EQ_INT(m.n, 5000);
	for (uint64_t i = 0; i < 10000; i++)
		CHECK(hmap_get(&m, i * 7919, NULL) == (i % 2 == 1));
	size_t it = 0, count = 0;
	uint64_t k;
	while (hmap_next(&m, &it, &k, &v)) {
		CHECK_EQ_INT(k, v * 7919);
		count++;
	}
	CHECK_EQ_INT(count, 5000);
	hmap_free(&m);
}

static void test_interner(void)
{
	struct interner *in = interner_new();
	char buf[32];
	const char *first = intern(in, "hello");
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof buf, "s%d", i);
		intern(in, buf);
	}
	CHECK(intern(in, "hello") == first);
	CHECK(intern_n(in, "hello world", 5) == first);
	CHECK_EQ_INT(interner_count(in), 5001);
	interner_free(in);
}

static void test_escape(void)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_add_json(&sb, "a\"b\\c\n\x01");
	CHECK_EQ_STR(sb.buf, "a\\\"b\\\\c\\n\\u0001");
	sb_reset(&sb);
	sb_add_xml(&sb, "<a & 'b'>");
	CHECK_EQ_STR(sb.buf, "&lt;a &amp; &apos;b&apos;&gt;");
	sb_free(&sb);
}

/* 40 ranges: 30 small ones 416 bytes apart (frame objects in a pool: merged into runs), two
 * overlapping, five far away on the heap, and three on a page that cannot be read - one of them
 * within the gap of a run, which then fails and is read range by range. Every readable range
 * must come back byte for byte, every unreadable one flagged. */
static void test_readv_merge(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *area = mmap(NULL, 5 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	if (area == MAP_FAILED)
		return;
	uint8_t *bad = area + 4 * pg;
	CHECK(mprotect(bad, (size_t)pg, PROT_NONE) == 0);
	for (long i = 0; i < 4 * pg; i++)
		area[i] = (uint8_t)(i * 7 + 3);
	uint8_t *far[5];
	for (int i = 0; i < 5; i++) {
		far[i] = malloc(64);
		for (int k = 0; k < 64; k++)
			far[i][k] = (uint8_t)(i * 31 + k);
	}
	struct target t;
	struct err e = { 0 };
	CHECK(target_attach(&t, getpid(), &e) == 0);
	struct target_iov iov[40];
	bool ok[40];
	uint8_t out[40][128];
	size_t n = 0;
#define ADD(p, len) do { iov[n] = (struct target_iov){ (uint64_t)(uintptr_t)(p), out[n], (len) }; n++; } while (0)
	for (int i = 0; i < 30; i++)   /* the last ones end close below the unreadable page */
		ADD(bad - 30 * 416 + i * 416, 100);
	ADD(area + 40, 128);
	ADD(area + 100, 128);   /* overlaps the one before */
	for (int i = 0; i < 5; i++)
		ADD(far[i], 64);
	for (int i = 0; i < 3; i++)
		ADD(bad + 8 + i * 200, 16);
#undef ADD
	CHECK_EQ_INT(n, 40);
	memset(out, 0xee, sizeof out);
	memset(ok, 0, sizeof ok);
	size_t good = target_readv(&t, iov, n, ok);
	CHECK_EQ_INT(good, 37);
	for (size_t i = 0; i < n; i++) {
		bool readable = i < 37;
		CHECK(ok[i] == readable);
		if (readable && ok[i])
			CHECK(memcmp(out[i], (void *)(uintptr_t)iov[i].addr, iov[i].len) == 0);
	}
	target_close(&t);
	for (int i = 0; i < 5; i++)
		free(far[i]);
	munmap(area, 5 * (size_t)pg);
}

int main(void)
{
	RUN(test_hmap);
	RUN(test_interner);
	RUN(test_escape);
	RUN(test_readv_merge);
	return unit_report("util");
}
