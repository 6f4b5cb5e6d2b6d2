"""numpy_work.py - a numpy hot path: matmul() and sort_rows() alternate in one loop.

Only for an interpreter that has numpy (Debian's /usr/bin/python3 with python3-numpy).
"""
from __future__ import print_function

import time

import numpy

import workload_common


def matmul(a, b):
    return numpy.dot(a, b)  # MATMUL-LINE


def sort_rows(m):
    return numpy.sort(m, axis=1)  # SORT-LINE


def main():
    args = workload_common.parser(__doc__).parse_args()
    rng = numpy.random.RandomState(1234)
    a = rng.rand(300, 300)
    b = rng.rand(300, 300)
    big = rng.rand(400, 2000)
    deadline = time.time() + args.seconds
    matmul(a, b)
    sort_rows(big)
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        matmul(a, b)
        sort_rows(big)


if __name__ == "__main__":
    main()
