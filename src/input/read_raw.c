/*
 * read_raw.c - the reader of collapsed stacks (raw format, flamegraph.pl's input): each line is
 * labels joined by ';', root first, a space, and a count. A label "name (file:line)" or
 * "name (file)" gives a frame; anything else is a name alone. Identical lines add up.
 */
#include <stdlib.h>
#include <string.h>

#include "input.h"

/* Split "name (file:line)" into its parts (in place; label is a private copy). */
static struct frame raw_frame(struct profile *p, char *label)
{
	size_t n = strlen(label);
	char *open = NULL;
	/* Thread pseudo-frames ("thread (1234)", "thread (0x7F..): name") are names alone. */
	if (n >= 4 && label[n - 1] == ')' && strncmp(label, "thread (", 8) != 0) {
		/* Names and paths may hold parentheses: the file part is the first " (" whose
		 * inside, up to the final ')', has balanced parentheses. */
		for (char *s = label + 1; !open && s < label + n - 1; s++) {
			if (s[0] != '(' || s[-1] != ' ')
				continue;
			int depth = 0;
			char *q = s + 1;
			for (; q < label + n - 1 && depth >= 0; q++)
				depth += *q == '(' ? 1 : *q == ')' ? -1 : 0;
			if (depth == 0)
				open = s;
		}
	}
	if (!open)
		return input_frame(p, label, "", 0, NULL, 0);
	open[-1] = '\0';
	char *file = open + 1;
	label[n - 1] = '\0';
	int line = 0;
	char *colon = strrchr(file, ':');
	if (colon && colon[1]) {
		char *end;
		long v = strtol(colon + 1, &end, 10);
		if (*end == '\0' && v > 0 && v < 0x7fffffff && colon[1] >= '0' && colon[1] <= '9') {
			line = (int)v;
			*colon = '\0';
		}
	}
	return input_frame(p, label, file, line, NULL, 0);
}

int input_read_raw(struct profile *p, const char *data, size_t len, double time_offset, struct input_info *info,
		   struct err *e)
{
	uint32_t thread = profile_thread_id(p, 0, 0, 0, NULL);
	VEC(uint32_t) ids = { 0 };
	struct strbuf line;
	sb_init(&line);
	size_t pos = 0, lineno = 0;
	int rc = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		lineno++;
		sb_reset(&line);
		sb_add(&line, data + pos, end - pos);
		sb_addc(&line, '\0');
		pos = end + 1;
		char *s = line.buf;
		size_t n = strlen(s);   /* a NUL byte inside ends the line early, harmlessly */
		while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			s[--n] = '\0';
		if (!n)
			continue;
		char *sp = strrchr(s, ' ');
		char *end_num;
		unsigned long long count = sp ? strtoull(sp + 1, &end_num, 10) : 0;
		if (!sp || sp == s || !sp[1] || *end_num || sp[1] < '0' || sp[1] > '9') {
			rc = err_set(e, E_ARG, "line %zu is not 'frame;frame;... count'", lineno);
			break;
		}
		*sp = '\0';
		ids.n = 0;
		for (char *label = s, *next; label; label = next) {
			next = strchr(label, ';');
			if (next)
				*next++ = '\0';
			struct frame f = raw_frame(p, label);
			vec_push(&ids, profile_frame_id(p, &f));
		}
		if (!count)
			continue;
		uint32_t stack = profile_stack_id(p, thread, ids.v, ids.n);
		profile_add_stack_count(p, stack, count, time_offset);
		info->samples += count;
	}
	vec_free(&ids);
	sb_free(&line);
	return rc;
}
