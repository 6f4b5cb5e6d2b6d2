"""test_badinput.py - mixspy given something it cannot profile (issue 7, part 2).

Each case must give one clear line on stderr, a non-zero exit, no core dump (no death by signal),
and leave the target exactly as it was: running, not stopped, not killed.
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

import harness
from harness import assert_not_stopped

PERMISSION_LINE = ("Permission Denied: Try running again with elevated permissions by going "
                   "'sudo env \"PATH=$PATH\" !!'")


def run(args, cwd, timeout=30, user=None):
    """Run mixspy in cwd (where a core file would land). Returns (rc, stdout, stderr lines)."""
    argv = [harness.MIXSPY] + [str(a) for a in args]
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all"] + argv
    p = subprocess.run(argv, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=dict(os.environ, NO_COLOR="1"))
    err = p.stderr.decode("utf-8", "replace")
    return p.returncode, p.stdout.decode("utf-8", "replace"), [l for l in err.splitlines() if l.strip()]


def assert_clean_failure(rc, err, cwd, rc_expected=None):
    assert rc != 0, "mixspy succeeded where it should fail; stderr: %s" % err
    assert rc > 0 and rc < 128, "mixspy died by a signal or crashed (rc %d); stderr: %s" % (rc, err)
    if rc_expected is not None:
        assert rc == rc_expected, "exit %d, expected %d; stderr: %s" % (rc, rc_expected, err)
    assert len(err) == 1, "expected one line on stderr, got %d:\n%s" % (len(err), "\n".join(err))
    assert "Sanitizer" not in err[0] and "panic" not in err[0].lower(), err[0]
    cores = [f for f in os.listdir(str(cwd)) if f.startswith("core")]
    assert not cores, "core files left: %s" % cores


def free_pid():
    """A pid that no process has right now."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 2, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    pytest.skip("no free pid")


def test_unknown_pid(tmp_path):
    pid = free_pid()
    for cmd in (["dump", "--pid", pid], ["record", "-d", "1", "-o", tmp_path / "o.svg", "--pid", pid]):
        rc, out, err = run(cmd, tmp_path)
        assert_clean_failure(rc, err, tmp_path, rc_expected=1)
        assert str(pid) in err[0] or "running" in err[0], err[0]
    assert not os.path.exists(str(tmp_path / "o.svg")), "record left an output file behind"


def test_zombie(tmp_path):
    z = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while harness.proc_state(z.pid) != "Z":
        assert time.monotonic() < deadline, "child did not become a zombie"
        time.sleep(0.01)
    try:
        for cmd in (["dump", "--pid", z.pid], ["record", "-d", "1", "-o", tmp_path / "z.svg", "--pid", z.pid]):
            rc, out, err = run(cmd, tmp_path)
            assert_clean_failure(rc, err, tmp_path, rc_expected=1)
            assert "zombie" in err[0] or "exited" in err[0] or "running" in err[0], err[0]
        assert harness.proc_state(z.pid) == "Z"   # still ours to reap
    finally:
        z.wait()


def test_not_python(tmp_path):
    sl = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        time.sleep(0.1)
        for cmd in (["dump", "--pid", sl.pid], ["record", "-d", "1", "-o", tmp_path / "n.svg", "--pid", sl.pid]):
            rc, out, err = run(cmd, tmp_path)
            assert_clean_failure(rc, err, tmp_path, rc_expected=1)
            assert "python" in err[0].lower(), err[0]
            assert_not_stopped(sl.pid)
        assert sl.poll() is None, "the target died"
    finally:
        sl.kill()
        sl.wait()


def test_failed_record_keeps_dev_null(tmp_path):
    """A record that fails deletes the output file it created - never `-o /dev/null` (as root
    that removed the device for the whole machine), nor a file that was there before."""
    sl = subprocess.Popen(["sleep", "60"], start_new_session=True)
    before = tmp_path / "before.svg"
    before.write_text("kept")
    try:
        for out in ("/dev/null", str(before), str(tmp_path / "new.svg")):
            rc, _, err = run(["record", "-d", "1", "-o", out, "--pid", sl.pid], tmp_path)
            assert rc == 1, err
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a device"
        assert before.exists(), "a file that existed before the run was deleted"
        assert not (tmp_path / "new.svg").exists(), "the failed run left the file it created"
    finally:
        sl.kill()
        sl.wait()


def test_not_python_launched(tmp_path):
    """record -- a non-Python program: the program runs to its end, mixspy says why it has nothing."""
    rc, out, err = run(["record", "-o", tmp_path / "n.svg", "--", "sh", "-c", "sleep 0.3; exit 3"], tmp_path)
    assert rc != 0 and rc < 128, (rc, err)
    cores = [f for f in os.listdir(str(tmp_path)) if f.startswith("core")]
    assert not cores


def test_unsupported_python(tmp_path):
    """A process that calls itself python2.6 (a version no layout exists for)."""
    fake = tmp_path / "python2.6"
    shutil.copy("/bin/sleep", str(fake))
    sl = subprocess.Popen([str(fake), "60"], start_new_session=True)
    try:
        time.sleep(0.1)
        rc, out, err = run(["dump", "--pid", sl.pid], tmp_path)
        assert_clean_failure(rc, err, tmp_path, rc_expected=1)
        assert "version" in err[0].lower(), err[0]
        assert_not_stopped(sl.pid)
        assert sl.poll() is None
    finally:
        sl.kill()
        sl.wait()


def test_no_permission(tmp_path, debian_interp, start):
    """An unprivileged mixspy against root's process: py-spy's permission message, exit 1."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process another user cannot trace")
    w = start(debian_interp, "sleeper.py", ["--seconds", 60])
    os.chmod(str(tmp_path), 0o777)
    for cmd in (["dump", "--pid", w.pid], ["record", "-d", "1", "-o", "/dev/null", "--pid", w.pid]):
        rc, out, err = run(cmd, tmp_path, user=65534)
        assert_clean_failure(rc, err, tmp_path, rc_expected=1)
        assert err[0] == PERMISSION_LINE, err[0]
    assert_not_stopped(w.pid)
    assert w.alive()


def test_unwritable_output(tmp_path, debian_interp, start):
    """The output path is checked before sampling starts."""
    w = start(debian_interp, "sleeper.py", ["--seconds", 60])
    for path in ("/nonexistent-dir/x.svg", str(tmp_path)):
        t0 = time.monotonic()
        rc, out, err = run(["record", "-d", "30", "-o", path, "--pid", w.pid], tmp_path)
        assert_clean_failure(rc, err, tmp_path, rc_expected=1)
        assert path in err[0], err[0]
        assert "Sampling" not in err[0]
        assert time.monotonic() - t0 < 10, "mixspy sampled before failing on the output path"
    assert_not_stopped(w.pid)
    assert w.alive()


BAD_FLAGS = [
    ["record", "--rate", "0", "--pid", "1"],
    ["record", "--rate", "abc", "--pid", "1"],
    ["record", "--rate", "-5", "--pid", "1"],
    ["record", "--duration", "-1", "--pid", "1"],
    ["record", "--duration", "soon", "--pid", "1"],
    ["record", "--format", "nope", "--pid", "1"],
    ["record", "--pid", "abc"],
    ["record", "--pid", "-3"],
    ["record", "--pid", "99999999999999999999"],
    ["dump", "--pid"],
    ["dump"],
    ["record", "--no-such-flag", "--pid", "1"],
    ["record", "--native", "--nonblocking", "--pid", "1"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", BAD_FLAGS, ids=["_".join(a).lstrip("-") for a in BAD_FLAGS])
def test_bad_flags(tmp_path, args):
    rc, out, err = run(args, tmp_path)
    assert rc != 0 and 0 < rc < 128, (rc, err)
    assert err, "no error message"
    assert err[0].startswith("error:") or "Can't" in err[0] or "Error" in err[0], err
    # clap prints a usage hint after the error; the error itself must be one line
    assert not any("Sanitizer" in l for l in err), err
    cores = [f for f in os.listdir(str(tmp_path)) if f.startswith("core")]
    assert not cores
