/*
 * raw.c - the collapsed ("folded") stack format of flamegraph.pl and py-spy's --format raw:
 * one line per distinct stack of labels, root first, joined by ';', then a space and the count.
 * Identical label stacks of different threads are merged, as py-spy merges them.
 */
#include <stdlib.h>

#include "common.h"

struct raw_todo {
	VEC(uint32_t) ids;
};

/* Push a node's children so that they pop in ascending label order. */
static void raw_push_children(struct raw_todo *todo, const struct out_tree *t, uint32_t node)
{
	size_t base = todo->ids.n;
	for (uint32_t c = t->nodes.v[node].first_child; c != OUT_NONE; c = t->nodes.v[c].next_sibling)
		vec_push(&todo->ids, c);
	for (size_t i = base, j = todo->ids.n; i + 1 < j; i++, j--) {
		uint32_t x = todo->ids.v[i];
		todo->ids.v[i] = todo->ids.v[j - 1];
		todo->ids.v[j - 1] = x;
	}
}

int write_raw(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct out_tree t;
	out_tree_build(&t, p, o);

	/* Depth-first over the sorted trie; path holds the labels from the root to the node and
	 * cut[d] is the path length just before the label at depth d. */
	struct strbuf path;
	sb_init(&path);
	size_t *cut = xcalloc(t.max_depth + 2, sizeof(*cut));
	struct raw_todo todo = { 0 };
	raw_push_children(&todo, &t, 0);

	int rc = 0;
	while (todo.ids.n) {
		const struct out_node *n = &t.nodes.v[todo.ids.v[--todo.ids.n]];
		path.len = cut[n->depth];
		if (path.buf)
			path.buf[path.len] = '\0';
		if (n->depth > 1)
			sb_addc(&path, ';');
		sb_adds(&path, n->label);
		cut[n->depth + 1] = path.len;
		if (n->self && fprintf(out, "%s %llu\n", path.buf, (unsigned long long)n->self) < 0) {
			rc = err_set(e, E_IO, "writing raw stacks failed");
			break;
		}
		raw_push_children(&todo, &t, (uint32_t)(n - t.nodes.v));
	}
	vec_free(&todo.ids);
	free(cut);
	sb_free(&path);
	out_tree_free(&t);
	return rc;
}
