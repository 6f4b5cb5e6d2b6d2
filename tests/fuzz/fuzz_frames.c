/*
 * fuzz_frames.c - the frame-chain walker (and what it pulls in: thread states, code objects,
 * strings, line tables, thread names, locals) over a random memory image.
 *
 * The image is the target's memory at FAKE_BASE; the interpreter state is at FAKE_BASE. Option
 * bits: 0-1 line mode, 2 read thread names, 3 read locals, 4 (3.13+) lay the image's first bytes
 * over the layout as _Py_DebugOffsets, as discovery does with the real _PyRuntime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_target.h"
#include "fuzz_common.h"
#include "python/debug_offsets.h"
#include "python/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < FUZZ_HEADER)
		return 0;
	int major, minor;
	const struct py_layout *L = fuzz_layout(data[0], &major, &minor);
	uint8_t opts = data[1];
	if (!L)
		return 0;
	struct interner *strs = interner_new();

	struct target t;
	fake_target_init(&t, data + FUZZ_HEADER, size - FUZZ_HEADER);

	struct py_proc *p = py_proc_new(&t, strs, true);    /* full names: shortening would stat() random names */
	p->version.major = major;
	p->version.minor = minor;
	p->layout = *L;
	if ((opts & 16) && major == 3 && minor >= 13) {
		size_t n = py_debug_offsets_size(minor);
		if (n && size - FUZZ_HEADER >= n)
			py_debug_offsets_apply(data + FUZZ_HEADER, n, minor, &p->layout, NULL);
	}
	p->rd.t = &t;
	p->rd.L = &p->layout;
	p->rd.major = major;
	p->rd.minor = minor;
	p->interp = FAKE_BASE;
	p->runtime = FAKE_BASE;
	p->tstate_current_sym = FAKE_BASE + 8;

	struct py_thread *threads;
	size_t n;
	struct err e;
	if (py_read_threads(p, &threads, &n, &e) == 0) {
		if (opts & 4)
			py_read_thread_names(p, threads, n);
		for (size_t i = 0; i < n && i < 16; i++) {
			if (py_read_frames(p, &threads[i], (enum py_linemode)(opts & 3) % 3, &e))
				continue;
			if (getenv("FUZZ_VERBOSE"))   /* to check that a seed reaches the frames */
				for (size_t k = 0; k < threads[i].frames.n; k++)
					fprintf(stderr, "frame %s %s:%d\n", threads[i].frames.v[k].name,
						threads[i].frames.v[k].file, threads[i].frames.v[k].line);
			for (size_t k = 0; (opts & 8) && k < threads[i].frames.n && k < 4; k++) {
				struct py_local *loc;
				size_t nloc;
				if (py_frame_locals(p, &threads[i].frames.v[k], 128, &loc, &nloc, &e) == 0)
					py_locals_free(loc, nloc);
			}
		}
	}
	uint64_t holder;
	py_gil_holder(p, &holder);
	py_close(p);
	interner_free(strs);
	fake_target_free(&t);
	return 0;
}
