#!/usr/bin/python3
# tool-read: guest-visible content read through rechain's chain code
# (the rechain-dump helper) equals `qemu-img convert -O raw`.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import filecmp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rechaintest import (FIXTURES, RECHAIN_DUMP, ToolTestCase, fixture_name,  # noqa: E402
                         main, qemu_img, qemu_info, run)


def first_difference(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        off = 0
        while True:
            x = fa.read(1 << 16)
            y = fb.read(1 << 16)
            if x != y:
                for i in range(min(len(x), len(y))):
                    if x[i] != y[i]:
                        return off + i, x[i], y[i]
                return off + min(len(x), len(y)), None, None
            if not x:
                return None
            off += len(x)


class ReadTest(ToolTestCase):

    def _check(self, x):
        d, path, fmt = x['cwd'], x['path'], x['fmt']
        fargs = ['-f', fmt] if fmt else []
        ref = os.path.join(d, 'ref.raw')
        out = os.path.join(d, 'out.raw')
        qemu_img('convert', '-U', *(fargs + ['-O', 'raw', path, ref]), cwd=d)
        r = run([RECHAIN_DUMP] + fargs + [path, out], cwd=d)
        self.assert_no_crash(r)
        if r.rc != 0:
            self.fail('rechain-dump failed\n' + r.describe())
        size = qemu_info(path, cwd=d, fmt=fmt)['virtual-size']
        self.assertEqual(os.path.getsize(out), size,
                         'dump size differs from the virtual size\n' + r.describe())
        if not filecmp.cmp(ref, out, shallow=False):
            off, a, b = first_difference(ref, out)
            self.fail('guest content differs from qemu-img convert -O raw at offset %d '
                      '(qemu 0x%s, rechain 0x%s)\n$ (cd %s && qemu-img convert %s -O raw %s ref.raw'
                      ' && %s %s %s out.raw && cmp ref.raw out.raw)'
                      % (off, '%02x' % a if a is not None else 'EOF',
                         '%02x' % b if b is not None else 'EOF',
                         d, ' '.join(fargs), path, RECHAIN_DUMP, ' '.join(fargs), path))
        os.unlink(ref)
        os.unlink(out)

    def test_fixture_read(self):
        self.need_dump()
        for f in FIXTURES:
            with self.subTest(fixture=fixture_name(f)):
                d = self.path(fixture_name(f))
                os.mkdir(d)
                x = f(d)
                if not x['small']:
                    self.skipTest('too large to dump')
                self._check(x)

    def test_dump_missing_backing(self):
        self.need_dump()
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'gone.qcow2', '-F', 'qcow2',
                 '-u', 'orphan.qcow2', '1M', cwd=d)
        r = run([RECHAIN_DUMP, 'orphan.qcow2', 'out.raw'], cwd=d)
        self.assert_no_crash(r)
        self.assertNotEqual(r.rc, 0, r.describe())


if __name__ == '__main__':
    main()
