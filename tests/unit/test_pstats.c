/*
 * test_pstats.c - unit tests of the per-function writers: pstats (the marshal bytes decoded by a
 * small reader here, checked against hand-computed own/cumulative samples, caller edges,
 * recursion counted once, native and pseudo keys, big counts as marshal longs) and callgrind
 * (header, name compression defined before use, self costs summing to the total, call lines with
 * inclusive cost).
 */
#include <stdlib.h>
#include <string.h>

#include "output/output.h"
#include "unit.h"

/* ---- a minimal marshal reader for the subset pstats.c writes ------------------------------ */

enum mv_type { MV_DICT, MV_TUPLE, MV_STR, MV_INT, MV_FLOAT };

struct mv {
	enum mv_type t;
	size_t n;              /* dict: pairs; tuple: items */
	struct mv *items;      /* dict: key, value, key, value... */
	char *s;
	long long i;
	double f;
};

struct mr { const unsigned char *p, *end; int bad; };

static uint32_t mr_u32(struct mr *r)
{
	if (r->end - r->p < 4) { r->bad = 1; return 0; }
	uint32_t v = r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
	r->p += 4;
	return v;
}

/* Returns 1 on the dict end marker '0', 0 on a value, -1 on error. */
static int mr_value(struct mr *r, struct mv *v)
{
	if (r->p >= r->end) { r->bad = 1; return -1; }
	unsigned char c = *r->p++;
	memset(v, 0, sizeof(*v));
	switch (c) {
	case '0':
		return 1;
	case 'i':
		v->t = MV_INT;
		v->i = (int32_t)mr_u32(r);
		return r->bad ? -1 : 0;
	case 'l': {
		v->t = MV_INT;
		uint32_t n = mr_u32(r);
		if (n > 8 || r->end - r->p < 2 * (long)n) { r->bad = 1; return -1; }
		for (uint32_t k = n; k-- > 0;)
			v->i = (v->i << 15) | (r->p[2 * k] | r->p[2 * k + 1] << 8);
		r->p += 2 * n;
		return 0;
	}
	case 'g': {
		if (r->end - r->p < 8) { r->bad = 1; return -1; }
		uint64_t bits = 0;
		for (int k = 7; k >= 0; k--)
			bits = (bits << 8) | r->p[k];
		r->p += 8;
		v->t = MV_FLOAT;
		memcpy(&v->f, &bits, 8);
		return 0;
	}
	case 'u': {
		uint32_t n = mr_u32(r);
		if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = 1; return -1; }
		v->t = MV_STR;
		v->s = strndup((const char *)r->p, n);
		r->p += n;
		return 0;
	}
	case '(': {
		uint32_t n = mr_u32(r);
		if (r->bad || n > 16) { r->bad = 1; return -1; }
		v->t = MV_TUPLE;
		v->n = n;
		v->items = calloc(n ? n : 1, sizeof(*v->items));
		for (uint32_t k = 0; k < n; k++)
			if (mr_value(r, &v->items[k]) != 0) { r->bad = 1; return -1; }
		return 0;
	}
	case '{': {
		v->t = MV_DICT;
		size_t cap = 0;
		for (;;) {
			struct mv key;
			int rc = mr_value(r, &key);
			if (rc == 1)
				return 0;
			if (rc < 0)
				return -1;
			if (v->n == cap) {
				cap = cap ? cap * 2 : 8;
				v->items = realloc(v->items, 2 * cap * sizeof(*v->items));
			}
			v->items[2 * v->n] = key;
			if (mr_value(&*r, &v->items[2 * v->n + 1]) != 0) { r->bad = 1; return -1; }
			v->n++;
		}
	}
	default:
		r->bad = 1;
		return -1;
	}
}

static void mv_free(struct mv *v)
{
	free(v->s);
	size_t n = v->t == MV_DICT ? 2 * v->n : v->t == MV_TUPLE ? v->n : 0;
	for (size_t k = 0; k < n; k++)
		mv_free(&v->items[k]);
	free(v->items);
}

/* The value under the key tuple (file, line, name) of a dict, or NULL. */
static struct mv *mv_lookup(struct mv *dict, const char *file, long long line, const char *name)
{
	for (size_t k = 0; k < dict->n; k++) {
		struct mv *key = &dict->items[2 * k];
		if (key->t == MV_TUPLE && key->n == 3 && !strcmp(key->items[0].s, file) && key->items[1].i == line &&
		    !strcmp(key->items[2].s, name))
			return &dict->items[2 * k + 1];
	}
	return NULL;
}

/* ---- the fixture ----------------------------------------------------------------------------- */

struct fixture { struct interner *in; struct profile p; };

static struct frame fr(struct interner *in, enum frame_kind k, const char *name, const char *file, int line)
{
	struct frame f = { .kind = k, .name = intern(in, name), .file = intern(in, file),
			   .short_file = intern(in, file), .line = line };
	return f;
}

static void add(struct fixture *fx, struct frame *leaf_first, size_t n, int count)
{
	struct sample s = { .pid = 7, .thread_id = 1, .os_tid = 7, .gil = GIL_HELD, .frames = leaf_first, .nframes = n };
	for (int i = 0; i < count; i++)
		profile_add(&fx->p, &s, NULL, 0);
}

/*
 * main;heavy;work(l15) x2, main;heavy;work(l16) x1, main;light;work(l16) x1,
 * main;rec;rec;rec x2 (recursion), main;work;memcpy x2 (native, no source file),
 * thread pseudo root: thread;main x1.  9 samples at 100 Hz.
 */
static void fx_init(struct fixture *fx)
{
	struct interner *in = fx->in = interner_new();
	profile_init(&fx->p, in, 100);
	fx->p.title = intern(in, "mixspy record -f pstats\n-- python app.py");
	struct frame main_ = fr(in, FRAME_PYTHON, "main", "/srv/app.py", 34);
	struct frame heavy = fr(in, FRAME_PYTHON, "heavy", "/srv/app.py", 21);
	struct frame light = fr(in, FRAME_PYTHON, "light", "/srv/app.py", 25);
	struct frame w15 = fr(in, FRAME_PYTHON, "work", "/srv/app.py", 15);
	struct frame w16 = fr(in, FRAME_PYTHON, "work", "/srv/app.py", 16);
	struct frame rec = fr(in, FRAME_PYTHON, "rec", "/srv/app.py", 50);
	struct frame mc = fr(in, FRAME_NATIVE, "memcpy", "", 0);
	mc.module = intern(in, "/lib/libc.so.6");
	mc.addr = 0x1234;
	struct frame th = fr(in, FRAME_PSEUDO, "thread (7)", "", 0);
	struct frame a[3] = { w15, heavy, main_ }, b[3] = { w16, heavy, main_ }, c[3] = { w16, light, main_ };
	struct frame d[4] = { rec, rec, rec, main_ }, e[3] = { mc, w15, main_ }, f[2] = { main_, th };
	add(fx, a, 3, 2);
	add(fx, b, 3, 1);
	add(fx, c, 3, 1);
	add(fx, d, 4, 2);
	add(fx, e, 3, 2);
	add(fx, f, 2, 1);
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

static bool near(double a, double b) { return a - b < 1e-9 && b - a < 1e-9; }

static void test_pstats_values(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *buf = render(FORMAT_PSTATS, &fx.p, &len);
	struct mr r = { (unsigned char *)buf, (unsigned char *)buf + len, 0 };
	struct mv d;
	CHECK_EQ_INT(mr_value(&r, &d), 0);
	CHECK(!r.bad && r.p == r.end);
	CHECK(d.t == MV_DICT);
	CHECK_EQ_INT(d.n, 7);   /* main heavy light work rec memcpy thread */

	/* work: keyed by its smallest line; own 2+1+1 (under memcpy it is not the leaf). */
	struct mv *w = mv_lookup(&d, "/srv/app.py", 15, "work");
	CHECK(w && w->t == MV_TUPLE && w->n == 5);
	if (w) {
		CHECK_EQ_INT(w->items[0].i, 6);   /* cc: samples with work on the stack */
		CHECK_EQ_INT(w->items[1].i, 6);
		CHECK(near(w->items[2].f, 0.04));
		CHECK(near(w->items[3].f, 0.06));
		struct mv *callers = &w->items[4];
		CHECK_EQ_INT(callers->n, 3);    /* heavy, light, main */
		struct mv *from_heavy = mv_lookup(callers, "/srv/app.py", 21, "heavy");
		CHECK(from_heavy && from_heavy->n == 4);
		if (from_heavy) {
			CHECK_EQ_INT(from_heavy->items[0].i, 3);
			CHECK(near(from_heavy->items[2].f, 0.03));
			CHECK(near(from_heavy->items[3].f, 0.03));
		}
		struct mv *from_main = mv_lookup(callers, "/srv/app.py", 34, "main");
		CHECK(from_main && near(from_main->items[2].f, 0) && near(from_main->items[3].f, 0.02));
	}
	/* main: on every stack but its own time is the one sample under the thread frame. */
	struct mv *m = mv_lookup(&d, "/srv/app.py", 34, "main");
	CHECK(m && m->items[1].i == 9 && near(m->items[2].f, 0.01) && near(m->items[3].f, 0.09));
	/* Recursion: cumulative counted once per sample; the self edge is there once per sample too. */
	struct mv *rc = mv_lookup(&d, "/srv/app.py", 50, "rec");
	CHECK(rc && rc->items[1].i == 2 && near(rc->items[2].f, 0.02) && near(rc->items[3].f, 0.02));
	if (rc) {
		struct mv *self = mv_lookup(&rc->items[4], "/srv/app.py", 50, "rec");
		CHECK(self && self->items[0].i == 2 && near(self->items[2].f, 0.02));
	}
	/* Native without a source file: its object is the file. */
	struct mv *mc = mv_lookup(&d, "/lib/libc.so.6", 0, "memcpy");
	CHECK(mc && near(mc->items[2].f, 0.02));
	/* Pseudo frame: cProfile's built-in key. */
	struct mv *th = mv_lookup(&d, "~", 0, "thread (7)");
	CHECK(th && th->items[1].i == 1 && near(th->items[3].f, 0.01));
	if (th)
		CHECK_EQ_INT(th->items[4].n, 0);

	/* Own times add up to the total. */
	double tt = 0;
	for (size_t k = 0; k < d.n; k++)
		tt += d.items[2 * k + 1].items[2].f;
	CHECK(near(tt, 0.09));
	mv_free(&d);
	free(buf);
	fx_free(&fx);
}

static void test_pstats_big_counts(void)
{
	struct fixture fx;
	fx_init(&fx);
	/* 3e9 more samples of the first stack: the counts need marshal longs. */
	profile_add_stack_count(&fx.p, 0, 3000000000ULL, 1.0);
	size_t len;
	char *buf = render(FORMAT_PSTATS, &fx.p, &len);
	struct mr r = { (unsigned char *)buf, (unsigned char *)buf + len, 0 };
	struct mv d;
	CHECK_EQ_INT(mr_value(&r, &d), 0);
	struct mv *m = mv_lookup(&d, "/srv/app.py", 34, "main");
	CHECK(m && m->items[0].i == 3000000009LL && m->items[1].i == 3000000009LL);
	mv_free(&d);
	free(buf);
	fx_free(&fx);
}

static void test_pstats_empty(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	size_t len;
	char *buf = render(FORMAT_PSTATS, &p, &len);
	CHECK_EQ_INT(len, 2);
	CHECK(buf && buf[0] == '{' && buf[1] == '0');
	free(buf);
	profile_free(&p);
	interner_free(in);
}

/* ---- callgrind ------------------------------------------------------------------------------- */

static void test_callgrind(void)
{
	struct fixture fx;
	fx_init(&fx);
	size_t len;
	char *buf = render(FORMAT_CALLGRIND, &fx.p, &len);
	CHECK(buf && !strncmp(buf, "# callgrind format\nversion: 1\n", 30));
	CHECK(strstr(buf, "\npositions: line\n"));
	CHECK(strstr(buf, "\nevents: Samples\nsummary: 9\n"));
	CHECK(strstr(buf, "\ntotals: 9\n"));
	CHECK(strstr(buf, "cmd: mixspy record -f pstats -- python app.py\n"));   /* newline flattened */
	CHECK(strstr(buf, "ob=(2) /lib/libc.so.6\n") || strstr(buf, "ob=(1) /lib/libc.so.6\n") ||
	      strstr(buf, "ob=(3) /lib/libc.so.6\n") || strstr(buf, "cob=(1) /lib/libc.so.6\n") ||
	      strstr(buf, "cob=(2) /lib/libc.so.6\n") || strstr(buf, "cob=(3) /lib/libc.so.6\n"));

	/* Walk the body: every compressed name is defined before it is used; self costs add up;
	 * work's self cost is 4 on lines 15 (2) and 16 (2); heavy -> work calls 3 samples. */
	char defined[3][64] = { { 0 } };
	unsigned long long self = 0, work15 = 0, work16 = 0;
	bool in_work = false, pending_call = false, heavy_work = false;
	const char *cur_fn = "";
	char fn_names[64][64] = { { 0 } };
	char pending_callee[64] = "";
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		static const char *const specs[][2] = { { "ob=", "0" }, { "cob=", "0" }, { "fl=", "1" }, { "cfi=", "1" },
							 { "fn=", "2" }, { "cfn=", "2" } };
		bool spec = false;
		for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
			size_t n = strlen(specs[k][0]);
			if (strncmp(line, specs[k][0], n))
				continue;
			spec = true;
			int space = specs[k][1][0] - '0';
			unsigned id = 0;
			char name[64] = "";
			int got = sscanf(line + n, "(%u) %63[^\n]", &id, name);
			CHECK(got >= 1 && id > 0 && id < 64);
			if (got == 2) {
				CHECK(!defined[space][id]);   /* defined once */
				defined[space][id] = 1;
				if (space == 2)
					snprintf(fn_names[id], sizeof fn_names[id], "%s", name);
			} else {
				CHECK(defined[space][id]);    /* used after its definition */
			}
			if (space == 2 && id < 64) {
				if (!strncmp(line, "fn=", 3)) {
					cur_fn = fn_names[id];
					in_work = !strcmp(cur_fn, "work");
				} else {
					snprintf(pending_callee, sizeof pending_callee, "%s", fn_names[id]);
				}
			}
		}
		if (spec)
			continue;
		if (!strncmp(line, "calls=", 6)) {
			pending_call = true;
			if (!strcmp(cur_fn, "heavy") && !strcmp(pending_callee, "work"))
			{
				CHECK(!strcmp(line, "calls=3 15"));
				heavy_work = true;
			}
			continue;
		}
		int ln;
		unsigned long long cost;
		if (sscanf(line, "%d %llu", &ln, &cost) == 2 && line[0] >= '0' && line[0] <= '9') {
			if (pending_call) {
				pending_call = false;
				if (heavy_work && !strcmp(cur_fn, "heavy"))
					CHECK(ln == 21 && cost == 3);
				continue;
			}
			self += cost;
			if (in_work && ln == 15) work15 += cost;
			if (in_work && ln == 16) work16 += cost;
		}
	}
	CHECK_EQ_INT(self, 9);
	CHECK_EQ_INT(work15, 2);
	CHECK_EQ_INT(work16, 2);
	CHECK(heavy_work);
	free(buf);
	fx_free(&fx);
}

int main(void)
{
	RUN(test_pstats_values);
	RUN(test_pstats_big_counts);
	RUN(test_pstats_empty);
	RUN(test_callgrind);
	return unit_report("pstats");
}
