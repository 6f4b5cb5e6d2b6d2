/*
 * Unit tests of cython/: demangling on symbols listed with nm from real Cython 0.29.32 output
 * (tests/unit/data/cypkg/names.pyx), the pw/pf pairing, forwarding helpers, and the marker map
 * of a real generated file (tests/unit/data/cypkg/cymini.c, from cymini.pyx next to it).
 *
 * Files are reached through cy_new's root prefix, set to tests/unit/data, so "/cypkg/..." paths
 * below are inside that directory (which holds cypkg/__init__.py: the package is cypkg).
 */
#include "unit.h"
#include "cython/cython.h"

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>

#define NAMES_SO "/cypkg/names.cpython-311-x86_64-linux-gnu.so"
#define MINI_SO "/cypkg/cymini.cpython-311-x86_64-linux-gnu.so"
#define MINI_C "/cypkg/cymini.c"

static char data_root[PATH_MAX];

/* The symbols of cypkg/names.pyx and what they must read as from the name and the module path
 * alone (names.c is not kept). Without the module path they must read the same, except for the
 * few in nomod_names (where an implementation without a counter cannot be told apart). */
static const struct {
	const char *sym, *want;
} names[] = {
	{ "__pyx_pw_5cypkg_5names_1plain", "cypkg.names.plain" },
	{ "__pyx_pf_5cypkg_5names_plain", "cypkg.names.plain" },
	/* class method (first and second in the class) */
	{ "__pyx_pw_5cypkg_5names_5Klass_1method", "cypkg.names.Klass.method" },
	{ "__pyx_pf_5cypkg_5names_5Klass_method", "cypkg.names.Klass.method" },
	{ "__pyx_pw_5cypkg_5names_5Klass_3other_method", "cypkg.names.Klass.other_method" },
	{ "__pyx_pf_5cypkg_5names_5Klass_2other_method", "cypkg.names.Klass.other_method" },
	{ "__pyx_pw_5cypkg_5names_6Solver_1least_squares_cg", "cypkg.names.Solver.least_squares_cg" },
	{ "__pyx_pf_5cypkg_5names_6Solver_least_squares_cg", "cypkg.names.Solver.least_squares_cg" },
	/* cdef class: def, cdef and cpdef methods */
	{ "__pyx_pw_5cypkg_5names_2CK_1meth", "cypkg.names.CK.meth" },
	{ "__pyx_pf_5cypkg_5names_2CK_meth", "cypkg.names.CK.meth" },
	{ "__pyx_f_5cypkg_5names_2CK_cmeth", "cypkg.names.CK.cmeth" },
	{ "__pyx_f_5cypkg_5names_2CK_cpmeth", "cypkg.names.CK.cpmeth" },
	{ "__pyx_pw_5cypkg_5names_2CK_3cpmeth", "cypkg.names.CK.cpmeth" },
	{ "__pyx_pf_5cypkg_5names_2CK_2cpmeth", "cypkg.names.CK.cpmeth" },
	{ "__pyx_pw_5cypkg_5names_16has_under_scores_1get_it_now", "cypkg.names.has_under_scores.get_it_now" },
	/* nested function and its outer function */
	{ "__pyx_pw_5cypkg_5names_5outer_1inner", "cypkg.names.outer.inner" },
	{ "__pyx_pw_5cypkg_5names_11outer", "cypkg.names.outer" },
	{ "__pyx_pf_5cypkg_5names_10outer", "cypkg.names.outer" },
	/* generator: its body carries no Python name */
	{ "__pyx_pw_5cypkg_5names_13gen", "cypkg.names.gen" },
	{ "__pyx_pf_5cypkg_5names_12gen", "cypkg.names.gen" },
	{ "__pyx_gb_5cypkg_5names_14generator", "cypkg.names.generator" },
	/* fused def (two specialisations and the dispatcher) and fused cdef */
	{ "__pyx_fuse_0__pyx_pw_5cypkg_5names_26fsum", "cypkg.names.fsum" },
	{ "__pyx_fuse_1__pyx_pw_5cypkg_5names_28fsum", "cypkg.names.fsum" },
	{ "__pyx_pw_5cypkg_5names_16fsum", "cypkg.names.fsum" },
	{ "__pyx_pf_5cypkg_5names_25fsum", "cypkg.names.fsum" },
	{ "__pyx_fuse_0__pyx_f_5cypkg_5names_cfused", "cypkg.names.cfused" },
	{ "__pyx_fuse_1__pyx_f_5cypkg_5names_cfused", "cypkg.names.cfused" },
	/* cdef and cpdef functions */
	{ "__pyx_f_5cypkg_5names_cfunc", "cypkg.names.cfunc" },
	{ "__pyx_f_5cypkg_5names_both", "cypkg.names.both" },
	{ "__pyx_pw_5cypkg_5names_9both", "cypkg.names.both" },
	{ "__pyx_pf_5cypkg_5names_8both", "cypkg.names.both" },
	/* ambiguous: a counter followed by a name with underscores */
	{ "__pyx_pw_5cypkg_5names_5least_squares_cg", "cypkg.names.least_squares_cg" },
	{ "__pyx_pf_5cypkg_5names_4least_squares_cg", "cypkg.names.least_squares_cg" },
	{ "__pyx_pw_5cypkg_5names_7_least_squares_cg", "cypkg.names._least_squares_cg" },
	{ "__pyx_pf_5cypkg_5names_6_least_squares_cg", "cypkg.names._least_squares_cg" },
	{ "__pyx_pw_5cypkg_5names_3ab_xyz", "cypkg.names.ab_xyz" },
	{ "__pyx_pf_5cypkg_5names_2ab_xyz", "cypkg.names.ab_xyz" },
	{ "__pyx_pw_5cypkg_5names_22ab_1cd", "cypkg.names.ab_1cd" },
	{ "__pyx_pf_5cypkg_5names_21ab_1cd", "cypkg.names.ab_1cd" },
	{ "__pyx_pw_5cypkg_5names_20f_3x", "cypkg.names.f_3x" },
	/* pickling helpers Cython adds to cdef classes, and module-level code */
	{ "__pyx_pw_5cypkg_5names_2CK_5__reduce_cython__", "cypkg.names.CK.__reduce_cython__" },
	{ "__pyx_f_5cypkg_5names___pyx_unpickle_CK__set_state", "cypkg.names.__pyx_unpickle_CK__set_state" },
	{ "__pyx_pymod_exec_names", "cypkg.names.<module>" },
	/* compiler clones and the leading-underscore variant */
	{ "__pyx_pf_5cypkg_5names_10outer.isra.0", "cypkg.names.outer" },
	{ "___pyx_pw_5cypkg_5names_1plain", "cypkg.names.plain" },
};

static const struct {
	const char *sym, *want;
} nomod_names[] = {
	{ "__pyx_pf_5cypkg_5names_6_least_squares_cg", "cypkg.names._least.squares_cg" },
	{ "__pyx_pymod_exec_names", "names.<module>" },
	{ "__pyx_pf_5cypkg_5names_2ab_xyz", "cypkg.names.ab.xyz" },
};

static const char *nomod_want(const char *sym, const char *want)
{
	for (size_t i = 0; i < sizeof(nomod_names) / sizeof(nomod_names[0]); i++)
		if (strcmp(nomod_names[i].sym, sym) == 0)
			return nomod_names[i].want;
	return want;
}

static struct cy_maps *new_maps(struct interner *strs)
{
	return cy_new(strs, data_root);
}

static void test_demangle_table(void)
{
	struct interner *strs = interner_new();
	struct cy_maps *c = new_maps(strs);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *with = cy_demangle(c, names[i].sym, NAMES_SO);
		const char *without = cy_demangle(c, names[i].sym, NULL);
		const char *want_without = nomod_want(names[i].sym, names[i].want);
		if (!with || strcmp(with, names[i].want) != 0 || !without || strcmp(without, want_without) != 0)
			fprintf(stderr, "  %s -> %s / %s\n", names[i].sym, with ? with : "(null)",
				without ? without : "(null)");
		CHECK_EQ_STR(with, names[i].want);
		CHECK_EQ_STR(without, want_without);
		/* cached: the same interned pointer again */
		CHECK(cy_demangle(c, names[i].sym, NAMES_SO) == with);
	}
	cy_free(c);
	interner_free(strs);
}

static void test_demangle_module(void)
{
	struct interner *strs = interner_new();
	struct cy_maps *c = new_maps(strs);
	/* py-spy's example: module implicit._als. Without the package on disk the module path still
	 * names the module; the wrapper's counter settles the rest. */
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pw_8implicit_4_als_5least_squares_cg", "/site/implicit/_als.so"),
		     "implicit._als.least_squares_cg");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pw_8implicit_4_als_5least_squares_cg", NULL),
		     "implicit._als.least_squares_cg");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pf_8implicit_4_als_30_least_squares_cg", NULL),
		     "implicit._als._least_squares_cg");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_f_6mtrand_cont0_array", NULL), "mtrand.cont0_array");
	/* module name from the .so: package-less, and in the package found through __init__.py */
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pymod_exec_cyfast", "/x/cyfast.cpython-311-x86_64-linux-gnu.so"),
		     "cyfast.<module>");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pymod_exec_cymini", MINI_SO), "cypkg.cymini.<module>");
	/* The first nested def reads wrongly from the name and module alone (see cython.c); here the
	 * package is not found on disk but the module's name still ends the module part... */
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pf_5cypkg_6cymini_6ab_xyz_inner", "/cypkg/elsewhere/cymini.so"),
		     "cypkg.cymini.ab_xyz_inner");
	/* ...and rightly when the generated C file sits next to the module: it defines the wrapper. */
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pf_5cypkg_6cymini_6ab_xyz_inner", MINI_SO), "cypkg.cymini.ab_xyz.inner");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pw_5cypkg_6cymini_6ab_xyz_1inner", MINI_SO), "cypkg.cymini.ab_xyz.inner");
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pf_5cypkg_6cymini_2ab_xyz", MINI_SO), "cypkg.cymini.ab_xyz");
	/* not Cython functions */
	CHECK(cy_demangle(c, "PyEval_EvalFrameDefault", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_f", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_f_", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_find_code_object", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_tp_new_5cypkg_5names___pyx_scope_struct__outer", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_pw_5cypkg_5names_", NAMES_SO) == NULL);
	CHECK(cy_demangle(c, "__pyx_pw_5cypkg_5names_plain", NAMES_SO) == NULL);  /* a wrapper has a counter */
	CHECK(cy_demangle(c, "__pyx_pw_", NULL) == NULL);
	CHECK(cy_demangle(c, "__pyx_fuse___pyx_pw_5cypkg_5names_1plain", NULL) == NULL);
	CHECK_EQ_STR(cy_demangle(c, "__pyx_pw_999999999999999999999x_1", NULL), "x_1");  /* no overflow */
	char longsym[3000];
	memset(longsym, 'a', sizeof(longsym) - 1);
	longsym[sizeof(longsym) - 1] = '\0';
	memcpy(longsym, "__pyx_pw_", 9);
	CHECK(cy_demangle(c, longsym, NULL) == NULL);
	cy_free(c);
	interner_free(strs);
}

static void test_wrapper_and_forwarding(void)
{
	CHECK(cy_is_wrapper_of("__pyx_pw_5cypkg_5names_1plain", "__pyx_pf_5cypkg_5names_plain"));
	CHECK(cy_is_wrapper_of("__pyx_pw_5cypkg_5names_5Klass_1method", "__pyx_pf_5cypkg_5names_5Klass_method"));
	CHECK(cy_is_wrapper_of("__pyx_pw_5cypkg_5names_5outer_1inner", "__pyx_pf_5cypkg_5names_5outer_inner"));
	CHECK(cy_is_wrapper_of("__pyx_pw_5cypkg_5names_5least_squares_cg", "__pyx_pf_5cypkg_5names_4least_squares_cg"));
	CHECK(cy_is_wrapper_of("__pyx_pw_5cypkg_5names_11outer", "__pyx_pf_5cypkg_5names_10outer.isra.0"));
	CHECK(cy_is_wrapper_of("__pyx_fuse_0__pyx_pw_5cypkg_5names_26fsum", "__pyx_pf_5cypkg_5names_25fsum"));
	CHECK(!cy_is_wrapper_of("__pyx_fuse_1__pyx_pw_5cypkg_5names_28fsum", "__pyx_pf_5cypkg_5names_25fsum"));
	CHECK(!cy_is_wrapper_of("__pyx_pw_5cypkg_5names_1plain", "__pyx_pf_5cypkg_5names_12gen"));
	CHECK(!cy_is_wrapper_of("__pyx_pf_5cypkg_5names_plain", "__pyx_pw_5cypkg_5names_1plain"));
	CHECK(!cy_is_wrapper_of("__pyx_pw_5cypkg_5names_9both", "__pyx_f_5cypkg_5names_both"));
	CHECK(!cy_is_wrapper_of(NULL, "__pyx_pf_5cypkg_5names_plain"));

	CHECK(cy_is_forwarding("__Pyx_PyFunction_FastCallDict"));
	CHECK(cy_is_forwarding("__Pyx_PyObject_Call"));
	CHECK(cy_is_forwarding("__Pyx_PyObject_CallOneArg"));
	CHECK(cy_is_forwarding("__Pyx_PyObject_Call2Args"));
	CHECK(cy_is_forwarding("__Pyx_PyObject_FastCallDict"));
	CHECK(cy_is_forwarding("__pyx_FusedFunction_call"));
	CHECK(cy_is_forwarding("__Pyx_CyFunction_CallAsMethod"));
	CHECK(cy_is_forwarding("__Pyx_CyFunction_Vectorcall_FASTCALL_KEYWORDS"));
	CHECK(!cy_is_forwarding("__Pyx_CyFunction_New"));
	CHECK(!cy_is_forwarding("__pyx_pw_5cypkg_5names_1plain"));
	CHECK(!cy_is_forwarding("PyObject_Call"));
	CHECK(!cy_is_forwarding(NULL));
}

static void test_marker_map(void)
{
	struct interner *strs = interner_new();
	struct cy_maps *c = new_maps(strs);
	const char *pyx = NULL;
	int line = 0;
	static const int pairs[][2] = {
		{ 959, 18 },   /* the first marker, over the generator's scope struct */
		{ 975, 18 },
		{ 1495, 4 },   /* return x * 0.5 + 1.0 */
		{ 1589, 9 },   /* acc = step(acc): the hot line */
		{ 1669, 14 },  /* def inner(): */
		{ 1819, 18 },  /* the generator is created by def count */
		{ 1874, 20 },  /* yield i */
		{ 2500, 1 },   /* the end of the module's init code */
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		pyx = NULL;
		line = 0;
		CHECK(cy_map_line(c, MINI_C, pairs[i][0], MINI_SO, &pyx, &line));
		CHECK_EQ_INT(line, pairs[i][1]);
		CHECK_EQ_STR(pyx, "/cypkg/cymini.pyx");
	}
	/* before the first marker, in the runtime support code, past the end */
	CHECK(!cy_map_line(c, MINI_C, 1, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 958, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 1000, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 2501, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 6039, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 6040, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, 0, MINI_SO, &pyx, &line));
	CHECK(!cy_map_line(c, MINI_C, -5, MINI_SO, &pyx, &line));
	/* a missing file is a miss, and stays one (cached) */
	size_t before = interner_count(strs);
	CHECK(!cy_map_line(c, "/cypkg/nothere.c", 10, NULL, &pyx, &line));
	size_t after_first = interner_count(strs);
	CHECK(!cy_map_line(c, "/cypkg/nothere.c", 11, NULL, &pyx, &line));
	CHECK_EQ_INT(interner_count(strs), after_first);
	CHECK(after_first >= before);
	/* not a regular file */
	CHECK(!cy_map_line(c, "/cypkg", 1, NULL, &pyx, &line));
	cy_free(c);
	interner_free(strs);
}

static void test_translate(void)
{
	struct interner *strs = interner_new();
	struct cy_maps *c = new_maps(strs);
	/* the hot line, through the .pyx file found next to the C file */
	struct frame f = { FRAME_NATIVE, intern(strs, "__pyx_pf_5cypkg_6cymini_run"), intern(strs, MINI_C),
			   intern(strs, "cymini.c"), 1589, intern(strs, MINI_SO), 0x1234 };
	CHECK(cy_translate_frame(c, &f, NULL));
	CHECK_EQ_INT(f.kind, FRAME_CYTHON);
	CHECK_EQ_STR(f.name, "cypkg.cymini.run");
	CHECK_EQ_STR(f.file, "/cypkg/cymini.pyx");
	CHECK_EQ_STR(f.short_file, "cypkg/cymini.pyx");
	CHECK_EQ_INT(f.line, 9);
	CHECK(f.addr == 0x1234);

	/* a generator body is named after the function that creates it */
	struct frame g = { FRAME_NATIVE, intern(strs, "x"), intern(strs, MINI_C), intern(strs, "cymini.c"),
			   1874, intern(strs, MINI_SO), 0 };
	CHECK(cy_translate_frame(c, &g, "__pyx_gb_5cypkg_6cymini_6generator"));
	CHECK_EQ_STR(g.name, "cypkg.cymini.count");
	CHECK_EQ_INT(g.line, 20);

	/* C file missing: the demangled name, the C location kept */
	const char *gone = intern(strs, "/build/names.c");
	struct frame h = { FRAME_NATIVE, intern(strs, "__pyx_pw_5cypkg_5names_5Klass_1method"), gone,
			   intern(strs, "names.c"), 321, NULL, 0 };
	CHECK(cy_translate_frame(c, &h, NULL));
	CHECK_EQ_INT(h.kind, FRAME_CYTHON);
	CHECK_EQ_STR(h.name, "cypkg.names.Klass.method");
	CHECK(h.file == gone);
	CHECK_EQ_INT(h.line, 321);

	/* built with --line-directives: DWARF names the .pyx already; only the name changes */
	const char *pyx = intern(strs, "/cypkg/names.pyx");
	struct frame l = { FRAME_NATIVE, intern(strs, "__pyx_f_5cypkg_5names_cfunc"), pyx, pyx, 17, NULL, 0 };
	CHECK(cy_translate_frame(c, &l, NULL));
	CHECK_EQ_STR(l.name, "cypkg.names.cfunc");
	CHECK(l.file == pyx);
	CHECK_EQ_INT(l.line, 17);

	/* not Cython: untouched */
	struct frame n = { FRAME_NATIVE, intern(strs, "memcpy"), intern(strs, ""), intern(strs, ""), 0, NULL, 1 };
	struct frame n0 = n;
	CHECK(!cy_translate_frame(c, &n, NULL));
	CHECK(n.kind == n0.kind && n.name == n0.name && n.file == n0.file && n.short_file == n0.short_file &&
	      n.line == n0.line && n.module == n0.module && n.addr == n0.addr);
	CHECK(!cy_translate_frame(c, &n, "__Pyx_PyObject_Call"));
	cy_free(c);
	interner_free(strs);
}

int main(int argc, char **argv)
{
	/* tests/unit/data, from this file's path (run from the repository root), or argv[1] */
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", argc > 1 ? argv[1] : __FILE__);
	const char *dir = argc > 1 ? buf : dirname(buf);
	char data[PATH_MAX + 8];
	snprintf(data, sizeof(data), argc > 1 ? "%s" : "%s/data", dir);
	if (!realpath(data, data_root)) {
		fprintf(stderr, "test_cython: cannot find %s (run from the repository root)\n", data);
		return 1;
	}
	RUN(test_demangle_table);
	RUN(test_demangle_module);
	RUN(test_wrapper_and_forwarding);
	RUN(test_marker_map);
	RUN(test_translate);
	return unit_report("cython");
}
