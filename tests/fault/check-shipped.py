#!/usr/bin/python3
# check-shipped.py LIBRARY TOOL: what ships carries no test machinery
# (issue 14 item 1), and the fault shim sees every call through which the
# library moves data.
#
#  - no "RECHAIN_FAULT" string in either file;
#  - neither imports kill, raise or _exit;
#  - the library's imports of file I/O calls are the ones the shim
#    interposes (tests/fault/fault-shim.c) or knows it need not count: a
#    new one (pwritev, fsync, fallocate...) changes what RECHAIN_FAULT's
#    numbers mean, so it must be taught to the shim and added here.
#
# TAP; skips when nm (binutils) is missing.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
import re
import shutil
import subprocess
import sys

INTERPOSED = {'open64', 'open', 'close', 'pread64', 'pread', 'pwrite64', 'pwrite',
              'fdatasync', 'copy_file_range', 'ioctl'}
# not operations the io layer's callers asked for: the read half of an
# O_DIRECT read-modify-write (preadv), the cut after it (ftruncate), the
# early-writeback hint (sync_file_range)
NOT_COUNTED = {'preadv64', 'preadv', 'ftruncate64', 'ftruncate', 'sync_file_range'}
IO_CALL = re.compile(r'^(p?read|p?write|pread|pwrite|readv|writev|preadv\w*|pwritev\w*|f?sync\w*|'
                     r'fdatasync|syncfs|fallocate\w*|posix_fallocate\w*|copy_file_range|splice|'
                     r'sendfile\w*|ftruncate\w*|truncate\w*|ioctl|open\w*|creat\w*|close|'
                     r'io_\w+|aio_\w+|lio_\w+)$')


def undefined(path):
    out = subprocess.run(['nm', '-D', '--undefined-only', path], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return {line.split()[-1].split('@')[0] for line in out.splitlines() if line.strip()}


def main():
    lib, tool = sys.argv[1:3]
    if shutil.which('nm') is None:
        print('1..0 # SKIP nm (binutils) not installed')
        return 0
    checks = []
    for path in (lib, tool):
        with open(path, 'rb') as f:
            data = f.read()
        checks.append(('no RECHAIN_FAULT in %s' % path, b'RECHAIN_FAULT' not in data, ''))
        bad = undefined(path) & {'kill', 'raise', '_exit', '_Exit'}
        checks.append(('no kill/raise/_exit import in %s' % path, not bad, ' '.join(sorted(bad))))
    io = {s for s in undefined(lib) if IO_CALL.match(s)}
    unknown = io - INTERPOSED - NOT_COUNTED
    checks.append(('the fault shim interposes every I/O call of %s' % lib, not unknown,
                   'not interposed: ' + ' '.join(sorted(unknown))))
    print('1..%d' % len(checks))
    failed = 0
    for i, (name, ok, why) in enumerate(checks, 1):
        print('%s %d - %s' % ('ok' if ok else 'not ok', i, name))
        if not ok:
            failed += 1
            if why:
                print('# ' + why)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
