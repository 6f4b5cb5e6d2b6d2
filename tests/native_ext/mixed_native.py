"""mixed_native.py - Python and C frames interleaved, with known shapes:

  outer:    <module> -> main -> py_outer -> c_entry -> c_middle -> c_kernel
  callback: <module> -> main -> py_caller -> c_call_back -> py_callback -> c_entry -> c_middle -> c_kernel

--mode both (the default) alternates the two. Needs --ext DIR, where build.sh put mixspy_testext.
With --load-after PATH it is ready before it has loaded the extension, and loads it once PATH
exists: a profiler already attached then sees a module mapped after it read the maps.
"""
from __future__ import print_function

import os
import time

import workload_common

EXT = None
N = 3000000


def py_callback(n):
    return EXT.c_entry(n)  # CALLBACK-CALLS-C


def py_outer(n):
    return EXT.c_entry(n)  # OUTER-CALLS-C


def py_caller(n):
    return EXT.c_call_back(py_callback, n)  # CALLER-CALLS-C


def main():
    global EXT
    p = workload_common.parser(__doc__)
    p.add_argument("--ext", help="directory holding the built mixspy_testext module")
    p.add_argument("--mode", choices=("outer", "callback", "both"), default="both")
    p.add_argument("--load-after", help="signal ready first, load the extension once this file exists")
    args = p.parse_args()
    deadline = time.time() + args.seconds
    if args.load_after:
        workload_common.signal_ready(args.ready)
        while not os.path.exists(args.load_after) and time.time() < deadline:
            time.sleep(0.005)
    EXT = workload_common.load_ext(args.ext)
    run_outer = args.mode in ("outer", "both")
    run_callback = args.mode in ("callback", "both")
    if run_outer:
        py_outer(1000)
    if run_callback:
        py_caller(1000)
    if not args.load_after:
        workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        if run_outer:
            py_outer(N)  # MAIN-CALLS-OUTER
        if run_callback:
            py_caller(N)  # MAIN-CALLS-CALLER


if __name__ == "__main__":
    main()
