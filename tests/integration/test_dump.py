"""test_dump.py - `mixspy dump` against real workloads on every interpreter (py-spy §6.3, §6.4).

Expected stacks come from the workloads themselves (traceback.extract_stack() taken on the line where
they block) or from marker comments in their source, never from mixspy's own output.
"""
import json
import os
import re
import subprocess
import time

import pytest

import harness
from harness import assert_not_stopped, parse_dump_json, parse_dump_text, run_mixspy

KNOWN_STACK = os.path.join(harness.NATIVE_EXT, "known_stack.py")
THREADS = os.path.join(harness.NATIVE_EXT, "threads.py")
MIXED = os.path.join(harness.NATIVE_EXT, "mixed_native.py")
HEX_TID = re.compile(r"^0x[0-9A-F]+$")


def expected_frames(expect):
    """(name, short file, line) innermost first, from a workload's --expect JSON."""
    return [(f["name"], os.path.basename(f["file"]), f["line"]) for f in reversed(expect["frames"])]


def got_frames(thread):
    return [(f["name"], f["file"], f["line"]) for f in thread.frames]


def task_ids(pid):
    return {int(t) for t in os.listdir("/proc/%d/task" % pid)}


def check_tid(shown, pid, is_main):
    """Thread ids print as the OS tid in decimal, or as the pthread id in 0x+uppercase hex (§2.5)."""
    if shown.isdigit():
        tid = int(shown)
        assert tid in task_ids(pid), "thread id %s is not a thread of %d" % (shown, pid)
        if is_main:
            assert tid == pid, "main thread shows tid %s, expected %d" % (shown, pid)
    else:
        assert HEX_TID.match(shown), "thread id %r is neither decimal nor 0x+uppercase hex" % shown
        assert int(shown, 16) != 0


def method_name_matches(interp, shown, cls, name):
    if interp.major_minor >= (3, 11) and shown == cls + "." + name:
        return True
    return shown == name


def dump(pid, *extra, **kw):
    rc, out, err = run_mixspy(["dump", "--pid", pid] + list(extra), timeout=kw.get("timeout", 30))
    assert_not_stopped(pid)
    assert rc == 0, "mixspy dump failed (rc %d):\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
    return out


def start_known_stack(start, interp, tmp_path):
    expect_path = str(tmp_path / "expect.json")
    w = start(interp, "known_stack.py", ["--expect", expect_path, "--seconds", 120])
    wait_asleep(w.pid)
    with open(expect_path) as f:
        return w, json.load(f)


# x86_64: select, poll, nanosleep, clock_nanosleep, pselect6 - what time.sleep waits in
SLEEP_SYSCALLS = {23, 7, 35, 230, 270}


def wait_asleep(pid, timeout=20.0):
    """The ready file is written just before the workload's main thread goes to sleep: on a loaded
    machine it may still be on its way there (running, holding the GIL) when the test looks. Wait
    until /proc says it sleeps in time.sleep's system call."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/syscall" % pid) as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            nr = ""
        if nr.lstrip("-").isdigit() and int(nr) in SLEEP_SYSCALLS:
            return
        time.sleep(0.01)
    pytest.fail("the workload's main thread did not go to sleep within %s s" % timeout, pytrace=False)


# ---------------------------------------------------------------------------------------------
# Text output

def test_dump_known_stack(interp, start, tmp_path):
    w, expect = start_known_stack(start, interp, tmp_path)
    out = dump(w.pid)
    d = parse_dump_text(out)

    assert d.pid == w.pid, out
    assert d.cmdline == " ".join(harness.cmdline_of(w.pid)), out
    assert d.python_version == expect["python_version"], out
    assert d.binary == os.readlink("/proc/%d/exe" % w.pid), out

    assert len(d.threads) == 1, out
    t = d.threads[0]
    assert t.name == "MainThread", out
    assert t.status == "idle", "a thread blocked in time.sleep must be idle:\n" + out
    check_tid(t.tid, w.pid, is_main=True)
    # Exactly Python's own view: names innermost first, short file names, lines.
    assert got_frames(t) == expected_frames(expect), out
    assert got_frames(t)[0] == ("inner", "known_stack.py",
                                harness.marker_line(KNOWN_STACK, "# BLOCK-HERE"))


def test_dump_is_repeatable(interp, start, tmp_path):
    w, expect = start_known_stack(start, interp, tmp_path)
    for _ in range(3):
        d = parse_dump_text(dump(w.pid))
        assert got_frames(d.threads[0]) == expected_frames(expect)
    assert w.alive(), "the target died after 3 dumps; stderr:\n" + w.stderr()


def cpu_ticks(pid):
    """utime + stime of the whole process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_dump_target_keeps_running(interp, start):
    """After dumps of a process with busy threads, it goes on using CPU (nothing left stopped)."""
    w = start(interp, "threads.py", ["--threads", 2, "--seconds", 120])
    for _ in range(3):
        names = [t.name for t in parse_dump_text(dump(w.pid)).threads]
        assert names == ["MainThread", "worker-0", "worker-1"]
    before = cpu_ticks(w.pid)
    deadline = time.monotonic() + 10
    while cpu_ticks(w.pid) < before + 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_ticks(w.pid) >= before + 20, "the target stopped using CPU after mixspy dump"
    assert_not_stopped(w.pid)


def test_dump_threads(interp, start):
    w = start(interp, "threads.py", ["--threads", 4, "--seconds", 120])
    kinds = dict(kv.split("=") for kv in w.ready_lines[2].split())
    # A napping thread wakes every 0.5 s and then competes with two spinning threads for the
    # GIL; a dump that lands in that moment sees it runnable. The main thread may still be
    # returning from signal_ready() (the ready file exists before the call returns) and waits
    # for the GIL behind the spinners on a loaded machine. So dump until every sleeper (main
    # thread at MAIN-WAIT included) reads idle, for at most 20 s; the asserts below then judge
    # the last dump.
    main_wait = harness.marker_line(THREADS, "# MAIN-WAIT")
    deadline = time.monotonic() + 20
    while True:
        out = dump(w.pid)
        d = parse_dump_text(out)
        sleepers = [d.thread(n) for n, k in kinds.items() if k == "nap"]
        main = d.thread("MainThread")
        settled = bool(main.frames) and main.frames[0]["line"] == main_wait
        if settled and all(t.status == "idle" for t in sleepers + [main]):
            break
        if time.monotonic() > deadline:
            break

    # Reverse of the interpreter's thread list = creation order, main thread first.
    assert [t.name for t in d.threads] == ["MainThread", "worker-0", "worker-1", "worker-2",
                                           "worker-3"], out
    tids = set()
    for t in d.threads:
        check_tid(t.tid, w.pid, is_main=t.name == "MainThread")
        tids.add(t.tid)
    assert len(tids) == len(d.threads), "thread ids repeat:\n" + out

    main = d.thread("MainThread")
    assert main.status == "idle", out
    assert main.frames[0]["name"] == "main" and main.frames[0]["file"] == "threads.py", out
    assert main.frames[0]["line"] == main_wait, out
    assert main.frames[-1]["name"] == "<module>", out

    nap_line = harness.marker_line(THREADS, "# NAP-LINE")
    for name, kind in kinds.items():
        t = d.thread(name)
        assert t.frames, "thread %s has no frames:\n%s" % (name, out)
        leaf = t.frames[0]
        assert (leaf["name"], leaf["file"]) == (kind, "threads.py"), out
        if kind == "nap":
            assert leaf["line"] == nap_line, out
            assert t.status == "idle", "sleeping %s must be idle:\n%s" % (name, out)
        # Every worker is rooted in threading's bootstrap (a method: the qualified name
        # Thread._bootstrap is accepted where code objects have co_qualname, 3.11+).
        # Python 2 spells it __bootstrap.
        bootstrap = "__bootstrap" if interp.version[0] == 2 else "_bootstrap"
        assert method_name_matches(interp, t.frames[-1]["name"], "Thread", bootstrap), out
        assert t.frames[-1]["file"] == "threading.py", out


# ---------------------------------------------------------------------------------------------
# --locals

def expected_locals(interp):
    """name -> (kind, expected): kind 'eq' compares the repr exactly, 're' matches a regex."""
    dict_repr = '{"a": False, "b": (1, 2, 3)}' if interp.major_minor >= (3, 6) else "dict"
    return [
        ("none_v", "eq", "None"),
        ("true_v", "eq", "True"),
        ("false_v", "eq", "False"),
        ("int_v", "eq", "42"),
        ("neg_v", "eq", "-1234"),
        ("big_v", "eq", "123456789123456789"),
        ("huge_v", "eq", "+bigint"),
        ("neg_huge_v", "eq", "-bigint"),
        ("x", "eq", "3.1415"),
        ("s", "eq", '"hello"'),
        ("empty_s", "eq", '""'),
        ("u", "eq", '"h\u00e9llo w\u00f6rld \u2603"'),
        ("nl", "eq", '"line1\\nline2"'),
        # 300 characters do not fit the 128-character budget: cut, with an ellipsis.
        ("long_s", "re", r'^"x{40,127}\.\.\."?$'),
        # bytes: a b"..." rendering or the generic <type at 0xADDR> form.
        ("b", "re", r'^(b?"raw-bytes"|<(bytes|str) at 0x[0-9a-fA-F]+>)$'),
        ("t", "eq", '("a", "b", "c")'),
        ("l", "eq", "[-1234, 5678]"),
        ("d", "eq", dict_repr),
        ("st", "re", r"^(\{1\}|<set at 0x[0-9a-fA-F]+>)$"),
    ]


def test_dump_locals(interp, start):
    w = start(interp, "locals.py", ["--seconds", 120])
    out = dump(w.pid, "--locals")
    d = parse_dump_text(out)
    t = d.thread("MainThread")
    assert t.frames[0]["name"] == "show_locals", out
    frame = t.frames[0]
    assert frame["line"] == harness.marker_line(os.path.join(harness.NATIVE_EXT, "locals.py"),
                                                "# LOCALS-HERE"), out

    assert list(frame["args"]) == ["count", "label", "args"], out
    assert frame["args"]["count"] == "7", out
    assert frame["args"]["label"] == '"args"', out
    assert re.match(r"^<Namespace at 0x[0-9a-fA-F]+>$", frame["args"]["args"]), out

    want = expected_locals(interp)
    assert list(frame["locals"]) == [name for name, _, _ in want], out
    for name, kind, value in want:
        got = frame["locals"][name]
        if kind == "eq":
            assert got == value, "%s: got %r, expected %r\n%s" % (name, got, value, out)
        else:
            assert re.match(value, got), "%s: got %r, expected /%s/\n%s" % (name, got, value, out)
    # Locals of the outer frame are shown too: main() has `args`.
    main = [f for f in t.frames if f["name"] == "main"]
    assert main and "args" in main[0]["locals"], out


def test_dump_locals_json(interp, start):
    w = start(interp, "locals.py", ["--seconds", 120])
    traces = parse_dump_json(dump(w.pid, "--locals", "--json"))
    (trace,) = [t for t in traces if t["thread_name"] == "MainThread"]
    frame = trace["frames"][0]
    assert frame["name"] == "show_locals"
    variables = {v["name"]: v for v in frame["locals"]}
    assert [v["name"] for v in frame["locals"] if v["arg"]] == ["count", "label", "args"]
    assert variables["x"]["repr"] == "3.1415" and variables["x"]["arg"] is False
    assert variables["count"]["repr"] == "7"
    assert variables["l"]["repr"] == "[-1234, 5678]"
    assert all(isinstance(v["addr"], int) and v["addr"] != 0 for v in frame["locals"])


# ---------------------------------------------------------------------------------------------
# --json

def test_dump_json(interp, start, tmp_path):
    w, expect = start_known_stack(start, interp, tmp_path)
    traces = parse_dump_json(dump(w.pid, "--json"))
    assert len(traces) == 1, traces
    t = traces[0]
    assert t["pid"] == w.pid
    assert t["thread_name"] == "MainThread"
    assert t["os_thread_id"] == w.pid, "the main thread's OS id is the pid"
    assert t["thread_id"] != 0
    assert t["active"] is False and t["owns_gil"] is False
    assert t["process_info"] is None
    got = [(f["name"], f["short_filename"], f["line"]) for f in t["frames"]]
    assert got == expected_frames(expect)
    full = [f["file"] for f in reversed(expect["frames"])]
    assert [f["filename"] for f in t["frames"]] == full
    for f in t["frames"]:
        assert f["module"] is None, "a Python frame has no module: %r" % f
        assert f["locals"] is None, "no locals without --locals: %r" % f

    # The text header shows the same thread: pthread id in hex, or the OS tid in decimal.
    shown = parse_dump_text(dump(w.pid)).threads[0].tid
    if shown.isdigit():
        assert int(shown) == t["os_thread_id"]
    else:
        assert int(shown, 16) == t["thread_id"]


# ---------------------------------------------------------------------------------------------
# Non-ASCII function and file names

def test_dump_unicode_names(interp, start, tmp_path):
    expect_path = str(tmp_path / "expect.json")
    w = start(interp, "unicode_names.py", ["--expect", expect_path, "--seconds", 120])
    with open(expect_path, encoding="utf-8") as f:
        expect = json.load(f)
    out = dump(w.pid)
    t = parse_dump_text(out).thread("MainThread")
    assert got_frames(t) == expected_frames(expect), out
    assert t.frames[0]["name"] == expect["func_name"], out
    assert t.frames[0]["file"] == expect["file_name"], out

    traces = parse_dump_json(dump(w.pid, "--json"))
    leaf = traces[0]["frames"][0]
    assert leaf["name"] == expect["func_name"]
    assert leaf["filename"] == expect["frames"][-1]["file"]


# ---------------------------------------------------------------------------------------------
# --native: Python and C frames merged

NATIVE_SHAPES = {
    "outer": ["c_kernel", "c_middle", "c_entry", "py_outer", "main", "<module>"],
    "callback": ["c_kernel", "c_middle", "c_entry", "py_callback", "c_call_back", "py_caller",
                 "main", "<module>"],
}


@pytest.mark.parametrize("mode", sorted(NATIVE_SHAPES))
def test_dump_native(interp, start, ext_dir, mode):
    w = start(interp, "mixed_native.py", ["--ext", ext_dir, "--mode", mode, "--seconds", 120])
    want = NATIVE_SHAPES[mode]
    # One dump is one sample; the loop spends nearly all its time in c_kernel, so a few tries are
    # enough to catch it there.
    attempts = []
    for _ in range(10):
        out = dump(w.pid, "--native")
        t = parse_dump_text(out).thread("MainThread")
        attempts.append(out)
        if t.frames and t.frames[0]["name"] == "c_kernel":
            break
    else:
        pytest.fail("c_kernel never the leaf in 10 dumps; last:\n" + attempts[-1])

    names = t.names()
    assert names[:len(want)] == want, out
    # Anything below <module> may only be native start-up code, never Python.
    for f in t.frames[len(want):]:
        assert not (f["file"] or "").endswith(".py"), out

    by_name = {f["name"]: f for f in t.frames[:len(want)]}
    assert by_name["c_kernel"]["file"] == "mixspy_testext.c", out
    assert by_name["c_kernel"]["line"] == harness.hot_kernel_line(), out
    for n in ("c_middle", "c_entry") + (("c_call_back",) if mode == "callback" else ()):
        assert by_name[n]["file"] == "mixspy_testext.c", out
    marks = {"py_outer": "# OUTER-CALLS-C", "py_callback": "# CALLBACK-CALLS-C",
             "py_caller": "# CALLER-CALLS-C",
             "main": "# MAIN-CALLS-OUTER" if mode == "outer" else "# MAIN-CALLS-CALLER"}
    for n, mark in marks.items():
        if n in by_name:
            assert (by_name[n]["file"], by_name[n]["line"]) == \
                ("mixed_native.py", harness.marker_line(MIXED, mark)), out
    assert t.status.startswith("active"), "a thread in c_kernel is running:\n" + out


# ---------------------------------------------------------------------------------------------
# Errors: one line on stderr, non-zero exit, nothing on stdout

def one_line_error(rc, out, err):
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc != 0, "expected failure, got rc 0\nstdout:\n%s" % out
    assert len(lines) == 1, "expected one line on stderr, got %d:\n%s" % (len(lines), err)
    assert out.strip() == "", "expected nothing on stdout, got:\n%s" % out
    return lines[0]


def test_dump_not_python(tmp_path):
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        rc, out, err = run_mixspy(["dump", "--pid", p.pid])
        assert_not_stopped(p.pid)
        one_line_error(rc, out, err)
        assert p.poll() is None, "mixspy killed the non-Python target"
    finally:
        p.kill()
        p.wait()


def test_dump_dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    assert not os.path.exists("/proc/%d" % p.pid)
    rc, out, err = run_mixspy(["dump", "--pid", p.pid])
    one_line_error(rc, out, err)


@pytest.mark.parametrize("args", [
    ["dump"],
    ["dump", "--pid"],
    ["dump", "--pid", "not-a-pid"],
    ["dump", "--pid", "12x"],
    ["dump", "--pid", "1", "--no-such-flag"],
    ["frobnicate", "--pid", "1"],
    ["dump", "--pid", "1", "--rate", "100"],       # dump takes no --rate (§1.4)
    ["dump", "--pid", "1", "stray-positional"],
], ids=lambda a: " ".join(a))
def test_garbage_arguments(args):
    rc, out, err = run_mixspy(args)
    one_line_error(rc, out, err)
    assert not re.match(r"^(Thread|Process) ", out)


def test_dump_hex_pid(debian_interp, start, tmp_path):
    w, expect = start_known_stack(start, debian_interp, tmp_path)
    rc, out, err = run_mixspy(["dump", "--pid", hex(w.pid)])   # py-spy 0.4.1 takes 0x pids
    assert_not_stopped(w.pid)
    assert rc == 0, err
    d = parse_dump_text(out)
    assert d.pid == w.pid
    assert got_frames(d.threads[0]) == expected_frames(expect)
