/*
 * cython.c - Cython frames made readable (see cython.h).
 *
 * Two jobs. Demangling: Cython names a function __pyx_<kind>_ followed by length-prefixed scope
 * components ("5mypkg_7fastmod_5Klass_") and, for Python-visible functions, a per-scope counter
 * before the name ("1method"). We turn that into "mypkg.fastmod.Klass.method". Line mapping: the
 * generated C file carries a block comment opening with "path.pyx":N before the C code of each
 * statement; the nearest such marker at or before a C line gives its .pyx line.
 *
 * The mangling is ambiguous: "5least_squares_cg" may be the counter 5 and the name
 * least_squares_cg, or a scope "least" and the name squares_cg. We resolve it this way:
 *   1. The module's own components are matched exactly when the module is known (from the .so
 *      name and the __init__.py files above it), so they are never taken for counters or names.
 *   2. The remaining scope components are read greedily.
 *   3. A wrapper (__pyx_pw_) or generator body (__pyx_gb_) always carries a counter of 1 or more;
 *      when the greedy reading left none, the last scopes are given back until one is there.
 *   4. A cdef function (__pyx_f_) never has a counter: its greedy reading stands.
 *   5. An implementation (__pyx_pf_) has no counter when it is the first def of its scope. When the
 *      greedy reading leaves it without one, and the module is known (so the scope is not one of
 *      its components), the last scope is kept only if it looks like a class
 *      (its first letter, after underscores, is upper case) or a dunder method follows; otherwise
 *      it is read as counter + snake_case name. So "5least_squares_cg" is least_squares_cg and
 *      "5Klass_method" is Klass.method, but the first nested def "5outer_inner" or the first
 *      method of a lower-case class reads wrongly (outer_inner) unless the C file is at hand.
 *   Names containing "_<digit>" after a scope-looking part are the only other source of errors.
 * When the generated C file is readable (next to the .so, or where DWARF says), an implementation
 * is named through its wrapper instead: the wrapper defined in the same file, whose counter is one
 * more, always has a counter and so reads without that ambiguity.
 * Generator bodies are named "<counter>generator[N]" after no Python name at all; when the C file
 * is readable we name them after the function that creates them.
 *
 * All files are opened through the root prefix (the target's /proc/PID/root), every length is
 * bounded, and all results are cached: per C file (misses included), per module, per symbol.
 */
#include "cython.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CY_MAX_SYM 1024            /* longer symbols are not treated as Cython names */
#define CY_MAX_PATH 4096
#define CY_MAX_SCAN 4096           /* bytes of each C line that we look at */
#define CY_MAX_FILE (1024L << 20)  /* generated C files larger than this are ignored */
#define CY_MAX_COMPS 64            /* scope components in one name */
#define CY_MAX_PKG_DEPTH 32        /* package directories above a module */
#define CY_MAX_OWNERS 65536        /* generator bodies recorded per C file */

enum cy_kind { CY_PW, CY_PF, CY_F, CY_GB, CY_EXEC };

/* One marker: from c_line on (until the next), C code belongs to pyx:pyx_line; pyx NULL marks
 * code that belongs to no .pyx line (runtime support code, "(tree fragment)" helpers). */
struct cy_marker {
	int c_line;
	int pyx_line;
	const char *pyx;
	const char *short_pyx;
};

/* A generator body symbol and the function whose code creates it. */
struct cy_owner {
	const char *gb;
	const char *owner;
};

struct cy_cfile {
	bool missing;
	int nlines;
	VEC(struct cy_marker) marks;
	VEC(struct cy_owner) owners;
	VEC(const char *) defs;  /* Cython functions defined in the file (interned) */
	struct hmap pf2pw;       /* interned __pyx_pf_ symbol -> interned wrapper __pyx_pw_ symbol */
};

struct cy_module {
	const char *dotted;    /* "mypkg.fastmod", NULL when the path gives no usable name */
	const char *dir;       /* directory of the .so */
	const char *pkg_root;  /* directory holding the top package (== dir without a package) */
	int ncomps;
	const char *comps[CY_MAX_PKG_DEPTH + 1];
};

struct cy_name {
	const char *sym;
	const char *module;
	const void *cfile;
	const char *name;
};

struct cy_maps {
	struct interner *strs;
	char *root;
	struct hmap cfiles;   /* interned C path -> struct cy_cfile * */
	struct hmap modules;  /* interned module path -> struct cy_module * */
	struct hmap names;    /* hash(sym, module) -> index + 1 in name_cache */
	VEC(struct cy_name) name_cache;
};

struct cy_maps *cy_new(struct interner *strs, const char *root)
{
	struct cy_maps *c = xcalloc(1, sizeof(*c));
	c->strs = strs;
	c->root = xstrdup(root ? root : "");
	/* A trailing slash would double up with the absolute paths appended to it. */
	size_t n = strlen(c->root);
	while (n > 0 && c->root[n - 1] == '/')
		c->root[--n] = '\0';
	hmap_init(&c->cfiles);
	hmap_init(&c->modules);
	hmap_init(&c->names);
	return c;
}

void cy_free(struct cy_maps *c)
{
	if (!c)
		return;
	uint64_t k, v;
	for (size_t i = 0; hmap_next(&c->cfiles, &i, &k, &v);) {
		struct cy_cfile *cf = (struct cy_cfile *)(uintptr_t)v;
		vec_free(&cf->marks);
		vec_free(&cf->owners);
		vec_free(&cf->defs);
		hmap_free(&cf->pf2pw);
		free(cf);
	}
	for (size_t i = 0; hmap_next(&c->modules, &i, &k, &v);)
		free((void *)(uintptr_t)v);
	hmap_free(&c->cfiles);
	hmap_free(&c->modules);
	hmap_free(&c->names);
	vec_free(&c->name_cache);
	free(c->root);
	free(c);
}

/* ---- files through the root prefix ----------------------------------------------------------- */

static bool cy_rooted(const struct cy_maps *c, const char *path, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%s%s%s", c->root, (c->root[0] && path[0] != '/') ? "/" : "", path);
	return n > 0 && (size_t)n < outsz;
}

static bool cy_exists(const struct cy_maps *c, const char *path)
{
	char full[CY_MAX_PATH + 256];
	struct stat st;
	return cy_rooted(c, path, full, sizeof(full)) && stat(full, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *cy_basename(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The directory part of path, interned ("." when there is none, "/" for the root). */
static const char *cy_dirname(struct cy_maps *c, const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return intern(c->strs, ".");
	if (s == path)
		return intern(c->strs, "/");
	return intern_n(c->strs, path, (size_t)(s - path));
}

static bool cy_has_init(struct cy_maps *c, const char *dir)
{
	char p[CY_MAX_PATH];
	int n = snprintf(p, sizeof(p), "%s/__init__.py", dir);
	return n > 0 && (size_t)n < sizeof(p) && cy_exists(c, p);
}

static bool cy_is_ident(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* ---- modules --------------------------------------------------------------------------------- */

/* What the .so path says: "/x/mypkg/fastmod.cpython-311-x86_64-linux-gnu.so" with an __init__.py
 * in /x/mypkg is module mypkg.fastmod, package root /x. */
static const struct cy_module *cy_module(struct cy_maps *c, const char *module_path)
{
	if (!module_path || !module_path[0] || strnlen(module_path, CY_MAX_PATH) >= CY_MAX_PATH)
		return NULL;
	const char *key = intern(c->strs, module_path);
	uint64_t v;
	if (hmap_get(&c->modules, (uint64_t)(uintptr_t)key, &v))
		return (const struct cy_module *)(uintptr_t)v;

	struct cy_module *m = xcalloc(1, sizeof(*m));
	const char *base = cy_basename(key);
	size_t nlen = strcspn(base, ".");
	m->dir = cy_dirname(c, key);
	m->pkg_root = m->dir;
	if (cy_is_ident(base, nlen)) {
		const char *rev[CY_MAX_PKG_DEPTH];
		int depth = 0;
		const char *dir = m->dir;
		while (depth < CY_MAX_PKG_DEPTH && dir[0] == '/' && dir[1] && cy_has_init(c, dir)) {
			const char *comp = cy_basename(dir);
			if (!cy_is_ident(comp, strlen(comp)))
				break;
			rev[depth++] = intern(c->strs, comp);
			dir = cy_dirname(c, dir);
		}
		m->pkg_root = dir;
		struct strbuf sb;
		sb_init(&sb);
		for (int i = depth - 1; i >= 0; i--) {
			m->comps[m->ncomps++] = rev[i];
			sb_adds(&sb, rev[i]);
			sb_addc(&sb, '.');
		}
		m->comps[m->ncomps++] = intern_n(c->strs, base, nlen);
		sb_add(&sb, base, nlen);
		m->dotted = intern(c->strs, sb.buf);
		sb_free(&sb);
	}
	hmap_put(&c->modules, (uint64_t)(uintptr_t)key, (uint64_t)(uintptr_t)m);
	return m;
}

/* ---- demangling ------------------------------------------------------------------------------ */

struct cy_sym {
	enum cy_kind kind;
	const char *rest;  /* after "__pyx_<kind>_" */
	size_t len;        /* up to a compiler suffix such as ".isra.0" */
};

static bool cy_skip(const char **s, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0)
		return false;
	*s += n;
	return true;
}

/* Recognise the prefix: [_](__pyx_fuse_N[_M...])__pyx_(pw|pf|f|gb)_ or __pyx_pymod_exec_. */
static bool cy_parse_sym(const char *sym, struct cy_sym *out)
{
	size_t n = strnlen(sym, CY_MAX_SYM);
	if (n >= CY_MAX_SYM)
		return false;
	n = strcspn(sym, ".");
	const char *s = sym, *end = sym + n;
	if (n > 7 && memcmp(s, "___pyx_", 7) == 0)
		s++;
	if (cy_skip(&s, end, "__pyx_fuse_")) {
		if (s == end || !isdigit((unsigned char)*s))
			return false;
		for (;;) {
			while (s < end && isdigit((unsigned char)*s))
				s++;
			if (end - s >= 2 && s[0] == '_' && isdigit((unsigned char)s[1]))
				s++;
			else
				break;
		}
	}
	if (!cy_skip(&s, end, "__pyx_"))
		return false;
	if (cy_skip(&s, end, "pw_"))
		out->kind = CY_PW;
	else if (cy_skip(&s, end, "pf_"))
		out->kind = CY_PF;
	else if (cy_skip(&s, end, "f_"))
		out->kind = CY_F;
	else if (cy_skip(&s, end, "gb_"))
		out->kind = CY_GB;
	else if (cy_skip(&s, end, "pymod_exec_"))
		out->kind = CY_EXEC;
	else
		return false;
	if (s == end)
		return false;
	out->rest = s;
	out->len = (size_t)(end - s);
	return true;
}

/* One scope component "<L><identifier of exactly L chars>_" at s; returns its length, or 0. */
static size_t cy_token(const char *s, size_t n, size_t *id_off, size_t *id_len)
{
	size_t i = 0, L = 0;
	while (i < n && isdigit((unsigned char)s[i]) && i < 6)
		L = L * 10 + (size_t)(s[i++] - '0');
	if (i == 0 || s[0] == '0' || L == 0 || L > n - i || n - i - L < 1 || s[i + L] != '_')
		return 0;
	if (!cy_is_ident(s + i, L))
		return 0;
	*id_off = i;
	*id_len = L;
	return i + L + 1;
}

/* Does the tail "<counter><name>" satisfy the kind: wrappers and generator bodies need a counter,
 * cdef functions have none, and everything needs a name. */
static bool cy_tail_ok(enum cy_kind kind, const char *s, size_t n)
{
	size_t d = 0;
	while (d < n && isdigit((unsigned char)s[d]))
		d++;
	if (d == n)
		return false;
	if (kind == CY_PW || kind == CY_GB)
		return d > 0;
	if (kind == CY_F)
		return d == 0;
	return true;
}

struct cy_comp {
	size_t start;  /* of the token (its length digits) */
	size_t off, len;
};

/* Build the dotted name of a parsed symbol into sb; false when it does not parse. */
static bool cy_dotted(const struct cy_sym *p, const struct cy_module *m, struct strbuf *sb)
{
	const char *s = p->rest;
	size_t n = p->len, pos = 0;
	bool mod_known = false;

	if (p->kind == CY_EXEC) {
		if (!cy_is_ident(s, n))
			return false;
		if (m && m->dotted && strlen(m->comps[m->ncomps - 1]) == n &&
		    memcmp(m->comps[m->ncomps - 1], s, n) == 0)
			sb_adds(sb, m->dotted);
		else
			sb_add(sb, s, n);
		sb_adds(sb, ".<module>");
		return true;
	}

	/* The module's own components, exactly; a module may also be known under a shorter name
	 * than its path suggests (built outside its package), so try the suffixes too. */
	if (m && m->dotted) {
		for (int first = 0; first < m->ncomps && !mod_known; first++) {
			size_t at = 0;
			bool ok = true;
			for (int i = first; i < m->ncomps && ok; i++) {
				char pfx[32];
				size_t cl = strlen(m->comps[i]);
				int pl = snprintf(pfx, sizeof(pfx), "%zu", cl);
				ok = pl > 0 && at + (size_t)pl + cl + 1 <= n &&
				     memcmp(s + at, pfx, (size_t)pl) == 0 &&
				     memcmp(s + at + pl, m->comps[i], cl) == 0 && s[at + pl + cl] == '_';
				at += (size_t)pl + cl + 1;
			}
			if (ok) {
				for (int i = first; i < m->ncomps; i++) {
					sb_adds(sb, m->comps[i]);
					sb_addc(sb, '.');
				}
				pos = at;
				mod_known = true;
			}
		}
	}

	size_t off, len, t;
	/* The package may be unknown (no __init__.py found) while the module's own name is: the
	 * module ends at the first component of that name. */
	if (m && m->dotted && !mod_known) {
		const char *last = m->comps[m->ncomps - 1];
		size_t at = 0, ll = strlen(last);
		for (int i = 0; i < CY_MAX_COMPS && (t = cy_token(s + at, n - at, &off, &len)) > 0; i++) {
			at += t;
			if (len == ll && memcmp(s + at - t + off, last, ll) == 0) {
				for (size_t q = 0; q < at;) {
					size_t qt = cy_token(s + q, n - q, &off, &len);
					sb_add(sb, s + q + off, len);
					sb_addc(sb, '.');
					q += qt;
				}
				pos = at;
				mod_known = true;
				break;
			}
		}
	}

	struct cy_comp comps[CY_MAX_COMPS];
	size_t nc = 0;
	while (nc < CY_MAX_COMPS && (t = cy_token(s + pos, n - pos, &off, &len)) > 0) {
		comps[nc++] = (struct cy_comp){ pos, pos + off, len };
		pos += t;
	}
	while (!cy_tail_ok(p->kind, s + pos, n - pos)) {
		if (nc == 0)
			return false;
		pos = comps[--nc].start;
	}
	/* An implementation without a counter right after a scope: the first def of a class
	 * (CamelCase, or a dunder method follows) or a counter and a snake_case name? */
	if (p->kind == CY_PF && mod_known && nc > 0 && !isdigit((unsigned char)s[pos]) && s[pos] != '_') {
		const char *id = s + comps[nc - 1].off, *idend = id + comps[nc - 1].len;
		while (id < idend && *id == '_')
			id++;
		if (id < idend && !isupper((unsigned char)*id))
			pos = comps[--nc].start;
	}
	for (size_t i = 0; i < nc; i++) {
		sb_add(sb, s + comps[i].off, comps[i].len);
		sb_addc(sb, '.');
	}
	while (pos < n && isdigit((unsigned char)s[pos]))
		pos++;
	sb_add(sb, s + pos, n - pos);
	return true;
}

static struct cy_cfile *cy_cfile(struct cy_maps *c, const char *c_file, const char *module_path);

/* The wrapper of implementation sym (no compiler suffix) when cf defines one, else NULL. */
static const char *cy_wrapper(struct cy_maps *c, struct cy_cfile *cf, const char *sym, size_t n)
{
	uint64_t v;
	if (!cf || cf->missing || cf->pf2pw.n == 0)
		return NULL;
	const char *key = intern_n(c->strs, sym, n);
	return hmap_get(&cf->pf2pw, (uint64_t)(uintptr_t)key, &v) ? (const char *)(uintptr_t)v : NULL;
}

/* The generated C file next to the module: /x/mypkg/fastmod.cpython-311-...so -> /x/mypkg/fastmod.c */
static struct cy_cfile *cy_module_cfile(struct cy_maps *c, const struct cy_module *m, const char *module_path)
{
	if (!m || !m->dotted)
		return NULL;
	static const char *const exts[] = { ".c", ".cpp" };
	char p[CY_MAX_PATH];
	for (int i = 0; i < 2; i++) {
		int n = snprintf(p, sizeof(p), "%s/%s%s", m->dir, m->comps[m->ncomps - 1], exts[i]);
		if (n <= 0 || (size_t)n >= sizeof(p))
			continue;
		struct cy_cfile *cf = cy_cfile(c, p, module_path);
		if (cf && !cf->missing)
			return cf;
	}
	return NULL;
}

/* Demangle, resolving an implementation through its wrapper in cf (or the module's C file). */
static const char *cy_demangle_in(struct cy_maps *c, const char *sym, const char *module_path,
				  struct cy_cfile *cf)
{
	struct cy_sym p;
	if (!sym || !cy_parse_sym(sym, &p))
		return NULL;
	const char *isym = intern(c->strs, sym);
	const char *imod = module_path ? intern(c->strs, module_path) : NULL;
	const void *ids[3] = { isym, imod, cf };
	uint64_t key = hash_bytes(ids, sizeof(ids), 0), v;
	if (hmap_get(&c->names, key, &v) && v > 0 && v <= c->name_cache.n) {
		const struct cy_name *e = &c->name_cache.v[v - 1];
		if (e->sym == isym && e->module == imod && e->cfile == cf)
			return e->name;
	}
	struct strbuf sb;
	sb_init(&sb);
	const char *name = NULL;
	const struct cy_module *m = cy_module(c, imod);
	if (p.kind == CY_PF) {
		size_t n = (size_t)(p.rest + p.len - sym);
		const char *pw = cy_wrapper(c, cf, sym, n);
		if (!pw)
			pw = cy_wrapper(c, cy_module_cfile(c, m, imod), sym, n);
		if (pw)
			cy_parse_sym(pw, &p);
	}
	if (cy_dotted(&p, m, &sb))
		name = intern(c->strs, sb.buf);
	sb_free(&sb);
	vec_push(&c->name_cache, ((struct cy_name){ isym, imod, cf, name }));
	hmap_put(&c->names, key, c->name_cache.n);
	return name;
}

const char *cy_demangle(struct cy_maps *c, const char *sym, const char *module_path)
{
	return cy_demangle_in(c, sym, module_path, NULL);
}

bool cy_is_wrapper_of(const char *outer_sym, const char *inner_sym)
{
	struct cy_sym o, i;
	if (!outer_sym || !inner_sym || !cy_parse_sym(outer_sym, &o) || !cy_parse_sym(inner_sym, &i) ||
	    o.kind != CY_PW || i.kind != CY_PF)
		return false;
	/* pw is "<scopes><N+1><name>" and pf "<scopes><N><name>" (N == 0 written as nothing). Try
	 * every place where the wrapper's counter could start. */
	for (size_t at = 0; at < o.len; at++) {
		if (!isdigit((unsigned char)o.rest[at]) || (at > 0 && o.rest[at - 1] != '_'))
			continue;
		size_t d = at;
		unsigned long cnt = 0;
		while (d < o.len && isdigit((unsigned char)o.rest[d]) && d - at < 9)
			cnt = cnt * 10 + (unsigned long)(o.rest[d++] - '0');
		if (d == o.len || isdigit((unsigned char)o.rest[d]) || cnt == 0)
			continue;
		char num[24] = "";
		if (cnt > 1)
			snprintf(num, sizeof(num), "%lu", cnt - 1);
		size_t nl = strlen(num), tail = o.len - d;
		if (i.len == at + nl + tail && memcmp(i.rest, o.rest, at) == 0 &&
		    memcmp(i.rest + at, num, nl) == 0 && memcmp(i.rest + at + nl, o.rest + d, tail) == 0)
			return true;
	}
	return false;
}

/* Call helpers from Cython's utility code: they only pass a call on. */
bool cy_is_forwarding(const char *sym)
{
	static const char *const prefixes[] = {
		"__Pyx_PyFunction_FastCall",   /* ...Dict, ...NoKw */
		"__Pyx_PyObject_Call",         /* Call, CallOneArg, CallNoArg, Call2Args, CallMethO, CallMethod0/1 */
		"__Pyx__PyObject_Call",
		"__Pyx_PyObject_FastCall",     /* Cython 3 */
		"__Pyx_PyObject_Vectorcall",
		"__Pyx_PyVectorcall_FastCallDict",
		"__Pyx_PyCFunction_FastCall",
		"__Pyx_PyObject_CallMethod",
		"__pyx_FusedFunction_call",    /* call, callfunction */
		"__Pyx_FusedFunction_call",
		"__Pyx_CyFunction_Call",       /* Call, CallAsMethod, CallMethod */
		"__Pyx_CyFunction_Vectorcall", /* Cython 3: _NOARGS, _O, _FASTCALL_KEYWORDS[_METHOD] */
		"__Pyx_CyFunction_CallMethod",
		"__Pyx_Coroutine_SendEx",      /* resumes a generator body */
		"__Pyx_Generator_Next",
		"__Pyx_Coroutine_Send",
	};
	if (!sym)
		return false;
	if (sym[0] == '_' && sym[1] == '_' && sym[2] == '_')
		sym++;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(sym, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* ---- marker maps ----------------------------------------------------------------------------- */

/* Where the .pyx a marker names lives: next to the C file (same name, other extension) when that
 * path ends with the marker's path; else relative to the module's directory or its package root;
 * else relative to the C file's directory; else as written. */
static const char *cy_resolve(struct cy_maps *c, const char *c_file, const char *ref,
			      const struct cy_module *m)
{
	char p[CY_MAX_PATH];
	size_t rl = strlen(ref);
	const char *dot = strrchr(ref, '.'), *cdot = strrchr(c_file, '.'), *cslash = strrchr(c_file, '/');
	if (ref[0] == '/')
		return intern(c->strs, ref);
	if (dot && cdot && (!cslash || cdot > cslash)) {
		int n = snprintf(p, sizeof(p), "%.*s%s", (int)(cdot - c_file), c_file, dot);
		if (n > 0 && (size_t)n < sizeof(p) && (size_t)n >= rl &&
		    strcmp(p + n - rl, ref) == 0 && ((size_t)n == rl || p[n - rl - 1] == '/') && cy_exists(c, p))
			return intern(c->strs, p);
	}
	const char *dirs[3] = { m ? m->dir : NULL, m ? m->pkg_root : NULL, NULL };
	if (cslash)
		dirs[2] = cy_dirname(c, c_file);
	for (int i = 0; i < 3; i++) {
		if (!dirs[i])
			continue;
		int n = snprintf(p, sizeof(p), "%s/%s", dirs[i], ref);
		if (n > 0 && (size_t)n < sizeof(p) && cy_exists(c, p))
			return intern(c->strs, p);
	}
	return intern(c->strs, ref);
}

/* The short name of a .pyx: its path below the top package, or its basename. */
static const char *cy_short(struct cy_maps *c, const char *pyx)
{
	if (pyx[0] != '/')
		return pyx;
	const char *dir = cy_dirname(c, pyx), *top = NULL;
	for (int depth = 0; depth < CY_MAX_PKG_DEPTH && dir[0] == '/' && dir[1] && cy_has_init(c, dir); depth++) {
		top = dir;
		dir = cy_dirname(c, dir);
	}
	if (!top)
		return intern(c->strs, cy_basename(pyx));
	size_t dl = strlen(dir);
	return intern(c->strs, pyx + dl + (dir[dl - 1] == '/' ? 0 : 1));
}

/* Parse one C line (its first CY_MAX_SCAN bytes, NUL-terminated). */
struct cy_scan {
	struct cy_maps *c;
	struct cy_cfile *cf;
	const char *c_file;
	const struct cy_module *m;
	struct hmap refs;            /* interned ref -> index + 1 in resolved */
	VEC(const char *) resolved;  /* pairs: pyx, short */
	const char *cur_func;        /* the Cython function whose body we are in */
};

static void cy_scan_line(struct cy_scan *sc, const char *line, size_t len, int lineno)
{
	const char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	if (s[0] == '/' && s[1] == '*' && s[2] == ' ') {
		if (s[3] == '"') {
			const char *path = s + 4, *q = strstr(path, "\":");
			if (!q || !isdigit((unsigned char)q[2]))
				return;
			long pl = 0;
			const char *d = q + 2;
			while (isdigit((unsigned char)*d) && pl < 100000000)
				pl = pl * 10 + (*d++ - '0');
			struct cy_marker mk = { lineno, (int)pl, NULL, NULL };
			size_t plen = (size_t)(q - path);
			if (plen > 0 && plen < CY_MAX_PATH && memchr(path, '.', plen) && path[0] != '(') {
				const char *ref = intern_n(sc->c->strs, path, plen);
				uint64_t v;
				if (!hmap_get(&sc->refs, (uint64_t)(uintptr_t)ref, &v)) {
					const char *pyx = cy_resolve(sc->c, sc->c_file, ref, sc->m);
					vec_push(&sc->resolved, pyx);
					vec_push(&sc->resolved, cy_short(sc->c, pyx));
					v = sc->resolved.n - 1;
					hmap_put(&sc->refs, (uint64_t)(uintptr_t)ref, v);
				}
				mk.pyx = sc->resolved.v[v - 1];
				mk.short_pyx = sc->resolved.v[v];
			}
			vec_push(&sc->cf->marks, mk);
		} else if (strncmp(s + 3, "--- Runtime support code", 24) == 0) {
			vec_push(&sc->cf->marks, ((struct cy_marker){ lineno, 0, NULL, NULL }));
		}
		return;
	}
	/* A function definition starts in column 0 and has no ';' (prototypes do). */
	if (line[0] != ' ' && line[0] != '\t' && line[0] != '#' && line[0] != '/' && !memchr(line, ';', len)) {
		const char *paren = memchr(line, '(', len);
		if (!paren)
			return;
		const char *b = paren;
		while (b > line && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
			b--;
		if (b < paren && paren - b < CY_MAX_SYM && strncmp(b, "__pyx_", 6) == 0) {
			struct cy_sym p;
			char sym[CY_MAX_SYM];
			memcpy(sym, b, (size_t)(paren - b));
			sym[paren - b] = '\0';
			sc->cur_func = cy_parse_sym(sym, &p) ? intern(sc->c->strs, sym) : NULL;
			if (sc->cur_func && (p.kind == CY_PW || p.kind == CY_PF) &&
			    (sc->cf->defs.n == 0 || sc->cf->defs.v[sc->cf->defs.n - 1] != sc->cur_func))
				vec_push(&sc->cf->defs, sc->cur_func);
		} else if (b < paren) {
			sc->cur_func = NULL;
		}
		return;
	}
	const char *g = strstr(line, "(__pyx_coroutine_body_t)");
	if (g && sc->cur_func && sc->cf->owners.n < CY_MAX_OWNERS) {
		g += strlen("(__pyx_coroutine_body_t)");
		while (*g == ' ')
			g++;
		size_t n = 0;
		while (isalnum((unsigned char)g[n]) || g[n] == '_')
			n++;
		if (n > 0 && n < CY_MAX_SYM)
			vec_push(&sc->cf->owners, ((struct cy_owner){ intern_n(sc->c->strs, g, n), sc->cur_func }));
	}
}

/* Pair each implementation defined in cf with its wrapper: for every place a wrapper's counter
 * could start, write the implementation's name (counter - 1) and look it up among the defs. */
static void cy_pair_wrappers(struct cy_maps *c, struct cy_cfile *cf)
{
	struct hmap pfs;  /* interned pf -> 1 */
	hmap_init(&pfs);
	hmap_init(&cf->pf2pw);
	struct cy_sym p;
	for (size_t i = 0; i < cf->defs.n; i++)
		if (cy_parse_sym(cf->defs.v[i], &p) && p.kind == CY_PF)
			hmap_put(&pfs, (uint64_t)(uintptr_t)cf->defs.v[i], 1);
	for (size_t i = 0; i < cf->defs.n && pfs.n > 0; i++) {
		const char *pw = cf->defs.v[i];
		if (!cy_parse_sym(pw, &p) || p.kind != CY_PW)
			continue;
		size_t head = (size_t)(p.rest - pw) - 3;  /* up to "pw_" */
		for (size_t at = 0; at < p.len; at++) {
			if (!isdigit((unsigned char)p.rest[at]) || (at > 0 && p.rest[at - 1] != '_'))
				continue;
			size_t d = at;
			unsigned long cnt = 0;
			while (d < p.len && isdigit((unsigned char)p.rest[d]) && d - at < 9)
				cnt = cnt * 10 + (unsigned long)(p.rest[d++] - '0');
			if (d == p.len || isdigit((unsigned char)p.rest[d]) || cnt == 0)
				continue;
			/* The implementation has no fused prefix: "__pyx_pf_" + scopes + counter + name. */
			const char *pyx = strstr(pw, "__pyx_pw_");
			if (!pyx || (size_t)(pyx - pw) > head)
				continue;
			char num[24] = "", buf[CY_MAX_SYM + 32];
			if (cnt > 1)
				snprintf(num, sizeof(num), "%lu", cnt - 1);
			int n = snprintf(buf, sizeof(buf), "__pyx_pf_%.*s%s%.*s", (int)at, p.rest, num,
					 (int)(p.len - d), p.rest + d);
			if (n <= 0 || (size_t)n >= sizeof(buf))
				continue;
			const char *pf = intern(c->strs, buf);
			if (hmap_get(&pfs, (uint64_t)(uintptr_t)pf, NULL)) {
				hmap_put(&cf->pf2pw, (uint64_t)(uintptr_t)pf, (uint64_t)(uintptr_t)pw);
				break;
			}
		}
	}
	hmap_free(&pfs);
}

static void cy_load(struct cy_maps *c, struct cy_cfile *cf, const char *c_file, const char *module_path)
{
	char full[CY_MAX_PATH + 256];
	struct stat st;
	int fd = -1;
	if (!cy_rooted(c, c_file, full, sizeof(full)) || (fd = open(full, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CY_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		cf->missing = true;
		hmap_init(&cf->pf2pw);
		return;
	}
	struct cy_scan sc = { .c = c, .cf = cf, .c_file = c_file, .m = cy_module(c, module_path) };
	hmap_init(&sc.refs);
	char *line = xmalloc(CY_MAX_SCAN + 1), *block = xmalloc(65536);
	size_t len = 0;
	int lineno = 1;
	long total = 0;
	ssize_t got;
	bool pending = false;
	while ((got = read(fd, block, 65536)) > 0 && lineno < INT_MAX - 1) {
		total += got;
		if (total > CY_MAX_FILE)
			break;
		for (ssize_t i = 0; i < got; i++) {
			if (block[i] != '\n') {
				if (len < CY_MAX_SCAN)
					line[len++] = block[i];
				pending = true;
				continue;
			}
			line[len] = '\0';
			cy_scan_line(&sc, line, len, lineno);
			lineno++;
			len = 0;
			pending = false;
			if (lineno >= INT_MAX - 1)
				break;
		}
	}
	if (pending) {
		line[len] = '\0';
		cy_scan_line(&sc, line, len, lineno);
		lineno++;
	}
	cf->nlines = lineno - 1;
	cy_pair_wrappers(c, cf);
	close(fd);
	free(line);
	free(block);
	hmap_free(&sc.refs);
	vec_free(&sc.resolved);
}

static struct cy_cfile *cy_cfile(struct cy_maps *c, const char *c_file, const char *module_path)
{
	if (!c_file || !c_file[0] || strnlen(c_file, CY_MAX_PATH) >= CY_MAX_PATH)
		return NULL;
	const char *key = intern(c->strs, c_file);
	uint64_t v;
	if (hmap_get(&c->cfiles, (uint64_t)(uintptr_t)key, &v))
		return (struct cy_cfile *)(uintptr_t)v;
	struct cy_cfile *cf = xcalloc(1, sizeof(*cf));
	cy_load(c, cf, key, module_path);
	hmap_put(&c->cfiles, (uint64_t)(uintptr_t)key, (uint64_t)(uintptr_t)cf);
	return cf;
}

static const struct cy_marker *cy_lookup(const struct cy_cfile *cf, int c_line)
{
	if (!cf || cf->missing || c_line < 1 || c_line > cf->nlines || cf->marks.n == 0)
		return NULL;
	size_t lo = 0, hi = cf->marks.n;  /* first marker after c_line */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cf->marks.v[mid].c_line <= c_line)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || !cf->marks.v[lo - 1].pyx)
		return NULL;
	return &cf->marks.v[lo - 1];
}

bool cy_map_line(struct cy_maps *c, const char *c_file, int c_line, const char *module_path,
		 const char **pyx_file, int *pyx_line)
{
	const struct cy_marker *mk = cy_lookup(cy_cfile(c, c_file, module_path), c_line);
	if (!mk)
		return false;
	if (pyx_file)
		*pyx_file = mk->pyx;
	if (pyx_line)
		*pyx_line = mk->pyx_line;
	return true;
}

/* ---- frames ---------------------------------------------------------------------------------- */

static bool cy_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool cy_translate_frame(struct cy_maps *c, struct frame *f, const char *symbol)
{
	const char *sym = symbol ? symbol : f->name;
	struct cy_sym p;
	if (!sym || !cy_parse_sym(sym, &p))
		return false;
	const char *file = f->file;
	bool is_c = file && file[0] && (cy_ends_with(file, ".c") || cy_ends_with(file, ".cpp"));
	struct cy_cfile *cf = is_c ? cy_cfile(c, file, f->module) : NULL;
	const char *name = cy_demangle_in(c, sym, f->module, cf);
	if (!name)
		return false;

	if (p.kind == CY_GB && cf) {
		/* Named after the function that creates the generator. */
		size_t n = (size_t)(p.rest + p.len - sym);
		const char *gb = n < CY_MAX_SYM ? intern_n(c->strs, sym, n) : NULL;
		for (size_t i = 0; gb && i < cf->owners.n; i++) {
			if (cf->owners.v[i].gb == gb) {
				const char *owner = cy_demangle_in(c, cf->owners.v[i].owner, f->module, cf);
				if (owner)
					name = owner;
				break;
			}
		}
	}
	f->kind = FRAME_CYTHON;
	f->name = name;
	if (is_c) {
		const struct cy_marker *mk = cy_lookup(cf, f->line);
		if (mk) {
			f->file = mk->pyx;
			f->short_file = mk->short_pyx;
			f->line = mk->pyx_line;
		}
	}
	/* Otherwise the module was built with --line-directives (DWARF already names the .pyx), or
	 * the C file is gone: the location stays as the symbolizer found it. */
	return true;
}
