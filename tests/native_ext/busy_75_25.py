"""busy_75_25.py - one loop alternating heavy() (3 units of work) and light() (1 unit).

A profile of the main thread should give heavy() about 75% and light() about 25% of the samples.
--inner N sets the iterations of one unit (default 20000); a small N makes one heavy+light round
much shorter than the gap between samples, so that samples land independently of each other.
"""
from __future__ import print_function

import time

import workload_common


INNER = 20000


def work(units):
    total = 0
    for _ in range(units):
        for i in range(INNER):
            total += i % 7  # WORK-LINE
    return total


def heavy():
    return work(3)


def light():
    return work(1)


def main():
    global INNER
    p = workload_common.parser(__doc__)
    p.add_argument("--inner", type=int, default=INNER, help="iterations in one unit of work")
    args = p.parse_args()
    INNER = args.inner
    deadline = time.time() + args.seconds
    heavy()
    light()
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        heavy()
        light()


if __name__ == "__main__":
    main()
