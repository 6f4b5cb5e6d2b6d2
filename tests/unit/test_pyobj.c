/*
 * Tests of src/python/pyobj.c, threadnames.c and locals.c against real interpreters: each one
 * present runs a small script that prints the id() of known objects and then waits; we attach,
 * read the objects back, and check reprs (py-spy's rules), numbers, dict lookups, instance
 * attributes, thread names and a frame's locals. Interpreters that are absent are skipped.
 */
#include "unit.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "python/internal.h"
#include "target.h"

static const char *const interpreters[] = {
	"/root/.pyenv/versions/2.7.18/bin/python2.7",
	"/root/.pyenv/versions/3.6.15/bin/python3.6",
	"/root/.pyenv/versions/3.7.16/bin/python3.7",
	"/root/.pyenv/versions/3.8.18/bin/python3.8",
	"/root/.pyenv/versions/3.9.18/bin/python3.9",
	"/root/.pyenv/versions/3.10.13/bin/python3.10",
	"/root/.pyenv/versions/3.11.7/bin/python3.11",
	"/root/.pyenv/versions/3.12.1/bin/python3.12",
	"/root/.pyenv/versions/3.13.0/bin/python3.13",
	"/usr/bin/python3",
	"build/py314/root/usr/bin/python3.14",
};

/* Runs in 2.7 and 3.x: prints "name id" lines from inside hold(), then "ready", then waits. */
static const char script[] =
	"import sys, threading, time\n"
	"class Plain(object):\n"
	"    pass\n"
	"def hold(a, b=2, *args, **kw):\n"
	"    x = 42; s = 'str'\n"
	"    p = Plain(); p._name = 'worker'\n"
	"    p2 = Plain(); p2._name = 'worker2'; p2.n = 3; vars(p2)\n"
	"    objs = [('int', 42), ('neg', -7), ('two', 2**40), ('mtwo', -(2**40)), ('big', 2**100),\n"
	"        ('mbig', -(2**100)), ('i62', 2**62), ('float', 3.1415), ('f1', 1.0), ('f2', 1e22),\n"
	"        ('f3', 1e-7), ('f4', -0.0), ('f5', float('inf')), ('f6', float('nan')), ('f7', 0.1),\n"
	"        ('true', True), ('false', False), ('none', None), ('str', u'h\\xe9llo'), ('empty', u''),\n"
	"        ('quote', u\"it's\\nok\"), ('long', u'x' * 300), ('bytes', b'abc'), ('tuple', (1, 2, 3)),\n"
	"        ('list', [1, u'a']), ('dict', {u'a': False, u'b': (1, 2, 3)}), ('gdict', {1: u'x', 2.5: None}),\n"
	"        ('range', list(range(100))), ('set', set([1, 2])), ('plain', p), ('plain2', p2),\n"
	"        ('dict2', vars(p2)), ('thread', threading.current_thread()), ('one', (1,))]\n"
	"    for name, o in objs:\n"
	"        sys.stdout.write('%s %d\\n' % (name, id(o)))\n"
	"    sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
	"    ev.wait()\n"
	"ev = threading.Event()\n"
	"th = threading.Thread(target=ev.wait, name='worker-1'); th.daemon = True; th.start()\n"
	"while th.ident not in threading._active: time.sleep(0.01)\n"
	"hold(1, 5, 6, k=7)\n";

#define MAX_OBJS 64

struct child {
	pid_t pid;
	int n;
	char names[MAX_OBJS][16];
	uint64_t ids[MAX_OBJS];
};

static int start_child(const char *py, struct child *c)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	c->pid = fork();
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* dies with the test, should the test abort */
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(py, py, "-c", script, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char line[256];
	bool ready = false;
	c->n = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "ready", 5) == 0) {
			ready = true;
			break;
		}
		unsigned long long id;
		if (c->n < MAX_OBJS && sscanf(line, "%15s %llu", c->names[c->n], &id) == 2)
			c->ids[c->n++] = id;
	}
	fclose(f);
	return ready ? 0 : -1;
}

static void stop_child(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
}

static uint64_t id_of(const struct child *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->names[i], name) == 0)
			return c->ids[i];
	fprintf(stderr, "no object %s\n", name);
	return 0;
}

static char *repr(struct py_reader *r, uint64_t addr, size_t budget)
{
	struct strbuf sb;
	sb_init(&sb);
	if (pyobj_repr(r, addr, budget, &sb)) {
		sb_free(&sb);
		return xstrdup("?");
	}
	return sb.buf ? sb_detach(&sb) : xstrdup("");
}

#define CHECK_REPR(name, want) do { \
		char *_got = repr(r, id_of(c, name), 128); \
		if (strcmp(_got, want) != 0) \
			fprintf(stderr, "  [%s] %s\n", ver, name); \
		CHECK_EQ_STR(_got, want); \
		free(_got); \
	} while (0)

static void check_reprs(struct py_reader *r, const struct child *c, const char *ver, bool py2)
{
	char want[512];
	CHECK_REPR("int", "42");
	CHECK_REPR("neg", "-7");
	CHECK_REPR("two", "1099511627776");
	CHECK_REPR("mtwo", "-1099511627776");
	CHECK_REPR("big", "+bigint");
	CHECK_REPR("mbig", "-bigint");
	CHECK_REPR("i62", py2 ? "4611686018427387904" : "+bigint");   /* 3 digits of 30 bits in 3.x */
	CHECK_REPR("float", "3.1415");
	CHECK_REPR("f1", "1");
	CHECK_REPR("f2", "10000000000000000000000");
	CHECK_REPR("f3", "0.0000001");
	CHECK_REPR("f4", "-0");
	CHECK_REPR("f5", "inf");
	CHECK_REPR("f6", "NaN");
	CHECK_REPR("f7", "0.1");
	CHECK_REPR("true", "True");
	CHECK_REPR("false", "False");
	CHECK_REPR("none", "None");
	CHECK_REPR("str", "\"h\xc3\xa9llo\"");
	CHECK_REPR("empty", "\"\"");
	CHECK_REPR("quote", "\"it\\\"s\\nok\"");
	snprintf(want, sizeof want, "\"%.*s...\"", 123, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	CHECK_REPR("long", want);
	if (py2) {
		CHECK_REPR("bytes", "\"abc\"");
	} else {
		snprintf(want, sizeof want, "<bytes at 0x%llx>", (unsigned long long)id_of(c, "bytes"));
		CHECK_REPR("bytes", want);
	}
	CHECK_REPR("tuple", "(1, 2, 3)");
	CHECK_REPR("one", "(1)");
	CHECK_REPR("list", "[1, \"a\"]");
	CHECK_REPR("dict", py2 ? "dict" : "{\"a\": False, \"b\": (1, 2, 3)}");
	CHECK_REPR("gdict", py2 ? "dict" : "{1: \"x\", 2.5: None}");
	CHECK_REPR("dict2", py2 ? "dict" : "{\"_name\": \"worker2\", \"n\": 3}");
	/* py-spy's budget: items until fewer than 6 characters remain, then "..." */
	struct strbuf sb;
	sb_init(&sb);
	sb_addc(&sb, '[');
	long remaining = 126;
	for (int i = 0; i < 100; i++) {
		char item[16];
		snprintf(item, sizeof item, "%d", i);
		remaining -= (long)strlen(item) + 2;
		sb_adds(&sb, i ? ", " : "");
		if (remaining <= 5) {
			sb_adds(&sb, "...");
			break;
		}
		sb_adds(&sb, item);
	}
	sb_addc(&sb, ']');
	CHECK_REPR("range", sb.buf);
	sb_free(&sb);
	snprintf(want, sizeof want, "<set at 0x%llx>", (unsigned long long)id_of(c, "set"));
	CHECK_REPR("set", want);
	snprintf(want, sizeof want, "<Plain at 0x%llx>", (unsigned long long)id_of(c, "plain"));
	CHECK_REPR("plain", want);
	snprintf(want, sizeof want, "<_MainThread at 0x%llx>", (unsigned long long)id_of(c, "thread"));
	CHECK_REPR("thread", want);
	char *tiny = repr(r, id_of(c, "str"), 5);
	CHECK_EQ_STR(tiny, "...");
	free(tiny);
}

static void check_numbers(struct py_reader *r, const struct child *c, bool py2)
{
	int64_t v = 0;
	bool over = true;
	CHECK_EQ_INT(pyobj_read_long(r, id_of(c, "int"), &v, &over), 0);
	CHECK_EQ_INT(v, 42);
	CHECK(!over);
	CHECK_EQ_INT(pyobj_read_long(r, id_of(c, "mtwo"), &v, &over), 0);
	CHECK_EQ_INT(v, -1099511627776ll);
	CHECK_EQ_INT(pyobj_read_long(r, id_of(c, "i62"), &v, &over), 0);
	CHECK_EQ_INT(v, 4611686018427387904ll);
	CHECK(!over);
	CHECK_EQ_INT(pyobj_read_long(r, id_of(c, "mbig"), &v, &over), 0);
	CHECK(over);
	CHECK_EQ_INT(v, -1);
	double d = 0;
	CHECK_EQ_INT(pyobj_read_float(r, id_of(c, "float"), &d), 0);
	CHECK(d == 3.1415);
	int64_t n = 0;
	CHECK_EQ_INT(pyobj_set_size(r, id_of(c, "set"), &n), 0);
	CHECK_EQ_INT(n, 2);
	uint64_t *items = NULL;
	size_t count = 0;
	CHECK_EQ_INT(pyobj_read_items(r, id_of(c, "range"), 1000, &items, &count), 0);
	CHECK_EQ_INT(count, 100);
	free(items);
	CHECK(pyobj_read_items(r, id_of(c, "range"), 10, &items, &count) != 0);
	(void)py2;
}

static void check_attrs(struct py_reader *r, const struct child *c, bool py2)
{
	struct strbuf sb;
	sb_init(&sb);
	uint64_t v = 1;
	CHECK_EQ_INT(pyobj_instance_attr(r, id_of(c, "plain"), "_name", &v), 0);
	CHECK(v != 0);
	CHECK_EQ_INT(pyobj_read_str(r, v, &sb), 0);
	CHECK_EQ_STR(sb.buf, "worker");
	sb_reset(&sb);
	CHECK_EQ_INT(pyobj_instance_attr(r, id_of(c, "plain2"), "_name", &v), 0);
	CHECK(v && !pyobj_read_str(r, v, &sb));
	CHECK_EQ_STR(sb.buf, "worker2");
	sb_reset(&sb);
	CHECK_EQ_INT(pyobj_instance_attr(r, id_of(c, "plain"), "missing", &v), 0);
	CHECK_EQ_INT(v, 0);
	CHECK_EQ_INT(pyobj_instance_attr(r, id_of(c, "thread"), py2 ? "_Thread__name" : "_name", &v), 0);
	CHECK(v && !pyobj_read_str(r, v, &sb));
	CHECK_EQ_STR(sb.buf, "MainThread");
	sb_reset(&sb);
	CHECK_EQ_INT(pyobj_dict_get_str(r, id_of(c, "dict"), "b", &v), 0);
	CHECK(v != 0);
	char *s = repr(r, v, 128);
	CHECK_EQ_STR(s, "(1, 2, 3)");
	free(s);
	CHECK_EQ_INT(pyobj_dict_get_str(r, id_of(c, "dict"), "zz", &v), 0);
	CHECK_EQ_INT(v, 0);
	sb_free(&sb);
}

static const char *local_repr(const struct py_local *l, size_t n, const char *name, bool *is_arg)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0) {
			*is_arg = l[i].is_arg;
			return l[i].repr;
		}
	return NULL;
}

static void check_threads(struct py_proc *p, bool py2, const char *ver)
{
	struct py_thread *th;
	size_t n;
	struct err e = { 0 };
	CHECK_EQ_INT(py_read_threads(p, &th, &n, &e), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(py_read_thread_names(p, th, n), 0);
	bool main_seen = false, worker_seen = false;
	for (size_t i = 0; i < n; i++) {
		if (th[i].name && strcmp(th[i].name, "MainThread") == 0)
			main_seen = true;
		if (th[i].name && strcmp(th[i].name, "worker-1") == 0)
			worker_seen = true;
	}
	CHECK(main_seen && worker_seen);
	/* cached: py_read_threads now fills the names itself */
	CHECK_EQ_INT(py_read_threads(p, &th, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		CHECK(th[i].name != NULL);
	/* the main thread's hold() frame: its arguments and locals */
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		if (!th[i].name || strcmp(th[i].name, "MainThread") != 0)
			continue;
		CHECK_EQ_INT(py_read_frames(p, &th[i], PY_LINE_CURRENT, &e), 0);
		for (size_t k = 0; k < th[i].frames.n; k++) {
			if (strcmp(th[i].frames.v[k].name, "hold") != 0)
				continue;
			found = true;
			struct py_local *l;
			size_t nl;
			CHECK_EQ_INT(py_frame_locals(p, &th[i].frames.v[k], 128, &l, &nl, &e), 0);
			bool arg = false;
			const char *v;
			CHECK((v = local_repr(l, nl, "a", &arg)) && strcmp(v, "1") == 0 && arg);
			CHECK((v = local_repr(l, nl, "b", &arg)) && strcmp(v, "5") == 0 && arg);
			CHECK((v = local_repr(l, nl, "args", &arg)) && strcmp(v, "(6)") == 0);
			CHECK((v = local_repr(l, nl, "kw", &arg)) && strcmp(v, py2 ? "dict" : "{\"k\": 7}") == 0);
			CHECK((v = local_repr(l, nl, "x", &arg)) && strcmp(v, "42") == 0 && !arg);
			CHECK((v = local_repr(l, nl, "s", &arg)) && strcmp(v, "\"str\"") == 0 && !arg);
			py_locals_free(l, nl);
		}
	}
	if (!found)
		fprintf(stderr, "  [%s] no hold() frame\n", ver);
	CHECK(found);
}

static void test_interpreters(void)
{
	for (size_t i = 0; i < sizeof interpreters / sizeof interpreters[0]; i++) {
		const char *py = interpreters[i];
		if (access(py, X_OK) != 0) {
			printf("skip %s (not present)\n", py);
			continue;
		}
		struct child c;
		if (start_child(py, &c)) {
			fprintf(stderr, "%s: the script did not start\n", py);
			stop_child(&c);
			CHECK(0);
			continue;
		}
		struct target t;
		struct err e = { 0 };
		struct interner *strs = interner_new();
		struct py_proc *p = NULL;
		int rc = target_attach(&t, c.pid, &e);
		if (!rc)
			rc = py_open(&p, &t, strs, false, &e);
		CHECK_EQ_INT(rc, 0);
		if (!rc) {
			const struct py_version *v = py_get_version(p);
			bool py2 = v->major == 2;
			int before = unit_cur_failed;
			unit_cur_failed = 0;
			check_reprs(&p->rd, &c, v->str, py2);
			check_numbers(&p->rd, &c, py2);
			check_attrs(&p->rd, &c, py2);
			check_threads(p, py2, v->str);
			printf("%s %s: %s\n", unit_cur_failed ? "FAIL" : "ok", v->str, py);
			unit_cur_failed |= before;
			py_close(p);
		} else {
			fprintf(stderr, "%s: %s\n", py, e.msg);
		}
		target_close(&t);
		interner_free(strs);
		stop_child(&c);
	}
}

static void test_format_double(void)
{
	struct { double v; bool single; const char *want; } cases[] = {
		{ 3.1415, false, "3.1415" }, { 1.0, false, "1" }, { 100.0, false, "100" }, { 0.5, false, "0.5" },
		{ 1e-7, false, "0.0000001" }, { 1.5e300, false, NULL }, { -2.25, false, "-2.25" },
		{ 0.1f, true, "0.1" }, { 1.0 / 3, false, "0.3333333333333333" }, { 123456.789, false, "123456.789" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct strbuf sb;
		sb_init(&sb);
		pyobj_format_double(&sb, cases[i].v, cases[i].single);
		if (cases[i].want)
			CHECK_EQ_STR(sb.buf, cases[i].want);
		else
			CHECK(sb.len == 301 && strncmp(sb.buf, "15000", 5) == 0);
		sb_free(&sb);
	}
}

int main(void)
{
	RUN(test_format_double);
	RUN(test_interpreters);
	return unit_report("pyobj");
}
