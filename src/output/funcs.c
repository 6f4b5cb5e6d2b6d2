/*
 * funcs.c - grouping frames into functions for the per-function formats (see funcs.h). Names
 * and files are re-interned here after cleaning (valid UTF-8, no line breaks), so equal text is
 * an equal pointer whatever interner the profile's strings came from.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "funcs.h"

#define FN_NONE UINT32_MAX

static const char *fn_clean(struct out_funcs *fs, const char *s)
{
	struct strbuf sb;
	sb_init(&sb);
	out_add_utf8(&sb, s ? s : "");
	for (size_t i = 0; i < sb.len; i++)
		if (sb.buf[i] == '\n' || sb.buf[i] == '\r')
			sb.buf[i] = ' ';
	const char *r = intern(fs->strs, sb.buf ? sb.buf : "");
	sb_free(&sb);
	return r;
}

static uint32_t fn_find(struct out_funcs *fs, const struct out_func *k)
{
	uint64_t parts[2] = { (uint64_t)(uintptr_t)k->name, (uint64_t)(uintptr_t)k->file };
	uint64_t h = hash_bytes(parts, sizeof parts, 0x66756e63ULL), first;
	bool known = hmap_get(&fs->index, h, &first);
	if (known)
		for (uint32_t id = (uint32_t)first; id != FN_NONE; id = fs->list.v[id].chain)
			if (fs->list.v[id].name == k->name && fs->list.v[id].file == k->file)
				return id;
	struct out_func f = *k;
	f.chain = known ? (uint32_t)first : FN_NONE;
	uint32_t id = (uint32_t)fs->list.n;
	vec_push(&fs->list, f);
	hmap_put(&fs->index, h, id);
	return id;
}

void out_funcs_build(struct out_funcs *fs, const struct profile *p, const struct output_opts *o)
{
	memset(fs, 0, sizeof(*fs));
	fs->strs = interner_new();
	hmap_init(&fs->index);
	fs->of_frame = xcalloc(p->frames.n ? p->frames.n : 1, sizeof(*fs->of_frame));
	for (size_t i = 0; i < p->frames.n; i++) {
		const struct frame *f = &p->frames.v[i];
		struct out_func k = { .kind = f->kind };
		k.name = fn_clean(fs, f->name && *f->name ? f->name : "?");
		const char *file = f->file && *f->file ? f->file : NULL;
		if (f->kind == FRAME_NATIVE && f->module && *f->module)
			k.object = fn_clean(fs, f->module);
		if (!file && k.object)
			file = f->module;
		k.file = fn_clean(fs, file ? file : "");
		k.line = o->lineno && f->line > 0 ? f->line : 0;
		uint32_t id = fn_find(fs, &k);
		struct out_func *g = &fs->list.v[id];
		if (k.line > 0 && (g->line == 0 || k.line < g->line))
			g->line = k.line;
		if (!g->object && k.object)
			g->object = k.object;
		fs->of_frame[i] = id;
	}
}

void out_funcs_free(struct out_funcs *fs)
{
	if (fs->strs)
		interner_free(fs->strs);
	vec_free(&fs->list);
	free(fs->of_frame);
	hmap_free(&fs->index);
	memset(fs, 0, sizeof(*fs));
}
