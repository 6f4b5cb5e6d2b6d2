"""test_faults.py - mixspy while the world misbehaves (issue 7, part 1).

The target exits, is killed, execs or forks while sampled; threads come and go quickly; mixspy
itself is SIGKILLed mid-sample; hundreds of attach/detach cycles; two mixspy on one target; a
target in its own PID namespace; --nonblocking against a stack that changes all the time.

In every case the target must be left running (or to end on its own terms), never stopped, and
mixspy must end on its own with a profile or one clear error - never hang, never crash.
The workloads these tests need are written into the test's tmp dir (they import
tests/native_ext/workload_common.py for the ready-file handshake).
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import harness
from harness import assert_not_stopped, parse_collapsed, run_mixspy

PRELUDE = textwrap.dedent("""\
    from __future__ import print_function
    import os, sys, time
    sys.path.insert(0, %r)
    import workload_common

    def spin(deadline):
        t = 0
        while time.time() < deadline:
            t += 1
        return t
    """) % harness.NATIVE_EXT

SCRIPTS = {
    # Deterministic work whose result is printed at the end: profiling must not change it.
    "checksum.py": """
def mix(h, i):
    return (h * 1000003 ^ i) & 0xFFFFFFFFFFFF

def chunk(h, start):
    for i in range(start, start + 20000):
        h = mix(h, i)  # CHUNK-LINE
    return h

def main():
    p = workload_common.parser("checksum")
    p.add_argument("--chunks", type=int, default=400)
    p.add_argument("--out")
    args = p.parse_args()
    h = 7
    workload_common.signal_ready(args.ready)
    for c in range(args.chunks):
        h = chunk(h, c * 20000)
    with open(args.out, "w") as f:
        f.write("%d\\n" % h)

main()
""",
    # Threads started and joined as fast as possible, each doing a little work.
    "churn.py": """
import threading

def short_life(n):
    t = 0
    for i in range(n):
        t += i
    return t

def main():
    args = workload_common.parser("churn").parse_args()
    deadline = time.time() + args.seconds
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        ts = [threading.Thread(target=short_life, args=(200 * k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

main()
""",
    # A parent that keeps forking short-lived children (which run Python, then _exit).
    "forker.py": """
def child_work():
    t = 0
    for i in range(30000):
        t += i
    return t

def main():
    args = workload_common.parser("forker").parse_args()
    deadline = time.time() + args.seconds
    workload_common.signal_ready(args.ready)
    while time.time() < deadline:
        pid = os.fork()
        if pid == 0:
            child_work()
            os._exit(0)
        child_work()
        os.waitpid(pid, 0)

main()
""",
    # Busy for a while, then exec()s into another Python program (or into a non-Python one).
    "execer.py": """
def before_exec():
    t = 0
    end = time.time() + 1.0
    while time.time() < end:
        t += 1
    return t

def main():
    p = workload_common.parser("execer")
    p.add_argument("--into", default="python")
    args = p.parse_args()
    workload_common.signal_ready(args.ready)
    before_exec()
    if args.into == "python":
        os.execv(sys.executable, [sys.executable, "-c",
                 "import time\\ndef after_exec():\\n    e = time.time() + %f\\n    while time.time() < e: pass\\nafter_exec()"
                 % max(args.seconds - 1.0, 0.5)])
    os.execv("/bin/sleep", ["sleep", str(max(args.seconds - 1.0, 0.5))])

main()
""",
    # Recursion of random depth that unwinds and rebuilds all the time (torn stacks for
    # --nonblocking), plus a counter file showing it makes progress.
    "flicker.py": """
import random

def level(n):
    if n == 0:
        t = 0
        for i in range(50):
            t += i
        return t
    return level(n - 1)  # FLICKER-LINE

def main():
    args = workload_common.parser("flicker").parse_args()
    deadline = time.time() + args.seconds
    workload_common.signal_ready(args.ready)
    r = random.Random(1)
    while time.time() < deadline:
        level(r.randint(0, 60))

main()
""",
    # A busy main thread while an interval timer sends SIGALRM 200 times a second; the Python
    # handler counts them. At the end: "<handled> <seconds counted>". (No second busy thread:
    # handlers run in the main thread only, and GIL hand-offs every 5 ms would merge alarms.)
    "alarms.py": """
import signal

handled = [0]

def on_alarm(signum, frame):
    handled[0] += 1

def main():
    p = workload_common.parser("alarms")
    p.add_argument("--out")
    args = p.parse_args()
    signal.signal(signal.SIGALRM, on_alarm)
    start = time.time()
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    workload_common.signal_ready(args.ready)
    spin(start + args.seconds)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    with open(args.out, "w") as f:
        f.write("%d %f\\n" % (handled[0], time.time() - start))

main()
""",
    # Two busy threads (main and a worker), for job-control tests.
    "two_busy.py": """
import threading

def main():
    args = workload_common.parser("two_busy").parse_args()
    deadline = time.time() + args.seconds
    worker = threading.Thread(target=spin, args=(deadline,))
    worker.daemon = True
    worker.start()
    workload_common.signal_ready(args.ready)
    spin(deadline)

main()
""",
}

FLICKER_NAMES = {"<module>", "main", "level", "randint", "randrange", "_randbelow",
                 "_randbelow_with_getrandbits", "time"}


@pytest.fixture
def scripts(tmp_path):
    d = tmp_path / "workloads"
    d.mkdir()
    for name, body in SCRIPTS.items():
        (d / name).write_text(PRELUDE + body)
    return d


def record(args, out, timeout=60, fmt="raw"):
    rc, stdout, stderr = run_mixspy(["record", "--format", fmt, "-o", out] + [str(a) for a in args],
                                    timeout=timeout)
    return rc, stderr


def samples_in(stderr):
    for line in stderr.splitlines():
        if "Samples:" in line:
            return int(line.split("Samples:")[1].split()[0])
    return None


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid) or harness.proc_state(pid) in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def all_threads_running(pid):
    """Raises if any thread of pid is stopped; fine if it is gone."""
    assert_not_stopped(pid, must_be_alive=False)


# ---- the target ends while sampled --------------------------------------------------------

@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_launched_target_exits(interp, tmp_path, native):
    """record -- python prog: the program ends mid-sample; the profile is written, its exit status
    passed on."""
    out = str(tmp_path / "exit.txt")
    args = (["--native"] if native else []) + ["--", interp.path, os.path.join(harness.NATIVE_EXT, "exit_code.py"),
                                                "--work", "1.5", "--code", "3"]
    rc, err = record(args, out)
    assert rc == 3, "exit status %d (expected the program's 3):\n%s" % (rc, err)
    assert "process exited" in err, err
    stacks = parse_collapsed(open(out).read())
    assert sum(stacks.values()) > 0, "no samples before the program exited:\n%s" % err


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "exit"])
@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
@pytest.mark.parametrize("workload", ["busy_75_25", "two_busy"])
def test_attached_target_ends(debian_interp, start, scripts, tmp_path, how, native, workload):
    """record --pid: the target is killed (or exits) mid-sampling; mixspy notices, writes the
    profile and exits 0. With two busy threads, both are kept seized when the process ends: the
    worker, exiting, waits for mixspy to reap it before the main thread can report its end."""
    secs = 1.5 if how == "exit" else 60
    script = "busy_75_25.py" if workload == "busy_75_25" else str(scripts / "two_busy.py")
    w = start(debian_interp, script, ["--seconds", secs])
    out = str(tmp_path / "ends.txt")
    p = subprocess.Popen([harness.MIXSPY, "record", "--format", "raw", "-o", out, "-r", "200", "--pid", str(w.pid)]
                         + (["--native"] if native else []),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    if how != "exit":
        os.kill(w.pid, getattr(signal, how))
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("mixspy did not stop after its target ended (%s)" % how)
    err = err.decode("utf-8", "replace")
    assert p.returncode == 0, "rc %d:\n%s" % (p.returncode, err)
    assert "process exited" in err, err
    stacks = parse_collapsed(open(out).read())
    assert sum(stacks.values()) > 0, err


@pytest.mark.parametrize("into", ["python", "sleep"])
def test_target_execs(debian_interp, start, scripts, tmp_path, into):
    """The target exec()s into another program while sampled: mixspy keeps going or stops, but
    ends by itself, writes its profile and leaves the new program running."""
    w = start(debian_interp, str(scripts / "execer.py"), ["--seconds", 4, "--into", into])
    out = str(tmp_path / "exec.txt")
    rc, err = record(["-d", "3", "-r", "200", "--pid", w.pid], out, timeout=30)
    assert rc in (0, 1), "rc %d:\n%s" % (rc, err)
    if rc == 0:
        stacks = parse_collapsed(open(out).read())
        names = {f.name for s in stacks for f in s}
        assert "before_exec" in names, names
    else:
        assert len([l for l in err.splitlines() if l.startswith("Error")]) == 1, err
    assert w.alive(), "the exec'd program was killed"
    assert_not_stopped(w.pid)


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_target_forks(debian_interp, start, scripts, tmp_path, native):
    """A target forking children all the time: parent and children are never left stopped."""
    w = start(debian_interp, str(scripts / "forker.py"), ["--seconds", 30])
    out = str(tmp_path / "fork.txt")
    rc, err = record(["-d", "2", "-r", "200", "--pid", w.pid] + (["--native"] if native else []), out)
    assert rc == 0, err
    stacks = parse_collapsed(open(out).read())
    assert sum(stacks.values()) > 0
    assert_not_stopped(w.pid)
    for task in os.listdir("/proc"):
        if task.isdigit() and harness.__dict__.get("proc_state") and os.path.exists("/proc/%s/stat" % task):
            try:
                if os.path.exists("/proc/%s/task" % task) and \
                        open("/proc/%s/stat" % task).read().rsplit(")", 1)[1].split()[1] == str(w.pid):
                    all_threads_running(int(task))
            except (OSError, IndexError):
                pass


def test_target_forks_subprocesses(debian_interp, start, scripts, tmp_path):
    """--subprocesses with children that live a few ms each."""
    w = start(debian_interp, str(scripts / "forker.py"), ["--seconds", 30])
    out = str(tmp_path / "forksub.txt")
    rc, err = record(["-d", "2", "-r", "200", "--subprocesses", "--pid", w.pid], out)
    assert rc == 0, err
    assert_not_stopped(w.pid)


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_thread_churn(interp, start, scripts, tmp_path, native):
    w = start(interp, str(scripts / "churn.py"), ["--seconds", 30])
    out = str(tmp_path / "churn.txt")
    rc, err = record(["-d", "2", "-r", "300", "--threads", "--pid", w.pid] + (["--native"] if native else []), out)
    assert rc == 0, err
    stacks = parse_collapsed(open(out).read())
    assert sum(stacks.values()) > 0, err
    assert_not_stopped(w.pid)
    assert w.alive()


# ---- mixspy itself dies -------------------------------------------------------------------

def expected_checksum(python, script, tmp_path, chunks):
    out = str(tmp_path / "reference.txt")
    subprocess.run([python, str(script), "--chunks", str(chunks), "--out", out], check=True, timeout=120,
                   env=harness.workload_env())
    return open(out).read()


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_mixspy_sigkilled(debian_interp, start, scripts, tmp_path, native):
    """SIGKILL mixspy mid-sample, again and again: the target keeps running, is never left
    stopped, and computes the same result as without profiling."""
    chunks = 1500
    want = expected_checksum(debian_interp.path, scripts / "checksum.py", tmp_path, chunks)
    out = str(tmp_path / "checksum.txt")
    w = start(debian_interp, str(scripts / "checksum.py"), ["--chunks", chunks, "--out", out])
    rnd = random.Random(7)
    kills = 0
    while w.alive() and kills < 20:
        p = subprocess.Popen([harness.MIXSPY, "record", "-r", "1000", "-o", "/dev/null", "--pid", str(w.pid)]
                             + (["--native"] if native else []),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.05, 0.4))
        p.kill()
        p.wait()
        kills += 1
        if w.alive():
            time.sleep(0.05)   # a tracee of a dead tracer resumes at once; give /proc a moment
            # (it may finish on its own meanwhile: its exit status is checked below)
            assert_not_stopped(w.pid, must_be_alive=False)
    assert kills >= 3, "the workload ended too soon to test anything"
    rc = w.proc.wait(120)
    assert rc == 0, "the target failed after mixspy was killed (rc %d): %s" % (rc, w.stderr())
    assert open(out).read() == want, "the target's result changed under profiling"


# ---- attach / detach ----------------------------------------------------------------------

def test_200_attach_detach(debian_interp, start, tmp_path):
    w = start(debian_interp, "busy_75_25.py", ["--seconds", 300])
    for i in range(200):
        rc, out, err = run_mixspy(["dump", "--pid", w.pid], timeout=30)
        assert rc == 0, "cycle %d: rc %d\n%s" % (i, rc, err)
        if i % 20 == 0:
            assert_not_stopped(w.pid)
    assert_not_stopped(w.pid)
    assert w.alive()
    # still making progress: its CPU time grows
    def cpu():
        with open("/proc/%d/stat" % w.pid) as f:
            return sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    c0 = cpu()
    time.sleep(0.5)
    assert cpu() > c0, "the target stopped making progress"


def test_two_instances(debian_interp, start, tmp_path):
    """Two mixspy on one target: both finish with a profile, or the second says why not."""
    w = start(debian_interp, "busy_75_25.py", ["--seconds", 60])
    outs = [str(tmp_path / ("two%d.txt" % i)) for i in range(2)]
    procs = [subprocess.Popen([harness.MIXSPY, "record", "--format", "raw", "-d", "3", "-r", "200", "-o", o,
                               "--pid", str(w.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for o in outs]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        results.append((p.returncode, err.decode("utf-8", "replace")))
    ok = [r for r in results if r[0] == 0]
    assert ok, "neither instance worked: %s" % results
    for rc, err in results:
        assert rc in (0, 1), (rc, err)
        if rc == 1:
            assert len([l for l in err.splitlines() if l.startswith("Error")]) == 1, err
    total = 0
    for (rc, err), o in zip(results, outs):
        if rc == 0:
            total += sum(parse_collapsed(open(o).read()).values())
    assert total > 0
    assert_not_stopped(w.pid)
    assert w.alive()


def test_pid_namespace(debian_interp, tmp_path):
    """A target in its own PID (and mount) namespace, attached by its pid outside."""
    if not os.path.exists("/usr/bin/unshare"):
        pytest.skip("no unshare")
    ready = str(tmp_path / "ns.ready")
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", debian_interp.path,
                          os.path.join(harness.NATIVE_EXT, "busy_75_25.py"), "--seconds", "60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                         env=harness.workload_env())
    try:
        # the Python process is unshare's child; inside the namespace it is pid 1
        deadline = time.monotonic() + 20
        target = None
        while time.monotonic() < deadline and target is None:
            for d in os.listdir("/proc"):
                if d.isdigit() and harness.__dict__ and os.path.exists("/proc/%s/stat" % d):
                    try:
                        ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    if ppid == p.pid and "python" in os.readlink("/proc/%s/exe" % d):
                        target = int(d)
            time.sleep(0.1)
        if target is None:
            err = p.stderr.read().decode() if p.poll() is not None else ""
            pytest.skip("could not start a process in a PID namespace: %s" % err)
        time.sleep(1.0)   # past interpreter start-up
        rc, out, err = run_mixspy(["dump", "--pid", target], timeout=30)
        assert rc == 0, "rc %d\n%s" % (rc, err)
        assert "heavy" in out or "light" in out or "work" in out, out
        rc, err = record(["-d", "1", "--pid", target], str(tmp_path / "ns.txt"))
        assert rc == 0, err
        assert sum(parse_collapsed(open(str(tmp_path / "ns.txt")).read()).values()) > 0
        assert_not_stopped(target)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()


# ---- --nonblocking honesty ----------------------------------------------------------------

def test_nonblocking_no_nonsense(interp, start, scripts, tmp_path):
    """--nonblocking against a stack rebuilt thousands of times a second: whatever is torn must
    be counted as an error, never emitted. Every stack must start at <module> -> main and hold
    only the workload's own functions, with level() never deeper than the workload goes."""
    w = start(interp, str(scripts / "flicker.py"), ["--seconds", 30])
    out = str(tmp_path / "nb.txt")
    rc, err = record(["-d", "3", "-r", "500", "--nonblocking", "--pid", w.pid], out)
    assert rc == 0, err
    stacks = parse_collapsed(open(out).read())
    assert sum(stacks.values()) > 0, err
    bad = []
    for s, n in stacks.items():
        names = [f.name.rsplit(".", 1)[-1] for f in s]   # 3.11+ shows qualnames
        if names[:2] != ["<module>", "main"] or names.count("level") > 61 or \
                any(x not in FLICKER_NAMES for x in names):
            bad.append((names, n))
    assert not bad, "%d nonsense stacks emitted, e.g. %s" % (len(bad), bad[:3])
    assert_not_stopped(w.pid)


def test_dump_locals_self_referencing(debian_interp, start, tmp_path):
    """A list holding itself many times: its repr must stay bounded (it was n^depth reads)."""
    script = tmp_path / "selfref.py"
    script.write_text(PRELUDE + """
def hold(ready, seconds):
    a = []
    a.extend([a] * 40)
    workload_common.signal_ready(ready)
    time.sleep(seconds)

args = workload_common.parser("selfref").parse_args()
hold(args.ready, args.seconds)
""")
    w = start(debian_interp, str(script), ["--seconds", 60])
    t0 = time.monotonic()
    rc, out, err = run_mixspy(["dump", "--locals", "--pid", w.pid], timeout=30)
    assert rc == 0, err
    assert time.monotonic() - t0 < 20, "dump --locals took %.1f s" % (time.monotonic() - t0)
    assert "a: [" in out, out
    assert_not_stopped(w.pid)


# ---- signals and job control while threads are kept seized ---------------------------------

def tracer_pids(pid):
    """tid -> TracerPid of each thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("TracerPid:"):
                        out[int(tid)] = int(line.split()[1])
        except OSError:
            pass
    return out


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.01)


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_signals_forwarded_at_once(debian_interp, scripts, tmp_path, native):
    """Sampled threads stay seized between samples; a signal that stops one on its way in is
    delivered at once, not at the next tick: at 20 samples/s, a 200/s SIGALRM timer has as many
    alarms handled as without mixspy (measured just before, on the same machine). Held until
    the next tick, they would merge to ~20/s."""
    def alarms_handled(prefix):
        counts = str(tmp_path / ("alarms-%d.txt" % len(prefix)))
        argv = [debian_interp.path, str(scripts / "alarms.py"), "--seconds", "3", "--out", counts]
        if prefix:
            rc, err = record(prefix + ["--"] + argv, str(tmp_path / "alarms.raw"))
            assert rc == 0 and samples_in(err) >= 20, err
        else:
            subprocess.run(argv, check=True, timeout=60, env=harness.workload_env())
        handled, seconds = open(counts).read().split()
        return int(handled) / float(seconds)

    alone = alarms_handled([])
    sampled = alarms_handled(["-r", "20", "--threads"] + (["--native"] if native else []))
    # Half is the bar: a loaded machine merges alarms by itself, differently from run to run.
    assert sampled >= 0.5 * alone, "%.0f alarms/s handled under sampling, %.0f/s alone" % (sampled, alone)


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
def test_job_control_while_sampled(debian_interp, start, scripts, tmp_path, native):
    """SIGSTOP / SIGCONT to a process whose threads mixspy keeps seized: it stops (no CPU time
    passes) and stays stopped while sampled, runs again after SIGCONT, and is left running when mixspy
    ends."""
    w = start(debian_interp, str(scripts / "two_busy.py"), ["--seconds", 60])
    out = str(tmp_path / "jc.raw")
    p = subprocess.Popen([harness.MIXSPY, "record", "-r", "200", "--format", "raw", "-o", out,
                          "--pid", str(w.pid)] + (["--native"] if native else []),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        # Sampling has begun once mixspy traces the busy threads.
        wait_for(lambda: list(tracer_pids(w.pid).values()).count(p.pid) >= 2, 20, "the threads to be seized")
        os.kill(w.pid, signal.SIGSTOP)
        wait_for(lambda: all(harness.proc_state(w.pid, tid) in ("T", "t") for tid in tracer_pids(w.pid)),
                 10, "every thread to stop")
        # A thread shown stopped ('t') may be standing in one of mixspy's pauses while the SIGSTOP,
        # taken by another thread, waits for mixspy to forward it: resumed, it runs until then
        # (two ticks once, in a sanitizer build under load). Stopped means its CPU time stands.
        def still():
            a = cpu_ticks(w.pid)
            time.sleep(0.1)
            return cpu_ticks(w.pid) == a
        wait_for(still, 10, "the process's CPU time to stand still")
        before = cpu_ticks(w.pid)
        time.sleep(0.5)   # a window in which a wrongly resumed thread would burn CPU
        assert cpu_ticks(w.pid) - before <= 1, "the stopped process ran while sampled"
        os.kill(w.pid, signal.SIGCONT)
        resumed = cpu_ticks(w.pid)
        wait_for(lambda: cpu_ticks(w.pid) > resumed + 5, 10, "the process to run after SIGCONT")
    finally:
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    assert samples_in(stderr) > 0, stderr
    assert_not_stopped(w.pid)
    assert w.alive()
