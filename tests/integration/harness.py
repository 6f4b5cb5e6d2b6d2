"""harness.py - helpers for mixspy's integration tests.

  interpreters      which Python interpreters exist here (pyenv, Debian's, 3.14 unpacked by
                    shared/tools/newer-python.sh), each with a stable test id (py2.7, py3.11-debian...)
  build_ext         tests/native_ext/build.sh for one interpreter, once per test session
  Workload          a workload from tests/native_ext/ started and waited on through its ready file
  run_mixspy        run ./mixspy with a timeout -> (rc, stdout, stderr)
  assert_not_stopped  the target (every thread) is not left in ptrace/job-control stop
  parse_*           parsers for dump text, dump JSON, raw collapsed stacks and speedscope JSON

Runs on Debian's python3 (3.11). Nothing here knows about pytest except the failure helpers.
"""
import collections
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NATIVE_EXT = os.path.join(REPO, "tests", "native_ext")
BUILD = os.path.join(REPO, "build")
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
MIXSPY = os.environ.get("MIXSPY", os.path.join(REPO, "mixspy"))

DEBIAN_PYTHON = "/usr/bin/python3"
PYENV_VERSIONS = ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
NEWER_VERSIONS = ["3.14"]

READY_TIMEOUT = 20.0


# --------------------------------------------------------------------------------------------
# Interpreters

class Interp(object):
    """One interpreter the tests run against. `path` is None when it is absent (`skip` says why)."""

    def __init__(self, ident, path=None, version=None, skip=None, source=""):
        self.id = ident
        self.path = path
        self.version = tuple(version) if version else None   # (major, minor, micro)
        self.skip = skip
        self.source = source

    def to_json(self):
        return {"id": self.id, "path": self.path, "version": self.version, "skip": self.skip,
                "source": self.source}

    @classmethod
    def from_json(cls, d):
        return cls(d["id"], d["path"], d["version"], d["skip"], d["source"])

    @property
    def major_minor(self):
        return self.version[:2]

    def __repr__(self):
        return "Interp(%s, %s)" % (self.id, self.path or "absent: %s" % self.skip)


def _probe(path):
    """(major, minor, micro) of the interpreter at path, or None if it does not run."""
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d %d %d' % sys.version_info[:3])"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                             env=workload_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return tuple(int(x) for x in out.stdout.split())
    except ValueError:
        return None


def _pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=30, check=False,
                                  universal_newlines=True).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
    if not root and os.path.isdir(os.path.expanduser("~/.pyenv")):
        root = os.path.expanduser("~/.pyenv")
    return root


def _version_key(name):
    return [int(x) if x.isdigit() else -1 for x in re.split(r"[.\-]", name)]


def _find_pyenv(root, mm):
    """The newest pyenv install of version mm ("3.11") that has bin/python3.11."""
    versions = os.path.join(root, "versions") if root else ""
    if not os.path.isdir(versions):
        return None, "pyenv not found (no `pyenv root`/versions)"
    cands = [v for v in os.listdir(versions) if v == mm or v.startswith(mm + ".")]
    cands = [v for v in cands if re.match(r"^\d+\.\d+(\.\d+)?$", v)]
    for v in sorted(cands, key=_version_key, reverse=True):
        exe = os.path.join(versions, v, "bin", "python" + mm)
        if os.access(exe, os.X_OK):
            return exe, None
    return None, "no pyenv install of Python %s under %s" % (mm, versions)


def _unpack_newer(mm, log):
    """Run shared/tools/newer-python.sh for mm, cached under build/. Returns (path, skip_reason)."""
    script = os.path.join(SHARED, "tools", "newer-python.sh")
    if not os.path.isfile(script):
        return None, "Python %s: %s not found" % (mm, script)
    dest = os.path.join(BUILD, "py" + mm.replace(".", ""))
    try:
        out = subprocess.run(["sh", script, mm, dest], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=900, universal_newlines=True,
                             check=False)
    except subprocess.TimeoutExpired:
        return None, "Python %s: newer-python.sh timed out" % mm
    if log:
        log("newer-python.sh %s -> rc %d" % (mm, out.returncode))
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, "Python %s: newer-python.sh failed (rc %d): %s" % (mm, out.returncode, err)
    return lines[-1], None


def discover_interpreters(log=None):
    """Every interpreter the suite knows about, present or not, in a fixed order."""
    found = []
    root = _pyenv_root()
    for mm in PYENV_VERSIONS:
        ident = "py" + mm
        exe, why = _find_pyenv(root, mm)
        if exe is None:
            found.append(Interp(ident, skip="%s absent: %s" % (ident, why), source="pyenv"))
            continue
        v = _probe(exe)
        if v is None or "%d.%d" % v[:2] != mm:
            found.append(Interp(ident, skip="%s: %s does not run" % (ident, exe), source="pyenv"))
            continue
        found.append(Interp(ident, exe, v, source="pyenv"))

    # Debian's python3 is never skipped: if it is missing the tests using it fail.
    v = _probe(DEBIAN_PYTHON) if os.path.exists(DEBIAN_PYTHON) else None
    ident = "py%d.%d-debian" % v[:2] if v else "py3-debian"
    found.append(Interp(ident, DEBIAN_PYTHON if v else None, v, source="debian"))

    for mm in NEWER_VERSIONS:
        ident = "py" + mm
        exe, why = _unpack_newer(mm, log)
        v = _probe(exe) if exe else None
        if exe and v is None:
            why = "Python %s: %s does not run" % (mm, exe)
        if v is None:
            found.append(Interp(ident, skip="%s skipped: %s" % (ident, why), source="newer"))
        else:
            found.append(Interp(ident, exe, v, source="newer"))
    return found


class _FileLock(object):
    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def session_interpreters(session_id, log=None):
    """discover_interpreters() once per test session, shared by every xdist worker through a file
    under build/integration/ (keyed by the session id) and a lock."""
    state_dir = os.path.join(BUILD, "integration")
    state = os.path.join(state_dir, "interpreters.json")
    with _FileLock(os.path.join(state_dir, "interpreters.lock")):
        try:
            with open(state) as f:
                data = json.load(f)
            if data.get("session") == session_id:
                return [Interp.from_json(d) for d in data["interpreters"]]
        except (OSError, ValueError, KeyError):
            pass
        interps = discover_interpreters(log)
        tmp = state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"session": session_id, "interpreters": [i.to_json() for i in interps]}, f,
                      indent=1)
        os.rename(tmp, state)
        return interps


# --------------------------------------------------------------------------------------------
# The C extension

def build_ext(interp, session_id):
    """Build tests/native_ext/mixspy_testext for interp into build/native_ext/<id>/, once per
    session (a stamp holds the session id; a lock serialises xdist workers). Returns the dir."""
    out = os.path.join(BUILD, "native_ext", interp.id)
    stamp = os.path.join(out, ".session")
    with _FileLock(os.path.join(BUILD, "native_ext", interp.id + ".lock")):
        try:
            with open(stamp) as f:
                if f.read().strip() == session_id:
                    return out
        except OSError:
            pass
        res = subprocess.run(["sh", os.path.join(NATIVE_EXT, "build.sh"), interp.path, out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                             universal_newlines=True, check=False)
        if res.returncode != 0:
            pytest.fail("building mixspy_testext for %s (%s) failed:\n%s%s"
                        % (interp.id, interp.path, res.stdout, res.stderr), pytrace=False)
        with open(stamp, "w") as f:
            f.write(session_id + "\n")
    return out


def hot_kernel_line():
    """The line of c_kernel's hot loop in mixspy_testext.c (marked HOT-KERNEL)."""
    return marker_line(os.path.join(NATIVE_EXT, "mixspy_testext.c"), "/* HOT-KERNEL */")


def check_kernel_leaves(leaves):
    """leaves: (file, line, count) of the samples whose leaf is c_kernel. Each is in c_kernel's own
    lines, and 95% of them at its hot loop's: a sample does now and then land on the return
    after the loop (2 of 13,431 at 1000 Hz on Debian's python3 - more often than its share of
    instructions), and that is a true sample, not a wrong one."""
    src = os.path.join(NATIVE_EXT, "mixspy_testext.c")
    first = marker_line(src, "c_kernel(long n)")
    with open(src, encoding="utf-8") as f:
        last = next(n for n, line in enumerate(f, 1) if n > first and line.startswith("}"))
    hot = hot_kernel_line()
    total = sum(c for _, _, c in leaves)
    for path, line, _ in leaves:
        assert path == "mixspy_testext.c" and first <= line <= last, (path, line, first, last)
    at_hot = sum(c for _, line, c in leaves if line == hot)
    assert at_hot >= 0.95 * total, "%d of %d c_kernel samples at its hot line %d: %s" % (at_hot, total, hot, leaves)


def marker_line(path, marker):
    """1-based number of the only line of path containing marker."""
    hits = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if marker in line:
                hits.append(n)
    assert len(hits) == 1, "marker %r found %d times in %s" % (marker, len(hits), path)
    return hits[0]


# --------------------------------------------------------------------------------------------
# Workloads

def workload_env(extra=None):
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONWARNINGS"):
        env.pop(k, None)
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LC_ALL": "C.UTF-8",
                "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})
    if extra:
        env.update(extra)
    return env


class Workload(object):
    """A running workload. Started in its own session so the whole process tree can be killed."""

    def __init__(self, python, script, args, tmpdir, name=None):
        self.python = python
        self.script = os.path.join(NATIVE_EXT, script)
        self.tmpdir = tmpdir
        name = name or os.path.splitext(script)[0]
        self.ready_path = os.path.join(tmpdir, name + ".ready")
        self.stderr_path = os.path.join(tmpdir, name + ".stderr")
        self.stdout_path = os.path.join(tmpdir, name + ".stdout")
        self.argv = [python, self.script, "--ready", self.ready_path] + [str(a) for a in args]
        self.ready_lines = []
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=workload_env(), cwd=tmpdir,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_path):
                with open(self.ready_path) as f:
                    self.ready_lines = f.read().splitlines()
                if self.ready_lines[:1] == ["ready"]:
                    if int(self.ready_lines[1]) != self.pid:
                        pytest.fail("workload %s wrote pid %s, expected %d"
                                    % (self.script, self.ready_lines[1], self.pid), pytrace=False)
                    return self
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail("workload %s exited with %d before it was ready; stderr:\n%s"
                            % (" ".join(self.argv), rc, self.stderr()), pytrace=False)
            time.sleep(0.02)
        pytest.fail("workload %s not ready after %.0f s; stderr:\n%s"
                    % (" ".join(self.argv), timeout, self.stderr()), pytrace=False)

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            # A workload left in ptrace-stop still dies on SIGKILL; reap it.
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        else:
            # Its children (multiprocessing) may still run in its session.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass


def start_workload(python, script, args, tmpdir, registry=None, wait=True, name=None):
    """Start tests/native_ext/<script> under python and wait for its ready file. The handle is
    appended to registry (a list the fixture kills at teardown) before waiting."""
    w = Workload(python, script, args, tmpdir, name=name)
    if registry is not None:
        registry.append(w)
    if wait:
        w.wait_ready()
    return w


# --------------------------------------------------------------------------------------------
# Running mixspy and checking the target

def run_mixspy(args, timeout=30, check_binary=True, env=None):
    """Run ./mixspy args (env: extra environment variables). Returns (rc, stdout, stderr) as text;
    fails the test on timeout."""
    if check_binary and not os.access(MIXSPY, os.X_OK):
        pytest.fail("mixspy binary not found at %s (run `make` first)" % MIXSPY, pytrace=False)
    argv = [MIXSPY] + [str(a) for a in args]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, NO_COLOR="1", **(env or {})),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, err = proc.communicate()
        pytest.fail("mixspy %s timed out after %s s\nstdout:\n%s\nstderr:\n%s"
                    % (" ".join(argv[1:]), timeout, out.decode("utf-8", "replace"),
                       err.decode("utf-8", "replace")), pytrace=False)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def proc_state(pid, tid=None):
    path = "/proc/%d/task/%d/status" % (pid, tid) if tid else "/proc/%d/status" % pid
    with open(path) as f:
        for line in f:
            if line.startswith("State:"):
                return line.split()[1]
    return "?"


def assert_not_stopped(pid, must_be_alive=True):
    """The process and each of its threads must not be stopped (t: ptrace stop, T: SIGSTOP).
    With must_be_alive, it must also still exist and not be a zombie."""
    if not os.path.exists("/proc/%d" % pid):
        assert not must_be_alive, "process %d is gone after mixspy attached to it" % pid
        return
    states = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                states[int(tid)] = proc_state(pid, int(tid))
            except OSError:
                pass    # the thread ended meanwhile
    except OSError:
        assert not must_be_alive, "process %d is gone after mixspy attached to it" % pid
        return
    stopped = {t: s for t, s in states.items() if s in ("t", "T")}
    assert not stopped, "process %d left stopped after mixspy: thread states %s" % (pid, stopped)
    if must_be_alive:
        assert proc_state(pid) not in ("Z", "X"), "process %d died after mixspy attached" % pid


def cmdline_of(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        raw = f.read()
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]


# --------------------------------------------------------------------------------------------
# Parsers

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FRAME_LABEL = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

Frame = collections.namedtuple("Frame", "name file line")


def parse_frame_label(label):
    """`name (file:line)`, `name (file)` or `name` -> Frame(name, file or None, line or None)."""
    m = FRAME_LABEL.match(label)
    if not m:
        # A file name with parentheses: split at the last " (".
        i = label.rfind(" (")
        if i > 0 and label.endswith(")"):
            inner = label[i + 2:-1]
            fm = re.match(r"^(.*?)(?::(\d+))?$", inner)
            return Frame(label[:i], fm.group(1), int(fm.group(2)) if fm.group(2) else None)
        return Frame(label, None, None)
    line = m.group("line")
    return Frame(m.group("name"), m.group("file"), int(line) if line else None)


class DumpThread(object):
    def __init__(self, tid, status, name):
        self.tid = tid            # the string shown: "0x7F..." or a decimal OS tid
        self.status = status      # idle, active, active+gil (or gil for core dumps)
        self.name = name          # None when the header has no name part
        self.frames = []          # innermost first: dicts with name, file, line, args, locals

    def names(self):
        return [f["name"] for f in self.frames]

    def __repr__(self):
        return "DumpThread(%s %s %r, %s)" % (self.tid, self.status, self.name, self.names())


class DumpProcess(object):
    def __init__(self):
        self.pid = None
        self.cmdline = None
        self.python_version = None
        self.binary = None
        self.threads = []

    def thread(self, name):
        hits = [t for t in self.threads if t.name == name]
        assert len(hits) == 1, "expected one thread named %r, got %s" % (name, self.threads)
        return hits[0]


PROCESS_RE = re.compile(r"^Process (\d+): (.*)$")
PYTHON_RE = re.compile(r"^Python v(\S+) \((.*)\)$")
THREAD_RE = re.compile(r'^Thread (0x[0-9A-Fa-f]+|\d+) \(([a-z+]+)\)(?:: "(.*)")?$')
SECTION_RE = re.compile(r"^ {8}(Arguments|Locals):$")
VAR_RE = re.compile(r"^ {12}(\S+): (.*)$")


INSN_RE = re.compile(r"^ {8}=> 0x([0-9a-f]+): (.+)$")


def parse_dump_text(text):
    """Parse `mixspy dump` text output (py-spy §6.3). Raises AssertionError on any line it cannot
    place, so a format drift fails loudly."""
    proc = DumpProcess()
    thread = None
    section = None
    lines = ANSI.sub("", text).splitlines()
    i = 0
    # Header: Process, Python, optional Parent Process, blank.
    while i < len(lines) and not lines[i].startswith("Thread "):
        line = lines[i]
        m = PROCESS_RE.match(line)
        if m and proc.pid is None:
            proc.pid, proc.cmdline = int(m.group(1)), m.group(2)
        elif PYTHON_RE.match(line) and proc.python_version is None:
            m = PYTHON_RE.match(line)
            proc.python_version, proc.binary = m.group(1), m.group(2)
        elif line.startswith("Parent Process ") or line.strip() == "":
            pass
        else:
            raise AssertionError("unexpected header line %r in dump output:\n%s" % (line, text))
        i += 1
    for line in lines[i:]:
        m = THREAD_RE.match(line)
        if m:
            thread = DumpThread(m.group(1), m.group(2), m.group(3))
            proc.threads.append(thread)
            section = None
            continue
        if line.strip() == "":
            continue
        assert thread is not None, "line %r before any thread header" % line
        if line.startswith("    ") and not line.startswith("     "):
            f = parse_frame_label(line[4:])
            thread.frames.append({"name": f.name, "file": f.file, "line": f.line,
                                  "args": collections.OrderedDict(),
                                  "locals": collections.OrderedDict()})
            section = None
            continue
        m = INSN_RE.match(line)
        if m:
            # dump --native: the instruction at the innermost native frame's pc
            assert thread.frames, "instruction line before any frame: %r" % line
            thread.frames[-1]["insn"] = (int(m.group(1), 16), m.group(2))
            continue
        m = SECTION_RE.match(line)
        if m:
            assert thread.frames, "%s: before any frame" % line
            section = "args" if m.group(1) == "Arguments" else "locals"
            continue
        m = VAR_RE.match(line)
        if m:
            assert section, "variable line %r outside Arguments/Locals" % line
            thread.frames[-1][section][m.group(1)] = m.group(2)
            continue
        raise AssertionError("unexpected line %r in dump output:\n%s" % (line, text))
    return proc


TRACE_FIELDS = ("pid", "thread_id", "thread_name", "os_thread_id", "active", "owns_gil", "frames",
                "process_info")
FRAME_FIELDS = ("name", "filename", "module", "short_filename", "line", "locals", "is_entry",
                "is_shim_entry")


def parse_dump_json(text):
    """Parse `mixspy dump --json` (py-spy §6.4) and check every trace and frame has its fields with
    the right JSON types. Returns the list of traces."""
    data = json.loads(text)
    assert isinstance(data, list), "dump --json must be a JSON array, got %s" % type(data).__name__
    for t in data:
        missing = [k for k in TRACE_FIELDS if k not in t]
        assert not missing, "trace lacks %s: %r" % (missing, t)
        assert isinstance(t["pid"], int)
        assert isinstance(t["thread_id"], int)
        assert t["thread_name"] is None or isinstance(t["thread_name"], str)
        assert t["os_thread_id"] is None or isinstance(t["os_thread_id"], int)
        assert isinstance(t["active"], bool) and isinstance(t["owns_gil"], bool)
        assert isinstance(t["frames"], list)
        for f in t["frames"]:
            missing = [k for k in FRAME_FIELDS if k not in f]
            assert not missing, "frame lacks %s: %r" % (missing, f)
            assert isinstance(f["name"], str) and isinstance(f["filename"], str)
            assert f["short_filename"] is None or isinstance(f["short_filename"], str)
            assert f["module"] is None or isinstance(f["module"], str)
            assert isinstance(f["line"], int)
            assert isinstance(f["is_entry"], bool) and isinstance(f["is_shim_entry"], bool)
            assert f["locals"] is None or isinstance(f["locals"], list)
            for v in f["locals"] or []:
                for k in ("name", "addr", "arg", "repr"):
                    assert k in v, "local lacks %s: %r" % (k, v)
    return data


def parse_collapsed(text):
    """Raw / collapsed output (`frame;frame;... count` per line, root first) -> Counter mapping a
    tuple of Frames (root first) to its count. Counts of repeated stacks add up."""
    stacks = collections.Counter()
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        assert stack and count.isdigit(), "bad collapsed line %r" % line
        frames = tuple(parse_frame_label(label) for label in stack.split(";"))
        stacks[frames] += int(count)
    return stacks


def parse_speedscope(path_or_text):
    """A speedscope file -> dict with the raw JSON ('doc') and 'profiles': list of
    {name, unit, samples: [[Frame...] root first], weights, start, end}."""
    if os.path.exists(path_or_text):
        with open(path_or_text, encoding="utf-8") as f:
            doc = json.load(f)
    else:
        doc = json.loads(path_or_text)
    assert doc.get("$schema") == "https://www.speedscope.app/file-format-schema.json", doc.get("$schema")
    frames = doc["shared"]["frames"]
    for fr in frames:
        assert "name" in fr, fr
    profiles = []
    for p in doc["profiles"]:
        assert p["type"] == "sampled", p["type"]
        assert len(p["samples"]) == len(p["weights"]), "samples and weights differ in length"
        samples = []
        for s in p["samples"]:
            samples.append([Frame(frames[i]["name"], frames[i].get("file"), frames[i].get("line"))
                            for i in s])
        profiles.append({"name": p["name"], "unit": p["unit"], "samples": samples,
                         "weights": p["weights"], "start": p["startValue"], "end": p["endValue"]})
    return {"doc": doc, "profiles": profiles}


def speedscope_stack_counts(parsed):
    """Counter of root-first stacks (tuples of Frames) over all profiles of a parsed speedscope."""
    c = collections.Counter()
    for p in parsed["profiles"]:
        for s in p["samples"]:
            c[tuple(s)] += 1
    return c


def short_name(path):
    """py-spy's short filename for a file outside any package: its basename."""
    return os.path.basename(path)


# --------------------------------------------------------------------------------------------
# record: the "Wrote ..." line, mixspy in the background, raw stacks by function

WROTE_RE = re.compile(r"^mixspy> Wrote .* to '(?P<path>.*)'\. Samples: (?P<samples>\d+) "
                      r"Errors: (?P<errors>\d+)$")


def parse_wrote(stderr):
    """The `Wrote ... to 'PATH'. Samples: N Errors: E` line of `mixspy record` (py-spy §1.8) ->
    (path, N, E). Fails the test when there is not exactly one such line."""
    hits = [WROTE_RE.match(ANSI.sub("", line)) for line in stderr.splitlines()]
    hits = [m for m in hits if m]
    if len(hits) != 1:
        pytest.fail("expected one 'Wrote ... Samples: N Errors: E' line, got %d in:\n%s"
                    % (len(hits), stderr), pytrace=False)
    m = hits[0]
    return m.group("path"), int(m.group("samples")), int(m.group("errors"))


def prioritize(pid, nice=-15):
    """Raise a process's CPU priority, for measurements that a loaded machine would blur (a
    runnable target that is not running is sampled at one spot again and again). Each workload
    and mixspy run in their own session, so with autogroup scheduling (Debian's default) the
    session's autogroup nice is what counts; the process nice is set too. Best effort."""
    try:
        with open("/proc/%d/autogroup" % pid, "w") as f:
            f.write("%d" % nice)
    except OSError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass


class Background(object):
    """./mixspy running in the background (own session), for tests that signal it mid-record.
    With priority (a nice value, e.g. -10), it runs at a raised CPU priority (see prioritize);
    a program it launches shares its session and so its priority."""

    def __init__(self, args, cwd=None, priority=False, env=None):
        if not os.access(MIXSPY, os.X_OK):
            pytest.fail("mixspy binary not found at %s (run `make` first)" % MIXSPY, pytrace=False)
        self.argv = [MIXSPY] + [str(a) for a in args]
        # The child has its own session (and so autogroup) before preexec_fn runs.
        pre = (lambda: prioritize(os.getpid(), priority)) if priority else None
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=dict(os.environ, NO_COLOR="1", **(env or {})),
                                     cwd=cwd, start_new_session=True, preexec_fn=pre)
        self.pid = self.proc.pid

    def signal(self, sig, group=False):
        if group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    def wait(self, timeout=30):
        """-> (rc, stdout, stderr); kills the process group and fails the test on timeout."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            out, err = self.proc.communicate()
            pytest.fail("mixspy %s did not end within %s s\nstderr:\n%s"
                        % (" ".join(self.argv[1:]), timeout, err.decode("utf-8", "replace")),
                        pytrace=False)
        return (self.proc.returncode, out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)


def record_while(args, act, env=None, timeout=60):
    """Start `mixspy ARGS` in the background, call act() once it says it samples, and wait for
    it: -> (rc, stderr)."""
    bg = Background(args, env=env)
    try:
        first = bg.proc.stderr.readline().decode("utf-8", "replace")
        assert "Sampling process" in first, first
        act()
        rc, _, err = bg.wait(timeout)
    finally:
        bg.kill()
    return rc, first + err


def wait_for_file_content(path, predicate, timeout=10.0):
    """Wait until path exists and predicate(its text) holds; returns the text or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if predicate(text):
                return text
        except OSError:
            pass
        time.sleep(0.02)
    return None


def leaf_counts(stacks, names=None):
    """Counter of leaf-most function among names (or the leaf) for each collapsed stack: a stack
    counts for the innermost frame whose name is in names."""
    c = collections.Counter()
    for frames, n in stacks.items():
        for fr in reversed(frames):
            if names is None or fr.name in names:
                c[fr.name] += n
                break
    return c


def check_busy_75_25(stacks, n, min_total):
    """A profile of busy_75_25.py: heavy() and light() hold at least 80% of its n samples (and
    min_total of them), heavy() 75% +- 5 of those, and every work() frame sits on a line of its
    body, at least a fifth of them on the hot one. Returns (heavy()'s share, heavy + light)."""
    by = leaf_counts(stacks, {"heavy", "light"})
    total = by["heavy"] + by["light"]
    assert total >= 0.8 * n and total >= min_total, "too few samples in heavy/light: %s of %d" % (by, n)
    share = 100.0 * by["heavy"] / total
    assert abs(share - 75.0) <= 5.0, "heavy got %.1f%% of %d samples, expected 75 +- 5" % (share, total)
    busy = os.path.join(NATIVE_EXT, "busy_75_25.py")
    hot, first = marker_line(busy, "# WORK-LINE"), marker_line(busy, "def work(units):")
    lines = collections.Counter()
    for frames, k in stacks.items():
        for f in frames:
            if f.name == "work":
                assert f.file == "busy_75_25.py", f
                lines[f.line] += k
                break
    assert all(first <= l <= hot + 1 for l in lines), lines
    assert lines[hot] >= 0.2 * sum(lines.values()), lines
    return share, total
