#!/bin/sh
# run.sh [bench.py options] - `make bench`: what sampling costs the target (see bench/bench.py).
# Builds tests/native_ext's mixspy_testext for Debian's python3 into build/native_ext/bench first.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
EXT=build/native_ext/bench
[ -x ./mixspy ] || { echo "run.sh: build ./mixspy first (make)" >&2; exit 1; }
if ! ls "$EXT"/mixspy_testext*.so >/dev/null 2>&1; then
	sh tests/native_ext/build.sh "$PY" "$EXT" >/dev/null
fi
exec "$PY" bench/bench.py --python "$PY" --ext "$EXT" "$@"
