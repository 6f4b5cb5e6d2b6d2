/*
 * unwind.c - native stacks of paused threads, unwound offline from a snapshot.
 *
 * While a thread is stopped we copy its registers and the top of its stack (one
 * process_vm_readv). Afterwards the copy is walked: most frames by their CFI rules, read with libdw
 * once per pc and kept (cfi_step), the others by libunwind through our own accessors:
 *   - access_reg serves the snapshot's registers (or the registers of a frame we stepped by hand);
 *   - access_mem serves the stack copy, then read-only segments of the module's ELF file (mapped
 *     once here, so unwind tables cost no syscalls), then live reads in 16 KiB blocks;
 *   - find_proc_info locates the module of a pc and hands its .eh_frame_hdr search table to
 *     libunwind's table search, so each module's tables are parsed from our local copy.
 * One address space per unwinder with UNW_CACHE_GLOBAL: after the first samples most steps are
 * answered from libunwind's register-state cache.
 *
 * Code without CFI (the `-X perf` trampolines of 3.12+ in anonymous executable pages, JIT code) is
 * stepped by reading its instructions with capstone: we simulate forward to the next `ret`, which
 * for `sub $8,%rsp; call *%rcx; add $8,%rsp; ret` gives RA=[SP+8], CFA=SP+16. When that fails we
 * try the frame-pointer chain.
 */
#include <capstone/capstone.h>
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libunwind.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "unwind.h"

/* Not in libunwind's public headers, but exported by libunwind-x86_64 (it is how the ptrace
 * accessors search a remote .eh_frame_hdr table). */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
					      unw_proc_info_t *pi, int need_unwind_info, void *arg);

/* .eh_frame_hdr pointer encodings (DWARF EH). */
#define EH_PE_udata4 0x03
#define EH_PE_sdata4 0x0b
#define EH_PE_datarel 0x30

#define UNWIND_STACK_DEFAULT (64 * 1024)   /* the most copied while paused; also the first copy */
#define UNWIND_STACK_MIN (2 * 1024)    /* copied while paused, at least */
#define UNWIND_STACK_SLACK 2048        /* ... beyond what recent walks needed */
#define UNWIND_ASLEEP_MIN (8 * 1024)   /* copied of a thread asleep (no pause), at least */
#define UNWIND_ASLEEP_SLACK 4096
#define UNWIND_GUESS_BELOW 4096              /* the most read ahead below the last sp (unwind_stack_guess) */
#define UNWIND_GUESS_BELOW_MIN 512
#define UNWIND_LIVE_BLOCK (16 * 1024)
#define UNWIND_MAX_SEGS 16
#define UNWIND_MAX_IMAGE ((uint64_t)4 << 30)
#define UNWIND_VDSO_MAX (1 << 20)
#define UNWIND_MANUAL_INSNS 16
#define UNWIND_MAX_FRAME (8u << 20)   /* no real frame is larger than this */

struct unwind_seg {
	uint64_t vaddr, filesz, memsz, offset;
	bool writable;
};

struct unwind_module {
	char *path;             /* as written in the maps */
	uint64_t lo, hi;        /* remote range of all its mappings */
	uint64_t map0_start, map0_end, map0_offset;
	bool vdso;
	bool loaded;            /* tried to load (image and tables below are valid when usable) */
	bool usable;
	const uint8_t *image;
	size_t image_len;
	bool image_mmapped;
	uint64_t bias;
	struct unwind_seg segs[UNWIND_MAX_SEGS];
	int nsegs;
	uint64_t eh_hdr;        /* remote address of .eh_frame_hdr, 0 when none */
	uint64_t table;         /* remote address of its binary-search table */
	uint64_t fde_count;
	uint64_t text_lo, text_hi;
	Elf *cfi_elf;           /* its image for libdw, once a CFI step needed its rules */
	Dwarf_CFI *cfi;
	bool cfi_tried;
};

#define UNWIND_NO_MODULE UINT32_MAX

struct unwind_range {
	uint64_t start, end;
	uint32_t module;
	bool x, file;
};

/* One read of a walk from its snapshot: offset from sp, length (<= 16), the bytes. */
struct walk_read {
	uint32_t off, len;
	uint8_t bytes[16];
};

/* A frame's CFI at one pc, when it is simple enough to step without libunwind: the CFA is one
 * register plus an offset, the return address and each callee-saved register are saved at an
 * offset from the CFA, unchanged (CFI_SAME) or lost (CFI_UNDEF). */
#define CFI_SAME INT16_MIN
#define CFI_UNDEF (INT16_MIN + 1)
#define CFI_NSAVED 6
#define CFI_MAX_RULES (1u << 16)   /* pcs remembered before the cache starts over (~2.5 MB) */
static const uint8_t cfi_saved_regs[CFI_NSAVED] = { UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
						     UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15 };
struct cfi_rule {
	uint8_t cfa_reg;    /* DWARF register number (libunwind numbers x86_64's the same) */
	int32_t cfa_off;
	int16_t ra;         /* CFI_UNDEF: the outermost frame */
	int16_t saved[CFI_NSAVED];
};

struct unwinder;
static void walk_memos_free(struct unwinder *u);

struct unwinder {
	struct target *t;
	unw_addr_space_t as;
	VEC(struct unwind_module) mods;
	VEC(struct unwind_range) ranges;
	uint64_t maps_generation;
	uint64_t modules_sig;   /* modules_sig of the maps the module table was built from */
	bool stale;
	struct hmap manual;     /* pc -> encoded manual step (see manual_decode) */
	csh cs;
	bool cs_ok;

	/* State of the walk in progress (an unwinder walks one stack at a time). */
	const struct unwind_snapshot *snap;
	uint64_t regs[UNW_X86_64_RIP + 1];
	uint8_t live[UNWIND_LIVE_BLOCK];
	uint64_t live_base;
	size_t live_len;
	uint64_t walk_top;      /* highest stack byte (from sp) the walk read, snapshot or live */
	uint32_t regs_known;    /* bit per register of regs: known (a partial snapshot knows two) */
	bool snap_short;        /* the walk needed what a partial snapshot lacks (a register, more stack) */
	bool read_live;         /* the walk read stack memory outside its snapshot */
	VEC(struct walk_read) walk_reads;   /* what a partial snapshot's walk read of it, in order */
	struct hmap walks;      /* tid -> its last walk of a partial snapshot (struct walk_memo *) */
	/* tid -> stack bytes its recent walks used (decaying maximum): what the next pause copies */
	struct hmap stack_need;
	struct hmap last_sp;    /* tid -> sp at its last capture */
	struct hmap sp_drop;    /* tid -> how far below its last sp recent captures found sp (fading) */
	/* CFI steps (cfi_step): lookup pc -> index of its rule + 1, or CFI_NOT_SIMPLE */
	VEC(struct cfi_rule) rules;
	struct hmap rule_ix;
	bool libunwind_only;    /* every step by libunwind (MIXSPY_UNWIND=libunwind; tests compare) */
	uint64_t cfi_steps, libunwind_steps;
};

/* ---- modules and ranges ---------------------------------------------------------------------- */

static void module_unload(struct unwind_module *m)
{
	if (m->cfi)
		dwarf_cfi_end(m->cfi);
	if (m->cfi_elf)
		elf_end(m->cfi_elf);
	m->cfi = NULL;
	m->cfi_elf = NULL;
	m->cfi_tried = false;
	if (m->image) {
		if (m->image_mmapped)
			munmap((void *)m->image, m->image_len);
		else
			free((void *)m->image);
	}
	m->image = NULL;
	m->image_len = 0;
}

static void unwinder_clear_modules(struct unwinder *u)
{
	for (size_t i = 0; i < u->mods.n; i++) {
		module_unload(&u->mods.v[i]);
		free(u->mods.v[i].path);
	}
	u->mods.n = 0;
	u->ranges.n = 0;
	u->rules.n = 0;   /* keyed by address: the modules may sit elsewhere now */
	hmap_clear(&u->rule_ix);
}

static bool map_is_file(const struct map *mp)
{
	return mp->path && mp->path[0] == '/' && mp->inode != 0;
}

/* Rebuild the address -> module table from the target's maps (the caller refreshes them). */
static void unwinder_rebuild(struct unwinder *u)
{
	unwinder_clear_modules(u);
	struct target *t = u->t;
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *mp = &t->maps.v[i];
		struct unwind_range r = { .start = mp->start, .end = mp->end, .module = UNWIND_NO_MODULE,
					  .x = mp->x, .file = map_is_file(mp) };
		bool vdso = mp->path && strcmp(mp->path, "[vdso]") == 0;
		if (r.file || vdso) {
			/* Consecutive mappings of one file are one module. */
			struct unwind_module *last = u->mods.n ? &u->mods.v[u->mods.n - 1] : NULL;
			if (last && !vdso && !last->vdso && strcmp(last->path, mp->path) == 0 && mp->start >= last->hi) {
				last->hi = mp->end;
			} else {
				struct unwind_module m = { .path = xstrdup(mp->path), .lo = mp->start, .hi = mp->end,
							   .map0_start = mp->start, .map0_end = mp->end,
							   .map0_offset = mp->offset, .vdso = vdso };
				vec_push(&u->mods, m);
			}
			r.module = (uint32_t)(u->mods.n - 1);
			r.file = true;
		}
		vec_push(&u->ranges, r);
	}
	u->maps_generation = t->maps_generation;
	u->stale = false;
	hmap_clear(&u->manual);
	unw_flush_cache(u->as, 0, 0);
}

/* The maps moved but hold the same modules: rebuild the range table only, pointing file ranges
 * at the modules we have (they appear in the maps in the order unwinder_rebuild made them). */
static void unwinder_ranges_only(struct unwinder *u)
{
	struct target *t = u->t;
	u->ranges.n = 0;
	size_t next = 0;
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *mp = &t->maps.v[i];
		struct unwind_range r = { .start = mp->start, .end = mp->end, .module = UNWIND_NO_MODULE,
					  .x = mp->x, .file = map_is_file(mp) };
		if (r.file || (mp->path && strcmp(mp->path, "[vdso]") == 0)) {
			while (next < u->mods.n && !(mp->start >= u->mods.v[next].lo && mp->end <= u->mods.v[next].hi))
				next++;
			if (next == u->mods.n) {
				unwinder_rebuild(u);
				return;
			}
			r.module = (uint32_t)next;
			r.file = true;
		}
		vec_push(&u->ranges, r);
	}
	u->maps_generation = t->maps_generation;
}

/* A digest of the file and executable mappings: the maps change all the time (malloc, numpy's
 * arrays), the modules and code ranges only on dlopen / dlclose / JIT. */
static uint64_t modules_sig(const struct target *t)
{
	uint64_t h = 0;
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct map *mp = &t->maps.v[i];
		if (!map_is_file(mp) && !mp->x)
			continue;
		uint64_t f[5] = { mp->start, mp->end, mp->offset, mp->inode, mp->x };
		h = hash_bytes(f, sizeof(f), h);
		if (mp->path)
			h = hash_bytes(mp->path, strlen(mp->path), h);
	}
	return h;
}

static void unwinder_sync(struct unwinder *u)
{
	if (!u->stale && u->maps_generation == u->t->maps_generation)
		return;
	uint64_t sig = modules_sig(u->t);
	if (!u->stale && sig == u->modules_sig) {
		/* Same modules; only the anonymous ranges moved. The range table is rebuilt cheaply
		 * (live reads are bounded by it), the loaded modules and caches are kept. */
		unwinder_ranges_only(u);
		return;
	}
	u->modules_sig = sig;
	unwinder_rebuild(u);
}

static const struct unwind_range *range_at(const struct unwinder *u, uint64_t addr)
{
	size_t lo = 0, hi = u->ranges.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct unwind_range *r = &u->ranges.v[mid];
		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* Parse the ELF headers of a module's image: segments, bias, .eh_frame_hdr table. */
static bool module_parse(struct unwinder *u, struct unwind_module *m)
{
	const uint8_t *img = m->image;
	size_t len = m->image_len;
	if (len < sizeof(Elf64_Ehdr))
		return false;
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256 ||
	    eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return false;

	bool have_bias = false;
	uint64_t eh_vaddr = 0, eh_size = 0;
	m->nsegs = 0;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD) {
			if (m->nsegs < UNWIND_MAX_SEGS)
				m->segs[m->nsegs++] = (struct unwind_seg){ .vaddr = ph.p_vaddr, .filesz = ph.p_filesz,
					.memsz = ph.p_memsz, .offset = ph.p_offset, .writable = (ph.p_flags & PF_W) != 0 };
			/* The mapping at the lowest address holds the segment at map0_offset. */
			uint64_t pg = 4096;
			if (!have_bias && (ph.p_offset & ~(pg - 1)) == m->map0_offset) {
				m->bias = m->map0_start - (ph.p_vaddr & ~(pg - 1));
				have_bias = true;
			}
		} else if (ph.p_type == PT_GNU_EH_FRAME) {
			eh_vaddr = ph.p_vaddr;
			eh_size = ph.p_memsz;
		}
	}
	if (!have_bias)
		return false;
	m->text_lo = m->lo;
	m->text_hi = m->hi;

	/* .eh_frame_hdr: version 1, eh_frame_ptr, fde_count, then a sorted table of
	 * (sdata4 initial location, sdata4 FDE address), both relative to the header. */
	if (eh_vaddr && eh_size >= 12) {
		uint8_t hdr[12];
		uint64_t at = m->bias + eh_vaddr;
		const uint8_t *src = NULL;
		for (int i = 0; i < m->nsegs && !src; i++) {
			const struct unwind_seg *s = &m->segs[i];
			if (eh_vaddr >= s->vaddr && eh_vaddr + 12 <= s->vaddr + s->filesz &&
			    s->offset + (eh_vaddr - s->vaddr) + 12 <= len)
				src = img + s->offset + (eh_vaddr - s->vaddr);
		}
		if (src) {
			memcpy(hdr, src, 12);
			bool sdata4_ptr = (hdr[1] & 0x0f) == EH_PE_sdata4 || (hdr[1] & 0x0f) == EH_PE_udata4;
			if (hdr[0] == 1 && sdata4_ptr && hdr[2] == EH_PE_udata4 &&
			    hdr[3] == (EH_PE_datarel | EH_PE_sdata4)) {
				uint32_t count;
				memcpy(&count, hdr + 8, 4);
				if ((uint64_t)count * 8 <= eh_size) {
					m->eh_hdr = at;
					m->table = at + 12;
					m->fde_count = count;
				}
			}
		}
	}
	(void)u;
	return true;
}

static void module_load(struct unwinder *u, struct unwind_module *m)
{
	m->loaded = true;
	if (m->vdso) {
		size_t n = m->hi - m->lo;
		if (n == 0 || n > UNWIND_VDSO_MAX)
			return;
		uint8_t *buf = xmalloc(n);
		if (target_read(u->t, m->lo, buf, n) != 0) {
			free(buf);
			return;
		}
		m->image = buf;
		m->image_len = n;
		m->image_mmapped = false;
	} else {
		/* /proc/PID/map_files is exactly the mapped file (even if replaced or deleted on disk)
		 * but needs CAP_SYS_ADMIN; otherwise open the path through /proc/PID/root. */
		char mf[96];
		snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)u->t->pid, m->map0_start,
			 m->map0_end);
		int fd = open(mf, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			char *p = target_file_path(u->t, m->path);
			fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
			free(p);
		}
		if (fd < 0)
			return;
		struct stat st;
		if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > UNWIND_MAX_IMAGE) {
			close(fd);
			return;
		}
		void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (img == MAP_FAILED)
			return;
		m->image = img;
		m->image_len = (size_t)st.st_size;
		m->image_mmapped = true;
	}
	m->usable = module_parse(u, m);
	if (!m->usable)
		module_unload(m);
}

static struct unwind_module *module_at(struct unwinder *u, uint64_t addr)
{
	const struct unwind_range *r = range_at(u, addr);
	if (!r || r->module == UNWIND_NO_MODULE)
		return NULL;
	struct unwind_module *m = &u->mods.v[r->module];
	if (!m->loaded)
		module_load(u, m);
	return m->usable ? m : NULL;
}

/* Copy len bytes at remote addr from the module's file image, only from read-only segments
 * (writable ones are relocated or changed at run time). */
static bool module_read(const struct unwind_module *m, uint64_t addr, void *out, size_t len)
{
	if (addr < m->bias)
		return false;
	uint64_t v = addr - m->bias;
	for (int i = 0; i < m->nsegs; i++) {
		const struct unwind_seg *s = &m->segs[i];
		if (s->writable || v < s->vaddr || v - s->vaddr > s->filesz || len > s->filesz - (v - s->vaddr))
			continue;
		uint64_t off = s->offset + (v - s->vaddr);
		if (off > m->image_len || len > m->image_len - off)
			return false;
		memcpy(out, m->image + off, len);
		return true;
	}
	return false;
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* Read len (<= 16) bytes of the target as it was at the snapshot where we have it. */
static int unwind_read(struct unwinder *u, uint64_t addr, void *out, size_t len)
{
	const struct unwind_snapshot *s = u->snap;
	if (s && addr >= s->sp && (!s->stack_end || addr < s->stack_end) && addr - s->sp + len > u->walk_top)
		u->walk_top = addr - s->sp + len;
	if (s && addr >= s->sp && addr - s->sp <= s->stack_len && len <= s->stack_len - (addr - s->sp)) {
		memcpy(out, s->stack + s->stack_skip + (addr - s->sp), len);
		if (s->partial && len <= 16) {
			struct walk_read r = { (uint32_t)(addr - s->sp), (uint32_t)len, { 0 } };
			memcpy(r.bytes, out, len);
			vec_push(&u->walk_reads, r);
		}
		return 0;
	}
	if (u->live_len && addr >= u->live_base && addr - u->live_base <= u->live_len &&
	    len <= u->live_len - (addr - u->live_base)) {
		memcpy(out, u->live + (addr - u->live_base), len);
		return 0;
	}
	const struct unwind_range *r = range_at(u, addr);
	if (r && r->module != UNWIND_NO_MODULE) {
		struct unwind_module *m = module_at(u, addr);
		if (m && module_read(m, addr, out, len))
			return 0;
	}
	/* A thread read asleep was checked to have slept while its copy was taken, not since, and
	 * one copied in its tick ran on at once: a walk of such a copy that needs more of its stack
	 * fails (it is paused and read again). */
	if (s && (s->partial || s->whole) && addr >= s->sp && (!s->stack_end || addr < s->stack_end)) {
		u->snap_short = true;
		return -1;
	}
	/* Live: fetch a block from here up (the walk goes towards higher addresses). */
	uint64_t base = addr & ~(uint64_t)4095;
	uint64_t want = UNWIND_LIVE_BLOCK;
	if (!r)
		want = 4096;   /* not in the maps we know (they may be stale): one page, if readable */
	else if (r->end - base < want)
		want = r->end - base;
	u->read_live = true;
	ssize_t got = target_read_partial(u->t, base, u->live, want);
	if (got <= 0) {
		u->live_len = 0;
		return -1;
	}
	u->live_base = base;
	u->live_len = (size_t)got;
	if (addr - base > u->live_len || len > u->live_len - (addr - base))
		return -1;
	memcpy(out, u->live + (addr - base), len);
	return 0;
}

/* ---- libunwind accessors --------------------------------------------------------------------- */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need_unwind_info,
			      void *arg)
{
	struct unwinder *u = arg;
	struct unwind_module *m = module_at(u, ip);
	if (!m || !m->eh_hdr || m->fde_count == 0 || ip < m->text_lo || ip >= m->text_hi)
		return -UNW_ENOINFO;
	unw_dyn_info_t di;
	memset(&di, 0, sizeof(di));
	di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	di.start_ip = m->text_lo;
	di.end_ip = m->text_hi;
	di.u.rti.segbase = m->eh_hdr;
	di.u.rti.table_data = m->table;
	di.u.rti.table_len = m->fde_count * 8 / sizeof(unw_word_t);
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	/* libunwind frees the DWARF info it allocated for table lookups itself. */
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	return -UNW_ENOINFO;
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	if (write)
		return -UNW_EINVAL;
	return unwind_read(arg, addr, val, sizeof(*val)) == 0 ? 0 : -UNW_EINVAL;
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg)
{
	struct unwinder *u = arg;
	if (reg < 0 || reg > UNW_X86_64_RIP)
		return -UNW_EBADREG;
	if (write) {
		u->regs[reg] = *val;
		u->regs_known |= 1u << reg;
	} else if (!(u->regs_known & (1u << reg))) {
		u->snap_short = true;
		return -UNW_EBADREG;
	} else {
		*val = u->regs[reg];
	}
	return 0;
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write, void *arg)
{
	return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len, unw_word_t *offp,
			     void *arg)
{
	return -UNW_ENOINFO;
}

static unw_accessors_t unwind_accessors = {
	.find_proc_info = acc_find_proc_info,
	.put_unwind_info = acc_put_unwind_info,
	.get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
	.access_mem = acc_access_mem,
	.access_reg = acc_access_reg,
	.access_fpreg = acc_access_fpreg,
	.resume = acc_resume,
	.get_proc_name = acc_get_proc_name,
};

/* ---- frames without CFI ---------------------------------------------------------------------- */

/* A manual step is cached per pc as (ra_offset + 1) | (rbp_slot + 1) << 16 | 1 << 32, where
 * ra_offset is where the return address sits relative to SP and rbp_slot where a popped RBP was
 * saved (0 in the field: not restored). 1 << 33 alone means: no simple frame, use RBP. */
#define MANUAL_VALID (1ull << 32)
#define MANUAL_USE_FP (1ull << 33)

static uint64_t manual_decode(struct unwinder *u, uint64_t pc)
{
	uint64_t cached;
	if (hmap_get(&u->manual, pc, &cached))
		return cached;
	uint64_t result = MANUAL_USE_FP;
	uint8_t code[64];
	size_t have = 0;
	struct unwind_module *m = module_at(u, pc);
	if (m && module_read(m, pc, code, sizeof(code))) {
		have = sizeof(code);
	} else {
		/* Code may end at a page boundary: take what is readable. */
		ssize_t got = target_read_partial(u->t, pc, code, sizeof(code));
		have = got > 0 ? (size_t)got : 0;
	}
	cs_insn *insn = NULL;
	size_t count = (u->cs_ok && have) ? cs_disasm(u->cs, code, have, pc, UNWIND_MANUAL_INSNS, &insn) : 0;
	int64_t delta = 0, rbp_slot = -1;
	for (size_t i = 0; i < count; i++) {
		const cs_insn *in = &insn[i];
		const cs_x86 *x = &in->detail->x86;
		bool rsp_imm = x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
			       x->operands[0].reg == X86_REG_RSP && x->operands[1].type == X86_OP_IMM;
		bool done = false, fail = false;
		switch (in->id) {
		case X86_INS_SUB:
			if (rsp_imm)
				delta -= x->operands[1].imm;
			else if (x->op_count >= 1 && x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_RSP)
				fail = true;
			break;
		case X86_INS_ADD:
			if (rsp_imm)
				delta += x->operands[1].imm;
			else if (x->op_count >= 1 && x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_RSP)
				fail = true;
			break;
		case X86_INS_PUSH:
			delta -= 8;
			break;
		case X86_INS_POP:
			if (x->op_count == 1 && x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_RBP)
				rbp_slot = delta;
			delta += 8;
			break;
		case X86_INS_CALL:
		case X86_INS_NOP:
			break;
		case X86_INS_RET:
			done = true;
			break;
		default:
			/* Anything else that moves the stack pointer or jumps: not a frame we can read. */
			if (cs_insn_group(u->cs, in, CS_GRP_JUMP) || cs_insn_group(u->cs, in, CS_GRP_INT) ||
			    cs_insn_group(u->cs, in, CS_GRP_IRET) || in->id == X86_INS_LEAVE)
				fail = true;
			for (uint8_t k = 0; k < x->op_count && !fail; k++)
				if (x->operands[k].type == X86_OP_REG && x->operands[k].reg == X86_REG_RSP &&
				    (x->operands[k].access & CS_AC_WRITE))
					fail = true;
			break;
		}
		if (fail || delta < -4096 || delta > 4096)
			break;
		if (done) {
			if (delta >= 0)
				result = MANUAL_VALID | (uint64_t)(delta + 1) | (rbp_slot >= 0 ? (uint64_t)(rbp_slot + 1) << 16 : 0);
			break;
		}
	}
	if (insn)
		cs_free(insn, count);
	hmap_put(&u->manual, pc, result);
	return result;
}

/* Step the frame in u->regs (RIP, RSP, RBP, callee-saved) by hand. 0 on success. */
static int manual_step(struct unwinder *u)
{
	uint64_t pc = u->regs[UNW_X86_64_RIP], sp = u->regs[UNW_X86_64_RSP], bp = u->regs[UNW_X86_64_RBP];
	uint64_t how = manual_decode(u, pc);
	uint64_t ra, nbp = bp;
	bool nbp_read = true;
	if (how & MANUAL_VALID) {
		uint64_t off = (how & 0xffff) - 1;
		uint64_t bslot = (how >> 16) & 0xffff;
		if (unwind_read(u, sp + off, &ra, 8) != 0)
			return -1;
		if (bslot && unwind_read(u, sp + bslot - 1, &nbp, 8) != 0)
			return -1;
		nbp_read = bslot != 0;
		u->regs[UNW_X86_64_RSP] = sp + off + 8;
	} else {
		/* Frame pointer: [rbp] = caller's rbp, [rbp+8] = return address. */
		if (!(u->regs_known & (1u << UNW_X86_64_RBP))) {
			u->snap_short = true;
			return -1;
		}
		if (bp <= sp || bp - sp > UNWIND_MAX_FRAME || (bp & 7))
			return -1;
		if (unwind_read(u, bp, &nbp, 8) != 0 || unwind_read(u, bp + 8, &ra, 8) != 0)
			return -1;
		u->regs[UNW_X86_64_RSP] = bp + 16;
	}
	u->regs[UNW_X86_64_RIP] = ra;
	u->regs[UNW_X86_64_RBP] = nbp;
	/* The caller's rbp: read from the stack, or the same register (known as before). */
	u->regs_known |= 1u << UNW_X86_64_RIP | 1u << UNW_X86_64_RSP | (nbp_read ? 1u << UNW_X86_64_RBP : 0);
	return 0;
}

/* True when pc lies in executable memory for which we have no unwind table at all. */
static bool pc_without_cfi(struct unwinder *u, uint64_t pc)
{
	const struct unwind_range *r = range_at(u, pc);
	if (!r)
		return false;   /* unknown (stale maps): let libunwind try */
	if (r->module == UNWIND_NO_MODULE)
		return r->x;
	struct unwind_module *m = module_at(u, pc);
	return m && !m->eh_hdr;
}

/* ---- CFI steps -------------------------------------------------------------------------------- */

/*
 * Most frames' CFI says: the CFA is rsp (or rbp) plus an offset, the return address and the
 * callee-saved registers sit at offsets from it. Such a step is a few reads of the stack copy;
 * libunwind's costs far more (measured, --native on the 100-thread workload: every unw_step took
 * and dropped libunwind's global cache lock with signals masked around it, ~9% of mixspy's CPU in
 * pthread_sigmask alone). So each pc's rules are read once with libdw from the module's
 * .eh_frame (already mapped here) and kept; a step whose rules are anything else - a DWARF
 * expression, a signal frame, a register kept in another register - is libunwind's, as before.
 */
#define CFI_NOT_SIMPLE UINT64_MAX

static Dwarf_CFI *module_cfi(struct unwind_module *m)
{
	if (!m->cfi_tried) {
		m->cfi_tried = true;
		m->cfi_elf = elf_memory((char *)m->image, m->image_len);
		m->cfi = m->cfi_elf ? dwarf_getcfi_elf(m->cfi_elf) : NULL;
	}
	return m->cfi;
}

/* An offset from the CFA that a location expression adds: CFA, CFA + n, CFA - n. */
static bool cfa_plus(const Dwarf_Op *ops, size_t nops, int64_t *off)
{
	if (nops < 1 || ops[0].atom != DW_OP_call_frame_cfa)
		return false;
	if (nops == 1)
		*off = 0;
	else if (nops == 2 && ops[1].atom == DW_OP_plus_uconst)
		*off = (int64_t)ops[1].number;
	else if (nops == 3 && ops[1].atom == DW_OP_consts && ops[2].atom == DW_OP_plus)
		*off = (int64_t)ops[1].number;
	else if (nops == 3 && ops[1].atom == DW_OP_constu && ops[2].atom == DW_OP_minus)
		*off = -(int64_t)ops[1].number;
	else
		return false;
	return true;
}

/* One register's rule as struct cfi_rule keeps it; false when not simple. */
static bool saved_rule(Dwarf_Frame *fr, int regno, int16_t *out)
{
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 0;
	if (dwarf_frame_register(fr, regno, mem, &ops, &nops) != 0)
		return false;
	if (nops == 0) {
		*out = ops ? CFI_UNDEF : CFI_SAME;
		return true;
	}
	int64_t off;
	if (!cfa_plus(ops, nops, &off) || off <= CFI_UNDEF || off > INT16_MAX)
		return false;
	*out = (int16_t)off;
	return true;
}

static bool rule_from_dwarf(Dwarf_CFI *cfi, uint64_t at, struct cfi_rule *r)
{
	Dwarf_Frame *fr = NULL;
	if (dwarf_cfi_addrframe(cfi, at, &fr) != 0 || !fr)
		return false;
	bool ok = false, signal = false;
	Dwarf_Addr start, end;
	Dwarf_Op *ops = NULL;
	size_t nops = 0;
	if (dwarf_frame_info(fr, &start, &end, &signal) >= 0 && !signal && dwarf_frame_cfa(fr, &ops, &nops) == 0 &&
	    nops == 1) {
		int64_t reg = -1, off = 0;
		if (ops[0].atom == DW_OP_bregx) {
			reg = (int64_t)ops[0].number;
			off = (int64_t)ops[0].number2;
		} else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
			reg = ops[0].atom - DW_OP_breg0;
			off = (int64_t)ops[0].number;
		}
		ok = reg >= 0 && reg <= UNW_X86_64_R15 && off >= INT32_MIN && off <= INT32_MAX;
		r->cfa_reg = (uint8_t)reg;
		r->cfa_off = (int32_t)off;
		ok = ok && saved_rule(fr, UNW_X86_64_RIP, &r->ra) && r->ra != CFI_SAME;
		for (int i = 0; ok && i < CFI_NSAVED; i++)
			ok = saved_rule(fr, cfi_saved_regs[i], &r->saved[i]);
	}
	free(fr);
	return ok;
}

/* The rules at `at` (a pc, or a return address less one), or NULL: libunwind steps it. */
static const struct cfi_rule *cfi_rule_at(struct unwinder *u, uint64_t at)
{
	uint64_t ix;
	if (hmap_get(&u->rule_ix, at, &ix))
		return ix == CFI_NOT_SIMPLE ? NULL : &u->rules.v[ix - 1];
	if (u->rule_ix.n >= CFI_MAX_RULES) {
		u->rules.n = 0;
		hmap_clear(&u->rule_ix);
	}
	struct unwind_module *m = module_at(u, at);
	Dwarf_CFI *cfi = m && m->eh_hdr ? module_cfi(m) : NULL;
	struct cfi_rule r;
	if (!cfi || at < m->bias || !rule_from_dwarf(cfi, at - m->bias, &r)) {
		hmap_put(&u->rule_ix, at, CFI_NOT_SIMPLE);
		return NULL;
	}
	vec_push(&u->rules, r);
	hmap_put(&u->rule_ix, at, u->rules.n);
	return &u->rules.v[u->rules.n - 1];
}

enum { CFI_FALLBACK, CFI_STEPPED, CFI_OUTERMOST };

/* x86_64 Linux's rt_sigreturn trampoline: mov $15,%rax; syscall */
static bool at_sigreturn(struct unwinder *u, uint64_t pc)
{
	static const uint8_t code[9] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
	uint8_t b[9];
	return unwind_read(u, pc, b, sizeof b) == 0 && !memcmp(b, code, sizeof b);
}

/* Step the frame in u->regs by its CFI rules (`exact`: its pc is where it stands - the first
 * frame - rather than a return address, which is looked up one byte back, in the call). */
static int cfi_step(struct unwinder *u, bool exact)
{
	uint64_t pc = u->regs[UNW_X86_64_RIP];
	const struct cfi_rule *r = cfi_rule_at(u, exact ? pc : pc - 1);
	if (!r || !(u->regs_known & 1u << r->cfa_reg))
		return CFI_FALLBACK;
	if (r->ra == CFI_UNDEF)
		return CFI_OUTERMOST;
	uint64_t cfa = u->regs[r->cfa_reg] + (uint64_t)(int64_t)r->cfa_off, ra, v[CFI_NSAVED];
	if (unwind_read(u, cfa + (uint64_t)(int64_t)r->ra, &ra, 8) != 0)
		return CFI_FALLBACK;
	uint32_t known = 1u << UNW_X86_64_RIP | 1u << UNW_X86_64_RSP;
	for (int i = 0; i < CFI_NSAVED; i++) {
		int reg = cfi_saved_regs[i];
		v[i] = u->regs[reg];
		if (r->saved[i] == CFI_UNDEF)
			continue;
		if (r->saved[i] == CFI_SAME) {
			known |= u->regs_known & 1u << reg;
			continue;
		}
		if (unwind_read(u, cfa + (uint64_t)(int64_t)r->saved[i], &v[i], 8) != 0)
			return CFI_FALLBACK;
		known |= 1u << reg;
	}
	for (int i = 0; i < CFI_NSAVED; i++)
		u->regs[cfi_saved_regs[i]] = v[i];
	u->regs[UNW_X86_64_RSP] = cfa;
	u->regs[UNW_X86_64_RIP] = ra;
	u->regs_known = known;
	return CFI_STEPPED;
}

/* ---- public API ------------------------------------------------------------------------------ */

int unwinder_new(struct unwinder **out, struct target *t, struct err *e)
{
	struct unwinder *u = xcalloc(1, sizeof(*u));
	u->t = t;
	elf_version(EV_CURRENT);   /* libdw reads CFI rules (cfi_step) */
	u->as = unw_create_addr_space(&unwind_accessors, 0);
	if (!u->as) {
		free(u);
		return err_set(e, E_INTERNAL, "unw_create_addr_space failed");
	}
	/* Remote address spaces start with caching off (see design.md). (UNW_CACHE_PER_THREAD, which
	 * would not lock and mask signals on every step, is GLOBAL in Debian's build: libunwind is
	 * configured without --enable-per-thread-cache.) */
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	unw_set_cache_size(u->as, 1024, 0);
	hmap_init(&u->manual);
	hmap_init(&u->stack_need);
	hmap_init(&u->last_sp);
	hmap_init(&u->sp_drop);
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &u->cs) == CS_ERR_OK) {
		cs_option(u->cs, CS_OPT_DETAIL, CS_OPT_ON);
		u->cs_ok = true;
	}
	u->stale = true;
	hmap_init(&u->rule_ix);
	const char *how = getenv("MIXSPY_UNWIND");
	u->libunwind_only = how && !strcmp(how, "libunwind");
	*out = u;
	return 0;
}

void unwinder_libunwind_only(struct unwinder *u, bool on)
{
	u->libunwind_only = on;
}

void unwinder_step_counts(const struct unwinder *u, uint64_t *cfi, uint64_t *libunwind)
{
	*cfi = u->cfi_steps;
	*libunwind = u->libunwind_steps;
}

void unwinder_free(struct unwinder *u)
{
	if (!u)
		return;
	unwinder_clear_modules(u);
	vec_free(&u->mods);
	vec_free(&u->ranges);
	hmap_free(&u->manual);
	hmap_free(&u->stack_need);
	hmap_free(&u->last_sp);
	hmap_free(&u->sp_drop);
	vec_free(&u->rules);
	hmap_free(&u->rule_ix);
	walk_memos_free(u);
	hmap_free(&u->walks);
	vec_free(&u->walk_reads);
	if (u->cs_ok)
		cs_close(&u->cs);
	unw_destroy_addr_space(u->as);
	free(u);
}

void unwinder_maps_changed(struct unwinder *u)
{
	/* Nothing to drop yet: the next lookup compares the file mappings' signature and
	 * rebuilds only when modules really came or went (the maps change all the time for
	 * heap growth, which must not reload every module's unwind and debug info). */
	u->maps_generation = 0;
}

/*
 * How much stack a copy takes: what the recent walks of the thread used (stack_need) plus a
 * quarter and a slack, at least a minimum, at most UNWIND_STACK_DEFAULT - which a thread seen for
 * the first time gets. Paused, a walk that goes past the copy goes on with live reads, and the
 * next copy of that thread is large enough again; the copy is paid for while the thread stands
 * (~0.45 us a KB here: the deep workload's walks need 1.3 KB, and a page-rounded margin of 4 KB
 * more, with 4 KB read below sp, made its copy 12 KB of its 37), so its margin is small
 * (UNWIND_STACK_SLACK). Asleep, a walk past the copy needs a pause (the thread was checked to
 * sleep while the copy was taken, not since), and a sleeper's walk starts deeper than the walks
 * of its pauses, which need measures: its copy costs the thread nothing, and keeps the wide
 * margin (with the small one, the GIL waiters of test_native_waiters_read_asleep were read
 * asleep in 149 of 321 samples instead of over half).
 */
static size_t stack_want(struct unwinder *u, pid_t tid, bool asleep)
{
	uint64_t need;
	if (!hmap_get(&u->stack_need, (uint64_t)tid, &need))
		return UNWIND_STACK_DEFAULT;
	size_t want, min;
	if (asleep) {
		want = ((size_t)need + (size_t)need / 4 + UNWIND_ASLEEP_SLACK + 4095) & ~(size_t)4095;
		min = UNWIND_ASLEEP_MIN;
	} else {
		want = ((size_t)need + (size_t)need / 4 + UNWIND_STACK_SLACK + 63) & ~(size_t)63;
		min = UNWIND_STACK_MIN;
	}
	if (want < min)
		want = min;
	return want > UNWIND_STACK_DEFAULT ? UNWIND_STACK_DEFAULT : want;
}

static void snapshot_reserve(struct unwind_snapshot *snap)
{
	if (snap->stack_cap < UNWIND_STACK_DEFAULT + UNWIND_GUESS_BELOW) {
		free(snap->stack);
		snap->stack = xmalloc(UNWIND_STACK_DEFAULT + UNWIND_GUESS_BELOW);
		snap->stack_cap = UNWIND_STACK_DEFAULT + UNWIND_GUESS_BELOW;
	}
}

/* How far below the last sp the read ahead starts: twice as far as recent captures found sp
 * below the one before (a fading maximum) and a little more, UNWIND_GUESS_BELOW_MIN to
 * UNWIND_GUESS_BELOW. A guess that falls short costs a second read while the thread stands;
 * one that is too wide, 0.45 us a KB. On the deep workload sp stays within 100 bytes. */
static size_t guess_below(struct unwinder *u, pid_t tid)
{
	uint64_t drop;
	if (!hmap_get(&u->sp_drop, (uint64_t)tid, &drop))
		return UNWIND_GUESS_BELOW;
	uint64_t below = (2 * drop + 256 + 63) & ~(uint64_t)63;
	return below < UNWIND_GUESS_BELOW_MIN ? UNWIND_GUESS_BELOW_MIN : below > UNWIND_GUESS_BELOW ? UNWIND_GUESS_BELOW
													: (size_t)below;
}

/* A capture's sp, for the next guess: how far it lies below the last one feeds sp_drop. */
static void note_sp(struct unwinder *u, pid_t tid, uint64_t sp)
{
	uint64_t last, drop = 0;
	if (hmap_get(&u->last_sp, (uint64_t)tid, &last)) {
		uint64_t now = last > sp ? last - sp : 0;
		hmap_get(&u->sp_drop, (uint64_t)tid, &drop);
		drop -= drop / 16;
		hmap_put(&u->sp_drop, (uint64_t)tid, now > drop ? now : drop);
	}
	hmap_put(&u->last_sp, (uint64_t)tid, sp);
}

bool unwind_stack_guess(struct unwinder *u, pid_t tid, struct unwind_snapshot *snap, struct target_iov *iov)
{
	uint64_t sp;
	snap->guess_len = 0;
	size_t below = guess_below(u, tid);
	if (!hmap_get(&u->last_sp, (uint64_t)tid, &sp) || sp < below)
		return false;
	snapshot_reserve(snap);
	uint64_t lo = sp - below;
	size_t len = below + stack_want(u, tid, false);
	const struct map *mp = target_map_at(u->t, sp);
	if (!mp || lo < mp->start)
		return false;
	if (mp->end - lo < len)
		len = mp->end - lo;
	snap->guess_addr = lo;
	snap->guess_len = len;
	*iov = (struct target_iov){ lo, snap->stack, len };
	return true;
}

static int capture_from(struct unwinder *u, pid_t tid, struct user_regs_struct regs, struct unwind_snapshot *snap,
			bool guess_ok, bool wide, struct err *e);

int unwind_capture(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs, struct unwind_snapshot *snap,
		   bool guess_ok, struct err *e)
{
	struct user_regs_struct own;
	if (!regs) {
		if (ptrace(PTRACE_GETREGS, tid, 0, &own) != 0)
			return err_set(e, errno == ESRCH ? E_NOPROC : E_READ, "PTRACE_GETREGS %d: %s", tid,
				       strerror(errno));
		regs = &own;
	}
	return capture_from(u, tid, *regs, snap, guess_ok, false, e);
}

int unwind_capture_regs(struct unwinder *u, pid_t tid, const struct user_regs_struct *regs, bool off_cpu,
			struct unwind_snapshot *snap, struct err *e)
{
	snap->guess_len = 0;
	int rc = capture_from(u, tid, *regs, snap, false, off_cpu, e);
	snap->whole = true;
	return rc;
}

size_t unwind_tick_len(struct unwinder *u, pid_t tid, uint64_t *end)
{
	uint64_t sp;
	const struct map *mp = hmap_get(&u->last_sp, (uint64_t)tid, &sp) ? target_map_at(u->t, sp) : NULL;
	*end = mp ? mp->end : 0;
	return stack_want(u, tid, false);
}

static int capture_from(struct unwinder *u, pid_t tid, struct user_regs_struct regs, struct unwind_snapshot *snap,
			bool guess_ok, bool wide, struct err *e)
{
	snap->tid = tid;
	snap->regs = regs;
	snap->partial = false;
	snap->whole = false;
	snap->sp = regs.rsp;
	snap->stack_len = 0;
	snap->stack_skip = 0;
	note_sp(u, tid, regs.rsp);
	snapshot_reserve(snap);
	const struct map *mp = target_map_at(u->t, regs.rsp);
	snap->stack_end = mp ? mp->end : 0;
	/* The range read ahead holds this sp with as much above it as recent walks needed (or all
	 * up to the end of the stack): it is the copy. */
	uint64_t need = 0;
	hmap_get(&u->stack_need, (uint64_t)tid, &need);
	uint64_t gend = snap->guess_addr + snap->guess_len;
	if (guess_ok && snap->guess_len && regs.rsp >= snap->guess_addr && regs.rsp < gend &&
	    (gend - regs.rsp >= need + 1024 || (snap->stack_end && gend == snap->stack_end))) {
		snap->stack_skip = (size_t)(regs.rsp - snap->guess_addr);
		snap->stack_len = (size_t)(gend - regs.rsp);
		return 0;
	}
	/* Clip to the end of the stack's mapping; with stale maps the partial read stops at the
	 * first unreadable page instead. */
	size_t want = stack_want(u, tid, wide);
	if (mp && mp->end - regs.rsp < want)
		want = mp->end - regs.rsp;
	ssize_t got = want ? target_read_partial(u->t, regs.rsp, snap->stack, want) : 0;
	if (got < 0)
		return err_set(e, (int)got, "reading the stack of %d failed", tid);
	snap->stack_len = (size_t)got;
	return 0;
}

/*
 * A thread asleep in the same call as at its last walk - same pc, same sp, and the same values
 * in every stack word that walk read - walks to the same frames: a partial snapshot knows no
 * other register, and a walk that read no memory outside its snapshot (module images aside,
 * which do not change) depends on nothing else. Its last walk is kept (one per thread) and used
 * again; on the 100-thread workload --native, the 19 GIL waiters' walks were most of the cost of
 * reading them asleep. (Comparing every byte under the walk instead found a change most of the
 * time: the deadline of a timed wait lives there.)
 */
#define WALK_MEMO_READS 192
struct walk_memo {
	uint64_t pc, sp;
	size_t nips, nreads;
	bool truncated;
	uint64_t ips[64];
	struct walk_read reads[WALK_MEMO_READS];   /* what the walk read of its snapshot */
};

#define WALK_MEMO_THREADS 4096

static void walk_memos_free(struct unwinder *u)
{
	size_t it = 0;
	uint64_t k, v;
	while (hmap_next(&u->walks, &it, &k, &v))
		free((void *)(uintptr_t)v);
	hmap_clear(&u->walks);
}

static bool walk_memo_use(struct unwinder *u, const struct unwind_snapshot *snap, uint64_t *ips, size_t max,
			  size_t *n, bool *truncated)
{
	uint64_t v;
	if (!snap->partial || !hmap_get(&u->walks, (uint64_t)snap->tid, &v))
		return false;
	const struct walk_memo *m = (const struct walk_memo *)(uintptr_t)v;
	if (m->pc != snap->regs.rip || m->sp != snap->sp || m->nips > max)
		return false;
	const uint8_t *stack = snap->stack + snap->stack_skip;
	for (size_t i = 0; i < m->nreads; i++) {
		const struct walk_read *r = &m->reads[i];
		if (r->off + r->len > snap->stack_len || memcmp(stack + r->off, r->bytes, r->len) != 0)
			return false;
	}
	memcpy(ips, m->ips, m->nips * sizeof *ips);
	*n = m->nips;
	*truncated = m->truncated;
	return true;
}

static void walk_memo_keep(struct unwinder *u, const struct unwind_snapshot *snap, const uint64_t *ips, size_t n,
			   bool truncated)
{
	uint64_t v;
	struct walk_memo *m = hmap_get(&u->walks, (uint64_t)snap->tid, &v) ? (struct walk_memo *)(uintptr_t)v : NULL;
	if (u->read_live || u->walk_reads.n > WALK_MEMO_READS || n > sizeof m->ips / sizeof m->ips[0]) {
		if (m)
			m->pc = 0;   /* nothing kept */
		return;
	}
	if (!m) {
		if (u->walks.n >= WALK_MEMO_THREADS)
			walk_memos_free(u);   /* threads come and go: start afresh */
		m = xmalloc(sizeof *m);
		hmap_put(&u->walks, (uint64_t)snap->tid, (uint64_t)(uintptr_t)m);
	}
	m->pc = snap->regs.rip;
	m->sp = snap->sp;
	m->nips = n;
	m->truncated = truncated;
	memcpy(m->ips, ips, n * sizeof *ips);
	m->nreads = u->walk_reads.n;
	memcpy(m->reads, u->walk_reads.v, m->nreads * sizeof m->reads[0]);
}

struct target_iov unwind_asleep_range(struct unwinder *u, pid_t tid, uint64_t sp)
{
	size_t want = stack_want(u, tid, true);
	/* Asleep at the same sp as at its last walk: that walk will most likely be used again, and
	 * it needs only the words it read - a few hundred bytes instead of kilobytes. (Should it
	 * not hold, the walk reads the rest of the stack live: the thread is checked afterwards to
	 * have stayed asleep meanwhile.) */
	uint64_t v;
	if (hmap_get(&u->walks, (uint64_t)tid, &v)) {
		const struct walk_memo *m = (const struct walk_memo *)(uintptr_t)v;
		size_t end = 0;
		for (size_t i = 0; m->pc && m->sp == sp && i < m->nreads; i++)
			if (m->reads[i].off + m->reads[i].len > end)
				end = m->reads[i].off + m->reads[i].len;
		if (end && end < want)
			want = end;
	}
	const struct map *mp = target_map_at(u->t, sp);
	if (mp && mp->end - sp < want)
		want = (size_t)(mp->end - sp);
	return (struct target_iov){ sp, NULL, mp ? want : 0 };
}

int unwind_capture_asleep(struct unwinder *u, pid_t tid, uint64_t sp, uint64_t pc, struct unwind_snapshot *snap,
			  struct err *e)
{
	memset(&snap->regs, 0, sizeof snap->regs);
	snap->regs.rip = pc;
	snap->regs.rsp = sp;
	snap->partial = true;
	snap->whole = false;
	snap->tid = tid;
	snap->sp = sp;
	snap->stack_len = 0;
	snap->stack_skip = 0;
	snap->guess_len = 0;
	snapshot_reserve(snap);
	struct target_iov r = unwind_asleep_range(u, tid, sp);
	const struct map *mp = target_map_at(u->t, sp);
	snap->stack_end = mp ? mp->end : 0;
	ssize_t got = r.len ? target_read_partial(u->t, sp, snap->stack, r.len) : 0;
	if (got <= 0)
		return err_set(e, got < 0 ? (int)got : E_READ, "reading the stack of %d failed", tid);
	snap->stack_len = (size_t)got;
	note_sp(u, tid, sp);
	return 0;
}

void unwind_snapshot_free(struct unwind_snapshot *snap)
{
	free(snap->stack);
	snap->stack = NULL;
	snap->stack_cap = snap->stack_len = 0;
}

static void regs_from_snapshot(uint64_t *r, const struct user_regs_struct *s)
{
	r[UNW_X86_64_RAX] = s->rax;
	r[UNW_X86_64_RDX] = s->rdx;
	r[UNW_X86_64_RCX] = s->rcx;
	r[UNW_X86_64_RBX] = s->rbx;
	r[UNW_X86_64_RSI] = s->rsi;
	r[UNW_X86_64_RDI] = s->rdi;
	r[UNW_X86_64_RBP] = s->rbp;
	r[UNW_X86_64_RSP] = s->rsp;
	r[UNW_X86_64_R8] = s->r8;
	r[UNW_X86_64_R9] = s->r9;
	r[UNW_X86_64_R10] = s->r10;
	r[UNW_X86_64_R11] = s->r11;
	r[UNW_X86_64_R12] = s->r12;
	r[UNW_X86_64_R13] = s->r13;
	r[UNW_X86_64_R14] = s->r14;
	r[UNW_X86_64_R15] = s->r15;
	r[UNW_X86_64_RIP] = s->rip;
}

/* Read the registers a caller can rely on from the cursor's current frame. */
static void regs_from_cursor(struct unwinder *u, unw_cursor_t *c)
{
	static const int keep[] = { UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_RSP, UNW_X86_64_R12,
				    UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15, UNW_X86_64_RIP };
	uint64_t r[UNW_X86_64_RIP + 1] = {0};
	uint32_t known = 0;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		unw_word_t v = 0;
		if (unw_get_reg(c, keep[i], &v) == 0) {
			r[keep[i]] = v;
			known |= 1u << keep[i];
		}
	}
	memcpy(u->regs, r, sizeof(r));
	u->regs_known = known;
}

int unwind_frames(struct unwinder *u, const struct unwind_snapshot *snap, uint64_t *ips, size_t max,
		  size_t *n, bool *truncated, struct err *e)
{
	*n = 0;
	*truncated = true;
	if (max == 0)
		return 0;
	unwinder_sync(u);
	u->snap = snap;
	u->live_len = 0;
	u->walk_top = 0;
	regs_from_snapshot(u->regs, &snap->regs);
	u->regs_known = snap->partial ? 1u << UNW_X86_64_RIP | 1u << UNW_X86_64_RSP : (1u << (UNW_X86_64_RIP + 1)) - 1;
	u->snap_short = false;
	u->read_live = false;
	u->walk_reads.n = 0;
	if (walk_memo_use(u, snap, ips, max, n, truncated)) {
		u->snap = NULL;
		return 0;
	}

	unw_cursor_t cur;
	bool have_prev = false, prev_signal = false, exact = true;
	uint64_t prev_sp = 0, prev_pc = 0;
	/* u->regs hold the frame: stepped by its CFI rules, by hand (code without CFI), or by a
	 * libunwind cursor started from them (a step of one frame; its registers are read back). */
	for (size_t steps = 0; steps < 4 * max + 16; steps++) {
		uint64_t pc = u->regs[UNW_X86_64_RIP], sp = u->regs[UNW_X86_64_RSP];
		if (pc == 0) {
			*truncated = false;
			break;
		}
		if (have_prev && ((sp == prev_sp && pc == prev_pc) || (sp < prev_sp && !prev_signal)))
			break;
		if (*n >= max)
			break;
		ips[(*n)++] = pc;
		have_prev = true;
		prev_sp = sp;
		prev_pc = pc;
		prev_signal = false;

		if (pc_without_cfi(u, pc)) {
			if (manual_step(u) != 0)
				break;
			exact = false;
			continue;
		}
		if (!u->libunwind_only) {
			int cr = cfi_step(u, exact);
			if (cr == CFI_OUTERMOST) {
				*truncated = false;
				break;
			}
			if (cr == CFI_STEPPED) {
				u->cfi_steps++;
				exact = false;
				continue;
			}
		}
		/* A return address is looked up in the call before it (libunwind does so for the
		 * frames it steps to, not for the one it starts from) - but for the signal trampoline
		 * a handler returns to, which libunwind knows by its code. */
		if (!exact && !at_sigreturn(u, pc))
			u->regs[UNW_X86_64_RIP] = pc - 1;
		int rc = unw_init_remote(&cur, u->as, u);
		u->libunwind_steps++;
		if (rc >= 0) {
			prev_signal = unw_is_signal_frame(&cur) > 0;
			rc = unw_step(&cur);
		}
		if (rc == 0) {
			*truncated = false;
			break;
		}
		if (rc < 0) {
			u->regs[UNW_X86_64_RIP] = pc;
			if (manual_step(u) != 0)
				break;
			exact = false;
			continue;
		}
		regs_from_cursor(u, &cur);
		exact = prev_signal;   /* a signal frame's caller stands where it was interrupted */
	}
	/* What the next copy of this thread needs: this walk's reach, or a slowly fading memory of
	 * deeper ones (a stack that is deep now and then is not copied short every other time). */
	uint64_t need = 0;
	hmap_get(&u->stack_need, (uint64_t)snap->tid, &need);
	need -= need / 16;
	hmap_put(&u->stack_need, (uint64_t)snap->tid, u->walk_top > need ? u->walk_top : need);
	u->snap = NULL;
	u->live_len = 0;
	if (snap->partial && (u->snap_short || *truncated)) {
		*n = 0;
		return err_set(e, E_AGAIN, "the walk of a sleeping thread needs more than its pc and sp");
	}
	if (snap->whole && u->snap_short) {
		*n = 0;
		return err_set(e, E_AGAIN, "the walk needs more of the stack than was copied in the tick");
	}
	if (snap->partial)
		walk_memo_keep(u, snap, ips, *n, *truncated);
	return 0;
}
