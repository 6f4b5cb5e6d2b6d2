/*
 * test_output.c - unit tests of the writers: a profile built by hand is written in every format
 * to a temporary file and read back; the tests check structure, escaping and counts (raw lines
 * exactly, speedscope and chrome trace JSON well-formed with the right fields, the SVG's frames,
 * and the pprof message decoded with protobuf-c). With MIXSPY_TEST_OUT=DIR the files are also
 * kept in DIR, for the real-client checks in tests/clients/.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "output/output.h"
#include "profile.pb-c.h"
#include "unit.h"

/* ---- a small JSON syntax checker (enough to prove the writers' output well-formed) ---------- */

struct json { const char *s; int depth; };

static void json_ws(struct json *j) { while (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r') j->s++; }
static int json_value(struct json *j);

static int json_string(struct json *j)
{
	if (*j->s != '"')
		return -1;
	for (j->s++; *j->s != '"'; j->s++) {
		unsigned char c = (unsigned char)*j->s;
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			j->s++;
			if (*j->s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", j->s[i]) || !j->s[i])
						return -1;
				j->s += 4;
			} else if (!*j->s || !strchr("\"\\/bfnrt", *j->s)) {
				return -1;
			}
		}
	}
	j->s++;
	return 0;
}

static int json_number(struct json *j)
{
	char *end;
	strtod(j->s, &end);
	if (end == j->s)
		return -1;
	j->s = end;
	return 0;
}

static int json_seq(struct json *j, char close, bool object)
{
	j->s++;
	json_ws(j);
	if (*j->s == close) {
		j->s++;
		return 0;
	}
	for (;;) {
		json_ws(j);
		if (object) {
			if (json_string(j) < 0)
				return -1;
			json_ws(j);
			if (*j->s++ != ':')
				return -1;
		}
		if (json_value(j) < 0)
			return -1;
		json_ws(j);
		if (*j->s == ',') {
			j->s++;
			continue;
		}
		if (*j->s++ != close)
			return -1;
		return 0;
	}
}

static int json_value(struct json *j)
{
	json_ws(j);
	switch (*j->s) {
	case '{': return json_seq(j, '}', true);
	case '[': return json_seq(j, ']', false);
	case '"': return json_string(j);
	case 't': if (strncmp(j->s, "true", 4) == 0) { j->s += 4; return 0; } return -1;
	case 'f': if (strncmp(j->s, "false", 5) == 0) { j->s += 5; return 0; } return -1;
	case 'n': if (strncmp(j->s, "null", 4) == 0) { j->s += 4; return 0; } return -1;
	default: return json_number(j);
	}
}

static bool json_valid(const char *s)
{
	struct json j = { s, 0 };
	if (json_value(&j) < 0)
		return false;
	json_ws(&j);
	return *j.s == 0;
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);
	for (const char *p = hay; (p = strstr(p, needle)); p += len)
		n++;
	return n;
}

/* ---- the profile used by every test ---------------------------------------------------------- */

struct fixture {
	struct interner *in;
	struct profile p;
};

static struct frame fx_frame(struct interner *in, enum frame_kind k, const char *name, const char *file,
			     const char *short_file, int line)
{
	struct frame f = { .kind = k, .name = intern(in, name), .file = intern(in, file),
			   .short_file = intern(in, short_file), .line = line };
	return f;
}

static void fx_add(struct fixture *fx, uint64_t tid, int os_tid, const char *tname, struct frame *leaf_first,
		   size_t n, int count, double *t)
{
	struct sample s = { .pid = 100, .thread_id = tid, .os_tid = os_tid,
			    .thread_name = tname ? intern(fx->in, tname) : NULL, .active = true,
			    .gil = GIL_HELD, .frames = leaf_first, .nframes = n };
	for (int i = 0; i < count; i++) {
		s.time = *t;
		*t += 0.01;
		profile_add(&fx->p, &s, NULL, 0);
	}
}

/*
 * Thread 0x7f00aa (tid 4001, "MainThread"):
 *   main;work x3, main;work;memcpy x2 (native), main;we;ird\nname x1, main;work x4 (new run)
 * Thread 0x7f00bb (no tid, no name):
 *   main;work x5 (same labels as thread 1: merged in raw), main;<lambda> & "q" x1,
 *   main;cy_loop x2 (Cython), main;bad\xff x1
 * Total 19 samples at rate 100.
 */
static void fx_init(struct fixture *fx)
{
	struct interner *in = fx->in = interner_new();
	profile_init(&fx->p, in, 100);
	fx->p.title = intern(in, "mixspy record -o out -- python app.py <x> & \"y\"");
	fx->p.start_wall = 1700000000.5;
	fx->p.duration = 0.19;
	struct frame main_ = fx_frame(in, FRAME_PYTHON, "main", "/srv/app.py", "app.py", 10);
	struct frame work = fx_frame(in, FRAME_PYTHON, "work", "/usr/lib/python3/lib/x.py", "lib/x.py", 42);
	struct frame memcpy_ = fx_frame(in, FRAME_NATIVE, "memcpy", "/lib/libc.so.6", "libc.so.6", 0);
	memcpy_.module = intern(in, "/lib/libc.so.6");
	memcpy_.addr = 0x7f0012345678ULL;
	struct frame weird = fx_frame(in, FRAME_PYTHON, "we;ird\nname", "", "", 0);
	struct frame lam = fx_frame(in, FRAME_PYTHON, "<lambda> & \"q\"", "/srv/app.py", "app.py", 7);
	struct frame cy = fx_frame(in, FRAME_CYTHON, "cy_loop", "/srv/fast.pyx", "fast.pyx", 12);
	struct frame bad = fx_frame(in, FRAME_PYTHON, "bad\xff", "/srv/app.py", "app.py", 3);
	double t1 = 0, t2 = 0;
	struct frame s1[2] = { work, main_ }, s2[3] = { memcpy_, work, main_ }, s3[2] = { weird, main_ };
	struct frame s4[2] = { lam, main_ }, s5[2] = { cy, main_ }, s6[2] = { bad, main_ };
	fx_add(fx, 0x7f00aa, 4001, "MainThread", s1, 2, 3, &t1);
	fx_add(fx, 0x7f00aa, 4001, "MainThread", s2, 3, 2, &t1);
	fx_add(fx, 0x7f00aa, 4001, "MainThread", s3, 2, 1, &t1);
	fx_add(fx, 0x7f00aa, 4001, "MainThread", s1, 2, 4, &t1);
	fx_add(fx, 0x7f00bb, 0, NULL, s1, 2, 5, &t2);
	fx_add(fx, 0x7f00bb, 0, NULL, s4, 2, 1, &t2);
	fx_add(fx, 0x7f00bb, 0, NULL, s5, 2, 2, &t2);
	fx_add(fx, 0x7f00bb, 0, NULL, s6, 2, 1, &t2);
}

static void fx_free(struct fixture *fx)
{
	profile_free(&fx->p);
	interner_free(fx->in);
}

/* Write one format to a temporary file and return its bytes (NUL-terminated); with
 * MIXSPY_TEST_OUT set, also keep a copy named DIR/KEEP.FORMAT.EXT when keep is not NULL. */
static char *render(enum format f, const struct profile *p, const struct output_opts *o, size_t *len, const char *keep)
{
	FILE *tmp = tmpfile();
	struct err e = { 0 };
	int rc = output_write(f, p, o, tmp, &e);
	CHECK_EQ_INT(rc, 0);
	long n = ftell(tmp);
	rewind(tmp);
	char *buf = calloc(1, (size_t)n + 1);
	CHECK(fread(buf, 1, (size_t)n, tmp) == (size_t)n);
	fclose(tmp);
	*len = (size_t)n;
	const char *dir = getenv("MIXSPY_TEST_OUT");
	if (dir && keep) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s.%s.%s", dir, keep, format_name(f), format_extension(f));
		FILE *keep = fopen(path, "wb");
		if (keep) {
			fwrite(buf, 1, (size_t)n, keep);
			fclose(keep);
		}
	}
	return buf;
}

static const struct output_opts defaults = { .full_filenames = false, .lineno = true };

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_formats_table(void)
{
	CHECK_EQ_INT(format_parse("flamegraph"), FORMAT_FLAMEGRAPH);
	CHECK_EQ_INT(format_parse("SpeedScope"), FORMAT_SPEEDSCOPE);
	CHECK_EQ_INT(format_parse("raw"), FORMAT_RAW);
	CHECK_EQ_INT(format_parse("chrometrace"), FORMAT_CHROMETRACE);
	CHECK_EQ_INT(format_parse("pprof"), FORMAT_PPROF);
	CHECK_EQ_INT(format_parse("nope"), -1);
	CHECK_EQ_INT(format_parse(NULL), -1);
	CHECK_EQ_STR(format_extension(FORMAT_FLAMEGRAPH), "svg");
	CHECK_EQ_STR(format_extension(FORMAT_RAW), "txt");
	CHECK_EQ_STR(format_extension(FORMAT_SPEEDSCOPE), "json");
	CHECK_EQ_STR(format_extension(FORMAT_PPROF), "pb.gz");
	CHECK_EQ_STR(format_name(FORMAT_CHROMETRACE), "chrometrace");
	CHECK_EQ_STR(format_wrote_message(FORMAT_FLAMEGRAPH), "Wrote flamegraph data to '%s'.");
	CHECK_EQ_STR(format_wrote_message(FORMAT_SPEEDSCOPE), "Wrote speedscope file to '%s'.");
	CHECK_EQ_STR(format_wrote_message(FORMAT_RAW), "Wrote raw flamegraph data to '%s'.");
	CHECK_EQ_STR(format_wrote_message(FORMAT_CHROMETRACE), "Wrote chrome trace to '%s'.");
	CHECK_EQ_STR(format_hint(FORMAT_SPEEDSCOPE), "Visit https://www.speedscope.app/ to view");
	CHECK(format_hint(FORMAT_FLAMEGRAPH) == NULL);
	struct err e = { 0 };
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	FILE *tmp = tmpfile();
	CHECK_EQ_INT(output_write(FORMAT_COUNT, &p, &defaults, tmp, &e), E_ARG);
	fclose(tmp);
	profile_free(&p);
	interner_free(in);
}

static void test_raw(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *out = render(FORMAT_RAW, &fx.p, &defaults, &len, "fixture");
	/* sorted, merged across threads, sanitised; the invalid byte is passed through as is */
	const char *want =
		"main (app.py:10);<lambda> & \"q\" (app.py:7) 1\n"
		"main (app.py:10);bad\xff (app.py:3) 1\n"
		"main (app.py:10);cy_loop (fast.pyx:12) 2\n"
		"main (app.py:10);we:ird name 1\n"
		"main (app.py:10);work (lib/x.py:42) 12\n"
		"main (app.py:10);work (lib/x.py:42);memcpy (libc.so.6) 2\n";
	CHECK_EQ_STR(out, want);
	free(out);
	/* --nolineno merges frames that differ only by line; --full-filenames uses the full path */
	struct output_opts o = { .full_filenames = true, .lineno = false };
	out = render(FORMAT_RAW, &fx.p, &o, &len, NULL);
	CHECK(strstr(out, "main (/srv/app.py);work (/usr/lib/python3/lib/x.py) 12\n") != NULL);
	CHECK(strstr(out, ":10") == NULL);
	free(out);
	fx_free(&fx);
}

static void test_raw_empty(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	size_t len;
	char *out = render(FORMAT_RAW, &p, &defaults, &len, "empty");
	CHECK_EQ_INT(len, 0);
	free(out);
	out = render(FORMAT_SPEEDSCOPE, &p, &defaults, &len, "empty");
	CHECK(json_valid(out));
	free(out);
	out = render(FORMAT_CHROMETRACE, &p, &defaults, &len, "empty");
	CHECK(json_valid(out));
	free(out);
	out = render(FORMAT_FLAMEGRAPH, &p, &defaults, &len, "empty");
	CHECK(strstr(out, "No samples") != NULL);
	free(out);
	profile_free(&p);
	interner_free(in);
}

static void test_speedscope(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *out = render(FORMAT_SPEEDSCOPE, &fx.p, &defaults, &len, "fixture");
	CHECK(json_valid(out));
	CHECK(strncmp(out, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\"", 63) == 0);
	CHECK(strstr(out, "\"exporter\":\"mixspy@0.1.0\"") != NULL);
	CHECK(strstr(out, "\"name\":\"mixspy record -o out -- python app.py <x> & \\\"y\\\"\"") != NULL);
	CHECK_EQ_INT(count_of(out, "\"type\":\"sampled\""), 2);
	CHECK_EQ_INT(count_of(out, "\"unit\":\"seconds\""), 2);
	/* py-spy's names and order: OS tid when known, else 0x + uppercase hex; sorted by name */
	const char *a = strstr(out, "\"name\":\"Thread 0x7F00BB \\\"\\\"\"");
	const char *b = strstr(out, "\"name\":\"Thread 4001 \\\"MainThread\\\"\"");
	CHECK(a && b && a < b);
	/* endValue = samples / rate; thread 1 has 4 runs (3, 2, 1, 4 samples) */
	CHECK(strstr(out, "\"endValue\":0.1,") != NULL);
	CHECK(strstr(out, "\"endValue\":0.09,") != NULL);
	CHECK(strstr(out, "\"weights\":[0.03,0.02,0.01,0.04]") != NULL);
	/* shared frames: full file names, escaped names, no file/line for unknowns, invalid UTF-8 replaced */
	CHECK(strstr(out, "{\"name\":\"work\",\"file\":\"/usr/lib/python3/lib/x.py\",\"line\":42}") != NULL);
	CHECK(strstr(out, "{\"name\":\"we;ird\\nname\"}") != NULL);
	CHECK(strstr(out, "{\"name\":\"<lambda> & \\\"q\\\"\",\"file\":\"/srv/app.py\",\"line\":7}") != NULL);
	CHECK(strstr(out, "\"bad?\"") != NULL);
	CHECK(strchr(out, '\xff') == NULL);
	CHECK_EQ_INT(count_of(out, "{\"name\":"), 7);   /* 7 distinct frames */
	CHECK(out[len - 1] == '\n');
	free(out);
	fx_free(&fx);
}

static void test_speedscope_processes(void)
{
	struct fixture fx;
	fx_init(&fx);
	struct frame f = { .kind = FRAME_PYTHON, .name = intern(fx.in, "child"), .file = intern(fx.in, "c.py"),
			   .short_file = intern(fx.in, "c.py"), .line = 1 };
	struct sample s = { .pid = 200, .thread_id = 0x10, .os_tid = 201, .frames = &f, .nframes = 1 };
	profile_add(&fx.p, &s, NULL, 0);
	size_t len;
	char *out = render(FORMAT_SPEEDSCOPE, &fx.p, &defaults, &len, "processes");
	CHECK(json_valid(out));
	CHECK(strstr(out, "\"name\":\"Process 100 Thread 4001 \\\"MainThread\\\"\"") != NULL);
	CHECK(strstr(out, "\"name\":\"Process 200 Thread 201 \\\"\\\"\"") != NULL);
	free(out);
	fx_free(&fx);
}

static void test_chrometrace(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *out = render(FORMAT_CHROMETRACE, &fx.p, &defaults, &len, "fixture");
	CHECK(json_valid(out));
	CHECK(out[0] == '[');
	/* thread 1: +main+work | +memcpy | -memcpy -work +weird | -weird +work | -work -main  => 5 B
	 * thread 2: +main+work | -work +lambda | -lambda +cy | -cy +bad | -bad -main          => 5 B */
	CHECK_EQ_INT(count_of(out, "\"ph\":\"B\""), 10);
	CHECK_EQ_INT(count_of(out, "\"ph\":\"E\""), 10);
	CHECK_EQ_INT(count_of(out, "\"ph\":\"M\""), 2);
	CHECK(strstr(out, "\"args\":{\"name\":\"MainThread\"},\"cat\":\"__metadata\",\"name\":\"thread_name\","
		      "\"ph\":\"M\",\"pid\":100,\"tid\":8323242,\"ts\":0}") != NULL);
	CHECK(strstr(out, "{\"args\":{\"filename\":\"/srv/app.py\",\"line\":10},\"cat\":\"mixspy\",\"name\":\"main\","
		      "\"ph\":\"B\",\"pid\":100,\"tid\":8323242,\"ts\":0}") != NULL);
	/* memcpy starts at the 4th sample of thread 1 (30 ms), main closes one period after the last */
	CHECK(strstr(out, "\"name\":\"memcpy\",\"ph\":\"B\",\"pid\":100,\"tid\":8323242,\"ts\":30000}") != NULL);
	CHECK(strstr(out, "\"name\":\"main\",\"ph\":\"E\",\"pid\":100,\"tid\":8323242,\"ts\":100000}") != NULL);
	CHECK(strstr(out, "\"name\":\"we;ird\\nname\"") != NULL);
	free(out);
	/* without line numbers, frames differing only by line are the same entry */
	struct output_opts o = { .lineno = false };
	out = render(FORMAT_CHROMETRACE, &fx.p, &o, &len, NULL);
	CHECK(json_valid(out));
	CHECK(strstr(out, "\"line\"") == NULL);
	free(out);
	fx_free(&fx);
}

static void test_flamegraph(void)
{
	struct fixture fx;
	fx_init(&fx);
	/* scale the fixture by 10 (190 samples), add 1000 samples of a pseudo frame and one sample
	 * of a tiny stack: 1 of 1191 is under 0.1%, 10 of 1191 are not */
	size_t nstacks = fx.p.stacks.n;
	for (size_t i = 0; i < nstacks; i++)
		profile_add_stack_count(&fx.p, (uint32_t)i, fx.p.stacks.v[i].count * 9, 1.0);
	struct frame big = { .kind = FRAME_PSEUDO, .name = intern(fx.in, "thread (9)"), .file = intern(fx.in, ""),
			     .short_file = intern(fx.in, "") };
	struct frame tiny = { .kind = FRAME_PYTHON, .name = intern(fx.in, "tiny"), .file = intern(fx.in, "t.py"),
			      .short_file = intern(fx.in, "t.py"), .line = 1 };
	struct sample s = { .pid = 100, .thread_id = 9, .frames = &big, .nframes = 1 };
	for (int i = 0; i < 1000; i++)
		profile_add(&fx.p, &s, NULL, 0);
	s.frames = &tiny;
	profile_add(&fx.p, &s, NULL, 0);
	size_t len;
	char *out = render(FORMAT_FLAMEGRAPH, &fx.p, &defaults, &len, "fixture");
	CHECK(strncmp(out, "<?xml", 5) == 0);
	/* all, main, work, memcpy, weird, lambda, cy_loop, bad, thread (9) = 9; tiny dropped */
	CHECK_EQ_INT(count_of(out, "<g class=\"fr\""), 9);
	CHECK(strstr(out, "tiny") == NULL);
	CHECK(strstr(out, "<title>all (1,191 samples, 100.00%)</title>") != NULL);
	CHECK(strstr(out, "<title>work (lib/x.py:42) (140 samples, 11.75%)</title>") != NULL);
	CHECK(strstr(out, "<title>&lt;lambda&gt; &amp; &quot;q&quot; (app.py:7) (10 samples, 0.84%)</title>") != NULL);
	CHECK(strstr(out, "<title>we:ird name (10 samples") != NULL);
	CHECK(strstr(out, "<title>bad? (app.py:3)") != NULL);
	CHECK(strchr(out, '\xff') == NULL);
	CHECK(strstr(out, "<text id=\"title\" x=\"600\" y=\"24\" text-anchor=\"middle\">"
		      "mixspy record -o out -- python app.py &lt;x&gt; &amp; &quot;y&quot;</text>") != NULL);
	/* icicle: the root at the top, depth grows downwards */
	CHECK(strstr(out, "data-x=\"0\" data-w=\"1191\" data-d=\"0\"") != NULL);
	CHECK(strstr(out, "<rect x=\"0.0000%\" y=\"0\" width=\"100.0000%\"") != NULL);
	/* kinds: memcpy native (1), cy_loop Cython (2), thread pseudo (3) */
	CHECK(strstr(out, "data-d=\"3\" data-k=\"1\"><title>memcpy") != NULL);
	CHECK(strstr(out, "data-k=\"2\"><title>cy_loop") != NULL);
	CHECK(strstr(out, "data-k=\"3\"><title>thread (9)") != NULL);
	CHECK(strstr(out, ">Search</text>") && strstr(out, ">Reset Zoom</text>") && strstr(out, "id=\"matched\""));
	CHECK(strstr(out, ">Python</text>") && strstr(out, ">native</text>") && strstr(out, ">Cython</text>"));
	CHECK(strstr(out, "]]>") == strstr(out, "]]></script>"));
	free(out);
	fx_free(&fx);
}

/* Inflate a gzip buffer; returns malloc'd bytes. */
static uint8_t *gunzip(const char *in, size_t len, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	CHECK_EQ_INT(inflateInit2(&z, 15 + 32), Z_OK);
	size_t cap = 1 << 16, n = 0;
	uint8_t *out = malloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	int rc;
	do {
		if (n == cap)
			out = realloc(out, cap *= 2);
		z.next_out = out + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
	} while (rc == Z_OK);
	CHECK_EQ_INT(rc, Z_STREAM_END);
	inflateEnd(&z);
	*outlen = n;
	return out;
}

static void test_pprof(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len, plen;
	char *out = render(FORMAT_PPROF, &fx.p, &defaults, &len, "fixture");
	CHECK((unsigned char)out[0] == 0x1f && (unsigned char)out[1] == 0x8b);
	uint8_t *raw = gunzip(out, len, &plen);
	Perftools__Profiles__Profile *pr = perftools__profiles__profile__unpack(NULL, plen, raw);
	CHECK(pr != NULL);
	if (!pr)
		goto done;
	char **st = pr->string_table;
	CHECK(pr->n_string_table > 0 && st[0][0] == 0);
	CHECK_EQ_INT(pr->n_sample_type, 2);
	CHECK_EQ_STR(st[pr->sample_type[0]->type], "samples");
	CHECK_EQ_STR(st[pr->sample_type[0]->unit], "count");
	CHECK_EQ_STR(st[pr->sample_type[1]->type], "cpu");
	CHECK_EQ_STR(st[pr->sample_type[1]->unit], "nanoseconds");
	CHECK_EQ_STR(st[pr->period_type->type], "cpu");
	CHECK_EQ_INT(pr->period, 10000000);
	CHECK_EQ_INT(pr->time_nanos, 1700000000500000000LL);
	CHECK_EQ_INT(pr->duration_nanos, 190000000);
	/* one pprof sample per profile stack; totals */
	CHECK_EQ_INT(pr->n_sample, fx.p.stacks.n);
	int64_t count = 0, ns = 0;
	int missing = 0;
	for (size_t i = 0; i < pr->n_sample; i++) {
		CHECK_EQ_INT(pr->sample[i]->n_value, 2);
		count += pr->sample[i]->value[0];
		ns += pr->sample[i]->value[1];
		for (size_t k = 0; k < pr->sample[i]->n_location_id; k++)
			missing += pr->sample[i]->location_id[k] == 0 || pr->sample[i]->location_id[k] > pr->n_location;
	}
	CHECK_EQ_INT(count, 19);
	CHECK_EQ_INT(ns, 19 * 10000000LL);
	CHECK_EQ_INT(missing, 0);
	/* functions per (name, file): main work memcpy weird lambda cy_loop bad */
	CHECK_EQ_INT(pr->n_function, 7);
	CHECK_EQ_INT(pr->n_location, 7);
	CHECK_EQ_INT(pr->n_mapping, 1);
	CHECK_EQ_STR(st[pr->mapping[0]->filename], "/lib/libc.so.6");
	int native = 0;
	for (size_t i = 0; i < pr->n_location; i++) {
		Perftools__Profiles__Location *l = pr->location[i];
		CHECK_EQ_INT(l->id, i + 1);
		CHECK_EQ_INT(l->n_line, 1);
		Perftools__Profiles__Function *fn = pr->function[l->line[0]->function_id - 1];
		if (l->mapping_id) {
			native++;
			CHECK_EQ_INT(l->address, 0x7f0012345678ULL);
			CHECK_EQ_STR(st[fn->name], "memcpy");
		}
		if (strcmp(st[fn->name], "work") == 0) {
			CHECK_EQ_INT(l->line[0]->line, 42);
			CHECK_EQ_STR(st[fn->filename], "/usr/lib/python3/lib/x.py");
		}
	}
	CHECK_EQ_INT(native, 1);
	/* leaf first: the first location of a sample ending in memcpy is memcpy's */
	int leaf_native = 0, labelled = 0;
	for (size_t i = 0; i < pr->n_sample; i++) {
		Perftools__Profiles__Sample *s = pr->sample[i];
		if (s->n_location_id == 3 && pr->location[s->location_id[0] - 1]->mapping_id)
			leaf_native++;
		for (size_t k = 0; k < s->n_label; k++)
			if (strcmp(st[s->label[k]->key], "thread_id") == 0 &&
			    (strcmp(st[s->label[k]->str], "4001") == 0 || strcmp(st[s->label[k]->str], "0x7F00BB") == 0))
				labelled++;
	}
	CHECK_EQ_INT(leaf_native, 1);
	CHECK_EQ_INT(labelled, (int)pr->n_sample);
	/* all strings valid (the invalid byte was replaced) */
	for (size_t i = 0; i < pr->n_string_table; i++)
		CHECK(strchr(st[i], '\xff') == NULL);
	perftools__profiles__profile__free_unpacked(pr, NULL);
done:
	free(raw);
	free(out);
	fx_free(&fx);
}

int main(void)
{
	RUN(test_formats_table);
	RUN(test_raw);
	RUN(test_raw_empty);
	RUN(test_speedscope);
	RUN(test_speedscope_processes);
	RUN(test_chrometrace);
	RUN(test_flamegraph);
	RUN(test_pprof);
	return unit_report("output");
}
