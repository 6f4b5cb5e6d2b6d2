/*
 * merge.c - interleaving native and Python frames (see merge.h).
 *
 * The rule, validated per version in shared/reference/cpython-internals.md §5: walking native
 * frames from the leaf, every eval frame takes the next group of Python frames. Tolerated: one
 * eval frame more than groups (sampled in an eval call's prologue or epilogue: the innermost
 * eval frame gets nothing). Anything else keeps the Python stack and the native frames that are
 * certain (those above the innermost eval frame), and is reported as a mismatch; a sample is
 * never dropped.
 */
#include "merge.h"

#include <string.h>

/* Symbols are compared without gcc/clang clone suffixes (.cold, .part.N, .isra.N, .llvm.N). */
static bool sym_is(const char *sym, const char *name)
{
	size_t n = strlen(name);
	return strncmp(sym, name, n) == 0 && (sym[n] == 0 || sym[n] == '.' || sym[n] == '@');
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool merge_is_gil_wait(const char *func)
{
	return func && (sym_is(func, "take_gil") || sym_is(func, "PyEval_RestoreThread") ||
			sym_is(func, "PyEval_AcquireThread") || sym_is(func, "PyEval_AcquireLock") ||
			sym_is(func, "_PyEval_AcquireLock"));
}

/* Interpreter functions worth seeing: built-ins that do the real work or wait. The prefixes
 * name CPython's modules (time, gc, os/posix, locks, threads, I/O, regex, select, the GIL). */
static bool interpreter_frame_visible(const char *f)
{
	static const char *const keep[] = {
		"time_", "pysleep", "gc_collect", "gc_", "_PyGC_Collect", "collect", "os_", "posix_",
		"lock_PyThread", "lock_acquire", "rlock_", "PyThread_acquire_lock", "PyThread_", "thread_",
		"_io_", "_io__", "_bufferedreader", "_bufferedwriter", "fileio_", "sre_", "_sre_", "select_",
		"PyGilState_", "take_gil", "sock_", "builtin_input", "builtin_print", "marshal_", "zlib_",
		"_pickle_", "Pickler_", "Unpickler_", "json_", "_json_", "list_sort", "unicode_",
		NULL,
	};
	for (int i = 0; keep[i]; i++)
		if (starts(f, keep[i]))
			return true;
	return merge_is_gil_wait(f);
}

bool merge_is_startup(const char *func)
{
	/* glibc >= 2.34 has all of these in libc.so.6 itself. */
	static const char *const startup[] = { "start_thread", "clone", "clone3", "__clone", "__clone3",
					       "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main", "_start", NULL };
	for (int i = 0; func && startup[i]; i++)
		if (sym_is(func, startup[i]))
			return true;
	return false;
}

enum native_role merge_classify(const char *symbol, const char *func, bool in_interpreter)
{
	const char *s = symbol ? symbol : func;
	if (s && (sym_is(s, "_PyEval_EvalFrameDefault") || sym_is(s, "PyEval_EvalFrameEx") ||
		  sym_is(s, "_PyEval_EvalFrame")))
		return func && symbol && strcmp(func, symbol) != 0 && !sym_is(func, "_PyEval_EvalFrameDefault") &&
				       !sym_is(func, "PyEval_EvalFrameEx")
			       ? NATIVE_HIDE   /* a function inlined into the eval loop */
			       : NATIVE_EVAL;
	if (s && starts(s, "_TAIL_CALL_"))
		return NATIVE_HIDE;   /* 3.14 tail-calling interpreter: opcode handlers of the eval loop */
	const char *f = func ? func : "";
	if (merge_is_startup(f))
		return NATIVE_HIDE;
	if (in_interpreter)
		return interpreter_frame_visible(f) ? NATIVE_KEEP : NATIVE_HIDE;
	return NATIVE_KEEP;
}

static void put(struct frame *out, size_t max, size_t *n, const struct frame *f)
{
	if (*n < max)
		out[(*n)++] = *f;
}

static void put_py(struct frame *out, size_t max, size_t *n, const struct py_frame *p)
{
	struct frame f = { .kind = FRAME_PYTHON, .name = p->name, .file = p->file, .short_file = p->short_file,
			   .line = p->line };
	put(out, max, n, &f);
}

void merge_stacks(const struct native_frame *nat, size_t nn, const struct py_frame *py, size_t np,
		  struct frame *out, size_t max, size_t *nout, struct merge_result *res)
{
	size_t evals = 0, groups = 0;
	for (size_t i = 0; i < nn; i++)
		evals += nat[i].role == NATIVE_EVAL;
	for (size_t i = 0; i < np; i++)
		groups += py[i].is_entry;
	if (np && !py[np - 1].is_entry)
		groups++;   /* a chain whose oldest frame is not marked still forms a group */
	res->mismatch = false;
	res->waiting = false;
	for (size_t i = 0; i < nn; i++)
		if (nat[i].role != NATIVE_EVAL && merge_is_gil_wait(nat[i].f.name))
			res->waiting = true;
	*nout = 0;

	bool aligned = evals == groups || evals == groups + 1;
	if (!aligned) {
		/* Keep what is certain: native frames leafward of the innermost eval frame, then
		 * the whole Python stack. */
		res->mismatch = true;
		for (size_t i = 0; i < nn && nat[i].role != NATIVE_EVAL; i++)
			if (nat[i].role == NATIVE_KEEP)
				put(out, max, nout, &nat[i].f);
		for (size_t k = 0; k < np; k++)
			put_py(out, max, nout, &py[k]);
		return;
	}
	size_t skip = evals - groups;   /* 0 or 1: the innermost eval frame runs no Python frame */
	size_t k = 0;
	for (size_t i = 0; i < nn; i++) {
		if (nat[i].role == NATIVE_HIDE)
			continue;
		if (nat[i].role == NATIVE_KEEP) {
			put(out, max, nout, &nat[i].f);
			continue;
		}
		if (skip) {
			skip--;
			continue;
		}
		/* One group: frames up to and including the next entry frame. */
		while (k < np) {
			bool entry = py[k].is_entry;
			put_py(out, max, nout, &py[k]);
			k++;
			if (entry)
				break;
		}
	}
	/* Native frames ran out before the Python ones (a truncated unwind): the rest of the
	 * Python stack still belongs at the root. */
	if (k < np) {
		res->mismatch = evals != 0 || nn == 0 ? res->mismatch : true;
		for (; k < np; k++)
			put_py(out, max, nout, &py[k]);
	}
}
