/*
 * offsets.c - prints one CPython version's struct py_layout (src/python/layout.h) as a C source
 * file. It is compiled once per interpreter against that interpreter's own headers, with
 * -DPy_BUILD_CORE so the internal structures (_PyRuntimeState, _PyInterpreterFrame, ...) are
 * visible, and run by gen.sh; the output is checked in as src/python/layouts/pyXY.c.
 *
 * Not part of mixspy itself: it is a build-time tool and never linked into the binary.
 * Every plain offset comes from offsetof()/sizeof(); the few that cannot (bitfields, structs
 * private to a .c file of CPython) are explained where they are set.
 */
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if PY_MAJOR_VERSION == 2
#include <longintrepr.h>
#elif PY_VERSION_HEX < 0x03080000
#include <longintrepr.h>
#if PY_VERSION_HEX >= 0x03070000
#include "internal/pystate.h"
#endif
#else
#if PY_VERSION_HEX < 0x030b0000
#include <longintrepr.h>
#endif
#include "internal/pycore_pystate.h"
#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#endif
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_code.h"
#include "internal/pycore_dict.h"
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030c0000
#include "internal/pycore_gil.h"
#endif
#if PY_VERSION_HEX >= 0x030e0000
#include "internal/pycore_interpframe_structs.h"
#endif
#endif

/* 2.7 spells PyObject_VAR_HEAD out inline; 3.x nests it as ob_base. */
#if PY_MAJOR_VERSION == 2
#define OB_SIZE(T) offsetof(T, ob_size)
#else
#define OB_SIZE(T) offsetof(T, ob_base.ob_size)
#endif

#define V(maj, min) (PY_VERSION_HEX >= (((maj) << 24) | ((min) << 16)))

/* Print one field; N/A fields are written as -1 by NA(). */
#define F(name, value) printf("\t.%s = %ld,\n", #name, (long)(value))
#define NA(name) printf("\t.%s = -1,\n", #name)

/*
 * 3.6-3.10: PyDictKeysObject is defined in Objects/dict-common.h, which is not installed. These
 * mirror its leading fields (dk_refcnt, dk_size, dk_lookup, dk_usable, dk_nentries, then the
 * index array) so offsetof can measure them; 3.6 declares dk_indices as a union of arrays, 3.7+
 * as char[], both starting at the same place.
 */
#if PY_MAJOR_VERSION == 3 && !V(3, 11)
struct mirror_dictkeys {
	Py_ssize_t dk_refcnt;
	Py_ssize_t dk_size;
	void *dk_lookup;
	Py_ssize_t dk_usable;
	Py_ssize_t dk_nentries;
	char dk_indices[8];
};
struct mirror_dictentry {
	Py_hash_t me_hash;
	PyObject *me_key;
	PyObject *me_value;
};
#endif

static void runtime_and_interp(void)
{
#if V(3, 7)
	F(runtime_interpreters_head, offsetof(_PyRuntimeState, interpreters.head));
#else
	NA(runtime_interpreters_head);
#endif
#if V(3, 7) && !V(3, 12)
	F(runtime_tstate_current, offsetof(_PyRuntimeState, gilstate.tstate_current));
	F(runtime_gil_locked, offsetof(_PyRuntimeState, ceval.gil.locked));
	F(runtime_gil_last_holder, offsetof(_PyRuntimeState, ceval.gil.last_holder));
	F(runtime_gil_switch_number, offsetof(_PyRuntimeState, ceval.gil.switch_number));
#else
	NA(runtime_tstate_current);
	NA(runtime_gil_locked);
	NA(runtime_gil_last_holder);
	NA(runtime_gil_switch_number);
#endif

	F(interp_next, offsetof(PyInterpreterState, next));
#if V(3, 11)
	F(interp_tstate_head, offsetof(PyInterpreterState, threads.head));
#else
	F(interp_tstate_head, offsetof(PyInterpreterState, tstate_head));
#endif
#if V(3, 12)
	F(interp_modules, offsetof(PyInterpreterState, imports.modules));
	F(interp_ceval_gil, offsetof(PyInterpreterState, ceval.gil));
	F(gil_locked, offsetof(struct _gil_runtime_state, locked));
	F(gil_last_holder, offsetof(struct _gil_runtime_state, last_holder));
	F(gil_switch_number, offsetof(struct _gil_runtime_state, switch_number));
#else
	F(interp_modules, offsetof(PyInterpreterState, modules));
	NA(interp_ceval_gil);
	NA(gil_locked);
	NA(gil_last_holder);
	NA(gil_switch_number);
#endif
}

/*
 * 3.13 keeps holds_gil in a bitfield of the _status word, so offsetof cannot name it: set the
 * bit in a zeroed thread state and see which bit of the word lit up.
 */
static unsigned long holds_gil_bit(void)
{
#if V(3, 13) && !V(3, 14)
	static PyThreadState ts;
	uint32_t word;

	memset(&ts, 0, sizeof(ts));
	ts._status.holds_gil = 1;
	memcpy(&word, (char *)&ts + offsetof(PyThreadState, _status), sizeof(word));
	return word;
#else
	return 0;
#endif
}

static void tstate(void)
{
	F(tstate_next, offsetof(PyThreadState, next));
	F(tstate_interp, offsetof(PyThreadState, interp));
#if V(3, 11)
	NA(tstate_frame);
#else
	F(tstate_frame, offsetof(PyThreadState, frame));
#endif
	/* 3.10 has a cframe too, but it holds no frame pointer: the chain is still tstate->frame. */
#if V(3, 11) && !V(3, 13)
	F(tstate_cframe, offsetof(PyThreadState, cframe));
	F(cframe_current_frame, offsetof(_PyCFrame, current_frame));
#else
	NA(tstate_cframe);
	NA(cframe_current_frame);
#endif
#if V(3, 13)
	F(tstate_current_frame, offsetof(PyThreadState, current_frame));
#else
	NA(tstate_current_frame);
#endif
	F(tstate_thread_id, offsetof(PyThreadState, thread_id));
#if V(3, 11)
	F(tstate_native_thread_id, offsetof(PyThreadState, native_thread_id));
#else
	NA(tstate_native_thread_id);
#endif
#if V(3, 12)
	F(tstate_status, offsetof(PyThreadState, _status));
#else
	NA(tstate_status);
#endif
#if V(3, 14)
	F(tstate_holds_gil, offsetof(PyThreadState, holds_gil));
#else
	NA(tstate_holds_gil);
#endif
	printf("\t.tstate_status_holds_gil_bit = 0x%lx,\n", holds_gil_bit());
#if V(3, 11)
	F(tstate_datastack_chunk, offsetof(PyThreadState, datastack_chunk));
#else
	NA(tstate_datastack_chunk);
#endif
}

static void frames(void)
{
#if V(3, 11)
	NA(frame_back);
	NA(frame_code);
	NA(frame_lasti);
	NA(frame_localsplus);
	F(iframe_previous, offsetof(_PyInterpreterFrame, previous));
#if V(3, 13)
	F(iframe_code, offsetof(_PyInterpreterFrame, f_executable));
	F(iframe_instr, offsetof(_PyInterpreterFrame, instr_ptr));
#else
	F(iframe_code, offsetof(_PyInterpreterFrame, f_code));
	F(iframe_instr, offsetof(_PyInterpreterFrame, prev_instr));
#endif
#if V(3, 12)
	NA(iframe_is_entry);
#else
	F(iframe_is_entry, offsetof(_PyInterpreterFrame, is_entry));
#endif
	F(iframe_owner, offsetof(_PyInterpreterFrame, owner));
	F(iframe_localsplus, offsetof(_PyInterpreterFrame, localsplus));
#else
	F(frame_back, offsetof(PyFrameObject, f_back));
	F(frame_code, offsetof(PyFrameObject, f_code));
	F(frame_lasti, offsetof(PyFrameObject, f_lasti));
	F(frame_localsplus, offsetof(PyFrameObject, f_localsplus));
	NA(iframe_previous);
	NA(iframe_code);
	NA(iframe_instr);
	NA(iframe_is_entry);
	NA(iframe_owner);
	NA(iframe_localsplus);
#endif
}

static void code(void)
{
	F(code_argcount, offsetof(PyCodeObject, co_argcount));
#if PY_MAJOR_VERSION >= 3
	F(code_kwonlyargcount, offsetof(PyCodeObject, co_kwonlyargcount));
#else
	NA(code_kwonlyargcount);
#endif
#if V(3, 11)
	F(code_nlocals, offsetof(PyCodeObject, co_nlocalsplus));
#else
	F(code_nlocals, offsetof(PyCodeObject, co_nlocals));
#endif
	F(code_flags, offsetof(PyCodeObject, co_flags));
	F(code_firstlineno, offsetof(PyCodeObject, co_firstlineno));
	F(code_filename, offsetof(PyCodeObject, co_filename));
	F(code_name, offsetof(PyCodeObject, co_name));
#if V(3, 11)
	F(code_qualname, offsetof(PyCodeObject, co_qualname));
#else
	NA(code_qualname);
#endif
#if V(3, 10)
	F(code_linetable, offsetof(PyCodeObject, co_linetable));
#else
	F(code_linetable, offsetof(PyCodeObject, co_lnotab));
#endif
#if V(3, 11)
	F(code_varnames, offsetof(PyCodeObject, co_localsplusnames));
	F(code_localspluskinds, offsetof(PyCodeObject, co_localspluskinds));
	F(code_firsttraceable, offsetof(PyCodeObject, _co_firsttraceable));
	F(code_code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
#else
	F(code_varnames, offsetof(PyCodeObject, co_varnames));
	NA(code_localspluskinds);
	NA(code_firsttraceable);
	NA(code_code_adaptive);
#endif
	F(code_size, sizeof(PyCodeObject));
}

static void objects(void)
{
	F(ob_type, offsetof(PyObject, ob_type));
	F(var_ob_size, offsetof(PyVarObject, ob_size));
	F(type_name, offsetof(PyTypeObject, tp_name));
	F(type_flags, offsetof(PyTypeObject, tp_flags));
	F(type_dictoffset, offsetof(PyTypeObject, tp_dictoffset));
#if PY_MAJOR_VERSION == 2
	F(py2_str_sval, offsetof(PyStringObject, ob_sval));
	NA(unicode_length);
	NA(unicode_state);
	NA(unicode_ascii_data);
	NA(unicode_compact_data);
	NA(unicode_legacy_data);
	F(py2_unicode_length, offsetof(PyUnicodeObject, length));
	F(py2_unicode_str, offsetof(PyUnicodeObject, str));
#else
	NA(py2_str_sval);
	F(unicode_length, offsetof(PyASCIIObject, length));
	F(unicode_state, offsetof(PyASCIIObject, state));
	F(unicode_ascii_data, sizeof(PyASCIIObject));
	F(unicode_compact_data, sizeof(PyCompactUnicodeObject));
	F(unicode_legacy_data, offsetof(PyUnicodeObject, data));
	NA(py2_unicode_length);
	NA(py2_unicode_str);
#endif
	/* 2.7's bytesobject.h makes PyBytesObject a name for PyStringObject, so these are str. */
	F(bytes_size, OB_SIZE(PyBytesObject));
	F(bytes_sval, offsetof(PyBytesObject, ob_sval));
	F(tuple_items, offsetof(PyTupleObject, ob_item));
	F(list_items, offsetof(PyListObject, ob_item));
	F(float_value, offsetof(PyFloatObject, ob_fval));
#if V(3, 12)
	F(long_size_or_tag, offsetof(PyLongObject, long_value.lv_tag));
	F(long_digits, offsetof(PyLongObject, long_value.ob_digit));
#else
	F(long_size_or_tag, OB_SIZE(PyLongObject));
	F(long_digits, offsetof(PyLongObject, ob_digit));
#endif
#if PY_MAJOR_VERSION == 2
	F(py2_int_value, offsetof(PyIntObject, ob_ival));
#else
	NA(py2_int_value);
#endif
}

static void dicts(void)
{
	F(dict_ma_used, offsetof(PyDictObject, ma_used));
#if PY_MAJOR_VERSION == 2
	NA(dict_ma_keys);
	NA(dict_ma_values);
	NA(dictkeys_size);
	NA(dictkeys_log2_size);
	NA(dictkeys_log2_index_bytes);
	NA(dictkeys_kind);
	NA(dictkeys_nentries);
	NA(dictkeys_indices);
	F(dictkeyentry_size, sizeof(PyDictEntry));
	NA(dictunicodeentry_size);
	F(py2_dict_mask, offsetof(PyDictObject, ma_mask));
	F(py2_dict_table, offsetof(PyDictObject, ma_table));
#else
	F(dict_ma_keys, offsetof(PyDictObject, ma_keys));
	F(dict_ma_values, offsetof(PyDictObject, ma_values));
#if V(3, 11)
	NA(dictkeys_size);
	F(dictkeys_log2_size, offsetof(PyDictKeysObject, dk_log2_size));
	F(dictkeys_log2_index_bytes, offsetof(PyDictKeysObject, dk_log2_index_bytes));
	F(dictkeys_kind, offsetof(PyDictKeysObject, dk_kind));
	F(dictkeys_nentries, offsetof(PyDictKeysObject, dk_nentries));
	F(dictkeys_indices, offsetof(PyDictKeysObject, dk_indices));
	F(dictkeyentry_size, sizeof(PyDictKeyEntry));
	F(dictunicodeentry_size, sizeof(PyDictUnicodeEntry));
#else
	F(dictkeys_size, offsetof(struct mirror_dictkeys, dk_size));
	NA(dictkeys_log2_size);
	NA(dictkeys_log2_index_bytes);
	NA(dictkeys_kind);
	F(dictkeys_nentries, offsetof(struct mirror_dictkeys, dk_nentries));
	F(dictkeys_indices, offsetof(struct mirror_dictkeys, dk_indices));
	F(dictkeyentry_size, sizeof(struct mirror_dictentry));
	NA(dictunicodeentry_size);
#endif
	NA(py2_dict_mask);
	NA(py2_dict_table);
#endif
}

/* The algorithm choices follow from the version alone. */
static void models(void)
{
	const char *frame = "PYFRAME_OBJECT", *lines = "PYLINES_LNOTAB", *gil = "PYGIL_TSTATE_CURRENT_SYM";

	if (V(3, 14))
		frame = "PYFRAME_314";
	else if (V(3, 13))
		frame = "PYFRAME_313";
	else if (V(3, 12))
		frame = "PYFRAME_312";
	else if (V(3, 11))
		frame = "PYFRAME_311";
	if (V(3, 11))
		lines = "PYLINES_LOCATIONS";
	else if (V(3, 10))
		lines = "PYLINES_310";
	if (V(3, 12))
		gil = "PYGIL_INTERP_GIL_PTR";
	else if (V(3, 7))
		gil = "PYGIL_RUNTIME_TSTATE";
	printf("\t.major = %d,\n\t.minor = %d,\n", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	printf("\t.frame_model = %s,\n\t.linetable = %s,\n", frame, lines);
	printf("\t.strings = %s,\n\t.gil_model = %s,\n",
	       PY_MAJOR_VERSION == 2 ? "PYSTR_PY2" : "PYSTR_PEP393", gil);
}

int main(void)
{
	printf("/*\n * py%d%d.c - struct py_layout for CPython %d.%d, generated by src/python/layouts/gen/gen.sh\n"
	       " * from the headers of CPython %s (offsetof/sizeof with -DPy_BUILD_CORE). Do not edit;\n"
	       " * rerun gen.sh (see README).\n */\n",
	       PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_VERSION);
	printf("#include \"layouts.h\"\n\n");
	printf("const struct py_layout py_layout_%d_%d = {\n", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	models();
	printf("\n\t/* _PyRuntime, PyInterpreterState */\n");
	runtime_and_interp();
	printf("\n\t/* PyThreadState */\n");
	tstate();
	printf("\n\t/* frames */\n");
	frames();
	printf("\n\t/* PyCodeObject */\n");
	code();
	printf("\n\t/* objects */\n");
	objects();
	printf("\n\t/* dicts */\n");
	dicts();
	printf("};\n");
	return 0;
}
