#!/bin/sh
# run.sh [bench.py options] - `make bench`: what sampling costs the target (see bench/bench.py).
# BENCH_QUICK=1 for a ~3 minute version. Builds tests/native_ext's mixspy_testext for Debian's
# python3 (and for the interpreter austin is compared on: AUSTIN_PYTHON, by default the newest
# pyenv 3.10/3.9/3.8) into build/native_ext/ first.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
EXT=build/native_ext/bench
[ -x ./mixspy ] || { echo "run.sh: build ./mixspy first (make)" >&2; exit 1; }
if ! ls "$EXT"/mixspy_testext*.so >/dev/null 2>&1; then
	sh tests/native_ext/build.sh "$PY" "$EXT" >/dev/null
fi
APY=${AUSTIN_PYTHON:-}
if [ -z "$APY" ]; then
	for v in 3.10 3.9 3.8; do
		for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.*; do
			[ -x "$d/bin/python3" ] && APY="$d/bin/python3"
		done
		[ -n "$APY" ] && break
	done
fi
set -- --python "$PY" --ext "$EXT" "$@"
if [ -n "$APY" ] && command -v austin >/dev/null 2>&1; then
	AEXT=build/native_ext/bench-austin
	if ! ls "$AEXT"/mixspy_testext*.so >/dev/null 2>&1; then
		sh tests/native_ext/build.sh "$APY" "$AEXT" >/dev/null 2>&1 || AEXT=""
	fi
	set -- "$@" --austin-python "$APY"
	[ -n "$AEXT" ] && set -- "$@" --austin-ext "$AEXT"
fi
exec "$PY" bench/bench.py "$@"
