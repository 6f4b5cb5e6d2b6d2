"""threads.py - N named threads worker-0..N-1 plus MainThread.

Even-numbered workers spin in pure Python (spin()); odd-numbered ones sleep (nap()). The ready file
is written once every worker has entered its loop; its third line lists "name=kind" for each worker.
"""
from __future__ import print_function

import threading
import time

import workload_common


def spin(deadline, started):
    started.set()
    total = 0
    while time.time() < deadline:
        for i in range(1000):
            total += i * i  # SPIN-LINE
    return total


def nap(deadline, started):
    started.set()
    while time.time() < deadline:
        time.sleep(0.5)  # NAP-LINE


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--threads", type=int, default=4, help="number of worker threads")
    args = p.parse_args()
    deadline = time.time() + args.seconds
    workers = []
    kinds = []
    for i in range(args.threads):
        started = threading.Event()
        kind = spin if i % 2 == 0 else nap
        t = threading.Thread(target=kind, args=(deadline, started), name="worker-%d" % i)
        t.daemon = True
        t.start()
        workers.append((t, started))
        kinds.append("worker-%d=%s" % (i, kind.__name__))
    for t, started in workers:
        started.wait(20)
    workload_common.signal_ready(args.ready, [" ".join(kinds)])
    while time.time() < deadline:
        time.sleep(0.5)  # MAIN-WAIT


if __name__ == "__main__":
    main()
