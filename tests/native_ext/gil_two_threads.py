"""gil_two_threads.py - two busy threads, one needing the GIL and one not.

  py-worker: pure Python in py_busy() (holds the GIL while it runs)
  c-worker:  c_kernel_nogil() -> c_burn_for -> c_kernel (GIL released)
Needs --ext DIR. MainThread waits for both.
"""
from __future__ import print_function

import threading
import time

import workload_common


def py_busy(deadline, started):
    started.set()
    total = 0
    while time.time() < deadline:
        for i in range(1000):
            total += i * 3  # PY-BUSY-LINE
    return total


def c_busy(ext, deadline, started):
    started.set()
    while time.time() < deadline:
        ext.c_kernel_nogil(0.2)  # C-BUSY-LINE


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--ext", help="directory holding the built mixspy_testext module")
    args = p.parse_args()
    ext = workload_common.load_ext(args.ext)
    deadline = time.time() + args.seconds
    py_started, c_started = threading.Event(), threading.Event()
    py_t = threading.Thread(target=py_busy, args=(deadline, py_started), name="py-worker")
    c_t = threading.Thread(target=c_busy, args=(ext, deadline, c_started), name="c-worker")
    for t in (py_t, c_t):
        t.daemon = True
        t.start()
    py_started.wait(20)
    c_started.wait(20)
    workload_common.signal_ready(args.ready)
    # join() without a timeout: Python 2's timed join polls, taking the GIL ~20 times a second,
    # and on a loaded machine py-worker then waits for the GIL a measurable share of the time.
    py_t.join()
    c_t.join()


if __name__ == "__main__":
    main()
