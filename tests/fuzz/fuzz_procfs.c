/*
 * fuzz_procfs.c - the /proc parsers of src/target.c (maps, stat, cmdline) fed the input instead
 * of the kernel's text. target.c is compiled into this file with open() redirected, so the parsers
 * run unchanged. Byte 0 picks the file; the rest is its contents.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target.h"

static const uint8_t *fake_data;
static size_t fake_len;

/* Every /proc file target.c opens reads as the input. */
static int fuzz_open(const char *path, int flags, ...)
{
	if (strncmp(path, "/proc/", 6) != 0)
		return -1;
	(void)flags;
	int fd = memfd_create("procfs", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fake_len && write(fd, fake_data, fake_len) != (ssize_t)fake_len) {
		close(fd);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

#define open fuzz_open
#include "../../src/target.c"
#undef open

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fake_data = data + 1;
	fake_len = size - 1;
	struct target t;
	target_init(&t, 1);
	struct err e;
	volatile long sink = 0;
	switch (data[0] % 4) {
	case 0: {
		bool changed;
		if (target_refresh_maps(&t, &changed, &e) == 0) {
			for (size_t i = 0; i < t.maps.n; i++) {
				sink += target_map_at(&t, t.maps.v[i].start) != NULL;
				sink += target_is_mapped(&t, t.maps.v[i].end - 1, 16);
			}
			target_refresh_maps(&t, &changed, &e);
		}
		break;
	}
	case 1:
		sink += target_state(1) + target_ppid(1);
		break;
	case 2: {
		char *s = target_read_cmdline(1);
		if (s)
			sink += (long)strlen(s);
		free(s);
		break;
	}
	case 3:
		sink += target_thread_running(&t, 1);
		break;
	}
	(void)sink;
	target_close(&t);
	return 0;
}
