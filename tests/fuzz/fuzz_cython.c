/*
 * fuzz_cython.c - Cython marker files and names. The input is a generated C file: it is written
 * to a temporary file that cy_map_line parses (marker comments, function definitions, generator
 * bodies), then a few lines are mapped and the input's words are demangled as symbols.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cython/cython.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path[0])
		snprintf(path, sizeof path, "/tmp/mixspy-fuzz-cython-%d/mod.c", (int)getpid());
	char dir[64];
	snprintf(dir, sizeof dir, "/tmp/mixspy-fuzz-cython-%d", (int)getpid());
	mkdir(dir, 0700);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);

	struct interner *strs = interner_new();
	struct cy_maps *c = cy_new(strs, "");
	const char *pyx;
	int line;
	for (int l = 0; l < 64; l++)
		cy_map_line(c, path, l, NULL, &pyx, &line);
	cy_map_line(c, path, (int)size, "/tmp/pkg/mod.cpython-311-x86_64-linux-gnu.so", &pyx, &line);

	/* Every identifier-ish word of the input as a symbol. */
	char sym[1100];
	size_t i = 0, nwords = 0;
	while (i < size && nwords < 64) {
		size_t n = 0;
		while (i < size && n < sizeof sym - 1 && data[i] > ' ' && data[i] != '(' && data[i] < 0x7f)
			sym[n++] = (char)data[i++];
		sym[n] = 0;
		i++;
		if (!n)
			continue;
		nwords++;
		cy_demangle(c, sym, NULL);
		cy_demangle(c, sym, dir);
		cy_is_forwarding(sym);
		cy_is_wrapper_of(sym, sym);
		struct frame f = { .kind = FRAME_NATIVE, .name = sym, .file = path, .short_file = "mod.c",
				   .line = (int)nwords, .module = "/tmp/pkg/mod.so" };
		cy_translate_frame(c, &f, sym);
	}
	cy_free(c);
	interner_free(strs);
	return 0;
}
