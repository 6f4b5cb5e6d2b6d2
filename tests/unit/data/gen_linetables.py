# gen_linetables.py - dump line tables made by a real CPython, with the line CPython itself
# reports for every instruction offset, for tests/unit/test_linetable.c.
#
# Runs unchanged under every interpreter from 2.7 to 3.14:
#     for py in /root/.pyenv/versions/*/bin/python build/py314/root/usr/bin/python3.14; do
#         $py tests/unit/data/gen_linetables.py > tests/unit/data/linetables/$($py -V 2>&1 | cut -d' ' -f2).txt
#     done
# It compiles a fixed set of awkward functions (built below, identical for every version) plus
# two stdlib modules of the running interpreter, walks every code object and, for each, writes:
#     code <name> <firstlineno> <step> <nbytes>
#     table <hex of co_lnotab (<= 3.9) or co_linetable (3.10+), or "-" when empty>
#     lines <line for offset 0, step, 2*step, ... < nbytes; "L*n" repeats L n times>
# The truth is PyCode_Addr2Line, called through ctypes: it is what f_lineno and so traceback
# report for a frame stopped at that offset (f_lasti on <= 3.9, 2*f_lasti on 3.10, the current
# instruction's byte offset on 3.11+). On 3.10+ it is cross-checked against co_lines().
from __future__ import print_function

import binascii
import ctypes
import os
import sys

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int


def tricky_source():
    parts = []
    parts.append('''
def loops(n):
    total = 0
    for i in range(n):
        while total < i:
            total += 1
            if total > 100:
                break
        if i % 2:
            continue
    else:
        total -= 1
    return total

def negative(a, b):
    return max(
        a,
        b,
    ) + min(a,
            b) + sum([
        a, b])

def comprehensions(xs):
    a = [x * 2 for x in xs if x]
    b = {x: y for x, y in zip(xs,
                              xs)}
    c = set(x for x in xs)
    d = [[y for y in range(x)] for x in xs]
    return a, b, c, d

def tryfinally(x):
    try:
        x = 1 / x
    except ZeroDivisionError:
        x = 0
    except (TypeError,
            ValueError) as e:
        x = e
    else:
        x += 2
    finally:
        x += 1
    try:
        pass
    finally:
        x -= 1
    with open("f") as f:
        x = f.read()
    return x

lam = lambda a: (a +
    1)

def gen(n):
    for i in range(n):
        yield i
        yield (i *
               2)
    yield lambda: n

class Klass(object):
    attr = 1

    def method(self, y):
        def inner(z):
            return z + y
        return inner
''')
    # One line whose code is far longer than 255 bytes: address deltas must be split.
    parts.append('def long_jump(x):\n    y = ' + ' + '.join(['x * %d' % i for i in range(150)]) +
                 '\n    z = [' + ', '.join(['x'] * 300) + ']\n    return y, z\n')
    # Lines 200 and 400 apart: line deltas must be split (past 127 signed, past 255 unsigned).
    parts.append('def far_apart(x):\n    a = 1\n' + '\n' * 200 + '    b = 2\n' + '    #\n' * 400 +
                 '    if x:\n        return (a,\n' + '\n' * 300 + '                b)\n    return a\n')
    # A very long function: many statements, branches and a loop jumping far back.
    body = ['def very_long(x):', '    t = 0', '    for i in range(x):']
    for i in range(700):
        if i % 7 == 0:
            body.append('        if i == %d:' % i)
            body.append('            t += %d' % i)
        elif i % 11 == 0:
            body.append('        t = (t +')
            body.append('             %d)' % i)
        else:
            body.append('        t ^= %d' % i)
    body.append('    return t')
    parts.append('\n'.join(body) + '\n')
    return '\n'.join(parts)


def code_objects(co, prefix):
    yield prefix + co.co_name, co
    for c in co.co_consts:
        if hasattr(c, 'co_code'):
            for item in code_objects(c, prefix + co.co_name + '.'):
                yield item


def rle(values):
    out = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        out.append(str(values[i]) if j - i == 1 else '%d*%d' % (values[i], j - i))
        i = j
    return ' '.join(out)


def co_lines_map(co):
    m = {}
    for start, end, line in co.co_lines():
        for a in range(start, end, 2):
            m[a] = -1 if line is None else line
    return m


def dump(name, co, out, problems):
    v = sys.version_info
    table = co.co_linetable if v >= (3, 10) else co.co_lnotab
    step = 1 if v < (3, 6) else 2
    nbytes = len(co.co_code)
    lines = [addr2line(co, a) for a in range(0, nbytes, step)]
    if v >= (3, 10):
        m = co_lines_map(co)
        for k, a in enumerate(range(0, nbytes, step)):
            if m.get(a, -1) != lines[k]:
                problems.append('%s +%d: co_lines %s, Addr2Line %d' % (name, a, m.get(a), lines[k]))
    hexed = binascii.hexlify(table).decode('ascii') or '-'
    out.append('code %s %d %d %d' % (name.replace(' ', '_'), co.co_firstlineno, step, nbytes))
    out.append('table ' + hexed)
    out.append('lines ' + rle(lines))


def main():
    out = ['# generated by tests/unit/data/gen_linetables.py; do not edit',
           'version %d %d %d' % tuple(sys.version_info[:3])]
    problems = []
    sources = [('tricky', tricky_source())]
    import difflib
    import textwrap
    for mod in (textwrap, difflib):
        path = mod.__file__
        if path.endswith('.pyc'):
            path = path[:-1]
        with open(path) as f:
            sources.append((mod.__name__, f.read()))
    for label, src in sources:
        # dont_inherit: this file's print_function must not leak into 2.7's stdlib source.
        co = compile(src, label + '.py', 'exec', 0, True)
        for name, c in code_objects(co, label + ':'):
            dump(name, c, out, problems)
    for p in problems:
        print('co_lines disagrees: ' + p, file=sys.stderr)
    sys.stdout.write('\n'.join(out) + '\n')


main()
