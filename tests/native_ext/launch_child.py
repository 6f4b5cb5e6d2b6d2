"""launch_child.py - a program for `mixspy record -- python ...`: prints a start line to stdout,
works for --work seconds in work(), prints "launch_child: done" and exits with --code.

Started by mixspy itself (not through the --ready handshake); --marker PATH is created at the very
end, so a test can tell the program ran to its end rather than being killed.
"""
from __future__ import print_function

import sys
import time

import workload_common


def work(seconds):
    deadline = time.time() + seconds
    total = 0
    while time.time() < deadline:
        for i in range(1000):
            total += i  # LAUNCH-WORK-LINE
    return total


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--code", type=int, default=0, help="exit status")
    p.add_argument("--work", type=float, default=1.0, help="seconds of work before exiting")
    p.add_argument("--marker", help="file created just before exiting")
    args = p.parse_args()
    print("launch_child: started")
    sys.stdout.flush()
    workload_common.signal_ready(args.ready)
    work(min(args.work, args.seconds))
    print("launch_child: done")
    sys.stdout.flush()
    if args.marker:
        with open(args.marker, "w") as f:
            f.write("done\n")
    sys.exit(args.code)


if __name__ == "__main__":
    main()
