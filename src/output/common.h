/*
 * common.h - helpers shared by the writers (internal to src/output/): frame labels as the
 * options ask for them, text made safe for each format, the py-spy thread id rule, and the
 * label trie that the collapsed-stack formats (raw, flamegraph) are built from.
 */
#ifndef MIXSPY_OUTPUT_COMMON_H
#define MIXSPY_OUTPUT_COMMON_H

#include "output.h"

/* frame_label() under the options: short or full file names, line numbers on or off. */
void out_frame_label(struct strbuf *sb, const struct frame *f, const struct output_opts *o);
/* Copy s, replacing each byte that is not part of valid UTF-8 with '?'. */
void out_add_utf8(struct strbuf *sb, const char *s);
/* JSON string body / XML text of s, made valid UTF-8 first. */
void out_add_json(struct strbuf *sb, const char *s);
void out_add_xml(struct strbuf *sb, const char *s);
/* py-spy's thread id: the OS tid in decimal when known, else 0x + uppercase hex of thread_id. */
void out_thread_tid(struct strbuf *sb, const struct profile_thread *t);

/* A trie of frame labels, merged across threads as the collapsed format merges them. Node 0 is
 * the root ("all"); every other node is one label under its parent. */
struct out_node {
	uint32_t parent;
	uint32_t depth;         /* root 0 */
	const char *label;      /* sanitised: no ';' or newline; owned by the tree's interner */
	enum frame_kind kind;   /* kind of the first frame seen with this label here */
	uint64_t total;         /* samples in this node and below */
	uint64_t self;          /* samples whose stack ends here */
	uint32_t first_child;   /* children, sorted by label after out_tree_build */
	uint32_t next_sibling;
	uint32_t chain;         /* next node with the same (parent, label) hash */
};

struct out_tree {
	struct interner *labels;
	VEC(struct out_node) nodes;
	struct hmap index;
	uint32_t max_depth;
};

#define OUT_NONE UINT32_MAX

void out_tree_build(struct out_tree *t, const struct profile *p, const struct output_opts *o);
void out_tree_free(struct out_tree *t);

#endif
