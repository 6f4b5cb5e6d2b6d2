/*
 * gen_seeds.c - writes seed inputs for fuzz_frames and fuzz_pyobj: for each version, a small
 * but well-formed memory image (interpreter -> thread state -> two frames -> code object with
 * name, file and line table), so the fuzzers start deep in the walker instead of at its first
 * pointer check. Usage: gen_seeds FRAMES_DIR PYOBJ_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_target.h"
#include "fuzz_common.h"

#define IMG 0x5000

static uint8_t img[FUZZ_HEADER + IMG];

static void put64(uint64_t off, int field, uint64_t v)
{
	if (field >= 0 && off + (uint64_t)field + 8 <= IMG)
		memcpy(img + FUZZ_HEADER + off + field, &v, 8);
}

static void put32(uint64_t off, int field, uint32_t v)
{
	if (field >= 0 && off + (uint64_t)field + 4 <= IMG)
		memcpy(img + FUZZ_HEADER + off + field, &v, 4);
}

static void put_bytes(uint64_t off, const void *s, size_t n)
{
	memcpy(img + FUZZ_HEADER + off, s, n);
}

static void put_str(const struct py_layout *L, uint64_t off, const char *s)
{
	size_t n = strlen(s);
	if (L->strings == PYSTR_PY2) {
		put64(off, L->var_ob_size, n);
		put_bytes(off + (uint64_t)L->py2_str_sval, s, n + 1);
		return;
	}
	put64(off, L->unicode_length, n);
	put32(off, L->unicode_state, (1u << 2) | (1u << 5) | (1u << 6));
	put_bytes(off + (uint64_t)L->unicode_ascii_data, s, n + 1);
}

static void put_table(const struct py_layout *L, uint64_t off)
{
	/* a few plausible entries in each format */
	static const uint8_t lnotab[] = { 2, 1, 4, 1, 6, 2 };
	static const uint8_t l310[] = { 4, 1, 6, 1, 8, 2, 2, 0x80 };
	static const uint8_t loc[] = { 0xf0 | 1, 0x02, 0xd8 | 2, 0x02, 0x90 | 1, 4, 8, 0xf8, 0xe8 | 3, 0x03, 1, 2, 3 };
	const uint8_t *t = L->linetable == PYLINES_LNOTAB ? lnotab : L->linetable == PYLINES_310 ? l310 : loc;
	size_t n = L->linetable == PYLINES_LNOTAB ? sizeof lnotab : L->linetable == PYLINES_310 ? sizeof l310 : sizeof loc;
	put64(off, L->var_ob_size, n);
	put_bytes(off + (uint64_t)(L->strings == PYSTR_PY2 ? L->py2_str_sval : L->bytes_sval), t, n);
}

static void write_file(const char *dir, const char *name, int sel, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/seed-%s-%d", dir, name, sel);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s FRAMES_DIR PYOBJ_DIR\n", argv[0]);
		return 2;
	}
	for (size_t sel = 0; sel < FUZZ_NVERSIONS; sel++) {
		int major, minor;
		const struct py_layout *L = fuzz_layout((uint8_t)sel, &major, &minor);
		if (!L)
			continue;
		memset(img, 0, sizeof img);
		img[0] = (uint8_t)sel;
		img[1] = 4 | 8;   /* names and locals */
		const uint64_t B = FAKE_BASE, ts = 0x800, cframe = 0xc00, f1 = 0x1000, f2 = 0x1400;
		const uint64_t code = 0x2000, name = 0x3000, file = 0x3100, table = 0x3200, f2code = 0x3800;
		put64(0, L->interp_tstate_head, B + ts);
		put64(ts, L->tstate_interp, B);
		put64(ts, L->tstate_thread_id, 0x7f0000001000ull);
		put64(ts, L->tstate_native_thread_id, 1);
		if (L->frame_model == PYFRAME_OBJECT) {
			put64(ts, L->tstate_frame, B + f1);
			put64(f1, L->frame_code, B + code);
			put32(f1, L->frame_lasti, 4);
			put64(f1, L->frame_back, B + f2);
			put64(f2, L->frame_code, B + code);
			put32(f2, L->frame_lasti, 2);
		} else {
			if (L->frame_model == PYFRAME_311 || L->frame_model == PYFRAME_312) {
				put64(ts, L->tstate_cframe, B + cframe);
				put64(cframe, L->cframe_current_frame, B + f1);
			} else {
				put64(ts, L->tstate_current_frame, B + f1);
			}
			uint64_t c = B + code, instr = c + (uint64_t)L->code_code_adaptive;
			put64(f1, L->iframe_code, L->frame_model == PYFRAME_314 ? c | 1 : c);
			put64(f1, L->iframe_instr, instr + 4);
			put64(f1, L->iframe_previous, B + f2);
			put64(f2, L->iframe_code, c);
			put64(f2, L->iframe_instr, instr + 2);
			if (L->iframe_is_entry >= 0)
				img[FUZZ_HEADER + f2 + L->iframe_is_entry] = 1;
		}
		put64(code, L->code_name, B + name);
		put64(code, L->code_qualname, B + name);
		put64(code, L->code_filename, B + file);
		put64(code, L->code_linetable, B + table);
		put32(code, L->code_firstlineno, 10);
		put32(code, L->code_firsttraceable, 0);
		put64(code, L->var_ob_size, 16);
		put64(code, L->code_varnames, B + f2code);   /* a tuple-ish pointer for locals */
		put_str(L, name, "work");
		put_str(L, file, "/tmp/work.py");
		put_table(L, table);
		write_file(argv[1], "frames", (int)sel, img, sizeof img);

		/* pyobj: a str at the base, then the same image as bytes */
		memset(img, 0, sizeof img);
		img[0] = (uint8_t)sel;
		put_str(L, 0, "hello world");
		write_file(argv[2], "str", (int)sel, img, FUZZ_HEADER + 0x200);
		memset(img, 0, sizeof img);
		img[0] = (uint8_t)sel;
		put_table(L, 0);
		write_file(argv[2], "bytes", (int)sel, img, FUZZ_HEADER + 0x200);
	}
	return 0;
}
