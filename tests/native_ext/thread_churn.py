"""thread_churn.py - a thread started as soon as the last one ended: job-0, job-1, ... each spins for
--job-ms milliseconds in spin_job(). The next thread reuses the last one's stack, so its thread id
(pthread_self, threading's ident) comes back while its OS thread id and name are new.

--log PATH: each job appends "NAME OS_TID IDENT" as it starts. Ready once the first job has ended.
"""
from __future__ import print_function

import os
import threading
import time

import workload_common


def os_tid():
    get = getattr(threading, "get_native_id", None)
    if get:
        return get()
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).syscall(186)   # gettid, x86-64
    except Exception:
        return 0


def spin_job(log, seconds):
    me = threading.current_thread()
    with open(log, "a") as f:
        f.write("%s %d %d\n" % (me.name, os_tid(), me.ident))
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        for i in range(500):
            total += i  # JOB-LINE
    return total


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--log", required=True)
    p.add_argument("--job-ms", type=float, default=30.0)
    args = p.parse_args()
    deadline = time.time() + args.seconds
    n = 0
    while time.time() < deadline:
        t = threading.Thread(target=spin_job, args=(args.log, args.job_ms / 1000.0), name="job-%d" % n)
        t.start()
        t.join()
        if n == 0:
            workload_common.signal_ready(args.ready)
        n += 1


if __name__ == "__main__":
    main()
