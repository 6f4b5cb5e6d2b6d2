"""test_top.py - `mixspy top`: the plain table (stdout not a terminal) parsed on every interpreter, and
the ncurses view driven in tmux (send-keys, capture-pane) on Debian's python3.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import harness
from harness import assert_not_stopped

ROW_RE = re.compile(r"^\s*(\d+\.\d\d)%\s+(\d+\.\d\d)%\s+(\d+(?:\.\d+)?)s\s+(\d+(?:\.\d+)?)s\s+(\d+\.\d\d)%  (.*)$")
HEADER_COLS = re.compile(r"^\s*%Own\s+%Total\s+OwnTime\s+TotalTime\s+%GIL\s+Function \(filename(:line)?\)$")
GIL_LINE = re.compile(r"^GIL: (\d+\.\d\d)%, Active: (\d+\.\d\d)%, Threads: (\d+)")


def parse_tables(text):
    """Plain `top` output -> list of tables: {samples, gil, active, threads, by_line, rows: [dict]}."""
    tables = []
    for block in text.split("Collecting samples from ")[1:]:
        t = {"rows": []}
        in_rows = False
        for line in block.splitlines()[1:]:
            if line.startswith("Total Samples "):
                t["samples"] = int(line.split()[2].rstrip(","))
            elif GIL_LINE.match(line):
                m = GIL_LINE.match(line)
                t["gil"], t["active"], t["threads"] = float(m.group(1)), float(m.group(2)), int(m.group(3))
            elif HEADER_COLS.match(line):
                t["by_line"] = bool(HEADER_COLS.match(line).group(1))
                in_rows = True
            elif in_rows and line.strip():
                m = ROW_RE.match(line)
                assert m, "unparsable top row %r" % line
                f = harness.parse_frame_label(m.group(6))
                t["rows"].append({"own": float(m.group(1)), "total": float(m.group(2)),
                                  "owntime": float(m.group(3)), "totaltime": float(m.group(4)),
                                  "gil": float(m.group(5)), "name": f.name, "file": f.file, "line": f.line})
            elif in_rows:
                break
        assert "samples" in t and "gil" in t and in_rows, "incomplete top table:\n%s" % block
        tables.append(t)
    return tables


def run_top_plain(args, seconds):
    """Run `mixspy top` with stdout a pipe for `seconds`, then Ctrl-C it. Returns (rc, out, err)."""
    proc = subprocess.Popen([harness.MIXSPY, "top"] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("mixspy top did not stop on SIGINT:\n%s" % err.decode("utf-8", "replace"))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def test_top_plain_gil_column(interp, ext_dir, start):
    w = start(interp, "gil_two_threads.py", ["--ext", ext_dir, "--seconds", 120])
    rc, out, err = run_top_plain(["--pid", w.pid, "--delay", 1], 4.5)
    assert_not_stopped(w.pid)
    assert rc == 0, err
    tables = parse_tables(out)
    assert len(tables) >= 3, "expected one table per refresh:\n%s\n%s" % (out, err)
    last = tables[-2]   # the last full window (the final one is what came in after it)
    assert not last["by_line"], "top starts aggregated by function"
    assert last["threads"] >= 2 and last["samples"] > 0, last
    # py-spy's percentages divide by ticks: the two busy threads are active at every tick.
    assert last["active"] >= 90, last
    top2 = {r["name"]: r for r in last["rows"][:2]}
    assert set(top2) == {"py_busy", "c_busy"}, "the two busy functions must lead:\n%s" % out
    # The GIL share over every full window, weighted by samples: one window of a loaded
    # machine holds too few ticks (~20) to judge a share on its own.
    def gil_share(name):
        rows = [r for t in tables[:-1] for r in t["rows"] if r["name"] == name]
        own = sum(r["owntime"] for r in rows)
        return sum(r["gil"] * r["owntime"] for r in rows) / own if own else 0.0
    assert gil_share("py_busy") >= 80, "py_busy runs holding the GIL:\n%s" % out
    assert gil_share("c_busy") <= 10, "c_busy runs in a kernel without the GIL:\n%s" % out
    for r in top2.values():
        assert r["own"] >= 80 and r["total"] >= r["own"], out
        assert r["totaltime"] >= r["owntime"] > 0, out
    assert "Stopped sampling because Control-C pressed" in err, err


def test_top_plain_gil_flag(debian_interp, start, tmp_path):
    """--gil: only the holder's samples, so every row's GIL share is 100%."""
    w = start(debian_interp, "gil_contention.py", ["--threads", 3, "--seconds", 120])
    rc, out, err = run_top_plain(["--pid", w.pid, "--delay", 1, "--gil"], 3.5)
    assert rc == 0, err
    tables = parse_tables(out)
    assert tables and tables[0]["rows"], out
    for t in tables:
        for r in t["rows"]:
            assert r["gil"] == 100.0, out
    assert tables[0]["rows"][0]["name"] == "contend", out


def test_top_launched_exit(debian_interp):
    """A launched program that ends ends top, with its exit status."""
    rc = subprocess.run([harness.MIXSPY, "top", "--delay", "0.5", "--", debian_interp.path,
                         os.path.join(harness.NATIVE_EXT, "gil_contention.py"), "--threads", "2", "--seconds", "2"],
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                        universal_newlines=True)
    assert rc.returncode == 0, rc.stderr
    tables = parse_tables(rc.stdout)
    assert tables and any(r["name"] == "contend" for r in tables[-1]["rows"]), rc.stdout
    assert "Stopped sampling because process exited" in rc.stderr, rc.stderr


# ---------------------------------------------------------------------------------------------
# ncurses, in tmux

class Tmux(object):
    def __init__(self, tmp_path):
        self.sock = str(tmp_path / "tmux.sock")

    def run(self, *args):
        return subprocess.run(["tmux", "-S", self.sock] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=20)

    def capture(self):
        return self.run("capture-pane", "-p", "-t", "t").stdout

    def display(self, fmt):
        return self.run("display-message", "-p", "-t", "t", fmt).stdout.strip()

    def wait_for(self, pred, timeout):
        deadline = time.time() + timeout
        screen = ""
        while time.time() < deadline:
            screen = self.capture()
            if pred(screen):
                return screen
            time.sleep(0.2)
        return None

    def kill(self):
        self.run("kill-server")


@pytest.fixture
def tmux(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    t = Tmux(tmp_path)
    yield t
    t.kill()


def first_row(screen):
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if HEADER_COLS.match(line.rstrip()):
            for row in lines[i + 1:]:
                m = ROW_RE.match(row.rstrip())
                if m:
                    return harness.parse_frame_label(m.group(6)), m
            return None, None
    return None, None


def total_samples(screen):
    m = re.search(r"Total Samples (\d+)", screen)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_top_tmux(debian_interp, start, tmux, tmp_path, quit_key):
    w = start(debian_interp, "gil_contention.py", ["--threads", 2, "--seconds", 120])
    done = str(tmp_path / "done")
    # The shell ignores SIGINT (mixspy installs its own handler) so that it lives to write the status.
    cmd = "trap \"\" INT; %s top --pid %d --delay 1; echo $? > %s; sleep 60" % (harness.MIXSPY, w.pid, done)
    tmux.run("new-session", "-d", "-s", "t", "-x", "140", "-y", "40", cmd)
    # The hot function leads within two refreshes (--delay 1, plus the early ones at 10 and 100 ticks).
    screen = tmux.wait_for(lambda s: first_row(s)[0] is not None and first_row(s)[0].name == "contend", 3.5)
    assert screen, "contend() is not the first row after two refreshes:\n%s" % tmux.capture()
    assert "Total Samples" in screen and "GIL:" in screen and "Active:" in screen
    assert tmux.display("#{alternate_on}") == "1", "top draws on the alternate screen"

    # Keys: line aggregation shows file:line; sort by %GIL bolds another column and keeps the table.
    # The loop's body leads once a refresh holds enough samples: the thread waiting for the GIL stands
    # at it, the holder splits its time between it and the for line (at 10 ticks they could tie).
    tmux.run("send-keys", "-t", "t", "L")
    screen = tmux.wait_for(lambda s: "Function (filename:line)" in s and total_samples(s) >= 150, 4)
    assert screen, "L did not switch to line aggregation:\n%s" % tmux.capture()
    line = harness.marker_line(os.path.join(harness.NATIVE_EXT, "gil_contention.py"), "# CONTEND-LINE")
    assert first_row(screen)[0] == harness.Frame("contend", "gil_contention.py", line), screen
    tmux.run("send-keys", "-t", "t", "5")
    tmux.run("send-keys", "-t", "t", "p")
    assert tmux.wait_for(lambda s: "[paused]" in s, 3), tmux.capture()
    tmux.run("send-keys", "-t", "t", "p")
    tmux.run("send-keys", "-t", "t", "r")
    assert tmux.wait_for(lambda s: "[paused]" not in s and "Total Samples" in s, 3), tmux.capture()

    tmux.run("send-keys", "-t", "t", quit_key)
    deadline = time.time() + 10
    while time.time() < deadline and not os.path.exists(done):
        time.sleep(0.1)
    assert os.path.exists(done), "top did not exit on %s:\n%s" % (quit_key, tmux.capture())
    time.sleep(0.2)
    with open(done) as f:
        assert f.read().strip() == "0"
    # The terminal is restored: main screen, cursor visible, the table gone.
    assert tmux.display("#{alternate_on}") == "0", "top left the alternate screen on"
    assert tmux.display("#{cursor_flag}") == "1", "top left the cursor hidden"
    assert "%Own" not in tmux.capture()
    assert_not_stopped(w.pid)
