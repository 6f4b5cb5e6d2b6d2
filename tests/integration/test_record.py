"""test_record.py - `mixspy record` on workloads of known shape, on every interpreter (py-spy §1.2,
§1.8, §2.3, §2.5).

Every recording is raw (collapsed stacks) unless the test is about something else, so the stacks can
be read back exactly; each one also checks the "Wrote ... Samples: N Errors: E" line against the
file's own total. Expected functions and lines come from the workloads' marker comments.
Workloads run for 1-3 s of sampling each, to keep the suite fast.
"""
import collections
import os
import re
import signal
import time

import pytest

import harness
from harness import (Background, assert_not_stopped, leaf_counts, marker_line, parse_collapsed,
                     parse_wrote, run_mixspy)

NE = harness.NATIVE_EXT
BUSY = os.path.join(NE, "busy_75_25.py")
LAUNCH_CHILD = os.path.join(NE, "launch_child.py")
WORK_DEF = marker_line(BUSY, "def work(units):")


def check_written(stderr, out_path, stacks, max_errors=None):
    """The Wrote line names out_path and its sample count is the file's total. Returns N."""
    path, n, errors = parse_wrote(stderr)
    assert path == str(out_path), stderr
    total = sum(stacks.values())
    assert n == total, "Wrote line says %d samples, the file holds %d\n%s" % (n, total, stderr)
    limit = max(2, n // 50) if max_errors is None else max_errors
    assert errors <= limit, "too many errors: %s" % stderr
    return n


# Blocking mode waits for each target thread to stop, and a runnable thread that is not running
# stops only once it is scheduled again: on a loaded machine (other test workers, other jobs),
# a target at normal priority gives few samples, all at the spots where it was preempted. So
# the workloads of these tests and mixspy itself run at a raised priority (harness.prioritize).

def start_prio(start, interp, script, args, name=None, nice=-10):
    w = start(interp, script, args, name=name)
    harness.prioritize(w.pid, nice)
    return w


def bg_raw(tmp_path, args, name, nice=-10):
    """Start `mixspy record -f raw -o TMP/name.txt ARGS` in the background -> (Background, path)."""
    out = tmp_path / (name + ".txt")
    return Background(["record", "-f", "raw", "-o", out] + list(args), priority=nice), out


def record_raw(tmp_path, args, name="out", timeout=30):
    """mixspy record -f raw -o TMP/name.txt ARGS -> (stacks Counter, N, stderr, stdout)."""
    return finish_raw(*bg_raw(tmp_path, args, name), timeout=timeout)


def finish_raw(bg, out, timeout=30, rc_expected=0, max_errors=None):
    rc, stdout, stderr = bg.wait(timeout)
    assert rc == rc_expected, "mixspy record: rc %d, expected %d:\n%s" % (rc, rc_expected, stderr)
    with open(str(out), encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    n = check_written(stderr, out, stacks, max_errors)
    return stacks, n, stderr, stdout


def names_in(stack):
    return [f.name for f in stack]


def frames_named(stacks, name):
    """Counter of Frame -> samples for every frame called name (once per stack)."""
    c = {}
    for st, n in stacks.items():
        for f in st:
            if f.name == name:
                c[f] = c.get(f, 0) + n
                break
    return c


# ---------------------------------------------------------------------------------------------
# Shape of a profile

def test_75_25(interp, start, tmp_path):
    """heavy() does three times the work of light(): it gets 75% +- 5 of their samples."""
    # Rounds of ~0.1 ms, far shorter than the 2.5 ms between samples; target and mixspy at a
    # raised priority, so that other load on the machine does not freeze the target in one spot.
    w = start_prio(start, interp, "busy_75_25.py", ["--seconds", 60, "--inner", 1000], nice=-19)
    bg, out = bg_raw(tmp_path, ["--pid", w.pid, "-d", 4, "-r", 400], "out", nice=-19)
    stacks, n, err, _ = finish_raw(bg, out)
    # heavy() 75% +- 5 of the samples; every work() frame on a line of its body, mostly the hot one
    share, total = harness.check_busy_75_25(stacks, n, 800)
    print("75/25 %s: heavy %.1f%% of %d samples" % (interp.id, share, total))
    assert_not_stopped(w.pid)


def test_idle_vs_default(interp, start, tmp_path):
    """A sleeping thread is left out by default and recorded with --idle, at its sleeping line."""
    w = start_prio(start, interp, "sleeper.py", ["--seconds", 60])
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 0.7], name="default")
    assert not any("idle_forever" in names_in(s) for s in stacks), stacks
    assert n == 0, "an idle process gave %d samples without --idle" % n
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1, "--idle"], name="idle")
    assert n >= 40, "only %d samples with --idle in 1 s at 100 Hz" % n
    leaf = [s for s in stacks if names_in(s)[-1:] == ["idle_forever"]]
    assert sum(stacks[s] for s in leaf) == n, stacks
    for s in leaf:
        assert s[-1].line == marker_line(os.path.join(NE, "sleeper.py"), "# IDLE-LINE"), s
    assert_not_stopped(w.pid)


def test_gil(interp, start, ext_dir, tmp_path):
    """--gil keeps only the thread holding the GIL: the C kernel that released it drops out."""
    w = start_prio(start, interp, "gil_two_threads.py", ["--ext", ext_dir, "--seconds", 60])
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1, "--threads"], name="all")
    by = leaf_counts(stacks, {"py_busy", "c_busy"})
    assert by["c_busy"] >= 0.25 * n, "the GIL-released thread is active by default: %s of %d" % (by, n)
    assert by["py_busy"] >= 0.25 * n, by

    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1, "--gil", "--threads"],
                                 name="gil")
    by = leaf_counts(stacks, {"py_busy", "c_busy"})
    assert n >= 30, "only %d --gil samples" % n
    assert by["py_busy"] >= 0.85 * n, "py-worker holds the GIL: %s of %d" % (by, n)
    assert by["c_busy"] <= 0.05 * n, "c-worker released the GIL: %s of %d" % (by, n)
    for s in stacks:
        if "py_busy" in names_in(s):
            assert s[0].name.startswith("thread (") and s[0].name.endswith(": py-worker"), s
    assert_not_stopped(w.pid)


THREAD_FRAME = re.compile(r"^thread \((\d+|0x[0-9A-F]+)\)(?:: (.*))?$")


def test_threads(interp, start, tmp_path):
    """--threads puts `thread (TID): NAME` at the root; with --idle every thread is there."""
    w = start_prio(start, interp, "threads.py", ["--threads", 2, "--seconds", 60])
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1, "--threads", "--idle"])
    tasks = {int(t) for t in os.listdir("/proc/%d/task" % w.pid)}
    seen = {}
    for s, k in stacks.items():
        m = THREAD_FRAME.match(s[0].name)
        assert m and s[0].file is None, "root frame is not a thread frame: %s" % (s,)
        tid, name = m.group(1), m.group(2)
        assert tid.isdigit() and int(tid) in tasks, "thread id %s is not a task of %d" % (tid, w.pid)
        assert seen.setdefault(name, tid) == tid, "thread %s shows two ids" % name
        leafs = {"MainThread": "main", "worker-0": "spin", "worker-1": "nap"}
        assert name in leafs, "unexpected thread name %r" % name
        assert leafs[name] in names_in(s), (name, s)
    assert sorted(seen) == ["MainThread", "worker-0", "worker-1"], seen
    assert int(seen["MainThread"]) == w.pid
    for name in seen:
        k = sum(c for s, c in stacks.items() if s[0].name.endswith(": " + name))
        assert k >= 0.2 * n, "thread %s has %d of %d samples with --idle" % (name, k, n)


def test_thread_names_follow_reused_ids(interp, start, tmp_path):
    """Threads started one after another reuse the last one's thread id (its stack): each sampled
    OS thread still carries its own name, as the workload logged it - not the first name its id
    was seen with."""
    log = str(tmp_path / "jobs.log")
    w = start_prio(start, interp, "thread_churn.py", ["--log", log, "--seconds", 60])
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1.5, "--threads"])
    with open(log) as f:
        jobs = [line.split() for line in f if line.strip()]
    idents = [ident for _, _, ident in jobs]
    assert len(set(idents)) < len(idents), "no thread id came back in %d jobs" % len(jobs)
    logged = {int(tid): name for name, tid, _ in jobs if int(tid)}
    names = {name for name, _, _ in jobs}
    seen = {}
    for s, k in stacks.items():
        if "spin_job" not in names_in(s):
            continue
        m = THREAD_FRAME.match(s[0].name)
        if not m:
            # `thread (TID)` with no name parses as a frame: a job sampled before threading
            # registered it (or before the next read of the names)
            assert s[0].name == "thread" and s[0].file, s
            continue
        tid, name = m.group(1), m.group(2)
        assert name in names, "%s: %r is no job's name" % (tid, name)
        if tid.isdigit() and logged:
            assert logged.get(int(tid)) == name, "OS thread %s shown as %r, it was %r" % (tid, name, logged.get(int(tid)))
        assert seen.setdefault(name, tid) == tid, "%s shown as threads %s and %s" % (name, seen[name], tid)
    assert len(seen) >= 10, "only %d jobs sampled by name: %s" % (len(seen), sorted(seen))


def test_subprocesses(interp, start, tmp_path):
    """--subprocesses follows a multiprocessing pool: each child's stacks sit under
    `process PARENT:"cmdline"` then `process CHILD:"cmdline"`."""
    w = start_prio(start, interp, "subproc.py", ["--seconds", 60])
    children = [int(p) for p in w.ready_lines[2].split()[1:]]
    assert len(children) == 2, w.ready_lines
    stacks, n, _, _ = record_raw(tmp_path, ["--pid", w.pid, "-d", 1.5, "--subprocesses"])
    parent_frame = 'process %d:"%s"' % (w.pid, " ".join(harness.cmdline_of(w.pid)))
    line = marker_line(os.path.join(NE, "subproc.py"), "# CHILD-WORK-LINE")
    first = marker_line(os.path.join(NE, "subproc.py"), "def child_work(deadline):")
    for child in children:
        mine = {s: k for s, k in stacks.items()
                if len(s) > 1 and s[1].name.startswith("process %d:" % child)}
        k = sum(mine.values())
        assert k >= 0.2 * n and k >= 10, "child %d: %d of %d samples" % (child, k, n)
        for s in mine:
            assert s[0].name == parent_frame, s[0]
            assert s[1].name == 'process %d:"%s"' % (child, " ".join(harness.cmdline_of(child))), s[1]
        hot = {s: c for s, c in mine.items() if s[-1].name == "child_work"}
        assert sum(hot.values()) >= 0.7 * k, "child %d: %d of %d samples in child_work" % (
            child, sum(hot.values()), k)
        assert all(first < s[-1].line <= line for s in hot), list(hot)
        assert any(s[-1].line == line for s in hot), list(hot)
    assert_not_stopped(w.pid)
    for child in children:
        assert_not_stopped(child)


# ---------------------------------------------------------------------------------------------
# Launching a program, its end, Ctrl-C

def launch_args(interp, tmp_path, code, work):
    marker = tmp_path / "done.marker"
    return ["--", interp.path, LAUNCH_CHILD, "--code", code, "--work", work, "--marker", marker], marker


def test_launched_exits_mid_record(interp, tmp_path):
    """record -- python prog: sampling stops when the program ends; its output passes through,
    its exit status is passed on, nothing it did is lost."""
    args, marker = launch_args(interp, tmp_path, 3, 1.0)
    out = tmp_path / "out.txt"
    t0 = time.monotonic()
    rc, stdout, stderr = Background(["record", "-f", "raw", "-o", out] + args, priority=-10).wait()
    assert rc == 3, "exit status not passed on: rc %d\n%s" % (rc, stderr)
    assert "launch_child: started\nlaunch_child: done\n" in stdout, stdout
    assert os.path.exists(str(marker))
    assert "Stopped sampling because process exited" in stderr, stderr
    with open(str(out), encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    n = check_written(stderr, out, stacks)
    elapsed = time.monotonic() - t0
    assert n >= 50, "%d samples of a 1 s busy program at 100 Hz" % n
    line = marker_line(LAUNCH_CHILD, "# LAUNCH-WORK-LINE")
    first = marker_line(LAUNCH_CHILD, "def work(seconds):")
    work = {s: k for s, k in stacks.items() if s[-1].name == "work"}
    assert sum(work.values()) >= 0.4 * n, "%d of %d samples in work()" % (sum(work.values()), n)
    assert all(first < s[-1].line <= line for s in work), list(work)
    assert elapsed < 15


def test_launched_duration_not_killed(interp, tmp_path):
    """--duration shorter than the program: sampling stops on time, the program runs to its end
    and its exit status is passed on."""
    args, marker = launch_args(interp, tmp_path, 3, 1.2)
    t0 = time.monotonic()
    out = tmp_path / "out.txt"
    rc, stdout, stderr = Background(["record", "-f", "raw", "-d", 0.5, "-o", out] + args,
                                    priority=-10).wait()
    elapsed = time.monotonic() - t0
    assert rc == 3, "exit status not passed on: rc %d\n%s" % (rc, stderr)
    assert "launch_child: done" in stdout and os.path.exists(str(marker)), \
        "the program was killed early:\nstdout:\n%s\nstderr:\n%s" % (stdout, stderr)
    assert elapsed >= 1.2
    assert "Stopped sampling" not in stderr, stderr
    assert "for 0.5 seconds" in stderr, stderr
    with open(str(out), encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    n = check_written(stderr, out, stacks)
    assert 10 <= n <= 110, "%d samples in 0.5 s at 100 Hz" % n


def test_attached_exits_mid_record(interp, start, tmp_path):
    """record --pid with no duration: stops when the target exits, file written."""
    # 2.5 s of work: mixspy's start (attach, finding the interpreter) can take half a second and
    # more on a loaded machine, and 50 samples must still fit after it.
    w = start_prio(start, interp, "exit_code.py", ["--work", 2.5, "--code", 0])
    # While the interpreter is torn down its thread list can't be read: a few errors at the end.
    stacks, n, stderr, _ = finish_raw(*bg_raw(tmp_path, ["--pid", w.pid], "out"), max_errors=10)
    assert "Stopped sampling because process exited" in stderr, stderr
    assert n >= 50, "%d samples" % n
    assert any(s[-1].name == "work" for s in stacks), stacks


def test_sigint_attached(interp, start, tmp_path):
    """Ctrl-C (SIGINT to mixspy) mid-record of an attached target: the file is written with every
    sample taken, and the target runs on, not stopped."""
    w = start_prio(start, interp, "busy_75_25.py", ["--seconds", 60])
    bg, out = bg_raw(tmp_path, ["--pid", w.pid], "sigint")
    time.sleep(1.0)
    bg.signal(signal.SIGINT)
    stacks, n, stderr, _ = finish_raw(bg, out, timeout=15)
    assert "Stopped sampling because Control-C pressed" in stderr, stderr
    assert n >= 30, "%d samples in ~1 s" % n
    assert any("heavy" in names_in(s) for s in stacks)
    assert w.alive()
    assert_not_stopped(w.pid)


def test_sigint_launched(interp, tmp_path):
    """Ctrl-C at a terminal signals mixspy and the program it launched (one process group): the
    file is written with every sample; the program's own status (KeyboardInterrupt) is passed on."""
    args, marker = launch_args(interp, tmp_path, 0, 30)
    bg, out = bg_raw(tmp_path, args, "sigint")
    time.sleep(1.0)
    bg.signal(signal.SIGINT, group=True)
    rc, stdout, stderr = bg.wait(15)
    assert rc in (1, 130), "rc %d\n%s" % (rc, stderr)
    assert "Stopped sampling because" in stderr, stderr
    assert "launch_child: started" in stdout and not os.path.exists(str(marker))
    with open(str(out), encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    n = check_written(stderr, out, stacks)
    assert n >= 30, "%d samples in ~1 s" % n


# ---------------------------------------------------------------------------------------------
# Flags

def test_duration_and_rate(interp, start, tmp_path):
    """-d 1 at -r 50 and -r 250 (two targets sampled at once): about rate x duration samples, and
    mixspy stops after about a second."""
    runs = []
    for rate in (50, 250):
        w = start_prio(start, interp, "busy_75_25.py", ["--seconds", 60], name="busy%d" % rate)
        runs.append((rate, w) + bg_raw(tmp_path, ["--pid", w.pid, "-d", 1, "-r", rate], "r%d" % rate))
    t0 = time.monotonic()
    for rate, w, bg, out in runs:
        stacks, n, stderr, _ = finish_raw(bg, out)
        assert 0.5 * rate <= n <= 1.5 * rate, "-r %d -d 1 gave %d samples" % (rate, n)
        assert "%d times a second for 1 seconds" % rate in stderr, stderr
        assert "Stopped sampling" not in stderr
        assert_not_stopped(w.pid)
    assert time.monotonic() - t0 < 5


def test_duty_phases(debian_interp, start, tmp_path):
    """MIXSPY_DUTY=MS (bench.py's interleaved slowdowns): samples only in the phases on - those
    of CLOCK_MONOTONIC where floor(t / MS) is even - at --rate within them, so half as many in all;
    every pause of the run (from mixspy's pause log) begins in a phase on, and they come in phases
    on all through the run. (A thread found off its CPU is read without a pause, so on a busy
    machine there are fewer pauses than samples.)"""
    w = start_prio(start, debian_interp, "busy_75_25.py", ["--seconds", 60], nice=-15)
    log = str(tmp_path / "pauses.txt")
    out = str(tmp_path / "duty.txt")
    rc, _, stderr = run_mixspy(["record", "--pid", w.pid, "-d", 4, "-r", 200, "-f", "raw", "-o", out], timeout=40,
                               env={"MIXSPY_STATS": "1", "MIXSPY_PAUSE_LOG": log, "MIXSPY_DUTY": "100"})
    assert rc == 0, stderr
    with open(out, encoding="utf-8") as f:
        n = sum(parse_collapsed(f.read()).values())
    assert 0.2 * 200 * 4 <= n <= 0.75 * 200 * 4, "%d samples in 4 s at 200 Hz, sampling half of the time" % n
    with open(log) as f:
        starts = [float(line.split()[0]) for line in f if line.strip()]
    assert len(starts) >= 10, "%d pauses" % len(starts)
    # A pause begins a little after its tick; on a busy machine mixspy may lose its CPU between
    # the two, so a tick due at the end of a phase on is let begin in the next (without the
    # phases, half of the pauses would)
    off = [t for t in starts if int((t - 0.001) // 0.1) % 2]
    assert len(off) <= max(2, 0.05 * len(starts)), "%d of %d pauses began in phases off: %s" % (
        len(off), len(starts), off[:5])
    phases = sorted(set(int(t // 0.1) for t in starts))
    assert len(phases) >= 8 and phases[-1] - phases[0] >= 20, phases
    assert_not_stopped(w.pid)


def test_line_modes(interp, start, tmp_path):
    """--function (each frame at its function's first line), --nolineno (no lines),
    --full-filenames and --nonblocking. Two targets, each sampled by one blocking mixspy and one
    --nonblocking one at once (only one tracer can pause a thread)."""
    variants = {"function": (0, ["--function"]), "nolineno": (1, ["--nolineno"]),
                "nonblocking": (0, ["--nonblocking"]),
                "full": (1, ["--full-filenames", "--nonblocking"])}
    ws = [start_prio(start, interp, "busy_75_25.py", ["--seconds", 60], name="busy%d" % i)
          for i in range(2)]
    runs = {}
    for key, (i, extra) in variants.items():
        runs[key] = (ws[i],) + bg_raw(tmp_path, ["--pid", ws[i].pid, "-d", 1] + extra, key)
    res = {}
    for key, (w, bg, out) in runs.items():
        # Without pausing, a stack that changes while it is read is an error, now and then.
        res[key] = finish_raw(bg, out, max_errors=30 if "--nonblocking" in variants[key][1] else None)
        assert res[key][1] >= 40, "%s: %d samples" % (key, res[key][1])
    for w in ws:
        assert_not_stopped(w.pid)

    stacks = res["function"][0]
    firsts = {"work": WORK_DEF, "heavy": marker_line(BUSY, "def heavy():"),
              "light": marker_line(BUSY, "def light():"), "main": marker_line(BUSY, "def main():")}
    for s in stacks:
        for f in s:
            if f.name in firsts and f.file == "busy_75_25.py":
                assert f.line == firsts[f.name], "--function: %s at line %s, expected %d" % (
                    f.name, f.line, firsts[f.name])
    assert frames_named(stacks, "work")

    stacks = res["nolineno"][0]
    for s in stacks:
        for f in s:
            assert f.line is None, "--nolineno: %s has a line" % (f,)
    assert {f.file for f in frames_named(stacks, "work")} == {"busy_75_25.py"}
    assert sum(frames_named(stacks, "work").values()) >= 0.8 * res["nolineno"][1]

    stacks = res["full"][0]
    files = {f.file for f in frames_named(stacks, "work")}
    assert files == {BUSY} or files == {os.path.realpath(BUSY)}, files

    stacks, n = res["nonblocking"][:2]
    work = sum(frames_named(stacks, "work").values())
    assert work >= 0.7 * n, "--nonblocking: %d of %d samples in work()" % (work, n)


DEFAULT_NAME = r"-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\.svg$"


def test_default_output_name(debian_interp, start, tmp_path):
    """Without -o: `<pid or program>-<RFC 3339 local time>.svg` in the current directory."""
    w = start(debian_interp, "busy_75_25.py", ["--seconds", 60])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    a = Background(["record", "--pid", w.pid, "-d", 0.5], cwd=str(cwd))
    b = Background(["record", "-d", 0.3, "--", debian_interp.path, LAUNCH_CHILD, "--work", 0.5],
                   cwd=str(cwd))
    for bg, prefix in ((a, str(w.pid)), (b, os.path.basename(debian_interp.path))):
        rc, stdout, stderr = bg.wait()
        assert rc == 0, stderr
        path, n, _ = parse_wrote(stderr)
        assert n > 0
        assert re.match("^" + re.escape(prefix) + DEFAULT_NAME, path), path
        assert os.path.isfile(os.path.join(str(cwd), path)), (path, os.listdir(str(cwd)))
        with open(os.path.join(str(cwd), path), "rb") as f:
            assert b"<svg" in f.read(4096)


BAD_COMBOS = [
    (["--native", "--nonblocking"], "Can't get native stack traces with the --nonblocking option."),
    (["--function", "--nolineno"], "--function & --nolinenos can't be used together"),
]


@pytest.mark.parametrize("flags,message", BAD_COMBOS, ids=["native-nonblocking", "function-nolineno"])
def test_bad_combinations(debian_interp, tmp_path, flags, message):
    """py-spy's messages, exit status 1, and the program is never started."""
    marker = tmp_path / "done.marker"
    out = tmp_path / "out.svg"
    rc, stdout, stderr = run_mixspy(["record", "-o", out] + flags + [
        "--", debian_interp.path, LAUNCH_CHILD, "--work", 0, "--marker", marker])
    assert rc == 1, (rc, stderr)
    assert message in stderr, stderr
    assert not os.path.exists(str(marker)) and not os.path.exists(str(out))
    assert "launch_child" not in stdout


def test_unwritable_output_launch(debian_interp, tmp_path):
    """An output path that can't be created fails before anything is launched or sampled."""
    marker = tmp_path / "done.marker"
    t0 = time.monotonic()
    rc, stdout, stderr = run_mixspy(["record", "-o", "/nonexistent-dir/x.svg", "--",
                                     debian_interp.path, LAUNCH_CHILD, "--work", 2,
                                     "--marker", marker])
    assert rc == 1, (rc, stderr)
    assert "/nonexistent-dir/x.svg" in stderr and "Sampling process" not in stderr, stderr
    assert "launch_child" not in stdout
    time.sleep(0.2)
    assert not os.path.exists(str(marker))
    assert time.monotonic() - t0 < 2.0
