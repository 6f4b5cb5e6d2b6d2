/*
 * locals.c - the arguments and local variables of one frame, for `dump --locals`: names from the
 * code object (co_varnames, or co_localsplusnames filtered by co_localspluskinds from 3.11), values
 * from the frame's localsplus slots, each shown with pyobj_repr's py-spy rules.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LOCALS 65536

/* co_localspluskinds bits (3.11+) */
#define CO_FAST_HIDDEN 0x10   /* 3.12+: inlined comprehension variables */
#define CO_FAST_LOCAL 0x20
#define CO_FAST_CELL 0x40

#define CELL_REF 16           /* PyCellObject.ob_ref */

static int32_t code_i32(const uint8_t *buf, int off)
{
	int32_t v = 0;
	if (off >= 0)
		memcpy(&v, buf + off, 4);
	return v;
}

static uint64_t code_u64(const uint8_t *buf, int off)
{
	uint64_t v = 0;
	if (off >= 0)
		memcpy(&v, buf + off, 8);
	return v;
}

/* A local that is also a cell (3.11+) holds the cell: show what the cell holds. */
static uint64_t deref_cell(struct py_proc *p, uint64_t obj)
{
	struct strbuf sb;
	sb_init(&sb);
	uint64_t ref = obj;
	if (!pyobj_type_name(&p->rd, obj, &sb) && sb.buf && strcmp(sb.buf, "cell") == 0 &&
	    target_read_u64(p->t, obj + CELL_REF, &ref))
		ref = 0;
	sb_free(&sb);
	return ref;
}

static char *repr_of(struct py_proc *p, uint64_t obj, size_t budget)
{
	struct strbuf sb;
	sb_init(&sb);
	if (pyobj_repr(&p->rd, obj, budget, &sb)) {
		sb_free(&sb);
		return xstrdup("?");
	}
	return sb.buf ? sb_detach(&sb) : xstrdup("");
}

int py_frame_locals(struct py_proc *p, const struct py_frame *f, size_t repr_budget, struct py_local **out,
		    size_t *n, struct err *e)
{
	const struct py_layout *L = &p->layout;
	struct py_reader *r = &p->rd;
	*out = NULL;
	*n = 0;
	if (L->code_size <= 0 || L->code_nlocals < 0 || L->code_varnames < 0)
		return err_set(e, E_INTERNAL, "no locals layout for this version");
	uint8_t *code = xmalloc((size_t)L->code_size);
	uint64_t *names = NULL, *slots = NULL;
	uint8_t *kinds = NULL;
	size_t nnames = 0, nkinds = 0;
	VEC(struct py_local) res = { 0 };
	int rc = E_READ;

	if (!f->code || target_read(p->t, f->code, code, (size_t)L->code_size))
		goto out;
	if (r->type_code && code_u64(code, L->ob_type) != r->type_code)
		goto out;
	int32_t nlocals = code_i32(code, L->code_nlocals);
	/* Each count is bounded before they are added: garbage must not overflow the sum. */
	int32_t nposargs = code_i32(code, L->code_argcount), nkwargs = code_i32(code, L->code_kwonlyargcount);
	if (nlocals < 0 || nlocals > MAX_LOCALS || nposargs < 0 || nposargs > MAX_LOCALS || nkwargs < 0 ||
	    nkwargs > MAX_LOCALS) /* garbage */
		goto out;
	int32_t nargs = nposargs + nkwargs;
	if (pyobj_read_items(r, code_u64(code, L->code_varnames), MAX_LOCALS, &names, &nnames) ||
	    nnames < (size_t)nlocals)
		goto out;
	if (L->code_localspluskinds >= 0 &&
	    (pyobj_read_bytes(r, code_u64(code, L->code_localspluskinds), MAX_LOCALS, &kinds, &nkinds) ||
	     nkinds < (size_t)nlocals))
		goto out;
	int base = L->frame_model == PYFRAME_OBJECT ? L->frame_localsplus : L->iframe_localsplus;
	if (base < 0 || !f->addr)
		goto out;
	if (nlocals) {
		slots = xmalloc((size_t)nlocals * 8);
		if (target_read(p->t, f->addr + (uint64_t)base, slots, (size_t)nlocals * 8))
			goto out;
	}
	for (int32_t i = 0; i < nlocals; i++) {
		uint8_t kind = kinds ? kinds[i] : CO_FAST_LOCAL;
		if (!(kind & CO_FAST_LOCAL) || (kind & CO_FAST_HIDDEN))
			continue;   /* cells and free variables of the closure, hidden temporaries */
		uint64_t v = slots[i];
		char *repr = NULL;
		if (L->frame_model == PYFRAME_314) {
			/* 3.14 slots are _PyStackRef: 1 is NULL, low bits 11 a tagged int, else bit 0
			 * marks a deferred (immortal) reference. */
			if (v == 1)
				v = 0;
			else if ((v & 3) == 3) {
				struct strbuf sb;
				sb_init(&sb);
				sb_addf(&sb, "%lld", (long long)((int64_t)v >> 2));
				repr = sb_detach(&sb);
			} else
				v &= ~(uint64_t)3;
		}
		if (!v && !repr)
			continue;   /* not yet assigned, or deleted */
		if (!repr && (kind & CO_FAST_CELL) && !(v = deref_cell(p, v)))
			continue;   /* empty cell */
		sb_reset(&p->scratch);
		if (pyobj_read_str(r, names[i], &p->scratch)) {
			free(repr);
			goto out;
		}
		struct py_local l = {
			.name = intern_n(p->strs, p->scratch.buf ? p->scratch.buf : "", p->scratch.len),
			.repr = repr ? repr : repr_of(p, v, repr_budget),
			.is_arg = i < nargs,
			.addr = repr ? 0 : v,
		};
		vec_push(&res, l);
	}
	rc = 0;
out:
	free(code);
	free(names);
	free(kinds);
	free(slots);
	if (rc) {
		py_locals_free(res.v, res.n);
		return err_set(e, target_alive(p->t) ? rc : E_NOPROC, "Failed to read the locals of %s",
			       f->name ? f->name : "a frame");
	}
	*out = res.v;
	*n = res.n;
	return 0;
}

void py_locals_free(struct py_local *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].repr);
	free(l);
}
