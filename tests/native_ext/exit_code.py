"""exit_code.py - works for about --work seconds (default 1) in work(), then exits with --code."""
from __future__ import print_function

import sys
import time

import workload_common


def work(seconds):
    deadline = time.time() + seconds
    total = 0
    while time.time() < deadline:
        for i in range(1000):
            total += i  # EXIT-WORK-LINE
    return total


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--code", type=int, default=0, help="exit status")
    p.add_argument("--work", type=float, default=1.0, help="seconds of work before exiting")
    args = p.parse_args()
    workload_common.signal_ready(args.ready)
    work(min(args.work, args.seconds))
    sys.exit(args.code)


if __name__ == "__main__":
    main()
