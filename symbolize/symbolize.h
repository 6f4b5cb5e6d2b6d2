/*
 * symbolize.h - address -> module, function, source file and line, with the inlined-call chain
 * as separate frames (elfutils libdwfl over the target's modules, found through /proc/PID/root).
 * Falls back to .symtab/.dynsym names, then to "module+0xoffset". Cached by address; refreshed
 * when the target's maps change.
 */
#ifndef MIXSPY_SYMBOLIZE_H
#define MIXSPY_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/target.h"
#include "../src/util/util.h"

struct sym_frame {
	const char *func;     /* interned; never NULL ("module+0x1234" when nothing is known) */
	const char *file;     /* interned source path, or NULL */
	int line;             /* 0 when unknown */
	const char *module;   /* interned path of the ELF object, or NULL */
	uint64_t addr;
	bool inlined;         /* this frame is inlined into the next one */
	const char *symbol;   /* interned name of the containing ELF symbol (non-inline), or NULL */
};

struct symbolizer;

int symbolizer_new(struct symbolizer **out, struct target *t, struct interner *strs, struct err *e);
void symbolizer_free(struct symbolizer *s);
void symbolizer_maps_changed(struct symbolizer *s);

/* Frames for one pc, innermost inlined function first, the real function last. For return
 * addresses (every frame but the innermost) pass is_return_addr so pc-1 is looked up. */
int sym_lookup(struct symbolizer *s, uint64_t pc, bool is_return_addr, struct sym_frame *out,
	       size_t max, size_t *n);

/* Resolve every address with libdw's own lookups (on): dwfl_module_addrinfo for its ELF symbol
 * and dwarf_getscopes for its inlined chain - as is done where a CU lists no function holding the
 * address - instead of the tables built from them (the default: each module's symbols by range,
 * each function's inlined calls). For tests that compare the two. Empties the cache. */
void sym_reference(struct symbolizer *s, bool on);

/* The instruction at pc in the target's memory, disassembled (capstone, Intel syntax) into buf as
 * "mnemonic operands", e.g. "add rax, rdx". 0, or a negative code when pc is unreadable or not
 * an instruction. For `dump --native`; not meant for the per-sample path. */
int sym_instruction(struct symbolizer *s, uint64_t pc, char *buf, size_t len);

#endif
