/*
 * elf.c - the target's ELF files as interpreter discovery needs them: symbols by name (.symtab
 * first, then .dynsym), sections by name, the first PT_LOAD for the load bias, reads at link-time
 * addresses, and capstone decoding of a `mov disp32(%rip), %reg` accessor body.
 */
#include "elf.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct elf_symtab {
	Elf_Data *data;
	size_t count;
	size_t strndx;
	bool dynamic;
};

struct elf_file {
	int fd;
	Elf *elf;
	uint64_t first_load;
	struct elf_symtab tabs[2];   /* [0] .symtab, [1] .dynsym (either may be empty) */
	size_t shstrndx;
};

int elf_open(struct elf_file **out, const char *path, struct err *e)
{
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno == EACCES ? E_PERM : E_IO, "Failed to open %s: %s", path, strerror(errno));
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		if (elf)
			elf_end(elf);
		close(fd);
		return err_set(e, E_NOTPY, "%s is not an ELF file", path);
	}
	struct elf_file *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->elf = elf;
	if (elf_getshdrstrndx(elf, &f->shstrndx) != 0)
		f->shstrndx = 0;

	size_t nph = 0;
	elf_getphdrnum(elf, &nph);
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
			f->first_load = ph.p_vaddr & ~(uint64_t)0xfff;
			break;
		}
	}
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		int k = sh.sh_type == SHT_SYMTAB ? 0 : sh.sh_type == SHT_DYNSYM ? 1 : -1;
		if (k < 0 || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		f->tabs[k].data = d;
		f->tabs[k].count = sh.sh_size / sh.sh_entsize;
		f->tabs[k].strndx = sh.sh_link;
		f->tabs[k].dynamic = k == 1;
	}
	*out = f;
	return 0;
}

void elf_close(struct elf_file *f)
{
	if (!f)
		return;
	elf_end(f->elf);
	close(f->fd);
	free(f);
}

uint64_t elf_first_load_vaddr(const struct elf_file *f)
{
	return f->first_load;
}

bool elf_has_symtab(const struct elf_file *f)
{
	return f->tabs[0].count > 0;
}

bool elf_symbol(const struct elf_file *f, const char *name, struct elf_sym *out)
{
	for (int k = 0; k < 2; k++) {
		const struct elf_symtab *t = &f->tabs[k];
		for (size_t i = 0; i < t->count; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(t->data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
				continue;
			const char *n = elf_strptr(f->elf, t->strndx, sym.st_name);
			if (!n || strcmp(n, name) != 0)
				continue;
			out->value = sym.st_value;
			out->size = sym.st_size;
			out->type = GELF_ST_TYPE(sym.st_info);
			out->from_dynsym = t->dynamic;
			return true;
		}
	}
	return false;
}

bool elf_next_func(const struct elf_file *f, size_t *iter, const char **name, struct elf_sym *out)
{
	/* iter encodes (table, index): table in the top bit. */
	for (;;) {
		int k = (int)(*iter >> 63);
		size_t i = *iter & ~((size_t)1 << 63);
		const struct elf_symtab *t = &f->tabs[k];
		if (i >= t->count) {
			if (k == 1)
				return false;
			*iter = (size_t)1 << 63;
			continue;
		}
		(*iter)++;
		GElf_Sym sym;
		if (!gelf_getsym(t->data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
		    GELF_ST_TYPE(sym.st_info) != STT_FUNC)
			continue;
		const char *n = elf_strptr(f->elf, t->strndx, sym.st_name);
		if (!n || !*n)
			continue;
		*name = n;
		out->value = sym.st_value;
		out->size = sym.st_size;
		out->type = STT_FUNC;
		out->from_dynsym = t->dynamic;
		return true;
	}
}

bool elf_section(const struct elf_file *f, const char *name, struct elf_section *out)
{
	Elf_Scn *scn = NULL;
	bool found = false;
	uint64_t best_size = 0;
	while ((scn = elf_nextscn(f->elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		const char *n = elf_strptr(f->elf, f->shstrndx, sh.sh_name);
		/* Several sections can share a name in odd builds; keep the largest. */
		if (n && strcmp(n, name) == 0 && (!found || sh.sh_size > best_size)) {
			out->addr = sh.sh_addr;
			out->size = sh.sh_size;
			out->offset = sh.sh_offset;
			out->type = sh.sh_type;
			best_size = sh.sh_size;
			found = true;
		}
	}
	return found;
}

int elf_read_vaddr(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len)
{
	size_t nph = 0;
	elf_getphdrnum(f->elf, &nph);
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr < ph.p_vaddr || vaddr + len > ph.p_vaddr + ph.p_filesz)
			continue;
		off_t off = (off_t)(ph.p_offset + (vaddr - ph.p_vaddr));
		ssize_t r = pread(f->fd, buf, len, off);
		return r == (ssize_t)len ? 0 : E_READ;
	}
	return E_READ;
}

int elf_decode_rip_load(const struct elf_file *f, uint64_t func_vaddr, uint64_t *target_vaddr)
{
	uint8_t code[32];
	if (elf_read_vaddr(f, func_vaddr, code, sizeof code))
		return E_READ;
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return E_INTERNAL;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	cs_insn *insn = NULL;
	size_t n = cs_disasm(cs, code, sizeof code, func_vaddr, 4, &insn);
	int rc = E_NOTPY;
	/* Skip an endbr64 if present; the first real instruction must be the rip-relative load. */
	for (size_t i = 0; i < n; i++) {
		if (insn[i].id == X86_INS_ENDBR64 || insn[i].id == X86_INS_NOP)
			continue;
		cs_x86 *x = &insn[i].detail->x86;
		if (insn[i].id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[1].type == X86_OP_MEM && x->operands[1].mem.base == X86_REG_RIP &&
		    x->operands[1].mem.index == X86_REG_INVALID) {
			*target_vaddr = insn[i].address + insn[i].size + (int64_t)x->operands[1].mem.disp;
			rc = 0;
		}
		break;
	}
	if (insn)
		cs_free(insn, n);
	cs_close(&cs);
	return rc;
}
