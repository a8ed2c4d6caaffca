#!/usr/bin/python3
# tool-locking: rechain honours QEMU's image locks (OFD locks on the
# permission bytes) like qemu-img does.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import (ToolTestCase, compare_info, compare_maps, main,  # noqa: E402
                         qemu_img, qemu_info, qemu_io, qemu_map, run, sha256)


def wait_open(proc, path, timeout=20):
    """Waits until process @proc has @path open (through /proc)."""
    path = os.path.realpath(path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError('process exited early')
        try:
            for fd in os.listdir('/proc/%d/fd' % proc.pid):
                try:
                    if os.readlink('/proc/%d/fd/%s' % (proc.pid, fd)) == path:
                        return
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError('%s never opened by pid %d' % (path, proc.pid))


def file_locks(path):
    """Lines of /proc/locks about the file @path."""
    st = os.stat(path)
    key = ':%s ' % st.st_ino
    out = []
    with open('/proc/locks') as f:
        for line in f:
            fields = line.split()
            # "1: OFDLCK ADVISORY READ -1 fd:01:1234 100 100"
            for x in fields:
                if x.count(':') == 2 and x.endswith(':%d' % st.st_ino):
                    maj, mnr = x.split(':')[:2]
                    if (int(maj, 16), int(mnr, 16)) == (os.major(st.st_dev), os.minor(st.st_dev)):
                        out.append(line.strip())
    return out


def wait_locked(proc, path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError('qemu-io exited: %s' % proc.stderr.read().decode())
        if file_locks(path):
            return
        time.sleep(0.02)
    raise RuntimeError('%s never locked by pid %d' % (path, proc.pid))


class Holder:
    """A qemu-io process that keeps an image open until closed: it reads
    commands from a pipe we keep open."""

    def __init__(self, img, cwd, readonly=False):
        argv = [rt.QEMU_IO]
        if readonly:
            argv.append('-r')
        argv.append(img)
        self.img = img
        self.cwd = cwd
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # wait until it holds locks on the image: /proc/locks lists OFD
        # locks by device and inode (without a pid); in a fresh temporary
        # directory no one else locks these files.  (Probing with a second
        # qemu-io is racy: both can fail on each other's locks.)
        wait_locked(self.proc, os.path.join(cwd, img))
        time.sleep(0.05)
        if self.proc.poll() is not None:
            raise RuntimeError('qemu-io exited: %s' % self.proc.stderr.read().decode())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'quit\n')
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LockingTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '2M', cwd=d)
        qemu_io('base.qcow2', 'write -P 1 0 1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'top.qcow2', '2M', cwd=d)
        qemu_io('top.qcow2', 'write -P 2 64k 64k', cwd=d)
        self.holders = []

    def tearDown(self):
        for h in self.holders:
            h.close()
        super().tearDown()

    def hold(self, img, readonly=False):
        h = Holder(img, self.dir, readonly)
        self.holders.append(h)
        return h

    def assert_in_use(self, img, *args, target=None):
        target = target or img
        before = sha256(self.path(target))
        r = self.rechain(*(list(args) + [img]), expect=rt.EXIT_IN_USE)
        self.assert_error_names(r, target)
        self.assertEqual(before, sha256(self.path(target)), 'image modified\n' + r.describe())
        return r

    def test_writer_blocks_rebase(self):
        self.hold('top.qcow2')
        self.assert_in_use('top.qcow2', 'rebase', '-u', '-b', '')
        self.assert_in_use('top.qcow2', 'rebase', '-u', '-b', 'x.qcow2', '-F', 'qcow2')
        self.assert_in_use('top.qcow2', 'rebase', '-u', '-q', '-t', 'none', '-b', '')
        # safe mode, if implemented, must also refuse
        before = sha256(self.path('top.qcow2'))
        r = self.rechain('rebase', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.assertEqual(before, sha256(self.path('top.qcow2')), r.describe())
        if 'not implemented' not in r.err:
            self.assertEqual(r.rc, rt.EXIT_IN_USE, r.describe())

    def test_writer_blocks_rebase_even_with_U(self):
        """-U never allows writing an image in use (qemu-img refuses -U for
        writes)."""
        self.hold('top.qcow2')
        before = sha256(self.path('top.qcow2'))
        r = self.rechain('rebase', '-u', '-U', '-b', '', 'top.qcow2', expect=(rt.EXIT_USAGE,
                                                                         rt.EXIT_IN_USE))
        self.assertEqual(before, sha256(self.path('top.qcow2')), r.describe())

    def test_writer_blocks_info_and_map(self):
        """Like qemu-img info/map without -U; with -U they work."""
        self.hold('top.qcow2')
        q = run([rt.QEMU_IMG, 'info', 'top.qcow2'], cwd=self.dir)
        self.assertNotEqual(q.rc, 0, 'oracle: qemu-img info ignored the lock')
        self.assert_in_use('top.qcow2', 'info')
        self.assert_in_use('top.qcow2', 'info', '--output=json')
        self.assert_in_use('top.qcow2', 'map', '--output=json')
        r = self.rechain('info', '-U', '--output=json', 'top.qcow2', expect=0)
        errs = compare_info(qemu_info('top.qcow2', cwd=self.dir), json.loads(r.out))
        self.assertEqual(errs, [], r.describe())
        r = self.rechain('map', '-U', '--output=json', 'top.qcow2', expect=0)
        errs, notes = compare_maps(qemu_map('top.qcow2', cwd=self.dir), json.loads(r.out))
        self.assertEqual(errs, [], r.describe())
        r = self.rechain('info', '-U', '--backing-chain', '--output=json', 'top.qcow2', expect=0)

    def test_reader_allows_info_blocks_rebase(self):
        self.hold('top.qcow2', readonly=True)
        q = run([rt.QEMU_IMG, 'info', 'top.qcow2'], cwd=self.dir)
        self.assertEqual(q.rc, 0, q.describe())
        self.rechain('info', 'top.qcow2', expect=0)
        self.rechain('map', 'top.qcow2', expect=0)
        self.assert_in_use('top.qcow2', 'rebase', '-u', '-b', '')

    def test_backing_in_use_by_overlay(self):
        """A VM (qemu-io) has the overlay open: its backing file may be read
        but not rebased."""
        self.hold('top.qcow2')
        q = run([rt.QEMU_IMG, 'rebase', '-u', '-b', '', 'base.qcow2'], cwd=self.dir)
        self.assertNotEqual(q.rc, 0, 'oracle: qemu-img rebased a backing file in use')
        self.assert_in_use('base.qcow2', 'rebase', '-u', '-b', '')
        self.assert_in_use('base.qcow2', 'rebase', '-u', '-b', 'y.qcow2', '-F', 'qcow2')
        self.rechain('info', 'base.qcow2', expect=0)
        self.rechain('map', 'base.qcow2', expect=0)

    def test_locks_released(self):
        """After the holder quits, and after rechain itself ran, qemu-io can
        open the image read-write (rechain leaves no lock behind)."""
        h = self.hold('top.qcow2')
        self.assert_in_use('top.qcow2', 'rebase', '-u', '-b', '')
        h.close()
        self.rechain('rebase', '-u', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2', expect=0)
        self.rechain('info', 'top.qcow2', expect=0)
        self.rechain('map', 'top.qcow2', expect=0)
        qemu_io('top.qcow2', 'write -P 3 0 4k', cwd=self.dir)
        qemu_io('base.qcow2', 'write -P 3 0 4k', cwd=self.dir)

    def test_force_share_reader_does_not_block(self):
        """A qemu-io -U reader takes no lock: unsafe rebase proceeds (as
        qemu-img rebase -u does)."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'twin.qcow2', '2M', cwd=d)
        h = Holder.__new__(Holder)
        h.proc = subprocess.Popen([rt.QEMU_IO, '-r', '-U', 'top.qcow2'], cwd=d,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.holders.append(h)
        h2 = Holder.__new__(Holder)
        h2.proc = subprocess.Popen([rt.QEMU_IO, '-r', '-U', 'twin.qcow2'], cwd=d,
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        self.holders.append(h2)
        for x, img in ((h, 'top.qcow2'), (h2, 'twin.qcow2')):
            wait_open(x.proc, self.path(img))
        q = run([rt.QEMU_IMG, 'rebase', '-u', '-b', '', 'twin.qcow2'], cwd=d)
        self.assertEqual(q.rc, 0, 'oracle: ' + q.describe())
        self.rechain('rebase', '-u', '-b', '', 'top.qcow2', expect=0)


if __name__ == '__main__':
    main()
