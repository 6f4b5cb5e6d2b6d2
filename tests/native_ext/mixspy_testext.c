/*
 * mixspy_testext.c - a C extension with known native call chains, for the integration tests.
 *
 * Every function is noinline and has a name no other library uses, so a test can expect exact native
 * frames:  c_entry -> c_middle -> c_kernel,  c_call_back -> (Python callable) -> ...,
 * c_kernel_nogil -> c_kernel (GIL released),  c_spin_gil -> c_kernel (GIL held),
 * c_wait_then_burn -> c_burn_for -> c_kernel (GIL released, after a blocking read).
 * The hot loop of c_kernel sits on the line marked HOT-KERNEL; tests grep for that marker.
 * One source for Python 2.7 and 3.6+; build with tests/native_ext/build.sh.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* The only hot loop: a floating-point dependency chain that the compiler cannot fold away. */
static NOINLINE double c_kernel(long n)
{
	volatile double sink;
	double acc = 1.0;
	long i;

	/* The whole loop on one line, so every instruction of it maps to the marked line. */
	for (i = 0; i < n; i++) acc = acc * 0.9999999 + (double)(i & 1023) * 1e-6; /* HOT-KERNEL */
	sink = acc;
	return sink;
}

/* Not a tail call: the result is adjusted after c_kernel returns, so c_middle keeps its frame. */
static NOINLINE double c_middle(long n)
{
	double r = c_kernel(n);
	return r + 1.0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Burn CPU in c_kernel until `seconds` have passed; the caller decides about the GIL. */
static NOINLINE double c_burn_for(double seconds)
{
	double end = now_seconds() + seconds;
	double acc = 0.0;

	while (now_seconds() < end)
		acc += c_kernel(200000);
	return acc;
}

/* c_entry(n): run c_middle -> c_kernel for n iterations. */
NOINLINE PyObject *c_entry(PyObject *self, PyObject *args)
{
	long n;
	double r;

	if (!PyArg_ParseTuple(args, "l:c_entry", &n))
		return NULL;
	r = c_middle(n);
	return PyFloat_FromDouble(r);
}

/* c_call_back(fn, n): call fn(n) from C and return what it returns. */
NOINLINE PyObject *c_call_back(PyObject *self, PyObject *args)
{
	PyObject *fn, *result;
	long n;

	if (!PyArg_ParseTuple(args, "Ol:c_call_back", &fn, &n))
		return NULL;
	if (!PyCallable_Check(fn)) {
		PyErr_SetString(PyExc_TypeError, "c_call_back: fn must be callable");
		return NULL;
	}
	result = PyObject_CallFunction(fn, "l", n);
	if (result == NULL)
		return NULL;
	/* Keep this frame on the stack after the call returns (no tail call). */
	if (result == Py_None) {
		Py_DECREF(result);
		return PyFloat_FromDouble(0.0);
	}
	return result;
}

/* c_kernel_nogil(seconds): busy in c_kernel for `seconds` with the GIL released. */
NOINLINE PyObject *c_kernel_nogil(PyObject *self, PyObject *args)
{
	double seconds, r;

	if (!PyArg_ParseTuple(args, "d:c_kernel_nogil", &seconds))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = c_burn_for(seconds);
	Py_END_ALLOW_THREADS
	return PyFloat_FromDouble(r);
}

/* c_wait_then_burn(fd, seconds): with the GIL released, block reading one byte from fd, then
 * busy in c_kernel for `seconds`: a thread that wakes and works with no change a Python reader
 * could see. Returns when its read came back (CLOCK_MONOTONIC seconds, as c_monotonic): how long
 * after the write it got a CPU. */
NOINLINE PyObject *c_wait_then_burn(PyObject *self, PyObject *args)
{
	int fd;
	double seconds, woke = 0.0;
	char byte;
	ssize_t got;

	if (!PyArg_ParseTuple(args, "id:c_wait_then_burn", &fd, &seconds))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	do
		got = read(fd, &byte, 1);
	while (got < 0 && errno == EINTR);
	if (got == 1) {
		woke = now_seconds();
		c_burn_for(seconds);
	}
	Py_END_ALLOW_THREADS
	if (got != 1)
		return PyErr_SetFromErrno(PyExc_OSError);
	return PyFloat_FromDouble(woke);
}

/* c_monotonic(): CLOCK_MONOTONIC in seconds (2.7's time module has no monotonic clock). */
NOINLINE PyObject *c_monotonic(PyObject *self, PyObject *args)
{
	return PyFloat_FromDouble(now_seconds());
}

/* c_spin_gil(seconds): busy in c_kernel for `seconds` while holding the GIL. */
NOINLINE PyObject *c_spin_gil(PyObject *self, PyObject *args)
{
	double seconds, r;

	if (!PyArg_ParseTuple(args, "d:c_spin_gil", &seconds))
		return NULL;
	r = c_burn_for(seconds);
	return PyFloat_FromDouble(r);
}

static PyMethodDef testext_methods[] = {
	{"c_entry", c_entry, METH_VARARGS, "c_entry(n): c_middle -> c_kernel for n iterations"},
	{"c_call_back", c_call_back, METH_VARARGS, "c_call_back(fn, n): call fn(n) from C"},
	{"c_kernel_nogil", c_kernel_nogil, METH_VARARGS, "c_kernel_nogil(seconds): busy, GIL released"},
	{"c_wait_then_burn", c_wait_then_burn, METH_VARARGS, "c_wait_then_burn(fd, seconds): read a byte, then busy"},
	{"c_monotonic", c_monotonic, METH_NOARGS, "c_monotonic(): CLOCK_MONOTONIC seconds"},
	{"c_spin_gil", c_spin_gil, METH_VARARGS, "c_spin_gil(seconds): busy, GIL held"},
	{NULL, NULL, 0, NULL}
};

#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef testext_module = {
	PyModuleDef_HEAD_INIT, "mixspy_testext", "mixspy integration-test extension", -1,
	testext_methods, NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC PyInit_mixspy_testext(void)
{
	return PyModule_Create(&testext_module);
}
#else
PyMODINIT_FUNC initmixspy_testext(void)
{
	Py_InitModule3("mixspy_testext", testext_methods, "mixspy integration-test extension");
}
#endif
