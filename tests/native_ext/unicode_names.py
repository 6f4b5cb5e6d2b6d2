"""unicode_names.py - a function with a non-ASCII name, in a file with a non-ASCII name.

The module is generated at run time (into --workdir, default: beside --ready) so the repository has
no non-ASCII file names, and Python 2, which only allows ASCII identifiers, still gets the non-ASCII
file name (its function name stays ASCII). The generated function records Python's own stack on the
line where it then sleeps, into --expect, like known_stack.py.
"""
from __future__ import print_function, unicode_literals

import io
import os
import sys
import tempfile
import time
import traceback

import workload_common

PY2 = sys.version_info[0] == 2
# A file name with 2-, 3- and 4-byte UTF-8 characters (PEP 393 kinds 1, 2 and 4).
FILE_NAME = "\u00fcn\u00efc\u00f6d\u00e9_\u6a21\u5757_\U0001f4a9.py"
# Cyrillic, CJK and a CJK extension B character (outside the BMP); NFKC leaves all of them alone.
FUNC_NAME = "ascii_only_function" if PY2 else "\u51fd\u6570_\u043a\u0438\u0440\u0438\u043b\u043b\u0438\u0446\u0430_\U00020000"

SOURCE = """# -*- coding: utf-8 -*-
def %s(snapshot, args):
    time.sleep(snapshot(traceback.extract_stack(), args))  # UNICODE-BLOCK
"""


def snapshot(stack, args):
    workload_common.write_expect(args.expect, stack, func_name=FUNC_NAME, file_name=FILE_NAME)
    workload_common.signal_ready(args.ready)
    return args.seconds


def run_generated(path, args):
    with io.open(path, "r", encoding="utf-8") as f:
        source = f.read()
    code = compile(source.encode("utf-8") if PY2 else source,
                   path.encode("utf-8") if PY2 else path, "exec")
    namespace = {"__name__": "unicode_generated", "time": time, "traceback": traceback}
    exec(code, namespace)
    namespace[FUNC_NAME if not PY2 else str(FUNC_NAME)](snapshot, args)


def main():
    p = workload_common.parser(__doc__)
    p.add_argument("--expect", help="JSON file for the stack Python itself sees")
    p.add_argument("--workdir", help="directory for the generated module")
    args = p.parse_args()
    workdir = args.workdir or (os.path.dirname(os.path.abspath(args.ready)) if args.ready
                               else tempfile.mkdtemp())
    path = os.path.join(workdir, FILE_NAME)
    with io.open(path.encode("utf-8") if PY2 else path, "w", encoding="utf-8") as f:
        f.write(SOURCE % FUNC_NAME)
    run_generated(path, args)


if __name__ == "__main__":
    main()
