"""gil_contention.py - several threads contend for the GIL (contender-0..N-1 in contend()).

With --ext DIR one more thread, "spinner", holds the GIL in C (c_spin_gil) for long stretches.
With --nap SECS each contender stops contending every SECS seconds for as long, asleep on an event
of its own (in nap(): idle, not waiting for the GIL).
"""
from __future__ import print_function

import threading
import time

import workload_common


def contend(deadline, started, nap=0):
    started.set()
    total = 0
    never = threading.Event()
    turn = time.time() + nap
    while time.time() < deadline:
        for i in range(1000):
            total ^= i  # CONTEND-LINE
        if nap and time.time() >= turn:
            turn = napping(never, nap)
    return total


def napping(never, nap):
    never.wait(nap)
    return time.time() + nap


def spin_in_c(ext, deadline, started):
    started.set()
    while time.time() < deadline:
        ext.c_spin_gil(0.05)  # SPIN-GIL-LINE


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--threads", type=int, default=4, help="number of contending Python threads")
    p.add_argument("--ext", help="optional: directory holding mixspy_testext, adds a C spinner")
    p.add_argument("--nap", type=float, default=0, help="contend and nap by turns, this many seconds each")
    args = p.parse_args()
    deadline = time.time() + args.seconds
    threads = []
    for i in range(args.threads):
        started = threading.Event()
        t = threading.Thread(target=contend, args=(deadline, started, args.nap),
                             name="contender-%d" % i)
        threads.append((t, started))
    if args.ext:
        ext = workload_common.load_ext(args.ext)
        started = threading.Event()
        t = threading.Thread(target=spin_in_c, args=(ext, deadline, started), name="spinner")
        threads.append((t, started))
    for t, _ in threads:
        t.daemon = True
        t.start()
    for _, started in threads:
        started.wait(20)
    workload_common.signal_ready(args.ready)
    # join() without a timeout: Python 2's timed join polls and would compete for the GIL.
    for t, _ in threads:
        t.join()


if __name__ == "__main__":
    main()
