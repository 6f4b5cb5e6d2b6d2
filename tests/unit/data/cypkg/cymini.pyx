# Fixture for tests/unit/test_cython.c: its generated cymini.c is committed next to it.
# Regenerate from tests/unit/data with: cython3 -3 cypkg/cymini.pyx
cdef double step(double x):
    return x * 0.5 + 1.0

def run(int n):
    cdef double acc = 0
    for i in range(n):
        acc = step(acc)
    return acc

def ab_xyz():
    # __pyx_pf_..._6ab_xyz_inner: the C file tells it is ab_xyz.inner
    def inner():
        return 0
    return inner()

def count(int n):
    for i in range(n):
        yield i
