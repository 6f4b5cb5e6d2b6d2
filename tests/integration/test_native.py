"""test_native.py - `record --native` and `dump --native`: native and Python frames merged, on every
interpreter (Debian's python3 and the unpacked 3.14 included).

Expected shapes come from the workloads: the call chains documented in mixed_native.py, the
HOT-KERNEL line of mixspy_testext.c, the HOT-LOOP line of cyfast.pyx. Each workload runs a few
seconds of sampling at most.
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import harness
from harness import assert_not_stopped, parse_collapsed, parse_dump_text, run_mixspy

MIXED = os.path.join(harness.NATIVE_EXT, "mixed_native.py")
CYTHON_DIR = os.path.join(harness.NATIVE_EXT, "cython")
CYFAST_PYX = os.path.join(CYTHON_DIR, "cyfast.pyx")
MISMATCHES = re.compile(r"Native merge mismatches: (\d+) of (\d+) samples")
INSN = re.compile(r"^ {8}=> 0x[0-9a-f]+: \S.*$")

# Root first, as raw output writes them.
OUTER = ["<module>", "main", "py_outer", "c_entry", "c_middle", "c_kernel"]
CALLBACK = ["<module>", "main", "py_caller", "c_call_back", "py_callback", "c_entry", "c_middle",
            "c_kernel"]


def record_native(pid, tmp_path, seconds=2, extra=()):
    """record --native -f raw for `seconds`; returns (stacks Counter, stderr, mismatches, samples).
    A mismatched sample's frames are in stderr (MIXSPY_DEBUG_MERGE), for the failure's message."""
    out = str(tmp_path / ("native-%d.txt" % time.monotonic_ns()))
    rc, _, err = run_mixspy(["record", "--native", "-d", seconds, "-f", "raw", "-o", out, "--pid", pid]
                            + list(extra), timeout=60, env={"MIXSPY_DEBUG_MERGE": "1"})
    assert_not_stopped(pid)
    assert rc == 0, "mixspy record --native failed (rc %d):\n%s" % (rc, err)
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    m = MISMATCHES.search(err)
    assert m, "no merge mismatch count in mixspy's output:\n" + err
    return stacks, err, int(m.group(1)), int(m.group(2))


def names_of(stack):
    return [f.name for f in stack]


def show(stacks, limit=12):
    return "\n".join("%5d  %s" % (n, ";".join(names_of(s))) for s, n in stacks.most_common(limit))


# ---------------------------------------------------------------------------------------------
# mixed_native.py: Python -> C -> C and C -> Python -> C

def test_record_native_mixed(interp, start, ext_dir, tmp_path):
    w = start(interp, "mixed_native.py", ["--ext", ext_dir, "--seconds", 30])
    stacks, err, mismatches, samples = record_native(w.pid, tmp_path)
    assert samples >= 50, "too few samples (%d):\n%s" % (samples, err)
    assert mismatches == 0, "merge mismatches:\n%s\n%s" % (err, show(stacks))

    seen = {"outer": 0, "callback": 0}
    leaves = []
    for stack, n in stacks.items():
        names = names_of(stack)
        if "c_kernel" not in names:
            continue
        # Every sample in the kernel has exactly one of the two documented shapes.
        assert names in (OUTER, CALLBACK), "unexpected stack %s\nall:\n%s" % (names, show(stacks))
        seen["outer" if names == OUTER else "callback"] += n
        leaves.append((stack[-1].file, stack[-1].line, n))
        for f in stack:
            if f.name.startswith("c_"):
                assert f.file == "mixspy_testext.c", stack
            else:
                assert f.file == "mixed_native.py", stack
    harness.check_kernel_leaves(leaves)
    in_kernel = seen["outer"] + seen["callback"]
    assert in_kernel >= samples * 0.8, "only %d of %d samples in c_kernel:\n%s" % (in_kernel, samples,
                                                                                  show(stacks))
    assert min(seen.values()) >= samples * 0.15, "one shape missing: %s\n%s" % (seen, show(stacks))


def test_dump_native_mixed(interp, start, ext_dir):
    w = start(interp, "mixed_native.py", ["--ext", ext_dir, "--seconds", 30])
    hot = harness.hot_kernel_line()
    for _ in range(10):
        rc, out, err = run_mixspy(["dump", "--native", "--pid", w.pid])
        assert_not_stopped(w.pid)
        assert rc == 0, err
        t = parse_dump_text(out).thread("MainThread")
        if t.frames and t.frames[0]["name"] == "c_kernel":
            break
    else:
        pytest.fail("c_kernel never the leaf in 10 dumps; last:\n" + out)
    names = t.names()
    want = [n for n in (OUTER if "py_outer" in names else CALLBACK)][::-1]
    assert names[:len(want)] == want, out
    assert (t.frames[0]["file"], t.frames[0]["line"]) == ("mixspy_testext.c", hot), out
    # The instruction at the leaf's pc (capstone): right under the leaf frame, and only there.
    assert "insn" in t.frames[0], out
    assert all("insn" not in f for f in t.frames[1:]), out
    pc, text = t.frames[0]["insn"]
    assert pc > 0x1000 and re.match(r"^[a-z][a-z0-9]*( |$)", text), out


def test_record_native_perf_trampolines(interp, ext_dir, tmp_path):
    """3.12+ `-X perf` puts a trampoline in anonymous code under each eval call: still merged
    exactly, and no trampoline shows up as a frame."""
    if interp.major_minor < (3, 12):
        pytest.skip("%s: -X perf trampolines exist from 3.12 on" % interp.id)
    with spawned([interp.path, "-X", "perf", MIXED, "--ext", ext_dir, "--seconds", "30"], tmp_path,
                 ready_flag=True) as proc:
        stacks, err, mismatches, samples = record_native(proc.pid, tmp_path)
    assert mismatches == 0, "merge mismatches:\n%s\n%s" % (err, show(stacks))
    kernel = sum(n for s, n in stacks.items() if "c_kernel" in names_of(s))
    exact = sum(n for s, n in stacks.items() if names_of(s) in (OUTER, CALLBACK))
    assert kernel >= samples * 0.8 and exact == kernel, show(stacks)


def test_record_native_module_loaded_while_sampling(interp, start, ext_dir, tmp_path):
    """A module mapped after mixspy read the maps (imported once it samples, as a launched program
    does) is merged exactly from its first samples on: no mismatch while the maps are stale."""
    go = str(tmp_path / "load-now")
    w = start(interp, "mixed_native.py", ["--ext", ext_dir, "--load-after", go, "--seconds", 30])
    with open("/proc/%d/maps" % w.pid) as f:
        assert "mixspy_testext" not in f.read(), "the extension is loaded before the go file"
    out = str(tmp_path / "late.txt")
    def load():
        with open(go, "w"):
            pass
    rc, err = harness.record_while(["record", "--native", "-d", 2, "-f", "raw", "-o", out, "--pid", w.pid], load)
    assert_not_stopped(w.pid)
    assert rc == 0, err
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read())
    m = MISMATCHES.search(err)
    assert m, err
    mismatches, samples = int(m.group(1)), int(m.group(2))
    assert mismatches == 0, "merge mismatches:\n%s\n%s" % (err, show(stacks))
    kernel = sum(n for s, n in stacks.items() if "c_kernel" in names_of(s))
    exact = sum(n for s, n in stacks.items() if names_of(s) in (OUTER, CALLBACK))
    assert kernel >= samples * 0.5 and exact == kernel, show(stacks)


# ---------------------------------------------------------------------------------------------
# Shared objects deleted after they were mapped

def test_record_native_deleted_module(debian_interp, ext_builds, start, tmp_path):
    ext = str(tmp_path / "ext")
    shutil.copytree(ext_builds(debian_interp), ext)
    w = start(debian_interp, "mixed_native.py", ["--ext", ext, "--mode", "outer", "--seconds", 30])
    for name in os.listdir(ext):
        if name.endswith(".so"):
            os.unlink(os.path.join(ext, name))
    with open("/proc/%d/maps" % w.pid) as f:
        assert re.search(r"mixspy_testext\S* \(deleted\)", f.read()), "no deleted mapping of the extension"
    stacks, err, mismatches, samples = record_native(w.pid, tmp_path, seconds=1)
    assert mismatches == 0, err
    exact = sum(n for s, n in stacks.items() if names_of(s) == OUTER and s[-1].line == harness.hot_kernel_line())
    assert exact >= samples * 0.8, show(stacks)


# ---------------------------------------------------------------------------------------------
# numpy (Debian's python3 with python3-numpy: a stripped .so, only dynamic symbols)

def test_record_native_numpy(debian_interp, start, tmp_path):
    res = subprocess.run([debian_interp.path, "-c", "import numpy"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, check=False)
    if res.returncode != 0:
        pytest.fail("Debian's python3 has no numpy (apt-get install python3-numpy)", pytrace=False)
    w = start(debian_interp, "numpy_work.py", ["--seconds", 30])
    stacks, err, mismatches, samples = record_native(w.pid, tmp_path)
    assert mismatches == 0, "merge mismatches:\n%s\n%s" % (err, show(stacks))

    def numpy_native(f):
        return "_multiarray_umath" in f.name or "_multiarray_umath" in (f.file or "")

    under = {"matmul": 0, "sort_rows": 0}
    for stack, n in stacks.items():
        names = names_of(stack)
        for caller in under:
            if caller in names:
                i = names.index(caller)
                assert stack[i].file == "numpy_work.py", stack
                if any(numpy_native(f) for f in stack[i + 1:]):
                    under[caller] += n
        # Never a numpy frame above (rootward of) the workload's own Python frames.
        for i, f in enumerate(stack):
            if numpy_native(f):
                assert any(c in names[:i] for c in under), "numpy frame above its caller: %s" % names
    assert under["matmul"] > 0 and under["sort_rows"] > 0, show(stacks)
    assert sum(under.values()) >= samples * 0.5, "%s of %d\n%s" % (under, samples, show(stacks))


# ---------------------------------------------------------------------------------------------
# Cython: the hot loop attributed to its .pyx line, under the demangled name

def build_cyfast(interp, session_id):
    """tests/native_ext/cython/build.sh for interp, once per session. Returns (dir, None) or
    (None, reason)."""
    out = os.path.join(harness.BUILD, "native_ext", interp.id, "cython")
    stamp = os.path.join(out, ".session")
    with harness._FileLock(os.path.join(harness.BUILD, "native_ext", interp.id + ".cython.lock")):
        try:
            with open(stamp) as f:
                state = f.read().split("\n", 1)
            if state[0] == session_id:
                return (out, None) if state[1].strip() == "ok" else (None, state[1].strip())
        except (OSError, IndexError):
            pass
        res = subprocess.run(["sh", os.path.join(CYTHON_DIR, "build.sh"), interp.path, out],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                             universal_newlines=True, check=False)
        why = None if res.returncode == 0 else (res.stdout.strip().splitlines() or ["build.sh failed"])[-1]
        os.makedirs(out, exist_ok=True)
        with open(stamp, "w") as f:
            f.write("%s\n%s\n" % (session_id, why or "ok"))
    return (out, None) if why is None else (None, why)


@contextlib.contextmanager
def spawned(argv, tmp_path, ready_flag, env=None):
    """Run a workload whose command line is not harness.Workload's (an interpreter flag, or a
    positional ready file): argv gets "--ready PATH" (ready_flag) or PATH appended; waits for it,
    yields the Popen, kills its session at the end."""
    ready = str(tmp_path / ("ready-%d" % time.monotonic_ns()))
    argv = [str(a) for a in argv] + (["--ready", ready] if ready_flag else [ready])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=harness.workload_env(env), cwd=str(tmp_path),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + harness.READY_TIMEOUT
        while not os.path.exists(ready):
            if proc.poll() is not None:
                pytest.fail("%s exited with %d before it was ready" % (" ".join(argv), proc.returncode),
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail("%s not ready after %.0f s" % (" ".join(argv), harness.READY_TIMEOUT),
                            pytrace=False)
            time.sleep(0.02)
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(10)


def test_record_native_cython(interp, session_id, tmp_path):
    cy_dir, why = build_cyfast(interp, session_id)
    if cy_dir is None:
        pytest.skip("%s: cyfast does not build: %s" % (interp.id, why))
    # cy_workload.py READY_FILE [SECONDS]: the ready file is positional, SECONDS is not given
    # (30 by default; the workload is killed after sampling).
    with spawned([interp.path, os.path.join(CYTHON_DIR, "cy_workload.py")], tmp_path, ready_flag=False,
                 env={"CYFAST_DIR": cy_dir}) as proc:
        stacks, err, mismatches, samples = record_native(proc.pid, tmp_path)
    assert mismatches == 0, "merge mismatches:\n%s\n%s" % (err, show(stacks))
    hot = harness.marker_line(CYFAST_PYX, "# HOT-LOOP")
    good = 0
    for stack, n in stacks.items():
        at = [i for i, f in enumerate(stack) if (f.file, f.line) == ("cyfast.pyx", hot)]
        if not at:
            continue
        f = stack[at[0]]
        assert f.name.startswith("cyfast."), "hot loop not under a demangled name: %s" % (stack,)
        callers = [g for g in stack[:at[0]] if g.file == "cy_workload.py"]
        assert callers and callers[-1].name == "main", "hot loop not under its Python caller: %s" % (stack,)
        # Between the Python caller and the hot loop only Cython functions of cyfast.
        i = stack.index(callers[-1])
        for g in stack[i + 1:at[0] + 1]:
            assert g.name.startswith("cyfast.") and g.file == "cyfast.pyx", stack
        good += n
    assert good >= samples * 0.6, "only %d of %d samples on cyfast.pyx:%d\n%s" % (good, samples, hot,
                                                                                 show(stacks))
