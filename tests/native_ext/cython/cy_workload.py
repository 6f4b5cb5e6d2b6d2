"""cy_workload.py READY_FILE [SECONDS] - run cyfast's hot loop for the integration tests.

Imports cyfast (from CYFAST_DIR, default the directory of this file's build: the first argument
of build.sh), runs one warm-up call, writes "ready" to READY_FILE and then keeps calling the hot
loop through each entry point (def, method, generator, cpdef) until SECONDS (default 30) pass.
"""
import os
import sys
import time


def main():
    ready = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    sys.path.insert(0, os.environ.get("CYFAST_DIR", os.path.dirname(os.path.abspath(__file__))))
    import cyfast

    deadline = time.time() + seconds
    n = 2000000
    cyfast.run_def(n)  # warm: the next calls are the steady state
    with open(ready, "w") as f:
        f.write("ready")
    runner = cyfast.Runner()
    while time.time() < deadline:
        cyfast.run_def(n)
        runner.run_method(n)
        for _ in cyfast.chunks(n, 2):
            pass
        cyfast.run_cpdef(n)


if __name__ == "__main__":
    main()
