"""test_formats.py - every file `mixspy record` writes is accepted by its real client, on every
interpreter (py-spy §2.2, §2.4, §2.6; tests/clients/check.py):

  speedscope   jsonschema against the schema shipped in npm speedscope, then speedscope's own app
               (headless Chromium) loads it: the page title names the profile, no error
  chrometrace  the speedscope app loads it too (its Chrome trace importer)
  pprof        `go tool pprof -top` reads it; its top function and total match what our file says
               (decoded here independently) and the "Wrote ... Samples: N" line
  flamegraph   xmllint accepts the SVG; Chromium renders it (its script runs) and a screenshot of it
               is produced

Chromium starts slowly, so each interpreter's files are checked in one Chromium run: one page
holding the speedscope app twice (speedscope file, chrome trace) and the SVG in iframes, which reads
each frame's title and state back into its own DOM, dumped with --dump-dom, while --screenshot
takes the picture. The recordings of one interpreter run two at a time on two targets.
"""
import base64
import gzip
import html
import json
import os
import re
import subprocess
import sys
import urllib.parse

import pytest

import harness
from harness import Background, assert_not_stopped, parse_speedscope, parse_wrote

sys.path.insert(0, os.path.join(harness.REPO, "tests", "clients"))
import check  # noqa: E402

RATE = 200
SECONDS = 0.8
FORMATS = [("speedscope", "json"), ("chrometrace", "json"), ("pprof", "pb.gz"), ("flamegraph", "svg")]


def record_all(interp, start, tmp_path):
    """Record each format from a busy_75_25 target. -> {format: (path, N, errors, stderr)}."""
    ws = [start(interp, "busy_75_25.py", ["--seconds", 60], name="busy%d" % i) for i in range(2)]
    for w in ws:
        harness.prioritize(w.pid, -10)
    res = {}
    for batch in (FORMATS[0::2], FORMATS[1::2]):
        bgs = []
        for w, (fmt, ext) in zip(ws, batch):
            out = str(tmp_path / ("profile-%s.%s" % (fmt, ext)))
            bgs.append((fmt, out, Background(["record", "--pid", w.pid, "-d", SECONDS, "-r", RATE,
                                              "-f", fmt, "-o", out], priority=-10)))
        for fmt, out, bg in bgs:
            rc, _, err = bg.wait()
            assert rc == 0, "record -f %s failed (rc %d):\n%s" % (fmt, rc, err)
            path, n, errors = parse_wrote(err)
            assert path == out, err
            assert n >= 0.3 * RATE * SECONDS, "-f %s: only %d samples\n%s" % (fmt, n, err)
            assert os.path.getsize(out) > 0
            res[fmt] = (out, n, errors, err)
    for w in ws:
        assert_not_stopped(w.pid)
        w.kill()     # the checks below need the CPU
    return res


# ---------------------------------------------------------------------------------------------
# pprof, decoded here (no protobuf library needed) to know what the file says

def _varint(b, i):
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def _fields(b):
    """(field number, wire type, value) of one protobuf message; value is int or bytes."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise AssertionError("pprof: bad wire type %d" % wt)
        yield num, wt, v


def _ints(wt, v):
    """A repeated integer field, packed (bytes) or not."""
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def pprof_flat(path):
    """-> (Counter of leaf function name -> samples (first sample value), total samples)."""
    data = gzip.decompress(open(path, "rb").read())
    strings, samples, locs, funcs = [], [], {}, {}
    for num, wt, v in _fields(data):
        if num == 6:
            strings.append(v.decode("utf-8"))
        elif num == 2:
            s = {1: [], 2: []}
            for n2, w2, v2 in _fields(v):
                if n2 in s:
                    s[n2] += _ints(w2, v2)
            samples.append(s)
        elif num == 4:
            loc = {"id": 0, "lines": []}
            for n2, w2, v2 in _fields(v):
                if n2 == 1:
                    loc["id"] = v2
                elif n2 == 4:
                    line = dict((n3, v3) for n3, _, v3 in _fields(v2))
                    loc["lines"].append(line.get(1, 0))
            locs[loc["id"]] = loc["lines"]
        elif num == 5:
            fn = dict((n2, v2) for n2, _, v2 in _fields(v))
            funcs[fn.get(1, 0)] = fn.get(2, 0)
    flat = {}
    total = 0
    for s in samples:
        count = s[2][0] if s[2] else 0
        total += count
        if not s[1]:
            continue
        leaf_fn = locs[s[1][0]][0]          # innermost line of the leaf location
        name = strings[funcs[leaf_fn]]
        flat[name] = flat.get(name, 0) + count
    return flat, total


# ---------------------------------------------------------------------------------------------
# One Chromium run for the speedscope app (twice) and the SVG

_COLLECT = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var out = [];
  for (var i = 0; i < %d; i++) {
    var f = document.getElementById('f' + i), r = {i: i};
    try {
      var d = f.contentDocument, w = f.contentWindow;
      r.title = d.title || null;
      var a = d.getElementById('mixspy-alert');
      r.alert = a ? a.textContent : null;
      r.wrong = (d.documentElement.textContent || '').indexOf('Something went wrong') >= 0;
      r.root = d.documentElement.nodeName;
      r.text = (d.body || d.documentElement).textContent.slice(0, 2000);
      if (w.fg && w.fg.frames) { r.fg_frames = w.fg.frames.length; r.fg_total = w.fg.total; }
      r.labels = Array.prototype.slice.call(d.querySelectorAll('g.fr > title'), 0, 300)
        .map(function (t) { return t.textContent; });
      r.svg_title = d.getElementById('title') ? d.getElementById('title').textContent : null;
    } catch (e) { r.error = String(e); }
    out.push(r);
  }
  document.getElementById('result').textContent = JSON.stringify(out);
}, 2000); });
</script>"""


def chromium_batch(tmp_path, speedscope_files, svg, png):
    """Load each file of speedscope_files in the speedscope app and the SVG, in one page. Returns
    the per-frame reports [{title, alert, wrong, root, text, fg_frames, fg_total, ...}] in order
    (speedscope files, then the SVG)."""
    check._ensure_speedscope()
    d = tmp_path / "chromium"
    d.mkdir()
    urls = []
    for k, path in enumerate(speedscope_files):
        loader = str(d / ("load%d.js" % k))
        with open(loader, "w") as f:
            f.write(check._ALERT_HOOK)
            f.write("speedscope.loadFileFromBase64(%s, %s)" % (
                json.dumps(os.path.basename(path)),
                json.dumps(base64.b64encode(open(path, "rb").read()).decode())))
        urls.append("file://%s#localProfilePath=%s" % (check.APP, urllib.parse.quote(loader)))
    urls.append("file://" + urllib.parse.quote(os.path.abspath(svg)))
    page = str(d / "batch.html")
    with open(page, "w") as f:
        f.write("<!DOCTYPE html><html><head><title>mixspy batch</title></head><body>\n")
        for k, u in enumerate(urls):
            f.write('<iframe id="f%d" src="%s" width="1200" height="700"></iframe><br>\n'
                    % (k, html.escape(u, quote=True)))
        f.write('<pre id="result"></pre>\n' + _COLLECT % len(urls) + "</body></html>\n")
    dom = check._chromium("file://" + urllib.parse.quote(page), str(d), dump_dom=True,
                          screenshot=png, size="1240,%d" % (730 * len(urls) + 100), budget_ms=6000)
    m = re.search(r'<pre id="result">([^<]*)</pre>', dom)
    assert m and m.group(1), "the batch page reported nothing:\n%s" % dom[-3000:]
    return json.loads(html.unescape(m.group(1)))


# ---------------------------------------------------------------------------------------------

def test_real_clients(interp, start, tmp_path):
    files = record_all(interp, start, tmp_path)

    # speedscope: the shipped schema, then our own reading of it against the Wrote line.
    ss, ss_n = files["speedscope"][:2]
    try:
        check.check_speedscope_schema(ss)
    except check.CheckError as e:
        pytest.fail(str(e), pytrace=False)
    parsed = parse_speedscope(ss)
    # Runs of identical samples are one sample weighing count/rate seconds.
    weight = sum(sum(p["weights"]) for p in parsed["profiles"])
    assert round(weight * RATE) == ss_n, "speedscope weighs %g s, Wrote line says %d samples" % (
        weight, ss_n)
    names = [p["name"] for p in parsed["profiles"]]
    assert any(re.match(r'^Thread (\d+|0x[0-9A-F]+) "MainThread"$', n) for n in names), names

    # chrometrace: a JSON array of B/E events (and metadata), balanced per thread.
    ct = files["chrometrace"][0]
    events = json.load(open(ct))
    assert isinstance(events, list) and events
    depth = {}
    for ev in events:
        assert ev["ph"] in ("B", "E", "M"), ev     # M: thread_name metadata
        if ev["ph"] == "M":
            continue
        depth[ev["tid"]] = depth.get(ev["tid"], 0) + (1 if ev["ph"] == "B" else -1)
        assert depth[ev["tid"]] >= 0, "E without B: %r" % ev
    assert all(v == 0 for v in depth.values()), depth

    # pprof: go tool pprof reads it; its top function and total are ours.
    pp, pp_n = files["pprof"][:2]
    flat, total = pprof_flat(pp)
    assert total == pp_n, "pprof holds %d samples, Wrote line says %d" % (total, pp_n)
    ours = max(flat, key=flat.get)
    assert ours == "work", flat
    try:
        res = check.check_pprof(pp)
    except check.CheckError as e:
        pytest.fail(str(e), pytrace=False)
    top = max(res["rows"], key=lambda r: r["flat%"])
    assert top["name"] == ours, "go tool pprof's top function is %r, ours %r\n%s" % (
        top["name"], ours, res["rows"][:5])
    assert abs(top["flat%"] - 100.0 * flat[ours] / total) < 1.0, (top, flat, total)
    hdr = " ".join(res["header"])
    ms = re.search(r"Total samples = ([\d.]+)(ms|s)\b", hdr)
    assert ms, hdr
    total_ms = float(ms.group(1)) * (1000 if ms.group(2) == "s" else 1)
    assert abs(total_ms - pp_n * 1000.0 / RATE) < 1.0, (hdr, pp_n)

    # flamegraph: xmllint, then the browser (below).
    svg, svg_n = files["flamegraph"][:2]
    r = subprocess.run(["xmllint", "--noout", svg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 0, "xmllint rejected %s: %s" % (svg, r.stderr[-2000:])

    png = str(tmp_path / "clients.png")
    reports = chromium_batch(tmp_path, [ss, ct], svg, png)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "chromium's screenshot is not a PNG"
    assert os.path.getsize(png) > 10000, "the screenshot is nearly empty"
    for rep, path in zip(reports, [ss, ct, svg]):
        assert "error" not in rep, (path, rep)
        assert not rep["alert"] and not rep["wrong"], "speedscope rejected %s: %r" % (path, rep)
    ss_title = json.load(open(ss)).get("name")
    assert reports[0]["title"] == "%s - speedscope" % ss_title, reports[0]["title"]
    assert reports[1]["title"] == "%s - speedscope" % os.path.basename(ct), reports[1]["title"]
    for rep in reports[:2]:
        assert "MainThread" in rep["text"], "speedscope shows no MainThread profile: %r" % rep["text"]
    rep = reports[2]
    assert rep["root"] == "svg", rep
    assert rep["fg_frames"] and rep["fg_frames"] > 3, "the SVG's script did not run: %r" % rep
    assert rep["fg_total"] == svg_n, "SVG total %r, Wrote line says %d" % (rep["fg_total"], svg_n)
    assert any(l.startswith("work (busy_75_25.py:") for l in rep["labels"]), rep["labels"][:20]
