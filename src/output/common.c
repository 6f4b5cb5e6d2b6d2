/*
 * common.c - what the writers share: labels under the output options, text sanitising (UTF-8,
 * JSON, XML), the thread id rule, and the label trie behind the raw and flamegraph formats.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

void out_frame_label(struct strbuf *sb, const struct frame *f, const struct output_opts *o)
{
	bool full = o && o->full_filenames;
	bool lineno = !o || o->lineno;
	if (lineno) {
		frame_label(sb, f, !full);
	} else {
		struct frame g = *f;
		g.line = 0;
		frame_label(sb, &g, !full);
	}
}

/* Length of the valid UTF-8 sequence at p, or 0 when the bytes there are not one. */
static size_t out_utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned min;
	unsigned cp;
	if ((c & 0xe0) == 0xc0) { n = 2; min = 0x80; cp = c & 0x1f; }
	else if ((c & 0xf0) == 0xe0) { n = 3; min = 0x800; cp = c & 0x0f; }
	else if ((c & 0xf8) == 0xf0) { n = 4; min = 0x10000; cp = c & 0x07; }
	else return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)   /* also stops at the NUL terminator */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* U+FFFE and U+FFFF are not allowed in XML. */
	if (cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

void out_add_utf8(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	while (*p) {
		size_t n = out_utf8_len(p);
		if (n == 0) {
			sb_addc(sb, '?');
			p++;
		} else {
			sb_add(sb, p, n);
			p += n;
		}
	}
	if (!sb->buf)
		sb_add(sb, "", 0);
}

void out_add_json(struct strbuf *sb, const char *s)
{
	struct strbuf clean;
	sb_init(&clean);
	out_add_utf8(&clean, s);
	sb_add_json(sb, clean.buf ? clean.buf : "");
	sb_free(&clean);
}

void out_add_xml(struct strbuf *sb, const char *s)
{
	struct strbuf clean;
	sb_init(&clean);
	out_add_utf8(&clean, s);
	sb_add_xml(sb, clean.buf ? clean.buf : "");
	sb_free(&clean);
}

void out_thread_tid(struct strbuf *sb, const struct profile_thread *t)
{
	if (t->os_tid)
		sb_addf(sb, "%d", t->os_tid);
	else
		sb_addf(sb, "0x%llX", (unsigned long long)t->thread_id);
}

/* ---- the label trie -------------------------------------------------------------------------- */

/* Collapsed stacks have no escaping: ';' separates frames and a newline ends the line. */
static void out_sanitise_label(char *s)
{
	for (; *s; s++) {
		if (*s == ';')
			*s = ':';
		else if (*s == '\n' || *s == '\r')
			*s = ' ';
	}
}

static uint64_t out_tree_key(uint32_t parent, const char *label)
{
	uint64_t parts[2] = { parent, (uint64_t)(uintptr_t)label };
	return hash_bytes(parts, sizeof(parts), 0x74726965ULL);
}

static uint32_t out_tree_child(struct out_tree *t, uint32_t parent, const char *label, enum frame_kind kind)
{
	uint64_t key = out_tree_key(parent, label), first;
	bool known = hmap_get(&t->index, key, &first);
	if (known) {
		for (uint32_t id = (uint32_t)first; id != OUT_NONE; id = t->nodes.v[id].chain)
			if (t->nodes.v[id].parent == parent && t->nodes.v[id].label == label)
				return id;
	}
	uint32_t id = (uint32_t)t->nodes.n;
	struct out_node n = {
		.parent = parent, .depth = t->nodes.v[parent].depth + 1, .label = label, .kind = kind,
		.first_child = OUT_NONE, .next_sibling = OUT_NONE,
		.chain = known ? (uint32_t)first : OUT_NONE,
	};
	vec_push(&t->nodes, n);
	hmap_put(&t->index, key, id);
	if (n.depth > t->max_depth)
		t->max_depth = n.depth;
	return id;
}

static int out_node_cmp(const void *a, const void *b, void *arg)
{
	const struct out_tree *t = arg;
	const struct out_node *x = &t->nodes.v[*(const uint32_t *)a];
	const struct out_node *y = &t->nodes.v[*(const uint32_t *)b];
	return strcmp(x->label, y->label);
}

/* Link every node under its parent, siblings sorted by label. */
static void out_tree_link(struct out_tree *t)
{
	size_t n = t->nodes.n;
	if (n <= 1)
		return;
	uint32_t *order = xmalloc((n - 1) * sizeof(*order));
	for (size_t i = 1; i < n; i++)
		order[i - 1] = (uint32_t)i;
	qsort_r(order, n - 1, sizeof(*order), out_node_cmp, t);
	/* Walk backwards so each parent's list ends up in ascending order. */
	for (size_t i = n - 1; i-- > 0;) {
		struct out_node *c = &t->nodes.v[order[i]];
		struct out_node *par = &t->nodes.v[c->parent];
		c->next_sibling = par->first_child;
		par->first_child = order[i];
	}
	free(order);
}

void out_tree_build(struct out_tree *t, const struct profile *p, const struct output_opts *o)
{
	memset(t, 0, sizeof(*t));
	t->labels = interner_new();
	hmap_init(&t->index);
	struct out_node root = {
		.parent = OUT_NONE, .label = intern(t->labels, "all"), .kind = FRAME_PSEUDO,
		.first_child = OUT_NONE, .next_sibling = OUT_NONE, .chain = OUT_NONE,
	};
	vec_push(&t->nodes, root);

	/* One label per frame id, computed once. */
	const char **label = xcalloc(p->frames.n ? p->frames.n : 1, sizeof(*label));
	struct strbuf sb;
	sb_init(&sb);
	for (size_t i = 0; i < p->frames.n; i++) {
		sb_reset(&sb);
		out_frame_label(&sb, &p->frames.v[i], o);
		sb_addc(&sb, '\0');   /* so buf exists even for an empty label */
		out_sanitise_label(sb.buf);
		label[i] = intern(t->labels, sb.buf);
	}
	sb_free(&sb);

	for (size_t s = 0; s < p->stacks.n; s++) {
		const struct profile_stack *st = &p->stacks.v[s];
		if (!st->count)
			continue;
		uint32_t node = 0;
		t->nodes.v[0].total += st->count;
		for (uint32_t i = 0; i < st->nframes; i++) {
			uint32_t fid = st->frames[i];
			if (fid >= p->frames.n)
				continue;
			node = out_tree_child(t, node, label[fid], p->frames.v[fid].kind);
			t->nodes.v[node].total += st->count;
		}
		t->nodes.v[node].self += st->count;
	}
	free(label);
	out_tree_link(t);
}

void out_tree_free(struct out_tree *t)
{
	if (t->labels)
		interner_free(t->labels);
	vec_free(&t->nodes);
	hmap_free(&t->index);
	memset(t, 0, sizeof(*t));
}
