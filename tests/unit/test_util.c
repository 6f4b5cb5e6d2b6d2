/* Unit tests of src/util: hash map, interner, strbuf escaping. */
#include "unit.h"
#include "util/util.h"
#include <stdlib.h>

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

int main(void)
{
	RUN(test_hmap);
	RUN(test_interner);
	RUN(test_escape);
	return unit_report("util");
}
