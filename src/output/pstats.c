/*
 * pstats.c - the profile format of Python's pstats module (what cProfile's dump_stats writes):
 * the marshal serialisation of a dict
 *
 *     (file, line, funcname) -> (cc, nc, tt, ct, callers)
 *     callers: (file, line, funcname) of a caller -> (nc, cc, tt, ct) of the calls from it
 *
 * written directly from C for Python 3 readers (`python -m pstats`, pstats.Stats, snakeviz).
 *
 * A sampler sees no calls, so the numbers are samples: a function's tt (own time) is the samples
 * with it at the leaf over the rate, its ct (cumulative) the samples with it anywhere on the
 * stack (once per sample however deep it recurses), and its call counts cc = nc are those same
 * samples. A caller entry holds the samples where that caller called the function directly: ct
 * with the function anywhere below the caller, tt with it at the leaf. Functions are grouped by
 * (file, name) (funcs.h) and keyed by their smallest line seen, which is the def line under
 * --function; frames without a file get cProfile's built-in key ('~', 0, name).
 *
 * Marshal, as used here: '{' dict (key, value pairs, then '0'), '(' tuple (int32 length), 'u'
 * str (int32 length, UTF-8), 'i' int32, 'l' long (int32 digit count, 15-bit digits), 'g' binary
 * float (8 bytes). All integers little-endian.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "funcs.h"

#define PS_FLUSH (64 * 1024)
#define PS_NONE UINT32_MAX

struct ps_writer {
	FILE *out;
	struct strbuf sb;
	bool failed;
};

static void ps_flush(struct ps_writer *w, bool force)
{
	if (!w->sb.len || (!force && w->sb.len < PS_FLUSH))
		return;
	if (fwrite(w->sb.buf, 1, w->sb.len, w->out) != w->sb.len)
		w->failed = true;
	sb_reset(&w->sb);
}

static void ms_u32(struct strbuf *sb, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24) };
	sb_add(sb, b, 4);
}

static void ms_int(struct strbuf *sb, uint64_t v)
{
	if (v <= INT32_MAX) {
		sb_addc(sb, 'i');
		ms_u32(sb, (uint32_t)v);
		return;
	}
	/* Python's long: a count of 15-bit digits, least significant first. */
	uint16_t digits[5];
	uint32_t n = 0;
	for (; v; v >>= 15)
		digits[n++] = (uint16_t)(v & 0x7fff);
	sb_addc(sb, 'l');
	ms_u32(sb, n);
	for (uint32_t i = 0; i < n; i++) {
		unsigned char b[2] = { (unsigned char)digits[i], (unsigned char)(digits[i] >> 8) };
		sb_add(sb, b, 2);
	}
}

static void ms_float(struct strbuf *sb, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(bits >> (8 * i));
	sb_addc(sb, 'g');
	sb_add(sb, b, 8);
}

/* s is valid UTF-8 already (funcs.c cleaned it). */
static void ms_str(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	sb_addc(sb, 'u');
	ms_u32(sb, (uint32_t)n);
	sb_add(sb, s, n);
}

static void ms_tuple(struct strbuf *sb, uint32_t n)
{
	sb_addc(sb, '(');
	ms_u32(sb, n);
}

static void ps_key(struct strbuf *sb, const struct out_func *f)
{
	ms_tuple(sb, 3);
	if (*f->file) {
		ms_str(sb, f->file);
		ms_int(sb, (uint64_t)(f->line > 0 ? f->line : 0));
	} else {
		ms_str(sb, "~");
		ms_int(sb, 0);
	}
	ms_str(sb, f->name);
}

struct ps_fn {
	uint64_t own, cum;
	uint32_t stamp;        /* last stack counted in cum, plus one */
	uint32_t first_edge;   /* edges into this function (its callers) */
};

struct ps_edge {
	uint32_t caller, callee;
	uint64_t n, own;
	uint32_t stamp;
	uint32_t next;         /* next edge into the same callee */
};

int write_pstats(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct out_funcs fs;
	out_funcs_build(&fs, p, o);
	struct ps_fn *fn = xcalloc(fs.list.n ? fs.list.n : 1, sizeof(*fn));
	for (size_t i = 0; i < fs.list.n; i++)
		fn[i].first_edge = PS_NONE;
	VEC(struct ps_edge) edges = { 0 };
	struct hmap edge_index;
	hmap_init(&edge_index);

	for (size_t s = 0; s < p->stacks.n; s++) {
		const struct profile_stack *st = &p->stacks.v[s];
		if (!st->count || !st->nframes)
			continue;
		uint32_t stamp = (uint32_t)s + 1, prev = PS_NONE, f = PS_NONE;
		for (uint32_t i = 0; i < st->nframes; i++) {
			if (st->frames[i] >= p->frames.n)
				continue;
			f = fs.of_frame[st->frames[i]];
			if (fn[f].stamp != stamp) {
				fn[f].stamp = stamp;
				fn[f].cum += st->count;
			}
			if (prev != PS_NONE) {
				uint64_t key = ((uint64_t)prev << 32) | f, ei;
				if (!hmap_get(&edge_index, key, &ei)) {
					struct ps_edge ed = { .caller = prev, .callee = f, .next = fn[f].first_edge };
					ei = edges.n;
					vec_push(&edges, ed);
					fn[f].first_edge = (uint32_t)ei;
					hmap_put(&edge_index, key, ei);
				}
				struct ps_edge *ed = &edges.v[ei];
				if (ed->stamp != stamp) {
					ed->stamp = stamp;
					ed->n += st->count;
				}
				if (i == st->nframes - 1)
					ed->own += st->count;
			}
			prev = f;
		}
		if (f != PS_NONE)
			fn[f].own += st->count;
	}

	double period = 1.0 / (p->rate > 0 ? p->rate : 100);
	struct ps_writer w = { .out = out };
	sb_init(&w.sb);
	sb_addc(&w.sb, '{');
	for (size_t i = 0; i < fs.list.n; i++) {
		if (!fn[i].cum)
			continue;
		ps_key(&w.sb, &fs.list.v[i]);
		ms_tuple(&w.sb, 5);
		ms_int(&w.sb, fn[i].cum);
		ms_int(&w.sb, fn[i].cum);
		ms_float(&w.sb, (double)fn[i].own * period);
		ms_float(&w.sb, (double)fn[i].cum * period);
		sb_addc(&w.sb, '{');
		for (uint32_t ei = fn[i].first_edge; ei != PS_NONE; ei = edges.v[ei].next) {
			const struct ps_edge *ed = &edges.v[ei];
			ps_key(&w.sb, &fs.list.v[ed->caller]);
			ms_tuple(&w.sb, 4);
			ms_int(&w.sb, ed->n);
			ms_int(&w.sb, ed->n);
			ms_float(&w.sb, (double)ed->own * period);
			ms_float(&w.sb, (double)ed->n * period);
			ps_flush(&w, false);
		}
		sb_addc(&w.sb, '0');
		ps_flush(&w, false);
	}
	sb_addc(&w.sb, '0');
	ps_flush(&w, true);

	sb_free(&w.sb);
	hmap_free(&edge_index);
	vec_free(&edges);
	free(fn);
	out_funcs_free(&fs);
	if (w.failed)
		return err_set(e, E_IO, "writing pstats output failed");
	return 0;
}
