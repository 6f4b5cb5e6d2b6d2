# cyfast - the Cython module of the integration tests (package-less: import cyfast).
# Built by build.sh; the generated cyfast.c is kept next to the .so so .pyx lines can be mapped.
# Tests find the hot line by grepping for the marker comment that ends the loop body below.

cdef double hot_kernel(long n):
    cdef double acc = 0.0
    cdef long i
    for i in range(n):
        acc = acc * 0.999999 + (i % 7) * 0.5  # HOT-LOOP
    return acc

def run_def(long n):
    return hot_kernel(n)

class Runner:
    def run_method(self, long n):
        return hot_kernel(n)

def chunks(long n, int count):
    for k in range(count):
        yield hot_kernel(n)

cpdef double run_cpdef(long n):
    return hot_kernel(n)
