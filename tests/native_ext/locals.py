"""locals.py - a frame, show_locals(), whose arguments and locals have known values.

The test expects these exact values (see test_dump.py); change both together.
"""
from __future__ import print_function, unicode_literals

import time

import workload_common


def show_locals(count, label, args):
    none_v = None
    true_v = True
    false_v = False
    int_v = 42
    neg_v = -1234
    big_v = 123456789123456789
    huge_v = 2 ** 100
    neg_huge_v = -(2 ** 100)
    x = 3.1415
    s = "hello"
    empty_s = ""
    u = "h\u00e9llo w\u00f6rld \u2603"
    nl = "line1\nline2"
    long_s = "x" * 300
    b = b"raw-bytes"
    t = ("a", "b", "c")
    l = [-1234, 5678]
    d = {"a": False, "b": (1, 2, 3)}
    st = set([1])
    workload_common.signal_ready(args.ready)
    time.sleep(args.seconds)  # LOCALS-HERE
    return (none_v, true_v, false_v, int_v, neg_v, big_v, huge_v, neg_huge_v, x, s, empty_s, u,
            nl, long_s, b, t, l, d, st)


def main():
    args = workload_common.parser(__doc__).parse_args()
    show_locals(7, "args", args)


if __name__ == "__main__":
    main()
