/*
 * symbolize.c - native addresses to names: module, function, source file and line, and the chain
 * of inlined calls, using elfutils libdwfl over the target's ELF modules.
 *
 * One Dwfl per process, for its lifetime. We report the modules ourselves from the target's maps
 * (files opened through /proc/PID/root, so containers work); libdwfl opens only the ELF headers at
 * report time and loads a module's DWARF (or its separate debug file) on the first lookup in it.
 * Results are cached by address; a change of the maps re-reports the modules (libdwfl keeps the
 * ones that did not move) and empties the cache.
 */
#include <capstone/capstone.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "symbolize.h"

#define SYM_MAX_FRAMES_PER_PC 64           /* inline depth we keep for one pc */
#define SYM_CACHE_LIMIT (1u << 20)         /* frames kept before the cache starts over */
#define SYM_RETURN_BIT (1ull << 63)
#define SYM_MAX_PART (4u << 20)            /* larger unnamed code ranges are not scanned */
#define SYM_PART_VOTES 8

struct sym_span {
	uint32_t first, count;
};

#define SYM_NONE UINT32_MAX

/* [lo, hi) of entry ix of a function table or a CU's list of functions (DWARF addresses: no bias). */
struct sym_range {
	uint64_t lo, hi;
	uint32_t ix;
};
typedef VEC(struct sym_range) sym_ranges;

/* A function, or a call inlined into it, in the tree of a function's DIEs. */
struct sym_scope {
	Dwarf_Die die;
	uint32_t parent;   /* the scope it is inlined into (SYM_NONE: the function itself) */
	uint32_t depth;
	bool inlined;
};

/* A function of a CU and, once an address in it was looked up, every call inlined into it with
 * its ranges: an address's chain of inlined calls is then a scan of these, where libdw's
 * dwarf_getscopes walks the CU's DIEs from the top for each address (1.2 ms a new address in
 * _PyEval_EvalFrameDefault, whose CU is all of ceval.c: over half of mixspy's CPU in the first
 * seconds of --native on a busy Python loop, each sample's innermost pc being new). */
struct sym_fn {
	Dwarf_Die die;
	bool built;
	VEC(struct sym_scope) scopes;
	sym_ranges ranges;   /* of scopes, by lo */
};

/* An ELF symbol's range, known to hold that symbol alone: no other symbol starts inside it. */
struct sym_known {
	uint64_t lo, hi;
	const char *name;   /* interned */
};

/* A range of a module's addresses (in the target) and the CU that holds its code. Without
 * .debug_aranges (pyenv's libpython) dwfl_module_addrdie looks through the CUs for each address:
 * ~0.5 ms, most of what a new address cost once its symbol and inlined calls came from tables. */
struct sym_cu_at {
	uint64_t lo, hi;
	Dwarf_Die *cu;      /* libdwfl's, for the Dwfl's life */
	Dwarf_Addr bias;
};

/* A module's symbols as dwfl_module_addrinfo found them. It scans the whole symbol table for
 * each address (three quarters of a new address's cost in libpython, ~0.6 ms), so a symbol it
 * found is kept by its range, and another address in that range is given the same symbol - when
 * no other symbol starts inside the range (glibc's string functions have entry points inside one
 * another), which the sorted starts of the module's symbols tell. */
struct sym_mod {
	VEC(uint64_t) starts;         /* every defined symbol's address, sorted */
	VEC(struct sym_known) known;  /* by lo, not overlapping */
	VEC(struct sym_cu_at) cus;    /* by lo, not overlapping */
};

/* A CU's functions (its DW_TAG_subprogram children with code) by address. */
struct sym_cu {
	VEC(struct sym_fn *) fns;
	sym_ranges ranges;   /* of fns, by lo */
};

struct symbolizer {
	struct target *t;
	struct interner *strs;
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks;
	char *debuginfo_path;
	uint64_t maps_generation;
	uint64_t modules_sig;           /* sym_modules_sig of the maps last reported */
	bool stale;
	struct hmap cache;              /* pc (| SYM_RETURN_BIT) -> index into spans */
	struct hmap parts;              /* start of an unnamed FDE range -> interned name or 0 */
	csh cs;                         /* opened on first use; cs_state says how that went */
	int cs_state;                   /* 0 not tried, 1 open, -1 failed */
	VEC(struct sym_span) spans;
	VEC(struct sym_frame) frames;
	struct hmap cus;                /* a CU DIE's address -> index into cu_tabs */
	struct hmap mods;               /* a Dwfl_Module -> index into mod_syms */
	VEC(struct sym_mod *) mod_syms;
	VEC(struct sym_cu *) cu_tabs;
	bool reference;                 /* sym_reference: libdw's lookups for every address */
};

/* ---- modules --------------------------------------------------------------------------------- */

static bool sym_map_is_file(const struct map *mp)
{
	return mp->path && mp->path[0] == '/' && mp->inode != 0;
}

/* The file behind a mapping. A file deleted or replaced on disk since it was mapped (an upgrade
 * under a running process) is still reachable, exactly as mapped, through /proc/PID/map_files. */
static char *sym_module_file(struct symbolizer *s, const struct map *mp)
{
	char *file = target_file_path(s->t, mp->path);
	struct stat st;
	if (file && stat(file, &st) == 0 && st.st_ino == mp->inode)
		return file;
	free(file);
	char mf[96];
	snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)s->t->pid, mp->start, mp->end);
	return access(mf, R_OK) == 0 ? xstrdup(mf) : target_file_path(s->t, mp->path);
}

/* Report every mapped ELF file that has an executable mapping. libdwfl computes the bias from
 * the address of the mapping at file offset 0. */
static void sym_report_modules(struct symbolizer *s)
{
	struct target *t = s->t;
	dwfl_report_begin(s->dwfl);
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *mp = &t->maps.v[i];
		if (!sym_map_is_file(mp) || mp->offset != 0)
			continue;
		/* Only files with code: look for an executable mapping of the same file after it. */
		bool has_x = false;
		for (size_t j = i; j < t->maps.n && j < i + 16; j++) {
			const struct map *mj = &t->maps.v[j];
			if (!mj->path || strcmp(mj->path, mp->path) != 0)
				break;
			has_x |= mj->x;
		}
		if (!has_x)
			continue;
		char *file = sym_module_file(s, mp);
		if (!file)
			continue;
		dwfl_report_elf(s->dwfl, mp->path, file, -1, mp->start, false);
		free(file);
	}
	dwfl_report_end(s->dwfl, NULL, NULL);
	s->maps_generation = t->maps_generation;
	s->stale = false;
}

/* A digest of the file mappings: the maps change all the time (malloc, numpy's arrays), the
 * modules only on dlopen / dlclose. */
static uint64_t sym_modules_sig(const struct target *t)
{
	uint64_t h = 0;
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *mp = &t->maps.v[i];
		if (!sym_map_is_file(mp))
			continue;
		uint64_t f[4] = { mp->start, mp->end, mp->offset, mp->inode };
		h = hash_bytes(f, sizeof(f), h);
		h = hash_bytes(mp->path, strlen(mp->path), h);
	}
	return h;
}

static void sym_fn_tables_free(struct symbolizer *s)
{
	for (size_t i = 0; i < s->cu_tabs.n; i++) {
		struct sym_cu *c = s->cu_tabs.v[i];
		for (size_t k = 0; k < c->fns.n; k++) {
			vec_free(&c->fns.v[k]->scopes);
			vec_free(&c->fns.v[k]->ranges);
			free(c->fns.v[k]);
		}
		vec_free(&c->fns);
		vec_free(&c->ranges);
		free(c);
	}
	s->cu_tabs.n = 0;
	hmap_clear(&s->cus);
}

static void sym_mods_free(struct symbolizer *s)
{
	for (size_t i = 0; i < s->mod_syms.n; i++) {
		vec_free(&s->mod_syms.v[i]->starts);
		vec_free(&s->mod_syms.v[i]->known);
		vec_free(&s->mod_syms.v[i]->cus);
		free(s->mod_syms.v[i]);
	}
	s->mod_syms.n = 0;
	hmap_clear(&s->mods);
}

static void sym_cache_clear(struct symbolizer *s)
{
	sym_fn_tables_free(s);   /* their DIEs point into the Dwfl's data, which may be rebuilt */
	sym_mods_free(s);
	hmap_clear(&s->cache);
	hmap_clear(&s->parts);
	s->spans.n = 0;
	s->frames.n = 0;
}

static void sym_sync(struct symbolizer *s)
{
	if (!s->stale && s->maps_generation == s->t->maps_generation)
		return;
	uint64_t sig = sym_modules_sig(s->t);
	if (!s->stale && sig == s->modules_sig) {
		s->maps_generation = s->t->maps_generation;
		return;
	}
	/* Start over rather than re-report into the old Dwfl: a module reported at an address
	 * that an unloaded one still holds there fails ("address range overlaps an existing
	 * module"), and dlopen is rare enough that reloading DWARF on demand is cheap. */
	Dwfl *fresh = dwfl_begin(&s->callbacks);
	if (fresh) {
		dwfl_end(s->dwfl);
		s->dwfl = fresh;
	}
	s->modules_sig = sig;
	sym_report_modules(s);
	sym_cache_clear(s);
}

/* ---- resolving one address ------------------------------------------------------------------- */

static const char *sym_basename(const char *p)
{
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

/* "libfoo.so+0x1234" (file offset) for a mapped file, "0x7f..." for anything else. */
static const char *sym_fallback_name(struct symbolizer *s, uint64_t pc, const char **module)
{
	char buf[256];
	const struct map *mp = target_map_at(s->t, pc);
	if (mp && mp->path && mp->path[0]) {
		snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, sym_basename(mp->path), pc - mp->start + mp->offset);
		if (!*module)
			*module = intern(s->strs, mp->path);
	} else {
		snprintf(buf, sizeof(buf), "0x%" PRIx64, pc);
	}
	return intern(s->strs, buf);
}

static const char *sym_call_file(struct symbolizer *s, Dwarf_Die *cu, Dwarf_Die *inl, int *line)
{
	Dwarf_Attribute attr;
	Dwarf_Word idx = 0, ln = 0;
	*line = 0;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &attr), &ln) == 0 && ln < INT32_MAX)
		*line = (int)ln;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &attr), &idx) != 0)
		return NULL;
	Dwarf_Files *files;
	size_t nfiles;
	if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	const char *f = dwarf_filesrc(files, idx, NULL, NULL);
	return f ? intern(s->strs, f) : NULL;
}

/* ---- ELF symbols (see struct sym_mod) ---------------------------------------------------------- */

static int sym_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct sym_mod *sym_mod_of(struct symbolizer *s, Dwfl_Module *mod)
{
	uint64_t ix;
	if (hmap_get(&s->mods, (uint64_t)(uintptr_t)mod, &ix))
		return s->mod_syms.v[ix];
	struct sym_mod *m = xcalloc(1, sizeof *m);
	int n = dwfl_module_getsymtab(mod);
	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, NULL, NULL);
		int type = GELF_ST_TYPE(sym.st_info);
		if (name && shndx != SHN_UNDEF && type != STT_SECTION && type != STT_FILE && type != STT_TLS)
			vec_push(&m->starts, (uint64_t)addr);
	}
	if (m->starts.n > 1)
		qsort(m->starts.v, m->starts.n, sizeof(uint64_t), sym_u64_cmp);
	hmap_put(&s->mods, (uint64_t)(uintptr_t)mod, s->mod_syms.n);
	vec_push(&s->mod_syms, m);
	return m;
}

/* The index of the first of n records (size bytes each, from base, sorted by the uint64_t at
 * offset key) whose key is above a: n when none is. Serves the symbol starts (key: the start) and
 * the known symbol and CU ranges (key: the end, so the record found is the one that may hold a). */
static size_t sym_first_above(const void *base, size_t n, size_t size, size_t key, uint64_t a)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v;
		memcpy(&v, (const char *)base + mid * size + key, sizeof v);
		if (v <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The index of the first known range of m whose end is above a. */
static size_t sym_known_at(const struct sym_mod *m, uint64_t a)
{
	return sym_first_above(m->known.v, m->known.n, sizeof *m->known.v, offsetof(struct sym_known, hi), a);
}

/* The name of the ELF symbol that holds a (interned), as dwfl_module_addrinfo finds it; NULL
 * when there is none with a name. */
static const char *sym_symbol_at(struct symbolizer *s, Dwfl_Module *mod, uint64_t a)
{
	GElf_Off off;
	GElf_Sym sym;
	if (s->reference) {
		const char *sname = dwfl_module_addrinfo(mod, a, &off, &sym, NULL, NULL, NULL);
		return sname && sname[0] ? intern(s->strs, sname) : NULL;
	}
	struct sym_mod *m = sym_mod_of(s, mod);
	size_t k = sym_known_at(m, a);
	if (k < m->known.n && m->known.v[k].lo <= a)
		return m->known.v[k].name;
	const char *sname = dwfl_module_addrinfo(mod, a, &off, &sym, NULL, NULL, NULL);
	if (!sname || !sname[0])
		return NULL;
	const char *name = intern(s->strs, sname);
	uint64_t lo = a - off, hi = lo + sym.st_size;
	if (sym.st_size == 0 || off >= sym.st_size)
		return name;   /* a sizeless symbol, or the nearest one below: not a range */
	/* alone in its range: the first start above lo is at hi or beyond */
	size_t i = sym_first_above(m->starts.v, m->starts.n, sizeof *m->starts.v, 0, lo);
	k = sym_known_at(m, lo);
	if ((i == m->starts.n || m->starts.v[i] >= hi) && (k == m->known.n || m->known.v[k].lo >= hi)) {
		struct sym_known kn = { lo, hi, name };
		vec_insert(&m->known, k, kn);
	}
	return name;
}

/* The CU that holds a, as dwfl_module_addrdie finds it (and *bias); NULL when none does. Each CU
 * found is kept by its ranges. */
static Dwarf_Die *sym_cu_at(struct symbolizer *s, Dwfl_Module *mod, uint64_t a, Dwarf_Addr *bias)
{
	if (s->reference)
		return dwfl_module_addrdie(mod, a, bias);
	struct sym_mod *m = sym_mod_of(s, mod);
	const size_t key = offsetof(struct sym_cu_at, hi);
	size_t at = sym_first_above(m->cus.v, m->cus.n, sizeof *m->cus.v, key, a);
	if (at < m->cus.n && m->cus.v[at].lo <= a) {
		*bias = m->cus.v[at].bias;
		return m->cus.v[at].cu;
	}
	Dwarf_Die *cu = dwfl_module_addrdie(mod, a, bias);
	if (!cu)
		return NULL;
	Dwarf_Addr base, rlo, rhi;
	ptrdiff_t off = 0;
	while ((off = dwarf_ranges(cu, off, &base, &rlo, &rhi)) > 0) {
		struct sym_cu_at c = { rlo + *bias, rhi + *bias, cu, *bias };
		size_t k = sym_first_above(m->cus.v, m->cus.n, sizeof *m->cus.v, key, c.lo);
		if (c.lo >= c.hi || (k < m->cus.n && m->cus.v[k].lo < c.hi))
			continue;   /* empty, or overlapping a range kept already */
		vec_insert(&m->cus, k, c);
	}
	return cu;
}

/* ---- function tables (see struct sym_fn) ---------------------------------------------------------- */

static int sym_range_cmp(const void *a, const void *b)
{
	const struct sym_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Each address range of die, as entry ix. */
static void sym_add_ranges(Dwarf_Die *die, uint32_t ix, sym_ranges *v)
{
	Dwarf_Addr base, lo, hi;
	ptrdiff_t off = 0;
	while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0)
		if (lo < hi) {
			struct sym_range r = { lo, hi, ix };
			vec_push(v, r);
		}
}

/* The functions of a CU, listed on the first lookup in it. */
static struct sym_cu *sym_cu_table(struct symbolizer *s, Dwarf_Die *cu)
{
	uint64_t ix;
	if (hmap_get(&s->cus, (uint64_t)(uintptr_t)cu->addr, &ix))
		return s->cu_tabs.v[ix];
	struct sym_cu *c = xcalloc(1, sizeof *c);
	/* the CU's children, and those of its namespaces (C++) */
	Dwarf_Die stack[8], die;
	int depth = 0;
	if (dwarf_child(cu, &die) == 0) {
		stack[depth++] = die;
		while (depth > 0) {
			Dwarf_Die d = stack[--depth];
			for (bool more = true; more;) {
				int tag = dwarf_tag(&d);
				if (tag == DW_TAG_subprogram) {
					struct sym_fn *fn = xcalloc(1, sizeof *fn);
					fn->die = d;
					size_t before = c->ranges.n;
					sym_add_ranges(&d, (uint32_t)c->fns.n, &c->ranges);
					if (c->ranges.n > before)
						vec_push(&c->fns, fn);
					else
						free(fn);   /* a declaration, or inlined everywhere */
				} else if (tag == DW_TAG_namespace && depth < 8 && dwarf_child(&d, &die) == 0) {
					stack[depth++] = die;
				}
				more = dwarf_siblingof(&d, &d) == 0;
			}
		}
	}
	if (c->ranges.n > 1)
		qsort(c->ranges.v, c->ranges.n, sizeof(struct sym_range), sym_range_cmp);
	hmap_put(&s->cus, (uint64_t)(uintptr_t)cu->addr, s->cu_tabs.n);
	vec_push(&s->cu_tabs, c);
	return c;
}

/* Every scope of fn's tree under die (whose scope is parent, at depth): calls inlined into it,
 * nested functions, and what lexical blocks hold. */
static void sym_fn_walk(struct sym_fn *fn, Dwarf_Die *die, uint32_t parent, uint32_t depth)
{
	Dwarf_Die child;
	if (depth > 4096 || dwarf_child(die, &child) != 0)
		return;
	do {
		int tag = dwarf_tag(&child);
		if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram) {
			uint32_t ix = (uint32_t)fn->scopes.n;
			struct sym_scope sc = { child, parent, depth + 1, tag == DW_TAG_inlined_subroutine };
			vec_push(&fn->scopes, sc);
			sym_add_ranges(&child, ix, &fn->ranges);
			sym_fn_walk(fn, &child, ix, depth + 1);
		} else if (tag == DW_TAG_lexical_block || tag == DW_TAG_try_block || tag == DW_TAG_catch_block) {
			sym_fn_walk(fn, &child, parent, depth);
		}
	} while (dwarf_siblingof(&child, &child) == 0);
}

static void sym_fn_build(struct sym_fn *fn)
{
	fn->built = true;
	struct sym_scope top = { fn->die, SYM_NONE, 0, false };
	vec_push(&fn->scopes, top);
	sym_fn_walk(fn, &fn->die, 0, 0);
	if (fn->ranges.n > 1)
		qsort(fn->ranges.v, fn->ranges.n, sizeof(struct sym_range), sym_range_cmp);
}

/* The innermost scope at a (DWARF address) of the function of cu that holds it, and that
 * function's table; false when no function of the CU lists a range that holds a. */
static bool sym_fn_scope(struct symbolizer *s, Dwarf_Die *cu, Dwarf_Addr a, struct sym_fn **out, uint32_t *scope)
{
	struct sym_cu *c = sym_cu_table(s, cu);
	struct sym_fn *fn = NULL;
	for (size_t i = 0; i < c->ranges.n && c->ranges.v[i].lo <= a && !fn; i++)
		if (a < c->ranges.v[i].hi)
			fn = c->fns.v[c->ranges.v[i].ix];
	if (!fn)
		return false;
	if (!fn->built)
		sym_fn_build(fn);
	uint32_t best = 0;
	for (size_t i = 0; i < fn->ranges.n && fn->ranges.v[i].lo <= a; i++) {
		const struct sym_range *r = &fn->ranges.v[i];
		if (a < r->hi && fn->scopes.v[r->ix].depth > fn->scopes.v[best].depth)
			best = r->ix;
	}
	*out = fn;
	*scope = best;
	return true;
}

/* Replace *die by the function (real or inlined) that contains it. */
static bool sym_outer_function(Dwarf_Die *die)
{
	Dwarf_Die *up = NULL;
	int nu = dwarf_getscopes_die(die, &up);
	bool found = false;
	for (int i = 1; i < nu && !found; i++) {
		int tag = dwarf_tag(&up[i]);
		if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) {
			*die = up[i];
			found = true;
		}
	}
	free(up);
	return found;
}

static bool sym_capstone(struct symbolizer *s)
{
	if (s->cs_state == 0) {
		s->cs_state = -1;
		if (cs_open(CS_ARCH_X86, CS_MODE_64, &s->cs) == CS_ERR_OK) {
			cs_option(s->cs, CS_OPT_DETAIL, CS_OPT_ON);
			s->cs_state = 1;
		}
	}
	return s->cs_state == 1;
}

/* The bytes of a module's code at [lo, hi) (module addresses, without bias), from its file. */
static const uint8_t *sym_module_code(Dwfl_Module *mod, Dwarf_Addr lo, Dwarf_Addr hi)
{
	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	Elf_Scn *scn = NULL;
	while (elf && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_EXECINSTR) ||
		    lo < sh.sh_addr || hi > sh.sh_addr + sh.sh_size)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < sh.sh_size)
			return NULL;
		return (const uint8_t *)d->d_buf + (lo - sh.sh_addr);
	}
	return NULL;
}

/* gcc's function splitting (hot/cold, and more of it with PGO + LTO) moves part of a function to
 * a code range of its own, with its own FDE but, in a stripped binary, no symbol. Debian's 3.14
 * keeps almost all of its eval loop in such a part; the exported _PyEval_EvalFrameDefault is a
 * 0x4a0-byte head that jumps into it. A part jumps back into the middle of the function it was
 * split from (a tail call would jump to a start), so it is named after the function most of its
 * jumps land in, the way gcc names it: "<function>.cold". a is a module address with bias. */
/* The code range around module address a (no bias) as far as .eh_frame_hdr tells: from the
 * start of the FDE that covers it to the start of the next one. */
static bool sym_fde_range(Dwfl_Module *mod, Dwarf_Addr a, Dwarf_Addr *lo, Dwarf_Addr *hi)
{
	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	size_t shstrndx;
	if (!elf || elf_getshdrstrndx(elf, &shstrndx) != 0)
		return false;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) || strcmp(name, ".eh_frame_hdr") != 0)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		const uint8_t *h = d ? d->d_buf : NULL;
		/* version 1, table of (datarel sdata4 location, datarel sdata4 FDE) pairs */
		if (!h || d->d_size < 12 || h[0] != 1 || h[3] != 0x3b || (h[2] & 0x0f) != 0x03)
			return false;
		uint32_t count;
		memcpy(&count, h + 8, 4);
		if (count == 0 || (uint64_t)count * 8 > d->d_size - 12)
			return false;
		const uint8_t *tab = h + 12;
#define SYM_FDE_LOC(i) ({ int32_t v_; memcpy(&v_, tab + (size_t)(i) * 8, 4); (Dwarf_Addr)(sh.sh_addr + (int64_t)v_); })
		size_t l = 0, r = count;
		while (r - l > 1) {
			size_t mid = l + (r - l) / 2;
			if (SYM_FDE_LOC(mid) <= a)
				l = mid;
			else
				r = mid;
		}
		if (SYM_FDE_LOC(l) > a || l + 1 >= count)
			return false;
		*lo = SYM_FDE_LOC(l);
		*hi = SYM_FDE_LOC(l + 1);
#undef SYM_FDE_LOC
		return *hi > a;
	}
	return false;
}

/* gcc's function splitting (hot/cold, and more of it with PGO + LTO) moves part of a function to
 * a code range of its own, with its own FDE but, in a stripped binary, no symbol. Debian's 3.14
 * keeps almost all of its eval loop in such a part; the exported _PyEval_EvalFrameDefault is a
 * 0x4a0-byte head that jumps into it. A part jumps back into the middle of the function it was
 * split from (a tail call would jump to a start), so it is named after the function most of its
 * jumps land in, the way gcc names it: "<function>.cold". a is a module address with bias. */
static const char *sym_split_part(struct symbolizer *s, Dwfl_Module *mod, Dwarf_Addr a)
{
	Dwarf_Addr bias, lo, hi;
	if (!dwfl_module_getelf(mod, &bias) || !sym_fde_range(mod, a - bias, &lo, &hi) || hi - lo > SYM_MAX_PART)
		return NULL;
	uint64_t key = lo + bias, cached;
	if (hmap_get(&s->parts, key, &cached))
		return (const char *)(uintptr_t)cached;
	hmap_put(&s->parts, key, 0);

	const uint8_t *code = sym_module_code(mod, lo, hi);
	if (!code || !sym_capstone(s))
		return NULL;
	struct { const char *name; unsigned votes; } vote[SYM_PART_VOTES];
	size_t nvote = 0;
	cs_insn *in = cs_malloc(s->cs);
	const uint8_t *p = code;
	size_t left = hi - lo;
	uint64_t at = lo + bias;
	while (left) {
		if (!cs_disasm_iter(s->cs, &p, &left, &at, in)) {
			p++, left--, at++;   /* data in code: step over a byte */
			continue;
		}
		const cs_x86 *x = &in->detail->x86;
		if (!cs_insn_group(s->cs, in, CS_GRP_JUMP) || x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
			continue;
		uint64_t to = (uint64_t)x->operands[0].imm;
		if (to >= lo + bias && to < hi + bias)
			continue;
		GElf_Off off;
		GElf_Sym sym;
		const char *name = dwfl_module_addrinfo(mod, to, &off, &sym, NULL, NULL, NULL);
		if (!name || !name[0] || off == 0 || off >= sym.st_size)
			continue;
		size_t k = 0;
		while (k < nvote && strcmp(vote[k].name, name) != 0)
			k++;
		if (k == nvote && nvote < SYM_PART_VOTES)
			vote[nvote++] = (typeof(vote[0])){ .name = intern(s->strs, name), .votes = 0 };
		if (k < nvote)
			vote[k].votes++;
	}
	cs_free(in, 1);
	size_t best = SIZE_MAX;
	for (size_t k = 0; k < nvote; k++)
		if (best == SIZE_MAX || vote[k].votes > vote[best].votes)
			best = k;
	if (best == SIZE_MAX)
		return NULL;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s.cold", vote[best].name);
	const char *name = intern(s->strs, buf);
	hmap_put(&s->parts, key, (uint64_t)(uintptr_t)name);
	return name;
}

/* Append the frames for one lookup address to s->frames; returns how many. */
/* Thread and process start-up functions of the C library: every stack ends in them and every
 * profile drops them, so their DWARF is never needed. Looking them up would decompress the C
 * library's whole debug info (libc6-dbg: ~0.5 s) before the first sample; a module's DWARF is
 * loaded when a frame that is shown needs it. */
static bool sym_startup_symbol(const char *sym)
{
	static const char *const names[] = { "_start", "__libc_start_main", "__libc_start_main_impl",
					     "__libc_start_call_main", "start_thread", "clone", "clone3",
					     "__clone", "__clone3", "__clone_internal", NULL };
	size_t n = strcspn(sym, "@");
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == n && !strncmp(sym, names[i], n))
			return true;
	return false;
}

/* The frames of DWARF address da (a in the target) in cu, innermost inlined call first, onto
 * s->frames: from the function's table, or from dwarf_getscopes where the CU lists no function
 * holding it (or sym_reference asks for it). */
static void sym_dwarf_frames(struct symbolizer *s, Dwarf_Die *cu, Dwarf_Addr da, uint64_t pc, uint64_t a,
			     const char *module, const char *symbol)
{
	struct sym_fn *fn = NULL;
	uint32_t at = SYM_NONE;
	Dwarf_Die *scopes = NULL, cur;
	bool have = false;
	if (!s->reference && sym_fn_scope(s, cu, da, &fn, &at)) {
		cur = fn->scopes.v[at].die;
		have = true;
	} else {
		/* dwarf_getscopes gives the scopes of the innermost inlined instance but not always
		 * the function it is inlined into: climb the DIE tree for each caller. */
		int ns = dwarf_getscopes(cu, da, &scopes);
		for (int i = 0; i < ns && !have; i++) {
			int tag = dwarf_tag(&scopes[i]);
			if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) {
				cur = scopes[i];
				have = true;
			}
		}
	}
	const char *file = NULL;
	int line = 0;
	Dwarf_Line *dl = have ? dwarf_getsrc_die(cu, da) : NULL;
	if (dl) {
		const char *f = dwarf_linesrc(dl, NULL, NULL);
		file = f ? intern(s->strs, f) : NULL;
		if (dwarf_lineno(dl, &line) != 0)
			line = 0;
	}
	for (int kept = 0; have && kept < SYM_MAX_FRAMES_PER_PC; kept++) {
		const char *name = dwarf_diename(&cur);
		bool inl = dwarf_tag(&cur) == DW_TAG_inlined_subroutine;
		struct sym_frame f = {
			.func = name ? intern(s->strs, name) : symbol,
			.file = file, .line = line, .module = module, .addr = pc,
			.inlined = inl, .symbol = symbol,
		};
		if (!f.func)
			f.func = sym_fallback_name(s, a, &module);
		vec_push(&s->frames, f);
		if (!inl)
			break;   /* the real function */
		file = sym_call_file(s, cu, &cur, &line);
		if (fn) {
			at = fn->scopes.v[at].parent;
			have = at != SYM_NONE;
			if (have)
				cur = fn->scopes.v[at].die;
		} else {
			have = sym_outer_function(&cur);
		}
	}
	free(scopes);
}

static uint32_t sym_resolve(struct symbolizer *s, uint64_t pc, uint64_t a)
{
	size_t first = s->frames.n;
	const char *module = NULL, *symbol = NULL;
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, a);
	if (mod) {
		const char *mname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		if (mname)
			module = intern(s->strs, mname);
		symbol = sym_symbol_at(s, mod, a);
		if (!symbol)
			symbol = sym_split_part(s, mod, a);

		Dwarf_Addr bias = 0;
		Dwarf_Die *cu = symbol && sym_startup_symbol(symbol) ? NULL : sym_cu_at(s, mod, a, &bias);
		if (cu)
			sym_dwarf_frames(s, cu, a - bias, pc, a, module, symbol);
	}
	if (s->frames.n == first) {
		struct sym_frame f = { .func = symbol, .module = module, .addr = pc, .symbol = symbol };
		/* Without a name, name the function by where its FDE starts, so that every pc of it
		 * is one frame (hidden functions of stripped libraries: Debian's numpy). */
		Dwarf_Addr lo, hi, bias;
		if (!f.func && mod && dwfl_module_getelf(mod, &bias) && sym_fde_range(mod, a - bias, &lo, &hi))
			f.func = sym_fallback_name(s, lo + bias, &f.module);
		if (!f.func)
			f.func = sym_fallback_name(s, a, &f.module);
		vec_push(&s->frames, f);
	} else {
		/* A chain that ends in an inlined frame (broken DWARF) still ends in a real function. */
		struct sym_frame *last = &s->frames.v[s->frames.n - 1];
		last->inlined = false;
	}
	return (uint32_t)(s->frames.n - first);
}

/* ---- public API ------------------------------------------------------------------------------ */

int symbolizer_new(struct symbolizer **out, struct target *t, struct interner *strs, struct err *e)
{
	struct symbolizer *s = xcalloc(1, sizeof(*s));
	s->t = t;
	s->strs = strs;
	s->callbacks.find_elf = dwfl_build_id_find_elf;
	s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
	s->callbacks.section_address = dwfl_offline_section_address;
	s->callbacks.debuginfo_path = &s->debuginfo_path;
	s->dwfl = dwfl_begin(&s->callbacks);
	if (!s->dwfl) {
		free(s);
		return err_set(e, E_INTERNAL, "dwfl_begin: %s", dwfl_errmsg(-1));
	}
	hmap_init(&s->cache);
	hmap_init(&s->parts);
	hmap_init(&s->cus);
	hmap_init(&s->mods);
	s->stale = true;
	*out = s;
	return 0;
}

void symbolizer_free(struct symbolizer *s)
{
	if (!s)
		return;
	sym_fn_tables_free(s);
	vec_free(&s->cu_tabs);
	hmap_free(&s->cus);
	sym_mods_free(s);
	vec_free(&s->mod_syms);
	hmap_free(&s->mods);
	dwfl_end(s->dwfl);
	hmap_free(&s->cache);
	hmap_free(&s->parts);
	if (s->cs_state == 1)
		cs_close(&s->cs);
	vec_free(&s->spans);
	vec_free(&s->frames);
	free(s);
}

void symbolizer_maps_changed(struct symbolizer *s)
{
	/* Nothing to drop yet: the next lookup compares the file mappings' signature and
	 * rebuilds only when modules really came or went (the maps change all the time for
	 * heap growth, which must not reload every module's unwind and debug info). */
	s->maps_generation = 0;
}

int sym_lookup(struct symbolizer *s, uint64_t pc, bool is_return_addr, struct sym_frame *out, size_t max,
	       size_t *n)
{
	*n = 0;
	if (max == 0)
		return 0;
	sym_sync(s);
	uint64_t key = pc | (is_return_addr ? SYM_RETURN_BIT : 0);
	uint64_t idx;
	if (!hmap_get(&s->cache, key, &idx)) {
		if (s->frames.n > SYM_CACHE_LIMIT)
			sym_cache_clear(s);
		uint64_t a = (is_return_addr && pc > 0) ? pc - 1 : pc;
		struct sym_span sp = { .first = (uint32_t)s->frames.n, .count = 0 };
		sp.count = sym_resolve(s, pc, a);
		idx = s->spans.n;
		vec_push(&s->spans, sp);
		hmap_put(&s->cache, key, idx);
	}
	const struct sym_span *sp = &s->spans.v[idx];
	/* The real function is last; when out is too small keep the outermost frames. */
	size_t count = sp->count, skip = count > max ? count - max : 0;
	for (size_t i = skip; i < count; i++)
		out[(*n)++] = s->frames.v[sp->first + i];
	return 0;
}

void sym_reference(struct symbolizer *s, bool on)
{
	s->reference = on;
	sym_cache_clear(s);
}

int sym_instruction(struct symbolizer *s, uint64_t pc, char *buf, size_t len)
{
	uint8_t code[16];   /* the longest x86 instruction is 15 bytes */
	if (len)
		buf[0] = 0;
	ssize_t got = target_read_partial(s->t, pc, code, sizeof(code));
	if (got <= 0)
		return got < 0 ? (int)got : E_READ;
	if (!sym_capstone(s))
		return E_INTERNAL;
	cs_insn *in = NULL;
	size_t n = cs_disasm(s->cs, code, (size_t)got, pc, 1, &in);
	if (n == 0)
		return E_READ;
	if (in->op_str[0])
		snprintf(buf, len, "%s %s", in->mnemonic, in->op_str);
	else
		snprintf(buf, len, "%s", in->mnemonic);
	cs_free(in, n);
	return 0;
}
