# gen_debug_offsets.py - capture the _Py_DebugOffsets bytes of a live CPython 3.13+ process as a
# fixture for tests/unit/test_debug_offsets.c.
#
#     python3 tests/unit/data/gen_debug_offsets.py PYTHON NBYTES > tests/unit/data/debug_offsets_3XX.hex
#
# Starts PYTHON sleeping, finds the ELF object holding _PyRuntime in /proc/PID/maps (libpython
# when it is shared, else the executable), takes the symbol value from `nm -D`, adds the load
# bias (start of the mapping at file offset 0 minus the first PT_LOAD's page-aligned vaddr) and
# reads NBYTES at that address from /proc/PID/mem. Output: a comment line, then hex, 32 bytes a line.
import os
import re
import struct
import subprocess
import sys
import time


def first_load_vaddr(path):
    with open(path, 'rb') as f:
        head = f.read(64)
        phoff, = struct.unpack_from('<Q', head, 32)
        phentsize, phnum = struct.unpack_from('<HH', head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _, _, p_vaddr = struct.unpack('<IIQQ', f.read(24))
            if p_type == 1:
                return p_vaddr & ~0xfff
    raise SystemExit('no PT_LOAD in ' + path)


def runtime_symbol(path):
    out = subprocess.check_output(['nm', '-D', '--defined-only', path]).decode()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == '_PyRuntime':
            return int(parts[0], 16)
    return None


def main():
    python, nbytes = sys.argv[1], int(sys.argv[2])
    proc = subprocess.Popen([python, '-c', 'import sys, time; sys.stdout.write("ready\\n"); '
                             'sys.stdout.flush(); time.sleep(60)'], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        maps = open('/proc/%d/maps' % proc.pid).read().splitlines()
        objs = []
        for line in maps:
            f = line.split()
            if len(f) >= 6 and int(f[2], 16) == 0 and f[5].startswith('/'):
                objs.append((f[5], int(f[0].split('-')[0], 16)))
        # libpython first: with a shared build the executable is only a launcher.
        objs.sort(key=lambda o: 'libpython' not in o[0])
        for path, start in objs:
            if not re.search(r'python', os.path.basename(path)):
                continue
            sym = runtime_symbol(path)
            if sym is None:
                continue
            addr = start - first_load_vaddr(path) + sym
            with open('/proc/%d/mem' % proc.pid, 'rb') as mem:
                mem.seek(addr)
                data = mem.read(nbytes)
            version = subprocess.check_output([python, '-c', 'import sys; print(sys.version.split()[0])'])
            print('# _PyRuntime of CPython %s (%s), %d bytes' % (version.decode().strip(), path, len(data)))
            for i in range(0, len(data), 32):
                print(data[i:i + 32].hex())
            return
        raise SystemExit('no _PyRuntime symbol found')
    finally:
        proc.kill()
        proc.wait()


main()
