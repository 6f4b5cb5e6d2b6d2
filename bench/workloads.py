"""workloads.py KIND READY GO [--ext DIR] - fixed-work targets for bench/bench.py.

  deep    pure Python, 200 frames deep: each call recurses 200 levels, then spins in a loop
  mixed   tests/native_ext/mixed_native.py's two shapes (Python -> C -> C, C -> Python -> C)

Writes "ready\\n<pid>" to READY, waits for the file GO (so that a profiler can attach first), does a
fixed amount of work and prints the seconds it took. Python 3 only.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_EXT = os.path.join(os.path.dirname(HERE), "tests", "native_ext")
DEPTH = 200


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


def run_mixed(scale, ext):
    sys.path.insert(0, NATIVE_EXT)
    import mixed_native
    import workload_common
    mixed_native.EXT = workload_common.load_ext(ext)
    for _ in range(int(200 * scale)):
        mixed_native.py_outer(1000000)
        mixed_native.py_caller(1000000)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("deep", "mixed"))
    p.add_argument("ready")
    p.add_argument("go")
    p.add_argument("--ext")
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    sys.setrecursionlimit(10000)
    with open(a.ready + ".tmp", "w") as f:
        f.write("ready\n%d\n" % os.getpid())
    os.rename(a.ready + ".tmp", a.ready)
    while not os.path.exists(a.go):
        time.sleep(0.001)
    t0 = time.perf_counter()
    if a.kind == "deep":
        run_deep(a.scale)
    else:
        run_mixed(a.scale, a.ext)
    print("%.6f" % (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
