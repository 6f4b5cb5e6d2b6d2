/*
 * layout.h - where each field lives in one CPython minor version. Code that walks interpreter
 * structures reads offsets by name from a struct py_layout; the per-version values are data
 * (src/python/layouts/), generated from the real headers by src/python/layouts/gen/.
 *
 * -1 means "this version has no such field". All offsets are in bytes, x86_64 LP64, release
 * (non-Py_DEBUG) builds with the GIL.
 */
#ifndef MIXSPY_PY_LAYOUT_H
#define MIXSPY_PY_LAYOUT_H

#include <stdint.h>

/* True differences in algorithm, not in offsets. */
enum py_frame_model {
	PYFRAME_OBJECT = 0,    /* <= 3.10: PyFrameObject chain via f_back */
	PYFRAME_311 = 1,       /* 3.11: tstate->cframe->current_frame, _PyInterpreterFrame, is_entry */
	PYFRAME_312 = 2,       /* 3.12: as 3.11 with owner; shim frames owner == 3 */
	PYFRAME_313 = 3,       /* 3.13: tstate->current_frame, f_executable, instr_ptr */
	PYFRAME_314 = 4,       /* 3.14: f_executable is a tagged _PyStackRef; owner >= 3 is not Python */
};

enum py_linetable_kind {
	PYLINES_LNOTAB = 0,       /* <= 3.9 co_lnotab (2.7: unsigned line deltas) */
	PYLINES_310 = 1,          /* 3.10 co_linetable (PEP 626), f_lasti in code units */
	PYLINES_LOCATIONS = 2,    /* 3.11+ location table */
};

enum py_string_model {
	PYSTR_PY2 = 0,     /* PyStringObject, chars inline at py2_str_sval */
	PYSTR_PEP393 = 1,
};

enum py_gil_model {
	PYGIL_TSTATE_CURRENT_SYM = 0,  /* 2.7, 3.6: *_PyThreadState_Current is the holder */
	PYGIL_RUNTIME_TSTATE = 1,      /* 3.7-3.11: _PyRuntime.gilstate.tstate_current */
	PYGIL_INTERP_GIL_PTR = 2,      /* 3.12+: *(interp + interp_ceval_gil) -> locked / last_holder */
};

struct py_layout {
	int major, minor;
	enum py_frame_model frame_model;
	enum py_linetable_kind linetable;
	enum py_string_model strings;
	enum py_gil_model gil_model;

	/* _PyRuntime (3.7+) */
	int runtime_interpreters_head;
	int runtime_tstate_current;     /* 3.7-3.11 gilstate.tstate_current */
	int runtime_gil_locked;         /* 3.7-3.11 ceval.gil.locked */
	int runtime_gil_last_holder;    /* 3.7-3.11 ceval.gil.last_holder */
	int runtime_gil_switch_number;  /* 3.7-3.11 ceval.gil.switch_number */

	/* PyInterpreterState */
	int interp_next;
	int interp_tstate_head;         /* tstate_head, or threads.head from 3.11 */
	int interp_modules;             /* modules, or imports.modules from 3.12 */
	int interp_ceval_gil;           /* 3.12+: pointer to the GIL in use */
	int gil_locked;                 /* 3.12+: within _gil_runtime_state */
	int gil_last_holder;
	int gil_switch_number;          /* 3.12+: counts changes of holder */

	/* PyThreadState */
	int tstate_next;
	int tstate_interp;
	int tstate_frame;               /* <= 3.10 */
	int tstate_cframe;              /* 3.11, 3.12 */
	int cframe_current_frame;       /* 3.11 (8), 3.12 (0) */
	int tstate_current_frame;       /* 3.13+ */
	int tstate_thread_id;
	int tstate_native_thread_id;    /* 3.11+ */
	int tstate_status;              /* 3.12+ _status word */
	int tstate_holds_gil;           /* 3.14: int; 3.13: -1 (it is a bit of _status) */
	uint32_t tstate_status_holds_gil_bit;  /* 3.13: 0x20 */

	/* PyFrameObject (<= 3.10) */
	int frame_back;
	int frame_code;
	int frame_lasti;
	int frame_localsplus;

	/* _PyInterpreterFrame (3.11+) */
	int iframe_previous;
	int iframe_code;                /* f_code / f_executable */
	int iframe_instr;               /* prev_instr (3.11, 3.12) / instr_ptr (3.13+) */
	int iframe_is_entry;            /* 3.11 */
	int iframe_owner;               /* 3.11+ */
	int iframe_localsplus;

	/* PyCodeObject */
	int code_argcount;
	int code_kwonlyargcount;
	int code_nlocals;               /* <= 3.10 co_nlocals; 3.11+ co_nlocalsplus */
	int code_flags;
	int code_firstlineno;
	int code_filename;
	int code_name;
	int code_qualname;              /* 3.11+ */
	int code_linetable;             /* co_lnotab (<= 3.9) or co_linetable */
	int code_varnames;              /* co_varnames (<= 3.10) or co_localsplusnames */
	int code_localspluskinds;       /* 3.11+ */
	int code_firsttraceable;        /* 3.11+ _co_firsttraceable */
	int code_code_adaptive;         /* 3.11+ */
	int code_size;                  /* sizeof(PyCodeObject), for sanity checks */

	/* objects */
	int ob_type;                    /* 8 */
	int var_ob_size;                /* 16 */
	int type_name;                  /* tp_name */
	int type_flags;                 /* tp_flags */
	int type_dictoffset;            /* tp_dictoffset */
	int py2_str_sval;               /* 2.7 PyStringObject chars: 36 */
	int unicode_length;             /* 16 */
	int unicode_state;              /* 32 */
	int unicode_ascii_data;         /* sizeof(PyASCIIObject): 48 (<= 3.11) / 40 */
	int unicode_compact_data;       /* sizeof(PyCompactUnicodeObject): 72 / 56 */
	int unicode_legacy_data;        /* PyUnicodeObject data.any (non-compact) */
	int py2_unicode_length;         /* 2.7 unicode: length 16, str pointer 24 (UCS4) */
	int py2_unicode_str;
	int bytes_size;                 /* 16 */
	int bytes_sval;                 /* 32 */
	int tuple_items;                /* 24 */
	int list_items;                 /* 24 (pointer to the item array) */
	int float_value;                /* 16 */
	int long_size_or_tag;           /* 16: ob_size (<= 3.11) or lv_tag (3.12+) */
	int long_digits;                /* 24 */
	int py2_int_value;              /* 2.7 PyIntObject ob_ival: 16 */

	/* dicts (for thread names and --locals); 3.6+ */
	int dict_ma_used;
	int dict_ma_keys;
	int dict_ma_values;
	int dictkeys_size;              /* dk_size (3.6-3.10) */
	int dictkeys_log2_size;         /* dk_log2_size (3.11+) */
	int dictkeys_log2_index_bytes;  /* 3.11+ */
	int dictkeys_kind;              /* 3.11+ dk_kind */
	int dictkeys_nentries;
	int dictkeys_indices;           /* start of dk_indices */
	int dictkeyentry_size;          /* sizeof(PyDictKeyEntry): 24 */
	int dictunicodeentry_size;      /* 3.11+: 16 */
	int py2_dict_mask;              /* 2.7 PyDictObject ma_mask, ma_table */
	int py2_dict_table;

	/* 3.11+: the thread's data stack (where its _PyInterpreterFrames live), read in one go */
	int tstate_datastack_chunk;
};

/* The built-in table for a version, or NULL when unknown. */
const struct py_layout *py_layout_for(int major, int minor);

#endif
