#!/bin/sh
# gen.sh - regenerate src/python/layouts/pyXY.c from the headers of every interpreter present.
# For each one, compiles offsets.c against its headers (with -DPy_BUILD_CORE), runs it and writes
# the table. Usage: sh src/python/layouts/gen/gen.sh [PYTHON...]; with no arguments it uses the
# pyenv builds under ${PYENV_ROOT:-/root/.pyenv}/versions and Debian unstable's 3.14 unpacked by
# ../shared/tools/newer-python.sh into build/py314. Interpreters that are absent are skipped,
# leaving their checked-in table alone.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$(cd "$HERE/.." && pwd)"
TOP="$(cd "$HERE/../../../.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
CC="${CC:-cc}"

if [ $# -eq 0 ]; then
	for p in "${PYENV_ROOT:-/root/.pyenv}"/versions/*/bin/python; do
		[ -x "$p" ] && set -- "$@" "$p"
	done
	p="$TOP/build/py314/root/usr/bin/python3.14"
	[ -x "$p" ] && set -- "$@" "$p"
fi

for py in "$@"; do
	ver=$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')
	inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
	extra=""
	# Debian's unpacked interpreters may report /usr/include; their headers are under the unpack
	# root, and their pyconfig.h lives in the multiarch directory next to it.
	case "$py" in
	*/root/usr/bin/*)
		root="${py%/usr/bin/*}"
		[ -d "$inc" ] || inc="$root$inc"
		extra="-idirafter $root/usr/include"
		;;
	esac
	# shellcheck disable=SC2086
	"$CC" -std=gnu11 -w -DPy_BUILD_CORE -I"$inc" $extra -o "$TMP/offsets$ver" "$HERE/offsets.c"
	"$TMP/offsets$ver" > "$TMP/py$ver.c"
	mv "$TMP/py$ver.c" "$OUT/py$ver.c"
	echo "wrote $OUT/py$ver.c from $py"
done
