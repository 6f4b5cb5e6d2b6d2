/*
 * test_input.c - unit tests of the profile readers behind `mixspy merge`: the JSON parser (values,
 * escapes, surrogates, and garbage of every kind rejected without a crash), format detection,
 * and round trips writer -> reader -> writer for raw, speedscope and pprof, with counts that add
 * up exactly when the same file is read twice.
 */
#include <stdlib.h>
#include <string.h>

#include "input/input.h"
#include "input/json.h"
#include "output/output.h"
#include "unit.h"

static void test_json_values(void)
{
	struct json_doc d;
	struct err e = { 0 };
	const char *t = " {\"a\": [1, -2.5e1, true, false, null], \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\u0000\\ud800z\","
			" \"o\": {}, \"a2\": [], \"a\": 7} ";
	CHECK_EQ_INT(json_parse(&d, t, strlen(t), &e), 0);
	CHECK_EQ_INT(json_type_of(&d, 0), JSON_OBJECT);
	CHECK_EQ_INT(json_count(&d, 0), 5);
	CHECK(json_num(&d, json_get(&d, 0, "a"), 0) == 7);   /* the last repeated key wins */
	uint32_t arr = json_first(&d, 0);
	CHECK_EQ_INT(json_count(&d, arr), 5);
	uint32_t x = json_first(&d, arr);
	CHECK(json_num(&d, x, 0) == 1);
	x = json_next(&d, x);
	CHECK(json_num(&d, x, 0) == -25);
	CHECK_EQ_INT(json_type_of(&d, json_next(&d, x)), JSON_TRUE);
	CHECK_EQ_STR(json_str(&d, json_get(&d, 0, "s")), "x\n\xc3\xa9\xf0\x9f\x98\x80??z");
	CHECK_EQ_INT(json_count(&d, json_get(&d, 0, "o")), 0);
	CHECK(json_get(&d, 0, "missing") == JSON_NONE);
	CHECK(json_str(&d, JSON_NONE) == NULL);
	CHECK(json_num(&d, 12345678, -1) == -1);
	json_free(&d);
}

static void test_json_garbage(void)
{
	static const char *const bad[] = {
		"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "[01]", "[1.]", "[1e]", "\"abc", "\"\\x\"", "\"\\u12\"",
		"[1] 2", "tru", "nul", "{,}", "[\"a\"\"b\"]", "\"a\tb\"", "-", "{\"a\":1,}", "[", "]",
	};
	struct json_doc d;
	struct err e = { 0 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = json_parse(&d, bad[i], strlen(bad[i]), &e);
		if (rc == 0) {
			fprintf(stderr, "accepted bad JSON %s\n", bad[i]);
			json_free(&d);
		}
		CHECK(rc != 0);
	}
	/* Deep nesting is refused, not a stack overflow. */
	size_t n = 100000;
	char *deep = malloc(n);
	memset(deep, '[', n);
	CHECK(json_parse(&d, deep, n, &e) != 0);
	CHECK(strstr(e.msg, "deep") != NULL);
	/* Random bytes and random truncations of a valid document: never a crash. */
	const char *ok = "{\"profiles\":[{\"type\":\"sampled\",\"samples\":[[0,1]],\"weights\":[0.01]}],"
			 "\"shared\":{\"frames\":[{\"name\":\"a\"},{\"name\":\"b\",\"file\":\"x.py\",\"line\":3}]}}";
	srand(7);
	for (int round = 0; round < 3000; round++) {
		size_t len = strlen(ok);
		memcpy(deep, ok, len);
		int flips = 1 + rand() % 4;
		for (int k = 0; k < flips; k++)
			deep[rand() % len] = (char)(rand() % 256);
		if (round % 3 == 0)
			len = (size_t)rand() % len;
		if (json_parse(&d, deep, len, &e) == 0)
			json_free(&d);
		struct interner *in = interner_new();
		struct profile p;
		profile_init(&p, in, 100);
		struct input_info info;
		input_read(&p, (unsigned char *)deep, len, 0, &info, &e);
		profile_free(&p);
		interner_free(in);
	}
	free(deep);
}

static void test_detect(void)
{
	CHECK_EQ_INT(input_detect((const unsigned char *)"\x1f\x8b\x08", 3), INPUT_PPROF);
	CHECK_EQ_INT(input_detect((const unsigned char *)"  {\"a\":1}", 9), INPUT_SPEEDSCOPE);
	CHECK_EQ_INT(input_detect((const unsigned char *)"main (a.py:1) 3\n", 16), INPUT_RAW);
	CHECK_EQ_INT(input_detect((const unsigned char *)"\x0a\x04\x08\x01\x10\x02", 6), INPUT_PPROF);
}

/* ---- round trips ----------------------------------------------------------------------------- */

struct fixture { struct interner *in; struct profile p; };

static struct frame fr(struct interner *in, enum frame_kind k, const char *name, const char *file, int line)
{
	struct frame f = { .kind = k, .name = intern(in, name), .file = intern(in, file),
			   .short_file = intern(in, file), .line = line };
	return f;
}

static void fx_init(struct fixture *fx)
{
	struct interner *in = fx->in = interner_new();
	profile_init(&fx->p, in, 250);
	struct frame main_ = fr(in, FRAME_PYTHON, "main", "/srv/app.py", 34);
	struct frame work = fr(in, FRAME_PYTHON, "work", "/srv/app.py", 15);
	struct frame odd = fr(in, FRAME_PYTHON, "f (x)", "/srv/my (dir)/b.py", 2);
	struct frame mc = fr(in, FRAME_NATIVE, "memcpy", "string.c", 9);
	mc.module = intern(in, "/lib/libc.so.6");
	mc.addr = 0x1234;
	struct frame a[2] = { work, main_ }, b[3] = { mc, work, main_ }, c[2] = { odd, main_ };
	struct sample s = { .pid = 7, .thread_id = 7, .os_tid = 7, .thread_name = intern(in, "MainThread") };
	struct sample s2 = { .pid = 7, .thread_id = 0x7f00aa, .gil = GIL_HELD };
	for (int i = 0; i < 5; i++) {
		s.frames = a, s.nframes = 2, s.time = i * 0.004;
		profile_add(&fx->p, &s, NULL, 0);
	}
	for (int i = 0; i < 3; i++) {
		s.frames = b, s.nframes = 3;
		profile_add(&fx->p, &s, NULL, 0);
		s2.frames = c, s2.nframes = 2;
		profile_add(&fx->p, &s2, NULL, 0);
	}
}

static void fx_free(struct fixture *fx)
{
	profile_free(&fx->p);
	interner_free(fx->in);
}

static char *render(enum format f, const struct profile *p, size_t *len)
{
	char *buf = NULL;
	FILE *m = open_memstream(&buf, len);
	struct err e = { 0 };
	struct output_opts o = { .lineno = true };
	CHECK_EQ_INT(output_write(f, p, &o, m, &e), 0);
	fclose(m);
	return buf;
}

/* Write fx in format f, read it back `times` times into a new profile, and return that profile
 * written as raw text. */
static char *roundtrip(enum format f, int times, int *rate)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *buf = render(f, &fx.p, &len);
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	for (int i = 0; i < times; i++) {
		struct input_info info;
		struct err e = { 0 };
		int rc = input_read(&p, (unsigned char *)buf, len, i, &info, &e);
		if (rc)
			fprintf(stderr, "read back %s: %s\n", format_name(f), e.msg);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(info.samples, 11);
		*rate = info.rate;
	}
	CHECK_EQ_INT(p.samples, 11 * (uint64_t)times);
	char *raw = render(FORMAT_RAW, &p, &len);
	profile_free(&p);
	interner_free(in);
	free(buf);
	fx_free(&fx);
	return raw;
}

static void test_raw_roundtrip(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *want = render(FORMAT_RAW, &fx.p, &len);
	int rate;
	char *got = roundtrip(FORMAT_RAW, 1, &rate);
	CHECK_EQ_STR(got, want);
	CHECK_EQ_INT(rate, 0);
	free(got);
	got = roundtrip(FORMAT_RAW, 2, &rate);
	CHECK_EQ_STR(got, "main (/srv/app.py:34);f (x) (/srv/my (dir)/b.py:2) 6\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15) 10\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15);memcpy (string.c:9) 6\n");
	free(got);
	free(want);
	fx_free(&fx);
}

static void test_speedscope_roundtrip(void)
{
	int rate;
	char *got = roundtrip(FORMAT_SPEEDSCOPE, 2, &rate);
	CHECK_EQ_INT(rate, 250);
	CHECK_EQ_STR(got, "main (/srv/app.py:34);f (x) (/srv/my (dir)/b.py:2) 6\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15) 10\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15);memcpy (string.c:9) 6\n");
	free(got);
}

static void test_pprof_roundtrip(void)
{
	int rate;
	char *got = roundtrip(FORMAT_PPROF, 2, &rate);
	CHECK_EQ_INT(rate, 250);
	CHECK_EQ_STR(got, "main (/srv/app.py:34);f (x) (/srv/my (dir)/b.py:2) 6\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15) 10\n"
			  "main (/srv/app.py:34);work (/srv/app.py:15);memcpy (string.c:9) 6\n");
	free(got);

	/* Threads, native modules and addresses survive. */
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *buf = render(FORMAT_PPROF, &fx.p, &len);
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct input_info info;
	struct err e = { 0 };
	CHECK_EQ_INT(input_read(&p, (unsigned char *)buf, len, 0, &info, &e), 0);
	CHECK_EQ_INT(p.threads.n, 2);
	bool native = false;
	for (size_t i = 0; i < p.frames.n; i++)
		if (p.frames.v[i].kind == FRAME_NATIVE && p.frames.v[i].module &&
		    !strcmp(p.frames.v[i].module, "/lib/libc.so.6") && p.frames.v[i].addr == 0x1234)
			native = true;
	CHECK(native);
	for (size_t i = 0; i < p.threads.n; i++) {
		const struct profile_thread *t = &p.threads.v[i];
		if (t->os_tid == 7)
			CHECK(t->name && !strcmp(t->name, "MainThread") && t->samples == 8 && t->pid == 7);
		else
			CHECK(t->thread_id == 0x7f00aa && t->samples == 3);
	}
	/* Garbage after a valid gzip header, and a truncated file: errors, no crash. */
	for (size_t cut = 1; cut < len; cut += 7) {
		struct input_info ii;
		input_read(&p, (unsigned char *)buf, cut, 0, &ii, &e);
	}
	profile_free(&p);
	interner_free(in);
	free(buf);
	fx_free(&fx);
}

static void test_raw_errors(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct input_info info;
	struct err e = { 0 };
	const char *t = "a;b 3\nnot a count\n";
	CHECK(input_read(&p, (const unsigned char *)t, strlen(t), 0, &info, &e) != 0);
	CHECK(strstr(e.msg, "line 2") != NULL);
	t = "a;thread (12) 2\r\n\n";
	CHECK_EQ_INT(input_read(&p, (const unsigned char *)t, strlen(t), 0, &info, &e), 0);
	CHECK_EQ_INT(info.samples, 2);
	bool pseudo = false;
	for (size_t i = 0; i < p.frames.n; i++)
		if (!strcmp(p.frames.v[i].name, "thread (12)") && p.frames.v[i].kind == FRAME_PSEUDO)
			pseudo = true;
	CHECK(pseudo);
	t = "f (x) (/srv/my (dir)/b.py:2) 1\n";
	CHECK_EQ_INT(input_read(&p, (const unsigned char *)t, strlen(t), 0, &info, &e), 0);
	bool odd = false;
	for (size_t i = 0; i < p.frames.n; i++)
		if (!strcmp(p.frames.v[i].name, "f (x)") && !strcmp(p.frames.v[i].file, "/srv/my (dir)/b.py") &&
		    p.frames.v[i].line == 2)
			odd = true;
	CHECK(odd);
	profile_free(&p);
	interner_free(in);
}

int main(void)
{
	RUN(test_json_values);
	RUN(test_json_garbage);
	RUN(test_detect);
	RUN(test_raw_roundtrip);
	RUN(test_speedscope_roundtrip);
	RUN(test_pprof_roundtrip);
	RUN(test_raw_errors);
	return unit_report("input");
}
