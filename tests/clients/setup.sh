#!/bin/sh
# setup.sh - install the real clients that check mixspy's output files, once, under build/clients:
# the speedscope web app (npm speedscope@1.25.0, which also ships the file-format JSON schema).
# Chromium, go (for go tool pprof), xmllint and python3-jsonschema come from Debian through
# `scripts/deps.sh test`. Prints the app's index.html path on success.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST="${CLIENTS_DIR:-$ROOT/build/clients}"
VERSION=1.25.0
APP="$DEST/node_modules/speedscope/dist/release/index.html"
SCHEMA="$DEST/node_modules/speedscope/dist/release/file-format-schema.json"

if [ ! -f "$APP" ] || [ ! -f "$SCHEMA" ] || \
   ! grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/speedscope/package.json" 2>/dev/null; then
	command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm not found (run scripts/deps.sh test)" >&2; exit 1; }
	mkdir -p "$DEST"
	npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "speedscope@$VERSION" >&2
fi
for tool in chromium go xmllint; do
	command -v "$tool" >/dev/null 2>&1 || echo "setup.sh: warning: $tool not found (run scripts/deps.sh test)" >&2
done
[ -f "$APP" ] && [ -f "$SCHEMA" ] || { echo "setup.sh: speedscope app missing after install" >&2; exit 1; }
echo "$APP"
