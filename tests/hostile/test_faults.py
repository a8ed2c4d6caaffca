#!/usr/bin/python3
# hostile-faults: read errors, SIGKILL and a changing backing file.
#
#   - EIO on reads of the backing files (old and new chain), at every read
#     of a backing file the run makes (RECHAIN_FAULT=read:N:EIO): exit 5;
#   - SIGKILL just before the header write (the switch), and just before
#     the flush that follows it (RECHAIN_FAULT=any:N:KILL);
#   - SIGKILL from outside at spread-out moments of a larger rebase in
#     writethrough mode;
#   - the old backing file shrinks between the plan and the copy: rechain
#     is paused, deterministically, on the log line of its first read of
#     the backing file's data (RECHAIN_FAULT_LOG is a FIFO the test keeps
#     full), the file is truncated, then rechain continues. It must fail
#     (the content it planned from is gone) or produce the content the
#     old chain has now; never a corrupt image.
# After each: qemu-img check clean (leaks allowed, reported), old content,
# a rerun succeeds.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import (HostileCase, MiB, KiB, run_rechain, fault_log,  # noqa: E402
                         any_index, read_index)


class Faults(HostileCase):

    def test_eio_on_backing_reads(self):
        self.make_scenario()
        b = self.before('top.qcow2')
        pristine = self.save()
        r, lines = fault_log(self.rebase_args(), self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        points = [read_index(lines, i) for i, l in enumerate(lines)
                  if l.startswith('read ') and (' base.qcow2 ' in l or ' new.qcow2 ' in l
                                                     or '/base.qcow2 ' in l or '/new.qcow2 ' in l)]
        self.assertTrue(points, 'no backing reads logged:\n' + '\n'.join(lines[:50]))
        if len(points) > 40:
            step = len(points) / 40.0
            points = sorted({points[int(k * step)] for k in range(40)} | {points[-1]})
        for n in points:
            self.fresh(pristine)
            what = 'read:%d:EIO' % n
            r = run_rechain(self.rebase_args(), self.dir, env={'RECHAIN_FAULT': what})
            self.assertEqual(r.rc, 5, '%s: expected exit 5\n%s' % (what, r.describe()))
            self.assertIn('input/output error', r.err.lower(), r.describe())
            self.check_after_failure(b, r, what, old_backing='base.qcow2')
        sys.stdout.write('# %d backing read points failed with EIO\n' % len(points))

    def test_kill_at_header_write(self):
        self.make_scenario()
        b = self.before('top.qcow2')
        pristine = self.save()
        r, lines = fault_log(self.rebase_args(), self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        writes = [i for i, l in enumerate(lines) if l.startswith('write ') and
                  (' top.qcow2 0 ' in l or '/top.qcow2 0 ' in l)]
        self.assertTrue(writes, 'no header write logged')
        hw = writes[-1]
        points = {'header write': any_index(lines, hw)}
        after = [i for i in range(hw + 1, len(lines)) if lines[i].startswith('flush ')]
        if after:
            points['flush after the header write'] = any_index(lines, after[0])
        before = [i for i in range(hw) if lines[i].startswith(('write ', 'flush '))]
        if before:
            points['last operation before the header write'] = any_index(lines, before[-1])
        for what, n in points.items():
            self.fresh(pristine)
            r = run_rechain(self.rebase_args(), self.dir, env={'RECHAIN_FAULT': 'any:%d:KILL' % n})
            self.assertEqual(r.rc, -signal.SIGKILL, '%s: not killed\n%s' % (what, r.describe()))
            self.check_after_failure(b, r, 'SIGKILL at the ' + what, old_backing='base.qcow2')

    def test_async_sigkill(self):
        """SIGKILL from outside, at moments spread over a larger rebase."""
        self.SIZE = 64 * MiB
        self.make_scenario()
        self.io('base.qcow2', 'write -P 6 4M 60M')
        b = self.before('top.qcow2')
        pristine = self.save()
        t0 = time.time()
        r = run_rechain(self.rebase_args('-t', 'writethrough'), self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        total = time.time() - t0
        kills = 0
        for k in range(1, 9):
            self.fresh(pristine)
            p = subprocess.Popen([ht.rt.RECHAIN] + self.rebase_args('-t', 'writethrough'),
                                 cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(total * k / 9.0)
            p.send_signal(signal.SIGKILL)
            out, err = p.communicate()
            r = ht.Proc(p.args, self.dir, p.returncode, out.decode(), err.decode())
            kills += r.rc == -signal.SIGKILL
            self.check_after_failure(b, r, 'SIGKILL after %.2fs of %.2fs' % (total * k / 9.0, total),
                                     old_backing='base.qcow2')
        sys.stdout.write('# %d of 8 runs killed mid-way (rebase takes %.2fs)\n' % (kills, total))

    def backing_changes_between_plan_and_copy(self, change, what):
        """The old backing file is changed by @change while rechain is
        paused after planning, before it reads the file's data: the header
        switch must be refused (exit 4, "changed"), the overlay stay on its
        old backing and consistent, and a rerun succeed."""
        self.make_scenario(raw_base=True)
        b = self.before('top.qcow2')
        base = self.path('base.raw')
        shutil.copy2(base, base + '.orig')
        # learn the operations of an identical run (on a copy)
        pristine = self.save()
        r, lines = fault_log(self.rebase_args(), self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        self.fresh(pristine)
        k = next(i for i, l in enumerate(lines) if l.startswith('read ') and
                 (' base.raw ' in l or '/base.raw ' in l))
        # paused before its first read of the old backing file's data: the
        # chains are open and sized, the plan is made
        p, rfd, wfd, cap = self.pause_before(self.rebase_args(), lines, k)
        try:
            self.assertIsNone(p.poll(), 'rechain ended before the pause point')
            change(base)
            done = self.paused_lines(rfd, cap)
            self.assertFalse([l for l in done if 'base.raw' in l],
                             'rechain read base.raw before the pause: %s' % done)
            paused_on = lines[k]
        finally:
            r = self.resume(p, rfd, wfd)
        self.assert_no_crash_markers(r, what)
        sys.stdout.write('# paused on "%s"; base.raw %s; rechain exit %d: %s\n'
                         % (paused_on.replace(self.dir + '/', ''), what, r.rc,
                            r.err.strip().replace('\n', ' ')[:300]))
        self.assertEqual(r.rc, 4, r.describe())
        self.assertIn('changed during the rebase', r.err, r.describe())
        self.assertIn('base.raw', r.err, r.describe())
        self.assert_check('top.qcow2', allow_leaks=True, what=what)
        qi = ht.qemu_info('top.qcow2', cwd=self.dir)
        self.assertEqual(qi.get('backing-filename'), 'base.raw', r.describe())
        shutil.copy2(base + '.orig', base)
        self.assert_content(b, 'after the change was undone')
        r2 = run_rechain(self.rebase_args(), self.dir)
        self.assertEqual(r2.rc, 0, r2.describe())
        self.assert_content(b, 'after the rerun')
        self.assert_check('top.qcow2', allow_leaks=True, what='after the rerun')

    def test_backing_shrinks_between_plan_and_copy(self):
        def shrink(base):
            with open(base, 'r+b') as f:
                f.truncate(1 * MiB)
        self.backing_changes_between_plan_and_copy(shrink, 'truncated to 1 MiB')

    def test_backing_grows_between_plan_and_copy(self):
        def grow(base):
            with open(base, 'ab') as f:
                f.write(b'\x5a' * MiB)
        self.backing_changes_between_plan_and_copy(grow, 'grown by 1 MiB')

    def test_backing_rewritten_between_plan_and_copy(self):
        def rewrite(base):
            with open(base, 'r+b') as f:
                f.seek(0)
                f.write(b'\xa5' * 65536)
        self.backing_changes_between_plan_and_copy(rewrite, 'rewritten in place (same size)')


if __name__ == '__main__':
    ht.main()
