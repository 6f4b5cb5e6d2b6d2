"""bench.py - what sampling costs the target, measured in one run (called by bench/run.sh).

Every figure of the table comes from this one run, each profiled figure next to its unprofiled or
competing counterpart:
  slowdown     the target's rate of work while a profiler samples it, against its rate in the
               unprofiled stretches just before and after, in the same process: each workload runs
               once in small timed units (workloads.py --stamps) while the profilers take turns on
               it - off, mixspy blocking 100 Hz, off, --native 100 Hz, off, ... - round after round.
               The median over the rounds is the figure. A stretch counts from the profiler's first
               sample to its last (attaching is start-up, reported apart: first sample); comparing
               within one process leaves out what differs between processes (address layout,
               placement), which moved whole runs by several percent here. The row "(none)" is the
               control: an "on" stretch with nothing attached, so its figure shows the noise.
               Workloads (workloads.py): deep (200 frames), threads (100: 20 busy, 80 idle),
               mixed (C extension), numpy; mixspy blocking, --bpf, --nonblocking and --native at
               100 and 1000 Hz
  interleaved  the same slowdown, finer: one mixspy run per row that samples only in every other
               0.1 s phase (MIXSPY_DUTY, see sampler.c), each phase on against the phases off on
               either side of it, hundreds of them: the machine's drift (several percent over
               seconds here) mostly cancels out, and a 95% confidence interval of the median comes
               with it. Rows: (none), bench/floor.c's bare pauses at 100 Hz (what pausing alone
               costs), and mixspy blocking, --bpf, --native and --native --bpf at 100 Hz. The
               "Done when" slowdowns are judged on these: met when the whole interval is below
               the target. mixspy stays attached between phases on (seized threads, switch
               watches); the stretches above include attaching
  pause        how long each sampled thread stood still (median, p99), measured inside mixspy from
               before its interrupt to after its resume (MIXSPY_STATS=1): an upper bound; with
               --bpf, the copy in the tick as the kernel timed it (the interrupt around it is not
               counted: see standstill)
  standstill   the same pauses seen from inside the target (`clock`: 200 frames deep, its innermost
               loop reading the clock): each pause of mixspy's log (MIXSPY_PAUSE_LOG) matched with
               the stall the target saw
  CPU          mixspy's own user+system time from its first sample on, as a share of one core
  peak RSS     mixspy's own maximum resident set size
  max rate     samples/s each mode reaches when asked for far more than it can take (one thread,
               so samples/s = ticks/s): the highest rate it sustains without falling behind
  accuracy     busy_75_25.py sampled at that highest rate: heavy()'s share should stay 75 +- 2
  first sample time from starting `record --native --pid` to its first sample, numpy imported
  floor        what the machine charges for a pause before anything is read (bench/floor.c: a busy C
               loop on another CPU, seized throughout, interrupted and let go at 100 Hz, timed as
               mixspy times its pauses), bare, with a 27 KB copy while it stands (what a --native
               pause of the deep workload copies), and with that copy primed (read once just
               before the interrupt, as mixspy does); taken at the start, the middle and the end
  CPU alone    the threads workload beside a process that burns, 100 times a second, the CPU time
               mixspy blocking took per tick there (floor burn), nothing else: what mixspy's CPU
               costs the target by itself; the rest of mixspy's slowdown is its pauses
  long run     --native at 1000 Hz for 60 s (BENCH_QUICK: 15 s): peak RSS and CPU
Where Debian's austin runs (pyenv 3.8-3.10), the deep, threads and mixed workloads run under that
interpreter too, sampled by austin and by mixspy in the same rounds, and both top rates are taken.
Options: --rounds N (default 5; the threads workload takes three times as many), --period S
(seconds each stretch lasts, default 1.2), --seconds S (each interleaved row, default 20; quick
5), --quick, --python PATH (default Debian's /usr/bin/python3), --ext DIR (mixspy_testext built
for it), --austin-python PATH and --austin-ext DIR (an interpreter Debian's austin supports).
--slowdown (make bench-slowdown): the interleaved rows alone, 60 s each (--seconds), spread over
3 workload processes (--procs), on the workloads of --kinds deep,threads,mixed,numpy
(sh bench/run.sh --slowdown --kinds threads).
"""
import argparse
import array
import bisect
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NATIVE_EXT = os.path.join(REPO, "tests", "native_ext")
MIXSPY = os.environ.get("MIXSPY", os.path.join(REPO, "mixspy"))
FLOOR = os.environ.get("MIXSPY_FLOOR", os.path.join(REPO, "build", "bench", "floor"))
STATS = re.compile(r"mixspy-stats: pid \d+ pauses (\d+) pause_us p50 ([\d.]+) p90 [\d.]+ p99 ([\d.]+) "
                   r"max [\d.]+ maxrss_kb (-?\d+) first_sample_mono ([\d.]+) unpaused \d+ "
                   r"last_sample_mono ([\d.]+) cpu_at_first ([\d.]+) cpu_now ([\d.]+)")
SAMPLES = re.compile(r"Samples: (\d+)")
# The 100-thread workload's rate of work moves +-3% from one stretch to the next unprofiled (its
# threads take turns on the GIL as the scheduler places them): 5 rounds left its median 1-2 points
# off between two runs; it gets three times the rounds.
ROUNDS_X = {"threads": 3}
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

# (profiler, mode, rate); ("none", "-", 0) is the control: a stretch with nothing attached
CONTROL = ("none", "-", 0)
MIXSPY_CONFIGS = [("mixspy", mode, rate) for mode in ("blocking", "bpf", "nonblocking", "native") for rate in (100, 1000)] + \
    [("mixspy", "native-bpf", 100)]
AUSTIN_CONFIGS = [("austin", "default", 100), ("austin", "default", 1000),
                  ("mixspy", "blocking", 100), ("mixspy", "blocking", 1000)]
AUSTIN_SKIP = 0.25   # austin says nothing of its first sample: its stretch starts this long after it


def wait_for(path, proc, what, timeout=30):
    deadline = time.perf_counter() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.perf_counter() > deadline:
            sys.exit("bench: %s did not start" % what)
        time.sleep(0.002)


def reap(proc, timeout=60):
    """Wait for proc (killing it after timeout seconds) and return its CPU seconds (user + system)."""
    deadline = time.perf_counter() + timeout
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
        if time.perf_counter() > deadline:
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
    elif mode == "native-bpf":
        cmd[2:2] = ["--native", "--bpf"]
    elif mode == "nonblocking":
        cmd.insert(2, "--nonblocking")
    elif mode == "bpf":
        cmd.insert(2, "--bpf")
    if duration:
        cmd += ["-d", str(duration)]
    return cmd


def start_profiler(tmp, prof, mode, rate, pid, duration=None, env=None):
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
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, env=dict(ENV, MIXSPY_STATS="1", **(env or {})))
    errf.close()
    return p, out, err, t0


def mixspy_stats(errpath, cpu, wall):
    with open(errpath) as f:
        err = f.read()
    m, s = STATS.search(err), SAMPLES.search(err)
    if not m or not s:
        sys.exit("bench: no stats from mixspy:\n" + err)
    first, last = float(m.group(5)), float(m.group(6))
    steady = last - first
    return {"p50": float(m.group(2)), "p99": float(m.group(3)), "rss": int(m.group(4)),
            "samples": int(s.group(1)), "first": first, "last": last, "cpu": cpu, "wall": wall,
            "steady_cpu": (float(m.group(8)) - float(m.group(7))) / steady if steady > 0 else float("nan"),
            "rate": (int(s.group(1)) - 1) / steady if steady > 0 else 0.0}


def austin_samples(out):
    n = 0
    with open(out, errors="replace") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                n += 1
    return n


def rate_between(stamps, a, b):
    """Units of work per second ending in [a, b]: the k-1 units between the first and the last
    stamp inside (so a unit's length does not round the figure); None with too few."""
    i, j = bisect.bisect_left(stamps, a), bisect.bisect_right(stamps, b)
    if j - i < 4:
        return None
    return (j - i - 1) / (stamps[j - 1] - stamps[i])


class Session(object):
    """One workload process (workloads.py --stamps) that profilers take turns on: stretches off
    (nothing attached) and on (one profiler), each noted with its window of time."""

    def __init__(self, py, kind, ext, tmp):
        self.tmp = tmp
        self.stamps_path = os.path.join(tmp, "stamps")
        ready = os.path.join(tmp, "ready")
        for f in (ready, self.stamps_path):
            if os.path.exists(f):
                os.unlink(f)
        argv = [py, os.path.join(HERE, "workloads.py"), kind, ready, "-", "--stamps", self.stamps_path]
        if ext:
            argv += ["--ext", ext]
        self.proc = subprocess.Popen(argv, env=ENV)
        wait_for(ready, self.proc, "workload %s" % kind)
        self.pid = self.proc.pid
        self.windows = []   # ("off", a, b) and (config, a, b, stats)
        time.sleep(0.3)     # past the start of its work

    def off(self, secs):
        t0 = time.perf_counter()
        time.sleep(secs)
        self.windows.append(("off", t0, time.perf_counter()))

    def on(self, config, secs, env=None, phase=None):
        """A stretch of config (profiler, mode, rate) on the workload; its stats (None for the
        control and the burn). With phase (seconds), mixspy and floor.c's bare pauses (BARE) work
        in every other phase only (MIXSPY_DUTY): see interleaved."""
        prof, mode, rate = config
        duty_ms = "%d" % round(phase * 1000) if phase else None
        if prof == "floor":   # bare pauses, in phases
            t0 = time.perf_counter()
            r = subprocess.run([FLOOR, "pause", str(self.pid), str(rate), str(secs), duty_ms],
                               stdout=subprocess.PIPE, universal_newlines=True, check=True)
            f = r.stdout.split()
            st = {"p50": float(f[2]), "p99": float(f[3])}
            self.windows.append((config, t0, time.perf_counter(), st))
            return st
        if prof == "burn":   # mode: microseconds per tick
            t0 = time.perf_counter()
            subprocess.run([FLOOR, "burn", mode, str(rate), str(secs)], check=True)
            self.windows.append((config, t0, time.perf_counter(), None))
            return None
        if prof == "none":
            t0 = time.perf_counter()
            time.sleep(secs)
            self.windows.append((config, t0, time.perf_counter(), None))
            return None
        if prof == "austin":
            p, out, errp, t0 = start_profiler(self.tmp, "austin", mode, rate, self.pid)
            time.sleep(AUSTIN_SKIP + secs)
            t1 = time.perf_counter()
            p.send_signal(signal.SIGINT)
            cpu = reap(p, 30)
            n = austin_samples(out)
            st = {"samples": n, "rate": n / (t1 - t0), "cpu": cpu, "wall": time.perf_counter() - t0,
                  "steady_cpu": cpu / (time.perf_counter() - t0)}
            self.windows.append((config, t0 + AUSTIN_SKIP, t1, st))
            return st
        if duty_ms:
            env = dict(env or {}, MIXSPY_DUTY=duty_ms)
        p, out, errp, t0 = start_profiler(self.tmp, "mixspy", mode, rate, self.pid, duration=secs, env=env)
        cpu = reap(p, secs + 60)
        if p.returncode != 0:
            with open(errp) as f:
                sys.exit("bench: mixspy failed on %d:\n%s" % (self.pid, f.read()))
        st = mixspy_stats(errp, cpu, time.perf_counter() - t0)
        self.windows.append((config, st["first"], st["last"], st))
        return st

    def stop(self):
        """Stop the workload; its stamps (CLOCK_MONOTONIC seconds, sorted)."""
        self.proc.send_signal(signal.SIGUSR1)
        if self.proc.wait(60) != 0 or not os.path.exists(self.stamps_path):
            sys.exit("bench: the workload ended badly (%s)" % self.proc.returncode)
        stamps = array.array("d")
        with open(self.stamps_path, "rb") as f:
            stamps.frombytes(f.read())
        stamps = array.array("d", sorted(stamps))   # threads append in turn, not quite in order
        self.stamps = stamps
        return stamps

    def finish(self):
        """Stop the workload; returns [(config, slowdown, stats, unsteadiness)] for every on
        stretch: the rate in the stretches off around it over its own rate, minus one; and how far
        apart those two rates are (|before / after - 1|: the machine's own drift meanwhile)."""
        stamps = self.stop()
        res = []
        for i, w in enumerate(self.windows):
            if w[0] == "off":
                continue
            around = [rate_between(stamps, x[1], x[2]) for x in (self.windows[i - 1], self.windows[i + 1])
                      if x[0] == "off"]
            around = [r for r in around if r]
            on = rate_between(stamps, w[1], w[2])
            if not around or not on:
                sys.exit("bench: too little work in a stretch of %s" % (w[0],))
            res.append((w[0], (sum(around) / len(around)) / on - 1, w[3],
                        abs(around[0] / around[1] - 1) if len(around) == 2 else 1.0))
        return res


def stretches(py, kind, ext, tmp, configs, rounds, secs):
    """Each config once per round on one workload process, a stretch off before each and after
    the last; the order turns by one each round. Returns {config: [(slowdown, stats,
    unsteadiness), ...]} (see Session.finish)."""
    sess = Session(py, kind, ext, tmp)
    try:
        sess.off(secs)
        for r in range(rounds):
            for c in configs[r % len(configs):] + configs[:r % len(configs)]:
                sess.on(c, secs)
                sess.off(secs)
    except BaseException:
        sess.proc.kill()
        raise
    out = {}
    for config, slow, st, unsteady in sess.finish():
        out.setdefault(config, []).append((slow, st, unsteady))
    return out


# --- Interleaved: sampling on and off every PHASE seconds within one mixspy run (MIXSPY_DUTY) ---
PHASE = 0.1
# bench/floor.c's bare pauses of the workload's thread at 100 Hz in the same phases: what pausing
# alone costs it (single-threaded workloads: their main thread works)
BARE = ("floor", "pause", 100)


def phase_slowdowns(stamps, a, b, phase):
    """For each phase on (floor(t / phase) even) inside [a, b] with its two neighbours: the mean
    rate of work of the phases off before and after it over its own, minus one."""
    k0, k1 = int(math.ceil(a / phase)), int(math.floor(b / phase))
    rates = {k: rate_between(stamps, k * phase, (k + 1) * phase) for k in range(k0, k1)}
    out = []
    for k in range(k0 + 1, k1 - 1):
        if k % 2 == 0 and rates[k] and rates[k - 1] and rates[k + 1]:
            out.append((rates[k - 1] + rates[k + 1]) / 2 / rates[k] - 1)
    return out


def interleaved(py, kind, ext, tmp, configs, secs, phase=PHASE, procs=1):
    """Each config for secs in all, sampling (mixspy, or floor.c's bare pauses: BARE) only in
    every other phase of `phase` seconds (MIXSPY_DUTY; the same clock as the workload's stamps):
    the phases off in between, a tenth of a second away, are the unprofiled figure. The control,
    CONTROL, is a stretch with nothing attached cut the same way. The time is split into rounds
    of ~5 s per config, the order turning by one each round, so that the machine's drift over
    minutes (which moved whole runs' medians by more than their intervals) falls on every config
    alike; and over `procs` workload processes one after the other, since one run's interval
    does not hold for the next (the same build on threads: +0.08% [-0.54, +0.79] in one run,
    +1.90% [+1.22, +2.55] in the next). Returns {config: (per-phase slowdowns, [stats of each
    round], [median of each process])}. mixspy stays attached in the phases off (seized threads
    and switch watches cost a thread nothing until it is interrupted or switched); `stretches`
    measures with the attach."""
    rounds = max(1, int(round(secs / 5.0 / procs)))
    out = {}
    for _ in range(procs):
        sess = Session(py, kind, ext, tmp)
        try:
            for r in range(rounds):
                for c in configs[r % len(configs):] + configs[:r % len(configs)]:
                    sess.on(c, secs / procs / rounds, phase=phase)
        except BaseException:
            sess.proc.kill()
            raise
        stamps = sess.stop()
        mine = {}
        for c, a, b, st in sess.windows:
            xs, sts, _ = out.setdefault(c, ([], [], []))
            got = phase_slowdowns(stamps, a, b, phase)
            xs.extend(got)
            mine.setdefault(c, []).extend(got)
            if st:
                sts.append(st)
        for c, xs in mine.items():
            if xs:
                out[c][2].append(statistics.median(xs))
    return out


def verdict_word(target, lo, hi):
    """met: the whole 95% interval below the target; NOT met: the whole of it above; else
    undecided by this run."""
    return "met" if hi < target else "NOT met" if lo > target else "undecided"


def floor(secs):
    """bench/floor.c for secs at 100 Hz: {"bare": (p50, p99), "copy": (p50, p99), "primed": (p50,
    p99)} in us, or None when it is not built or cannot pause here."""
    if not os.access(FLOOR, os.X_OK):
        return None
    r = subprocess.run([FLOOR, str(secs), "100", str(27 * 1024)], capture_output=True, text=True, timeout=secs + 30)
    f = r.stdout.split()
    if r.returncode != 0 or len(f) != 12:
        sys.stderr.write("bench: floor: %s" % (r.stderr or r.stdout))
        return None
    return {"bare": (float(f[2]), float(f[3])), "copy": (float(f[6]), float(f[7])),
            "primed": (float(f[10]), float(f[11]))}


def standstills(py, tmp, mode, secs):
    """The `clock` workload sampled at 100 Hz: each of mixspy's pauses matched with the stall
    the target itself saw (the longest overlap). Returns (standstills us, mixspy's own us,
    pauses)."""
    log = os.path.join(tmp, "pauses.log")
    if os.path.exists(log):
        os.unlink(log)
    sess = Session(py, "clock", None, tmp)
    try:
        sess.on(("mixspy", mode, 100), secs, env={"MIXSPY_PAUSE_LOG": log})
    finally:
        sess.proc.send_signal(signal.SIGUSR1)
        sess.proc.wait(60)
    gaps = array.array("d")
    with open(sess.stamps_path, "rb") as f:
        gaps.frombytes(f.read())
    starts, ends = gaps[0::2], gaps[1::2]
    seen, own = [], []
    with open(log) as f:
        pauses = [tuple(float(x) for x in line.split()) for line in f if line.strip()]
    for p0, us in pauses:
        p1 = p0 + us * 1e-6
        i = bisect.bisect_left(ends, p0)   # the first stall ending after the pause began
        best, best_ov = None, 0.0
        while i < len(starts) and starts[i] < p1:
            ov = min(ends[i], p1) - max(starts[i], p0)
            if ov > best_ov:
                best, best_ov = i, ov
            i += 1
        if best is not None:
            seen.append((ends[best] - starts[best]) * 1e6)
            own.append(us)
    return seen, own, len(pauses)


def top_rate(args, py, ext, kind, tmp, prof, mode, seconds):
    """Samples/s when asked for far more than can be taken (one sampled thread)."""
    target, _ = start_target(py, kind, tmp, ext, 0.02 if kind == "deep" else 0.05, seconds=seconds + 30, go=False)
    try:
        if prof == "austin":
            p, out, errp, t0 = start_profiler(tmp, "austin", mode, 1000000, target.pid)
            time.sleep(seconds)
            p.send_signal(2)
            cpu = reap(p, 10)
            wall = time.perf_counter() - t0
            return {"rate": austin_samples(out) / seconds, "cpu": cpu, "wall": wall}
        p, out, errp, t0 = start_profiler(tmp, "mixspy", mode, 1000000, target.pid, duration=seconds)
        cpu = reap(p, seconds + 60)
        st = mixspy_stats(errp, cpu, time.perf_counter() - t0)
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
        st = mixspy_stats(errp, reap(p), time.perf_counter() - t0)
        return st["first"] - t0 if st["first"] else float("nan")
    finally:
        target.kill()
        target.wait()


def long_run(args, tmp, seconds):
    target, _ = start_target(args.python, "numpy", tmp, args.ext, 0.05, seconds=seconds + 30, go=False)
    try:
        p, out, errp, t0 = start_profiler(tmp, "mixspy", "native", 1000, target.pid, duration=seconds)
        cpu = reap(p, seconds + 120)
        return mixspy_stats(errp, cpu, time.perf_counter() - t0)
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


def median_ci(xs, level=0.95):
    """The median of xs and a distribution-free confidence interval for it: the order statistics
    k and n-k+1 (from 1), k the largest with P(Binomial(n, 1/2) < k) <= (1 - level) / 2."""
    xs = sorted(xs)
    n = len(xs)
    k, below = 0, 0.0
    while k < n // 2:
        below += math.comb(n, k) / 2.0 ** n   # P(B = k), so below is P(B <= k) = P(B < k + 1)
        if below > (1 - level) / 2:
            break
        k += 1
    if k == 0:   # under 6 rounds no two order statistics hold the median at 95%
        return statistics.median(xs), -math.inf, math.inf
    return statistics.median(xs), xs[k - 1], xs[n - k]


# --slowdown: the 100 Hz targets only, and the control, interleaved, for longer
SLOW_CONFIGS = [("mixspy", "blocking", 100), ("mixspy", "bpf", 100), ("mixspy", "native", 100),
                ("mixspy", "native-bpf", 100)]


def inter_configs(kind):
    """What the interleaved runs measure on kind: the control, the 100 Hz targets, and on
    single-threaded workloads bare pauses (floor.c) when built."""
    bare = [BARE] if kind != "threads" and os.access(FLOOR, os.X_OK) else []
    return [CONTROL] + bare + SLOW_CONFIGS


def interleaved_table(kinds, res, secs):
    """Print the interleaved slowdowns {kind: {config: (slowdowns, stats, process medians)}};
    returns {(kind, mode): (median, lo, hi)} in %."""
    print("Target slowdown, interleaved (MIXSPY_DUTY): %.0f s per row on the workload, in turns of" % secs)
    print("~5 s, sampling in every other %.1f s phase; each phase on against the phases off on either side" % PHASE)
    print("of it. Median over the phases and its 95% confidence interval (distribution-free: order")
    print("statistics); (none): nothing attached, cut the same way - the noise. floor.c pause: bare pauses")
    print("at 100 Hz, nothing read - what pausing alone costs. pause p50: from the interrupt to the resume,")
    print("as the pauser times it (median of the turns).")
    procs = max(len(v[2]) for r in res.values() for v in r.values())
    if procs > 1:
        print("Each row's time is spread over %d workload processes one after the other; \"each process\"" % procs)
        print("is the median of each alone (their spread is what the interval of one process misses).")
    print("%-8s %-8s %-10s %6s  %9s  %17s  %9s  %9s%s" % (
        "workload", "profiler", "mode", "phases", "slowdown", "95% CI", "sd", "pause p50",
        "  each process" if procs > 1 else ""))
    out = {}
    for k in kinds:
        for c, (xs, st, per) in res[k].items():
            xs = [100 * x for x in xs]
            med, lo, hi = median_ci(xs) if xs else (math.nan, -math.inf, math.inf)
            out[(k, c[1])] = (med, lo, hi)
            sd = statistics.stdev(xs) if len(xs) > 1 else math.nan
            p50 = "%.1f us" % statistics.median(x["p50"] for x in st) if st else "-"
            each = "  " + " ".join("%+.2f" % (100 * x) for x in per) if procs > 1 else ""
            print("%-8s %-8s %-10s %6d  %+8.2f%%  [%+6.2f, %+6.2f]  %8.1f%%  %9s%s" % (
                k, {"none": "(none)", "floor": "floor.c"}.get(c[0], c[0]), c[1], len(xs), med, lo, hi, sd, p50,
                each))
    return out


def slowdown_verdicts(kinds, fig, indent="  "):
    """The 100 Hz slowdown targets of issue 9 against interleaved figures (see verdict_word)."""
    def line(what, target, figs):
        words = [verdict_word(target, f[1], f[2]) for _, f in figs]
        word = "met" if all(w == "met" for w in words) else "NOT met" if "NOT met" in words else "undecided"
        print("%s[%s] %s: %s" % (indent, word, what, ", ".join(
            "%s %+.2f%% [%+.2f, %+.2f]" % ((name,) + f) for name, f in figs)))

    for k, target in (("deep", 1), ("threads", 2)):
        if k not in kinds:
            continue
        for m in ("blocking", "bpf"):
            line("blocking 100 Hz slowdown < %d%% on %s (%s)" % (target, k, "pausing" if m == "blocking" else "--bpf"),
                 target, [(k, fig[(k, m)])])
    line("--native 100 Hz slowdown < 3%", 3, [(k, fig[(k, "native")]) for k in kinds])
    line("--native --bpf 100 Hz slowdown < 3%", 3, [(k, fig[(k, "native-bpf")]) for k in kinds])


def slowdown_main(args):
    """`make bench-slowdown`: only the slowdown of the 100 Hz targets, interleaved, long enough
    that a 95% confidence interval of each median is narrower than the margins they are held to."""
    secs = args.seconds or 60
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - {"deep", "threads", "mixed", "numpy"}
    if unknown or not kinds:
        sys.exit("bench: --kinds takes deep, threads, mixed, numpy (got %s)" % args.kinds)
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    res = {}
    with tempfile.TemporaryDirectory(prefix="mixspy-bench-") as tmp:
        for k in kinds:
            ext = args.ext if k == "mixed" else None
            res[k] = interleaved(args.python, k, ext, tmp, inter_configs(k), secs, procs=args.procs)
            sys.stderr.write("bench: %s done (%.0f s)\n" % (k, time.perf_counter() - t_start))
    load1 = os.getloadavg()
    print("mixspy bench --slowdown: Python %s (%s), %d CPUs, load avg 1 min %.1f at start, %.1f at end, %.0f s" % (
        pyversion(args.python), args.python, os.cpu_count(), load0[0], load1[0], time.perf_counter() - t_start))
    print()
    fig = interleaved_table(kinds, res, secs)
    print()
    print("Done when (met: the whole interval below the target; NOT met: the whole interval above it;")
    print("undecided: the interval holds the target):")
    slowdown_verdicts(kinds, fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--slowdown", action="store_true", help="only the 100 Hz slowdowns, many rounds")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--procs", type=int, default=3,
                   help="--slowdown: workload processes each interleaved row's time is spread over")
    p.add_argument("--kinds", default="deep,threads,mixed,numpy",
                   help="--slowdown: the workloads to run, comma-separated")
    p.add_argument("--period", type=float, default=None)
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds of each interleaved run (default 20, quick 5, --slowdown 60)")
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    p.add_argument("--python", default="/usr/bin/python3")
    p.add_argument("--ext", default=os.path.join(REPO, "build", "native_ext", "bench"))
    p.add_argument("--austin-python", default="")
    p.add_argument("--austin-ext", default="")
    args = p.parse_args()
    if args.slowdown:
        return slowdown_main(args)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.period is None:
        args.period = 0.6 if args.quick else 1.2
    rate_secs = 2 if args.quick else 3
    rate_reps = 1 if args.quick else 3
    long_secs = 15 if args.quick else 60
    still_secs = 2 if args.quick else 4
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    use_austin = austin_usable(args.austin_python)
    kinds = ("deep", "threads", "mixed", "numpy")
    akinds = tuple(k for k in ("deep", "threads", "mixed") if k != "mixed" or args.austin_ext) if use_austin else ()
    cost, acost, inter = {}, {}, {}
    inter_secs = args.seconds or (5 if args.quick else 20)
    floors = [floor(still_secs)]
    with tempfile.TemporaryDirectory(prefix="mixspy-bench-") as tmp:
        for k in kinds:
            ext = args.ext if k == "mixed" else None
            cost[k] = stretches(args.python, k, ext, tmp, [CONTROL] + MIXSPY_CONFIGS, args.rounds * ROUNDS_X.get(k, 1),
                                args.period)
            inter[k] = interleaved(args.python, k, ext, tmp, inter_configs(k), inter_secs)
            sys.stderr.write("bench: %s done (%.0f s)\n" % (k, time.perf_counter() - t_start))
        burn = None
        if os.access(FLOOR, os.X_OK):
            per_tick = statistics.median(x["steady_cpu"] for _, x, _ in cost["threads"][("mixspy", "blocking", 100)]) / 100
            bcfg = ("burn", "%.0f" % (per_tick * 1e6), 100)
            burn = (bcfg, stretches(args.python, "threads", None, tmp, [CONTROL, bcfg], args.rounds * ROUNDS_X["threads"],
                                    args.period))
        for k in akinds:
            ext = args.austin_ext if k == "mixed" else None
            acost[k] = stretches(args.austin_python, k, ext, tmp, [CONTROL] + AUSTIN_CONFIGS, args.rounds,
                                 args.period)
            sys.stderr.write("bench: %s (austin) done (%.0f s)\n" % (k, time.perf_counter() - t_start))
        floors.append(floor(still_secs))
        still = {m: standstills(args.python, tmp, m, still_secs) for m in ("blocking", "bpf", "native", "native-bpf")}
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
        sys.stderr.write("bench: top rates done (%.0f s)\n" % (time.perf_counter() - t_start))
        py_top = statistics.median(s["rate"] for s in top[top_specs[0]])
        acc_rate = max(100, int(py_top))
        acc_share, acc_n = accuracy(args, tmp, acc_rate, 5 if args.quick else 10)
        firsts = [first_native_sample(args, tmp) for _ in range(3 if args.quick else 5)]
        sys.stderr.write("bench: first samples done (%.0f s)\n" % (time.perf_counter() - t_start))
        lr = long_run(args, tmp, long_secs)
    floors.append(floor(still_secs))
    floors = [f for f in floors if f]

    load1 = os.getloadavg()
    pv = pyversion(args.python)
    print("mixspy bench: Python %s (%s), %d rounds of %.1f s stretches (threads: %d), %d CPUs, load avg 1/5/15 min "
          "%.1f/%.1f/%.1f at start, %.1f/%.1f/%.1f at end, %.0f s" % (
              pv, args.python, args.rounds, args.period, args.rounds * ROUNDS_X["threads"], os.cpu_count(),
              load0[0], load0[1], load0[2],
              load1[0], load1[1], load1[2], time.perf_counter() - t_start))
    print()
    ifig = interleaved_table(kinds, inter, inter_secs)
    print()
    print("Target slowdown in whole stretches, mixspy attaching for each: the rate of work in the stretches")
    print("around each profiled stretch over its rate in it, minus one; median over the rounds [lowest,")
    print("highest]. One workload process throughout; a stretch runs from the first sample to the last.")
    print("(none): nothing attached, the noise.")
    print("(pause: inside mixspy, from its interrupt to its resume; CPU: mixspy's own, from its first")
    print(" sample on, in % of one core)")
    hdr = "%-16s %-8s %-11s %7s  %9s  %15s  %9s  %9s  %9s  %6s  %8s" % (
        "workload", "profiler", "mode", "rate", "slowdown", "range", "pause p50", "pause p99", "samples/s",
        "CPU", "peak RSS")
    print(hdr)
    results = {}

    def rows(label, table, cfgs):
        for c in cfgs:
            rs = table[c]
            slows = [100 * x for x, _, _ in rs]
            slow = statistics.median(slows)
            results[(label, c)] = slow
            st = [x for _, x, _ in rs]
            rng = "[%+.1f, %+.1f]" % (min(slows), max(slows))
            if c[0] == "none":
                print("%-16s %-8s %-11s %7s  %+8.1f%%  %15s" % (label, "(none)", "-", "-", slow, rng))
                continue
            sps = statistics.median(x["rate"] for x in st)
            cpu = statistics.median(100.0 * x["steady_cpu"] for x in st)
            if c[0] == "mixspy":
                p50 = "%7.1f us" % statistics.median(x["p50"] for x in st)
                p99 = "%7.1f us" % statistics.median(x["p99"] for x in st)
                rss = "%5.1f MB" % (max(x["rss"] for x in st) / 1024.0)
            else:
                p50 = p99 = rss = "%9s" % "-"
            print("%-16s %-8s %-11s %4d Hz  %+8.1f%%  %15s  %9s  %9s  %9.0f  %5.1f%%  %8s" % (
                label, c[0], c[1], c[2], slow, rng, p50, p99, sps, cpu, rss))

    for k in kinds:
        rows(k, cost[k], [CONTROL] + MIXSPY_CONFIGS)
    if use_austin:
        av = pyversion(args.austin_python)
        for k in akinds:
            rows("%s (%s)" % (k, av), acost[k], [CONTROL] + AUSTIN_CONFIGS)
    elif args.austin_python:
        print("(austin comparison skipped: needs Debian's austin and a Python 3.8-3.10)")
    if burn:
        bcfg, bres = burn
        ctl = statistics.median(100 * x for x, _, _ in bres[CONTROL])
        bs = [100 * x for x, _, _ in bres[bcfg]]
        print()
        print("CPU alone on threads: a process burning %s us 100 times a second (mixspy blocking's CPU per tick"
              % bcfg[1])
        print("there) slows it %+.1f%% [%+.1f, %+.1f] (control %+.1f%%); mixspy blocking 100 Hz: %+.1f%%, the rest is"
              % (statistics.median(bs), min(bs), max(bs), ctl, results[("threads", ("mixspy", "blocking", 100))]))
        print("its pauses of the GIL holder, during which every thread waits")
    print()
    print("Standstill at 100 Hz, seen from inside the target (`clock`, 200 frames deep, %d s): each pause" % still_secs)
    print("matched with the stall the target saw; beside it, the same pauses as mixspy times them")
    for m in ("blocking", "bpf", "native", "native-bpf"):
        seen, own, n = still[m]
        if seen:
            seen.sort()
            own.sort()
            print("  %-9s standstill p50 %5.1f us  p99 %6.1f us | mixspy's view p50 %5.1f us  p99 %6.1f us "
                  "| %d of %d pauses matched" % (m, seen[len(seen) // 2], seen[int(len(seen) * 0.99)],
                                                 own[len(own) // 2], own[int(len(own) * 0.99)], len(seen), n))
        else:
            print("  %-9s no pause matched (%d pauses)" % (m, n))
    if floors:
        print("Machine floor (bench/floor.c, 100 Hz, %d s each; start, middle, end): a pause that reads nothing" % still_secs)
        for what, label in (("bare", "nothing read"), ("copy", "27 KB copied"), ("primed", "27 KB, primed")):
            print("  %-12s p50 %s us  p99 %s us" % (
                label, " / ".join("%.1f" % f[what][0] for f in floors),
                " / ".join("%.1f" % f[what][1] for f in floors)))
    else:
        print("Machine floor: bench/floor.c not built or cannot pause here (make bench builds it)")
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

    print("  100 Hz slowdowns, interleaved (met: the whole 95% interval below the target; NOT met: the")
    print("  whole of it above; undecided: it holds the target):")
    slowdown_verdicts(kinds, ifig, "    ")
    native100, bpf100 = ("mixspy", "native", 100), ("mixspy", "bpf", 100)
    bseen = sorted(still["bpf"][0])
    bp50 = statistics.median(x["p50"] for _, x, _ in cost["deep"][bpf100])
    print("  (--bpf on deep at 100 Hz: the copy in the tick %.1f us p50 in the kernel's count%s)" % (
        bp50, ", %.1f us standstill seen by the target (clock)" % bseen[len(bseen) // 2] if bseen else ""))
    check("blocking top rate on deep >= 5,000/s", tops[top_specs[0]] >= 5000, "%.0f/s" % tops[top_specs[0]])
    if use_austin:
        check("mixspy top rate >= 2x austin's (deep, %s)" % pyversion(args.austin_python), sp >= 2, "%.2fx" % sp)
    dp50 = statistics.median(x["p50"] for _, x, _ in cost["deep"][native100])
    seen = sorted(still["native"][0])
    fl = ", machine floor with a 27 KB copy %.1f us, primed %.1f us (medians of %d)" % (
        statistics.median(f["copy"][0] for f in floors), statistics.median(f["primed"][0] for f in floors),
        len(floors)) if floors else ""
    check("--native 100 Hz median pause < 50 us on deep", dp50 < 50,
          "%.1f us in mixspy's view%s%s" % (dp50, ", %.1f us standstill seen by the target (clock)" % seen[len(seen) // 2]
                                             if seen else "", fl))
    nb = ("mixspy", "native-bpf", 100)
    nbp50 = statistics.median(x["p50"] for _, x, _ in cost["deep"][nb])
    nbseen = sorted(still["native-bpf"][0])
    check("--native --bpf 100 Hz: median pause < 50 us on deep", nbp50 < 50,
          "copy %.1f us in the kernel's count%s" % (
              nbp50, ", %.1f us standstill seen by the target" % nbseen[len(nbseen) // 2] if nbseen else ""))
    check("--native top rate on mixed >= 2,000/s", tops[top_specs[2]] >= 2000, "%.0f/s" % tops[top_specs[2]])
    check("first --native sample with numpy < 0.5 s", fs < 0.5, "%.3f s" % fs)
    check("peak RSS < 50 MB after %d s at 1000 Hz --native" % long_secs, lr["rss"] < 50 * 1024,
          "%.1f MB" % (lr["rss"] / 1024.0))
    check("75/25 within +- 2 points at the top rate", abs(acc_share - 75) <= 2, "%.1f%%" % acc_share)


if __name__ == "__main__":
    main()
