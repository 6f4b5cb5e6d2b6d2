#!/usr/bin/python3
"""selftest.py - prove that each client check in check.py accepts what our writers produce and
rejects corrupted copies of the same files.

    selftest.py [PATH/TO/test_output]      (default: build/tests/test_output)

The unit test binary writes its fixture profile in every format when MIXSPY_TEST_OUT is set;
this script checks those files, then breaks each one in a few ways and expects every check to
fail. Exit status 0 when all expectations hold.
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402


def corrupt(d):
    """Write broken variants of the fixture files; returns [(check name, path)]."""
    bad = []

    def put(name, data, kind):
        p = os.path.join(d, "bad-" + name)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        bad.append((kind, p))

    ss = open(os.path.join(d, "fixture.speedscope.json")).read()
    put("truncated.speedscope.json", ss[: len(ss) // 2], "speedscope")
    put("truncated.speedscope.json", ss[: len(ss) // 2], "schema")
    j = json.loads(ss)
    j["profiles"][0]["samples"][0] = [0, 999]
    put("badindex.speedscope.json", json.dumps(j), "speedscope")
    put("badindex.speedscope.json", json.dumps(j), "schema")
    j = json.loads(ss)
    j["profiles"][0]["weights"].pop()
    put("weights.speedscope.json", json.dumps(j), "speedscope")
    j = json.loads(ss)
    del j["$schema"]
    put("noschema.speedscope.json", json.dumps(j), "schema")
    ct = open(os.path.join(d, "fixture.chrometrace.json")).read()
    put("truncated.chrometrace.json", ct[: len(ct) // 2], "speedscope")
    pb = open(os.path.join(d, "fixture.pprof.pb.gz"), "rb").read()
    put("truncated.pprof.pb.gz", pb[: len(pb) // 2], "pprof")
    raw = gzip.decompress(pb)
    put("garbage.pprof.pb.gz", gzip.compress(raw[: len(raw) // 2] + b"\xff\xff\xff"), "pprof")
    i = raw.find(b"\x32\x00")   # string_table[0] = "" -> "X"
    put("strtab.pprof.pb.gz", gzip.compress(raw[:i] + b"\x32\x01X" + raw[i + 2:]), "pprof")
    svg = open(os.path.join(d, "fixture.flamegraph.svg")).read()
    put("truncated.flamegraph.svg", svg[: len(svg) // 2], "svg")
    put("unescaped.flamegraph.svg", svg.replace("&lt;lambda&gt; &amp;", "<lambda> &", 1), "svg")
    put("noscript.flamegraph.svg", svg.replace("function fg_search(s)", "function fg_gone(s)"), "svg")
    return bad


def run(kind, path):
    if kind == "speedscope":
        return check.check_speedscope(path)
    if kind == "schema":
        return check.check_speedscope_schema(path)
    if kind == "pprof":
        return check.check_pprof(path)
    return check.check_svg(path, search="work")


def main(argv):
    binary = argv[0] if argv else os.path.join(check.ROOT, "build", "tests", "test_output")
    ok = True
    with tempfile.TemporaryDirectory(prefix="mixspy-selftest-") as d:
        r = subprocess.run([binary], env=dict(os.environ, MIXSPY_TEST_OUT=d), capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL %s: %s" % (binary, r.stderr), file=sys.stderr)
            return 1
        good = [("speedscope", "fixture.speedscope.json"), ("speedscope", "processes.speedscope.json"),
                ("speedscope", "fixture.chrometrace.json"), ("speedscope", "fixture.pprof.pb.gz"),
                ("schema", "fixture.speedscope.json"), ("schema", "processes.speedscope.json"),
                ("schema", "empty.speedscope.json"), ("pprof", "fixture.pprof.pb.gz"),
                ("svg", "fixture.flamegraph.svg")]
        for kind, name in good:
            try:
                res = run(kind, os.path.join(d, name))
                print("ok   accepts %-10s %s" % (kind, name))
                if kind == "svg" and res["matched"] != 11.8:
                    print("FAIL svg search 'work' matched %r, expected 11.8" % res["matched"])
                    ok = False
                if kind == "pprof" and abs(sum(x["flat%"] for x in res["rows"]) - 100) > 0.5:
                    print("FAIL pprof flat%% sums to %r" % sum(x["flat%"] for x in res["rows"]))
                    ok = False
            except check.CheckError as e:
                print("FAIL rejects %s %s: %s" % (kind, name, e))
                ok = False
        z = check.check_svg_zoom(os.path.join(d, "fixture.flamegraph.svg"), "^work")
        if z != {"visible": 4, "parents": 2, "unzoom": True}:
            print("FAIL svg zoom into work: %r" % z)
            ok = False
        else:
            print("ok   zoom into work: %r" % z)
        for kind, path in corrupt(d):
            try:
                run(kind, path)
                print("FAIL accepts %-10s %s" % (kind, os.path.basename(path)))
                ok = False
            except check.CheckError as e:
                print("ok   rejects %-10s %s: %s" % (kind, os.path.basename(path), str(e).splitlines()[0][:90]))
    print("selftest: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
