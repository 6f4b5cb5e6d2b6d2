/*
 * threadnames.c - thread names for `dump`, `top` and --threads: the `name` of each Thread object in
 * threading._active (ident -> Thread), matched to thread states by thread_id (pthread_self()).
 *
 * Reading names walks sys.modules and two dicts, so the result is kept in p->thread_names and
 * read again only when a thread id shows up that the last read did not see. Threads the last read
 * saw without a name (started with _thread, or not yet registered) are kept as 0 and retried
 * with a doubling interval (1, 2, 4 ... NAMES_RETRY calls, counted by p->names_generation): a
 * program just launched registers its threads moments after we first look, and a label missing
 * for more than a few samples splits the thread in two in `record --threads` output.
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

static int read_names(struct py_proc *p)
{
	struct py_reader *r = &p->rd;
	const struct py_layout *L = &p->layout;
	uint64_t modules, threading, active;
	if (L->interp_modules < 0 || target_read_u64(p->t, p->interp + (uint64_t)L->interp_modules, &modules) ||
	    !modules)
		return E_READ;
	int rc = pyobj_dict_get_str(r, modules, "threading", &threading);
	if (rc)
		return rc;
	if (!threading)
		return 0;   /* threading was never imported: no names */
	if ((rc = pyobj_instance_attr(r, threading, "_active", &active)))
		return rc;
	if (!active)
		return 0;
	struct pyobj_dict_iter it;
	if ((rc = pyobj_dict_iter_init(r, active, &it)))
		return rc;
	hmap_clear(&p->thread_names);
	struct strbuf sb;
	sb_init(&sb);
	uint64_t key, thread;
	int count = 0;
	while ((rc = pyobj_dict_iter_next(r, &it, &key, &thread)) == 1 && count++ < 100000) {
		int64_t ident;
		bool overflow;
		uint64_t name;
		if (pyobj_read_long(r, key, &ident, &overflow) || overflow)
			continue;
		if (pyobj_instance_attr(r, thread, name_attr(p), &name) || !name)
			continue;
		sb_reset(&sb);
		if (pyobj_read_str(r, name, &sb) || sb.len > MAX_NAME)
			continue;
		const char *s = intern_n(p->strs, sb.buf ? sb.buf : "", sb.len);
		hmap_put(&p->thread_names, (uint64_t)ident, (uint64_t)(uintptr_t)s);
	}
	sb_free(&sb);
	return rc < 0 ? rc : 0;
}

int py_read_thread_names(struct py_proc *p, struct py_thread *threads, size_t n)
{
	bool unknown = false, nameless = false;
	uint64_t v;
	for (size_t i = 0; i < n; i++) {
		if (!hmap_get(&p->thread_names, threads[i].thread_id, &v))
			unknown = true;
		else if (!v)
			nameless = true;
	}
	p->names_generation++;
	int rc = 0;
	if (!p->names_interval)
		p->names_interval = 1;
	if (unknown || (nameless && p->names_generation >= p->names_interval)) {
		p->names_generation = 0;
		p->names_interval = nameless && p->names_interval < NAMES_RETRY ? p->names_interval * 2 : 1;
		rc = read_names(p);
		/* Remember every thread this read covered, named or not, so the next calls are cheap. */
		for (size_t i = 0; i < n; i++)
			if (!hmap_get(&p->thread_names, threads[i].thread_id, NULL))
				hmap_put(&p->thread_names, threads[i].thread_id, 0);
	}
	for (size_t i = 0; i < n; i++)
		threads[i].name = hmap_get(&p->thread_names, threads[i].thread_id, &v) && v
					  ? (const char *)(uintptr_t)v : NULL;
	return rc;
}
