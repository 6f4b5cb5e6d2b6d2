/*
 * json.c - the bounded JSON parser behind json.h: recursive descent with a depth limit, strict
 * RFC 8259 grammar (no comments, no trailing commas), \u escapes decoded to UTF-8 with lone
 * surrogates and NUL replaced by '?', so every decoded string is a valid C string.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct json_parser {
	struct json_doc *d;
	const char *s;
	size_t len, pos;
	struct err *e;
};

static int jp_fail(struct json_parser *p, const char *what)
{
	return err_set(p->e, E_ARG, "invalid JSON at byte %zu: %s", p->pos, what);
}

static void jp_space(struct json_parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static uint32_t jp_new(struct json_parser *p, enum json_type t)
{
	struct json_node n = { .type = t, .key = JSON_NONE, .next = JSON_NONE, .child = JSON_NONE,
			       .str = JSON_NONE };
	vec_push(&p->d->nodes, n);
	return (uint32_t)(p->d->nodes.n - 1);
}

static bool jp_literal(struct json_parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static int jp_hex4(struct json_parser *p, unsigned *out)
{
	if (p->len - p->pos < 4)
		return jp_fail(p, "short \\u escape");
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p->s[p->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
		else return jp_fail(p, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static void jp_utf8(struct strbuf *sb, unsigned cp)
{
	char b[4];
	if (cp == 0) {
		sb_addc(sb, '?');
	} else if (cp < 0x80) {
		sb_addc(sb, (char)cp);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 3);
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		sb_add(sb, b, 4);
	}
}

/* Decode the string at pos (on its opening quote) into strs; *off gets its offset. */
static int jp_string(struct json_parser *p, uint32_t *off)
{
	struct strbuf *sb = &p->d->strs;
	if (sb->len >= UINT32_MAX - 16)
		return jp_fail(p, "document too large");
	*off = (uint32_t)sb->len;
	p->pos++;   /* the quote */
	for (;;) {
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated string");
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return jp_fail(p, "control character in string");
		if (c != '\\') {
			/* Copy a run of plain bytes at once; a NUL byte becomes '?'. */
			size_t start = p->pos;
			while (p->pos < p->len && p->s[p->pos] != '"' && p->s[p->pos] != '\\' &&
			       (unsigned char)p->s[p->pos] >= 0x20)
				p->pos++;
			sb_add(sb, p->s + start, p->pos - start);
			continue;
		}
		if (++p->pos >= p->len)
			return jp_fail(p, "unterminated escape");
		char esc = p->s[p->pos++];
		unsigned cp;
		switch (esc) {
		case '"': sb_addc(sb, '"'); break;
		case '\\': sb_addc(sb, '\\'); break;
		case '/': sb_addc(sb, '/'); break;
		case 'b': sb_addc(sb, '\b'); break;
		case 'f': sb_addc(sb, '\f'); break;
		case 'n': sb_addc(sb, '\n'); break;
		case 'r': sb_addc(sb, '\r'); break;
		case 't': sb_addc(sb, '\t'); break;
		case 'u':
			if (jp_hex4(p, &cp))
				return E_ARG;
			if (cp >= 0xd800 && cp <= 0xdbff && p->len - p->pos >= 6 && p->s[p->pos] == '\\' &&
			    p->s[p->pos + 1] == 'u') {
				size_t save = p->pos;
				unsigned lo;
				p->pos += 2;
				if (jp_hex4(p, &lo))
					return E_ARG;
				if (lo >= 0xdc00 && lo <= 0xdfff)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					p->pos = save;   /* a lone high surrogate; the next escape stands alone */
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = '?';
			jp_utf8(sb, cp);
			break;
		default:
			return jp_fail(p, "bad escape");
		}
	}
	sb_addc(sb, '\0');
	return 0;
}

static int jp_number(struct json_parser *p, double *out)
{
	size_t start = p->pos;
	const char *s = p->s;
	if (p->pos < p->len && s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len)
		return jp_fail(p, "bad number");
	if (s[p->pos] == '0') {
		p->pos++;
	} else if (s[p->pos] >= '1' && s[p->pos] <= '9') {
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	} else {
		return jp_fail(p, "bad number");
	}
	if (p->pos < p->len && s[p->pos] == '.') {
		p->pos++;
		size_t d = p->pos;
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
		if (p->pos == d)
			return jp_fail(p, "bad fraction");
	}
	if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		size_t d = p->pos;
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
		if (p->pos == d)
			return jp_fail(p, "bad exponent");
	}
	/* strtod needs a terminated copy; the grammar above bounded it. */
	char buf[64];
	size_t n = p->pos - start;
	char *copy = n < sizeof buf ? buf : xmalloc(n + 1);
	memcpy(copy, s + start, n);
	copy[n] = '\0';
	*out = strtod(copy, NULL);
	if (copy != buf)
		free(copy);
	return 0;
}

static int jp_value(struct json_parser *p, uint32_t *out, int depth);

/* An array or object, pos on its opening bracket. */
static int jp_container(struct json_parser *p, uint32_t *out, int depth, bool object)
{
	if (depth >= JSON_MAX_DEPTH)
		return jp_fail(p, "nested too deeply");
	uint32_t self = jp_new(p, object ? JSON_OBJECT : JSON_ARRAY), last = JSON_NONE, count = 0;
	*out = self;
	char close = object ? '}' : ']';
	p->pos++;
	jp_space(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		uint32_t key = JSON_NONE, child;
		jp_space(p);
		if (object) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return jp_fail(p, "expected a member name");
			if (jp_string(p, &key))
				return E_ARG;
			jp_space(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return jp_fail(p, "expected ':'");
			p->pos++;
		}
		if (jp_value(p, &child, depth + 1))
			return E_ARG;
		p->d->nodes.v[child].key = key;
		if (last == JSON_NONE)
			p->d->nodes.v[self].child = child;
		else
			p->d->nodes.v[last].next = child;
		last = child;
		if (count == UINT32_MAX)
			return jp_fail(p, "too many elements");
		count++;
		jp_space(p);
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated container");
		char c = p->s[p->pos++];
		if (c == close)
			break;
		if (c != ',')
			return jp_fail(p, "expected ',' or a closing bracket");
	}
	p->d->nodes.v[self].count = count;
	return 0;
}

static int jp_value(struct json_parser *p, uint32_t *out, int depth)
{
	jp_space(p);
	if (p->pos >= p->len)
		return jp_fail(p, "unexpected end");
	if (p->d->nodes.n >= UINT32_MAX - 1)
		return jp_fail(p, "document too large");
	char c = p->s[p->pos];
	if (c == '{' || c == '[')
		return jp_container(p, out, depth, c == '{');
	if (c == '"') {
		uint32_t off;
		if (jp_string(p, &off))
			return E_ARG;
		*out = jp_new(p, JSON_STRING);
		p->d->nodes.v[*out].str = off;
		return 0;
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		double v = 0;
		if (jp_number(p, &v))
			return E_ARG;
		*out = jp_new(p, JSON_NUMBER);
		p->d->nodes.v[*out].num = v;
		return 0;
	}
	if (jp_literal(p, "true")) {
		*out = jp_new(p, JSON_TRUE);
		return 0;
	}
	if (jp_literal(p, "false")) {
		*out = jp_new(p, JSON_FALSE);
		return 0;
	}
	if (jp_literal(p, "null")) {
		*out = jp_new(p, JSON_NULL);
		return 0;
	}
	return jp_fail(p, "unexpected character");
}

int json_parse(struct json_doc *d, const char *text, size_t len, struct err *e)
{
	memset(d, 0, sizeof(*d));
	sb_init(&d->strs);
	struct json_parser p = { .d = d, .s = text, .len = len, .e = e };
	/* A UTF-8 byte order mark is tolerated. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		p.pos = 3;
	uint32_t root;
	int rc = jp_value(&p, &root, 0);
	if (!rc) {
		jp_space(&p);
		if (p.pos != p.len)
			rc = jp_fail(&p, "trailing data after the document");
	}
	if (rc) {
		json_free(d);
		return rc;
	}
	return 0;
}

void json_free(struct json_doc *d)
{
	vec_free(&d->nodes);
	sb_free(&d->strs);
}

const struct json_node *json_node(const struct json_doc *d, uint32_t i)
{
	return i < d->nodes.n ? &d->nodes.v[i] : NULL;
}

enum json_type json_type_of(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n ? n->type : JSON_NULL;
}

const char *json_key(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n && n->key != JSON_NONE ? d->strs.buf + n->key : NULL;
}

uint32_t json_first(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n && (n->type == JSON_ARRAY || n->type == JSON_OBJECT) ? n->child : JSON_NONE;
}

uint32_t json_next(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n ? n->next : JSON_NONE;
}

uint32_t json_count(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n && (n->type == JSON_ARRAY || n->type == JSON_OBJECT) ? n->count : 0;
}

uint32_t json_get(const struct json_doc *d, uint32_t obj, const char *key)
{
	if (json_type_of(d, obj) != JSON_OBJECT)
		return JSON_NONE;
	/* The last of repeated keys wins, as in most readers. */
	uint32_t hit = JSON_NONE;
	for (uint32_t c = json_first(d, obj); c != JSON_NONE; c = json_next(d, c))
		if (strcmp(json_key(d, c), key) == 0)
			hit = c;
	return hit;
}

const char *json_str(const struct json_doc *d, uint32_t i)
{
	const struct json_node *n = json_node(d, i);
	return n && n->type == JSON_STRING ? d->strs.buf + n->str : NULL;
}

double json_num(const struct json_doc *d, uint32_t i, double def)
{
	const struct json_node *n = json_node(d, i);
	return n && n->type == JSON_NUMBER ? n->num : def;
}
