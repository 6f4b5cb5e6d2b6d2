#!/usr/bin/python3
"""check.py - check mixspy's output files with the real clients, offline.

    check_speedscope(path)        speedscope's own app (npm speedscope@1.25.0) loads a speedscope,
                                  chrome trace (or folded / pprof) file in headless Chromium
    check_speedscope_schema(path) jsonschema against the schema shipped in that npm package, plus
                                  the semantic rules the schema cannot express
    check_pprof(path)             `go tool pprof -symbolize=none -top` parses the file
    check_svg(path, search=None)  xmllint --noout, then a headless Chromium screenshot and DOM dump
                                  (with ?s=REGEX when search is given, reading back "Matched: NN.N%")
    check_svg_zoom(path, regex)   clicks (zooms into) a frame and reports what stayed visible

Each function raises CheckError when the client rejects the file and otherwise returns what it
read. As a command:  check.py {speedscope|schema|pprof|svg} FILE [--search REGEX] [--zoom REGEX] [--png OUT]
Exit status 0 when the check passed, 1 when it failed, 2 on usage errors.

The integration tests import this file; tests/clients/setup.sh installs the speedscope app once
(under build/clients) and is run from here when the app is missing.
"""

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLIENTS = os.environ.get("CLIENTS_DIR", os.path.join(ROOT, "build", "clients"))
RELEASE = os.path.join(CLIENTS, "node_modules", "speedscope", "dist", "release")
APP = os.path.join(RELEASE, "index.html")
SCHEMA = os.path.join(RELEASE, "file-format-schema.json")
SPEEDSCOPE_SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"


class CheckError(Exception):
    """A real client rejected the file (or could not be run)."""


def _ensure_speedscope():
    if os.path.exists(APP) and os.path.exists(SCHEMA):
        return
    r = subprocess.run(["sh", os.path.join(HERE, "setup.sh")], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(APP):
        raise CheckError("speedscope app not installed: %s" % (r.stderr.strip() or r.stdout.strip()))


def _tool(name):
    path = shutil.which(name)
    if not path:
        raise CheckError("%s not found (run scripts/deps.sh test)" % name)
    return path


def _chromium(url, tmp, dump_dom=False, screenshot=None, size="1200,800", budget_ms=5000, timeout=90):
    """Run headless Chromium on url; returns the dumped DOM (or "")."""
    args = [_tool("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
            "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
            "--allow-file-access-from-files", "--no-first-run", "--no-default-browser-check",
            "--user-data-dir=" + os.path.join(tmp, "chromium-profile"),
            "--window-size=" + size, "--virtual-time-budget=%d" % budget_ms]
    if dump_dom:
        args.append("--dump-dom")
    if screenshot:
        args.append("--screenshot=" + os.path.abspath(screenshot))
    args.append(url)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp)
    except subprocess.TimeoutExpired:
        raise CheckError("chromium timed out on %s" % url)
    if r.returncode != 0:
        raise CheckError("chromium failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    if screenshot and not os.path.exists(screenshot):
        raise CheckError("chromium wrote no screenshot")
    return r.stdout


def _dom_texts(dom):
    """The visible text runs of a DOM dump, styles and scripts removed."""
    dom = re.sub(r"(?s)<(style|script)\b.*?</\1>", "", dom)
    return [html.unescape(t).strip() for t in re.findall(r">([^<>]+)<", dom) if t.strip()]


# ---- speedscope ----------------------------------------------------------------------------------

_ALERT_HOOK = """window.alert = function (msg) {
  var d = document.createElement('div');
  d.id = 'mixspy-alert';
  d.textContent = 'ALERT: ' + msg;
  d.style.display = 'none';
  document.body.appendChild(d);
};
"""


def check_speedscope(path, screenshot=None, timeout=90):
    """Load a file in the speedscope app, headless, exactly as the speedscope CLI does (a script
    calling speedscope.loadFileFromBase64 given by #localProfilePath). Returns
    {"title": ..., "profiles": N or None, "texts": [...]}; raises CheckError when the import
    failed ("Something went wrong", or a title that does not name the profile)."""
    _ensure_speedscope()
    data = open(path, "rb").read()
    name = os.path.basename(path)
    with tempfile.TemporaryDirectory(prefix="mixspy-ss-") as tmp:
        loader = os.path.join(tmp, "load.js")
        with open(loader, "w") as f:
            # speedscope reports an unrecognised file with alert(), which would block headless
            # Chromium; record alerts in the page instead.
            f.write(_ALERT_HOOK)
            f.write("speedscope.loadFileFromBase64(%s, %s)" % (
                json.dumps(name), json.dumps(base64.b64encode(data).decode())))
        url = "file://%s#localProfilePath=%s" % (APP, urllib.parse.quote(loader))
        dom = _chromium(url, tmp, dump_dom=True, timeout=timeout)
        if screenshot:
            _chromium(url, tmp, screenshot=screenshot, timeout=timeout)
    m = re.search(r"<title>([^<]*)</title>", dom)
    title = html.unescape(m.group(1)) if m else ""
    texts = _dom_texts(dom)
    am = re.search(r'<div id="mixspy-alert"[^>]*>([^<]*)</div>', dom)
    if am:
        raise CheckError("speedscope rejected %s: %s" % (path, html.unescape(am.group(1))))
    if "Something went wrong" in dom:
        raise CheckError("speedscope could not import %s (title %r)" % (path, title))
    if not title.endswith(" - speedscope") or title == " - speedscope":
        raise CheckError("speedscope did not load %s (title %r)" % (path, title))
    profiles = None
    for t in texts:
        pm = re.fullmatch(r"\((\d+)/(\d+)\)", t)
        if pm:
            profiles = int(pm.group(2))
            break
    return {"title": title[:-len(" - speedscope")], "profiles": profiles, "texts": texts}


def check_speedscope_schema(path):
    """Validate against the JSON schema shipped in the speedscope package, then check what the
    schema cannot: the exact $schema, frame indices in range, one weight per sample, balanced
    evented profiles. Returns the parsed document."""
    _ensure_speedscope()
    try:
        import jsonschema
    except ImportError:
        raise CheckError("python3-jsonschema is not installed (run scripts/deps.sh test)")
    try:
        doc = json.load(open(path, encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckError("%s is not JSON: %s" % (path, e))
    schema = json.load(open(SCHEMA))
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as e:
        raise CheckError("%s: schema: %s at %s" % (path, e.message, "/".join(map(str, e.absolute_path))))
    if doc.get("$schema") != SPEEDSCOPE_SCHEMA_URL:
        raise CheckError("%s: $schema is %r" % (path, doc.get("$schema")))
    nframes = len(doc["shared"]["frames"])
    for i, prof in enumerate(doc["profiles"]):
        where = "%s: profiles[%d] (%s)" % (path, i, prof.get("name"))
        if prof["endValue"] < prof["startValue"]:
            raise CheckError(where + ": endValue < startValue")
        if prof["type"] == "sampled":
            if len(prof["samples"]) != len(prof["weights"]):
                raise CheckError(where + ": %d samples but %d weights" % (len(prof["samples"]), len(prof["weights"])))
            for s in prof["samples"]:
                if any(not (0 <= x < nframes) for x in s):
                    raise CheckError(where + ": frame index out of range in %r" % (s,))
            if any(w < 0 for w in prof["weights"]):
                raise CheckError(where + ": negative weight")
        else:
            open_ = []
            last = prof["startValue"]
            for ev in prof["events"]:
                if ev["at"] < last:
                    raise CheckError(where + ": events out of order")
                last = ev["at"]
                if not (0 <= ev["frame"] < nframes):
                    raise CheckError(where + ": frame index out of range")
                if ev["type"] == "O":
                    open_.append(ev["frame"])
                elif not open_ or open_.pop() != ev["frame"]:
                    raise CheckError(where + ": unbalanced close of frame %d" % ev["frame"])
            if open_:
                raise CheckError(where + ": %d frames left open" % len(open_))
    return doc


# ---- pprof ---------------------------------------------------------------------------------------

_PPROF_ROW = re.compile(r"^\s*([\d.]+\w*)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+\w*)\s+([\d.]+)%\s+(.*)$")


def check_pprof(path, sample_index=None, timeout=120):
    """Run `go tool pprof -symbolize=none -top` (HOME set to a temporary directory, so it never
    needs the network or a writable home). Returns {"header": [...], "rows": [{"flat", "flat%",
    "sum%", "cum", "cum%", "name"}]}; raises CheckError when pprof rejects the file."""
    go = _tool("go")
    with tempfile.TemporaryDirectory(prefix="mixspy-pprof-") as home:
        env = dict(os.environ, HOME=home, GOPATH=os.path.join(home, "go"), GOFLAGS="-mod=mod",
                   GOCACHE=os.path.join(home, "cache"), GOPROXY="off", GOTOOLCHAIN="local")
        args = [go, "tool", "pprof", "-symbolize=none", "-top", "-nodecount=100000"]
        if sample_index:
            args.append("-sample_index=" + sample_index)
        args.append(os.path.abspath(path))
        try:
            r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CheckError("go tool pprof timed out")
    if r.returncode != 0:
        raise CheckError("go tool pprof rejected %s: %s" % (path, (r.stderr or r.stdout).strip()[-2000:]))
    header, rows = [], []
    in_rows = False
    for line in r.stdout.splitlines():
        if re.match(r"^\s*flat\s+flat%\s+sum%\s+cum\s+cum%", line):
            in_rows = True
            continue
        m = _PPROF_ROW.match(line) if in_rows else None
        if m:
            rows.append({"flat": m.group(1), "flat%": float(m.group(2)), "sum%": float(m.group(3)),
                         "cum": m.group(4), "cum%": float(m.group(5)), "name": m.group(6)})
        elif not in_rows:
            header.append(line)
    if not rows:
        raise CheckError("go tool pprof printed no rows for %s:\n%s" % (path, r.stdout[-2000:]))
    return {"header": header, "rows": rows}


# ---- flame graph SVG -----------------------------------------------------------------------------

_ZOOM_HOOK = """<script type="text/ecmascript"><![CDATA[
window.addEventListener('load', function () { setTimeout(function () {
  var re = new RegExp(%s);
  for (var i = 0; i < fg.frames.length; i++)
    if (fg.frames[i] !== fg.root && re.test(fg.frames[i].label)) { fg_zoom(fg.frames[i]); break; }
}, 50); });
]]></script>
</svg>
"""


def _svg_zoom(path, zoom, tmp):
    """A copy of the SVG that clicks (zooms into) the first frame whose label matches zoom."""
    text = open(path, encoding="utf-8").read()
    end = text.rstrip().rfind("</svg>")
    if end < 0:
        raise CheckError("%s has no closing </svg>" % path)
    copy = os.path.join(tmp, "zoom.svg")
    with open(copy, "w", encoding="utf-8") as f:
        f.write(text[:end] + _ZOOM_HOOK % json.dumps(zoom))
    return copy


def check_svg_zoom(path, zoom, timeout=90):
    """Zoom into the first frame matching the regex zoom, as a click would, and report what the
    script did: {"visible": frames still shown, "parents": greyed ancestors, "unzoom": whether
    "Reset Zoom" is shown}."""
    with tempfile.TemporaryDirectory(prefix="mixspy-svg-") as tmp:
        dom = _chromium("file://" + urllib.parse.quote(_svg_zoom(path, zoom, tmp)), tmp,
                        dump_dom=True, budget_ms=3000, timeout=timeout)
    classes = re.findall(r'<g class="([^"]*)"', dom)
    frames = [c.split() for c in classes if "fr" in c.split()]
    um = re.search(r'<text id="unzoom"[^>]*class="([^"]*)"', dom) or \
        re.search(r'<text[^>]*class="([^"]*)"[^>]*id="unzoom"', dom)
    unzoom = not (um and "hide" in um.group(1).split())
    if not unzoom:
        raise CheckError("zooming into %r on %s did not show Reset Zoom" % (zoom, path))
    return {"visible": sum(1 for c in frames if "hide" not in c),
            "parents": sum(1 for c in frames if "parent" in c), "unzoom": unzoom}


def check_svg(path, search=None, screenshot=None, timeout=90):
    """xmllint --noout, then render in headless Chromium: a DOM dump (scripts run) and a PNG
    screenshot. With search, the URL carries ?s=REGEX and the "Matched: NN.N%" text the
    script wrote is read back. Returns {"frames": N, "title": ..., "matched": float or None,
    "png": path}."""
    r = subprocess.run([_tool("xmllint"), "--noout", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise CheckError("xmllint rejected %s: %s" % (path, r.stderr.strip()[-2000:]))
    url = "file://" + urllib.parse.quote(os.path.abspath(path))
    if search is not None:
        url += "?s=" + urllib.parse.quote(search, safe="")
    with tempfile.TemporaryDirectory(prefix="mixspy-svg-") as tmp:
        png = screenshot or os.path.join(tmp, "shot.png")
        dom = _chromium(url, tmp, dump_dom=True, budget_ms=3000, timeout=timeout)
        hm = re.search(rb'<svg[^>]*\sheight="(\d+)', open(path, "rb").read(4096))
        size = "1200,%d" % min(max(int(hm.group(1)) if hm else 800, 100), 8000)
        _chromium(url, tmp, screenshot=png, size=size, budget_ms=3000, timeout=timeout)
        with open(png, "rb") as f:
            head = f.read(8)
        if head != b"\x89PNG\r\n\x1a\n":
            raise CheckError("chromium's screenshot of %s is not a PNG" % path)
        if not screenshot:
            png = None
    if "<svg" not in dom:
        raise CheckError("chromium did not render %s as SVG" % path)
    if "This page contains the following errors" in dom:
        raise CheckError("chromium reported XML errors in %s" % path)
    frames = len(re.findall(r'<g class="fr"', dom))
    tm = re.search(r'<text id="title"[^>]*>([^<]*)</text>', dom)
    mm = re.search(r'<text id="matched"[^>]*>Matched: ([\d.]+)%</text>', dom)
    matched = float(mm.group(1)) if mm else None
    if search is not None and matched is None:
        raise CheckError("search %r on %s did not report Matched (script did not run?)" % (search, path))
    return {"frames": frames, "title": html.unescape(tm.group(1)) if tm else None,
            "matched": matched, "png": png}


# ---- command line --------------------------------------------------------------------------------

def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="check mixspy output with the real clients")
    ap.add_argument("kind", choices=["speedscope", "schema", "pprof", "svg"])
    ap.add_argument("file")
    ap.add_argument("--search", help="svg: regex passed as ?s=")
    ap.add_argument("--png", help="svg/speedscope: keep a screenshot here")
    ap.add_argument("--zoom", help="svg: also zoom into the first frame matching this regex")
    a = ap.parse_args(argv)
    try:
        if a.kind == "speedscope":
            res = check_speedscope(a.file, screenshot=a.png)
            res = {"title": res["title"], "profiles": res["profiles"]}
        elif a.kind == "schema":
            doc = check_speedscope_schema(a.file)
            res = {"profiles": len(doc["profiles"]), "frames": len(doc["shared"]["frames"])}
        elif a.kind == "pprof":
            res = check_pprof(a.file)
        else:
            res = check_svg(a.file, search=a.search, screenshot=a.png)
            if a.zoom:
                res["zoom"] = check_svg_zoom(a.file, a.zoom)
    except CheckError as e:
        print("FAIL %s: %s" % (a.kind, e), file=sys.stderr)
        return 1
    print("OK %s %s" % (a.kind, json.dumps(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
