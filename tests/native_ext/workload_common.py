"""workload_common.py - argument parsing and the readiness handshake shared by the test workloads.

Every workload takes --ready PATH (written once the workload is in its steady state: "ready\n" then
its pid, then optional extra lines) and --seconds N (how long to run at most, default 30).
Runs on Python 2.7 and 3.6+.
"""
from __future__ import print_function

import argparse
import json
import os
import sys
# Imported for its side effect: the threading module registers the main thread as "MainThread" in
# threading._active, where profilers find thread names. Without it a process has no thread names.
import threading  # noqa: F401
import traceback


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ready", help="file to write 'ready\\n<pid>' into once in the steady state")
    p.add_argument("--seconds", type=float, default=30.0, help="run for at most this long")
    return p


def signal_ready(path, extra_lines=()):
    """Write the ready file atomically (write then rename), so a reader never sees half of it."""
    if not path:
        return
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("ready\n%d\n" % os.getpid())
        for line in extra_lines:
            f.write("%s\n" % line)
    os.rename(tmp, path)


def stack_as_records(stack):
    """traceback.extract_stack() output (outermost first) as JSON-friendly dicts."""
    out = []
    for entry in stack:
        filename, lineno, name, _line = tuple(entry)[:4]
        if isinstance(filename, bytes):
            filename = filename.decode("utf-8", "replace")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        out.append({"file": filename, "line": lineno, "name": name})
    return out


def write_expect(path, stack, **extra):
    """Record Python's own view of the current stack plus facts about the interpreter."""
    if not path:
        return
    import platform
    data = {
        "pid": os.getpid(),
        "frames": stack_as_records(stack),
        "python_version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "executable": os.path.realpath(sys.executable),
    }
    data.update(extra)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.rename(tmp, path)


def current_stack():
    """The caller's stack, outermost first, without this helper's own frame."""
    return traceback.extract_stack()[:-1]


def load_ext(ext_dir):
    """Import mixspy_testext from the directory build.sh wrote it to."""
    if not ext_dir:
        print("this workload needs --ext DIR (the built mixspy_testext)", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, os.path.abspath(ext_dir))
    import mixspy_testext
    return mixspy_testext
