"""sleeper.py - an idle process: the main thread sleeps in idle_forever()."""
from __future__ import print_function

import time

import workload_common


def idle_forever(seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(1.0)  # IDLE-LINE


def main():
    args = workload_common.parser(__doc__).parse_args()
    workload_common.signal_ready(args.ready)
    idle_forever(args.seconds)


if __name__ == "__main__":
    main()
