/*
 * test_profile.c - unit tests of the profile: frame and stack interning, counts per stack,
 * thread and GIL state, run-length timelines, merged counts, and that memory follows distinct
 * stacks rather than samples.
 */
#include <stdlib.h>

#include "profile.h"
#include "unit.h"

static struct frame py(struct interner *in, const char *name, const char *file, int line)
{
	struct frame f = { .kind = FRAME_PYTHON, .name = intern(in, name), .file = intern(in, file),
			   .short_file = intern(in, file), .line = line };
	return f;
}

static struct sample smp(int pid, uint64_t tid, struct frame *leaf_first, size_t n, double t, enum gil_state g)
{
	struct sample s = { .pid = pid, .thread_id = tid, .os_tid = (int)(tid & 0xffff), .frames = leaf_first,
			    .nframes = n, .time = t, .gil = g, .active = true };
	return s;
}

static void test_frame_interning(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct frame a = py(in, "f", "a.py", 1), b = py(in, "f", "a.py", 2);
	struct frame a2 = py(in, "f", "a.py", 1);
	uint32_t ia = profile_frame_id(&p, &a), ib = profile_frame_id(&p, &b);
	CHECK(ia != ib);
	CHECK_EQ_INT(profile_frame_id(&p, &a2), ia);
	/* every identifying field counts */
	struct frame k = a;
	k.kind = FRAME_CYTHON;
	CHECK(profile_frame_id(&p, &k) != ia);
	struct frame m = a;
	m.kind = FRAME_NATIVE;
	m.module = intern(in, "/lib/x.so");
	m.addr = 0x1000;
	uint32_t im = profile_frame_id(&p, &m);
	m.addr = 0x1004;
	CHECK(profile_frame_id(&p, &m) != im);
	struct frame sh = a;
	sh.short_file = intern(in, "other.py");
	CHECK(profile_frame_id(&p, &sh) != ia);
	CHECK_EQ_INT(p.frames.n, 6);
	/* many frames: chains and rehashing keep every id findable */
	char name[32];
	uint32_t ids[2000];
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "fn%d", i);
		struct frame f = py(in, name, "m.py", i);
		ids[i] = profile_frame_id(&p, &f);
	}
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "fn%d", i);
		struct frame f = py(in, name, "m.py", i);
		bad += profile_frame_id(&p, &f) != ids[i];
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(p.frames.n, 2006);
	profile_free(&p);
	interner_free(in);
}

static void test_stacks_counts_gil(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct frame st1[2] = { py(in, "leaf", "a.py", 3), py(in, "main", "a.py", 1) };
	struct frame st2[2] = { py(in, "other", "a.py", 5), py(in, "main", "a.py", 1) };
	struct sample s1 = smp(1, 10, st1, 2, 0.00, GIL_HELD);
	uint32_t a = profile_add(&p, &s1, NULL, 0);
	s1.time = 0.01;
	s1.gil = GIL_IDLE;
	CHECK_EQ_INT(profile_add(&p, &s1, NULL, 0), a);
	struct sample s2 = smp(1, 10, st2, 2, 0.02, GIL_RELEASED);
	uint32_t b = profile_add(&p, &s2, NULL, 0);
	CHECK(a != b);
	/* same frames on another thread: another stack */
	struct sample s3 = smp(1, 11, st1, 2, 0.02, GIL_WAITING);
	uint32_t c = profile_add(&p, &s3, NULL, 0);
	CHECK(c != a);
	CHECK_EQ_INT(p.stacks.n, 3);
	CHECK_EQ_INT(p.threads.n, 2);
	CHECK_EQ_INT(p.samples, 4);
	CHECK_EQ_INT(p.stacks.v[a].count, 2);
	CHECK_EQ_INT(p.stacks.v[a].gil[GIL_HELD], 1);
	CHECK_EQ_INT(p.stacks.v[a].gil[GIL_IDLE], 1);
	CHECK_EQ_INT(p.threads.v[0].samples, 3);
	CHECK_EQ_INT(p.threads.v[0].gil[GIL_RELEASED], 1);
	CHECK_EQ_INT(p.threads.v[1].gil[GIL_WAITING], 1);
	/* root first: main then leaf */
	CHECK_EQ_INT(p.stacks.v[a].nframes, 2);
	CHECK_EQ_STR(p.frames.v[p.stacks.v[a].frames[0]].name, "main");
	CHECK_EQ_STR(p.frames.v[p.stacks.v[a].frames[1]].name, "leaf");
	/* extra root frames go before the sample's root */
	struct frame th = { .kind = FRAME_PSEUDO, .name = intern(in, "thread (10): MainThread"), .file = intern(in, ""),
			    .short_file = intern(in, "") };
	uint32_t d = profile_add(&p, &s1, &th, 1);
	CHECK_EQ_INT(p.stacks.v[d].nframes, 3);
	CHECK_EQ_INT(p.frames.v[p.stacks.v[d].frames[0]].kind, FRAME_PSEUDO);
	CHECK_EQ_STR(p.frames.v[p.stacks.v[d].frames[2]].name, "leaf");
	/* profile_stack_id finds the same stack from ids */
	CHECK_EQ_INT(profile_stack_id(&p, p.stacks.v[b].thread, p.stacks.v[b].frames, 2), b);
	/* empty stacks are stacks too */
	struct sample e = smp(1, 10, NULL, 0, 0.05, GIL_IDLE);
	uint32_t ie = profile_add(&p, &e, NULL, 0);
	CHECK_EQ_INT(p.stacks.v[ie].nframes, 0);
	CHECK_EQ_INT(profile_add(&p, &e, NULL, 0), ie);
	/* thread names and os tids update, thread lookups stay stable */
	CHECK_EQ_INT(profile_thread_id(&p, 1, 10, 0, NULL), 0);
	CHECK_EQ_INT(profile_thread_id(&p, 1, 10, 4242, intern(in, "Worker")), 0);
	CHECK_EQ_INT(p.threads.v[0].os_tid, 4242);
	CHECK_EQ_STR(p.threads.v[0].name, "Worker");
	CHECK_EQ_INT(profile_thread_id(&p, 2, 10, 0, NULL), 2);   /* same thread id in another pid */
	profile_free(&p);
	interner_free(in);
}

static void test_timeline_runs(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct frame a[1] = { py(in, "a", "x.py", 1) }, b[1] = { py(in, "b", "x.py", 2) };
	/* thread 1: a a a b a ; thread 2 interleaved: b b */
	const char *seq = "aaaba";
	for (int i = 0; seq[i]; i++) {
		struct sample s = smp(1, 1, seq[i] == 'a' ? a : b, 1, i * 0.01, GIL_HELD);
		profile_add(&p, &s, NULL, 0);
		if (i < 2) {
			struct sample s2 = smp(1, 2, b, 1, i * 0.01, GIL_HELD);
			profile_add(&p, &s2, NULL, 0);
		}
	}
	CHECK_EQ_INT(p.timelines.n, 2);
	const struct profile_timeline *t1 = &p.timelines.v[0], *t2 = &p.timelines.v[1];
	CHECK_EQ_INT(t1->runs.n, 3);
	CHECK_EQ_INT(t1->runs.v[0].count, 3);
	CHECK(t1->runs.v[0].start == 0.0);
	CHECK(t1->runs.v[0].end > 0.019 && t1->runs.v[0].end < 0.021);
	CHECK_EQ_INT(t1->runs.v[1].count, 1);
	CHECK_EQ_INT(t1->runs.v[2].count, 1);
	CHECK_EQ_INT(t1->runs.v[0].stack, t1->runs.v[2].stack);
	CHECK_EQ_INT(t2->runs.n, 1);
	CHECK_EQ_INT(t2->runs.v[0].count, 2);
	/* merged counts extend the run of the same stack and add to the totals */
	uint32_t sa = t1->runs.v[2].stack;
	profile_add_stack_count(&p, sa, 10, 0.2);
	CHECK_EQ_INT(p.timelines.v[0].runs.n, 3);
	CHECK_EQ_INT(p.timelines.v[0].runs.v[2].count, 11);
	CHECK_EQ_INT(p.stacks.v[sa].count, 14);
	CHECK_EQ_INT(p.threads.v[0].samples, 15);
	CHECK_EQ_INT(p.samples, 17);
	profile_add_stack_count(&p, 9999, 5, 0.3);   /* unknown stack: ignored */
	CHECK_EQ_INT(p.samples, 17);
	profile_free(&p);
	interner_free(in);
}

/* A million samples over a handful of stacks keep the profile small. */
static void test_memory_follows_stacks(void)
{
	struct interner *in = interner_new();
	struct profile p;
	profile_init(&p, in, 100);
	struct frame st[3][3] = {
		{ py(in, "x", "m.py", 1), py(in, "w", "m.py", 2), py(in, "main", "m.py", 3) },
		{ py(in, "y", "m.py", 4), py(in, "w", "m.py", 2), py(in, "main", "m.py", 3) },
		{ py(in, "z", "m.py", 5), py(in, "main", "m.py", 3), py(in, "<module>", "m.py", 9) },
	};
	for (int i = 0; i < 1000000; i++) {
		struct sample s = smp(1, 1 + (i & 1), st[(i / 1000) % 3], 3, i * 0.001, GIL_HELD);
		profile_add(&p, &s, NULL, 0);
	}
	CHECK_EQ_INT(p.samples, 1000000);
	CHECK_EQ_INT(p.stacks.n, 6);
	CHECK_EQ_INT(p.frames.n, 6);
	/* runs change every 500 samples per thread */
	CHECK_EQ_INT(p.timelines.v[0].runs.n, 1000);
	uint64_t sum = 0;
	for (size_t i = 0; i < p.stacks.n; i++)
		sum += p.stacks.v[i].count;
	CHECK_EQ_INT(sum, 1000000);
	profile_free(&p);
	interner_free(in);
}

int main(void)
{
	RUN(test_frame_interning);
	RUN(test_stacks_counts_gil);
	RUN(test_timeline_runs);
	RUN(test_memory_follows_stacks);
	return unit_report("profile");
}
