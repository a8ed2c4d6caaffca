#!/usr/bin/python3
"""Copy offload: a safe rebase copies host ranges with FICLONERANGE (shared
blocks) or copy_file_range (in-kernel copy), on real file systems made on
loop devices: XFS with reflink, btrfs, ext4. Judged by qemu-img (compare,
check), FIEMAP (filefrag -v "shared"), free space, and copy-on-write
behaviour after writes through qemu-io. Uses the library through GObject
introspection for the copy mode, the CLI for the default.

Needs root and loop devices; skips with a message where they are missing.
SPDX-License-Identifier: LGPL-2.1-or-later
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
from rechaintest import run_tap, skip_or_fail  # noqa: E402

import gi  # noqa: E402
gi.require_version('Rechain', '1.0')
from gi.repository import GLib, Rechain  # noqa: E402

RECHAIN = os.environ.get('RECHAIN', '')
MiB = 1 << 20


# Under AddressSanitizer the runtime is preloaded into this interpreter
# (it loads the instrumented library); QEMU's tools must not inherit it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}


def sh(cmd, cwd=None, check=True):
    r = subprocess.run(cmd, shell=True, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    if check and r.returncode != 0:
        raise AssertionError('%s failed (%d):\n%s%s' % (cmd, r.returncode, r.stdout, r.stderr))
    return r


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


class Filesystem:
    """A file system of @kind on a loop device over a sparse file."""

    MKFS = {
        'xfs': 'mkfs.xfs -q -f -m reflink=1 %s',
        'btrfs': 'mkfs.btrfs -q -f %s',
        'ext4': 'mkfs.ext4 -q -F %s',
    }

    def __init__(self, kind, size_mib=1024):
        self.kind = kind
        self.root = tempfile.mkdtemp(prefix='rechain-fs-%s-' % kind)
        self.backing = os.path.join(self.root, 'fs.img')
        self.mnt = os.path.join(self.root, 'mnt')
        os.mkdir(self.mnt)
        self.mounted = False
        tool = self.MKFS[kind].split()[0]
        if os.geteuid() != 0:
            skip_or_fail('not root: cannot mount a %s loop file system' % kind)
        if not shutil.which(tool):
            skip_or_fail('%s not installed (package %s)' % (
                tool, {'xfs': 'xfsprogs', 'btrfs': 'btrfs-progs', 'ext4': 'e2fsprogs'}[kind]))
        with open(self.backing, 'wb') as f:
            f.truncate(size_mib * MiB)
        r = sh(self.MKFS[kind] % self.backing, check=False)
        if r.returncode != 0:
            skip_or_fail('%s failed: %s' % (tool, r.stderr.strip()))
        r = sh('mount -o loop %s %s' % (self.backing, self.mnt), check=False)
        if r.returncode != 0:
            self.cleanup()
            skip_or_fail('cannot mount a %s loop file system here: %s' % (kind, r.stderr.strip()))
        self.mounted = True

    def free(self):
        sh('sync')
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def cleanup(self):
        if self.mounted:
            sh('umount %s' % self.mnt, check=False)
            self.mounted = False
        shutil.rmtree(self.root, ignore_errors=True)


def shared_bytes(path):
    """Bytes of @path in extents FIEMAP flags as shared."""
    out = sh('filefrag -v -b1 %s' % path).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[0].rstrip(':').isdigit() and 'shared' in line:
            # ext: logical_offset: physical_offset: length: ... flags
            try:
                total += int(line.split(':')[3].split()[0])
            except (IndexError, ValueError):
                pass
    return total


class OffloadTest(unittest.TestCase):
    KIND = None
    DATA = 128 * MiB

    def setUp(self):
        self.fs = Filesystem(self.KIND)
        self.d = self.fs.mnt
        # a dense base, an overlay with its own data
        sh("qemu-img create -q -f qcow2 base.qcow2 256M && "
           "qemu-io -f qcow2 -c 'write -P 0x5a 0 %d' base.qcow2 && "
           "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
           "qemu-io -f qcow2 -c 'write -P 0x77 1M 64k' top.qcow2 && "
           "qemu-img convert -O raw top.qcow2 %s/before.raw" % (self.DATA, self.fs.root), cwd=self.d)

    def tearDown(self):
        self.fs.cleanup()

    def run_job(self, copy_mode=None, expect_ok=True):
        props = dict(image=os.path.join(self.d, 'top.qcow2'), backing_file='')
        if copy_mode is not None:
            props['copy_mode'] = copy_mode
        job = Rechain.RebaseJob(**props)
        try:
            ok = job.run_sync(None)
        except GLib.Error as e:
            if expect_ok:
                raise
            return job, e
        self.assertTrue(ok)
        return job, None

    def assert_flattened(self):
        r = sh('qemu-img compare -q -f raw -F qcow2 %s/before.raw top.qcow2' % self.fs.root,
               cwd=self.d, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = sh('qemu-img check -q top.qcow2', cwd=self.d, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        info = json.loads(sh('qemu-img info --output=json top.qcow2', cwd=self.d).stdout)
        self.assertNotIn('backing-filename', info)

    def assert_copy_on_write(self):
        """Sharing is copy-on-write, never aliasing: writes to the base and
        to the overlay each stay in their own file."""
        sh("qemu-io -f qcow2 -c 'write -P 0x11 0 1M' base.qcow2", cwd=self.d)
        sh("qemu-io -f qcow2 -c 'write -P 0x22 8M 1M' top.qcow2", cwd=self.d)
        r = sh("qemu-io -f qcow2 -c 'read -P 0x5a 0 1M' -c 'read -P 0x22 8M 1M' "
               "-c 'read -P 0x5a 16M 1M' top.qcow2", cwd=self.d)
        self.assertNotIn('Pattern verification failed', r.stdout)
        r = sh("qemu-io -f qcow2 -c 'read -P 0x11 0 1M' -c 'read -P 0x5a 8M 1M' base.qcow2",
               cwd=self.d)
        self.assertNotIn('Pattern verification failed', r.stdout)


class SharingFilesystem(OffloadTest):
    """XFS with reflink, btrfs: blocks are shared."""

    def test_auto_shares_blocks(self):
        free_before = self.fs.free()
        job, _ = self.run_job()
        stats = job.get_stats()
        written = stats.get_image_bytes_written(0)
        self.assertEqual(written, self.DATA - 64 * 1024)
        self.assertEqual(stats.get_image_bytes_shared(0), written)
        self.assertEqual(stats.get_image_bytes_copied_buffered(0), 0)
        self.assert_flattened()
        # the overlay's copied clusters share blocks with the base
        self.assertGreaterEqual(shared_bytes(os.path.join(self.d, 'top.qcow2')), written)
        # new space: metadata only (L2 tables, refcount blocks), not the data
        used = free_before - self.fs.free()
        self.assertLess(used, written // 100 + 4 * MiB,
                        'free space dropped by %d bytes for %d shared' % (used, written))
        self.assert_copy_on_write()

    def test_reflink_mode(self):
        job, _ = self.run_job(Rechain.CopyMode.REFLINK)
        stats = job.get_stats()
        self.assertEqual(stats.get_image_bytes_shared(0), stats.get_image_bytes_written(0))
        self.assert_flattened()

    def test_reflink_mode_refuses_compressed_before_writing(self):
        sh("qemu-io -f qcow2 -c 'write -c -P 0x66 200M 64k' base.qcow2", cwd=self.d)
        sh('qemu-img convert -O raw top.qcow2 %s/before.raw' % self.fs.root, cwd=self.d)
        before = sha256(os.path.join(self.d, 'top.qcow2'))
        _, err = self.run_job(Rechain.CopyMode.REFLINK, expect_ok=False)
        self.assertIsNotNone(err)
        self.assertTrue(err.matches(Rechain.error_quark(), Rechain.Error.UNSUPPORTED), err.message)
        self.assertIn('compressed', err.message)
        self.assertEqual(before, sha256(os.path.join(self.d, 'top.qcow2')))
        # auto copies that cluster through buffers and shares the rest
        job, _ = self.run_job()
        stats = job.get_stats()
        self.assertEqual(stats.get_image_bytes_copied_buffered(0), 64 * 1024)
        self.assertGreater(stats.get_image_bytes_shared(0), 0)
        self.assert_flattened()

    def test_copy_mode_copies(self):
        job, _ = self.run_job(Rechain.CopyMode.COPY)
        stats = job.get_stats()
        self.assertEqual(stats.get_image_bytes_shared(0), 0)
        self.assertEqual(stats.get_image_bytes_copied_in_kernel(0), 0)
        self.assert_flattened()

    def test_cli_default_and_dry_run(self):
        if not RECHAIN:
            self.skipTest('rechain not built')
        before = sha256(os.path.join(self.d, 'top.qcow2'))
        r = sh('%s rebase --dry-run --output=json -b "" top.qcow2' % RECHAIN, cwd=self.d)
        plan = json.loads(r.stdout)['images'][0]
        self.assertEqual(plan['bytes-shared'], self.DATA - 64 * 1024)
        self.assertEqual(before, sha256(os.path.join(self.d, 'top.qcow2')))
        r = sh('%s rebase --output=json -b "" top.qcow2' % RECHAIN, cwd=self.d)
        done = json.loads(r.stdout)['images'][0]
        self.assertEqual(done['bytes-shared'], self.DATA - 64 * 1024)
        self.assert_flattened()


class XfsTest(SharingFilesystem):
    KIND = 'xfs'


class BtrfsTest(SharingFilesystem):
    KIND = 'btrfs'


class Ext4Test(OffloadTest):
    """ext4: no sharing; copied inside the kernel; reflink mode refused
    before anything is written."""
    KIND = 'ext4'

    def test_auto_copies_in_kernel(self):
        job, _ = self.run_job()
        stats = job.get_stats()
        written = stats.get_image_bytes_written(0)
        self.assertEqual(stats.get_image_bytes_shared(0), 0)
        self.assertEqual(stats.get_image_bytes_copied_in_kernel(0) +
                         stats.get_image_bytes_copied_buffered(0), written)
        self.assertGreater(stats.get_image_bytes_copied_in_kernel(0), 0)
        self.assert_flattened()
        self.assert_copy_on_write()

    def test_reflink_mode_refused(self):
        before = sha256(os.path.join(self.d, 'top.qcow2'))
        _, err = self.run_job(Rechain.CopyMode.REFLINK, expect_ok=False)
        self.assertIsNotNone(err)
        self.assertTrue(err.matches(Rechain.error_quark(), Rechain.Error.UNSUPPORTED), err.message)
        self.assertIn('reflink', err.message)
        self.assertEqual(before, sha256(os.path.join(self.d, 'top.qcow2')))


# the abstract bases are not test cases of their own
del OffloadTest, SharingFilesystem

if __name__ == '__main__':
    run_tap()
