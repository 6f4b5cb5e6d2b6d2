"""busy_75_25.py - one loop alternating heavy() (3 units of work) and light() (1 unit).

A profile of the main thread should give heavy() about 75% and light() about 25% of the samples.
"""
from __future__ import print_function

import time

import workload_common


def work(units):
    total = 0
    for _ in range(units):
        for i in range(20000):
            total += i % 7  # WORK-LINE
    return total


def heavy():
    return work(3)


def light():
    return work(1)


def main():
    args = workload_common.parser(__doc__).parse_args()
    deadline = time.time() + args.seconds
    heavy()
    light()
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        heavy()
        light()


if __name__ == "__main__":
    main()
