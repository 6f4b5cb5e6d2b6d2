/*
 * fuzz_pyobj.c - object readers over a random memory image: str (2.7 str/unicode, PEP 393),
 * bytes, ints, floats, tuple/list items, dict iteration and lookups, instance attributes and
 * the repr used by dump --locals. The object is at FAKE_BASE. Option bits 0-2 pick which
 * reader runs first (they all run), bit 3 sets the type addresses a real attach would resolve.
 */
#include <stdlib.h>

#include "fake_target.h"
#include "fuzz_common.h"
#include "python/pyobj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < FUZZ_HEADER)
		return 0;
	int major, minor;
	const struct py_layout *L = fuzz_layout(data[0], &major, &minor);
	uint8_t opts = data[1];
	if (!L)
		return 0;
	struct target t;
	fake_target_init(&t, data + FUZZ_HEADER, size - FUZZ_HEADER);
	struct py_reader r = { .t = &t, .L = L, .major = major, .minor = minor };
	if (opts & 8) {
		r.type_code = FAKE_BASE + 0x100;
		r.type_unicode = FAKE_BASE + 0x200;
		r.type_bytes = FAKE_BASE + 0x300;
		r.type_str2 = major == 2 ? r.type_bytes : 0;
	}
	const uint64_t a = FAKE_BASE;
	struct strbuf sb;
	sb_init(&sb);

	pyobj_read_str(&r, a, &sb);
	sb_reset(&sb);
	uint8_t *bytes = NULL;
	size_t blen;
	if (pyobj_read_bytes(&r, a, 1 << 16, &bytes, &blen) == 0)
		free(bytes);
	pyobj_type_name(&r, a, &sb);
	sb_reset(&sb);
	int64_t v;
	bool overflow;
	pyobj_read_long(&r, a, &v, &overflow);
	double d;
	if (pyobj_read_float(&r, a, &d) == 0)
		pyobj_format_double(&sb, d, opts & 16);
	sb_reset(&sb);
	uint64_t *items = NULL;
	size_t nitems;
	if (pyobj_read_items(&r, a, 1000, &items, &nitems) == 0)
		free(items);
	pyobj_set_size(&r, a, &v);
	struct pyobj_dict_iter it;
	if (pyobj_dict_iter_init(&r, a, &it) == 0) {
		uint64_t k, val;
		for (int i = 0; i < 4096 && pyobj_dict_iter_next(&r, &it, &k, &val) == 1; i++)
			;
	}
	uint64_t val;
	pyobj_dict_get_str(&r, a, "name", &val);
	pyobj_instance_attr(&r, a, "_name", &val);
	pyobj_repr(&r, a, (opts & 7) * 40 + 1, &sb);
	sb_free(&sb);
	fake_target_free(&t);
	return 0;
}
