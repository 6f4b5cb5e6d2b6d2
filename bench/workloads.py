"""workloads.py KIND READY GO [--ext DIR] [--scale X] [--seconds S] - targets for bench/bench.py.

  deep     pure Python, 200 frames deep: each call recurses 200 levels, then spins in a loop
  threads  100 threads: 20 busy (each spins a share of the work, taking turns on the GIL) and 80
           idle (waiting on an Event), all started before READY
  mixed    tests/native_ext/mixed_native.py's two shapes (Python -> C -> C, C -> Python -> C)
  numpy    tests/native_ext/numpy_work.py's hot path: numpy.dot and numpy.sort alternating

  clock    200 frames deep like `deep`, but the innermost loop reads the clock on every turn and
           notes each stall longer than 4 us (--stamps only): what a pause costs, seen from inside

Writes "ready\\n<pid>" to READY, waits for the file GO (so that a profiler can attach first), does a
fixed amount of work and prints the seconds it took. With --seconds S it instead repeats the work
until S seconds have passed (a steady target for rate and start-up measurements). With --stamps
PATH it repeats small units of the work until SIGUSR1 and then writes the CLOCK_MONOTONIC time at
which each unit ended to PATH (doubles; for `clock`, the start and end of each stall): bench.py
compares the rate of work while a profiler samples with the rate around it, in the same process.
Python 3 only.
"""
import argparse
import array
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_EXT = os.path.join(os.path.dirname(HERE), "tests", "native_ext")
DEPTH = 200
BUSY, IDLE = 20, 80


def spin(n):
    acc = 0
    for i in range(n):
        acc += i & 7
    return acc


def deep(n, work):
    if n:
        return deep(n - 1, work)
    return spin(work)


def run_deep(scale):
    for _ in range(int(330 * scale)):
        deep(DEPTH, 100000)


class Threads:
    """20 busy threads released together by run(), 80 idle ones parked on an Event throughout."""

    def __init__(self):
        self.stop = threading.Event()
        self.idle = [threading.Thread(target=self.stop.wait, name="idle%d" % i, daemon=True)
                     for i in range(IDLE)]
        for t in self.idle:
            t.start()

    def run(self, scale, seconds=0.0):
        per = int(330 * 100000 * scale / BUSY)
        deadline = time.perf_counter() + seconds if seconds else 0.0
        busy = [threading.Thread(target=self.busy, args=(per, deadline), name="busy%d" % i) for i in range(BUSY)]
        for t in busy:
            t.start()
        for t in busy:
            t.join()

    @staticmethod
    def busy(n, deadline):
        for _ in range(n // 10000):
            spin(10000)
        while deadline and time.perf_counter() < deadline:   # --seconds: the same threads throughout
            spin(10000)


def load_mixed(ext):
    sys.path.insert(0, NATIVE_EXT)
    import mixed_native
    import workload_common
    mixed_native.EXT = workload_common.load_ext(ext)
    return mixed_native


def run_mixed(mod, scale):
    for _ in range(int(200 * scale)):
        mod.py_outer(1000000)
        mod.py_caller(1000000)


def load_numpy():
    sys.path.insert(0, NATIVE_EXT)
    import numpy
    import numpy_work
    rng = numpy.random.RandomState(1234)
    return numpy_work, rng.rand(300, 300), rng.rand(300, 300), rng.rand(400, 500)


def run_numpy(state, scale):
    mod, a, b, big = state
    for _ in range(int(100 * scale)):
        mod.matmul(a, b)
        mod.sort_rows(big)


# --stamps: units of work, each a few milliseconds at most, until SIGUSR1 ends the run
STOP = threading.Event()


def clock_spin(gaps, n):
    pc = time.perf_counter
    last = pc()
    for _ in range(n):
        t = pc()
        if t - last > 4e-6:
            gaps.append(last)
            gaps.append(t)
        last = t


def clock_deep(n, gaps):
    if n:
        return clock_deep(n - 1, gaps)
    return clock_spin(gaps, 20000)


def stamped_units(kind, ext):
    """The unit of work of kind, as a function of no arguments, run by each working thread."""
    if kind == "deep":
        return lambda: deep(DEPTH, 20000)
    if kind == "mixed":
        mod = load_mixed(ext)
        return lambda: (mod.py_outer(1000000), mod.py_caller(1000000))
    if kind == "numpy":
        mod, a, b, big = load_numpy()
        units = [lambda: mod.matmul(a, b), lambda: mod.sort_rows(big)]
        turn = [0]

        def unit():
            turn[0] ^= 1
            units[turn[0]]()
        return unit
    return lambda: spin(10000)


def run_stamped(a):
    """--stamps: work until SIGUSR1, noting when each unit ends (`clock`: each stall)."""
    signal.signal(signal.SIGUSR1, lambda *_: STOP.set())
    stamps = array.array("d")
    pc = time.perf_counter

    def worker(unit):
        while not STOP.is_set():
            unit()
            stamps.append(pc())

    def clock_worker():
        while not STOP.is_set():
            clock_deep(DEPTH, stamps)

    if a.kind == "clock":
        workers = [threading.Thread(target=clock_worker)]
    elif a.kind == "threads":
        idle = [threading.Thread(target=STOP.wait, daemon=True) for _ in range(IDLE)]
        for t in idle:
            t.start()
        unit = stamped_units(a.kind, a.ext)
        workers = [threading.Thread(target=worker, args=(unit,), name="busy%d" % i) for i in range(BUSY)]
    else:
        workers = [threading.Thread(target=worker, args=(stamped_units(a.kind, a.ext),))]
    if a.kind != "threads":
        # Single-threaded kinds work in the main thread, where the signal handler runs.
        with open(a.ready + ".tmp", "w") as f:
            f.write("ready\n%d\n%#x\n" % (os.getpid(), main_tstate()))
        os.rename(a.ready + ".tmp", a.ready)
        workers[0].run()
    else:
        for t in workers:
            t.start()
        with open(a.ready + ".tmp", "w") as f:
            f.write("ready\n%d\n" % os.getpid())
        os.rename(a.ready + ".tmp", a.ready)
        while not STOP.wait(1.0):
            pass
        for t in workers:
            t.join()
    with open(a.stamps + ".tmp", "wb") as f:
        stamps.tofile(f)
    os.rename(a.stamps + ".tmp", a.stamps)
    os._exit(0)


def main_tstate():
    """The address of this thread's PyThreadState (for bench/bpf/walk), 0 when ctypes cannot say."""
    try:
        import ctypes
        get = ctypes.pythonapi.PyThreadState_Get
        get.restype = ctypes.c_void_p
        return get() or 0
    except Exception:
        return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("deep", "threads", "mixed", "numpy", "clock"))
    p.add_argument("ready")
    p.add_argument("go")
    p.add_argument("--ext")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--stamps")
    a = p.parse_args()
    sys.setrecursionlimit(10000)
    if a.stamps:
        return run_stamped(a)
    if a.kind == "deep":
        work = lambda: run_deep(a.scale)  # noqa: E731
    elif a.kind == "threads":
        th = Threads()
        work = lambda: th.run(a.scale, a.seconds)  # noqa: E731
    elif a.kind == "mixed":
        mod = load_mixed(a.ext)
        work = lambda: run_mixed(mod, a.scale)  # noqa: E731
    else:
        state = load_numpy()
        work = lambda: run_numpy(state, a.scale)  # noqa: E731
    with open(a.ready + ".tmp", "w") as f:
        f.write("ready\n%d\n%#x\n" % (os.getpid(), main_tstate()))
    os.rename(a.ready + ".tmp", a.ready)
    while a.go != "-" and not os.path.exists(a.go):
        time.sleep(0.001)
    t0 = time.perf_counter()
    if a.seconds:
        while time.perf_counter() - t0 < a.seconds:
            work()
    else:
        work()
    print("%.6f" % (time.perf_counter() - t0))
    sys.stdout.flush()
    os._exit(0)   # the idle threads of `threads` are daemons: no join at exit


if __name__ == "__main__":
    main()
