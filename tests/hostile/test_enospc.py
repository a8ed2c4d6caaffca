#!/usr/bin/python3
# hostile-enospc: no space left while a safe rebase writes the overlay.
#
#   - RLIMIT_FSIZE (everywhere): the overlay may not grow past a limit, at
#     several limits from "no growth at all" to "almost enough"; with
#     SIGXFSZ ignored (writes fail with EFBIG: exit 5) and with SIGXFSZ's
#     default action (the process dies mid-write, like a crash).
#   - A small ext4 file system on a loop device (root only; skipped when
#     mkfs.ext4 or mount -o loop is not available), filled to several
#     levels: writes or flushes fail with ENOSPC (exit 5).
# After each failure: qemu-img check clean (leaks reported, allowed), the
# old backing name, the old guest content; after freeing space, a rerun
# succeeds with the same content.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, KiB, run_rechain  # noqa: E402


def fsize_limit(limit, ignore_sigxfsz):
    def pre():
        if ignore_sigxfsz:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


class RlimitFsize(HostileCase):

    def run_limits(self, ignore):
        self.make_scenario()
        b = self.before('top.qcow2')
        pristine = os.path.join(self.dir, 'pristine')
        os.mkdir(pristine)
        for f in ('base.qcow2', 'top.qcow2', 'new.qcow2'):
            shutil.copy2(self.path(f), pristine)
        start = os.path.getsize(self.path('top.qcow2'))
        # how much the rebase makes the overlay grow
        r = run_rechain(self.rebase_args(), self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        grown = os.path.getsize(self.path('top.qcow2')) - start
        self.assertGreater(grown, 0)
        limits = sorted({start, start + 512, start + 64 * KiB, start + grown // 3,
                         start + grown // 2, start + grown - 64 * KiB, start + grown - 1})
        leaks = 0
        for lim in limits:
            if lim < start:
                continue
            for f in ('top.qcow2',):
                shutil.copy2(os.path.join(pristine, f), self.path(f))
            what = 'RLIMIT_FSIZE=%d (+%d)%s' % (lim, lim - start, ' SIGXFSZ ignored' if ignore else '')
            r = run_rechain(self.rebase_args(), self.dir, preexec_fn=fsize_limit(lim, ignore))
            if ignore:
                self.assertEqual(r.rc, 5, '%s: expected exit 5 (no space)\n%s' % (what, r.describe()))
                self.assertIn('top.qcow2', r.err, r.describe())
            else:
                self.assertEqual(r.rc, -signal.SIGXFSZ, '%s: expected death by SIGXFSZ\n%s'
                                 % (what, r.describe()))
            leaks += self.check_after_failure(b, r, what, old_backing='base.qcow2')
        if leaks:
            sys.stdout.write('# %d of %d limits left leaked clusters (allowed)\n' % (leaks, len(limits)))

    def test_efbig(self):
        self.run_limits(ignore=True)

    def test_sigxfsz(self):
        self.run_limits(ignore=False)


class LoopExt4(HostileCase):
    """A 32 MiB ext4 file system holding the images, filled up."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            ht.rt.skip_or_fail('not root: cannot mount a loop file system')
        if not shutil.which('mkfs.ext4'):
            ht.rt.skip_or_fail('mkfs.ext4 not installed (e2fsprogs)')
        self.fsimg = self.path('fs.img')
        with open(self.fsimg, 'wb') as f:
            f.truncate(32 * MiB)
        r = subprocess.run(['mkfs.ext4', '-q', '-F', '-O', '^has_journal', self.fsimg],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            ht.rt.skip_or_fail('mkfs.ext4 failed: %s' % r.stdout.decode())
        self.mnt = self.path('mnt')
        os.mkdir(self.mnt)
        r = subprocess.run(['mount', '-o', 'loop', self.fsimg, self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            ht.rt.skip_or_fail('mount -o loop failed (no loop devices or no privilege): %s'
                          % r.stdout.decode().strip())
        self.mounted = True

    def tearDown(self):
        if getattr(self, 'mounted', False):
            subprocess.run(['umount', self.mnt])
        super().tearDown()

    def free_bytes(self):
        s = os.statvfs(self.mnt)
        return s.f_bavail * s.f_frsize

    def fill(self, leave):
        """A filler file so that about @leave bytes stay free."""
        filler = os.path.join(self.mnt, 'filler')
        if os.path.exists(filler):
            os.unlink(filler)
        n = max(0, self.free_bytes() - leave)
        with open(filler, 'wb') as f:
            chunk = b'\xff' * MiB
            while n > 0:
                k = min(n, len(chunk))
                try:
                    f.write(chunk[:k])
                    f.flush()
                except OSError:
                    break
                n -= k
            try:
                os.fsync(f.fileno())
            except OSError:
                pass
        return filler

    def test_enospc(self):
        d = os.path.join(self.mnt, 'images')
        os.mkdir(d)
        self.make_scenario(d=d)
        b = self.before('top.qcow2', cwd=d)
        pristine = self.path('pristine-top.qcow2')
        shutil.copy2(os.path.join(d, 'top.qcow2'), pristine)
        start = os.path.getsize(os.path.join(d, 'top.qcow2'))
        r = run_rechain(self.rebase_args(), d)
        self.assertEqual(r.rc, 0, r.describe())
        grown = os.path.getsize(os.path.join(d, 'top.qcow2')) - start
        failures = 0
        for leave in (0, 4 * KiB, 64 * KiB, grown // 4, grown // 2, grown - 128 * KiB):
            shutil.copy2(pristine, os.path.join(d, 'top.qcow2'))
            os.sync()
            filler = self.fill(max(0, leave))
            what = 'ext4 with %d bytes free' % self.free_bytes()
            r = run_rechain(self.rebase_args(), d)
            os.unlink(filler)
            os.sync()
            if r.rc == 0:
                # the file system had room after all (block rounding): fine,
                # but the result must be right
                self.assert_check('top.qcow2', cwd=d, what=what)
                self.assert_content(b, what)
                continue
            failures += 1
            self.assertEqual(r.rc, 5, '%s: expected exit 5 (no space)\n%s' % (what, r.describe()))
            self.assertIn('space', r.err.lower(), r.describe())
            self.check_after_failure(b, r, what, d=d, old_backing='base.qcow2')
        self.assertGreater(failures, 0, 'no fill level made the rebase fail')


if __name__ == '__main__':
    ht.main()
