#!/bin/sh
# run_integration.sh [PYTEST ARGS...] - the integration tests (tests/integration) on 2 workers.
# Runs with Debian's python3 (pytest, pytest-xdist, pytest-timeout from `sh scripts/deps.sh test`).
# pytest's "no tests collected" (exit 5) counts as a failure.
cd "$(dirname "$0")/.." || exit 1
export PYTHONDONTWRITEBYTECODE=1
/usr/bin/python3 -m pytest tests/integration -n 2 -q -p no:cacheprovider \
	--timeout=180 -rs "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "run_integration.sh: no integration tests were collected" >&2
	exit 1
fi
exit "$rc"
