"""bench.py - what sampling costs the target, measured in one run (called by bench/run.sh).

Every figure of the table comes from this one run, each profiled figure next to its unprofiled or
competing counterpart:
  slowdown     the target's own time for a fixed amount of work, profiled against unprofiled: each
               profiled run follows an unprofiled run of its own, round after round, and the median
               of those pairs' ratios is the figure, so drift on the machine (which moves a run's time
               by several percent here) hits both sides of a pair alike (min/min beside it: the
               fastest runs compared, which load from elsewhere inflates least). Workloads (workloads.py):
               deep (200 frames), threads (100: 20 busy, 80 idle), mixed (C extension), numpy;
               mixspy blocking, --nonblocking and --native at 100 and 1000 Hz
  pause        how long each sampled thread stood still (median, p99), measured inside mixspy
               around pause/resume (MIXSPY_STATS=1)
  CPU          mixspy's own user+system time, as a share of one core over its run
  peak RSS     mixspy's own maximum resident set size
  max rate     samples/s each mode reaches when asked for far more than it can take (one thread,
               so samples/s = ticks/s): the highest rate it sustains without falling behind
  accuracy     busy_75_25.py sampled at that highest rate: heavy()'s share should stay 75 +- 2
  first sample time from starting `record --native --pid` to its first sample, numpy imported
  long run     --native at 1000 Hz for 60 s (BENCH_QUICK: 15 s): peak RSS and CPU
Where Debian's austin runs (pyenv 3.8-3.10), the deep, threads and mixed workloads run under that
interpreter too, sampled by austin and by mixspy in the same rounds, and both top rates are taken.
Options: --rounds N (default 5), --scale X (work per run, default 1.0: ~1.5 s each), --quick,
--python PATH (default Debian's /usr/bin/python3), --ext DIR (mixspy_testext built for it),
--austin-python PATH and --austin-ext DIR (an interpreter Debian's austin supports).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NATIVE_EXT = os.path.join(REPO, "tests", "native_ext")
MIXSPY = os.environ.get("MIXSPY", os.path.join(REPO, "mixspy"))
STATS = re.compile(r"mixspy-stats: pid \d+ pauses (\d+) pause_us p50 ([\d.]+) p90 [\d.]+ p99 ([\d.]+) "
                   r"max [\d.]+ maxrss_kb (-?\d+)(?: first_sample_mono ([\d.]+))?")
SAMPLES = re.compile(r"Samples: (\d+)")
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

# (profiler, mode, rate)
MIXSPY_CONFIGS = [("mixspy", mode, rate) for mode in ("blocking", "nonblocking", "native") for rate in (100, 1000)]
AUSTIN_CONFIGS = [("austin", "default", 100), ("austin", "default", 1000),
                  ("mixspy", "blocking", 100), ("mixspy", "blocking", 1000)]


def wait_for(path, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("bench: %s did not start" % what)
        time.sleep(0.002)


def reap(proc, timeout=60):
    """Wait for proc (killing it after timeout seconds) and return its CPU seconds (user + system)."""
    deadline = time.monotonic() + timeout
    flags = os.WNOHANG
    while True:
        try:
            pid, status, ru = os.wait4(proc.pid, flags)
        except ChildProcessError:
            return 0.0
        except InterruptedError:
            continue
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            flags = 0
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    return ru.ru_utime + ru.ru_stime


def start_target(py, kind, tmp, ext, scale, seconds=0.0, go=True):
    ready, gofile = os.path.join(tmp, "ready"), os.path.join(tmp, "go")
    for f in (ready, gofile):
        if os.path.exists(f):
            os.unlink(f)
    argv = [py, os.path.join(HERE, "workloads.py"), kind, ready, gofile if go else "-", "--scale", str(scale)]
    if kind == "mixed":
        argv += ["--ext", ext]
    if seconds:
        argv += ["--seconds", str(seconds)]
    target = subprocess.Popen(argv, stdout=subprocess.PIPE, universal_newlines=True, env=ENV)
    wait_for(ready, target, "workload %s" % kind)
    return target, gofile


def mixspy_cmd(mode, rate, pid, out, duration=None):
    cmd = [MIXSPY, "record", "-r", str(rate), "-f", "raw", "-o", out, "--pid", str(pid)]
    if mode == "native":
        cmd.insert(2, "--native")
    elif mode == "nonblocking":
        cmd.insert(2, "--nonblocking")
    if duration:
        cmd += ["-d", str(duration)]
    return cmd


def start_profiler(tmp, prof, mode, rate, pid, duration=None):
    """Start mixspy or austin on pid; returns (Popen, output path, stderr path, start time)."""
    out, err = os.path.join(tmp, "prof.out"), os.path.join(tmp, "prof.err")
    for f in (out, err):
        if os.path.exists(f):
            os.unlink(f)
    if prof == "austin":
        interval = max(1, int(1e6 / rate))
        cmd = ["austin", "-i", str(interval), "-t", "1000", "-o", out, "-p", str(pid)]
    else:
        cmd = mixspy_cmd(mode, rate, pid, out, duration)
    errf = open(err, "w")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=dict(ENV, MIXSPY_STATS="1"))
    errf.close()
    return p, out, err, t0


def mixspy_stats(errpath, cpu, wall):
    with open(errpath) as f:
        err = f.read()
    m, s = STATS.search(err), SAMPLES.search(err)
    if not m or not s:
        sys.exit("bench: no stats from mixspy:\n" + err)
    return {"p50": float(m.group(2)), "p99": float(m.group(3)), "rss": int(m.group(4)),
            "samples": int(s.group(1)), "first": float(m.group(5) or 0), "cpu": cpu, "wall": wall}


def austin_samples(out):
    n = 0
    with open(out, errors="replace") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                n += 1
    return n


def one_run(args, py, ext, kind, tmp, config):
    """Run the workload once, profiled with config or not (None). Returns (seconds, stats or None)."""
    target, go = start_target(py, kind, tmp, ext, args.scale)
    prof = None
    if config:
        name, mode, rate = config
        prof, out, errp, t0 = start_profiler(tmp, name, mode, rate, target.pid)
        # Start the work once the profiler has attached and taken its first samples.
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end and prof.poll() is None:
            if os.path.exists(out) and (name == "austin" or os.path.getsize(out) >= 0):
                break
            time.sleep(0.002)
        time.sleep(0.2 if name == "austin" else 0.05)
    with open(go, "w"):
        pass
    stdout, _ = target.communicate()
    secs = float(stdout.strip().splitlines()[-1])
    if not prof:
        return secs, None
    cpu = reap(prof)
    wall = time.monotonic() - t0
    if name == "austin":
        return secs, {"samples": austin_samples(out), "secs": secs, "cpu": cpu, "wall": wall}
    st = mixspy_stats(errp, cpu, wall)
    st["secs"] = secs
    return secs, st


def top_rate(args, py, ext, kind, tmp, prof, mode, seconds):
    """Samples/s when asked for far more than can be taken (one sampled thread)."""
    target, _ = start_target(py, kind, tmp, ext, 0.02 if kind == "deep" else 0.05, seconds=seconds + 30, go=False)
    try:
        if prof == "austin":
            p, out, errp, t0 = start_profiler(tmp, "austin", mode, 1000000, target.pid)
            time.sleep(seconds)
            p.send_signal(2)
            cpu = reap(p, 10)
            wall = time.monotonic() - t0
            return {"rate": austin_samples(out) / seconds, "cpu": cpu, "wall": wall}
        p, out, errp, t0 = start_profiler(tmp, "mixspy", mode, 1000000, target.pid, duration=seconds)
        cpu = reap(p, seconds + 60)
        st = mixspy_stats(errp, cpu, time.monotonic() - t0)
        st["rate"] = st["samples"] / seconds
        return st
    finally:
        target.kill()
        target.wait()


def accuracy(args, tmp, rate, seconds):
    """heavy()'s share of busy_75_25.py's samples at rate (Python-only, blocking)."""
    ready = os.path.join(tmp, "ready75")
    if os.path.exists(ready):
        os.unlink(ready)
    target = subprocess.Popen([args.python, os.path.join(NATIVE_EXT, "busy_75_25.py"), "--ready", ready,
                               "--seconds", str(seconds + 30), "--inner", "1000"], env=ENV)
    try:
        wait_for(ready, target, "busy_75_25.py")
        out = os.path.join(tmp, "acc.txt")
        subprocess.run(mixspy_cmd("blocking", rate, target.pid, out, seconds), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=seconds + 60)
        heavy = light = 0
        with open(out) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if ";heavy (" in stack or stack.startswith("heavy ("):
                    heavy += int(count)
                elif ";light (" in stack or stack.startswith("light ("):
                    light += int(count)
        return 100.0 * heavy / max(1, heavy + light), heavy + light
    finally:
        target.kill()
        target.wait()


def first_native_sample(args, tmp):
    """Seconds from starting `record --native --pid` to its first sample, numpy imported."""
    target, _ = start_target(args.python, "numpy", tmp, args.ext, 0.05, seconds=60, go=False)
    try:
        p, out, errp, t0 = start_profiler(tmp, "mixspy", "native", 100, target.pid, duration=1)
        st = mixspy_stats(errp, reap(p), time.monotonic() - t0)
        return st["first"] - t0 if st["first"] else float("nan")
    finally:
        target.kill()
        target.wait()


def long_run(args, tmp, seconds):
    target, _ = start_target(args.python, "numpy", tmp, args.ext, 0.05, seconds=seconds + 30, go=False)
    try:
        p, out, errp, t0 = start_profiler(tmp, "mixspy", "native", 1000, target.pid, duration=seconds)
        cpu = reap(p, seconds + 120)
        return mixspy_stats(errp, cpu, time.monotonic() - t0)
    finally:
        target.kill()
        target.wait()


def pyversion(py):
    return subprocess.check_output([py, "-c", "import platform; print(platform.python_version())"],
                                   universal_newlines=True).strip()


def austin_usable(py):
    if not py or not shutil.which("austin") or not os.path.exists(py):
        return False
    v = tuple(int(x) for x in pyversion(py).split(".")[:2])
    return (3, 8) <= v <= (3, 10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--scale", type=float, default=None)
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    p.add_argument("--python", default="/usr/bin/python3")
    p.add_argument("--ext", default=os.path.join(REPO, "build", "native_ext", "bench"))
    p.add_argument("--austin-python", default="")
    p.add_argument("--austin-ext", default="")
    args = p.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.scale is None:
        args.scale = 0.4 if args.quick else 0.7
    rate_secs = 2 if args.quick else 3
    rate_reps = 1 if args.quick else 3
    long_secs = 15 if args.quick else 60
    load0 = os.getloadavg()
    t_start = time.monotonic()
    use_austin = austin_usable(args.austin_python)
    kinds = ("deep", "threads", "mixed", "numpy")
    akinds = tuple(k for k in ("deep", "threads", "mixed") if k != "mixed" or args.austin_ext) if use_austin else ()
    base = {k: [] for k in kinds}
    runs = {(k, c): [] for k in kinds for c in MIXSPY_CONFIGS}
    abase = {k: [] for k in akinds}
    aruns = {(k, c): [] for k in akinds for c in AUSTIN_CONFIGS}
    with tempfile.TemporaryDirectory(prefix="mixspy-bench-") as tmp:
        for r in range(args.rounds):
            # Each profiled run right after an unprofiled one of its own: the pair's ratio is
            # what it cost, with the machine in the same state for both.
            for k in kinds:
                for c in MIXSPY_CONFIGS:
                    b = one_run(args, args.python, args.ext, k, tmp, None)[0]
                    base[k].append(b)
                    runs[(k, c)].append(one_run(args, args.python, args.ext, k, tmp, c) + (b,))
            for k in akinds:
                for c in AUSTIN_CONFIGS:
                    b = one_run(args, args.austin_python, args.austin_ext, k, tmp, None)[0]
                    abase[k].append(b)
                    runs_a = one_run(args, args.austin_python, args.austin_ext, k, tmp, c)
                    aruns[(k, c)].append(runs_a + (b,))
            sys.stderr.write("bench: round %d of %d done (%.0f s)\n" % (r + 1, args.rounds, time.monotonic() - t_start))
        # Highest sustained rates, alternating the modes.
        top = {}
        top_specs = [("py", args.python, args.ext, "deep", "mixspy", "blocking"),
                     ("py", args.python, args.ext, "deep", "mixspy", "nonblocking"),
                     ("py", args.python, args.ext, "mixed", "mixspy", "native")]
        if use_austin:
            top_specs += [("austin", args.austin_python, args.austin_ext, "deep", "mixspy", "blocking"),
                          ("austin", args.austin_python, args.austin_ext, "deep", "austin", "default")]
        for _ in range(rate_reps):
            for spec in top_specs:
                top.setdefault(spec, []).append(top_rate(args, spec[1], spec[2], spec[3], tmp, spec[4], spec[5], rate_secs))
        sys.stderr.write("bench: top rates done (%.0f s)\n" % (time.monotonic() - t_start))
        py_top = statistics.median(s["rate"] for s in top[top_specs[0]])
        acc_rate = max(100, int(py_top))
        acc_share, acc_n = accuracy(args, tmp, acc_rate, 5 if args.quick else 10)
        firsts = [first_native_sample(args, tmp) for _ in range(3 if args.quick else 5)]
        sys.stderr.write("bench: first samples done (%.0f s)\n" % (time.monotonic() - t_start))
        lr = long_run(args, tmp, long_secs)

    load1 = os.getloadavg()
    pv = pyversion(args.python)
    print("mixspy bench: Python %s (%s), %d rounds, scale %.2f, %d CPUs, load avg 1/5/15 min %.1f/%.1f/%.1f "
          "at start, %.1f/%.1f/%.1f at end, %.0f s" % (pv, args.python, args.rounds, args.scale, os.cpu_count(),
                                                      load0[0], load0[1], load0[2], load1[0], load1[1], load1[2],
                                                      time.monotonic() - t_start))
    print()
    print("Target slowdown: median over the rounds of (profiled time / the unprofiled run just before it) - 1")
    print("(min/min: the fastest profiled run against the fastest unprofiled one, less sensitive to other")
    print(" load on the machine; CPU: mixspy's user+system time over its run, in % of one core)")
    hdr = "%-16s %-8s %-11s %7s  %9s  %8s  %9s  %9s  %9s  %6s  %8s" % (
        "workload", "profiler", "mode", "rate", "slowdown", "min/min", "pause p50", "pause p99", "samples/s", "CPU",
        "peak RSS")
    print(hdr)
    results = {}

    def rows(label, bases, table, cfgs):
        b = statistics.median(bases)
        for c in cfgs:
            rs = table[c]
            st = [s for _, s, _ in rs]
            slow = (statistics.median(secs / pair for secs, _, pair in rs) - 1) * 100
            slow_min = (min(secs for secs, _, _ in rs) / min(bases) - 1) * 100
            results[(label, c)] = slow
            results[(label, c, "min")] = slow_min
            sps = statistics.median(s["samples"] / s["secs"] for s in st)
            cpu = statistics.median(100.0 * s["cpu"] / s["wall"] for s in st)
            if c[0] == "mixspy":
                p50 = "%7.1f us" % statistics.median(s["p50"] for s in st)
                p99 = "%7.1f us" % statistics.median(s["p99"] for s in st)
                rss = "%5.1f MB" % (max(s["rss"] for s in st) / 1024.0)
            else:
                p50 = p99 = rss = "%9s" % "-"
            print("%-16s %-8s %-11s %4d Hz  %+8.1f%%  %+7.1f%%  %9s  %9s  %9.0f  %5.1f%%  %8s" % (
                label, c[0], c[1], c[2], slow, slow_min, p50, p99, sps, cpu, rss))
        print("%-16s unprofiled: median %.3f s (min %.3f, max %.3f)" % (label, b, min(bases), max(bases)))

    for k in kinds:
        rows(k, base[k], {c: runs[(k, c)] for c in MIXSPY_CONFIGS}, MIXSPY_CONFIGS)
    if use_austin:
        av = pyversion(args.austin_python)
        for k in akinds:
            rows("%s (%s)" % (k, av), abase[k], {c: aruns[(k, c)] for c in AUSTIN_CONFIGS}, AUSTIN_CONFIGS)
    elif args.austin_python:
        print("(austin comparison skipped: needs Debian's austin and a Python 3.8-3.10)")
    print()
    print("Highest sustained rate: samples/s when asking for 1,000,000/s, %d s x %d (median)" % (rate_secs, rate_reps))
    tops = {}
    for spec in top_specs:
        ss = top[spec]
        rate = statistics.median(s["rate"] for s in ss)
        cpu = statistics.median(100.0 * s["cpu"] / s["wall"] for s in ss)
        tops[spec] = rate
        ver = pv if spec[0] == "py" else pyversion(spec[1])
        extra = ""
        if spec[4] == "mixspy":
            extra = "  pause p50 %.1f us, p99 %.1f us" % (statistics.median(s["p50"] for s in ss),
                                                          statistics.median(s["p99"] for s in ss))
        print("  %-6s %-6s %-11s Python %-7s %8.0f samples/s  CPU %5.1f%%%s" % (
            spec[3], spec[4], spec[5], ver, rate, cpu, extra))
    if use_austin:
        sp = tops[top_specs[3]] / max(1.0, tops[top_specs[4]])
        print("  mixspy / austin (smallest interval, -i 1) on deep: %.2fx" % sp)
    print("Accuracy at %d Hz (the blocking top rate): busy_75_25.py heavy() %.1f%% of %d samples (75 +- 2)" % (
        acc_rate, acc_share, acc_n))
    fs = statistics.median(firsts)
    print("Time to first --native sample, numpy imported: median %.3f s (min %.3f, max %.3f)" % (
        fs, min(firsts), max(firsts)))
    print("--native at 1000 Hz for %d s on numpy: peak RSS %.1f MB, CPU %.1f%%, %d samples, pause p50 %.1f us p99 %.1f us"
          % (long_secs, lr["rss"] / 1024.0, 100.0 * lr["cpu"] / lr["wall"], lr["samples"], lr["p50"], lr["p99"]))
    print()
    print("Done when:")

    def check(what, ok, fig):
        print("  [%s] %s: %s" % ("met" if ok else "NOT met", what, fig))

    d100 = results[("deep", MIXSPY_CONFIGS[0])]
    t100 = results[("threads", MIXSPY_CONFIGS[0])]
    check("blocking 100 Hz slowdown < 1% on deep", d100 < 1,
          "%+.1f%% (min/min %+.1f%%)" % (d100, results[("deep", MIXSPY_CONFIGS[0], "min")]))
    check("blocking 100 Hz slowdown < 2% on threads", t100 < 2,
          "%+.1f%% (min/min %+.1f%%)" % (t100, results[("threads", MIXSPY_CONFIGS[0], "min")]))
    check("blocking top rate on deep >= 5,000/s", tops[top_specs[0]] >= 5000, "%.0f/s" % tops[top_specs[0]])
    if use_austin:
        check("mixspy top rate >= 2x austin's (deep, %s)" % pyversion(args.austin_python), sp >= 2, "%.2fx" % sp)
    nat = [(k, results[(k, ("mixspy", "native", 100))]) for k in kinds]
    check("--native 100 Hz slowdown < 3%", all(v < 3 for _, v in nat),
          ", ".join("%s %+.1f%% (min/min %+.1f%%)" % (k, v, results[(k, ("mixspy", "native", 100), "min")])
                    for k, v in nat))
    check("--native top rate on mixed >= 2,000/s", tops[top_specs[2]] >= 2000, "%.0f/s" % tops[top_specs[2]])
    check("first --native sample with numpy < 0.5 s", fs < 0.5, "%.3f s" % fs)
    check("peak RSS < 50 MB after %d s at 1000 Hz --native" % long_secs, lr["rss"] < 50 * 1024,
          "%.1f MB" % (lr["rss"] / 1024.0))
    check("75/25 within +- 2 points at the top rate", abs(acc_share - 75) <= 2, "%.1f%%" % acc_share)


if __name__ == "__main__":
    main()
