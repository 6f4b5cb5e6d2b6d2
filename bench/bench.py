"""bench.py - what sampling costs the target, measured in one run (called by bench/run.sh).

For a deep pure-Python workload (200 frames) and mixed_native.py's shapes, with Python-only and
--native sampling at 100 Hz and 1000 Hz:
  slowdown     the target's own time for a fixed amount of work, profiled against unprofiled; runs
               alternate (unprofiled, then each configuration, round after round) and the medians
               are compared, so drift on the machine hits both sides alike
  pause        how long each sampled thread stood still (median, p99), measured inside mixspy
               around pause/resume (MIXSPY_STATS=1)
  samples/s    samples taken per second of the target's work
  peak RSS     mixspy's own maximum resident set size
Options: --rounds N (default 5), --scale X (work per run, default 1.0: ~1.5 s each),
--python PATH (default Debian's /usr/bin/python3), --ext DIR (mixspy_testext built for it).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIXSPY = os.environ.get("MIXSPY", os.path.join(REPO, "mixspy"))
STATS = re.compile(r"mixspy-stats: pid \d+ pauses (\d+) pause_us p50 ([\d.]+) p90 [\d.]+ p99 ([\d.]+) "
                   r"max [\d.]+ maxrss_kb (-?\d+)")
SAMPLES = re.compile(r"Samples: (\d+)")

CONFIGS = [(native, rate) for native in (False, True) for rate in (100, 1000)]


def wait_for(path, proc, what):
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("bench: %s did not start" % what)
        time.sleep(0.002)


def one_run(args, kind, tmp, config):
    """Run the workload once, profiled with config (native, rate) or not (None).
    Returns (seconds, stats dict or None)."""
    ready, go = os.path.join(tmp, "ready"), os.path.join(tmp, "go")
    for f in (ready, go):
        if os.path.exists(f):
            os.unlink(f)
    argv = [args.python, os.path.join(HERE, "workloads.py"), kind, ready, go, "--scale", str(args.scale)]
    if kind == "mixed":
        argv += ["--ext", args.ext]
    target = subprocess.Popen(argv, stdout=subprocess.PIPE, universal_newlines=True)
    wait_for(ready, target, "workload")
    prof = None
    if config:
        native, rate = config
        out = os.path.join(tmp, "out.txt")
        cmd = [MIXSPY, "record", "-r", str(rate), "-f", "raw", "-o", out, "--pid",
               str(target.pid)]
        if native:
            cmd.insert(2, "--native")
        env = dict(os.environ, MIXSPY_STATS="1")
        prof = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                universal_newlines=True)
        # Start the work once mixspy has attached and taken its first samples.
        t_end = time.monotonic() + 10
        while not os.path.exists(out) and time.monotonic() < t_end and prof.poll() is None:
            time.sleep(0.002)
        time.sleep(0.05)
    with open(go, "w"):
        pass
    stdout, _ = target.communicate()
    secs = float(stdout.strip().splitlines()[-1])
    if not prof:
        return secs, None
    _, err = prof.communicate(timeout=60)
    m, s = STATS.search(err), SAMPLES.search(err)
    if not m or not s:
        sys.exit("bench: no stats from mixspy:\n" + err)
    return secs, {"p50": float(m.group(2)), "p99": float(m.group(3)), "rss": int(m.group(4)),
                  "samples": int(s.group(1)), "secs": secs}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--python", default="/usr/bin/python3")
    p.add_argument("--ext", default=os.path.join(REPO, "build", "native_ext", "bench"))
    args = p.parse_args()
    kinds = ("deep", "mixed")
    base = {k: [] for k in kinds}
    runs = {(k, c): [] for k in kinds for c in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="mixspy-bench-") as tmp:
        for r in range(args.rounds):
            for k in kinds:
                base[k].append(one_run(args, k, tmp, None)[0])
                for c in CONFIGS:
                    runs[(k, c)].append(one_run(args, k, tmp, c))
            sys.stderr.write("bench: round %d of %d done\n" % (r + 1, args.rounds))
    load = os.getloadavg()[0]
    print("mixspy bench: %s, %d rounds, %d CPUs, load %.1f" % (args.python, args.rounds, os.cpu_count(), load))
    print("%-8s %-8s %6s  %9s  %10s  %10s  %9s  %8s" % ("workload", "mode", "rate", "slowdown",
                                                         "pause p50", "pause p99", "samples/s", "peak RSS"))
    for k in kinds:
        b = statistics.median(base[k])
        for c in CONFIGS:
            rs = runs[(k, c)]
            t = statistics.median(secs for secs, _ in rs)
            st = [s for _, s in rs]
            p50 = statistics.median(s["p50"] for s in st)
            p99 = statistics.median(s["p99"] for s in st)
            sps = statistics.median(s["samples"] / s["secs"] for s in st)
            rss = max(s["rss"] for s in st)
            print("%-8s %-8s %4d Hz  %+8.1f%%  %7.1f us  %7.1f us  %9.0f  %5.1f MB" % (
                k, "native" if c[0] else "python", c[1], (t / b - 1) * 100, p50, p99, sps, rss / 1024.0))
        print("%-8s unprofiled: median %.3f s (min %.3f, max %.3f)" % (k, b, min(base[k]), max(base[k])))


if __name__ == "__main__":
    main()
