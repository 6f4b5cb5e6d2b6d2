"""test_interop.py - the pstats and callgrind files and `mixspy merge`, checked by the real tools.

busy_75_25.py spends all its own time in work(), called 3x as much from heavy() as from light().
Each recording attaches to the running workload; the numbers the tools print are compared with
our own raw output of the same samples (`mixspy merge -f pstats run.raw` converts exactly the
samples of run.raw), so they must agree to the sample:

  pstats       Debian's /usr/bin/python3 loads the file with pstats.Stats and `python -m pstats`:
               work() is first by own time, its cumulative share and heavy()'s equal raw's.
  callgrind    valgrind's callgrind_annotate: PROGRAM TOTALS and the top function's samples equal
               raw's total and work()'s samples.
  merge        merging runs gives the sum of their counts, stack by stack (raw), and in total
               across formats (speedscope + pprof + raw); `go tool pprof -raw` reads the merged
               pprof and sums to the same total.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

import harness
from harness import assert_not_stopped, parse_collapsed, parse_speedscope, run_mixspy

BUSY = "busy_75_25.py"
# A couple of interpreters is enough here: the writers never see the interpreter.
INTEROP_IDS = ("py3.11-debian", "py3.12", "py3.8")
PYTHON = harness.DEBIAN_PYTHON


@pytest.fixture
def busy(interp, start):
    if interp.id not in INTEROP_IDS:
        pytest.skip("interop checks run on %s only" % ", ".join(INTEROP_IDS))
    return start(interp, BUSY, ["--seconds", "60"])


def record(pid, fmt, path, seconds=2):
    rc, out, err = run_mixspy(["record", "--pid", pid, "-d", seconds, "-f", fmt, "-o", path,
                               "--hideprogress"], timeout=60)
    assert_not_stopped(pid)
    assert rc == 0, "mixspy record -f %s failed (rc %d):\n%s" % (fmt, rc, err)
    assert os.path.getsize(path) > 0
    return err


def merge(out, fmt, *inputs):
    rc, _, err = run_mixspy(["merge", "-o", out, "-f", fmt] + list(inputs), timeout=60)
    assert rc == 0, "mixspy merge failed (rc %d):\n%s" % (rc, err)
    return err


def raw_stacks(path):
    with open(path) as f:
        stacks = parse_collapsed(f.read())
    assert stacks, "empty raw profile %s" % path
    return stacks


def samples_with(stacks, name):
    """Samples with a function of this name anywhere on the stack (once per sample)."""
    return sum(n for s, n in stacks.items() if any(f.name == name for f in s))


def leaf_samples(stacks, name):
    return sum(n for s, n in stacks.items() if s[-1].name == name)


PSTATS_SCRIPT = r"""
import json, pstats, sys
st = pstats.Stats(sys.argv[1])
st.sort_stats('tottime')
rows = [(k[0], k[1], k[2], v[0], v[1], v[2], v[3]) for k, v in st.stats.items()]
print(json.dumps({"total_tt": st.total_tt, "total_calls": st.total_calls,
                  "order": [list(f) for f in st.fcn_list], "rows": rows}))
"""


def load_pstats(path):
    out = subprocess.run([PYTHON, "-c", PSTATS_SCRIPT, path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert out.returncode == 0, "pstats.Stats could not load %s:\n%s" % (path, out.stderr)
    d = json.loads(out.stdout)
    d["by_name"] = {r[2]: r for r in d["rows"]}
    return d


def pstats_cli_top(path):
    """The first function row `python -m pstats` prints after `sort tottime` / `stats 3`."""
    out = subprocess.run([PYTHON, "-m", "pstats", path], input="sort tottime\nstats 3\nquit\n",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    hdr = [i for i, l in enumerate(lines) if "filename:lineno(function)" in l]
    assert hdr, "no stats table in python -m pstats output:\n%s" % out.stdout
    return lines[hdr[0] + 1], out.stdout


def test_pstats_read_by_python(busy, tmp_path):
    raw = str(tmp_path / "run.raw")
    record(busy.pid, "raw", raw)
    stacks = raw_stacks(raw)
    total = sum(stacks.values())
    conv = str(tmp_path / "conv.pstats")
    merge(conv, "pstats", raw)
    st = load_pstats(conv)

    # Top by own time is work(), with all the samples that end in it.
    top = st["order"][0]
    assert top[2] == "work", "top function by tottime is %r, expected work" % (top,)
    w = st["by_name"]["work"]
    rate = 100.0
    assert abs(w[5] * rate - leaf_samples(stacks, "work")) < 0.5
    # Cumulative shares equal raw's to the sample.
    for name in ("work", "heavy", "light", "main"):
        got = st["by_name"][name][6] * rate
        assert abs(got - samples_with(stacks, name)) < 0.5, (name, got, samples_with(stacks, name))
    assert abs(st["total_tt"] * rate - total) < 0.5
    heavy, light = samples_with(stacks, "heavy"), samples_with(stacks, "light")
    assert 0.6 < heavy / float(heavy + light) < 0.9, (heavy, light)

    row, text = pstats_cli_top(conv)
    assert row.rstrip().endswith("(work)"), "python -m pstats lists first:\n%s" % text

    # Recorded directly as pstats: the same shape (a different run, so shares loosely).
    direct = str(tmp_path / "direct.pstats")
    record(busy.pid, "pstats", direct)
    st = load_pstats(direct)
    assert st["order"][0][2] == "work"
    assert st["order"][0][0].endswith(BUSY)
    h, l = st["by_name"]["heavy"][6], st["by_name"]["light"][6]
    assert 0.6 < h / (h + l) < 0.9, (h, l)
    row, text = pstats_cli_top(direct)
    assert row.rstrip().endswith("(work)"), text


def callgrind_annotate(path):
    tool = shutil.which("callgrind_annotate")
    if not tool:
        pytest.fail("callgrind_annotate (valgrind) is not installed", pytrace=False)
    out = subprocess.run([tool, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=60)
    assert out.returncode == 0, "callgrind_annotate failed:\n%s" % out.stderr
    assert "WARNING" not in out.stderr, out.stderr
    text = out.stdout
    m = re.search(r"^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
    assert m, "no PROGRAM TOTALS in callgrind_annotate output:\n%s" % text
    total = int(m.group(1).replace(",", ""))
    sec = text.split("file:function", 1)[1]
    m = re.search(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+):(\S+)", sec, re.M)
    assert m, "no function rows in callgrind_annotate output:\n%s" % text
    return total, int(m.group(1).replace(",", "")), m.group(3), text


def test_callgrind_read_by_callgrind_annotate(busy, tmp_path):
    raw = str(tmp_path / "run.raw")
    record(busy.pid, "raw", raw)
    stacks = raw_stacks(raw)
    conv = str(tmp_path / "conv.callgrind")
    merge(conv, "callgrind", raw)
    total, top_n, top_fn, text = callgrind_annotate(conv)
    assert total == sum(stacks.values()), text
    assert top_fn == "work", text
    assert top_n == leaf_samples(stacks, "work"), text

    direct = str(tmp_path / "direct.callgrind")
    record(busy.pid, "callgrind", direct)
    with open(direct) as f:
        body = f.read()
    summary = int(re.search(r"^summary: (\d+)$", body, re.M).group(1))
    total, top_n, top_fn, text = callgrind_annotate(direct)
    assert total == summary and total > 50, text
    assert top_fn == "work", text
    assert top_n > 0.9 * total, text


def go_pprof_raw_total(path):
    if not shutil.which("go"):
        pytest.fail("go is not installed (go tool pprof reads our pprof)", pytrace=False)
    out = subprocess.run(["go", "tool", "pprof", "-raw", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert out.returncode == 0, "go tool pprof -raw failed:\n%s" % out.stderr
    counts = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+\d+: [\d ]+$", out.stdout, re.M)]
    assert counts, out.stdout
    return sum(counts)


def test_merge_adds_up(busy, tmp_path):
    a, b = str(tmp_path / "a.raw"), str(tmp_path / "b.raw")
    record(busy.pid, "raw", a, seconds=1)
    record(busy.pid, "raw", b, seconds=1)
    merged = str(tmp_path / "ab.raw")
    merge(merged, "raw", a, b)
    want = raw_stacks(a) + raw_stacks(b)
    got = raw_stacks(merged)
    assert got == want, "merge is not the stack-by-stack sum:\n%s\n!=\n%s" % (got, want)

    # Across formats: speedscope + pprof + raw.
    ss, pp = str(tmp_path / "c.json"), str(tmp_path / "d.pb.gz")
    record(busy.pid, "speedscope", ss, seconds=1)
    record(busy.pid, "pprof", pp, seconds=1)
    ss_total = sum(int(round(w * 100)) for p in parse_speedscope(ss)["profiles"] for w in p["weights"])
    pp_total = go_pprof_raw_total(pp)
    a_total = sum(raw_stacks(a).values())
    out = str(tmp_path / "all.pb.gz")
    merge(out, "pprof", ss, pp, a)
    assert go_pprof_raw_total(out) == ss_total + pp_total + a_total

    # The same speedscope file twice: every stack doubles.
    once, twice = str(tmp_path / "once.raw"), str(tmp_path / "twice.raw")
    merge(once, "raw", ss)
    merge(twice, "raw", ss, ss)
    one = raw_stacks(once)
    assert sum(one.values()) == ss_total
    assert raw_stacks(twice) == one + one
