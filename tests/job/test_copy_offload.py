#!/usr/bin/python3
"""Copy offload: a safe rebase copies host ranges with FICLONERANGE (shared
blocks) or copy_file_range (in-kernel copy), on real file systems made on
loop devices: XFS with reflink, btrfs, ext4. Judged by qemu-img (compare,
check), FIEMAP (filefrag -v "shared"), free space, and copy-on-write
behaviour after writes through qemu-io. Uses the library through GObject
introspection for the copy mode, the CLI for the default.

Then, through the CLI: linked clones moved together (-b "" and -b onto a
near copy of the base) sharing the base's blocks; sparse three-level chains
(holes, zero and discarded clusters, unaligned data) with the report's
bytes checked against qemu-img map; a raw backing file and a backing file
with an external data file; the fallbacks that must never fail a rebase
(small clusters, misaligned ranges, extended L2, compressed clusters,
another file system, O_DIRECT); --copy-mode=auto|reflink|copy and reflink
refused before writing; the --dry-run prediction against the real run; and
fault injection (RECHAIN_FAULT, the shim of tests/fault) at every write and flush
of a shared flatten. Known bugs are expected failures, each saying where.

Needs root and loop devices; skips with a message where they are missing.
SPDX-License-Identifier: LGPL-2.1-or-later
"""

import bisect
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
import rechaintest  # noqa: E402
from rechaintest import (run_tap, skip_or_fail, read_header, CRASH_MARKERS,  # noqa: E402
                         EXIT_USAGE, EXIT_INVALID, EXIT_IO)

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
        if os.geteuid() != 0:
            self.cleanup()
            skip_or_fail('not root: cannot mount a %s file system' % kind)
        if kind == 'tmpfs':
            # no block device: another file system, in memory
            r = sh('mount -t tmpfs -o size=%dm tmpfs %s' % (size_mib, self.mnt), check=False)
            if r.returncode != 0:
                self.cleanup()
                skip_or_fail('cannot mount a tmpfs here: %s' % r.stderr.strip())
            self.mounted = True
            return
        tool = self.MKFS[kind].split()[0]
        if not shutil.which(tool):
            self.cleanup()
            skip_or_fail('%s not installed (package %s)' % (
                tool, {'xfs': 'xfsprogs', 'btrfs': 'btrfs-progs', 'ext4': 'e2fsprogs'}[kind]))
        with open(self.backing, 'wb') as f:
            f.truncate(size_mib * MiB)
        r = sh(self.MKFS[kind] % self.backing, check=False)
        if r.returncode != 0:
            self.cleanup()
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
    DATA = 32 * MiB

    def setUp(self):
        self.fs = Filesystem(self.KIND)
        self.d = self.fs.mnt
        # a dense base, an overlay with its own data
        sh("qemu-img create -q -f qcow2 base.qcow2 64M && "
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
        sh("qemu-io -f qcow2 -c 'write -c -P 0x66 48M 64k' base.qcow2", cwd=self.d)
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


# ---------------------------------------------------------------------------
# Linked clones, sparse chains, other sources, fallbacks, the CLI's copy
# modes and dry run, copy-on-write, and fault injection.  Each test makes
# its own small file systems (tens of MiB of data) and judges rechain by
# qemu-img (compare against a raw copy made before, check), FIEMAP and the
# rebase report.

# the per-image numbers a dry run predicts and a real run reports
COPY_FIELDS = ('bytes-written', 'bytes-zeroed', 'bytes-shared',
               'bytes-copied-in-kernel', 'bytes-copied-buffered')
# what the overlay's qcow2 writer did: a dry run runs a planning writer
# through the same code, so these must match the real run's exactly too
WRITER_FIELDS = ('clusters-allocated', 'compressed-clusters', 'metadata-bytes', 'flushes')
PLAN_FIELDS = COPY_FIELDS + WRITER_FIELDS


def fiemap(path):
    """Extents of @path from filefrag -v: (logical, physical, length, flags),
    in bytes."""
    out = sh('filefrag -v -b1 %s' % shlex.quote(path)).stdout
    extents = []
    for line in out.splitlines():
        parts = line.split(':')
        if len(parts) < 5 or not parts[0].strip().isdigit():
            continue
        try:
            extents.append((int(parts[1].split('..')[0]), int(parts[2].split('..')[0]),
                            int(parts[3]), parts[-1].strip()))
        except ValueError:
            continue
    return extents


def bytes_shared_with(path, other):
    """Bytes of @path in shared extents that are blocks of @other too (the
    same physical blocks: shared with that file, not just with some file).
    @other: a path, or its fiemap()."""
    mine = [(p, p + n) for _, p, n, flags in fiemap(path) if 'shared' in flags]
    theirs = [(p, p + n) for _, p, n, _ in (fiemap(other) if isinstance(other, str) else other)]
    total = 0
    for a, b in mine:
        for c, e in theirs:
            total += max(0, min(b, e) - max(a, c))
    return total


def qemu_map(path, cwd):
    return json.loads(sh('qemu-img map --output=json %s' % shlex.quote(path), cwd=cwd).stdout)


def qemu_info(path, cwd):
    return json.loads(sh('qemu-img info --output=json %s' % shlex.quote(path), cwd=cwd).stdout)


class _MapIndex:
    """Lookup of a qemu-img map by guest offset."""

    def __init__(self, extents):
        self.extents = extents
        self.starts = [e['start'] for e in extents]

    def at(self, pos):
        if not self.extents:
            return None
        i = bisect.bisect_right(self.starts, pos) - 1
        e = self.extents[i] if i >= 0 else None
        return e if e and e['start'] <= pos < e['start'] + e['length'] else None

    def bounds(self, a, b):
        """Extent boundaries strictly inside (a, b)."""
        out = set()
        for e in self.extents:
            for x in (e['start'], e['start'] + e['length']):
                if a < x < b:
                    out.add(x)
        return out


def expected_plan(cwd, top, new=None, new_depth=None):
    """(bytes to write, bytes to zero) for a safe rebase of @top onto @new
    (None: no backing file), per cluster of @top, from qemu-img map alone:
    a cluster @top does not allocate is written if the old and new views
    differ anywhere in it and the old view has data there, zeroed if they
    differ and the old view is all zeros.  @new_depth is the depth of @new
    in @top's old chain (its data is the same on both sides); data of the
    other layers must differ from @new in every cluster where both have
    data (the fixtures make it so)."""
    info = qemu_info(top, cwd)
    cs, vsize = info['cluster-size'], info['virtual-size']
    old = _MapIndex(qemu_map(top, cwd))
    newm = _MapIndex(qemu_map(new, cwd) if new else [])
    written = zeroed = 0
    for c in range(0, vsize, cs):
        end = min(vsize, c + cs)
        cuts = sorted({c, end} | old.bounds(c, end) | newm.bounds(c, end))
        own = differs = old_data = False
        for a in cuts[:-1]:
            o, n = old.at(a), newm.at(a)
            if o['present'] and o['depth'] == 0:
                own = True
                break
            od, nd = o['data'], bool(n and n['data'])
            old_data |= od
            same = (not od and not nd) or (od and nd and o['depth'] == new_depth)
            differs |= not same
        if own or not differs:
            continue
        if old_data:
            written += end - c
        else:
            zeroed += end - c
    return written, zeroed


class ImageCase(unittest.TestCase):
    """A test on file systems of its own (KIND first, in self.d), through
    the CLI."""
    KIND = 'xfs'
    FS_MIB = 512

    def setUp(self):
        if not RECHAIN:
            self.skipTest('rechain not built')
        self.fs = self.mount(self.KIND, self.FS_MIB)
        self.d = self.fs.mnt
        self.raw_dir = self.fs.root   # raw copies live outside the file system measured

    def mount(self, kind, size_mib=512):
        fs = Filesystem(kind, size_mib)
        self.addCleanup(fs.cleanup)
        return fs

    def sh(self, cmd, cwd=None):
        return sh(cmd, cwd=cwd or self.d)

    def qio(self, img, *cmds, fmt='qcow2', cwd=None):
        """qemu-io commands that must all succeed (it exits 0 after a failed
        command or a pattern mismatch, and says so)."""
        r = sh('qemu-io -f %s %s %s' % (fmt, ' '.join('-c %s' % shlex.quote(c) for c in cmds),
                                        shlex.quote(img)), cwd=cwd or self.d)
        out = r.stdout + r.stderr
        self.assertNotIn('failed', out.lower(), out)
        self.assertNotIn('error', out.lower(), out)
        return r

    def rechain(self, args, cwd=None, env=None):
        e = dict(CHILD_ENV)
        e.update(env or {})
        rechaintest.fault_env(e)
        r = subprocess.run([RECHAIN] + list(args), cwd=cwd or self.d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=e, timeout=120)
        for marker in CRASH_MARKERS:
            self.assertNotIn(marker, r.stderr, 'rechain %s:\n%s' % (' '.join(args), r.stderr))
        return r

    def rebase(self, *args, rc=0, cwd=None, env=None):
        """rechain rebase --output=json ARGS: the report, checking the exit
        status."""
        r = self.rechain(['rebase', '--output=json'] + list(args), cwd=cwd, env=env)
        self.assertEqual(r.returncode, rc, 'rechain rebase %s: exit %d\n%s%s'
                         % (' '.join(args), r.returncode, r.stdout, r.stderr))
        report = json.loads(r.stdout) if r.stdout.strip() else None
        if rc == 0:
            want = 'planned' if '--dry-run' in args else 'rebased'
            for img in report['images']:
                self.assertEqual(img['result'], want, img)
        return report

    def snapshot_raw(self, img, cwd=None):
        """A raw copy of what the guest sees through @img now."""
        raw = os.path.join(self.raw_dir, os.path.basename(img) + '.raw')
        self.sh('qemu-img convert -O raw %s %s' % (shlex.quote(img), raw), cwd=cwd)
        return raw

    def assert_content(self, raw, img, cwd=None):
        r = sh('qemu-img compare -q -f raw -F qcow2 %s %s' % (raw, shlex.quote(img)),
               cwd=cwd or self.d, check=False)
        self.assertEqual(r.returncode, 0,
                         '%s differs from %s: %s%s' % (img, raw, r.stdout, r.stderr))

    def assert_clean(self, img, cwd=None):
        r = sh('qemu-img check %s' % shlex.quote(img), cwd=cwd or self.d, check=False)
        self.assertEqual(r.returncode, 0, 'qemu-img check %s: exit %d\n%s%s'
                         % (img, r.returncode, r.stdout, r.stderr))
        self.assertNotIn('ERROR', r.stdout + r.stderr)

    def assert_backing(self, img, name, cwd=None):
        self.assertEqual(read_header(os.path.join(cwd or self.d, img))['backing_file'], name)

    def assert_accounted(self, img_report):
        """Every byte written into the image was shared, copied in the kernel
        or copied through a buffer, exactly once."""
        self.assertEqual(img_report['bytes-shared'] + img_report['bytes-copied-in-kernel'] +
                         img_report['bytes-copied-buffered'], img_report['bytes-written'],
                         img_report)

    def assert_prediction(self, dry, done):
        """The dry run's numbers are the real run's."""
        self.assertEqual(len(dry['images']), len(done['images']))
        for p, r in zip(dry['images'], done['images']):
            self.assertEqual({k: p[k] for k in PLAN_FIELDS}, {k: r[k] for k in PLAN_FIELDS},
                             '%s: dry run (first) and real run differ' % r['image'])

    def dry_then_real(self, *args, cwd=None):
        """A dry run (which changes nothing), then the real run: both
        reports."""
        images = [a for a in args if a.endswith('.qcow2') and not a.startswith('-')]
        before = {i: sha256(os.path.join(cwd or self.d, i)) for i in images}
        dry = self.rebase('--dry-run', *args, cwd=cwd)
        self.assertTrue(dry['dry-run'])
        for i in images:
            self.assertEqual(before[i], sha256(os.path.join(cwd or self.d, i)),
                             'dry run wrote %s' % i)
        return dry, self.rebase(*args, cwd=cwd)

    def copy_file(self, src, dst):
        """A copy that shares no blocks with @src."""
        self.sh('cp --reflink=never %s %s' % (shlex.quote(src), shlex.quote(dst)))

    def dense_chain(self, cluster_size=65536, top_opts=''):
        self.sh('rm -f top.qcow2 base.qcow2 top.data')
        self.sh('qemu-img create -q -f qcow2 base.qcow2 32M')
        self.qio('base.qcow2', 'write -P 0x5a 0 8M', 'write -P 0x5b 12M 4M')
        self.sh('qemu-img create -q -f qcow2 -o cluster_size=%d%s -b base.qcow2 -F qcow2 top.qcow2'
                % (cluster_size, top_opts))
        self.qio('top.qcow2', 'write -P 0x77 1M 64k', 'write -P 0x78 1536 512')
        return self.snapshot_raw('top.qcow2')

    def assert_refused_before_writing(self, args, status, reason, message):
        before = sha256(os.path.join(self.d, 'top.qcow2'))
        r = self.rechain(['rebase', '--output=json'] + args + ['-b', '', 'top.qcow2'])
        self.assertEqual(r.returncode, status, r.stdout + r.stderr)
        error = json.loads(r.stderr.strip().splitlines()[-1])['error']
        self.assertEqual((error['reason'], error['exit-status']), (reason, status), error)
        self.assertIn(message, error['message'])
        self.assertEqual(json.loads(r.stdout)['images'][0]['result'], 'failed')
        self.assertEqual(before, sha256(os.path.join(self.d, 'top.qcow2')),
                         'the overlay was written')


class _Clones:
    """Linked clones of one base."""

    def make_clones(self, n=3):
        """A base with 14 MiB of data in two runs, and @n overlays with data
        of their own (one cluster each inside the base's data, o2 one more)."""
        self.sh("qemu-img create -q -f qcow2 base.qcow2 32M")
        self.qio('base.qcow2', 'write -P 0x5a 0 8M', 'write -P 0x5b 10M 6M')
        self.clones = ['o%d.qcow2' % i for i in range(1, n + 1)]
        self.raws = {}
        for i, o in enumerate(self.clones, 1):
            self.sh('qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 %s' % o)
            cmds = ['write -P 0x%x %dM 64k' % (0x70 + i, i)]
            if i == 2:
                cmds.append('write -P 0x72 5M 64k')
            self.qio(o, *cmds)
            self.raws[o] = self.snapshot_raw(o)


class ClonesTest(_Clones, ImageCase):
    """Linked clones: several overlays of one base moved in one call share
    blocks with the base (issue 9: "Linked clones")."""

    def assert_clones_share_base(self, report, free_before):
        total_written = 0
        base_extents = fiemap(os.path.join(self.d, 'base.qcow2'))
        for img in report['images']:
            o = img['image']
            self.assertGreater(img['bytes-written'], 0, img)
            self.assertEqual(img['bytes-shared'], img['bytes-written'], img)
            self.assertEqual(img['bytes-copied-in-kernel'], 0, img)
            self.assertEqual(img['bytes-copied-buffered'], 0, img)
            self.assert_content(self.raws[o], o)
            self.assert_clean(o)
            # its copied clusters are the base's own blocks
            self.assertGreaterEqual(bytes_shared_with(os.path.join(self.d, o), base_extents),
                                    img['bytes-written'], o)
            total_written += img['bytes-written']
        metadata = sum(img['metadata-bytes'] for img in report['images'])
        used = free_before - self.fs.free()
        self.assertLessEqual(used, metadata + 4 * MiB,
                             'free space dropped by %d bytes for %d bytes shared (%d of metadata)'
                             % (used, total_written, metadata))
        self.assertLess(used, total_written // 8)

    def test_flatten_clones_share_base(self):
        self.make_clones()
        free_before = self.fs.free()
        report = self.rebase('-b', '', *self.clones)
        self.assertEqual(len(report['images']), 3)
        for img in report['images']:
            own = 2 if img['image'] == 'o2.qcow2' else 1
            self.assertEqual(img['bytes-written'], 14 * MiB - own * 64 * 1024, img)
            self.assertEqual(img['bytes-zeroed'], 0, img)
            self.assert_backing(img['image'], None)
        self.assert_clones_share_base(report, free_before)

        # copy-on-write, never aliasing: a write to the base or to one clone
        # stays in that file
        self.qio('base.qcow2', 'write -P 0x11 0 1M', 'write -P 0x12 12M 1M')
        self.qio('o1.qcow2', 'write -P 0x22 6M 1M', 'write -P 0x23 13M 1M',
                 'read -P 0x5a 0 1M', 'read -P 0x22 6M 1M', 'read -P 0x5b 12M 1M',
                 'read -P 0x23 13M 1M')
        self.qio('base.qcow2', 'read -P 0x11 0 1M', 'read -P 0x5a 6M 1M', 'read -P 0x12 12M 1M',
                 'read -P 0x5b 13M 1M')
        for o in ('o2.qcow2', 'o3.qcow2'):
            self.assert_content(self.raws[o], o)
        for img in ['base.qcow2'] + self.clones:
            self.assert_clean(img)

    def test_clones_onto_near_copy_share_base(self):
        self.make_clones()
        # NEW: a copy of the base (blocks of its own), then changed: data
        # over the old data, zeros and a discard over the old data, data
        # where the old base has none
        self.copy_file('base.qcow2', 'new.qcow2')
        self.qio('new.qcow2', 'write -P 0x33 4M 2M', 'write -z 11M 1M', 'discard 13M 1M',
                 'write -P 0x34 20M 1M')
        free_before = self.fs.free()
        dry, report = self.dry_then_real('-b', 'new.qcow2', '-F', 'qcow2', *self.clones)
        self.assert_prediction(dry, report)
        for img in report['images']:
            # 2 MiB + 1 MiB + 1 MiB of old data copied (o2 has a cluster of
            # its own in there), 1 MiB zeroed
            own = 64 * 1024 if img['image'] == 'o2.qcow2' else 0
            self.assertEqual(img['bytes-written'], 4 * MiB - own, img)
            self.assertEqual(img['bytes-zeroed'], 1 * MiB, img)
            self.assert_backing(img['image'], 'new.qcow2')
        self.assert_clones_share_base(report, free_before)

        # copy-on-write: the old base and one clone written where the
        # clones took the old base's blocks; the new base keeps its own
        self.qio('base.qcow2', 'write -P 0x11 4M 1M', 'write -P 0x12 11M 1M')
        self.qio('o1.qcow2', 'write -P 0x22 5M 1M', 'write -P 0x23 13M 512k',
                 'read -P 0x5a 4M 1M', 'read -P 0x22 5M 1M', 'read -P 0x5b 11M 1M',
                 'read -P 0x23 13M 512k', 'read -P 0x5b %d 512k' % (13 * MiB + 512 * 1024))
        self.qio('base.qcow2', 'read -P 0x11 4M 1M', 'read -P 0x5a 5M 1M', 'read -P 0x12 11M 1M',
                 'read -P 0x5b 13M 1M')
        self.qio('new.qcow2', 'read -P 0x33 4M 2M', 'read -P 0 11M 1M', 'read -P 0 13M 1M')
        for o in ('o2.qcow2', 'o3.qcow2'):
            self.assert_content(self.raws[o], o)
        for img in ['base.qcow2', 'new.qcow2'] + self.clones:
            self.assert_clean(img)


class XfsClonesTest(ClonesTest):
    KIND = 'xfs'


class BtrfsClonesTest(ClonesTest):
    KIND = 'btrfs'


class _SparseChain:
    """base <- mid <- top, 48 MiB: holes, zero clusters (write -z),
    discarded clusters and data at unaligned offsets in every layer; mid's
    data differs from the base's in every cluster where both have data."""

    def make_sparse_chain(self, cluster_size=None):
        opts = '-o cluster_size=%d ' % cluster_size if cluster_size else ''
        self.sh('qemu-img create -q -f qcow2 %sbase.qcow2 48M' % opts)
        self.qio('base.qcow2', 'write -P 0x11 0 8M', 'write -P 0x12 16M 4M',
                 'write -P 0x13 30M 1M', 'write -P 0x14 33554000 1000', 'discard 6M 512k',
                 'write -P 0x15 44M 2M', 'write -z 45M 64k')
        self.sh('qemu-img create -q -f qcow2 %s-b base.qcow2 -F qcow2 mid.qcow2' % opts)
        self.qio('mid.qcow2', 'write -z 1M 1M', 'write -P 0x21 3M 2M', 'discard 17M 1M',
                 'write -P 0x22 24M 1M', 'discard 3M 512k', 'write -z 40M 64k',
                 'write -P 0x23 100000 3000', 'write -P 0x24 36700000 70000')
        self.sh('qemu-img create -q -f qcow2 %s-b mid.qcow2 -F qcow2 top.qcow2' % opts)
        self.qio('top.qcow2', 'write -P 0x31 12345 7000', 'write -P 0x32 5000000 100000',
                 'write -z 6M 128k', 'discard 16M 64k', 'write -P 0x33 33554000 1000')
        return self.snapshot_raw('top.qcow2')


class XfsLayoutTest(_SparseChain, ImageCase):
    """On XFS with reflink: sparse chains, a raw backing file, a backing
    file with an external data file, the fallbacks, the CLI's copy modes
    and dry run, fault injection."""
    KIND = 'xfs'

    # -- sparse chains --

    def test_sparse_chain_flatten(self):
        raw = self.make_sparse_chain()
        want_written, want_zeroed = expected_plan(self.d, 'top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual((img['bytes-written'], img['bytes-zeroed']), (want_written, want_zeroed))
        self.assertGreater(want_written, 8 * MiB)
        self.assert_accounted(img)
        self.assertEqual(img['bytes-shared'], img['bytes-written'], img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')
        self.assert_backing('top.qcow2', None)
        # shared with the backing files' blocks: all but what qemu left
        # unwritten (preallocated, reading as zeros) inside their clusters
        top = os.path.join(self.d, 'top.qcow2')
        self.assertGreaterEqual(bytes_shared_with(top, os.path.join(self.d, 'base.qcow2')) +
                                bytes_shared_with(top, os.path.join(self.d, 'mid.qcow2')),
                                img['bytes-written'] * 0.95)

    def test_sparse_chain_drop_middle(self):
        """-b base: what mid changed is copied (shared with mid) or zeroed."""
        raw = self.make_sparse_chain()
        want_written, want_zeroed = expected_plan(self.d, 'top.qcow2', 'base.qcow2', new_depth=2)
        dry, report = self.dry_then_real('-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual((img['bytes-written'], img['bytes-zeroed']), (want_written, want_zeroed))
        self.assertGreater(want_written, 0)
        self.assertGreater(want_zeroed, 0)
        self.assert_accounted(img)
        self.assertEqual(img['bytes-shared'], img['bytes-written'], img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')
        self.assert_backing('top.qcow2', 'base.qcow2')
        self.assertGreaterEqual(bytes_shared_with(os.path.join(self.d, 'top.qcow2'),
                                                  os.path.join(self.d, 'mid.qcow2')),
                                img['bytes-written'] * 0.95)

    def test_sparse_chain_subcluster_data_accounted(self):
        """Data of a backing file with smaller clusters fills part of an
        overlay cluster: every byte written must still be accounted as
        shared, copied in the kernel or copied through a buffer; the rest of
        the fresh cluster, which reads as zeros, counts as zeroed."""
        self.sh('qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 8M')
        self.qio('base.qcow2', 'write -P 0x11 0 4k', 'write -P 0x12 1M 4k', 'write -P 0x13 2M 64k')
        self.sh('qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2')
        raw = self.snapshot_raw('top.qcow2')
        img = self.rebase('-b', '', 'top.qcow2')['images'][0]
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')
        self.assert_accounted(img)

    # -- other sources: a raw backing file, an external data file --

    def test_raw_backing_shared(self):
        self.sh('qemu-img create -q -f raw base.raw 32M')
        self.qio('base.raw', 'write -P 0x11 0 8M', 'write -P 0x12 12M 1M', 'write -P 0x13 20M 1M',
                 fmt='raw')
        self.sh('qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2')
        self.qio('top.qcow2', 'write -P 0x77 1M 64k', 'write -P 0x78 12345 100')
        raw = self.snapshot_raw('top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual(img['bytes-written'], 10 * MiB - 2 * 64 * 1024, img)
        self.assertEqual(img['bytes-shared'], img['bytes-written'], img)
        self.assert_accounted(img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')
        self.assertGreaterEqual(bytes_shared_with(os.path.join(self.d, 'top.qcow2'),
                                                  os.path.join(self.d, 'base.raw')),
                                img['bytes-written'])
        # copy-on-write
        self.qio('base.raw', 'write -P 0x21 0 1M', fmt='raw')
        self.qio('top.qcow2', 'write -P 0x22 2M 1M')
        self.qio('top.qcow2', 'read -P 0x11 64k 960k', 'read -P 0x22 2M 1M', 'read -P 0x12 12M 1M')
        self.qio('base.raw', 'read -P 0x21 0 1M', 'read -P 0x11 2M 1M', fmt='raw')

    def test_backing_with_external_data_file_shared(self):
        self.sh('qemu-img create -q -f qcow2 -o data_file=base.data base.qcow2 32M')
        self.qio('base.qcow2', 'write -P 0x11 0 8M', 'write -P 0x13 20M 1M')
        self.sh('qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2')
        self.qio('top.qcow2', 'write -P 0x77 1M 64k')
        raw = self.snapshot_raw('top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual(img['bytes-written'], 9 * MiB - 64 * 1024, img)
        self.assertEqual(img['bytes-shared'], img['bytes-written'], img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')
        self.assertGreaterEqual(bytes_shared_with(os.path.join(self.d, 'top.qcow2'),
                                                  os.path.join(self.d, 'base.data')),
                                img['bytes-written'])
        self.qio('base.qcow2', 'write -P 0x21 0 1M')
        self.qio('top.qcow2', 'read -P 0x11 0 1M', 'read -P 0x13 20M 1M')

    # -- fallbacks never fail the rebase --

    def small_cluster_chain(self, base_cs, top_cs):
        """A base and an overlay of the given cluster sizes, with data whose
        host ranges are not all aligned to the 4 KiB block of the file
        system (an overlay with clusters under 4 KiB gets a misaligned host
        offset from a cluster of its own written first)."""
        self.sh('qemu-img create -q -f qcow2 -o cluster_size=%d base.qcow2 8M' % base_cs)
        self.qio('base.qcow2', 'write -P 0x11 0 512', 'write -P 0x12 1M 4k', 'write -P 0x13 2M 1M',
                 'write -P 0x14 3M 1536', 'write -P 0x15 4M 8k')
        self.sh('qemu-img create -q -f qcow2 -o cluster_size=%d -b base.qcow2 -F qcow2 top.qcow2'
                % top_cs)
        self.qio('top.qcow2', 'write -P 0x77 5M 512')
        return self.snapshot_raw('top.qcow2')

    def test_small_clusters_misaligned_never_fail(self):
        """512-byte and 4 KiB clusters: the ranges that cannot be shared
        (not whole 4 KiB blocks on both sides) are copied another way, and
        the rebase succeeds (auto mode; copy mode copies everything through
        buffers, see test_cli_copy_modes)."""
        for base_cs, top_cs in ((512, 65536), (65536, 512), (4096, 512)):
            with self.subTest(base=base_cs, top=top_cs):
                d = os.path.join(self.d, 'c%d-%d' % (base_cs, top_cs))
                os.mkdir(d)
                self.d, saved = d, self.d
                try:
                    raw = self.small_cluster_chain(base_cs, top_cs)
                    img = self.rebase('-b', '', 'top.qcow2')['images'][0]
                    self.assert_content(raw, 'top.qcow2')
                    self.assert_clean('top.qcow2')
                    copied = img['bytes-copied-in-kernel'] + img['bytes-copied-buffered']
                    self.assertGreater(copied, 0, img)
                    self.assertLessEqual(img['bytes-shared'] + copied, img['bytes-written'], img)
                    # what the report calls shared is all FIEMAP shows shared
                    self.assertLessEqual(shared_bytes(os.path.join(d, 'top.qcow2')),
                                         img['bytes-shared'] + 2 * 4096)
                finally:
                    self.d = saved

    def test_misaligned_ranges_take_buffered_path(self):
        """Issue 9: copy_file_range(2) or FICLONERANGE "where the source and
        destination ranges are aligned to the filesystem block size",
        misaligned ranges and small clusters "fall back to the ordinary
        path": on XFS, misaligned ranges go through buffers."""
        raw = self.small_cluster_chain(512, 65536)
        img = self.rebase('-b', '', 'top.qcow2')['images'][0]
        self.assert_content(raw, 'top.qcow2')
        self.assertGreater(img['bytes-copied-buffered'], 0, img)

    def test_extended_l2_partial_clusters_buffered(self):
        """Clusters the overlay allocates in part (extended L2 subclusters of
        1 or 2 KiB) cannot take fresh blocks: they go through buffers, the
        rest is shared."""
        self.sh('qemu-img create -q -f qcow2 base.qcow2 8M')
        self.qio('base.qcow2', 'write -P 0x13 0 4M')
        for cs in (32768, 65536):
            with self.subTest(cluster_size=cs):
                self.sh('rm -f top.qcow2 && qemu-img create -q -f qcow2 -o cluster_size=%d,'
                        'extended_l2=on -b base.qcow2 -F qcow2 top.qcow2' % cs)
                self.qio('top.qcow2', 'write -P 1 1024 512', 'write -P 2 1M 2k')
                raw = self.snapshot_raw('top.qcow2')
                img = self.rebase('-b', '', 'top.qcow2')['images'][0]
                self.assert_content(raw, 'top.qcow2')
                self.assert_clean('top.qcow2')
                self.assert_accounted(img)
                self.assertGreater(img['bytes-copied-buffered'], 0, img)
                self.assertLess(img['bytes-copied-buffered'], 2 * cs, img)
                self.assertGreater(img['bytes-shared'], 3 * MiB, img)

    def test_compressed_base_auto(self):
        """Compressed clusters of the base go through buffers (auto mode),
        the rest is shared."""
        self.sh('qemu-img create -q -f qcow2 base.qcow2 16M')
        self.qio('base.qcow2', 'write -P 0x13 0 4M', 'write -c -P 0x14 5M 64k',
                 'write -c -P 0x15 6M 64k', 'write -c -P 0x16 7M 64k')
        self.sh('qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2')
        raw = self.snapshot_raw('top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual(img['bytes-copied-buffered'], 3 * 64 * 1024, img)
        self.assertEqual(img['bytes-shared'], 4 * MiB, img)
        self.assert_accounted(img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')

    def other_fs_chain(self, where):
        base = os.path.join(where, 'base.qcow2')
        self.sh('qemu-img create -q -f qcow2 %s 16M' % base)
        self.qio(base, 'write -P 0x11 0 8M', 'write -c -P 0x12 9M 64k')
        self.sh('qemu-img create -q -f qcow2 -b %s -F qcow2 top.qcow2' % base)
        self.qio('top.qcow2', 'write -P 0x77 1M 64k')
        return self.snapshot_raw('top.qcow2')

    def test_backing_on_other_filesystem(self):
        """A backing file on another file system (tmpfs, ext4) than the
        overlay (XFS): copied in the kernel or through buffers, never
        shared, never failing."""
        for kind in ('tmpfs', 'ext4'):
            with self.subTest(backing_on=kind):
                other = self.mount(kind, 64 if kind == 'tmpfs' else 256)
                raw = self.other_fs_chain(other.mnt)
                img = self.rebase('-b', '', 'top.qcow2')['images'][0]
                self.assertEqual(img['bytes-written'], 8 * MiB, img)
                self.assertEqual(img['bytes-shared'], 0, img)
                self.assert_accounted(img)
                self.assertGreaterEqual(img['bytes-copied-buffered'], 64 * 1024, img)
                self.assert_content(raw, 'top.qcow2')
                self.assert_clean('top.qcow2')
                self.assertEqual(shared_bytes(os.path.join(self.d, 'top.qcow2')), 0)
                # reflink mode refuses it before writing
                self.sh('rm -f top.qcow2')
                self.other_fs_chain(other.mnt)
                before = sha256(os.path.join(self.d, 'top.qcow2'))
                r = self.rechain(['rebase', '--copy-mode=reflink', '-b', '', 'top.qcow2'])
                self.assertEqual(r.returncode, EXIT_INVALID, r.stderr)
                self.assertIn('another file system', r.stderr)
                self.assertEqual(before, sha256(os.path.join(self.d, 'top.qcow2')))
                self.sh('rm -f top.qcow2')

    def test_o_direct(self):
        """-t none -T none (O_DIRECT on both sides): shared where aligned,
        the rest copied, content and check clean."""
        self.sh('qemu-img create -q -f qcow2 base.qcow2 16M')
        self.qio('base.qcow2', 'write -P 0x13 0 4M', 'write -c -P 0x14 5M 64k',
                 'write -P 0x15 6M 1536')
        for cs in (512, 65536):
            with self.subTest(cluster_size=cs):
                self.sh('rm -f top.qcow2 && qemu-img create -q -f qcow2 -o cluster_size=%d '
                        '-b base.qcow2 -F qcow2 top.qcow2' % cs)
                self.qio('top.qcow2', 'write -P 1 1024 512')
                raw = self.snapshot_raw('top.qcow2')
                img = self.rebase('-t', 'none', '-T', 'none', '-b', '', 'top.qcow2')['images'][0]
                self.assert_content(raw, 'top.qcow2')
                self.assert_clean('top.qcow2')
                self.assertGreaterEqual(img['bytes-copied-buffered'], 64 * 1024, img)
                if cs >= 4096:
                    self.assertGreater(img['bytes-shared'], 3 * MiB, img)

    # -- the CLI: --copy-mode, refusals, dry run --

    def test_cli_copy_modes(self):
        want = 12 * MiB - 2 * 64 * 1024
        for mode in ('auto', 'reflink', 'copy'):
            with self.subTest(mode=mode):
                raw = self.dense_chain()
                dry, report = self.dry_then_real('--copy-mode=' + mode, '-b', '', 'top.qcow2')
                self.assert_prediction(dry, report)
                img = report['images'][0]
                self.assertEqual(img['bytes-written'], want, img)
                if mode == 'copy':
                    self.assertEqual(img['bytes-copied-buffered'], want, img)
                    self.assertEqual(shared_bytes(os.path.join(self.d, 'top.qcow2')), 0)
                else:
                    self.assertEqual(img['bytes-shared'], want, img)
                    self.assertGreaterEqual(shared_bytes(os.path.join(self.d, 'top.qcow2')), want)
                self.assert_accounted(img)
                self.assert_content(raw, 'top.qcow2')
                self.assert_clean('top.qcow2')
        r = self.rechain(['rebase', '--copy-mode=sometimes', '-b', '', 'top.qcow2'])
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)

    def test_cli_reflink_refused_before_writing(self):
        """--copy-mode=reflink where something cannot be shared: refused
        with nothing written, exit status per the README's table (3, an
        unsupported image layout; 2 for the -c option clash)."""
        self.dense_chain()
        self.assert_refused_before_writing(['--copy-mode=reflink', '-c'], EXIT_USAGE, 'usage',
                                           'compress')
        self.qio('base.qcow2', 'write -c -P 0x66 20M 64k')
        self.assert_refused_before_writing(['--copy-mode=reflink'], EXIT_INVALID,
                                           'invalid-image', 'compressed')
        self.dense_chain(cluster_size=512)
        self.assert_refused_before_writing(['--copy-mode=reflink'], EXIT_INVALID,
                                           'invalid-image', '4096-byte')
        # auto does them all
        img = self.rebase('-b', '', 'top.qcow2')['images'][0]
        self.assert_accounted(img)

    def test_dry_run_prediction_on_layouts(self):
        """--dry-run --output=json predicts the real run's bytes-shared,
        -copied-in-kernel and -copied-buffered (sparse chains, compressed
        clusters, raw backing, clones, each copy mode: elsewhere; here 4 KiB
        clusters and a compressed one)."""
        self.dense_chain(cluster_size=4096)
        self.qio('base.qcow2', 'write -c -P 0x66 20M 64k')
        raw = self.snapshot_raw('top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual(img['bytes-copied-buffered'], 64 * 1024, img)
        self.assertGreater(img['bytes-shared'], 0, img)
        self.assert_content(raw, 'top.qcow2')

    def test_dry_run_prediction_small_clusters(self):
        """Clusters under the 4 KiB block: a real cluster lands wherever the
        allocator puts it, so nothing is shared; the dry run predicts the
        same (copies through buffers)."""
        self.sh('qemu-img create -q -f qcow2 base.qcow2 8M')
        self.qio('base.qcow2', 'write -P 0x13 2M 1M')
        self.sh('qemu-img create -q -f qcow2 -o cluster_size=512 -b base.qcow2 -F qcow2 top.qcow2')
        self.qio('top.qcow2', 'write -P 1 0 512')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)

    def test_dry_run_prediction_unplaceable_clusters(self):
        """The dry run predicts what rechain_qcow2_writer_place() does: no
        fresh cluster for an overlay with an external data file, nor for a
        cluster the overlay allocates in part (extended L2); those go
        through buffers."""
        failures = []
        for opts in (',data_file=top.data', ',extended_l2=on'):
            self.dense_chain(top_opts=opts)
            dry, report = self.dry_then_real('-b', '', 'top.qcow2')
            p, r = dry['images'][0], report['images'][0]
            if any(p[k] != r[k] for k in PLAN_FIELDS):
                failures.append('%s: predicted %s, done %s' % (
                    opts, {k: p[k] for k in PLAN_FIELDS}, {k: r[k] for k in PLAN_FIELDS}))
        self.assertEqual(failures, [])

    def test_dry_run_prediction_other_filesystem(self):
        """A backing file on another file system: copy_file_range(2) between
        two file systems fails with EXDEV (Linux >= 5.19), so the rebase
        copies through buffers, and the dry run says so."""
        other = self.mount('tmpfs', 64)
        self.other_fs_chain(other.mnt)
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)

    # -- fault injection (tests/fault: RECHAIN_FAULT=KIND:N:ACTION) --

    def test_fault_injection_every_write_and_flush(self):
        """A small shared flatten, failed with EIO at its Nth write (the
        clones and in-kernel copies are writes: src/io/copy.c) and at its Nth
        flush for every N, with ENOSPC at its first clone, and killed at each
        flush: afterwards qemu-img check finds no corruption (leaked
        clusters allowed), the guest sees what it saw (through the old
        backing file or none), and a rerun completes with the content
        unchanged."""
        self.sh('qemu-img create -q -f qcow2 base.qcow2 8M')
        self.qio('base.qcow2', 'write -P 0x13 0 2M', 'write -P 0x14 3M 1M',
                 'write -c -P 0x15 5M 64k', 'write -P 0x16 6M 64k')
        self.sh('qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2')
        self.qio('top.qcow2', 'write -P 1 1M 64k', 'write -z 3M 64k')
        raw = self.snapshot_raw('top.qcow2')
        top = os.path.join(self.d, 'top.qcow2')
        with open(top, 'rb') as f:
            pristine = f.read()

        def restore():
            with open(top, 'wb') as f:
                f.write(pristine)

        # learn the points: a fault-free run with the log
        log = os.path.join(self.fs.root, 'fault.log')
        report = self.rebase('-b', '', 'top.qcow2', env={'RECHAIN_FAULT_LOG': log})
        img = report['images'][0]
        self.assertGreater(img['bytes-shared'], 0, img)
        self.assertGreater(img['bytes-copied-buffered'], 0, img)
        with open(log) as f:
            ops = [line.split()[0] for line in f if not line.startswith('read ')]
        writes, flushes = ops.count('write'), ops.count('flush')
        # three shared runs, the compressed cluster, the L2 table, the
        # refcount block, the header; a flush before each link and after
        # the header switch
        self.assertGreaterEqual(writes, 5, ops)
        self.assertGreaterEqual(flushes, 2, ops)

        points = ([('write:%d:EIO' % n, EXIT_IO) for n in range(1, writes + 1)] +
                  [('write:1:ENOSPC', EXIT_IO)] +
                  [('flush:%d:EIO' % n, EXIT_IO) for n in range(1, flushes + 1)] +
                  [('any:%d:KILL' % n, -9) for n, op in enumerate(ops, 1) if op == 'flush'])
        problems = []
        compare = 'qemu-img compare -q -f raw -F qcow2 %s top.qcow2' % raw
        for spec, status in points:
            restore()
            r = self.rechain(['rebase', '-b', '', 'top.qcow2'], env={'RECHAIN_FAULT': spec})
            what = 'RECHAIN_FAULT=%s' % spec
            if r.returncode != status:
                problems.append('%s: exit %d, not %d: %s' % (what, r.returncode, status,
                                                              r.stderr.strip()))
            c = sh('qemu-img check top.qcow2', cwd=self.d, check=False)
            if c.returncode not in (0, 3):
                problems.append('%s: qemu-img check exit %d:\n%s%s' % (what, c.returncode,
                                                                       c.stdout, c.stderr))
                continue
            c = sh(compare, cwd=self.d, check=False)
            if c.returncode != 0:
                problems.append('%s: content changed (backing %r)' % (
                    what, read_header(top)['backing_file']))
                continue
            r = self.rechain(['rebase', '-b', '', 'top.qcow2'])
            if r.returncode != 0:
                problems.append('%s: rerun exit %d: %s' % (what, r.returncode, r.stderr.strip()))
                continue
            c = sh(compare, cwd=self.d, check=False)
            if c.returncode != 0:
                problems.append('%s: content changed by the rerun' % what)
            c = sh('qemu-img check top.qcow2', cwd=self.d, check=False)
            if c.returncode not in (0, 3):
                problems.append('%s: after the rerun qemu-img check exit %d:\n%s' % (
                    what, c.returncode, c.stdout))
            if read_header(top)['backing_file'] is not None:
                problems.append('%s: the rerun left a backing file' % what)
        self.assertEqual(problems, [], '\n'.join(problems))
        # the base was never written
        self.qio('base.qcow2', 'read -P 0x13 0 2M', 'read -P 0x14 3M 1M', 'read -P 0x16 6M 64k')


class Ext4LayoutTest(_SparseChain, ImageCase):
    """ext4: the CLI's copy modes, reflink refused, dry run = real run."""
    KIND = 'ext4'

    def test_cli_reflink_refused_before_writing(self):
        self.dense_chain()
        self.assert_refused_before_writing(['--copy-mode=reflink'], EXIT_INVALID, 'invalid-image',
                                           'reflink')
        self.assert_refused_before_writing(['--copy-mode=reflink', '-c'], EXIT_USAGE, 'usage',
                                           'compress')

    def test_cli_copy_modes_and_dry_run(self):
        want = 12 * MiB - 2 * 64 * 1024
        for mode in ('auto', 'copy'):
            with self.subTest(mode=mode):
                raw = self.dense_chain()
                dry, report = self.dry_then_real('--copy-mode=' + mode, '-b', '', 'top.qcow2')
                self.assert_prediction(dry, report)
                img = report['images'][0]
                self.assertEqual(img['bytes-written'], want, img)
                self.assertEqual(img['bytes-shared'], 0, img)
                self.assertEqual(img['bytes-copied-in-kernel' if mode == 'auto'
                                     else 'bytes-copied-buffered'], want, img)
                self.assert_content(raw, 'top.qcow2')
                self.assert_clean('top.qcow2')

    def test_sparse_chain_dry_run(self):
        raw = self.make_sparse_chain()
        want_written, want_zeroed = expected_plan(self.d, 'top.qcow2')
        dry, report = self.dry_then_real('-b', '', 'top.qcow2')
        self.assert_prediction(dry, report)
        img = report['images'][0]
        self.assertEqual((img['bytes-written'], img['bytes-zeroed']), (want_written, want_zeroed))
        self.assertEqual(img['bytes-copied-in-kernel'], img['bytes-written'], img)
        self.assert_accounted(img)
        self.assert_content(raw, 'top.qcow2')
        self.assert_clean('top.qcow2')


# the abstract bases are not test cases of their own
del OffloadTest, SharingFilesystem, ImageCase, ClonesTest

if __name__ == '__main__':
    run_tap()
