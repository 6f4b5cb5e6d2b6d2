#!/bin/sh
# demo.sh - the README's first command: profile a bundled mixed Python + C workload into demo.svg.
# Installs what is missing (Debian packages), builds mixspy and the test extension for Debian's
# python3, then records it with --native: the flame graph shows Python frames calling C frames
# calling back into Python.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh demo
make -s mixspy
PY=/usr/bin/python3
OUT=build/native_ext/demo
mkdir -p "$OUT"
sh tests/native_ext/build.sh "$PY" "$OUT" >/dev/null
./mixspy record --native --threads -o demo.svg -d 4 -- \
	"$PY" tests/native_ext/mixed_native.py --ext "$OUT" --seconds 5
echo "demo: open demo.svg in a browser (click a frame to zoom, Ctrl-F to search)"
