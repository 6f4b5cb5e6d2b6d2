"""test_gil.py - the GIL state of every sample (held, released, waiting, idle) on every interpreter.

Workloads (tests/native_ext/):
  gil_two_threads.py  py-worker runs pure Python (designed: holds the GIL all the time);
                      c-worker loops in c_kernel_nogil (designed: never holds it; it runs released,
                      and waits only to take the GIL back between two 0.2 s kernel calls)
  gil_contention.py   4 contender threads run pure Python: at any instant one holds the GIL and three
                      wait for it (designed: held 25%, waiting 75% each; 2.7, whose GIL is free
                      between its drops and takes: held as --nonblocking measures it)

The split is read from two places: the per-thread summary `record` prints at the end, and the root
pseudo-frame `--gil-split` puts on every stack of the raw output. A design value must be met within
10 points. Blocking mode pauses the GIL holder while it reads it, so a thread that needs the GIL back
(c-worker) waits a little longer than it would unobserved: its bound is on "not held" rather than on
"released" alone, plus a floor on "released".
"""
import collections
import math
import os
import re
import time

import pytest

import harness
from harness import assert_not_stopped, parse_collapsed, run_mixspy

STATES = ("held", "released", "waiting", "idle")
SUMMARY_RE = re.compile(r'^mixspy> GIL: thread (\S+)(?: "(.*)")?: held (\d+)% released (\d+)% '
                        r'waiting (\d+)% idle (\d+)%$')
TOLERANCE = 10
DURATION = 6
# At 100 Hz on a loaded machine the sampler falls behind when pausing a sleeping thread takes a
# scheduler round, then catches up with back-to-back ticks: those land in the same state and
# over-weight it (measured: c-worker "waiting" 39% at 100 Hz, 12% at 20 Hz, 8% true). 25 Hz keeps
# the schedule.
RATE = 25


def parse_summary(stderr):
    """{thread name (or id): {state: percent}} from record's closing GIL lines."""
    out = {}
    for line in stderr.splitlines():
        m = SUMMARY_RE.match(line.strip())
        if m:
            key = m.group(2) if m.group(2) is not None else m.group(1)
            out[key] = dict(zip(STATES, (int(m.group(i)) for i in range(3, 7))))
    return out


def record_split(w, tmp_path, *extra):
    out = str(tmp_path / "gil.txt")
    rc, stdout, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", DURATION, "--rate", RATE,
                                     "--format", "raw", "--gil-split", "--threads", "--output", out]
                                    + list(extra),
                                    timeout=DURATION + 40)
    assert_not_stopped(w.pid)
    assert rc == 0, "mixspy record failed (rc %d):\n%s\n%s" % (rc, stdout, stderr)
    with open(out, encoding="utf-8") as f:
        raw = f.read()
    return raw, parse_summary(stderr), stderr


def raw_stacks(raw):
    """[(labels root first, count)] from raw output, labels unparsed (a thread pseudo-frame such as
    `thread (1234)` would otherwise read as a function called "thread")."""
    out = []
    for line in raw.splitlines():
        if line.strip():
            stack, _, count = line.rpartition(" ")
            out.append((stack.split(";"), int(count)))
    return out


def thread_name_of(label):
    """`thread (1234): name` -> name (the --threads pseudo-frame)."""
    m = re.match(r"^thread \((?:\d+|0x[0-9A-F]+)\)(?:: (.*))?$", label)
    assert m, "not a thread pseudo-frame: %r" % label
    return m.group(1)


def split_by_thread(raw):
    """{thread name: Counter(state -> samples)} from --gil-split --threads raw stacks, checking that
    every stack's root is a GIL state and the next frame its thread."""
    per = collections.defaultdict(collections.Counter)
    for labels, count in raw_stacks(raw):
        assert len(labels) >= 2, "stack too short for --gil-split --threads: %r" % (labels,)
        assert labels[0] in STATES, "root frame %r is not a GIL state" % labels[0]
        per[thread_name_of(labels[1])][labels[0]] += count
    return per


def percent(counter):
    total = sum(counter.values())
    assert total > 0
    return {s: 100.0 * counter[s] / total for s in STATES}


def check_summary_consistent(summary, per_thread, stderr):
    """Every thread of the raw output has a summary line whose percentages add up and agree with the
    raw split (the summary rounds to whole percents)."""
    for name, counts in per_thread.items():
        assert name in summary, "no GIL summary line for thread %r:\n%s" % (name, stderr)
        s = summary[name]
        assert 97 <= sum(s.values()) <= 103, "summary of %r does not add up: %s" % (name, s)
        raw = percent(counts)
        for st in STATES:
            assert abs(raw[st] - s[st]) <= 1.5, \
                "summary %s of %r disagrees with the raw output %s" % (s, name, raw)


def near(value, design, what, detail):
    assert abs(value - design) <= TOLERANCE, "%s: %.0f%%, designed %d%% +- %d\n%s" % (
        what, value, design, TOLERANCE, detail)


def test_two_threads_held_and_released(interp, ext_dir, start, tmp_path):
    w = start(interp, "gil_two_threads.py", ["--ext", ext_dir, "--seconds", 120])
    stacks, summary, stderr = record_split(w, tmp_path)
    per = split_by_thread(stacks)
    check_summary_consistent(summary, per, stderr)
    detail = "summary: %s" % summary
    assert "py-worker" in per and "c-worker" in per, detail

    py = percent(per["py-worker"])
    # Designed 100; with the suite's parallel load on 2 CPUs the holder read at the start of a tick
    # is stale for some later samples (measured 84-89 under `-n 4`, 91-99 alone): 20 points.
    assert py["held"] >= 80 and py["held"] == max(py.values()), "py-worker held: %s" % detail

    c = percent(per["c-worker"])
    near(c["held"], 0, "c-worker held", detail)
    near(c["released"] + c["waiting"], 100, "c-worker released or waiting", detail)
    assert c["released"] >= 55, "c-worker's kernel must be released most of the time: %s" % detail

    # The kernel itself: every c-worker stack under c_busy's call line is never "held".
    line = harness.marker_line(harness.NATIVE_EXT + "/gil_two_threads.py", "# C-BUSY-LINE")
    kernel = collections.Counter()
    for frames, count in parse_collapsed(stacks).items():
        if any(f.name == "c_busy" and f.line == line for f in frames):
            kernel[frames[0].name] += count
    assert sum(kernel.values()) > 0, "no sample in c_busy:%d" % line
    near(percent(kernel)["held"], 0, "c_busy (C kernel) held", detail)


def test_contention_waiting(interp, start, tmp_path):
    w = start(interp, "gil_contention.py", ["--threads", 4, "--seconds", 120])
    stacks, summary, stderr = record_split(w, tmp_path)
    per = split_by_thread(stacks)
    check_summary_consistent(summary, per, stderr)
    detail = "summary: %s" % summary
    contenders = sorted(n for n in per if n and n.startswith("contender-"))
    assert len(contenders) == 4, detail
    splits = [percent(per[n]) for n in contenders]
    held = 25
    if interp.version[:2] < (3, 2):
        # 2.7's GIL is dropped and taken again every 100 bytecodes, and no thread holds it in
        # between: under contention on these machines, where a futex wake-up is slow, that is
        # about half of the time (a contender held it 13-15%, measured by --nonblocking, which
        # pauses nothing). Its design value is that unpaused measurement of the same process;
        # and its GIL is not fair (a contender can go without it for seconds), so no floor per
        # contender.
        _, nb_summary, _ = record_split(w, tmp_path, "--nonblocking")
        nb = [nb_summary[n]["held"] for n in contenders if n in nb_summary]
        assert len(nb) == 4, "--nonblocking summary: %s" % nb_summary
        held = sum(nb) / 4.0
        detail += "\n--nonblocking summary: %s" % nb_summary
    else:
        for name, s in zip(contenders, splits):
            assert s["held"] >= 5, "%s: never held the GIL? %s" % (name, detail)
    # One thread holds the GIL at a time (3.2+: all the time): the others wait for it. (2.7's
    # holder is read once a tick - it changes hands every 100 bytecodes - so under load a
    # contender that took it since reads as running without it: "released" counts with waiting.)
    near(sum(s["held"] for s in splits) / 4, held, "mean contender held", detail)
    waits = [s["waiting"] + (s["released"] if interp.version[:2] < (3, 2) else 0) for s in splits]
    near(sum(waits) / 4, 100 - held, "mean contender waiting", detail)
    for name, s in zip(contenders, splits):
        assert s["waiting"] >= 40, "%s: waiting must be visible: %s" % (name, detail)


STATS_RE = re.compile(r"^mixspy-stats: pid \d+ pauses (\d+) .* unpaused (\d+) ", re.M)
QUIET_TRIES_RE = re.compile(r"^mixspy-stats: .* quiet_tries (\d+) ", re.M)
STOP_REGS_RE = re.compile(r"^mixspy-stats: .* stop_regs (\d+)\b", re.M)


def contend_line_range():
    """The lines a sample of gil_contention.py's contend() may stand on: its loop's three, and
    (--nap) the test for a nap after each thousand turns and the nap's call."""
    at = harness.marker_line(os.path.join(harness.NATIVE_EXT, "gil_contention.py"), "# CONTEND-LINE")
    return {at - 2, at - 1, at, at + 1, at + 2}


def contender_stacks(path, state):
    """--gil-split --threads raw output at path -> (its text, [(labels, count)] of gil_contention.py's
    contender threads in GIL state `state`)."""
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    out = []
    for labels, count in raw_stacks(raw):
        name = thread_name_of(labels[1])   # every stack's second frame is its thread
        if labels[0] == state and (name or "").startswith("contender-"):
            out.append((labels, count))
    return raw, out


def contend_frames(labels):
    """A --gil-split --threads stack of a contender, as frames, and where contend() is in it: at
    one of its loop's lines, with only native frames under it (none Python-only)."""
    frames = [harness.parse_frame_label(x) for x in labels[2:]]
    names = [f.name for f in frames]
    assert "contend" in names, "a contender's stack must hold contend(): %r" % (labels,)
    at = names.index("contend")
    assert frames[at].line in contend_line_range(), labels
    assert all(not (f.file or "").endswith(".py") for f in frames[at + 1:]), labels
    return frames, at


def test_waiters_read_without_pause(interp, start, tmp_path):
    """Python-only, a thread asleep waiting for the GIL is read without a pause (3.7+: the GIL's
    last holder and switch count, read around the read, show it did not take the GIL meanwhile),
    and what is read that way is the stack the thread waits in. 2.7 and 3.6 keep no such count:
    every sampled thread is paused there."""
    w = start(interp, "gil_contention.py", ["--threads", 4, "--seconds", 120])
    out = str(tmp_path / "gil.txt")
    rc, _, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", 3, "--rate", 50, "--format", "raw",
                                "--gil-split", "--threads", "--output", out],
                               timeout=45, env={"MIXSPY_STATS": "1"})
    assert_not_stopped(w.pid)
    assert rc == 0, stderr
    m = STATS_RE.search(stderr)
    assert m, "no stats line:\n%s" % stderr
    pauses, unpaused = int(m.group(1)), int(m.group(2))
    raw, stacks = contender_stacks(out, "waiting")
    contend_lines = contend_line_range()
    waiting = 0
    for labels, count in stacks:
        waiting += count
        leaf = harness.parse_frame_label(labels[-1])
        assert leaf.name == "contend" and (leaf.file or "").endswith("gil_contention.py") \
            and leaf.line in contend_lines, \
            "a waiting contender's stack must end in contend(): %r" % (labels,)
    assert waiting > 0, raw
    if interp.version[:2] < (3, 7):
        assert unpaused == 0, stderr
    else:
        # Three of the four contenders wait at any time, asleep most of it: most of their samples
        # come from reads without a pause.
        assert unpaused >= waiting / 2, "unpaused %d, waiting samples %d, pauses %d" % (unpaused, waiting, pauses)


def test_waiting_kept_without_idle(interp, start, tmp_path):
    """A thread waiting for the GIL is not idle: without --idle its samples stay (the main thread,
    parked in join(), goes)."""
    w = start(interp, "gil_contention.py", ["--threads", 3, "--seconds", 120])
    out = str(tmp_path / "noidle.txt")
    rc, stdout, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", 3, "--format", "raw", "--gil-split",
                                     "--output", out], timeout=45)
    assert rc == 0, stderr
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    roots = collections.Counter()
    for frames, count in stacks.items():
        roots[frames[0].name] += count
    assert roots["waiting"] > roots["held"], "waiting samples dropped without --idle: %s" % roots
    assert not any(f.name == "_wait_for_tstate_lock" for frames in stacks for f in frames), \
        "the idle main thread showed up without --idle"


def test_gil_flag_keeps_only_holders(debian_interp, ext_dir_debian, start, tmp_path):
    """--gil keeps py-spy's meaning: only the GIL holder's samples, so every root is `held`."""
    w = start(debian_interp, "gil_two_threads.py", ["--ext", ext_dir_debian, "--seconds", 120])
    raw, summary, stderr = record_split(w, tmp_path, "--gil")
    stacks = parse_collapsed(raw)
    roots = collections.Counter()
    for frames, count in stacks.items():
        roots[frames[0].name] += count
    assert roots["held"] > 0 and set(roots) == {"held"}, roots
    # c-worker holds the GIL only between its 200 ms calls without it (a loop test, a call): a
    # sample may catch it there - more so on a loaded machine, where it can lose its CPU holding
    # it - but py-worker, which holds it all the time it runs, has nearly all of them.
    c_held = sum(count for frames, count in stacks.items() if any(f.name == "c_busy" for f in frames))
    py_held = sum(count for frames, count in stacks.items() if any(f.name == "py_busy" for f in frames))
    assert c_held <= 0.05 * (c_held + py_held) and py_held > 0, \
        "--gil kept c-worker's samples (%d) beside py-worker's (%d): it never holds the GIL for long" % (
            c_held, py_held)


def test_summary_without_gil_split(debian_interp, ext_dir_debian, start, tmp_path):
    """Every record ends with the per-thread summary, with or without --gil-split, in any format."""
    w = start(debian_interp, "gil_two_threads.py", ["--ext", ext_dir_debian, "--seconds", 120])
    out = str(tmp_path / "plain.svg")
    rc, stdout, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", 2, "--output", out], timeout=45)
    assert rc == 0, stderr
    summary = parse_summary(stderr)
    assert "py-worker" in summary and "c-worker" in summary, stderr
    assert summary["py-worker"]["held"] >= 100 - TOLERANCE, stderr
    assert summary["c-worker"]["held"] <= TOLERANCE, stderr
    # Nothing of the GIL split leaks into a profile that did not ask for it.
    with open(out, encoding="utf-8") as f:
        svg = f.read()
    assert ">released<" not in svg and "released (" not in svg


@pytest.fixture
def ext_dir_debian(debian_interp, ext_builds):
    return ext_builds(debian_interp)


@pytest.mark.parametrize("mode", ["--native"])
def test_native_split(debian_interp, ext_dir_debian, start, tmp_path, mode):
    """With --native, take_gil on the native stack marks waiters; the split stays the same."""
    w = start(debian_interp, "gil_contention.py", ["--threads", 4, "--seconds", 120])
    stacks, summary, stderr = record_split(w, tmp_path, mode)
    per = split_by_thread(stacks)
    contenders = [percent(per[n]) for n in per if n and n.startswith("contender-")]
    assert len(contenders) == 4, summary
    near(sum(s["held"] for s in contenders) / 4, 25, "mean contender held (--native)", summary)
    near(sum(s["waiting"] for s in contenders) / 4, 75, "mean contender waiting (--native)", summary)


def test_native_waiters_read_asleep(interp, start, tmp_path):
    """--native, a thread asleep waiting for the GIL is read without a pause (3.7+): its pc and sp
    from /proc/PID/task/TID/syscall, its stack copied while it sleeps, checked afterwards to
    have stayed asleep. Its merged stack is the one a pause shows: contend() over the native
    frames of the GIL wait, with no merge mismatch."""
    w = start(interp, "gil_contention.py", ["--threads", 4, "--seconds", 120])
    out = str(tmp_path / "gil-native.txt")
    rc, _, stderr = run_mixspy(["record", "--native", "--pid", w.pid, "--duration", 3, "--rate", 50, "--format",
                                "raw", "--gil-split", "--threads", "--output", out],
                               timeout=60, env={"MIXSPY_STATS": "1"})
    assert_not_stopped(w.pid)
    assert rc == 0, stderr
    m = STATS_RE.search(stderr)
    assert m, "no stats line:\n%s" % stderr
    pauses, unpaused = int(m.group(1)), int(m.group(2))
    mm = re.search(r"Native merge mismatches: (\d+) of (\d+) samples", stderr)
    assert mm and int(mm.group(1)) == 0, stderr
    with open(out, encoding="utf-8") as f:
        raw = f.read()
    waiting = in_futex = 0
    for labels, count in raw_stacks(raw):
        name = thread_name_of(labels[1])
        if labels[0] != "waiting" or not name or not name.startswith("contender-"):
            continue
        waiting += count
        # under contend(), only the native frames of the wait (taking the GIL, or handing it
        # over on its switch condition), down to the futex
        frames, at = contend_frames(labels)
        below = frames[at + 1:]
        assert below, labels
        if is_futex_leaf(below[-1]):
            in_futex += count
    assert waiting > 0, raw
    assert in_futex >= waiting * 0.9, "futex leaf in %d of %d waiting samples:\n%s" % (in_futex, waiting, raw)
    tries = int(QUIET_TRIES_RE.search(stderr).group(1))
    if interp.version[:2] < (3, 7):
        assert unpaused == 0, stderr
    else:
        # How many waiters are asleep at a tick, rather than woken and waiting for a CPU, depends
        # on the machine's load (alone, 0.83-0.87 of the waiting samples; beside the rest of the
        # suite, 0.4). What the read asleep must do is stand when tried: the thread found asleep
        # stays so through the copy, and the GIL does not change hands meanwhile.
        assert tries > 0 and unpaused >= tries * 0.7, \
            "unpaused %d of %d tried, waiting samples %d, pauses %d" % (unpaused, tries, waiting, pauses)


WATCHED_RE = re.compile(r"^mixspy-stats: .* watched (\d+) off_cpu \d+ ", re.M)


def perf_events_allowed(regs=False):
    """Can this process open a perf event of its own (what mixspy's switch watches are)? regs:
    one that samples the user registers at each switch out (--native's watches), which needs
    kernel samples."""
    import ctypes
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    attr = bytearray(128)
    # type PERF_TYPE_SOFTWARE (1), size, config PERF_COUNT_SW_DUMMY (9); flags: context_switch
    # (bit 34), exclude_kernel (bit 5), exclude_hv (bit 6)
    struct.pack_into("<IIQ", attr, 0, 1, 128, 9)
    struct.pack_into("<Q", attr, 40, (1 << 34) | (1 << 5) | (1 << 6))
    if regs:
        # config PERF_COUNT_SW_CONTEXT_SWITCHES (3), sample_period 1, sample_type
        # PERF_SAMPLE_REGS_USER (1 << 12), kernel samples let in, sample_regs_user IP and SP
        struct.pack_into("<IIQQQ", attr, 0, 1, 128, 3, 1, 1 << 12)
        struct.pack_into("<Q", attr, 40, (1 << 34) | (1 << 6))
        struct.pack_into("<Q", attr, 80, (1 << 7) | (1 << 8))
    buf = (ctypes.c_char * 128).from_buffer(attr)
    fd = libc.syscall(298, buf, 0, -1, -1, 8)   # perf_event_open, PERF_FLAG_FD_CLOEXEC
    if fd < 0:
        return False
    os.close(fd)
    return True


@pytest.mark.parametrize("mode", ["python", "native"])
def test_woken_in_c_is_seen_at_once(interp, start, ext_dir, tmp_path, mode):
    """A thread asleep for a while is kept asleep from tick to tick without reading it again while
    its switch watch shows it was not on a CPU (target_watch): threads that wake from a blocking
    read in C and then work in C with the GIL released - nothing a Python reader could see moves -
    are sampled as working (released, not idle) from then on; with --native, their stacks go from
    the read to c_kernel."""
    go = str(tmp_path / "wake-now")
    report = str(tmp_path / "waits.txt")
    burn = 1.5
    w = start(interp, "wake_burn.py", ["--ext", ext_dir, "--go", go, "--threads", 3, "--burn", burn,
                                       "--seconds", 60, "--report", report])
    out = str(tmp_path / "woken.txt")
    args = ["record", "-r", 100, "-d", 3, "-f", "raw", "--gil-split", "--threads", "-o", out, "--pid", w.pid]
    if mode == "native":
        args[1:1] = ["--native"]
    args[1:1] = ["--idle"]   # the main thread, asleep, is sampled every tick: the count of ticks
    def wake():
        # The scenario, not a readiness wait: the sleepers sleep through ~60 ticks first, long
        # enough to be watched (from their second tick asleep on).
        time.sleep(0.6)
        with open(go, "w"):   # the workload's FIFO: opening it wakes the sleepers
            pass
    rc, err = harness.record_while(args, wake, env={"MIXSPY_STATS": "1"})
    assert_not_stopped(w.pid)
    assert rc == 0, err
    with open(out, encoding="utf-8") as f:
        raw = f.read()
    script = os.path.join(harness.NATIVE_EXT, "wake_burn.py")
    wake_line = harness.marker_line(script, "# WAKE-LINE")
    open_line = harness.marker_line(script, "# MAIN-OPEN")
    working, idle, before = collections.Counter(), collections.Counter(), 0
    for labels, count in raw_stacks(raw):
        name = thread_name_of(labels[1])
        frames = [harness.parse_frame_label(x) for x in labels[2:]]
        names = [f.name for f in frames]
        if name == "MainThread" and "main" in names and frames[names.index("main")].line == open_line:
            before += count   # ticks before the wake: the main thread still opening the FIFO
        if not name or not name.startswith("sleeper-") or "sleeper" not in names:
            continue   # not a sleeper, or one on its way out once done
        assert frames[names.index("sleeper")].line == wake_line, labels
        if labels[0] == "idle":
            idle[name] += count
        elif labels[0] == "released" and (mode == "python" or "c_burn_for" in names):
            # --native: at work in c_burn_for (in c_kernel, or reading the clock); a sample
            # just after the wake may still be on its way out of the read
            working[name] += count
    # Each tick samples each sleeper once: asleep (idle) only in the ticks before the wake (a
    # tick or two more while the main thread writes to the pipes), working from then on. A wake
    # that went unseen leaves them idle every tick and working never. (How many ticks they work
    # depends on the CPU they get: three burners on two CPUs beside other tests can leave mixspy
    # a few ticks a second while they burn, so the count of working samples is not held to the
    # count of ticks.)
    # A sleeper woken but still waiting for a CPU has not been switched in, which is all its
    # watch notes: it reads asleep until it runs (as documented: kept asleep by its watch). So
    # the ticks it may read idle after the writes are bounded by its wait for a CPU, which the
    # workload measures (the writes to its read back in user space): under CI's parallel load
    # that once took 70-80 ms, 8 ticks, for all three.
    waits = harness.wait_for_file_content(report, lambda t: len(t.split()) >= 3, timeout=20)
    assert waits, "the workload did not report its sleepers' waits"
    wait = float(waits.split()[2])
    late = 3 + int(math.ceil(wait * 100))
    assert before > 20, "the main thread's wait before the wake was not sampled:\n%s" % raw
    assert sorted(working) == ["sleeper-0", "sleeper-1", "sleeper-2"] and min(working.values()) >= 5, \
        "samples working per sleeper: %r\n%s" % (dict(working), raw)
    assert sorted(idle) == ["sleeper-0", "sleeper-1", "sleeper-2"] and max(idle.values()) <= before + late, \
        "samples idle per sleeper: %r, ticks before the wake %d, longest wait for a CPU %.3fs\n%s" % (
            dict(idle), before, wait, raw)
    # Python-only (3.7+), the sleepers sleep through ticks unpaused and are watched. (Before 3.7,
    # --idle pauses every thread it samples - no GIL hand-over count to read sleepers by - and a
    # pause wakes a sleeper; --native pauses a sleeper whose walk from its syscall's pc and sp
    # needs another register, as c_wait_then_burn's does in some builds.)
    if perf_events_allowed() and mode == "python" and interp.major_minor >= (3, 7):
        m = WATCHED_RE.search(err)
        assert m and int(m.group(1)) > 0, "no thread state kept by a switch watch:\n%s" % err


OFF_CPU_RE = re.compile(r"^mixspy-stats: .* off_cpu (\d+) ", re.M)


def record_beside_hogs(interp, start, tmp_path, threads, native=False):
    """gil_contention.py with `threads` contenders, recorded Python-only (or --native) at 100 Hz
    for 3 s with --gil-split --threads and MIXSPY_STATS=1 while two CPU hogs keep both CPUs busy
    (so threads are often off their CPU while runnable). Skips where perf events (switch watches;
    --native, ones that sample registers) are not allowed. Returns (the raw output's path,
    mixspy's stderr)."""
    if not perf_events_allowed(regs=native):
        pytest.skip("perf events are not allowed here: no switch watches" + (" with registers" if native else ""))
    import subprocess
    import sys
    w = start(interp, "gil_contention.py", ["--threads", threads, "--seconds", 120])
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        out = str(tmp_path / "gil.txt")
        rc, _, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", 3, "--rate", 100, "--format", "raw",
                                    "--gil-split", "--threads", "--output", out] + (["--native"] if native else []),
                                   timeout=45, env={"MIXSPY_STATS": "1"})
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert_not_stopped(w.pid)
    assert rc == 0, stderr
    # --duration counts from the first sample: however long the first tick took under this load
    # (--native loads debug info there: seconds at times on 2.7, which once left one tick), the
    # samples span the duration
    m = re.search(r"^mixspy-stats: .* first_sample_mono ([\d.]+) .* last_sample_mono ([\d.]+) ", stderr, re.M)
    assert m, stderr
    assert float(m.group(2)) - float(m.group(1)) >= 2.0, "samples span less than 2 s of 3:\n%s" % stderr
    return out, stderr


NOTED_RE = re.compile(r"^mixspy-stats: .* noted (\d+)\b", re.M)


@pytest.mark.parametrize("mode", ["python", "native"])
def test_waiters_noted_by_their_watch(interp, start, tmp_path, mode):
    """A GIL waiter is watched, and while the last note of its watch is a switch out to sleep with
    the GIL's address as its system call's first argument (rdi, which the watch notes with sp and
    pc; --native, with the other registers), it is taken for asleep on the GIL without reading its
    syscall file (noted; --native, its stack is then read asleep from that sp).
    Each contender naps 0.5 s on an event of its own by turns: one that waited, took the GIL and
    went to sleep on anything else must not pass for a waiter. With --idle, a napping contender
    is idle but for its wait to take the GIL back as its nap ends (a switch interval or so, a few
    percent of a nap; 2.7's timed wait polls, taking the GIL between sleeps); one still taken for
    a waiter would stay so for the whole nap. Every other sample is in contend() at its loop."""
    if not perf_events_allowed(regs=True):
        pytest.skip("perf events with registers are not allowed here: no notes of a sleep's futex")
    w = start(interp, "gil_contention.py", ["--threads", 4, "--nap", 0.5, "--seconds", 120])
    out = str(tmp_path / "gil.txt")
    rc, _, stderr = run_mixspy(["record", "--pid", w.pid, "--duration", 3, "--rate", 100, "--format", "raw",
                                "--gil-split", "--threads", "--idle", "--output", out]
                               + (["--native"] if mode == "native" else []),
                               timeout=60, env={"MIXSPY_STATS": "1"})
    assert_not_stopped(w.pid)
    assert rc == 0, stderr
    m = NOTED_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no GIL waiter was taken from its watch's note:\n%s" % stderr
    napping = collections.Counter()
    waiting = 0
    for state in STATES:
        raw, stacks = contender_stacks(out, state)
        for labels, count in stacks:
            if any(harness.parse_frame_label(x).name == "napping" for x in labels[2:]):
                napping[state] += count
                continue
            contend_frames(labels)
            waiting += count if state == "waiting" else 0
    assert waiting > 0, raw
    nap_total = sum(napping.values())
    assert nap_total >= 200, "contenders seen napping: %s\n%s" % (dict(napping), raw)
    floor = 0.75 if interp.version[0] == 2 else 0.9
    assert napping["idle"] >= floor * nap_total, "napping contenders: %s" % dict(napping)


def check_contender_chain(labels):
    """A --gil-split --threads stack of a contender: contend() at its loop's lines, innermost,
    with the thread's start below it."""
    frames = [harness.parse_frame_label(x) for x in labels[2:]]
    names = [f.name for f in frames]
    assert names[-1] == "contend" and frames[-1].line in contend_line_range(), labels
    assert any("bootstrap" in n for n in names[:-1]), labels


def test_holder_off_cpu_read_where_it_stands(interp, start, tmp_path):
    """Python-only, the GIL's holder taken off its CPU while runnable (two CPU hogs beside it make
    that frequent) is read without a pause when its switch watch's last note says so and its head
    does not move during the read. Its samples are what a pause shows: held, in contend() at its
    line, the whole chain down from the thread's start."""
    out, stderr = record_beside_hogs(interp, start, tmp_path, 2)
    m = OFF_CPU_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no holder read off its CPU:\n%s" % stderr
    raw, stacks = contender_stacks(out, "held")
    held = 0
    for labels, count in stacks:
        check_contender_chain(labels)
        held += count
    assert held >= 50, "held samples of the contenders: %d\n%s" % (held, raw)


OFF_CPU_WAITERS_RE = re.compile(r"^mixspy-stats: .* off_cpu_waiters (\d+) ", re.M)


def check_split_of_six(interp, total, raw):
    """The GIL states of six contenders' samples (total: state -> count): at least 100 of them,
    and, 3.x, the design's split - one of six holds the GIL: held 17%, waiting 83%, released 0,
    within TOLERANCE points (2.7's GIL is free between its drops and takes: see
    test_contention_waiting)."""
    n = sum(total.values())
    assert n >= 100, "%s: contender samples: %s\n%s" % (interp, dict(total), raw)
    if interp.version[0] == 2:
        return
    for state, design in (("held", 100.0 / 6), ("waiting", 500.0 / 6), ("released", 0.0)):
        share = 100.0 * total[state] / n
        assert abs(share - design) <= TOLERANCE, "%s: %s %.1f%% (design %.1f%%): %s" % (interp, state, share, design,
                                                                                    dict(total))


def is_futex_leaf(leaf):
    """A native leaf asleep on a futex: libc's futex wait (or the wake of a GIL hand-over); a libc
    without symbols (beside Debian unstable's 3.14) names it by address only."""
    return "futex" in leaf.name or "lll_" in leaf.name or (leaf.file or "").startswith("libc.so")


def test_woken_waiters_read_off_cpu(interp, start, tmp_path):
    """Python-only, a GIL waiter woken to take the GIL and not yet run (it waits for a CPU: two CPU
    hogs beside six contenders make that frequent) is read where it stands, not paused, when the
    last sleep we read of it was on the GIL's futex (read_off_cpu). Such samples are what a pause
    showed: waiting for the GIL, in contend() at its line, the chain down from the thread's start;
    and the contenders' split stays the design's (one of six holds the GIL: held 17%, waiting
    83%, within 10 points)."""
    out, stderr = record_beside_hogs(interp, start, tmp_path, 6)
    m = OFF_CPU_WAITERS_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no GIL waiter read off its CPU:\n%s" % stderr
    total = collections.Counter()
    for state in STATES:
        raw, stacks = contender_stacks(out, state)
        for labels, count in stacks:
            check_contender_chain(labels)
            total[state] += count
    check_split_of_six(interp, total, raw)


def test_native_off_cpu_read_from_watch_regs(interp, start, tmp_path):
    """--native, a thread off its CPU - the GIL's holder preempted, or a GIL waiter woken and not
    yet run - is read where it stands, not paused: its switch watch noted its user registers as
    it left its CPU, and its stack, which it has not been back to, is copied from that sp; the read
    stands if the watch's head did not move meanwhile. Its merged stack is the one a pause shows:
    contend() over native frames only (a waiter's ending in the futex wait of the GIL), the
    thread's start below, no merge mismatch; the contenders' split stays the design's. A pause
    of the watched holder takes the registers its stop's switch out noted (no PTRACE_GETREGS);
    the same checks hold of those samples."""
    out, stderr = record_beside_hogs(interp, start, tmp_path, 6, native=True)
    m = OFF_CPU_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no thread read off its CPU:\n%s" % stderr
    # a pause of the holder (watched) takes the registers its stop noted, not PTRACE_GETREGS
    m = STOP_REGS_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no pause took its registers from the watch:\n%s" % stderr
    m = OFF_CPU_WAITERS_RE.search(stderr)
    assert m and int(m.group(1)) > 0, "no GIL waiter read off its CPU:\n%s" % stderr
    mm = re.search(r"Native merge mismatches: (\d+) of (\d+) samples", stderr)
    assert mm and int(mm.group(1)) == 0, stderr
    total = collections.Counter()
    in_futex = 0
    for state in STATES:
        raw, stacks = contender_stacks(out, state)
        for labels, count in stacks:
            frames, at = contend_frames(labels)
            assert any("bootstrap" in f.name for f in frames[:at]), labels
            if state == "waiting" and at + 1 < len(frames) and is_futex_leaf(frames[-1]):
                in_futex += count
            total[state] += count
    assert in_futex >= 0.9 * total["waiting"], "futex leaf in %d of %d waiting samples" % (in_futex, total["waiting"])
    check_split_of_six(interp, total, raw)
