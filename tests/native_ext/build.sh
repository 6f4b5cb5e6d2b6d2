#!/bin/sh
# build.sh PYTHON OUTDIR - compile mixspy_testext.c against PYTHON's headers into OUTDIR.
# Prints the path of the built module. Debug info and no inlining, so native frames are exact.
# Interpreters unpacked by shared/tools/newer-python.sh (PREFIX/root/usr/bin/pythonX.Y) also need
# their own C library headers: -idirafter PREFIX/root/usr/include.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 PYTHON OUTDIR" >&2; exit 2; }
PY="$1"; OUT="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
CC="${CC:-cc}"

# One line from the interpreter: include dir, then the module suffix (2.7 has no EXT_SUFFIX).
INFO="$("$PY" -c '
import sys
try:
    import sysconfig
    inc = sysconfig.get_paths()["include"]
    suf = sysconfig.get_config_var("EXT_SUFFIX")
except Exception:
    from distutils import sysconfig
    inc = sysconfig.get_python_inc()
    suf = None
if sys.version_info[0] == 2:
    try:
        from distutils import sysconfig as ds
        inc = ds.get_python_inc()
    except Exception:
        pass
print(inc + "|" + (suf or ".so"))
')"
INC="${INFO%|*}"; SUF="${INFO##*|}"
[ -f "$INC/Python.h" ] || { echo "build.sh: no Python.h in $INC (from $PY)" >&2; exit 1; }

EXTRA=""
# PREFIX/root/usr/bin/pythonX.Y from newer-python.sh: its libc headers live in PREFIX/root/usr/include.
PYDIR="$(cd "$(dirname "$PY")" && pwd)"
ROOTUSR="$(dirname "$PYDIR")"
case "$ROOTUSR" in
*/root/usr) [ -d "$ROOTUSR/include" ] && EXTRA="-idirafter $ROOTUSR/include" ;;
esac

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TARGET="$OUT/mixspy_testext$SUF"
TMP="$TARGET.tmp.$$"
# shellcheck disable=SC2086
"$CC" -shared -fPIC -g -O1 -fno-inline-functions-called-once -fno-optimize-sibling-calls \
	-fno-omit-frame-pointer -Wall -I"$INC" $EXTRA -o "$TMP" "$HERE/mixspy_testext.c"
mv -f "$TMP" "$TARGET"
echo "$TARGET"
