/*
 * threadnames.c - thread names for `dump`, `top` and --threads: the `name` of each Thread object in
 * threading._active (ident -> Thread), matched to thread states by thread_id (pthread_self()).
 *
 * The result is kept in p->thread_names and read again when a thread id shows up that the last
 * read did not see, or one now worn by another OS thread (a thread started after another ended
 * reuses its stack, so its pthread id). A read costs a few process_vm_readv calls plus about ten
 * for each new thread; the first also walks sys.modules and threading's dict (~2,700 reads with
 * 100 threads - which every read did before, keeping mixspy busy with a program that starts
 * threads all the time). Threads the last read saw without a name (started with _thread, or not
 * yet registered) are kept as 0 and retried at the next call after a new thread showed up, then
 * with a doubling interval (1, 2, 4 ... NAMES_RETRY calls, counted by p->names_generation): a
 * label missing for more than a few samples splits the thread in two in `record --threads`.
 */
#include "internal.h"

#include <string.h>

#define NAMES_RETRY 64
#define MAX_NAME 1024

/* threading.Thread keeps its name in `self._name`; 2.7 spelled it `self.__name` (mangled). */
static const char *name_attr(const struct py_proc *p)
{
	return p->version.major == 2 ? "_Thread__name" : "_name";
}

/* threading._active: looked up through sys.modules and the module's dict (hundreds of reads:
 * every key compared) the first time, then kept - the module never rebinds it (after a fork it
 * is cleared and refilled in place) - for as long as the object there still has the type it had. */
static int active_dict(struct py_proc *p, uint64_t *active)
{
	struct py_reader *r = &p->rd;
	const struct py_layout *L = &p->layout;
	uint64_t type, modules, threading;
	*active = 0;
	if (p->names_active && pyobj_type(r, p->names_active, &type) == 0 && type == p->names_active_type) {
		*active = p->names_active;
		return 0;
	}
	p->names_active = 0;
	if (L->interp_modules < 0 || target_read_u64(p->t, p->interp + (uint64_t)L->interp_modules, &modules) ||
	    !modules)
		return E_READ;
	int rc = pyobj_dict_get_str(r, modules, "threading", &threading);
	if (rc || !threading)
		return rc;   /* threading never imported: no names */
	if ((rc = pyobj_instance_attr(r, threading, "_active", active)) || !*active)
		return rc;
	if (pyobj_type(r, *active, &p->names_active_type) == 0)
		p->names_active = *active;
	return 0;
}

/* Bytes of an int key read ahead: its header and up to three 30-bit digits (thread ids) */
#define KEY_SPAN 48

/* Rebuild p->thread_names from threading._active. A thread seen before - same id, same Thread
 * object, not in p->names_fresh - keeps the name read then; only new ones have their `_name`
 * looked up. The keys (ints) are read in one vectored read. */
static int read_names(struct py_proc *p)
{
	struct py_reader *r = &p->rd;
	uint64_t active;
	int rc = active_dict(p, &active);
	if (rc || !active)
		return rc;
	struct pyobj_dict_iter it;
	if ((rc = pyobj_dict_iter_init(r, active, &it)))
		return rc;
	p->names_pairs.n = 0;
	p->names_iov.n = 0;
	uint64_t key, thread;
	while ((rc = pyobj_dict_iter_next(r, &it, &key, &thread)) == 1 && p->names_pairs.n < 200000) {
		vec_push(&p->names_pairs, key);
		vec_push(&p->names_pairs, thread);
		struct target_iov w = { key, NULL, KEY_SPAN };
		vec_push(&p->names_iov, w);
	}
	if (rc < 0)
		return rc;
	/* the keys' type's flags too (int: pyobj_read_long checks them), as the last read found it */
	if (p->names_key_type) {
		struct target_iov w = { p->names_key_type + (uint64_t)p->layout.type_flags, NULL, 8 };
		vec_push(&p->names_iov, w);
	}
	struct hmap names, objs;
	hmap_init(&names);
	hmap_init(&objs);
	target_hold(p->t, p->names_iov.v, p->names_iov.n);
	struct strbuf sb;
	sb_init(&sb);
	for (size_t i = 0; i + 1 < p->names_pairs.n; i += 2) {
		int64_t ident;
		bool overflow;
		uint64_t obj = p->names_pairs.v[i + 1], was, old, name;
		if (pyobj_read_long(r, p->names_pairs.v[i], &ident, &overflow) || overflow)
			continue;
		pyobj_type(r, p->names_pairs.v[i], &p->names_key_type);
		bool fresh = false;
		for (size_t k = 0; k < p->names_fresh.n && !fresh; k++)
			fresh = p->names_fresh.v[k] == (uint64_t)ident;
		if (!fresh && hmap_get(&p->thread_objs, (uint64_t)ident, &was) && was == obj &&
		    hmap_get(&p->thread_names, (uint64_t)ident, &old) && old) {
			hmap_put(&names, (uint64_t)ident, old);
			hmap_put(&objs, (uint64_t)ident, obj);
			continue;
		}
		if (pyobj_instance_attr(r, obj, name_attr(p), &name) || !name)
			continue;
		sb_reset(&sb);
		if (pyobj_read_str(r, name, &sb) || sb.len > MAX_NAME)
			continue;
		const char *s = intern_n(p->strs, sb.buf ? sb.buf : "", sb.len);
		hmap_put(&names, (uint64_t)ident, (uint64_t)(uintptr_t)s);
		hmap_put(&objs, (uint64_t)ident, obj);
	}
	target_unhold(p->t);
	sb_free(&sb);
	hmap_free(&p->thread_names);
	hmap_free(&p->thread_objs);
	p->thread_names = names;
	p->thread_objs = objs;
	return 0;
}

int py_read_thread_names(struct py_proc *p, struct py_thread *threads, size_t n)
{
	bool nameless = false;
	uint64_t v, tid;
	p->names_fresh.n = 0;
	for (size_t i = 0; i < n; i++) {
		/* An id the last read did not see, or one now worn by another OS thread: pthread ids
		 * come back as soon as a thread's stack is reused, so a program that starts a thread
		 * after another ends sees the same id again - with its own name. */
		bool known = hmap_get(&p->thread_names, threads[i].thread_id, &v);
		bool moved = threads[i].os_tid && (!hmap_get(&p->names_tid, threads[i].thread_id, &tid) ||
						   tid != (uint64_t)threads[i].os_tid);
		if (!known || moved)
			vec_push(&p->names_fresh, threads[i].thread_id);
		else if (!v)
			nameless = true;
	}
	p->names_generation++;
	int rc = 0;
	if (!p->names_interval)
		p->names_interval = 1;
	if (p->names_fresh.n || (nameless && p->names_generation >= p->names_interval)) {
		/* A new thread may not be in _active yet: retried at the next call, then 2, 4 ... */
		p->names_interval = p->names_fresh.n ? 1
				    : p->names_interval < NAMES_RETRY ? p->names_interval * 2 : NAMES_RETRY;
		p->names_generation = 0;
		rc = read_names(p);
		/* Remember every thread this read covered, named or not, so the next calls are cheap. */
		for (size_t i = 0; i < n; i++) {
			if (!hmap_get(&p->thread_names, threads[i].thread_id, NULL))
				hmap_put(&p->thread_names, threads[i].thread_id, 0);
			if (threads[i].os_tid)
				hmap_put(&p->names_tid, threads[i].thread_id, (uint64_t)threads[i].os_tid);
		}
	}
	for (size_t i = 0; i < n; i++)
		threads[i].name = hmap_get(&p->thread_names, threads[i].thread_id, &v) && v
					  ? (const char *)(uintptr_t)v : NULL;
	return rc;
}
