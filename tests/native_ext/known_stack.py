"""known_stack.py - the main thread blocks in outer() -> middle() -> inner() at one known line.

inner() records Python's own view of the stack (traceback.extract_stack) on the very line where it
then sleeps, so the lines written to --expect are exactly the lines a profiler must report.
"""
from __future__ import print_function

import time
import traceback

import workload_common


def snapshot(stack, args):
    workload_common.write_expect(args.expect, stack)
    workload_common.signal_ready(args.ready)
    return args.seconds


def inner(args):
    time.sleep(snapshot(traceback.extract_stack(), args))  # BLOCK-HERE


def middle(args):
    inner(args)


def outer(args):
    middle(args)


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--expect", help="JSON file for the stack Python itself sees inside inner()")
    args = p.parse_args()
    outer(args)


if __name__ == "__main__":
    main()
