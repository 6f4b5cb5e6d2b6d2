#!/bin/sh
# build.sh PYTHON OUTDIR - build the cyfast Cython module for one interpreter.
# Cythonizes cyfast.pyx with Debian's cython3 (-3) into OUTDIR/cyfast.c (kept next to the .so, so
# that mixspy can map C lines back to .pyx lines through the marker comments) and compiles it with
# -g -O1 against PYTHON's headers. Prints the .so path and exits 0, or prints one line saying why
# not and exits 1. Cython 0.29.32 output builds for 2.7 and 3.6 to 3.11; it does not compile for
# 3.12+ (PyLongObject internals, removed private APIs): callers should skip on failure.
set -u
py="${1:?usage: build.sh PYTHON OUTDIR}"
out="${2:?usage: build.sh PYTHON OUTDIR}"
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "cyfast: $*"; exit 1; }

command -v cython3 >/dev/null 2>&1 || fail "cython3 not installed (apt-get install cython3)"
"$py" -c 'import sys' >/dev/null 2>&1 || fail "$py does not run"
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null) ||
	fail "$py: no sysconfig include path"
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX") or sysconfig.get_config_var("SO"))' 2>/dev/null) ||
	fail "$py: no extension suffix"
[ -f "$inc/Python.h" ] || fail "$py: no Python.h in $inc"
mkdir -p "$out" || fail "cannot create $out"
out=$(cd "$out" && pwd)

# The .pyx is copied next to the .c so that the marker path "cyfast.pyx" resolves there.
cp "$here/cyfast.pyx" "$out/cyfast.pyx" || fail "cannot copy cyfast.pyx"
log="$out/cyfast-build.log"
(cd "$out" && cython3 -3 cyfast.pyx -o cyfast.c) >"$log" 2>&1 || fail "cython3 failed (see $log)"
# Extra -idirafter for the Debian-unstable interpreters (see ../shared/tools/newer-python.sh).
extra=""
# Their include dir is DEST/root/usr/include/pythonX.Y: the C library headers are one level up.
case "$inc" in
*/root/usr/include/*) extra="-idirafter ${inc%/*}" ;;
esac
so="$out/cyfast$suffix"
if ! ${CC:-cc} -g -O1 -fPIC -shared -I"$inc" $extra -o "$so" "$out/cyfast.c" >>"$log" 2>&1; then
	err=$(grep -m1 'error:' "$log" | sed 's|^.*error: ||' | cut -c1-160)
	fail "compile failed for $py: ${err:-see $log}"
fi
"$py" -c "import sys; sys.path.insert(0, '$out'); import cyfast; cyfast.run_def(10)" >>"$log" 2>&1 ||
	fail "built but import failed for $py (see $log)"
echo "$so"
