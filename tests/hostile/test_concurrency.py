#!/usr/bin/python3
# hostile-concurrency: other users of the image, through QEMU's locks.
#
#   - while rechain writes (paused deterministically on its first write,
#     see test_faults.py), a second rechain (safe and unsafe rebase) is
#     refused with exit 4 "in use", qemu-img info and qemu-io are refused
#     by QEMU, and the first rechain then finishes correctly;
#   - while qemu-io holds the image open for writing (or read-only), a
#     rechain rebase is refused with exit 4 and the image is untouched;
#     rechain info is refused too unless -U.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, run_rechain, fault_log  # noqa: E402


class Concurrency(HostileCase):

    def assert_in_use(self, r, what):
        self.assertEqual(r.rc, 4, '%s: expected exit 4 (in use)\n%s' % (what, r.describe()))
        self.assertIn('top.qcow2', r.err, r.describe())
        self.assertIn('lock', r.err.lower(), r.describe())

    def test_while_rechain_writes(self):
        self.make_scenario()
        b = self.before('top.qcow2')
        pristine = self.save()
        args = self.rebase_args('-t', 'writethrough')
        r, lines = fault_log(args, self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        self.fresh(pristine)
        k = next(i for i, l in enumerate(lines) if l.startswith('write '))
        p, rfd, wfd, cap = self.pause_before(args, lines, k)
        try:
            self.assertIsNone(p.poll(), 'rechain ended before its first write')
            r2 = run_rechain(self.rebase_args(), self.dir)
            self.assert_in_use(r2, 'second safe rebase')
            r3 = run_rechain(['rebase', '-u', '-b', 'x.qcow2', '-F', 'qcow2', 'top.qcow2'], self.dir)
            self.assert_in_use(r3, 'second unsafe rebase')
            r4 = run_rechain(['info', 'top.qcow2'], self.dir)
            self.assert_in_use(r4, 'info while rechain writes')
            q = ht.run([ht.rt.QEMU_IMG, 'info', 'top.qcow2'], cwd=self.dir)
            self.assertNotEqual(q.rc, 0, 'qemu-img info opened the image rechain writes\n' + q.describe())
            self.assertIn('lock', q.err.lower(), q.describe())
            q = ht.run([ht.rt.QEMU_IO, '-c', 'read 0 512', 'top.qcow2'], cwd=self.dir)
            self.assertIn('lock', (q.out + q.err).lower(),
                          'qemu-io opened the image rechain writes\n' + q.describe())
        finally:
            self.paused_lines(rfd, cap)
            r = self.resume(p, rfd, wfd)
        self.assertEqual(r.rc, 0, r.describe())
        self.assert_check('top.qcow2', what='after the concurrent attempts')
        self.assert_backing('top.qcow2', 'new.qcow2', 'qcow2')
        self.assert_content(b, 'after the concurrent attempts')

    def hold_with_qemu_io(self, read_only):
        args = [ht.rt.QEMU_IO] + (['-r'] if read_only else []) + ['top.qcow2']
        p = subprocess.Popen(args, cwd=self.dir, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # a command round trip proves the image is open
        p.stdin.write(b'read 0 512\n')
        p.stdin.flush()
        line = p.stdout.readline()
        self.assertIn(b'read 512/512', line, line)
        return p

    def test_qemu_io_holds_for_writing(self):
        self.make_scenario()
        before = ht.rt.sha256(self.path('top.qcow2'))
        p = self.hold_with_qemu_io(read_only=False)
        try:
            self.assert_in_use(run_rechain(self.rebase_args(), self.dir), 'safe rebase')
            self.assert_in_use(run_rechain(['rebase', '-u', '-b', 'new.qcow2', '-F', 'qcow2',
                                            'top.qcow2'], self.dir), 'unsafe rebase')
            self.assert_in_use(run_rechain(['info', 'top.qcow2'], self.dir), 'info')
            r = run_rechain(['info', '-U', 'top.qcow2'], self.dir)
            self.assertEqual(r.rc, 0, r.describe())
        finally:
            p.stdin.close()
            p.wait(timeout=30)
        self.assertEqual(ht.rt.sha256(self.path('top.qcow2')), before, 'image changed')

    def test_qemu_io_holds_read_only(self):
        self.make_scenario()
        before = ht.rt.sha256(self.path('top.qcow2'))
        p = self.hold_with_qemu_io(read_only=True)
        try:
            self.assert_in_use(run_rechain(self.rebase_args(), self.dir), 'safe rebase of an image QEMU reads')
            r = run_rechain(['map', 'top.qcow2'], self.dir)
            self.assertEqual(r.rc, 0, 'reading beside a QEMU reader\n' + r.describe())
        finally:
            p.stdin.close()
            p.wait(timeout=30)
        self.assertEqual(ht.rt.sha256(self.path('top.qcow2')), before, 'image changed')


if __name__ == '__main__':
    ht.main()
