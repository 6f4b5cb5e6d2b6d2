"""test_upload.py - continuous profiling: `record --upload` against a Pyroscope-style receiver.

The receiver is a small http.server on 127.0.0.1 (a free port), started by the test. It records
every POST /ingest (query parameters and body), and can be told to fail chosen requests with a
503 so that the retry path is exercised. Checks: every window of a 20 s run arrives exactly once,
the windows [from, until) follow each other with no gap and no overlap, the query carries the
app name, tags, format and sample rate, each body parses (folded lines; pprof through
`go tool pprof`), and the windows add up to the whole-run profile written with -o.
Also: `--rotate` writes time-stamped files, and bad URLs and flag combinations are refused.
"""
import glob
import gzip
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RUN_SECONDS = 20
INTERVAL = 2


class Receiver(object):
    """A loopback HTTP server that keeps what it receives."""

    def __init__(self, fail_first=()):
        self.posts = []             # (path, {param: value}, body) of accepted requests
        self.attempts = 0
        self.fail_first = set(fail_first)   # attempt numbers (1-based) answered with 503
        self.lock = threading.Lock()
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                with recv.lock:
                    recv.attempts += 1
                    fail = recv.attempts in recv.fail_first
                    if not fail:
                        recv.posts.append((url.path, params, body, dict(self.headers)))
                self.send_response(503 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail_first=(3, 7, 8))
    yield r
    r.close()


def folded_total(body):
    total = 0
    for line in body.decode("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        assert stack and count.isdigit(), "bad folded line %r" % line
        total += int(count)
    return total


def check_contiguous(windows, interval):
    spans = sorted((int(p["from"]), int(p["until"])) for p in windows)
    assert len(set(spans)) == len(spans), "duplicate windows: %s" % spans
    for (f0, u0), (f1, u1) in zip(spans, spans[1:]):
        assert u0 == f1, "gap or overlap between [%d,%d) and [%d,%d)" % (f0, u0, f1, u1)
    for f, u in spans:
        assert 0 < u - f <= interval, "window [%d,%d) is not within one interval" % (f, u)
    # Interior windows are whole and aligned to multiples of the interval.
    for f, u in spans[1:-1]:
        assert u - f == interval and f % interval == 0, (f, u)
    return spans


def raw_total(path):
    with open(path, "rb") as f:
        return folded_total(f.read())


def test_upload_folded_every_window(receiver, tmp_path, debian_interp):
    whole = str(tmp_path / "whole.txt")
    script = os.path.join(harness.NATIVE_EXT, "busy_75_25.py")
    rc, out, err = harness.run_mixspy(
        ["record", "--upload", receiver.url, "--interval", INTERVAL, "--app-name", "busy",
         "--tag", "env=test", "--tag", "host.name=ci", "-f", "raw", "-o", whole,
         "-d", RUN_SECONDS, "--", debian_interp.path, script, "--seconds", RUN_SECONDS + 10],
        timeout=RUN_SECONDS + 60)
    assert rc == 0, err
    windows = [p for _, p, _, _ in receiver.posts]
    spans = check_contiguous(windows, INTERVAL)
    covered = spans[-1][1] - spans[0][0]
    assert RUN_SECONDS <= covered <= RUN_SECONDS + INTERVAL + 1, spans
    assert "Uploaded %d of %d windows" % (len(spans), len(spans)) in err, err
    assert "3 retries" in err, err   # three 503s, each retried
    for path, p, body, headers in receiver.posts:
        assert path == "/ingest"
        assert p["name"] == "busy.cpu{env=test,host.name=ci}", p
        assert p["format"] == "folded" and p["sampleRate"] == "100", p
        assert p["spyName"] and p["units"] == "samples" and p["aggregationType"] == "sum", p
        assert headers.get("User-Agent", "").startswith("mixspy/")
    bodies = [b for _, _, b, _ in receiver.posts]
    total = sum(folded_total(b) for b in bodies)
    # Complete: the windows hold exactly the samples of the whole-run file.
    assert total == raw_total(whole), (total, raw_total(whole))
    assert total > RUN_SECONDS * 50
    # Every interior window has samples of the busy loop.
    for (f, u), (_, _, b, _) in zip(spans, sorted(receiver.posts, key=lambda x: int(x[1]["from"]))):
        if (f, u) not in (spans[0], spans[-1]):
            assert b"heavy" in b, (f, u)


@pytest.mark.skipif(not shutil.which("go"), reason="go (golang-go) is not installed")
def test_upload_pprof_go_tool_reads_each_window(tmp_path, debian_interp):
    receiver = Receiver()
    try:
        script = os.path.join(harness.NATIVE_EXT, "busy_75_25.py")
        rc, out, err = harness.run_mixspy(
            ["record", "--upload", receiver.url + "/", "--interval", 1, "-f", "pprof",
             "-o", str(tmp_path / "whole.pb.gz"), "-d", 5, "--", debian_interp.path, script,
             "--seconds", 15], timeout=60)
        assert rc == 0, err
        windows = [p for _, p, _, _ in receiver.posts]
        check_contiguous(windows, 1)
        assert len(windows) >= 5
        env = dict(os.environ, HOME=str(tmp_path), PPROF_TMPDIR=str(tmp_path))
        for i, (path, p, body, _) in enumerate(receiver.posts):
            assert p["format"] == "pprof" and p["name"] == "busy_75_25.cpu{}", p
            assert body[:2] == b"\x1f\x8b", "not gzip"
            gzip.decompress(body)
            f = tmp_path / ("w%d.pb.gz" % i)
            f.write_bytes(body)
            r = subprocess.run(["go", "tool", "pprof", "-symbolize=none", "-raw", str(f)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120,
                               universal_newlines=True)
            assert r.returncode == 0, r.stderr
            assert "samples/count" in r.stdout
    finally:
        receiver.close()


def test_upload_server_down_never_blocks(tmp_path, debian_interp):
    """Nothing listens: sampling goes on, the run ends on time, failures are reported."""
    r = Receiver()
    url = r.url
    r.close()   # the port is now closed
    script = os.path.join(harness.NATIVE_EXT, "busy_75_25.py")
    out_file = str(tmp_path / "x.txt")
    rc, out, err = harness.run_mixspy(
        ["record", "--upload", url, "--interval", 1, "-f", "raw", "-o", out_file, "-d", 3, "--",
         debian_interp.path, script, "--seconds", 10], timeout=60)
    assert rc == 0, err
    assert "Uploaded 0 of" in err and "Last upload error" in err, err
    assert raw_total(out_file) > 100


def test_rotate_writes_timestamped_files(tmp_path, debian_interp):
    script = os.path.join(harness.NATIVE_EXT, "busy_75_25.py")
    base = str(tmp_path / "prof.txt")
    rc, out, err = harness.run_mixspy(
        ["record", "--rotate", 1, "-f", "raw", "-o", base, "-d", 4, "--", debian_interp.path,
         script, "--seconds", 10], timeout=60)
    assert rc == 0, err
    files = sorted(glob.glob(str(tmp_path / "prof-*.txt")))
    assert 4 <= len(files) <= 6, (files, err)
    assert not os.path.exists(base)
    assert sum(raw_total(f) for f in files) > 200


@pytest.mark.parametrize("args,msg", [
    (["--upload", "https://example.com"], "https is not supported"),
    (["--upload", "ftp://x"], "expected http://"),
    (["--upload", "http://h:99999"], "bad port"),
    (["--interval", "5"], "needs '--upload <url>'"),
    (["--upload", "http://h", "--tag", "novalue"], "expected KEY=VALUE"),
    (["--upload", "http://h", "--interval", "0"], "whole number of seconds"),
    (["--rotate", "x"], "whole number of seconds"),
])
def test_upload_bad_flags(args, msg):
    rc, out, err = harness.run_mixspy(["record"] + args + ["--", "true"], timeout=20)
    assert rc == 2 and msg in err, (rc, err)


# ------------------------------------------------------------------------------------------
# Under sudo (root with SUDO_UID/SUDO_GID, as sudo sets them): the launched program runs as the
# invoking user and the files mixspy writes belong to that user.

SUDO_TEST_USER = "mixspy-it-user"


def _throwaway_user():
    import pwd
    try:
        return pwd.getpwnam(SUDO_TEST_USER)
    except KeyError:
        pass
    if not shutil.which("useradd"):
        return None
    r = subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", SUDO_TEST_USER],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        return pwd.getpwnam(SUDO_TEST_USER)
    except KeyError:
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the test plays sudo)")
def test_sudo_child_runs_as_invoking_user(tmp_path, debian_interp):
    user = _throwaway_user()
    if user is None:
        pytest.skip("can't create a throwaway user (useradd)")
    outdir = tmp_path / "out"
    outdir.mkdir()
    out_file = str(outdir / "prof.txt")
    prog = ("import os, time\n"
            "print('ids %d %d' % (os.getuid(), os.getgid()), flush=True)\n"
            "t = time.time()\n"
            "while time.time() - t < 2: sum(range(1000))\n")
    env = dict(os.environ, SUDO_UID=str(user.pw_uid), SUDO_GID=str(user.pw_gid),
               SUDO_USER=SUDO_TEST_USER, NO_COLOR="1")
    p = subprocess.run([harness.MIXSPY, "record", "-f", "raw", "-o", out_file, "--rotate", "1",
                        "--", debian_interp.path, "-c", prog], cwd="/", env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    assert "ids %d %d" % (user.pw_uid, user.pw_gid) in p.stdout, p.stdout
    rotated = glob.glob(str(outdir / "prof-*.txt"))
    assert rotated, p.stderr
    for f in rotated:
        st = os.stat(f)
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), f
    # The whole-run file too (no --rotate).
    p = subprocess.run([harness.MIXSPY, "record", "-f", "raw", "-o", out_file, "--",
                        debian_interp.path, "-c", prog], cwd="/", env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, universal_newlines=True)
    assert p.returncode == 0, p.stderr
    st = os.stat(out_file)
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
    assert raw_total(out_file) > 50
    # Without SUDO_UID nothing changes: root's program, root's file.
    env.pop("SUDO_UID")
    env.pop("SUDO_GID")
    os.unlink(out_file)
    p = subprocess.run([harness.MIXSPY, "record", "-f", "raw", "-o", out_file, "--",
                        debian_interp.path, "-c", prog], cwd="/", env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, universal_newlines=True)
    assert "ids 0 0" in p.stdout and os.stat(out_file).st_uid == 0
