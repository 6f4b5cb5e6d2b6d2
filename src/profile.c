/*
 * profile.c - the profile of a run: frames and stacks interned once, counts per stack and per
 * thread (with GIL states), and a run-length timeline per thread for the ordered formats.
 *
 * Lookups go through the project's one hash map: a 64-bit hash of the content maps to the first
 * id with that hash, and frame_next / stack_next chain the (rare) ids whose hashes collide.
 * Memory grows with distinct frames, stacks and stack changes, never with repeated samples.
 */
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define PROFILE_NONE UINT32_MAX
/* Stacks this deep or shallower are assembled on the C stack; deeper ones are rare. */
#define PROFILE_STACK_BUF 512

void profile_init(struct profile *p, struct interner *strs, int rate)
{
	memset(p, 0, sizeof(*p));
	p->strs = strs;
	p->rate = rate > 0 ? rate : 100;
	hmap_init(&p->frame_index);
	hmap_init(&p->stack_index);
	hmap_init(&p->thread_index);
}

void profile_free(struct profile *p)
{
	for (size_t i = 0; i < p->stacks.n; i++)
		free(p->stacks.v[i].frames);
	for (size_t i = 0; i < p->timelines.n; i++)
		vec_free(&p->timelines.v[i].runs);
	vec_free(&p->frames);
	vec_free(&p->stacks);
	vec_free(&p->threads);
	vec_free(&p->timelines);
	vec_free(&p->frame_next);
	vec_free(&p->stack_next);
	hmap_free(&p->frame_index);
	hmap_free(&p->stack_index);
	hmap_free(&p->thread_index);
	memset(p, 0, sizeof(*p));
}

/* ---- frames ---------------------------------------------------------------------------------- */

static uint64_t profile_frame_hash(const struct frame *f)
{
	/* Strings are interned, so their pointers stand for their contents. */
	uint64_t parts[7] = {
		(uint64_t)f->kind, (uint64_t)(uintptr_t)f->name, (uint64_t)(uintptr_t)f->file,
		(uint64_t)(uintptr_t)f->short_file, (uint64_t)(int64_t)f->line,
		(uint64_t)(uintptr_t)f->module, f->addr,
	};
	return hash_bytes(parts, sizeof(parts), 0x6672616d65ULL);
}

static bool profile_frame_equal(const struct frame *a, const struct frame *b)
{
	return a->kind == b->kind && a->name == b->name && a->file == b->file &&
	       a->short_file == b->short_file && a->line == b->line && a->module == b->module &&
	       a->addr == b->addr;
}

uint32_t profile_frame_id(struct profile *p, const struct frame *f)
{
	uint64_t h = profile_frame_hash(f), first;
	bool known = hmap_get(&p->frame_index, h, &first);
	if (known) {
		for (uint32_t id = (uint32_t)first; id != PROFILE_NONE; id = p->frame_next.v[id])
			if (profile_frame_equal(&p->frames.v[id], f))
				return id;
	}
	uint32_t id = (uint32_t)p->frames.n;
	vec_push(&p->frames, *f);
	/* New ids go to the head of their chain. */
	vec_push(&p->frame_next, known ? (uint32_t)first : PROFILE_NONE);
	hmap_put(&p->frame_index, h, id);
	return id;
}

/* ---- threads --------------------------------------------------------------------------------- */

static uint64_t profile_thread_key(int pid, uint64_t thread_id)
{
	uint64_t parts[2] = { (uint64_t)(int64_t)pid, thread_id };
	return hash_bytes(parts, sizeof(parts), 0x746872656164ULL);
}

static uint32_t profile_thread_find(const struct profile *p, int pid, uint64_t thread_id)
{
	uint64_t v;
	if (hmap_get(&p->thread_index, profile_thread_key(pid, thread_id), &v)) {
		const struct profile_thread *t = &p->threads.v[v];
		if (t->pid == pid && t->thread_id == thread_id)
			return (uint32_t)v;
	} else {
		return PROFILE_NONE;
	}
	/* A hash collision between two threads: there are few threads, so look at all of them. */
	for (size_t i = 0; i < p->threads.n; i++)
		if (p->threads.v[i].pid == pid && p->threads.v[i].thread_id == thread_id)
			return (uint32_t)i;
	return PROFILE_NONE;
}

uint32_t profile_thread_id(struct profile *p, int pid, uint64_t thread_id, int os_tid, const char *name)
{
	uint32_t id = profile_thread_find(p, pid, thread_id);
	if (id != PROFILE_NONE) {
		struct profile_thread *t = &p->threads.v[id];
		if (name)
			t->name = name;
		if (os_tid)
			t->os_tid = os_tid;
		return id;
	}
	struct profile_thread t = { .pid = pid, .thread_id = thread_id, .os_tid = os_tid, .name = name };
	struct profile_timeline tl = { 0 };
	id = (uint32_t)p->threads.n;
	vec_push(&p->threads, t);
	vec_push(&p->timelines, tl);
	uint64_t key = profile_thread_key(pid, thread_id);
	if (!hmap_get(&p->thread_index, key, NULL))
		hmap_put(&p->thread_index, key, id);
	return id;
}

/* ---- stacks ---------------------------------------------------------------------------------- */

static uint64_t profile_stack_hash(uint32_t thread, const uint32_t *frames, size_t n)
{
	uint64_t h = hash_bytes(&thread, sizeof(thread), 0x737461636bULL);
	return n ? hash_bytes(frames, n * sizeof(*frames), h) : h;
}

uint32_t profile_stack_id(struct profile *p, uint32_t thread, const uint32_t *frames, size_t n)
{
	uint64_t h = profile_stack_hash(thread, frames, n), first;
	bool known = hmap_get(&p->stack_index, h, &first);
	if (known) {
		for (uint32_t id = (uint32_t)first; id != PROFILE_NONE; id = p->stack_next.v[id]) {
			const struct profile_stack *s = &p->stacks.v[id];
			if (s->thread == thread && s->nframes == n &&
			    (n == 0 || memcmp(s->frames, frames, n * sizeof(*frames)) == 0))
				return id;
		}
	}
	struct profile_stack s = { .thread = thread, .nframes = (uint32_t)n };
	if (n) {
		s.frames = xmalloc(n * sizeof(*frames));
		memcpy(s.frames, frames, n * sizeof(*frames));
	}
	uint32_t id = (uint32_t)p->stacks.n;
	vec_push(&p->stacks, s);
	vec_push(&p->stack_next, known ? (uint32_t)first : PROFILE_NONE);
	hmap_put(&p->stack_index, h, id);
	return id;
}

/* Extend the thread's last run when it has the same stack, else start a new run. */
static void profile_timeline_add(struct profile *p, uint32_t thread, uint32_t stack, uint64_t count, double t)
{
	struct profile_timeline *tl = &p->timelines.v[thread];
	while (count > 0) {
		struct profile_run *last = tl->runs.n ? &tl->runs.v[tl->runs.n - 1] : NULL;
		if (last && last->stack == stack && last->count < UINT32_MAX) {
			uint64_t room = UINT32_MAX - last->count;
			uint64_t take = count < room ? count : room;
			last->count += (uint32_t)take;
			if (t > last->end)
				last->end = t;
			count -= take;
			continue;
		}
		struct profile_run r = { .stack = stack, .count = 0, .start = t, .end = t };
		vec_push(&tl->runs, r);
	}
}

uint32_t profile_add(struct profile *p, const struct sample *s, const struct frame *extra_root, size_t nroot)
{
	uint32_t thread = profile_thread_id(p, s->pid, s->thread_id, s->os_tid, s->thread_name);
	size_t n = nroot + s->nframes;
	uint32_t buf[PROFILE_STACK_BUF];
	uint32_t *ids = n <= PROFILE_STACK_BUF ? buf : xmalloc(n * sizeof(*ids));

	for (size_t i = 0; i < nroot; i++)
		ids[i] = profile_frame_id(p, &extra_root[i]);
	for (size_t i = 0; i < s->nframes; i++)   /* sample frames are leaf first */
		ids[nroot + i] = profile_frame_id(p, &s->frames[s->nframes - 1 - i]);

	uint32_t stack = profile_stack_id(p, thread, ids, n);
	if (ids != buf)
		free(ids);

	enum gil_state g = (unsigned)s->gil < GIL_NSTATES ? s->gil : GIL_HELD;
	struct profile_stack *st = &p->stacks.v[stack];
	struct profile_thread *th = &p->threads.v[thread];
	st->count++;
	st->gil[g]++;
	th->samples++;
	th->gil[g]++;
	p->samples++;
	profile_timeline_add(p, thread, stack, 1, s->time);
	return stack;
}

void profile_add_stack_count(struct profile *p, uint32_t stack, uint64_t count, double t)
{
	if (stack >= p->stacks.n || count == 0)
		return;
	/* The GIL state of merged samples is unknown, so the per-state counts are left alone. */
	struct profile_stack *st = &p->stacks.v[stack];
	st->count += count;
	p->threads.v[st->thread].samples += count;
	p->samples += count;
	profile_timeline_add(p, st->thread, stack, count, t);
}
