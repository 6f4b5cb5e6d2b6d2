/*
 * callgrind.c - the callgrind profile format (valgrind's callgrind-format documentation), read by
 * KCachegrind/QCachegrind, callgrind_annotate and gprof2dot. One event, Samples; positions are
 * source lines.
 *
 * Each function (funcs.h: file and name; ob= its ELF object for native code, else a bracketed
 * kind such as [python]) lists its self cost per line: the samples whose leaf frame is on that
 * line. Then each call site: cfn= the callee, calls= the number of samples in which that line
 * called it (a sampler sees no calls, so samples stand in for call counts) with the callee's
 * first line as target, and the inclusive cost, the same samples. A call site is counted once per
 * sample even when recursion repeats it. File, function and object names use the format's name
 * compression: "(id) name" the first time, "(id)" after.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "funcs.h"

#define CG_NONE UINT32_MAX
#define CG_FLUSH (64 * 1024)

struct cg_cost {
	uint32_t fn;
	int line;
	uint32_t callee;   /* CG_NONE for self cost */
	uint64_t calls, cost;
	uint32_t stamp;    /* last stack counted, plus one */
	uint32_t chain;
};

struct cg_costs {
	VEC(struct cg_cost) list;
	struct hmap index;
};

static struct cg_cost *cg_cost_at(struct cg_costs *c, uint32_t fn, int line, uint32_t callee)
{
	uint64_t parts[3] = { fn, (uint64_t)(int64_t)line, callee };
	uint64_t h = hash_bytes(parts, sizeof parts, 0x6367ULL), first;
	bool known = hmap_get(&c->index, h, &first);
	if (known)
		for (uint32_t id = (uint32_t)first; id != CG_NONE; id = c->list.v[id].chain) {
			struct cg_cost *x = &c->list.v[id];
			if (x->fn == fn && x->line == line && x->callee == callee)
				return x;
		}
	struct cg_cost x = { .fn = fn, .line = line, .callee = callee, .chain = known ? (uint32_t)first : CG_NONE };
	vec_push(&c->list, x);
	hmap_put(&c->index, h, c->list.n - 1);
	return &c->list.v[c->list.n - 1];
}

struct cg_writer {
	FILE *out;
	struct strbuf sb;
	bool failed;
	struct out_funcs *fs;
	const char **object;    /* per function: its ob= name */
	uint32_t *order;        /* function index -> rank in the output order */
	struct hmap names[3];   /* ob, fl, fn: interned pointer -> compression id */
};

enum { CG_OB, CG_FL, CG_FN };

static void cg_flush(struct cg_writer *w, bool force)
{
	if (!w->sb.len || (!force && w->sb.len < CG_FLUSH))
		return;
	if (fwrite(w->sb.buf, 1, w->sb.len, w->out) != w->sb.len)
		w->failed = true;
	sb_reset(&w->sb);
}

static void cg_name(struct cg_writer *w, const char *spec, int space, const char *name)
{
	uint64_t id;
	sb_adds(&w->sb, spec);
	if (hmap_get(&w->names[space], (uint64_t)(uintptr_t)name, &id)) {
		sb_addf(&w->sb, "=(%llu)\n", (unsigned long long)id);
		return;
	}
	id = w->names[space].n + 1;
	hmap_put(&w->names[space], (uint64_t)(uintptr_t)name, id);
	sb_addf(&w->sb, "=(%llu) %s\n", (unsigned long long)id, name);
}

static int cg_func_cmp(const void *a, const void *b, void *arg)
{
	const struct cg_writer *w = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct out_func *f = &w->fs->list.v[x], *g = &w->fs->list.v[y];
	int c = strcmp(w->object[x], w->object[y]);
	if (!c)
		c = strcmp(f->file, g->file);
	if (!c)
		c = strcmp(f->name, g->name);
	return c ? c : (x > y) - (x < y);
}

static int cg_cost_cmp(const void *a, const void *b, void *arg)
{
	const struct cg_writer *w = arg;
	const struct cg_cost *x = a, *y = b;
	if (x->fn != y->fn)
		return w->order[x->fn] < w->order[y->fn] ? -1 : 1;
	bool xs = x->callee == CG_NONE, ys = y->callee == CG_NONE;
	if (xs != ys)
		return xs ? -1 : 1;   /* self cost first */
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->callee != y->callee)
		return w->order[x->callee] < w->order[y->callee] ? -1 : 1;
	return 0;
}

static const char *cg_file(const struct out_func *f)
{
	return *f->file ? f->file : "???";
}

int write_callgrind(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct out_funcs fs;
	out_funcs_build(&fs, p, o);
	struct cg_costs costs = { 0 };
	hmap_init(&costs.index);
	uint64_t total = 0;

	for (size_t s = 0; s < p->stacks.n; s++) {
		const struct profile_stack *st = &p->stacks.v[s];
		if (!st->count || !st->nframes)
			continue;
		uint32_t stamp = (uint32_t)s + 1, prev = CG_NONE, f = CG_NONE;
		int prev_line = 0, line = 0;
		for (uint32_t i = 0; i < st->nframes; i++) {
			uint32_t fid = st->frames[i];
			if (fid >= p->frames.n)
				continue;
			f = fs.of_frame[fid];
			line = o->lineno && p->frames.v[fid].line > 0 ? p->frames.v[fid].line : 0;
			if (prev != CG_NONE) {
				struct cg_cost *c = cg_cost_at(&costs, prev, prev_line, f);
				if (c->stamp != stamp) {
					c->stamp = stamp;
					c->calls += st->count;
					c->cost += st->count;
				}
			}
			prev = f;
			prev_line = line;
		}
		if (f == CG_NONE)
			continue;
		cg_cost_at(&costs, f, line, CG_NONE)->cost += st->count;
		total += st->count;
	}

	struct cg_writer w = { .out = out, .fs = &fs };
	sb_init(&w.sb);
	for (int i = 0; i < 3; i++)
		hmap_init(&w.names[i]);
	size_t nfn = fs.list.n;
	w.object = xcalloc(nfn ? nfn : 1, sizeof(*w.object));
	w.order = xcalloc(nfn ? nfn : 1, sizeof(*w.order));
	uint32_t *by_rank = xcalloc(nfn ? nfn : 1, sizeof(*by_rank));
	for (size_t i = 0; i < nfn; i++) {
		const struct out_func *f = &fs.list.v[i];
		const char *kind = f->kind == FRAME_PYTHON ? "[python]" : f->kind == FRAME_CYTHON ? "[cython]"
				 : f->kind == FRAME_PSEUDO ? "[mixspy]" : "[native]";
		w.object[i] = f->object ? f->object : intern(fs.strs, kind);
		by_rank[i] = (uint32_t)i;
	}
	qsort_r(by_rank, nfn, sizeof(*by_rank), cg_func_cmp, &w);
	for (size_t i = 0; i < nfn; i++)
		w.order[by_rank[i]] = (uint32_t)i;
	qsort_r(costs.list.v, costs.list.n, sizeof(*costs.list.v), cg_cost_cmp, &w);

	struct strbuf cmd;
	sb_init(&cmd);
	out_add_utf8(&cmd, p->title && *p->title ? p->title : "mixspy");
	for (size_t i = 0; i < cmd.len; i++)
		if (cmd.buf[i] == '\n' || cmd.buf[i] == '\r')
			cmd.buf[i] = ' ';
	sb_addf(&w.sb, "# callgrind format\nversion: 1\ncreator: mixspy %s\n", "0.1.0");
	if (p->threads.n)
		sb_addf(&w.sb, "pid: %d\n", p->threads.v[0].pid);
	sb_addf(&w.sb, "cmd: %s\npart: 1\n\n", cmd.buf);
	sb_free(&cmd);
	sb_addf(&w.sb, "desc: Sampled at %d Hz: one sample is %.9g seconds\n", p->rate, 1.0 / (p->rate > 0 ? p->rate : 100));
	sb_adds(&w.sb, "positions: line\nevent: Samples : Samples\nevents: Samples\n");
	sb_addf(&w.sb, "summary: %llu\n", (unsigned long long)total);

	uint32_t cur = CG_NONE;
	const char *cur_ob = NULL;
	for (size_t i = 0; i < costs.list.n; i++) {
		const struct cg_cost *c = &costs.list.v[i];
		if (!c->cost)
			continue;
		if (c->fn != cur) {
			const struct out_func *f = &fs.list.v[c->fn];
			sb_addc(&w.sb, '\n');
			if (w.object[c->fn] != cur_ob)
				cg_name(&w, "ob", CG_OB, cur_ob = w.object[c->fn]);
			cg_name(&w, "fl", CG_FL, cg_file(f));
			cg_name(&w, "fn", CG_FN, f->name);
			cur = c->fn;
		}
		if (c->callee == CG_NONE) {
			sb_addf(&w.sb, "%d %llu\n", c->line, (unsigned long long)c->cost);
		} else {
			const struct out_func *g = &fs.list.v[c->callee];
			cg_name(&w, "cob", CG_OB, w.object[c->callee]);
			cg_name(&w, "cfi", CG_FL, cg_file(g));
			cg_name(&w, "cfn", CG_FN, g->name);
			sb_addf(&w.sb, "calls=%llu %d\n%d %llu\n", (unsigned long long)c->calls, g->line, c->line,
				(unsigned long long)c->cost);
		}
		cg_flush(&w, false);
	}
	sb_addf(&w.sb, "\ntotals: %llu\n", (unsigned long long)total);
	cg_flush(&w, true);

	sb_free(&w.sb);
	for (int i = 0; i < 3; i++)
		hmap_free(&w.names[i]);
	free(w.object);
	free(w.order);
	free(by_rank);
	vec_free(&costs.list);
	hmap_free(&costs.index);
	out_funcs_free(&fs);
	if (w.failed)
		return err_set(e, E_IO, "writing callgrind output failed");
	return 0;
}
