#!/usr/bin/python3
"""The version script exports exactly the public API: every function
marked with an availability macro (RECHAIN_AVAILABLE_IN_*,
RECHAIN_DEPRECATED_IN_*) in src/rechain/*.h, and the get_type functions of
the types G_DECLARE_* declares, is listed in librechain-1.sym, nothing else
is, and the built library exports exactly that list. A public function
declared without a macro is hidden, so it fails the check too."""

import glob
import os
import re
import subprocess
import sys

src, sym, lib = sys.argv[1], sys.argv[2], sys.argv[3]

declared = set()
for path in glob.glob(os.path.join(src, 'rechain', '*.h')):
    text = open(path).read()
    declared |= set(re.findall(r'RECHAIN_(?:AVAILABLE|DEPRECATED)_IN_\w+(?:\s*\(\w+\))?\s+[^;{]*?\b(rechain_\w+)\s*\(', text))
    for name in re.findall(r'G_DECLARE_(?:FINAL_TYPE|DERIVABLE_TYPE|INTERFACE)\s*\(\s*\w+\s*,\s*(\w+)', text):
        declared.add(name + '_get_type')
    # enums get GTypes from glib-mkenums
    if path.endswith('rechain-enums.h'):
        for enum in re.findall(r'}\s*(Rechain\w+)\s*;', text):
            snake = re.sub(r'(?<!^)([A-Z])', r'_\1', enum).lower()
            declared.add(snake + '_get_type')

body = re.sub(r'/\*.*?\*/', '', open(sym).read(), flags=re.S)
listed = set(re.findall(r'^\s*(rechain_\w+);', body, re.M))

out = subprocess.run(['nm', '-D', '--defined-only', lib], capture_output=True, text=True,
                     check=True).stdout
exported = {line.split()[-1].split('@')[0] for line in out.splitlines()
            if line.split()[-1].startswith('rechain')}

ok = True
print('1..3')
for n, (name, a, b) in enumerate([('headers vs script', declared, listed),
                                   ('script vs library', listed, exported),
                                   ('nothing else exported', exported, declared)], 1):
    if a == b:
        print('ok %d - %s (%d symbols)' % (n, name, len(a)))
    else:
        ok = False
        print('not ok %d - %s' % (n, name))
        for s in sorted(a - b):
            print('#   only in the first: %s' % s)
        for s in sorted(b - a):
            print('#   only in the second: %s' % s)
sys.exit(0 if ok else 1)
