# Source of the demangling table in tests/unit/test_cython.c (symbols listed with nm after
# cython3 -3 cypkg/names.pyx; gcc -g -O0 -shared -fPIC); only the .pyx is kept.
ctypedef fused num:
    int
    double

def plain(x):
    return x + 1

def ab_xyz(a):
    return a

def least_squares_cg(a):
    return a

def _least_squares_cg(a):
    return a

cdef int cfunc(int n):
    return n * 2

cpdef int both(int n):
    return cfunc(n)

class Klass:
    def method(self):
        return 1
    def other_method(self, x):
        return x

cdef class CK:
    cdef int v
    def meth(self):
        return self.cmeth()
    cdef int cmeth(self):
        return self.v
    cpdef int cpmeth(self):
        return 3

def outer(int n):
    def inner(k):
        return k + n
    return inner(1)

def gen(int n):
    for i in range(n):
        yield i

def fsum(num a, num b):
    return a + b

cdef num cfused(num a):
    return a

def use_fused():
    return cfused(1) + cfused(1.0)

cdef class has_under_scores:
    def get_it_now(self):
        return 0

def f_3x(a):
    return a

class Solver:
    def least_squares_cg(self):
        return 0

def ab_1cd():
    return 0
