/*
 * fuzz_elf.c - ELF parsing as interpreter discovery does it: the input is written to a file and
 * opened; symbols and sections are looked up, functions listed, and accessor bodies decoded.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbolize/elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (!path[0])
		snprintf(path, sizeof path, "/tmp/mixspy-fuzz-elf-%d", (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	struct elf_file *f;
	struct err e;
	if (elf_open(&f, path, &e))
		return 0;
	volatile uint64_t sink = elf_first_load_vaddr(f) + elf_has_symtab(f);
	struct elf_sym s;
	static const char *names[] = { "_PyRuntime", "Py_Version", "PyInterpreterState_Head", "version", NULL };
	for (int i = 0; names[i]; i++)
		if (elf_symbol(f, names[i], &s)) {
			uint64_t target;
			if (elf_decode_rip_load(f, s.value, &target) == 0)
				sink += target;
		}
	struct elf_section sec;
	static const char *secs[] = { ".PyRuntime", ".data", ".bss", ".text", NULL };
	for (int i = 0; secs[i]; i++)
		if (elf_section(f, secs[i], &sec))
			sink += sec.addr + sec.size;
	const char *name;
	size_t it = 0;
	for (int i = 0; i < 256 && elf_next_func(f, &it, &name, &s); i++) {
		uint8_t buf[16];
		sink += strlen(name);
		if (i < 8 && elf_read_vaddr(f, s.value, buf, sizeof buf) == 0)
			sink += buf[0];
		if (i < 4) {
			uint64_t target;
			elf_decode_rip_load(f, s.value, &target);
		}
	}
	(void)sink;
	elf_close(f);
	return 0;
}
