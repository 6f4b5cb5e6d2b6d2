#!/bin/sh
# deps.sh [build|demo|test|bench|all] - install the Debian packages mixspy needs that are missing.
# Checks each package with dpkg-query and calls apt-get only for the absent ones (needs root or
# sudo). Prints nothing when everything is present.
set -eu
what="${1:-build}"

BUILD="gcc make pkg-config libunwind-dev libdw-dev libelf-dev libcapstone-dev libprotobuf-c-dev
 protobuf-c-compiler libncurses-dev zlib1g-dev clang libbpf-dev"
# Test-time: Debian's python3 with numpy and Cython, pytest, the real clients that check our
# files (speedscope in chromium, go tool pprof, xmllint), tmux for top, valgrind.
TEST="python3 python3-dev python3-numpy cython3 python3-pytest python3-pytest-xdist
 python3-pytest-timeout python3-jsonschema libxml2-utils chromium golang-go graphviz tmux valgrind
 clang npm patchelf zsh fish groff-base"
DEMO="python3 python3-dev"
BENCH="austin"

case "$what" in
build) want="$BUILD" ;;
demo) want="$BUILD $DEMO" ;;
test) want="$BUILD $TEST" ;;
bench) want="$BUILD $TEST $BENCH" ;;
all) want="$BUILD $TEST $BENCH" ;;
*) echo "usage: $0 [build|demo|test|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	# npm may come from another nodejs distribution that conflicts with Debian's package:
	# any working npm will do.
	if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
		continue
	fi
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "deps: need root (or sudo) to install:$missing" >&2; exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# Update the package lists once per boot at most; a failed install retries after an update.
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
	$SUDO apt-get update -qq >/dev/null
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
