/*
 * python.c - finding the interpreter inside a target and reading its threads and frames.
 *
 * Discovery, in order: the ELF object holding the runtime (libpythonX.Y.so if mapped, else the
 * executable); the version (Py_Version, _Py_DebugOffsets, the sys.version buffer in .bss, the file
 * name); the runtime (_PyRuntime symbol or .PyRuntime section, 3.7+) or interp_head (2.7/3.6:
 * .symtab, else decoded from the exported PyInterpreterState_Head); and, when all that fails
 * validation, a scan of .bss/.data/.PyRuntime for a pointer whose first thread state points back
 * at it. Frames are read per the layout's frame model; code objects are cached by address.
 */
#include "internal.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../../symbolize/elf.h"
#include "debug_offsets.h"
#include "linetable.h"

#define MAX_THREADS 4096
#define MAX_FRAMES 4096
#define MAX_LINETABLE (1u << 20)

/* ---- version ------------------------------------------------------------------------------- */

static void version_from_hex(struct py_version *v, uint32_t hex)
{
	v->major = (int)(hex >> 24);
	v->minor = (int)((hex >> 16) & 0xff);
	v->micro = (int)((hex >> 8) & 0xff);
	int level = (hex >> 4) & 0xf;
	v->serial = (int)(hex & 0xf);
	const char *lv = level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : "";
	snprintf(v->level, sizeof v->level, "%s", lv);
	if (*lv)
		snprintf(v->str, sizeof v->str, "%d.%d.%d%s%d", v->major, v->minor, v->micro, lv, v->serial);
	else
		snprintf(v->str, sizeof v->str, "%d.%d.%d", v->major, v->minor, v->micro);
}

/* Find "X.Y.Z[(a|b|c|rc)N][+] (" in a buffer: the start of sys.version. */
static bool version_scan(const char *buf, size_t len, struct py_version *v)
{
	regex_t re;
	if (regcomp(&re, "([23])\\.([0-9]{1,2})\\.([0-9]{1,2})((a|b|c|rc)([0-9]{1,2}))?\\+? \\(", REG_EXTENDED))
		return false;
	bool found = false;
	size_t i = 0;
	while (i < len && !found) {
		/* the buffer has NULs: run the regex over each NUL-terminated piece */
		const char *s = buf + i;
		size_t n = strnlen(s, len - i);
		if (n >= 6) {
			regmatch_t m[7];
			if (regexec(&re, s, 7, m, 0) == 0) {
				v->major = atoi(s + m[1].rm_so);
				v->minor = atoi(s + m[2].rm_so);
				v->micro = atoi(s + m[3].rm_so);
				v->level[0] = 0;
				v->serial = 0;
				if (m[4].rm_so >= 0) {
					int ll = (int)(m[5].rm_eo - m[5].rm_so);
					snprintf(v->level, sizeof v->level, "%.*s", ll, s + m[5].rm_so);
					v->serial = atoi(s + m[6].rm_so);
				}
				snprintf(v->str, sizeof v->str, "%d.%d.%d%s", v->major, v->minor, v->micro, v->level);
				if (v->level[0])
					snprintf(v->str + strlen(v->str), sizeof v->str - strlen(v->str), "%d", v->serial);
				found = (v->major == 2 && v->minor == 7) || v->major == 3;
			}
		}
		i += n + 1;
	}
	regfree(&re);
	return found;
}

static bool version_from_name(const char *path, struct py_version *v)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	int maj, min;
	if (sscanf(base, "libpython%d.%d", &maj, &min) == 2 || sscanf(base, "python%d.%d", &maj, &min) == 2) {
		memset(v, 0, sizeof *v);
		v->major = maj;
		v->minor = min;
		snprintf(v->str, sizeof v->str, "%d.%d.0", maj, min);
		return true;
	}
	return false;
}

/* ---- discovery ----------------------------------------------------------------------------- */

struct candidate {
	const char *path;      /* path as in the maps */
	uint64_t bias;
	struct elf_file *elf;
};

static bool is_libpython(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	int maj, min;
	return strncmp(base, "libpython", 9) == 0 && sscanf(base, "libpython%d.%d", &maj, &min) == 2 &&
	       strstr(base, ".so") != NULL;
}

/* The mapping with the lowest file offset for `path` gives the load bias. */
static bool map_bias(struct target *t, const char *path, const struct elf_file *f, uint64_t *bias)
{
	uint64_t lowest = UINT64_MAX, start = 0;
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *m = &t->maps.v[i];
		if (m->path && strcmp(m->path, path) == 0 && m->offset < lowest) {
			lowest = m->offset;
			start = m->start - m->offset;
		}
	}
	if (lowest == UINT64_MAX)
		return false;
	/* For ET_EXEC the first PT_LOAD vaddr equals the map start: bias 0. */
	*bias = start - elf_first_load_vaddr(f);
	return true;
}

static int open_candidate(struct py_proc *p, const char *path, struct candidate *c, struct err *e)
{
	char *file = target_file_path(p->t, path);
	int rc = elf_open(&c->elf, file, e);
	free(file);
	if (rc)
		return rc;
	c->path = path;
	if (!map_bias(p->t, path, c->elf, &c->bias)) {
		elf_close(c->elf);
		c->elf = NULL;
		return err_set(e, E_NOTPY, "%s is not mapped", path);
	}
	return 0;
}

static uint64_t sym_addr(const struct candidate *c, const char *name)
{
	struct elf_sym s;
	if (!elf_symbol(c->elf, name, &s))
		return 0;
	return c->bias + s.value;
}

static bool read_version(struct py_proc *p, const struct candidate *c)
{
	struct py_version *v = &p->version;
	uint64_t a = sym_addr(c, "Py_Version");
	uint64_t hex;
	if (a && !target_read_u64(p->t, a, &hex) && (hex >> 24) == 3) {
		version_from_hex(v, (uint32_t)hex);
		return true;
	}
	/* 3.13+: the debug offsets carry the version, even without Py_Version. */
	uint64_t rt = sym_addr(c, "_PyRuntime");
	struct elf_section sec;
	if (!rt && elf_section(c->elf, ".PyRuntime", &sec))
		rt = c->bias + sec.addr;
	char cookie[16];
	if (rt && !target_read(p->t, rt, cookie, 16) && memcmp(cookie, "xdebugpy", 8) == 0) {
		memcpy(&hex, cookie + 8, 8);
		if ((hex >> 24) == 3) {
			version_from_hex(v, (uint32_t)hex);
			return true;
		}
	}
	/* Py_GetVersion's static buffer, by symbol when there is a .symtab. */
	const char *names[] = { "version", "version.0", NULL };
	for (int i = 0; names[i]; i++) {
		a = sym_addr(c, names[i]);
		char buf[256];
		if (a && !target_read(p->t, a, buf, sizeof buf - 1)) {
			buf[sizeof buf - 1] = 0;
			if (version_scan(buf, strnlen(buf, sizeof buf), v))
				return true;
		}
	}
	/* Otherwise scan .bss for the sys.version string. */
	if (elf_section(c->elf, ".bss", &sec) && sec.size && sec.size < (64u << 20)) {
		char *buf = xmalloc(sec.size);
		ssize_t n = target_read_partial(p->t, c->bias + sec.addr, buf, sec.size);
		bool ok = n > 0 && version_scan(buf, (size_t)n, v);
		free(buf);
		if (ok)
			return true;
	}
	return false;
}

/* Is interp a PyInterpreterState whose first thread state points back at it? */
static bool interp_valid(struct py_proc *p, uint64_t interp)
{
	const struct py_layout *L = &p->layout;
	uint64_t ts, back;
	if (!interp || (interp & 7) || !target_is_mapped(p->t, interp, 64))
		return false;
	if (target_read_u64(p->t, interp + (uint64_t)L->interp_tstate_head, &ts))
		return false;
	if (ts == 0)
		return true;   /* no threads yet (starting up): acceptable */
	if ((ts & 7) || target_read_u64(p->t, ts + (uint64_t)L->tstate_interp, &back))
		return false;
	return back == interp;
}

static bool interp_plausible(struct py_proc *p, uint64_t interp);

/* Last resort: scan a range of the object's writable data for an interpreter pointer. */
static uint64_t scan_for_interp(struct py_proc *p, uint64_t start, uint64_t size)
{
	if (!size || size > (64u << 20))
		return 0;
	uint64_t *buf = xmalloc(size);
	ssize_t n = target_read_partial(p->t, start, buf, size);
	uint64_t found = 0;
	for (ssize_t i = 0; n > 0 && i < n / 8 && !found; i++) {
		uint64_t cand = buf[i];
		if (cand && !(cand & 7) && target_is_mapped(p->t, cand, 64)) {
			if (interp_plausible(p, cand))
				found = cand;
		}
	}
	free(buf);
	return found;
}

/* Stronger check for candidates found by scanning: the first thread state must have a thread
 * id, and following `next` from it must end (a small ring of pointers also passes the
 * back-pointer test). */
static bool interp_plausible(struct py_proc *p, uint64_t interp)
{
	const struct py_layout *L = &p->layout;
	uint64_t ts, tid;
	if (!interp_valid(p, interp) || target_read_u64(p->t, interp + (uint64_t)L->interp_tstate_head, &ts) || !ts)
		return false;
	if (target_read_u64(p->t, ts + (uint64_t)L->tstate_thread_id, &tid) || !tid)
		return false;
	for (int i = 0; i < MAX_THREADS && ts; i++) {
		uint64_t back;
		if (target_read_u64(p->t, ts + (uint64_t)L->tstate_interp, &back) || back != interp)
			return false;
		if (target_read_u64(p->t, ts + (uint64_t)L->tstate_next, &ts))
			return false;
	}
	return ts == 0;
}

static int find_interp(struct py_proc *p, const struct candidate *c, struct err *e)
{
	const struct py_layout *L = &p->layout;
	struct elf_section sec;
	uint64_t interp = 0, anchor = 0;

	if (L->runtime_interpreters_head >= 0) {
		uint64_t rt = sym_addr(c, "_PyRuntime");
		if (!rt && elf_section(c->elf, ".PyRuntime", &sec))
			rt = c->bias + sec.addr;
		p->runtime = rt;
		if (rt)
			anchor = rt + (uint64_t)L->runtime_interpreters_head;
	} else {
		anchor = sym_addr(c, "interp_head");
		if (!anchor) {
			struct elf_sym s;
			uint64_t target_vaddr;
			if (elf_symbol(c->elf, "PyInterpreterState_Head", &s) &&
			    !elf_decode_rip_load(c->elf, s.value, &target_vaddr))
				anchor = c->bias + target_vaddr;
		}
	}
	if (anchor) {
		if (target_read_u64(p->t, anchor, &interp))
			return err_set(e, E_READ, "Failed to read the interpreter list");
		/* Known anchor but no interpreter yet: the program is still starting up. */
		if (interp == 0)
			return err_set(e, E_AGAIN, "The Python interpreter has not started yet");
		if (interp_valid(p, interp)) {
			p->interp = interp;
			return 0;
		}
	}
	/* Scan: .PyRuntime first (3.10+ keeps the main interpreter there), then .data and .bss. */
	const char *secs[] = { ".PyRuntime", ".data", ".bss", NULL };
	for (int i = 0; secs[i] && !p->interp; i++)
		if (elf_section(c->elf, secs[i], &sec))
			p->interp = scan_for_interp(p, c->bias + sec.addr, sec.size);
	if (p->interp)
		return 0;
	return err_set(e, E_NOTPY, "Failed to find a python interpreter in the .data section");
}

static void resolve_types(struct py_proc *p, const struct candidate *c)
{
	p->rd.type_code = sym_addr(c, "PyCode_Type");
	p->rd.type_unicode = sym_addr(c, "PyUnicode_Type");
	p->rd.type_bytes = sym_addr(c, p->version.major == 2 ? "PyString_Type" : "PyBytes_Type");
	p->rd.type_str2 = p->version.major == 2 ? p->rd.type_bytes : 0;
}

struct py_proc *py_proc_new(struct target *t, struct interner *strs, bool full_filenames)
{
	struct py_proc *p = xcalloc(1, sizeof(*p));
	p->t = t;
	p->strs = strs;
	p->full_filenames = full_filenames;
	hmap_init(&p->code_index);
	hmap_init(&p->short_names);
	hmap_init(&p->tid_map);
	hmap_init(&p->tid_tried);
	hmap_init(&p->tid_ts);
	hmap_init(&p->tid_fs);
	hmap_init(&p->thread_names);
	hmap_init(&p->thread_objs);
	hmap_init(&p->names_tid);
	hmap_init(&p->ts_prev_ix);
	hmap_init(&p->ids_seen);
	hmap_init(&p->born);
	sb_init(&p->scratch);
	return p;
}

int py_open(struct py_proc **out, struct target *t, struct interner *strs, bool full_filenames, struct err *e)
{
	struct py_proc *p = py_proc_new(t, strs, full_filenames);

	/* Candidates: libpython first (its symbols are the interpreter's), then the executable. */
	const char *paths[2] = { NULL, NULL };
	for (size_t i = 0; i < t->maps.n; i++)
		if (t->maps.v[i].path && is_libpython(t->maps.v[i].path)) {
			paths[0] = t->maps.v[i].path;
			break;
		}
	paths[1] = t->exe;
	int rc = E_NOTPY;
	struct err sub = { 0 };
	bool have_version = false;
	for (int i = 0; i < 2 && rc; i++) {
		if (!paths[i])
			continue;
		struct candidate c = { 0 };
		if (open_candidate(p, paths[i], &c, &sub))
			continue;
		if (!read_version(p, &c)) {
			elf_close(c.elf);
			continue;
		}
		have_version = true;
		const struct py_layout *L = py_layout_for(p->version.major, p->version.minor);
		if (!L) {
			elf_close(c.elf);
			py_close(p);
			return err_set(e, E_VERSION, "Unsupported version of Python: %s", p->version.str);
		}
		p->layout = *L;
		if (p->version.major == 3 && p->version.minor >= 13) {
			uint64_t rt = sym_addr(&c, "_PyRuntime");
			struct elf_section sec;
			if (!rt && elf_section(c.elf, ".PyRuntime", &sec))
				rt = c.bias + sec.addr;
			size_t n = py_debug_offsets_size(p->version.minor);
			uint8_t *buf = n ? xmalloc(n) : NULL;
			if (rt && buf && !target_read(t, rt, buf, n))
				py_debug_offsets_apply(buf, n, p->version.minor, &p->layout, NULL);
			free(buf);
		}
		p->rd.t = t;
		p->rd.L = &p->layout;
		p->rd.major = p->version.major;
		p->rd.minor = p->version.minor;
		rc = find_interp(p, &c, &sub);
		if (!rc) {
			p->binary = xstrdup(c.path);
			p->bias = c.bias;
			resolve_types(p, &c);
			if (p->layout.gil_model == PYGIL_TSTATE_CURRENT_SYM)
				p->tstate_current_sym = sym_addr(&c, "_PyThreadState_Current");
		}
		elf_close(c.elf);
	}
	if (rc) {
		if (!have_version) {
			struct py_version v;
			if (version_from_name(paths[0] ? paths[0] : t->exe, &v) && !py_layout_for(v.major, v.minor) &&
			    strstr(t->exe, "python")) {
				py_close(p);
				return err_set(e, E_VERSION, "Unsupported version of Python: %s", v.str);
			}
			py_close(p);
			return err_set(e, E_NOTPY, "Failed to find python version from target process");
		}
		py_close(p);
		return err_set(e, rc, "%s", sub.msg);
	}
	*out = p;
	return 0;
}

void py_close(struct py_proc *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->threads.n; i++) {
		vec_free(&p->threads.v[i].frames);
		vec_free(&p->threads.v[i].raw);
		vec_free(&p->threads.v[i].spec);
		vec_free(&p->threads.v[i].spec_ix);
	}
	for (int i = 0; i < (int)(sizeof p->regions / sizeof p->regions[0]); i++)
		free(p->regions[i].buf);
	free(p->spec_buf);
	vec_free(&p->ts_prev);
	vec_free(&p->ts_iov);
	vec_free(&p->ts_ok);
	free(p->ts_buf);
	vec_free(&p->batch_codes);
	vec_free(&p->batch_iov);
	vec_free(&p->batch_ok);
	free(p->batch_buf);
	vec_free(&p->threads);
	for (size_t i = 0; i < p->codes.n; i++)
		free(p->codes.v[i].table);
	vec_free(&p->codes);
	hmap_free(&p->code_index);
	hmap_free(&p->short_names);
	hmap_free(&p->tid_map);
	hmap_free(&p->tid_tried);
	hmap_free(&p->tid_ts);
	hmap_free(&p->tid_fs);
	hmap_free(&p->thread_names);
	hmap_free(&p->thread_objs);
	hmap_free(&p->names_tid);
	hmap_free(&p->ts_prev_ix);
	hmap_free(&p->ids_seen);
	hmap_free(&p->born);
	vec_free(&p->names_fresh);
	vec_free(&p->names_pairs);
	vec_free(&p->names_iov);
	free(p->binary);
	sb_free(&p->scratch);
	free(p);
}

const struct py_version *py_get_version(const struct py_proc *p) { return &p->version; }
const struct py_layout *py_get_layout(const struct py_proc *p) { return &p->layout; }
const char *py_binary_path(const struct py_proc *p) { return p->binary; }
uint64_t py_interp_addr(const struct py_proc *p) { return p->interp; }

/* ---- file names ---------------------------------------------------------------------------- */

static bool has_init_py(struct py_proc *p, const char *dir, size_t dirlen)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_addf(&sb, "%s%.*s/__init__.py", p->t->root, (int)dirlen, dir);
	bool ok = access(sb.buf, F_OK) == 0;
	if (!ok) {
		sb_reset(&sb);
		sb_addf(&sb, "%.*s/__init__.py", (int)dirlen, dir);
		ok = access(sb.buf, F_OK) == 0;
	}
	sb_free(&sb);
	return ok;
}

const char *py_shorten_filename(struct py_proc *p, const char *file)
{
	if (p->full_filenames || !file || file[0] != '/')
		return file;
	uint64_t v;
	if (hmap_get(&p->short_names, (uint64_t)(uintptr_t)file, &v))
		return (const char *)(uintptr_t)v;
	/* Walk up while the directory is a package; keep the path from the top package down. */
	const char *base = strrchr(file, '/');
	const char *keep = base + 1;
	const char *dir_end = base;
	while (dir_end > file && has_init_py(p, file, (size_t)(dir_end - file))) {
		const char *prev = dir_end - 1;
		while (prev > file && *prev != '/')
			prev--;
		keep = prev + 1;
		dir_end = prev;
	}
	const char *s = intern(p->strs, keep);
	hmap_put(&p->short_names, (uint64_t)(uintptr_t)file, (uint64_t)(uintptr_t)s);
	return s;
}

/* ---- code objects -------------------------------------------------------------------------- */

static const char *read_str_interned(struct py_proc *p, uint64_t addr)
{
	sb_reset(&p->scratch);
	if (pyobj_read_str(&p->rd, addr, &p->scratch))
		return NULL;
	return intern_n(p->strs, p->scratch.buf ? p->scratch.buf : "", p->scratch.len);
}

static uint64_t field_u64(const uint8_t *buf, int off)
{
	uint64_t v;
	memcpy(&v, buf + off, 8);
	return v;
}

static int32_t field_i32(const uint8_t *buf, int off)
{
	int32_t v;
	memcpy(&v, buf + off, 4);
	return v;
}

/* How many bytes from the start of a structure cover these fields, each `width` bytes wide
 * (absent fields, -1, don't count). */
static size_t fields_end(const int *offs, size_t n, size_t width)
{
	size_t end = 0;
	for (size_t i = 0; i < n; i++)
		if (offs[i] >= 0 && (size_t)offs[i] + width > end)
			end = (size_t)offs[i] + width;
	return end;
}

/* The code object at addr, whose first code_size bytes are in buf: from the cache when those
 * bytes still describe the cached object, else read again (names, line table). */
static const struct py_code *code_from_buf(struct py_proc *p, uint64_t addr, const uint8_t *buf)
{
	const struct py_layout *L = &p->layout;
	if (p->rd.type_code && field_u64(buf, L->ob_type) != p->rd.type_code)
		return NULL;
	uint64_t name_ptr = field_u64(buf, L->code_qualname >= 0 ? L->code_qualname : L->code_name);
	uint64_t file_ptr = field_u64(buf, L->code_filename);
	uint64_t table_ptr = field_u64(buf, L->code_linetable);
	int firstlineno = field_i32(buf, L->code_firstlineno);
	uint64_t idx;
	if (hmap_get(&p->code_index, addr, &idx)) {
		struct py_code *c = &p->codes.v[idx];
		if (c->name_ptr == name_ptr && c->file_ptr == file_ptr && c->table_ptr == table_ptr &&
		    c->firstlineno == firstlineno)
			return c;
		free(c->table);
		c->table = NULL;
	} else {
		struct py_code blank = { 0 };
		vec_push(&p->codes, blank);
		idx = p->codes.n - 1;
		hmap_put(&p->code_index, addr, idx);
	}
	struct py_code *c = &p->codes.v[idx];
	c->addr = addr;
	c->name_ptr = name_ptr;
	c->file_ptr = file_ptr;
	c->table_ptr = table_ptr;
	c->firstlineno = firstlineno;
	c->firsttraceable = L->code_firsttraceable >= 0 ? field_i32(buf, L->code_firsttraceable) : 0;
	c->ncodeunits = L->frame_model >= PYFRAME_311 ? (int64_t)field_u64(buf, L->var_ob_size) : 0;
	c->name = read_str_interned(p, name_ptr);
	c->file = read_str_interned(p, file_ptr);
	c->table = NULL;
	c->table_len = 0;
	if (!c->name || !c->file) {
		/* garbage: forget it so the next read tries again */
		c->name_ptr = c->file_ptr = 0;
		return NULL;
	}
	c->short_file = py_shorten_filename(p, c->file);
	if (pyobj_read_bytes(&p->rd, table_ptr, MAX_LINETABLE, &c->table, &c->table_len)) {
		c->table = NULL;
		c->table_len = 0;
	}
	return c;
}

/* ---- threads ------------------------------------------------------------------------------- */

int py_gil_holder(struct py_proc *p, uint64_t *tstate)
{
	const struct py_layout *L = &p->layout;
	*tstate = 0;
	switch (L->gil_model) {
	case PYGIL_TSTATE_CURRENT_SYM:
		if (!p->tstate_current_sym)
			return E_NOTPY;
		return target_read_u64(p->t, p->tstate_current_sym, tstate);
	case PYGIL_RUNTIME_TSTATE:
		if (!p->runtime || L->runtime_tstate_current < 0)
			return E_NOTPY;
		return target_read_u64(p->t, p->runtime + (uint64_t)L->runtime_tstate_current, tstate);
	case PYGIL_INTERP_GIL_PTR: {
		int32_t locked;
		if ((!p->gil_ptr && target_read_u64(p->t, p->interp + (uint64_t)L->interp_ceval_gil, &p->gil_ptr)) ||
		    !p->gil_ptr || target_read(p->t, p->gil_ptr + (uint64_t)L->gil_locked, &locked, 4))
			return E_READ;
		if (!locked)
			return 0;
		return target_read_u64(p->t, p->gil_ptr + (uint64_t)L->gil_last_holder, tstate);
	}
	}
	return E_INTERNAL;
}

bool py_gil_locked(struct py_proc *p)
{
	uint64_t holder;
	return py_gil_holder(p, &holder) == 0 && holder != 0;
}

int py_gil_mark(struct py_proc *p, struct py_gil_mark *m)
{
	const struct py_layout *L = &p->layout;
	uint64_t base;
	int holder, count;
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime) {
		base = p->runtime;
		holder = L->runtime_gil_last_holder;
		count = L->runtime_gil_switch_number;
	} else if (L->gil_model == PYGIL_INTERP_GIL_PTR && L->interp_ceval_gil >= 0) {
		if (!p->gil_ptr && target_read_u64(p->t, p->interp + (uint64_t)L->interp_ceval_gil, &p->gil_ptr))
			return E_READ;
		base = p->gil_ptr;
		holder = L->gil_last_holder;
		count = L->gil_switch_number;
	} else {
		return E_NOTPY;
	}
	if (!base || holder < 0 || count < 0)
		return E_NOTPY;
	struct target_iov iov[2] = { { base + (uint64_t)holder, &m->last_holder, 8 },
				     { base + (uint64_t)count, &m->switches, 8 } };
	bool ok[2] = { false, false };
	target_readv(p->t, iov, 2, ok);
	return ok[0] && ok[1] ? 0 : E_READ;
}

/* struct _gil_runtime_state (3.7+): interval, last_holder, locked, switch_number, then cond,
 * mutex, switch_cond, switch_mutex (glibc x86_64: 48 + 40 + 48 + 40 bytes). */
#define GIL_STATE_SIZE (32 + 48 + 40 + 48 + 40)

/* 2.7 and 3.6 keep the GIL in static variables of ceval.c: found in .symtab when the build
 * is not stripped (looked up once, on first use), else left unknown. */
static void find_static_gil(struct py_proc *p)
{
	struct candidate c = { 0 };
	struct err e = { 0 };
	p->gil_static_tried = true;
	if (!p->binary || open_candidate(p, p->binary, &c, &e))
		return;
	if (p->version.major == 2) {
		p->gil_lock_sym = sym_addr(&c, "interpreter_lock");
	} else {
		static const char *const names[] = { "gil_cond", "gil_mutex", "switch_cond", "switch_mutex" };
		uint64_t lo = UINT64_MAX, hi = 0;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			struct elf_sym s;
			if (!elf_symbol(c.elf, names[i], &s) || !s.size)
				continue;
			lo = c.bias + s.value < lo ? c.bias + s.value : lo;
			hi = c.bias + s.value + s.size > hi ? c.bias + s.value + s.size : hi;
		}
		if (hi > lo && hi - lo <= 1024) {
			p->gil_sync_lo = lo;
			p->gil_sync_hi = hi;
		}
	}
	elf_close(c.elf);
}

int py_gil_sync_range(struct py_proc *p, uint64_t *lo, uint64_t *hi)
{
	const struct py_layout *L = &p->layout;
	uint64_t base = 0;
	*lo = *hi = 0;
	switch (L->gil_model) {
	case PYGIL_TSTATE_CURRENT_SYM:
		if (!p->gil_static_tried)
			find_static_gil(p);
		if (p->gil_sync_hi) {
			*lo = p->gil_sync_lo;
			*hi = p->gil_sync_hi;
			return 0;
		}
		/* 2.7: the GIL is a lock (a sem_t) allocated when the first thread starts. */
		if (!p->gil_lock_sym || target_read_u64(p->t, p->gil_lock_sym, &base) || !base)
			return E_NOTPY;
		*lo = base;
		*hi = base + 32;
		return 0;
	case PYGIL_RUNTIME_TSTATE:
		if (!p->runtime || L->runtime_gil_last_holder < 8)
			return E_NOTPY;
		base = p->runtime + (uint64_t)L->runtime_gil_last_holder - 8;
		break;
	case PYGIL_INTERP_GIL_PTR:
		if (L->interp_ceval_gil < 0 || L->gil_last_holder < 8 ||
		    target_read_u64(p->t, p->interp + (uint64_t)L->interp_ceval_gil, &base) || !base)
			return E_NOTPY;
		base += (uint64_t)L->gil_last_holder - 8;
		break;
	}
	*lo = base;
	*hi = base + GIL_STATE_SIZE;
	return 0;
}

/* A thread state read while its thread starts carries no id yet, or its parent's (the parent
 * allocates it, the new thread sets its own ids first thing): sampled, it would show the new
 * thread's frames - read a moment later - under another thread's id and name. Of two states with
 * one id, the one not taken for born by the last list is the new one (neither is sampled when
 * the last list does not tell). */
static void mark_unborn(struct py_proc *p, struct py_thread *th, size_t n)
{
	const struct py_layout *L = &p->layout;
	hmap_clear(&p->ids_seen);
	for (size_t i = 0; i < n; i++) {
		th[i].unborn = !th[i].thread_id || (L->tstate_native_thread_id >= 0 && !th[i].os_tid);
		uint64_t j;
		if (th[i].unborn)
			continue;
		if (!hmap_get(&p->ids_seen, th[i].thread_id, &j)) {
			hmap_put(&p->ids_seen, th[i].thread_id, i);
			continue;
		}
		uint64_t id_i, id_j;   /* (a state's address comes back too: its id must match) */
		bool old_i = hmap_get(&p->born, th[i].tstate, &id_i) && id_i == th[i].thread_id;
		bool old_j = hmap_get(&p->born, th[j].tstate, &id_j) && id_j == th[j].thread_id;
		if (old_j && !old_i) {
			th[i].unborn = true;
		} else if (old_i && !old_j) {
			th[j].unborn = true;
		} else {
			/* no way to tell (just attached): neither this time, nor taken for born */
			th[i].unborn = th[j].unborn = true;
		}
	}
	hmap_clear(&p->born);
	for (size_t i = 0; i < n; i++)
		if (!th[i].unborn)
			hmap_put(&p->born, th[i].tstate, th[i].thread_id);
}

int py_read_threads(struct py_proc *p, struct py_thread **threads, size_t *n, struct err *e)
{
	const struct py_layout *L = &p->layout;
	uint64_t ts = 0;
	uint8_t tbuf[512];
	int fields[] = { L->tstate_next, L->tstate_interp, L->tstate_thread_id, L->tstate_native_thread_id,
			 L->tstate_holds_gil, L->tstate_status };
	size_t want = fields_end(fields, sizeof fields / sizeof fields[0], 8);
	if (want > sizeof tbuf)
		return err_set(e, target_alive(p->t) ? E_READ : E_NOPROC, "Failed to read a thread state");
	/* The thread list rarely changes between ticks: read the last tick's thread states in one
	 * vectored read, and use each copy only where the list's next pointer leads to it. The head
	 * of the list and who holds the GIL come with them (where the GIL's address is known). */
	size_t nprev = p->ts_prev.n;
	if (p->ts_cap < nprev * want) {
		p->ts_cap = nprev * want;
		p->ts_buf = xrealloc(p->ts_buf, p->ts_cap);
	}
	vec_reserve(&p->ts_iov, nprev + 3);
	vec_reserve(&p->ts_ok, nprev + 3);
	for (size_t k = 0; k < nprev; k++)
		p->ts_iov.v[k] = (struct target_iov){ p->ts_prev.v[k], p->ts_buf + k * want, want };
	size_t m = nprev;
	p->ts_iov.v[m++] = (struct target_iov){ p->interp + (uint64_t)L->interp_tstate_head, &ts, 8 };
	uint64_t holder = 0, gil_holder = 0;
	int32_t gil_locked = 0;
	bool holder_batched = false;
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime && L->runtime_tstate_current >= 0) {
		p->ts_iov.v[m++] = (struct target_iov){ p->runtime + (uint64_t)L->runtime_tstate_current, &holder, 8 };
		holder_batched = true;
	} else if (L->gil_model == PYGIL_INTERP_GIL_PTR && p->gil_ptr && L->gil_locked >= 0 && L->gil_last_holder >= 0) {
		p->ts_iov.v[m++] = (struct target_iov){ p->gil_ptr + (uint64_t)L->gil_locked, &gil_locked, 4 };
		p->ts_iov.v[m++] = (struct target_iov){ p->gil_ptr + (uint64_t)L->gil_last_holder, &gil_holder, 8 };
		holder_batched = true;
	}
	memset(p->ts_ok.v, 0, m * sizeof(bool));
	target_readv(p->t, p->ts_iov.v, m, p->ts_ok.v);
	if (!p->ts_ok.v[nprev])
		return err_set(e, target_alive(p->t) ? E_READ : E_NOPROC, "Failed to read the thread list");
	bool holder_ok = holder_batched && p->ts_ok.v[nprev + 1] && (m < nprev + 3 || p->ts_ok.v[nprev + 2]);
	if (holder_ok && L->gil_model == PYGIL_INTERP_GIL_PTR)
		holder = gil_locked ? gil_holder : 0;
	else if (!holder_ok)
		py_gil_holder(p, &holder);   /* (3.12+: finds and keeps the GIL's address) */
	size_t count = 0;
	for (; ts && count < MAX_THREADS; count++) {
		if (count >= p->threads.n) {
			struct py_thread blank = { 0 };
			vec_push(&p->threads, blank);
		}
		struct py_thread *th = &p->threads.v[count];
		th->tstate = ts;
		th->frames.n = 0;
		th->truncated = false;
		/* Found by address: a thread started since goes in at the head and moves the others
		 * down the list (by position, every copy of a 100-thread program missed). */
		const uint8_t *buf = tbuf;
		uint64_t k;
		if (!hmap_get(&p->ts_prev_ix, ts, &k))
			k = nprev;
		if (k < nprev && p->ts_ok.v[k])
			buf = p->ts_buf + k * want;
		else if (target_read(p->t, ts, tbuf, want))
			return err_set(e, target_alive(p->t) ? E_READ : E_NOPROC, "Failed to read a thread state");
		if (field_u64(buf, L->tstate_interp) != p->interp)
			return err_set(e, E_READ, "Thread state %#lx does not belong to the interpreter",
				       (unsigned long)ts);
		th->thread_id = field_u64(buf, L->tstate_thread_id);
		th->os_tid = 0;
		if (L->tstate_native_thread_id >= 0)
			th->os_tid = (int)field_u64(buf, L->tstate_native_thread_id);
		else {
			/* a thread id mapped for another thread state is another thread's: ids come back
			 * when a thread reuses an ended one's stack */
			uint64_t tid, mapped_ts;
			if (hmap_get(&p->tid_map, th->thread_id, &tid) && hmap_get(&p->tid_ts, th->thread_id, &mapped_ts) &&
			    mapped_ts == ts)
				th->os_tid = (int)tid;
		}
		if (L->tstate_holds_gil >= 0)
			th->holds_gil = field_i32(buf, L->tstate_holds_gil) != 0;
		else if (L->tstate_status_holds_gil_bit && L->tstate_status >= 0)
			th->holds_gil = (field_i32(buf, L->tstate_status) & (int32_t)L->tstate_status_holds_gil_bit) != 0;
		else
			th->holds_gil = holder == ts;
		uint64_t name;
		th->name = hmap_get(&p->thread_names, th->thread_id, &name) ? (const char *)(uintptr_t)name : NULL;
		ts = field_u64(buf, L->tstate_next);
	}
	mark_unborn(p, p->threads.v, count);
	p->ts_prev.n = 0;
	hmap_clear(&p->ts_prev_ix);
	for (size_t k = 0; k < count; k++) {
		vec_push(&p->ts_prev, p->threads.v[k].tstate);
		hmap_put(&p->ts_prev_ix, p->threads.v[k].tstate, k);
	}
	*threads = p->threads.v;
	*n = count;
	return 0;
}

int py_map_os_tids(struct py_proc *p, struct py_thread *threads, size_t n, struct err *e)
{
	/* Remap only when a thread state shows up without an OS thread that the last mappings did
	 * not try three times (its OS thread may be starting or ending). */
	bool missing = false;
	uint64_t tries;
	for (size_t i = 0; i < n; i++)
		if (!threads[i].os_tid && !threads[i].unborn &&
		    !(hmap_get(&p->tid_tried, threads[i].tstate, &tries) && tries >= 3))
			missing = true;
	if (!missing)
		return 0;
	struct hmap tried;
	hmap_init(&tried);
	for (size_t i = 0; i < n; i++) {
		if (!hmap_get(&p->tid_tried, threads[i].tstate, &tries))
			tries = 0;
		hmap_put(&tried, threads[i].tstate, tries + !threads[i].os_tid);
	}
	hmap_free(&p->tid_tried);
	p->tid_tried = tried;
	/* pthread_self() is the thread's fs_base on x86_64: read it from each OS thread not read
	 * before (a pause each; it never changes in a thread's life). */
	pid_t *tids = NULL;
	size_t ntids = 0;
	int rc = target_threads(p->t, &tids, &ntids, e);
	if (rc)
		return rc;
	struct hmap fs_now;
	hmap_init(&fs_now);
	hmap_clear(&p->tid_map);
	for (size_t i = 0; i < ntids; i++) {
		uint64_t fs = 0;
		if (!hmap_get(&p->tid_fs, (uint64_t)tids[i], &fs)) {
			if (target_pause_thread(p->t, tids[i], NULL))
				continue;
			int r = target_thread_fs_base(tids[i], &fs);
			target_resume_thread(p->t, tids[i]);
			if (r)
				fs = 0;
		}
		if (!fs)
			continue;
		hmap_put(&fs_now, (uint64_t)tids[i], fs);
		hmap_put(&p->tid_map, fs, (uint64_t)tids[i]);
	}
	free(tids);
	hmap_free(&p->tid_fs);
	p->tid_fs = fs_now;
	hmap_clear(&p->tid_ts);
	for (size_t i = 0; i < n; i++) {
		uint64_t tid;
		if (threads[i].unborn)
			continue;   /* its id is its parent's for now */
		if (!threads[i].os_tid && hmap_get(&p->tid_map, threads[i].thread_id, &tid))
			threads[i].os_tid = (int)tid;
		if (threads[i].os_tid)
			hmap_put(&p->tid_ts, threads[i].thread_id, threads[i].tstate);
	}
	return 0;
}

void py_forget_os_tid(struct py_proc *p, const struct py_thread *th)
{
	hmap_del(&p->tid_map, th->thread_id);
	hmap_del(&p->tid_ts, th->thread_id);
	hmap_del(&p->tid_tried, th->tstate);
}

/* ---- frames -------------------------------------------------------------------------------- */

static int line_of(struct py_proc *p, const struct py_code *c, int64_t addr, enum py_linemode mode)
{
	if (mode == PY_LINE_NONE)
		return 0;
	if (mode == PY_LINE_FUNCTION)
		return c->firstlineno;
	if (!c->table)
		return c->firstlineno;
	int line = py_line_for(p->layout.linetable, p->version.major, p->version.minor, c->table, c->table_len,
			       c->firstlineno, addr);
	return line < 0 ? 0 : line;
}

static void push_frame(struct py_thread *th, const struct py_code *c, uint64_t frame, int line, bool entry)
{
	struct py_frame f = {
		.name = c->name, .file = c->file, .short_file = c->short_file, .line = line,
		.firstlineno = c->firstlineno, .code = c->addr, .addr = frame, .is_entry = entry,
	};
	vec_push(&th->frames, f);
}

static void mark_last_entry(struct py_thread *th)
{
	if (th->frames.n)
		th->frames.v[th->frames.n - 1].is_entry = true;
}

/* 3.11+: _PyStackChunk is { previous, size, top (in slots, saved when a newer chunk is
 * pushed), data[] }. */
#define CHUNK_HEADER 24
#define CHUNK_GUESS (16u << 10)   /* DATA_STACK_CHUNK_SIZE: most chunks come whole in one read */
#define MAX_CHUNK_COPY (512u << 10)

static bool region_copy(struct py_proc *p, struct py_region *r, uint64_t start, size_t len)
{
	if (r->cap < len) {
		r->buf = xrealloc(r->buf, len);
		r->cap = len;
	}
	ssize_t got = target_read_partial(p->t, start, r->buf, len);
	if (got <= 0)
		return false;
	r->addr = start;
	r->len = (size_t)got;
	return true;
}

static bool prev_chunk_ahead(struct py_proc *p, int k, uint64_t chunk);

static void region_swap(struct py_proc *p, int a, int b)
{
	struct py_region r = p->regions[a];
	p->regions[a] = p->regions[b];
	p->regions[b] = r;
}

#define NSLOTS ((int)(sizeof p->regions / sizeof p->regions[0]))

/* regions[k] is about to be copied into: read-ahead bytes it holds move to a free slot past
 * it (they may be the chunk the chain reaches next). */
static void ahead_spare(struct py_proc *p, int k)
{
	if (!p->ahead_th || !p->regions[k].ahead)
		return;
	for (int j = k + 1; j < NSLOTS; j++)
		if (!p->regions[j].ahead) {
			region_swap(p, k, j);
			return;
		}
	p->regions[k].ahead = 0;
}

/* The read-ahead of chunk, from whichever slot at or past k holds it, moved into regions[k];
 * *len: how many bytes of it were read. */
static bool ahead_take(struct py_proc *p, int k, uint64_t chunk, size_t *len)
{
	if (!p->ahead_th || !chunk)
		return false;
	for (int j = k; j < NSLOTS; j++)
		if (p->regions[j].ahead == chunk) {
			if (j != k)
				region_swap(p, k, j);
			*len = p->regions[k].ahead_len;
			p->regions[k].ahead = 0;   /* taken */
			return true;
		}
	return false;
}

/* Copy the next older data stack chunk (the chain went past the ones copied so far): one read
 * of its header and the first CHUNK_GUESS bytes, a second one only for a bigger chunk - unless
 * the first read of the pause read it ahead. */
static bool copy_prev_chunk(struct py_proc *p)
{
	uint64_t chunk = p->chunk_prev;
	p->chunk_prev = 0;
	if (!chunk || (chunk & 7) || p->nregions >= (int)(sizeof p->regions / sizeof p->regions[0]))
		return false;
	if (prev_chunk_ahead(p, p->nregions, chunk))
		return true;
	ahead_spare(p, p->nregions);
	struct py_region *r = &p->regions[p->nregions];
	if (!region_copy(p, r, chunk, CHUNK_GUESS) || r->len < CHUNK_HEADER)
		return false;
	uint64_t hdr[3];
	memcpy(hdr, r->buf, sizeof hdr);
	uint64_t used = CHUNK_HEADER + hdr[2] * 8;
	if (hdr[2] > MAX_CHUNK_COPY / 8 || used > hdr[1])
		return false;
	if (used > r->len && !region_copy(p, r, chunk, (size_t)used))
		return false;
	if (r->len > used)
		r->len = (size_t)used;
	p->chunk_prev = hdr[0];
	p->nregions++;
	return true;
}

/* Read len bytes at addr, from a region copied in bulk when it covers them (copying older data
 * stack chunks as the chain reaches them). */
static int mem_read(struct py_proc *p, uint64_t addr, void *buf, size_t len)
{
	for (int i = 0;; i++) {
		if (i == p->nregions && !(p->chunk_prev && copy_prev_chunk(p)))
			break;
		const struct py_region *r = &p->regions[i];
		if (addr >= r->addr && addr + len <= r->addr + r->len && addr + len >= addr) {
			memcpy(buf, r->buf + (addr - r->addr), len);
			return 0;
		}
	}
	return target_read(p->t, addr, buf, len);
}

/* 3.11+: copy the used part of the thread's current data-stack chunk (where its frames live)
 * with one read, so walking the chain costs no further system calls (older chunks are copied
 * the same way once the chain reaches them). The first read of the pause may already hold it
 * (regions[0], read ahead where the last pause found the chunk): used when it covers the used
 * part now. */
static void copy_datastack(struct py_proc *p, const struct py_thread *th, uint64_t chunk, uint64_t top)
{
	p->nregions = 0;
	p->chunk_prev = 0;
	if (!chunk || top <= chunk || (chunk & 7))
		return;
	uint64_t start = chunk, len = top - chunk + 128;   /* +128: the innermost frame's header */
	if (len > MAX_CHUNK_COPY) {
		start = top + 128 - MAX_CHUNK_COPY;
		len = MAX_CHUNK_COPY;
	}
	size_t ahead = 0;
	bool took = p->ahead_th == th && start == chunk && ahead_take(p, 0, chunk, &ahead);
	if (!took)
		ahead_spare(p, 0);
	struct py_region *r = &p->regions[0];
	if (took && ahead >= len) {
		r->addr = chunk;
		r->len = (size_t)len;
	} else if (!region_copy(p, r, start, len)) {
		return;
	}
	p->nregions = 1;
	if (start == chunk && r->len >= CHUNK_HEADER)
		memcpy(&p->chunk_prev, r->buf, 8);
}

/* The read-ahead of older chunk k (copy_prev_chunk): valid when the last pause read the same
 * chunk (in any slot: ahead_take) and the bytes cover its used part. */
static bool prev_chunk_ahead(struct py_proc *p, int k, uint64_t chunk)
{
	size_t ahead = 0;
	if (!ahead_take(p, k, chunk, &ahead) || ahead < CHUNK_HEADER)
		return false;
	struct py_region *r = &p->regions[k];
	uint64_t hdr[3];
	memcpy(hdr, r->buf, sizeof hdr);
	uint64_t used = CHUNK_HEADER + hdr[2] * 8;
	if (hdr[2] > MAX_CHUNK_COPY / 8 || used > hdr[1] || used > ahead)
		return false;
	r->addr = chunk;
	r->len = (size_t)used;
	p->chunk_prev = hdr[0];
	p->nregions++;
	return true;
}

/* Where frame f was in the last chain copied for this thread (its index in th->spec), by binary
 * search of th->spec_ix; -1 if it was not. */
static long spec_index(const struct py_thread *th, uint64_t f)
{
	size_t lo = 0, hi = th->spec_ix.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (th->spec_ix.v[mid].addr < f)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < th->spec_ix.n && th->spec_ix.v[lo].addr == f ? (long)th->spec_ix.v[lo].index : -1;
}

static int by_spec_addr(const void *a, const void *b)
{
	uint64_t x = ((const struct py_spec_ix *)a)->addr, y = ((const struct py_spec_ix *)b)->addr;
	return x < y ? -1 : x > y;
}

/* After a copy (outside the pause): the index of its frames by address, for the next one. */
static void index_spec(struct py_thread *th)
{
	th->spec_ix.n = 0;
	for (size_t k = 0; k < th->spec.n; k++) {
		struct py_spec_ix ix = { th->spec.v[k], (uint32_t)k };
		vec_push(&th->spec_ix, ix);
	}
	qsort(th->spec_ix.v, th->spec_ix.n, sizeof(struct py_spec_ix), by_spec_addr);
}

/*
 * Frame objects are separate heap objects, each needing its own read. But the frames of a chain
 * rarely move between samples: the outer part of it stays, and a recursion called again gets
 * its frames back from the free list at the same addresses. So the first read of the pause
 * takes, besides the thread's current frame, every frame of the last chain copied for this
 * thread (neighbours in a pymalloc pool are read as one range: target_readv), and the walk uses
 * those bytes wherever the chain leads to one of them - they are what is at that address now,
 * so the chain stays exact; a frame that is new is read on its own. (3.10, deep workload, 200
 * frames: the pause went from ~340 us, a read per frame, to one read.)
 */
static int copy_frames_object(struct py_proc *p, struct py_thread *th)
{
	const struct py_layout *L = &p->layout;
	int ptrs[] = { L->frame_back, L->frame_code }, ints[] = { L->frame_lasti };
	size_t want = fields_end(ptrs, 2, 8);
	if (fields_end(ints, 1, 4) > want)
		want = fields_end(ints, 1, 4);
	uint8_t fbuf[512];
	if (want > sizeof fbuf)
		return E_INTERNAL;
	size_t nspec = th->spec_tstate == th->tstate && th->spec_ix.n == th->spec.n ? th->spec.n : 0;
	if (p->spec_cap < nspec * want) {
		p->spec_cap = nspec * want;
		p->spec_buf = xrealloc(p->spec_buf, p->spec_cap);
	}
	vec_reserve(&p->batch_iov, nspec + 3);
	vec_reserve(&p->batch_ok, nspec + 3);
	uint64_t f;
	size_t n = 0;
	p->batch_iov.v[n++] = (struct target_iov){ th->tstate + (uint64_t)L->tstate_frame, &f, 8 };
	for (size_t k = 0; k < nspec; k++)
		p->batch_iov.v[n++] = (struct target_iov){ th->spec.v[k], p->spec_buf + k * want, want };
	/* 3.7-3.10: the GIL holder word too, for py_thread_holds_gil while paused */
	size_t gil_at = 0;
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime && L->runtime_tstate_current >= 0) {
		gil_at = n;
		p->batch_iov.v[n++] = (struct target_iov){ p->runtime + (uint64_t)L->runtime_tstate_current, &p->gilsnap, 8 };
	}
	size_t extra_at = n;
	if (p->extra)
		p->batch_iov.v[n++] = *p->extra;
	memset(p->batch_ok.v, 0, n * sizeof(bool));
	target_readv(p->t, p->batch_iov.v, n, p->batch_ok.v);
	if (p->extra) {
		*p->extra_ok = p->batch_ok.v[extra_at];
		p->extra = NULL;
	}
	p->gilsnap_ok = gil_at && p->batch_ok.v[gil_at];
	if (!p->batch_ok.v[0])
		return E_READ;
	for (int depth = 0; f; depth++) {
		if (depth >= MAX_FRAMES) {
			th->truncated = true;
			break;
		}
		if (f & 7)
			return E_READ;
		const uint8_t *fb = NULL;
		long k = nspec ? spec_index(th, f) : -1;
		if (k >= 0 && p->batch_ok.v[1 + k]) {
			fb = p->spec_buf + (size_t)k * want;
		} else {
			if (target_read(p->t, f, fbuf, want))
				return E_READ;
			fb = fbuf;
		}
		struct py_rawframe r = { .frame = f, .code = field_u64(fb, L->frame_code),
					 .lasti = field_i32(fb, L->frame_lasti), .is_entry = true };
		vec_push(&th->raw, r);
		f = field_u64(fb, L->frame_back);
	}
	th->spec.n = 0;
	for (size_t k = 0; k < th->raw.n; k++)
		vec_push(&th->spec, th->raw.v[k].frame);
	th->spec_ix.n = 0;   /* indexed by py_decode_frames, once the thread runs again */
	th->spec_tstate = th->tstate;
	return 0;
}

/* Bytes [off, off + len) of the thread state as the first read of this pause saw them. */
static bool tsnap_field(const struct py_proc *p, uint64_t tstate, int off, void *out, size_t len)
{
	if (off < 0 || !p->tsnap_addr || tstate + (uint64_t)off < p->tsnap_addr ||
	    tstate + (uint64_t)off + len > p->tsnap_addr + p->tsnap_len)
		return false;
	memcpy(out, p->tsnap + (tstate + (uint64_t)off - p->tsnap_addr), len);
	return true;
}

/* 3.11+: the first read of a pause, one vectored read of: the thread state's fields from the
 * frame pointer to the data stack pointers (with its GIL status where 3.12+ keeps it there);
 * 3.7-3.11's GIL holder word; and, read ahead from what the last pause of this thread found,
 * the eval loop's current-frame slot (3.11, 3.12) and the data stack chunks. The read-ahead is
 * used only where this pause's own pointers lead to the same addresses, so it stays exact.
 * Sets *f (the innermost frame), *cframe (3.11/3.12) and ds (data stack chunk, top). */
/* 3.11+: the thread state's bytes the first read of a copy takes, [*lo, *hi) from the thread
 * state: its frame pointer, data stack pointers and GIL status fields. False when this layout
 * has no frame pointer or they lie too far apart. */
static bool tstate_span(const struct py_proc *p, int *lo_out, int *hi_out)
{
	const struct py_layout *L = &p->layout;
	bool via_cframe = L->frame_model == PYFRAME_311 || L->frame_model == PYFRAME_312;
	int frame_off = via_cframe ? L->tstate_cframe : L->tstate_current_frame;
	int offs[][2] = { { frame_off, 8 }, { L->tstate_datastack_chunk, 16 }, { L->tstate_status, 4 },
			  { L->tstate_holds_gil, 4 } };
	int lo = -1, hi = -1;
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		if (offs[i][0] < 0)
			continue;
		if (lo < 0 || offs[i][0] < lo)
			lo = offs[i][0];
		if (offs[i][0] + offs[i][1] > hi)
			hi = offs[i][0] + offs[i][1];
	}
	*lo_out = lo;
	*hi_out = hi;
	return frame_off >= 0 && hi - lo <= (int)sizeof p->tsnap;
}

static int first_read(struct py_proc *p, struct py_thread *th, uint64_t *f, uint64_t *cframe, uint64_t ds[2])
{
	const struct py_layout *L = &p->layout;
	bool via_cframe = L->frame_model == PYFRAME_311 || L->frame_model == PYFRAME_312;
	int frame_off = via_cframe ? L->tstate_cframe : L->tstate_current_frame;
	int lo, hi;
	if (!tstate_span(p, &lo, &hi))
		return E_INTERNAL;
	bool ahead = th->spec_tstate == th->tstate;
	struct target_iov iov[3 + 4 + 1];
	bool ok[3 + 4 + 1] = { false };
	size_t n = 0;
	iov[n++] = (struct target_iov){ th->tstate + (uint64_t)lo, p->tsnap, (size_t)(hi - lo) };
	size_t gil_at = 0, cf_at = 0, chunks_at;
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime && L->runtime_tstate_current >= 0) {
		gil_at = n;
		iov[n++] = (struct target_iov){ p->runtime + (uint64_t)L->runtime_tstate_current, &p->gilsnap, 8 };
	}
	uint64_t cf_frame = 0;
	if (via_cframe && ahead && th->spec_cframe) {
		cf_at = n;
		iov[n++] = (struct target_iov){ th->spec_cframe + (uint64_t)L->cframe_current_frame, &cf_frame, 8 };
	}
	chunks_at = n;
	int nchunks = ahead ? th->spec_nchunks : 0;
	for (int k = 0; k < nchunks; k++) {
		struct py_region *r = &p->regions[k];
		if (r->cap < th->spec_chunks[k].len) {
			r->buf = xrealloc(r->buf, th->spec_chunks[k].len);
			r->cap = th->spec_chunks[k].len;
		}
		iov[n++] = (struct target_iov){ th->spec_chunks[k].addr, r->buf, th->spec_chunks[k].len };
	}
	size_t extra_at = n;
	if (p->extra)
		iov[n++] = *p->extra;   /* last: a short read of it costs the others nothing */
	target_readv(p->t, iov, n, ok);
	if (p->extra) {
		*p->extra_ok = ok[extra_at];
		p->extra = NULL;
	}
	if (!ok[0])
		return E_READ;
	p->tsnap_addr = th->tstate + (uint64_t)lo;
	p->tsnap_len = (size_t)(hi - lo);
	p->gilsnap_ok = gil_at && ok[gil_at];
	p->ahead_th = nchunks ? th : NULL;
	for (int k = 0; k < NSLOTS; k++) {
		p->regions[k].ahead = k < nchunks && ok[chunks_at + (size_t)k] ? th->spec_chunks[k].addr : 0;
		p->regions[k].ahead_len = k < nchunks ? th->spec_chunks[k].len : 0;
	}
	uint64_t v = 0;
	tsnap_field(p, th->tstate, frame_off, &v, 8);
	if (via_cframe) {
		*cframe = v;
		if (!v)
			return 0;
		if (cf_at && ok[cf_at] && v == th->spec_cframe)
			*f = cf_frame;
		else if (target_read_u64(p->t, v + (uint64_t)L->cframe_current_frame, f))
			return E_READ;
	} else {
		*f = v;
	}
	if (!tsnap_field(p, th->tstate, L->tstate_datastack_chunk, ds, 16))
		ds[0] = ds[1] = 0;
	return 0;
}

/* Move to the front of th's list of shims seen (py_tick_reads). */
static void remember_seen_shim(struct py_thread *th, uint64_t f)
{
	int n = (int)(sizeof th->seen_shims / sizeof th->seen_shims[0]), at = n - 1;
	for (int i = 0; i < n; i++)
		if (th->seen_shims[i] == f) {
			at = i;
			break;
		}
	memmove(&th->seen_shims[1], &th->seen_shims[0], (size_t)at * sizeof th->seen_shims[0]);
	th->seen_shims[0] = f;
}

/* After a 3.11+ copy: what the next pause of this thread reads ahead (a little more of the
 * current chunk than is used now, for the frames it may push meanwhile). */
static void remember_ahead(struct py_proc *p, struct py_thread *th, uint64_t cframe)
{
	th->spec_cframe = cframe;
	th->spec_nchunks = 0;
	int n = p->nregions < 4 ? p->nregions : 4;
	for (int k = 0; k < n; k++) {
		const struct py_region *r = &p->regions[k];
		uint64_t hdr[3];
		if (r->len < CHUNK_HEADER)
			break;
		memcpy(hdr, r->buf, sizeof hdr);
		/* the chunk's own size bounds the read (past it may be unmapped); an older chunk
		 * gets the innermost frame's header too, for when the chain returns into it */
		size_t len = r->len + (k == 0 ? 2048 : 128);
		if (hdr[1] >= CHUNK_HEADER && len > hdr[1])
			len = (size_t)hdr[1];
		if (len < r->len)
			len = r->len;
		th->spec_chunks[k].addr = r->addr;
		th->spec_chunks[k].len = len;
		th->spec_nchunks = k + 1;
	}
	th->spec_tstate = th->tstate;
}

/* The bytes of a _PyInterpreterFrame that a walk reads, from its start. */
static size_t iframe_want(const struct py_layout *L)
{
	int fields[] = { L->iframe_previous, L->iframe_code, L->iframe_instr, L->iframe_is_entry, L->iframe_owner };
	return fields_end(fields, sizeof fields / sizeof fields[0], 8);
}

static int walk_frames_interp(struct py_proc *p, struct py_thread *th, uint64_t f)
{
	const struct py_layout *L = &p->layout;
	size_t want = iframe_want(L);
	uint8_t fbuf[256];
	if (want > sizeof fbuf)
		return E_INTERNAL;
	for (int depth = 0; f; depth++) {
		if (depth >= MAX_FRAMES) {
			th->truncated = true;
			return 0;
		}
		if ((f & 7) || mem_read(p, f, fbuf, want))
			return E_READ;
		struct py_rawframe r = {
			.frame = f,
			.code = field_u64(fbuf, L->iframe_code),
			.instr = field_u64(fbuf, L->iframe_instr),
			.owner = L->iframe_owner >= 0 ? fbuf[L->iframe_owner] : 0,
			.is_entry = L->iframe_is_entry >= 0 && fbuf[L->iframe_is_entry],
		};
		if (L->frame_model == PYFRAME_314)
			r.code &= ~(uint64_t)3;   /* 3.14: f_executable is a tagged _PyStackRef */
		vec_push(&th->raw, r);
		f = field_u64(fbuf, L->iframe_previous);
	}
	return 0;
}

/* 3.11+, the part that needs the thread to stand still: the first read and the data stack
 * copy. What the walk needs next is left in p->walk_*. */
static int copy_frames_interp_begin(struct py_proc *p, struct py_thread *th)
{
	uint64_t f = 0, cframe = 0, ds[2] = { 0, 0 };
	int rc = first_read(p, th, &f, &cframe, ds);
	if (!rc && f)
		copy_datastack(p, th, ds[0], ds[1]);
	p->walk_th = th;
	p->walk_f = rc ? 0 : f;
	p->walk_cframe = cframe;
	p->walk_ds0 = ds[0];
	return rc;
}

/* The walk through what copy_frames_interp_begin copied (the older chunks it reaches are read
 * then, live). */
static int copy_frames_interp_end(struct py_proc *p, struct py_thread *th, int rc)
{
	uint64_t reads = p->t->reads;
	if (!rc && p->walk_f)
		rc = walk_frames_interp(p, th, p->walk_f);
	th->walk_live = p->t->reads != reads;
	p->walk_th = NULL;
	p->ahead_th = NULL;
	for (size_t i = 0; !rc && i < th->raw.n; i++) {
		bool in_chunk = false;
		for (int k = 0; k < p->nregions && !in_chunk; k++)
			in_chunk = th->raw.v[i].frame >= p->regions[k].addr &&
				   th->raw.v[i].frame < p->regions[k].addr + p->regions[k].len;
		if (!in_chunk)
			remember_seen_shim(th, th->raw.v[i].frame);
	}
	/* Read ahead next time only what this copy really found at the chunks' starts. */
	if (rc || !p->nregions || p->regions[0].addr != p->walk_ds0)
		p->nregions = 0;
	remember_ahead(p, th, rc ? 0 : p->walk_cframe);
	return rc;
}

static int copy_frames_interp(struct py_proc *p, struct py_thread *th)
{
	return copy_frames_interp_end(p, th, copy_frames_interp_begin(p, th));
}

static bool is_shim(const struct py_layout *L, uint8_t owner);

void py_next_reads(struct py_proc *p, const struct py_thread *th, struct py_ranges *out)
{
	const struct py_layout *L = &p->layout;
	bool same = th->spec_tstate == th->tstate;
#define WANT(a, l) do { struct target_iov w_ = { (a), NULL, (l) }; vec_push(out, w_); } while (0)
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime && L->runtime_tstate_current >= 0)
		WANT(p->runtime + (uint64_t)L->runtime_tstate_current, 8);
	if (L->frame_model == PYFRAME_OBJECT) {
		int ptrs[] = { L->frame_back, L->frame_code }, ints[] = { L->frame_lasti };
		size_t want = fields_end(ptrs, 2, 8);
		if (fields_end(ints, 1, 4) > want)
			want = fields_end(ints, 1, 4);
		WANT(th->tstate + (uint64_t)L->tstate_frame, 8);
		for (size_t k = 0; same && k < th->spec.n; k++)
			WANT(th->spec.v[k], want);
	} else {
		int lo, hi;
		if (tstate_span(p, &lo, &hi))
			WANT(th->tstate + (uint64_t)lo, (size_t)(hi - lo));
		if ((L->frame_model == PYFRAME_311 || L->frame_model == PYFRAME_312) && same && th->spec_cframe)
			WANT(th->spec_cframe + (uint64_t)L->cframe_current_frame, 8);
		for (int k = 0; same && k < th->spec_nchunks; k++)
			WANT(th->spec_chunks[k].addr, th->spec_chunks[k].len);
		/* frames outside the data stack: 3.12+'s entry shims live in the eval loop's C frame */
		for (size_t i = 0; same && i < th->raw.n; i++) {
			uint64_t f = th->raw.v[i].frame;
			bool in_chunk = false;
			for (int k = 0; k < th->spec_nchunks && !in_chunk; k++)
				in_chunk = f >= th->spec_chunks[k].addr && f < th->spec_chunks[k].addr + th->spec_chunks[k].len;
			if (!in_chunk)
				WANT(f, iframe_want(L));
		}
	}
	/* the code objects its last chain ran (read_codes validates them) */
	for (size_t i = 0; i < th->raw.n; i++) {
		uint64_t c = th->raw.v[i].code;
		bool seen = false;
		for (size_t k = i; k-- > 0 && !seen;)
			seen = th->raw.v[k].code == c;
		if (c && !seen && !is_shim(L, th->raw.v[i].owner))
			WANT(c, (size_t)L->code_size);
	}
#undef WANT
}

/* The frame objects py_tick_reads chases (3.10 and older): deeper chains go past its copy. */
#define TICK_MAX_FRAMES 400

void py_tick_reads(struct py_proc *p, struct py_thread *th, struct py_chases *out)
{
	const struct py_layout *L = &p->layout;
#define CHASE(a, l, b, o) do { struct target_chase c_ = { (a), (l), (b), (o), 0 }; vec_push(out, c_); } while (0)
	th->spec_tstate = 0;   /* nothing read ahead: the walk reads only what this copy holds */
	if (L->gil_model == PYGIL_RUNTIME_TSTATE && p->runtime && L->runtime_tstate_current >= 0)
		CHASE(p->runtime + (uint64_t)L->runtime_tstate_current, 8, -1, 0);
	if (L->gil_model == PYGIL_INTERP_GIL_PTR && p->gil_ptr && L->gil_locked >= 0 && L->gil_last_holder >= 0) {
		int lo = L->gil_last_holder < L->gil_locked ? L->gil_last_holder : L->gil_locked;
		int hi = (L->gil_last_holder > L->gil_locked ? L->gil_last_holder : L->gil_locked) + 8;
		CHASE(p->gil_ptr + (uint64_t)lo, (size_t)(hi - lo), -1, 0);
	}
	if (L->frame_model == PYFRAME_OBJECT) {
		int ptrs[] = { L->frame_back, L->frame_code }, ints[] = { L->frame_lasti };
		size_t want = fields_end(ptrs, 2, 8);
		if (fields_end(ints, 1, 4) > want)
			want = fields_end(ints, 1, 4);
		int from = (int)out->n;
		CHASE(th->tstate + (uint64_t)L->tstate_frame, 8, -1, 0);
		for (int k = 0; k < TICK_MAX_FRAMES; k++) {
			int at = (int)out->n;
			CHASE(0, want, from, k ? (size_t)L->frame_back : 0);
			from = at;
		}
	} else {
		int lo, hi;
		if (!tstate_span(p, &lo, &hi) || L->tstate_datastack_chunk < lo)
			return;
		int ts = (int)out->n;
		CHASE(th->tstate + (uint64_t)lo, (size_t)(hi - lo), -1, 0);
		if (L->frame_model == PYFRAME_311 || L->frame_model == PYFRAME_312)
			CHASE((uint64_t)L->cframe_current_frame, 8, ts, (size_t)(L->tstate_cframe - lo));
		/* the current chunk, then each older one ({ previous, size, top } leads each) */
		int from = (int)out->n;
		CHASE(0, CHUNK_GUESS, ts, (size_t)(L->tstate_datastack_chunk - lo));
		for (int k = 1; k < 4; k++) {
			int at = (int)out->n;
			CHASE(0, CHUNK_GUESS, from, 0);
			from = at;
		}
		size_t ns = sizeof th->seen_shims / sizeof th->seen_shims[0];
		for (size_t k = 0; k < ns && th->seen_shims[k]; k++)
			CHASE(th->seen_shims[k], iframe_want(L), -1, 0);
	}
#undef CHASE
}

static void copy_start(struct py_proc *p, struct py_thread *th, const struct target_iov *extra, bool *extra_ok)
{
	p->extra = extra && extra_ok ? extra : NULL;
	p->extra_ok = extra_ok;
	if (extra_ok)
		*extra_ok = false;
	th->raw.n = 0;
	th->frames.n = 0;
	th->truncated = false;
	p->tsnap_addr = 0;   /* kept until py_decode_frames: py_thread_holds_gil reads it meanwhile */
	p->gilsnap_ok = false;
}

static int copy_done(struct py_proc *p, struct py_thread *th, int rc, struct err *e)
{
	p->nregions = 0;
	p->extra = NULL;
	if (rc)
		return err_set(e, target_alive(p->t) ? rc : E_NOPROC, "Failed to read the frames of thread %#lx",
			       (unsigned long)th->thread_id);
	return 0;
}

int py_copy_frames(struct py_proc *p, struct py_thread *th, const struct target_iov *extra, bool *extra_ok,
		   struct err *e)
{
	copy_start(p, th, extra, extra_ok);
	int rc = p->layout.frame_model == PYFRAME_OBJECT ? copy_frames_object(p, th) : copy_frames_interp(p, th);
	return copy_done(p, th, rc, e);
}

int py_copy_frames_begin(struct py_proc *p, struct py_thread *th, const struct target_iov *extra, bool *extra_ok,
			 struct err *e)
{
	if (p->layout.frame_model == PYFRAME_OBJECT || th->walk_live)
		return py_copy_frames(p, th, extra, extra_ok, e);
	copy_start(p, th, extra, extra_ok);
	int rc = copy_frames_interp_begin(p, th);
	p->extra = NULL;
	return rc ? copy_done(p, th, copy_frames_interp_end(p, th, rc), e) : 0;
}

int py_copy_frames_end(struct py_proc *p, struct py_thread *th, struct err *e)
{
	if (p->walk_th != th)
		return 0;   /* py_copy_frames_begin did it all */
	int rc = copy_done(p, th, copy_frames_interp_end(p, th, 0), e);
	if (!rc && th->walk_live)
		rc = err_set(e, E_AGAIN, "Thread %#lx's chain went past its copy", (unsigned long)th->thread_id);
	return rc;
}

/* 3.12+: frames owned by the C stack (3.12, 3.13: owner 3) or the interpreter (3.14: owner >= 3)
 * are the shims an eval call pushes below the first Python frame it runs. */
static bool is_shim(const struct py_layout *L, uint8_t owner)
{
	if (L->frame_model == PYFRAME_312 || L->frame_model == PYFRAME_313)
		return owner == 3;
	return L->frame_model == PYFRAME_314 && owner >= 3;
}

/* Read every distinct code object of th->raw with one vectored read; returns the number of
 * distinct objects, whose bytes are at p->batch_buf + i * code_size. */
static size_t read_codes(struct py_proc *p, const struct py_thread *th)
{
	const struct py_layout *L = &p->layout;
	size_t size = (size_t)L->code_size;
	p->batch_codes.n = 0;
	for (size_t i = 0; i < th->raw.n; i++) {
		uint64_t c = th->raw.v[i].code;
		if (!c || is_shim(L, th->raw.v[i].owner))
			continue;
		bool seen = false;
		for (size_t k = p->batch_codes.n; k-- > 0 && !seen;)
			seen = p->batch_codes.v[k] == c;
		if (!seen)
			vec_push(&p->batch_codes, c);
	}
	size_t n = p->batch_codes.n;
	if (p->batch_cap < n * size) {
		p->batch_cap = n * size;
		p->batch_buf = xrealloc(p->batch_buf, p->batch_cap);
	}
	vec_reserve(&p->batch_iov, n);
	vec_reserve(&p->batch_ok, n);
	for (size_t i = 0; i < n; i++) {
		p->batch_iov.v[i] = (struct target_iov){ p->batch_codes.v[i], p->batch_buf + i * size, size };
		p->batch_ok.v[i] = false;
	}
	target_readv(p->t, p->batch_iov.v, n, p->batch_ok.v);
	return n;
}

static const struct py_code *code_of(struct py_proc *p, uint64_t addr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p->batch_codes.v[i] == addr)
			return p->batch_ok.v[i] && !(addr & 7)
				       ? code_from_buf(p, addr, p->batch_buf + i * (size_t)p->layout.code_size)
				       : NULL;
	return NULL;
}

int py_decode_frames(struct py_proc *p, struct py_thread *th, enum py_linemode mode, struct err *e)
{
	const struct py_layout *L = &p->layout;
	p->tsnap_addr = 0;
	p->gilsnap_ok = false;
	if (L->frame_model == PYFRAME_OBJECT && th->spec_ix.n != th->spec.n)
		index_spec(th);
	size_t ncodes = read_codes(p, th);
	th->frames.n = 0;
	for (size_t i = 0; i < th->raw.n; i++) {
		const struct py_rawframe *r = &th->raw.v[i];
		if (L->frame_model != PYFRAME_OBJECT && is_shim(L, r->owner)) {
			mark_last_entry(th);   /* a shim ends the group above it */
			continue;
		}
		const struct py_code *c = code_of(p, r->code, ncodes);
		if (!c) {
			/* 3.13+: f_executable may legitimately be something else than code. */
			if (L->frame_model >= PYFRAME_313)
				continue;
			return err_set(e, target_alive(p->t) ? E_READ : E_NOPROC,
				       "Failed to read a code object of thread %#lx", (unsigned long)th->thread_id);
		}
		int64_t addr;
		if (L->frame_model == PYFRAME_OBJECT) {
			addr = L->linetable == PYLINES_310 ? (int64_t)r->lasti * 2 : r->lasti;
		} else {
			addr = (int64_t)(r->instr - (r->code + (uint64_t)L->code_code_adaptive));
			/* Incomplete frames (not yet at their first traceable instruction) are hidden by
			 * CPython; skip them but keep their group boundary. Generator frames never are. */
			if (r->owner != 1 && addr >= -2 && addr < (int64_t)c->firsttraceable * 2) {
				if (r->is_entry)
					mark_last_entry(th);
				continue;
			}
			/* (compared in code units: ncodeunits comes from the target and may be huge) */
			if (c->ncodeunits > 0 && (addr < -2 || addr / 2 > c->ncodeunits))
				return err_set(e, E_READ, "Torn frame in thread %#lx (instruction outside its code)",
					       (unsigned long)th->thread_id);
		}
		push_frame(th, c, r->frame, line_of(p, c, addr, mode), r->is_entry);
	}
	/* The oldest frame always ends a group (it is what the outermost eval call runs). */
	mark_last_entry(th);
	return 0;
}

bool py_chain_complete(struct py_proc *p, const struct py_thread *th)
{
	const struct py_layout *L = &p->layout;
	if (L->frame_model == PYFRAME_OBJECT || th->truncated || th->raw.n == 0)
		return true;
	const struct py_rawframe *last = &th->raw.v[th->raw.n - 1];
	return L->frame_model == PYFRAME_311 ? last->is_entry : is_shim(L, last->owner);
}

int py_read_frames(struct py_proc *p, struct py_thread *th, enum py_linemode mode, struct err *e)
{
	int rc = py_copy_frames(p, th, NULL, NULL, e);
	return rc ? rc : py_decode_frames(p, th, mode, e);
}

bool py_thread_holds_gil(struct py_proc *p, const struct py_thread *th)
{
	const struct py_layout *L = &p->layout;
	/* 2.7's GIL is dropped and retaken every 100 bytecodes, microseconds apart, and a ptrace
	 * stop tends to land in that window: the holder read before any pause (py_read_threads)
	 * is the better estimate there (measured on the contention workload: 44% vs 90% of
	 * samples held). From 3.2 the GIL changes hands at most every 5 ms; re-reading it here
	 * is what keeps it from going stale while other threads are paused. */
	if (p->version.major == 2)
		return th->holds_gil;
	/* Paused, the first read of the pause (3.11+) has already read what is needed. */
	if (L->tstate_holds_gil >= 0) {
		int32_t v;
		if (tsnap_field(p, th->tstate, L->tstate_holds_gil, &v, 4))
			return v != 0;
		return target_read(p->t, th->tstate + (uint64_t)L->tstate_holds_gil, &v, 4) == 0 ? v != 0 : th->holds_gil;
	}
	if (L->tstate_status_holds_gil_bit && L->tstate_status >= 0) {
		int32_t v;
		if (tsnap_field(p, th->tstate, L->tstate_status, &v, 4))
			return (v & (int32_t)L->tstate_status_holds_gil_bit) != 0;
		return target_read(p->t, th->tstate + (uint64_t)L->tstate_status, &v, 4) == 0
			       ? (v & (int32_t)L->tstate_status_holds_gil_bit) != 0 : th->holds_gil;
	}
	if (p->gilsnap_ok && L->gil_model == PYGIL_RUNTIME_TSTATE)
		return p->gilsnap == th->tstate;
	if (L->gil_model == PYGIL_INTERP_GIL_PTR) {
		/* last_holder and locked sit next to each other: one read once the pointer is known */
		if (!p->gil_ptr && target_read_u64(p->t, p->interp + (uint64_t)L->interp_ceval_gil, &p->gil_ptr))
			return th->holds_gil;
		uint8_t buf[32];
		int lo = L->gil_last_holder < L->gil_locked ? L->gil_last_holder : L->gil_locked;
		int hi = (L->gil_last_holder > L->gil_locked ? L->gil_last_holder : L->gil_locked) + 8;
		if (lo < 0 || hi - lo > (int)sizeof buf || target_read(p->t, p->gil_ptr + (uint64_t)lo, buf, (size_t)(hi - lo)))
			return th->holds_gil;
		int32_t locked;
		memcpy(&locked, buf + (L->gil_locked - lo), 4);
		return locked && field_u64(buf, L->gil_last_holder - lo) == th->tstate;
	}
	uint64_t holder;
	return py_gil_holder(p, &holder) == 0 ? holder == th->tstate : th->holds_gil;
}
