"""subproc.py - a multiprocessing pool of 2 children, each busy in child_work().

Each child announces itself by creating READY.child.<pid>; the parent writes the ready file once both
children are working, with a third line "children PID PID". The parent waits in pool results.
"""
from __future__ import print_function

import glob
import multiprocessing
import os
import time

import workload_common


def child_work(deadline):
    total = 0
    while time.time() < deadline:
        for i in range(1000):
            total += i & 5  # CHILD-WORK-LINE
    return total


def burn(job):
    deadline, ready = job
    if ready:
        with open("%s.child.%d" % (ready, os.getpid()), "w") as f:
            f.write("%d\n" % os.getpid())
    return child_work(deadline)


def make_pool(n):
    # Fork explicitly: 3.14 changed the Linux default to forkserver, which adds another process.
    if hasattr(multiprocessing, "get_context"):
        return multiprocessing.get_context("fork").Pool(n)
    return multiprocessing.Pool(n)


def main():
    args = workload_common.parser(__doc__).parse_args()
    deadline = time.time() + args.seconds
    pool = make_pool(2)
    result = pool.map_async(burn, [(deadline, args.ready)] * 2, chunksize=1)
    children = []
    if args.ready:
        while time.time() < deadline and len(children) < 2:
            children = sorted(glob.glob(args.ready + ".child.*"))
            time.sleep(0.02)
        pids = [c.rsplit(".", 1)[1] for c in children]
        workload_common.signal_ready(args.ready, ["children " + " ".join(pids)])
    result.get(args.seconds + 30)
    pool.close()
    pool.join()


if __name__ == "__main__":
    main()
