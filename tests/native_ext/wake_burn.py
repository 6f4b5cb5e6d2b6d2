"""wake_burn.py - threads asleep in C that wake and work in C, with no change Python could see.

Each of --threads threads ("sleeper-0".."sleeper-N-1") calls mixspy_testext.c_wait_then_burn at
its WAKE-LINE: with the GIL released it blocks reading a pipe, then burns --burn seconds in
c_kernel, still without the GIL. --go is a FIFO the workload makes: once something opens it for
writing, the main thread (blocked opening it, the GIL released: nothing takes the GIL meanwhile)
writes a byte to each pipe and so wakes them all at once. Once they are done, --report gets the
longest any of them took from the writes to run again (its read back, in user space): how long
a sleeper woken waited for a CPU.
"""
from __future__ import print_function

import os
import threading
import time

import workload_common


def sleeper(ext, fd, burn, started, woke):
    started.set()
    woke.append(ext.c_wait_then_burn(fd, burn))  # WAKE-LINE


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--ext", required=True, help="directory holding mixspy_testext")
    p.add_argument("--go", required=True, help="a FIFO to make: wake the sleepers once it is opened for writing")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--burn", type=float, default=1.5, help="seconds each sleeper works once woken")
    p.add_argument("--report", help="a file to write the sleepers' longest wait for a CPU to")
    args = p.parse_args()
    ext = workload_common.load_ext(args.ext)
    deadline = time.time() + args.seconds
    pipes, threads, woke = [], [], []
    for i in range(args.threads):
        r, w = os.pipe()
        started = threading.Event()
        t = threading.Thread(target=sleeper, args=(ext, r, args.burn, started, woke), name="sleeper-%d" % i)
        t.daemon = True
        t.start()
        pipes.append(w)
        threads.append((t, started))
    for t, started in threads:
        started.wait(20)
    os.mkfifo(args.go)
    workload_common.signal_ready(args.ready)
    os.close(os.open(args.go, os.O_RDONLY))  # MAIN-OPEN
    written = ext.c_monotonic()
    for w in pipes:
        os.write(w, b"x")
    for t, started in threads:
        t.join(max(0.0, deadline - time.time()))
    if args.report and len(woke) == len(threads):
        workload_common.signal_ready(args.report, ["%.6f" % max(at - written for at in woke)])
    while time.time() < deadline:
        time.sleep(0.2)  # MAIN-WAIT


if __name__ == "__main__":
    main()
