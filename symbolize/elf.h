/*
 * elf.h - ELF files of the target for interpreter discovery: symbols by name (.symtab, then
 * .dynsym), sections by name, the load bias of a mapped object, and short instruction decoding
 * (capstone) for the few exported accessor functions discovery needs on stripped builds.
 */
#ifndef MIXSPY_ELF_H
#define MIXSPY_ELF_H

#include <stdbool.h>
#include <stdint.h>

#include "../src/util/util.h"

struct elf_file;

struct elf_sym {
	uint64_t value;   /* st_value (link-time address) */
	uint64_t size;
	int type;         /* STT_* */
	bool from_dynsym;
};

struct elf_section {
	uint64_t addr;    /* sh_addr */
	uint64_t size;
	uint64_t offset;  /* file offset */
	uint32_t type;    /* SHT_* */
};

int elf_open(struct elf_file **out, const char *path, struct err *e);
void elf_close(struct elf_file *f);
/* The first PT_LOAD's p_vaddr rounded down to a page: bias = map start (offset 0) - this. */
uint64_t elf_first_load_vaddr(const struct elf_file *f);
bool elf_has_symtab(const struct elf_file *f);
bool elf_symbol(const struct elf_file *f, const char *name, struct elf_sym *out);
bool elf_section(const struct elf_file *f, const char *name, struct elf_section *out);
/* Read bytes at a link-time virtual address from the file itself (for .text decoding). */
int elf_read_vaddr(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len);
/* Decode `mov disp32(%rip), %reg` starting a function at vaddr; returns the link-time address
 * it loads from (used for PyInterpreterState_Head on stripped 2.7/3.6). */
int elf_decode_rip_load(const struct elf_file *f, uint64_t func_vaddr, uint64_t *target_vaddr);
/* Iterate over all defined function symbols: for (size_t i=0; elf_next_func(f,&i,&name,&sym);) */
bool elf_next_func(const struct elf_file *f, size_t *iter, const char **name, struct elf_sym *sym);

#endif
