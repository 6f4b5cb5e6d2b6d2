/*
 * input.c - what the profile readers share: reading a whole file with a size bound, telling the
 * formats apart by their first bytes, and turning the parts a file gives into frames and threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"

enum input_format input_detect(const unsigned char *data, size_t len)
{
	if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b)
		return INPUT_PPROF;   /* gzip: pprof is the only gzipped format we read */
	size_t i = 0;
	if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	if (i < len && data[i] == '{')
		return INPUT_SPEEDSCOPE;
	/* A plain (not gzipped) protobuf Profile starts with its first sample_type: field 1,
	 * length-delimited, holding a ValueType whose first key is field 1 as a varint. */
	if (len >= 3 && data[0] == 0x0a && data[1] < 0x80 && data[2] == 0x08)
		return INPUT_PPROF;
	return INPUT_RAW;
}

const char *input_format_name(enum input_format f)
{
	switch (f) {
	case INPUT_RAW: return "raw";
	case INPUT_SPEEDSCOPE: return "speedscope";
	case INPUT_PPROF: return "pprof";
	default: return "unknown";
	}
}

int input_read(struct profile *p, const unsigned char *data, size_t len, double time_offset,
	       struct input_info *info, struct err *e)
{
	memset(info, 0, sizeof(*info));
	info->format = input_detect(data, len);
	switch (info->format) {
	case INPUT_SPEEDSCOPE:
		return input_read_speedscope(p, (const char *)data, len, time_offset, info, e);
	case INPUT_PPROF:
		return input_read_pprof(p, data, len, time_offset, info, e);
	default:
		info->format = INPUT_RAW;
		return input_read_raw(p, (const char *)data, len, time_offset, info, e);
	}
}

int input_read_file(struct profile *p, const char *path, double time_offset, struct input_info *info,
		    struct err *e)
{
	memset(info, 0, sizeof(*info));
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_set(e, E_IO, "Failed to open '%s': %s", path, strerror(errno));
	struct strbuf sb;
	sb_init(&sb);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (sb.len + n > INPUT_MAX_BYTES) {
			rc = err_set(e, E_IO, "'%s' is larger than %zu bytes", path, INPUT_MAX_BYTES);
			break;
		}
		sb_add(&sb, chunk, n);
	}
	if (!rc && ferror(f))
		rc = err_set(e, E_IO, "Failed to read '%s': %s", path, strerror(errno));
	fclose(f);
	if (!rc) {
		if (!sb.len)
			rc = err_set(e, E_ARG, "'%s' is empty", path);
		else
			rc = input_read(p, (const unsigned char *)sb.buf, sb.len, time_offset, info, e);
		if (rc && e) {
			char msg[sizeof e->msg];
			snprintf(msg, sizeof msg, "%s", e->msg);
			err_set(e, rc, "%s: %s", path, msg);
		}
	}
	sb_free(&sb);
	return rc;
}

static bool input_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Frames without a file that the writers' callers add at the root: threads, processes, GIL states. */
static bool input_is_pseudo(const char *name)
{
	static const char *const gil[] = { "held", "released", "waiting", "idle" };
	if (strncmp(name, "thread (", 8) == 0 || strncmp(name, "process ", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof gil / sizeof gil[0]; i++)
		if (strcmp(name, gil[i]) == 0 || strcmp(name, gil_state_name((enum gil_state)i)) == 0)
			return true;
	return false;
}

struct frame input_frame(struct profile *p, const char *name, const char *file, int line, const char *module,
			 uint64_t addr)
{
	struct frame f = { 0 };
	name = name && *name ? name : "?";
	file = file ? file : "";
	f.name = intern(p->strs, name);
	f.file = intern(p->strs, file);
	f.short_file = f.file;
	f.line = line > 0 ? line : 0;
	if (module && *module) {
		f.kind = FRAME_NATIVE;
		f.module = intern(p->strs, module);
		f.addr = addr;
	} else if (input_ends_with(file, ".py") || input_ends_with(file, ".pyw")) {
		f.kind = FRAME_PYTHON;
	} else if (input_ends_with(file, ".pyx") || input_ends_with(file, ".pxd") || input_ends_with(file, ".pxi")) {
		f.kind = FRAME_CYTHON;
	} else if (*file) {
		f.kind = FRAME_NATIVE;
	} else {
		f.kind = input_is_pseudo(name) ? FRAME_PSEUDO : FRAME_NATIVE;
	}
	return f;
}

uint32_t input_thread(struct profile *p, int pid, const char *tid_text, const char *name)
{
	uint64_t tid = 0;
	int os_tid = 0;
	if (tid_text && (strncmp(tid_text, "0x", 2) == 0 || strncmp(tid_text, "0X", 2) == 0)) {
		tid = strtoull(tid_text + 2, NULL, 16);
	} else if (tid_text && *tid_text) {
		tid = strtoull(tid_text, NULL, 10);
		if (tid > 0 && tid <= 0x7fffffff)
			os_tid = (int)tid;
	}
	return profile_thread_id(p, pid, tid, os_tid, name && *name ? intern(p->strs, name) : NULL);
}
