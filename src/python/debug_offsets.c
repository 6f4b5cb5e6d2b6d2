/*
 * debug_offsets.c - reads the _Py_DebugOffsets struct that CPython 3.13+ keeps at the start of
 * _PyRuntime and lays its offsets over the built-in layout table.
 *
 * The struct is a cookie, the version, a free-threaded flag, then a flat array of u64 slots
 * grouped per CPython structure ({size, field, field, ...}). Each minor version inserts slots,
 * so the slot positions are data here, one list per minor (from the 3.13 pycore_runtime.h and
 * the 3.14 pycore_debug_offsets.h). Only offsets are taken from the target: what the fields mean
 * (owner values, tag bits, line tables) stays in the code that uses them.
 */
#include <stddef.h>
#include <string.h>

#include "debug_offsets.h"

#define MAX_STRUCT_SIZE (1u << 20)
#define NO_BASE 0                      /* slot 0 is the cookie, never a base */
#define TO(field) ((int16_t)offsetof(struct py_layout, field))

/* One CPython structure described by the struct: its size slot and its field slots. */
struct dbg_group {
	uint8_t size_slot, first, last;
};

/* One published offset and the layout field it sets. base: a slot to subtract, for the GIL
 * fields, which are published relative to the interpreter rather than to the GIL struct. */
struct dbg_field {
	uint8_t slot, base;
	int16_t dst;
};

struct dbg_shape {
	int minor;
	size_t nslots;
	const struct dbg_group *groups;
	size_t ngroups;
	const struct dbg_field *fields;
	size_t nfields;
};

/* 3.13: runtime 3-5, interpreter 6-18, thread 19-27, frame 28-33, code 34-43, object 44-45,
 * type 46-49, tuple 50-52, list 53-55, dict 56-58, float 59-60, long 61-63, bytes 64-66,
 * unicode 67-70, gc 71-72. */
static const struct dbg_group groups_313[] = {
	{3, 4, 5}, {6, 7, 18}, {19, 20, 27}, {28, 29, 33}, {34, 35, 43}, {44, 45, 45},
	{46, 47, 49}, {50, 51, 52}, {53, 54, 55}, {56, 57, 58}, {59, 60, 60}, {61, 62, 63},
	{64, 65, 66}, {67, 68, 70}, {71, 72, 72},
};

static const struct dbg_field fields_313[] = {
	{5, NO_BASE, TO(runtime_interpreters_head)},
	{8, NO_BASE, TO(interp_next)},
	{9, NO_BASE, TO(interp_tstate_head)},
	{11, NO_BASE, TO(interp_modules)},
	{14, NO_BASE, TO(interp_ceval_gil)},
	{17, 15, TO(gil_locked)},
	{18, 15, TO(gil_last_holder)},
	{21, NO_BASE, TO(tstate_next)},
	{22, NO_BASE, TO(tstate_interp)},
	{23, NO_BASE, TO(tstate_current_frame)},
	{24, NO_BASE, TO(tstate_thread_id)},
	{25, NO_BASE, TO(tstate_native_thread_id)},
	{26, NO_BASE, TO(tstate_datastack_chunk)},
	{27, NO_BASE, TO(tstate_status)},
	{29, NO_BASE, TO(iframe_previous)},
	{30, NO_BASE, TO(iframe_code)},
	{31, NO_BASE, TO(iframe_instr)},
	{32, NO_BASE, TO(iframe_localsplus)},
	{33, NO_BASE, TO(iframe_owner)},
	{34, NO_BASE, TO(code_size)},
	{35, NO_BASE, TO(code_filename)},
	{36, NO_BASE, TO(code_name)},
	{37, NO_BASE, TO(code_qualname)},
	{38, NO_BASE, TO(code_linetable)},
	{39, NO_BASE, TO(code_firstlineno)},
	{40, NO_BASE, TO(code_argcount)},
	{41, NO_BASE, TO(code_varnames)},
	{42, NO_BASE, TO(code_localspluskinds)},
	{43, NO_BASE, TO(code_code_adaptive)},
	{45, NO_BASE, TO(ob_type)},
	{47, NO_BASE, TO(type_name)},
	{49, NO_BASE, TO(type_flags)},
	{51, NO_BASE, TO(tuple_items)},
	{54, NO_BASE, TO(list_items)},
	{57, NO_BASE, TO(dict_ma_keys)},
	{58, NO_BASE, TO(dict_ma_values)},
	{60, NO_BASE, TO(float_value)},
	{62, NO_BASE, TO(long_size_or_tag)},
	{63, NO_BASE, TO(long_digits)},
	{65, NO_BASE, TO(bytes_size)},
	{66, NO_BASE, TO(bytes_sval)},
	{68, NO_BASE, TO(unicode_state)},
	{69, NO_BASE, TO(unicode_length)},
	{70, NO_BASE, TO(unicode_ascii_data)},
};

/* 3.14 adds interpreter threads_main and two generation counters, frame stackpointer and
 * tlbc_index, code co_tlbc, a set group after list, and gen / llist / debugger groups at the
 * end: runtime 3-5, interpreter 6-21, thread 22-30, frame 31-38, code 39-49, object 50-51,
 * type 52-55, tuple 56-58, list 59-61, set 62-65, dict 66-68, float 69-70, long 71-73,
 * bytes 74-76, unicode 77-80, gc 81-82, gen 83-86, llist 87-88, debugger 89-94. */
static const struct dbg_group groups_314[] = {
	{3, 4, 5}, {6, 7, 21}, {22, 23, 30}, {31, 32, 38}, {39, 40, 49}, {50, 51, 51},
	{52, 53, 55}, {56, 57, 58}, {59, 60, 61}, {62, 63, 65}, {66, 67, 68}, {69, 70, 70},
	{71, 72, 73}, {74, 75, 76}, {77, 78, 80}, {81, 82, 82}, {83, 84, 86},
};

static const struct dbg_field fields_314[] = {
	{5, NO_BASE, TO(runtime_interpreters_head)},
	{8, NO_BASE, TO(interp_next)},
	{9, NO_BASE, TO(interp_tstate_head)},
	{12, NO_BASE, TO(interp_modules)},
	{15, NO_BASE, TO(interp_ceval_gil)},
	{18, 16, TO(gil_locked)},
	{19, 16, TO(gil_last_holder)},
	{24, NO_BASE, TO(tstate_next)},
	{25, NO_BASE, TO(tstate_interp)},
	{26, NO_BASE, TO(tstate_current_frame)},
	{27, NO_BASE, TO(tstate_thread_id)},
	{28, NO_BASE, TO(tstate_native_thread_id)},
	{29, NO_BASE, TO(tstate_datastack_chunk)},
	{30, NO_BASE, TO(tstate_status)},
	{32, NO_BASE, TO(iframe_previous)},
	{33, NO_BASE, TO(iframe_code)},
	{34, NO_BASE, TO(iframe_instr)},
	{35, NO_BASE, TO(iframe_localsplus)},
	{36, NO_BASE, TO(iframe_owner)},
	{39, NO_BASE, TO(code_size)},
	{40, NO_BASE, TO(code_filename)},
	{41, NO_BASE, TO(code_name)},
	{42, NO_BASE, TO(code_qualname)},
	{43, NO_BASE, TO(code_linetable)},
	{44, NO_BASE, TO(code_firstlineno)},
	{45, NO_BASE, TO(code_argcount)},
	{46, NO_BASE, TO(code_varnames)},
	{47, NO_BASE, TO(code_localspluskinds)},
	{48, NO_BASE, TO(code_code_adaptive)},
	{51, NO_BASE, TO(ob_type)},
	{53, NO_BASE, TO(type_name)},
	{55, NO_BASE, TO(type_flags)},
	{57, NO_BASE, TO(tuple_items)},
	{60, NO_BASE, TO(list_items)},
	{67, NO_BASE, TO(dict_ma_keys)},
	{68, NO_BASE, TO(dict_ma_values)},
	{70, NO_BASE, TO(float_value)},
	{72, NO_BASE, TO(long_size_or_tag)},
	{73, NO_BASE, TO(long_digits)},
	{75, NO_BASE, TO(bytes_size)},
	{76, NO_BASE, TO(bytes_sval)},
	{78, NO_BASE, TO(unicode_state)},
	{79, NO_BASE, TO(unicode_length)},
	{80, NO_BASE, TO(unicode_ascii_data)},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct dbg_shape shapes[] = {
	{13, 73, groups_313, N(groups_313), fields_313, N(fields_313)},
	{14, 95, groups_314, N(groups_314), fields_314, N(fields_314)},
};

static const struct dbg_shape *shape_for(int minor)
{
	for (size_t i = 0; i < N(shapes); i++)
		if (shapes[i].minor == minor)
			return &shapes[i];
	return NULL;
}

static uint64_t slot(const uint8_t *buf, size_t i)
{
	uint64_t v;

	memcpy(&v, buf + 8 * i, sizeof(v));  /* the target is x86_64, like us: little-endian */
	return v;
}

size_t py_debug_offsets_size(int minor)
{
	const struct dbg_shape *s = shape_for(minor);

	return s ? 8 * s->nslots : 0;
}

static int check_header(const uint8_t *buf, size_t len, int minor, const struct dbg_shape *s,
			struct err *e)
{
	uint64_t version;

	if (len < 24 || memcmp(buf, "xdebugpy", 8) != 0)
		return err_set(e, E_READ, "_Py_DebugOffsets: no xdebugpy cookie at _PyRuntime");
	version = slot(buf, 1);
	if (version >> 24 != 3 || ((version >> 16) & 0xff) != (uint64_t)minor)
		return err_set(e, E_VERSION, "_Py_DebugOffsets: version 0x%llx is not 3.%d",
			       (unsigned long long)version, minor);
	if (slot(buf, 2) != 0)
		return err_set(e, E_VERSION, "free-threaded CPython 3.%d is not supported", minor);
	if (len < 8 * s->nslots)
		return err_set(e, E_READ, "_Py_DebugOffsets: %zu bytes, 3.%d needs %zu", len, minor,
			       8 * s->nslots);
	return 0;
}

static int check_groups(const uint8_t *buf, const struct dbg_shape *s, struct err *e)
{
	for (size_t g = 0; g < s->ngroups; g++) {
		const struct dbg_group *grp = &s->groups[g];
		uint64_t size = slot(buf, grp->size_slot);

		if (size == 0 || size >= MAX_STRUCT_SIZE)
			return err_set(e, E_READ, "_Py_DebugOffsets: struct size %llu at slot %u",
				       (unsigned long long)size, grp->size_slot);
		for (unsigned i = grp->first; i <= grp->last; i++)
			if (slot(buf, i) >= size)
				return err_set(e, E_READ,
					       "_Py_DebugOffsets: offset %llu at slot %u is past its struct (%llu)",
					       (unsigned long long)slot(buf, i), i, (unsigned long long)size);
	}
	return 0;
}

int py_debug_offsets_apply(const uint8_t *buf, size_t len, int minor, struct py_layout *out,
			   struct err *e)
{
	const struct dbg_shape *s = shape_for(minor);
	const struct py_layout *table = py_layout_for(3, minor);
	struct py_layout l;
	int rc;

	if (!s || !table)
		return err_set(e, E_VERSION, "no _Py_DebugOffsets support for 3.%d", minor);
	if (!buf)
		return err_set(e, E_READ, "_Py_DebugOffsets: nothing read");
	if ((rc = check_header(buf, len, minor, s, e)) < 0)
		return rc;
	if ((rc = check_groups(buf, s, e)) < 0)
		return rc;
	l = *table;
	for (size_t i = 0; i < s->nfields; i++) {
		const struct dbg_field *f = &s->fields[i];
		uint64_t v = slot(buf, f->slot);
		int value;

		if (f->base != NO_BASE) {
			uint64_t base = slot(buf, f->base);

			if (v < base || v - base >= MAX_STRUCT_SIZE)
				return err_set(e, E_READ, "_Py_DebugOffsets: slot %u (%llu) is before its base (%llu)",
					       f->slot, (unsigned long long)v, (unsigned long long)base);
			v -= base;
		}
		value = (int)v;  /* < MAX_STRUCT_SIZE, checked above */
		memcpy((char *)&l + f->dst, &value, sizeof(value));
	}
	*out = l;
	return 0;
}
