"""depth_swing.py - a loop that alternates the same work at the top of a shallow stack and at the
bottom of a deep one (--depth frames of recursion, default 250: past one 16 KB data stack chunk
from 3.11 on), so the thread's chain changes shape and size all the time.

shallow() and deep() each spin --inner iterations (default 3000) at their bottom; a sampler that
reads the chain as it is at each sample gives both plenty of samples, on their SPIN-LINE.
"""
from __future__ import print_function

import sys
import time

import workload_common


def spin(n):
    total = 0
    for i in range(n):
        total += i  # SPIN-LINE
    return total


def down(depth, n):
    if depth == 0:
        return spin(n)
    return down(depth - 1, n)


def shallow(n):
    return spin(n)


def deep(depth, n):
    return down(depth, n)


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--depth", type=int, default=250)
    p.add_argument("--inner", type=int, default=3000)
    args = p.parse_args()
    sys.setrecursionlimit(args.depth + 1000)
    deadline = time.time() + args.seconds
    shallow(args.inner)
    deep(args.depth, args.inner)
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        shallow(args.inner)
        deep(args.depth, args.inner)


if __name__ == "__main__":
    main()
