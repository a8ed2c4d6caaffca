#!/usr/bin/python3
# tool-malformed: crafted broken images are refused with exit status 3 and
# a specific message ("rechain: FILE: " and the field at fault, its value
# and the problem), never crash rechain, and stay byte-identical (sha256
# before and after); for `info`, `map`, `rebase -u` and the safe rebase.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import (ToolTestCase, main, patch, patch_field, get_field,  # noqa: E402
                         qemu_img, qemu_io, read_header, run, sha256, MiB)


def make_base(d, name='img.qcow2', opts=None, backing=True):
    """A 64 KiB-cluster image with a backing file and some data:
    header at 0, refcount table at 64K, refblock at 128K, L1 at 192K."""
    if backing and not os.path.exists(os.path.join(d, 'base.qcow2')):
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '4M', cwd=d)
    args = ['create', '-q', '-f', 'qcow2']
    if opts:
        args += ['-o', opts]
    if backing:
        args += ['-b', 'base.qcow2', '-F', 'qcow2']
    qemu_img(*(args + [name, '4M']), cwd=d)
    qemu_io(name, 'write -P 0x55 0 256k', 'write -P 0x66 3M 64k', cwd=d)
    return os.path.join(d, name)


# Each corruption: a function(path) patching the image.

def c_truncated_header(p):
    with open(p, 'r+b') as f:
        f.truncate(50)


def c_truncated_l1(p):
    off = get_field(p, 'l1_table_offset')
    with open(p, 'r+b') as f:
        f.truncate(off + 4)


def c_huge_l1_size(p):
    patch_field(p, 'l1_size', 0x7fffffff)


def c_l1_misaligned(p):
    patch_field(p, 'l1_table_offset', get_field(p, 'l1_table_offset') + 512)


def c_refcount_table_misaligned(p):
    patch_field(p, 'refcount_table_offset', get_field(p, 'refcount_table_offset') + 8)


def c_l1_beyond_eof(p):
    patch_field(p, 'l1_table_offset', 1 << 40)


def c_cluster_bits_8(p):
    patch_field(p, 'cluster_bits', 8)


def c_cluster_bits_22(p):
    patch_field(p, 'cluster_bits', 22)


def c_backing_name_2000(p):
    patch_field(p, 'backing_file_size', 2000)


def c_backing_offset_beyond_cluster(p):
    patch_field(p, 'backing_file_offset', 65536 + 64)


def c_unknown_incompatible_bit(p):
    patch_field(p, 'incompatible_features', get_field(p, 'incompatible_features') | 1 << 20)


def c_header_length_unaligned(p):
    patch_field(p, 'header_length', 108)


def c_extension_past_cluster(p):
    hl = get_field(p, 'header_length')
    patch(p, hl + 4, '>I', 70000)


def c_version_4(p):
    patch_field(p, 'version', 4)


def c_bad_magic(p):
    patch_field(p, 'magic', 0x514649fc)


def c_refcount_order_7(p):
    patch_field(p, 'refcount_order', 7)


def c_huge_refcount_table(p):
    patch_field(p, 'refcount_table_clusters', 0x7fffffff)


def c_snapshot_table_beyond_eof(p):
    patch_field(p, 'nb_snapshots', 3)
    patch_field(p, 'snapshots_offset', 1 << 40)


def c_snapshot_offset_misaligned_no_snapshots(p):
    # QEMU checks the offset even without a snapshot
    patch_field(p, 'nb_snapshots', 0)
    patch_field(p, 'snapshots_offset', 0x10200)


def c_snapshot_offset_beyond_int64(p):
    patch_field(p, 'nb_snapshots', 0)
    patch_field(p, 'snapshots_offset', 1 << 63)


def c_l1_too_small(p):
    patch_field(p, 'l1_size', 0)


def c_huge_virtual_size(p):
    patch_field(p, 'size', 1 << 62)


# (name, corruption, pattern): the error line "rechain: FILE: MESSAGE" must
# match @pattern (a regular expression, case-insensitive): the header field
# or structure at fault, its value, and what is wrong with it.
CORRUPTIONS = [
    ('truncated_header', c_truncated_header,
     r'too short for a qcow2 header \(50 bytes, needs at least 72\)'),
    ('truncated_l1', c_truncated_l1,
     r'\bL1 table at offset 0x30000\b.*\bl1_size 1\b.*past the end of the file'),
    ('huge_l1_size', c_huge_l1_size,
     r'\bl1_size 2147483647\b.*exceeds the maximum L1 table size'),
    ('l1_misaligned', c_l1_misaligned,
     r'\bl1_table_offset 0x30200 is not aligned to the cluster size'),
    ('refcount_table_misaligned', c_refcount_table_misaligned,
     r'\brefcount_table_offset 0x10008 is not aligned to the cluster size'),
    ('l1_beyond_eof', c_l1_beyond_eof,
     r'\bL1 table at offset 0x10000000000\b.*past the end of the file'),
    ('cluster_bits_8', c_cluster_bits_8, r'\bcluster_bits 8 is out of range \(9\.\.21\)'),
    ('cluster_bits_22', c_cluster_bits_22, r'\bcluster_bits 22 is out of range \(9\.\.21\)'),
    ('backing_name_2000', c_backing_name_2000,
     r'\bbacking_file_size 2000 exceeds the maximum of 1023\b'),
    ('backing_offset_beyond_cluster', c_backing_offset_beyond_cluster,
     r'\bbacking_file_offset 0x10040\b.*past the first cluster'),
    ('unknown_incompatible_bit', c_unknown_incompatible_bit,
     r'\bunsupported incompatible_features 0x100000\b.*\bbit 20\b'),
    ('header_length_unaligned', c_header_length_unaligned,
     r'\bheader_length 108 is not a multiple of 8\b'),
    ('extension_past_cluster', c_extension_past_cluster,
     r'\bheader extension 0x[0-9a-f]{8}\b.*\blength 70000\b.*past the end of the header area'),
    ('version_4', c_version_4, r'\bqcow2 version 4 is not supported\b'),
    ('bad_magic', c_bad_magic, r'\bmagic 0x514649fc is not the qcow2 magic 0x514649fb\b'),
    ('refcount_order_7', c_refcount_order_7, r'\brefcount_order 7 is out of range \(0\.\.6\)'),
    ('huge_refcount_table', c_huge_refcount_table,
     r'\brefcount_table_clusters 2147483647\b.*exceeds the maximum refcount table size'),
    ('snapshot_table_beyond_eof', c_snapshot_table_beyond_eof,
     r'\bsnapshots_offset 0x10000000000 \(nb_snapshots 3\) is past the end of the file'),
    # QEMU (7.2): "Snapshot table offset invalid", with no snapshot too
    ('snapshot_offset_misaligned_no_snapshots', c_snapshot_offset_misaligned_no_snapshots,
     r'\bsnapshots_offset 0x10200 is not aligned to the cluster size \(65536\)'),
    ('snapshot_offset_beyond_int64', c_snapshot_offset_beyond_int64,
     r'\bsnapshots_offset 0x8000000000000000 \(nb_snapshots 0\) is beyond the largest offset'),
    ('l1_too_small', c_l1_too_small, r'\bl1_size 0 is too small for the virtual size 4194304\b'),
    # QEMU: "Image is too big" (the L1 table such a size needs exceeds its
    # limit); rechain names the field that cannot map it
    ('huge_virtual_size', c_huge_virtual_size,
     r'\bl1_size 1 is too small for the virtual size 4611686018427387904\b'),
]

COMMANDS = [
    ('info', ['info', '--output=json']),
    ('map', ['map', '--output=json']),
    ('rebase', ['rebase', '-u', '-b', 'other.qcow2', '-F', 'qcow2']),
    ('unrebase', ['rebase', '-u', '-b', '']),
]
# the safe rebase opens the image the same way; it must refuse it the same way
SAFE_COMMANDS = [
    ('safe-rebase', ['rebase', '-b', 'other.qcow2', '-F', 'qcow2']),
    ('flatten', ['rebase', '-b', '']),
]


class MalformedTest(ToolTestCase):

    def expect_refused(self, img, cmd, words=(), code=3, cwd=None, fmt='qcow2', pattern=None):
        """rechain CMD IMG exits with @code, names @img in its error and
        leaves it byte-identical; with @pattern, the error line
        "rechain: IMG: MESSAGE" must match it (re.search, ignoring case)."""
        cwd = cwd or self.dir
        p = os.path.join(cwd, img)
        before = sha256(p)
        fargs = ['-f', fmt] if fmt else []
        r = self.rechain(*(cmd[:1] + fargs + cmd[1:] + [img]), cwd=cwd, expect=code)
        self.assert_error_names(r, img, *words)
        if pattern is not None:
            self.assert_error_line(r, img, pattern)
        self.assertEqual(before, sha256(p), 'the image was modified\n' + r.describe())
        return r

    def assert_error_line(self, r, img, pattern):
        prefix = 'rechain: %s: ' % img
        lines = [l[len(prefix):] for l in r.err.splitlines() if l.startswith(prefix)]
        if not lines:
            self.fail('no error line starting with %r\n%s' % (prefix, r.describe()))
        if not any(re.search(pattern, l, re.I) for l in lines):
            self.fail('error message does not match %r\n%s' % (pattern, r.describe()))

    def test_corruptions(self):
        pristine = make_base(self.dir, 'pristine.qcow2')
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '4M', cwd=self.dir)
        for name, corrupt, pattern in CORRUPTIONS:
            img = name + '.qcow2'
            p = self.path(img)
            shutil.copyfile(pristine, p)
            corrupt(p)
            q = run([rt.QEMU_IMG, 'info', '-f', 'qcow2', img], cwd=self.dir)
            qv = 'ok' if q.rc == 0 else q.err.strip().splitlines()[0]
            for cname, cmd in COMMANDS + SAFE_COMMANDS:
                with self.subTest(image=name, command=cname):
                    try:
                        self.expect_refused(img, cmd, pattern=pattern)
                    except AssertionError as e:
                        raise AssertionError('%s\n(qemu-img info says: %s)' % (e, qv))
            # and with format probing (except where the magic is broken:
            # then the image is raw, as for qemu-img, which is fine; a
            # truncated header with the qcow2 magic is probed as qcow2 by
            # both)
            if name != 'bad_magic':
                with self.subTest(image=name, command='info probed'):
                    self.expect_refused(img, ['info'], fmt=None, pattern=pattern)
        # the bad magic, probed: raw, as qemu-img sees it
        with self.subTest(image='bad_magic', command='info probed'):
            r = self.rechain('info', '--output=json', 'bad_magic.qcow2', expect=0)
            self.assertEqual(r.json().get('format'), 'raw', r.describe())

    def test_huge_virtual_size_small_file(self):
        """A 1 MiB image of 512-byte clusters claiming a virtual size of
        2^62 (QEMU: "Image is too big"): exit 3, the file, the field and
        the size named, nothing allocated for it, nothing written."""
        qemu_img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', 'v.qcow2', '1M',
                 cwd=self.dir)
        qemu_io('v.qcow2', 'write -P 0x31 0 64k', cwd=self.dir)
        l1 = get_field(self.path('v.qcow2'), 'l1_size')
        patch_field(self.path('v.qcow2'), 'size', 1 << 62)
        q = run([rt.QEMU_IMG, 'info', 'v.qcow2'], cwd=self.dir)
        self.assertNotEqual(q.rc, 0, 'oracle: qemu-img opened it?\n' + q.describe())
        pattern = (r'\bl1_size %d is too small for the virtual size 4611686018427387904\b' % l1)
        for cname, cmd in COMMANDS + SAFE_COMMANDS:
            with self.subTest(command=cname):
                self.expect_refused('v.qcow2', cmd, pattern=pattern)
        with self.subTest(command='info probed'):
            self.expect_refused('v.qcow2', ['info'], fmt=None, pattern=pattern)

    def test_large_virtual_size_small_file(self):
        """The positive control: 512 GiB of virtual size that one L1 entry
        maps (2 MiB clusters) in a file of a few MiB is a valid image."""
        qemu_img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', 'big.qcow2', '512G',
                 cwd=self.dir)
        qemu_io('big.qcow2', 'write -P 0x32 511G 64k', cwd=self.dir)
        self.assertEqual(get_field(self.path('big.qcow2'), 'l1_size'), 1)
        r = self.rechain('info', '--output=json', 'big.qcow2', expect=0)
        self.assertEqual(r.json()['virtual-size'], 512 << 30, r.describe())
        r = self.rechain('map', '--output=json', 'big.qcow2', expect=0)
        errors, _ = rt.compare_maps(rt.qemu_map('big.qcow2', cwd=self.dir), r.json())
        self.assertEqual(errors, [], r.describe())

    def make_luks(self, name):
        """A LUKS-encrypted qcow2 image. qemu-img times its key derivation
        and, on a loaded machine, may fail with "Unable to get accurate CPU
        usage": tried a few times."""
        for attempt in range(5):
            r = rt.run([rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2', '--object',
                        'secret,id=s0,data=password', '-o',
                        'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
                        name, '1M'], cwd=self.dir)
            if r.rc == 0:
                return
        self.fail('qemu-img could not make a LUKS image\n' + r.describe())

    def test_luks_encryption(self):
        self.make_luks('luks.qcow2')
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '1M', cwd=self.dir)
        # info, map and -u read metadata only and need no key (see
        # test_encryption.py); whatever reads or writes data needs the key,
        # and is refused without it
        for cname, cmd in SAFE_COMMANDS:
            with self.subTest(command=cname):
                self.expect_refused('luks.qcow2', cmd, ['LUKS-encrypted', 'no key was given'])

    def test_luks_encryption_in_backing(self):
        self.make_luks('luks.qcow2')
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'luks.qcow2', '-F', 'qcow2', '-u',
                 'over.qcow2', '1M', cwd=self.dir)
        r = self.rechain('rebase', '-b', '', 'over.qcow2', expect=3)
        self.assert_error_names(r, 'luks.qcow2', 'LUKS-encrypted', 'no key was given')

    def test_not_qcow2(self):
        rt.write_pattern_file(self.path('plain.raw'), 1 * MiB, [(0, 4096, 0x41)])
        for cname, cmd in COMMANDS:
            with self.subTest(command=cname):
                self.expect_refused('plain.raw', cmd)
        open(self.path('empty.qcow2'), 'wb').close()
        for cname, cmd in COMMANDS:
            with self.subTest(command=cname, image='empty'):
                self.expect_refused('empty.qcow2', cmd)

    def test_missing_backing(self):
        make_base(self.dir, 'orphan.qcow2')
        os.unlink(self.path('base.qcow2'))
        for cname, cmd in COMMANDS[1:2] + [('info-chain', ['info', '--backing-chain'])]:
            with self.subTest(command=cname):
                self.expect_refused('orphan.qcow2', cmd, ['base.qcow2'])

    def test_missing_backing_deep(self):
        """The missing file is two levels down: the message names it."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'l2.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'l2.qcow2', '-F', 'qcow2', 'l1.qcow2', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'l1.qcow2', '-F', 'qcow2', 'l0.qcow2', cwd=d)
        os.unlink(self.path('l2.qcow2'))
        r = self.rechain('map', 'l0.qcow2', expect=3)
        self.assert_error_names(r, 'l2.qcow2')

    def test_backing_loop(self):
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'b.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'b.qcow2', '-F', 'qcow2', 'a.qcow2', cwd=d)
        qemu_img('rebase', '-u', '-b', 'a.qcow2', '-F', 'qcow2', 'b.qcow2', cwd=d)
        q = run([rt.QEMU_IMG, 'info', '--backing-chain', 'a.qcow2'], cwd=d, timeout=30)
        self.assertNotEqual(q.rc, 0, 'oracle: qemu-img opened a loop?')
        for cname, cmd in [('map', ['map']), ('info-chain', ['info', '--backing-chain'])]:
            with self.subTest(command=cname):
                self.expect_refused('a.qcow2', cmd, [('loop', 'circular', 'recurs', 'cycle')])
        # a loop through a self-reference
        qemu_img('rebase', '-u', '-b', 'self.qcow2', '-F', 'qcow2',
                 make_base(d, 'self.qcow2', backing=False), cwd=d)
        self.expect_refused('self.qcow2', ['map'], [('loop', 'circular', 'recurs', 'cycle')])

    def test_unsafe_rebase_breaks_loop(self):
        """Like qemu-img rebase -u, unsafe rebase does not open the (looping)
        chain, so it can repair it."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'b.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'b.qcow2', '-F', 'qcow2', 'a.qcow2', cwd=d)
        qemu_img('rebase', '-u', '-b', 'a.qcow2', '-F', 'qcow2', 'b.qcow2', cwd=d)
        self.rechain('rebase', '-u', '-b', '', 'b.qcow2', expect=0)
        qemu_img('map', 'a.qcow2', cwd=d)

    def test_dirty_refused_for_rebase(self):
        p = make_base(self.dir, 'dirty.qcow2', opts='lazy_refcounts=on')
        patch_field(p, 'incompatible_features', get_field(p, 'incompatible_features') | 1)
        for cname, cmd in COMMANDS[2:]:
            with self.subTest(command=cname):
                self.expect_refused('dirty.qcow2', cmd, ['qemu-img check -r all'])
        # reading works, as qemu-img info/map do
        self.rechain('info', 'dirty.qcow2', expect=0)
        self.rechain('map', 'dirty.qcow2', expect=0)
        # and after the repair qemu-img suggests, rebase works
        qemu_img('check', '-q', '-r', 'all', 'dirty.qcow2', cwd=self.dir)
        self.rechain('rebase', '-u', '-b', '', 'dirty.qcow2', expect=0)

    def test_corrupt_refused_for_rebase(self):
        p = make_base(self.dir, 'corrupt.qcow2')
        patch_field(p, 'incompatible_features', get_field(p, 'incompatible_features') | 2)
        for cname, cmd in COMMANDS[2:]:
            with self.subTest(command=cname):
                self.expect_refused('corrupt.qcow2', cmd, ['corrupt'])
        self.rechain('info', 'corrupt.qcow2', expect=0)
        self.rechain('map', 'corrupt.qcow2', expect=0)

    def test_guest_data_on_metadata_refused_for_rebase(self):
        """An L2 entry mapping guest data onto a cluster the rebase updates in
        place (the L1 table, a refcount block, an L2 table): qemu-img check
        calls it an error, and writing the metadata would change the guest's
        bytes. The safe rebase refuses it, naming both; the image stays as
        it was. (fuzz-rebase found it: fuzz/findings/README.md.)"""
        pristine = make_base(self.dir, 'pristine.qcow2')
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '4M', cwd=self.dir)
        h = read_header(pristine)
        with open(pristine, 'rb') as f:
            f.seek(h['l1_table_offset'])
            l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            f.seek(h['refcount_table_offset'])
            refblock = struct.unpack('>Q', f.read(8))[0] & ~0x1ff
        self.assertNotEqual(l2, 0)
        cases = [('l1', h['l1_table_offset'], 'the L1 table'),
                 ('refblock', refblock, 'a refcount block'),
                 ('l2', l2, 'an L2 table')]
        for name, host, what in cases:
            img = 'on-%s.qcow2' % name
            shutil.copyfile(pristine, self.path(img))
            # guest cluster 8 (0x80000), not allocated by make_base
            patch(self.path(img), l2 + 8 * 8, '>Q', (1 << 63) | host)
            q = run([rt.QEMU_IMG, 'check', img], cwd=self.dir)
            self.assertNotEqual(q.rc, 0, 'qemu-img check should see the corruption\n' + q.describe())
            for cname, cmd in SAFE_COMMANDS:
                with self.subTest(metadata=name, command=cname):
                    self.expect_refused(
                        img, cmd,
                        pattern=r'guest offset 0x80000 is mapped to host cluster 0x%x, which is also %s'
                        % (host, what))

    def test_refused_before_any_write(self):
        """Validate everything, then write (issue 14): an image refused for
        its own metadata, or for a backing file's, stays byte for byte as it
        was, even where the header asks writers to clear unknown autoclear
        bits (which the rebase would otherwise do first), and even when the
        bad L2 entry lies in a backing file, far past the windows the rebase
        copies first."""
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '4M', cwd=self.dir)
        # unknown autoclear bits + a refcount table entry beyond the end of the file
        img = make_base(self.dir, 'autoclear.qcow2')
        patch_field(img, 'autoclear_features', 1 << 40)
        h = read_header(img)
        patch(img, h['refcount_table_offset'] + 6 * 8, '>Q', 0x7fff0000)
        for cname, cmd in SAFE_COMMANDS:
            with self.subTest(image='autoclear', command=cname):
                self.expect_refused('autoclear.qcow2', cmd,
                                    pattern=r'refcount table entry 6 \(0x7fff0000\) is misaligned '
                                            r'or beyond the end of the file')
        # an L2 entry with reserved bits set, in the overlay itself
        img = make_base(self.dir, 'l2-reserved.qcow2')
        with open(img, 'rb') as f:
            f.seek(read_header(img)['l1_table_offset'])
            l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            f.seek(l2 + 48 * 8)  # guest 3M, written by make_base
            entry = struct.unpack('>Q', f.read(8))[0]
        self.assertNotEqual(entry, 0)
        patch(img, l2 + 48 * 8, '>Q', entry | (1 << 3))
        for cname, cmd in SAFE_COMMANDS:
            with self.subTest(image='l2-reserved', command=cname):
                self.expect_refused('l2-reserved.qcow2', cmd,
                                    pattern=r'L2 entry .*reserved bits set \(0x8\)')
        # the same in a backing file, at guest offset 1500 MiB of 2 GiB: the
        # windows before it are compared and copied first
        qemu_img('create', '-q', '-f', 'qcow2', 'deep-base.qcow2', '2G', cwd=self.dir)
        qemu_io('deep-base.qcow2', 'write -P 1 0 64k', 'write -P 2 1500M 64k', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'deep-base.qcow2', '-F', 'qcow2',
                 'deep.qcow2', '2G', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', 'other2g.qcow2', '2G', cwd=self.dir)
        base = self.path('deep-base.qcow2')
        with open(base, 'rb') as f:
            f.seek(read_header(base)['l1_table_offset'] + 2 * 8)  # 512 MiB per L2 table
            l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            index = (1500 - 1024) * 16
            f.seek(l2 + index * 8)
            entry = struct.unpack('>Q', f.read(8))[0]
        self.assertNotEqual(entry, 0)
        patch(base, l2 + index * 8, '>Q', entry | (1 << 3))
        for cname, cmd in (('safe-rebase', ['rebase', '-b', 'other2g.qcow2', '-F', 'qcow2']),
                           ('flatten', ['rebase', '-b', ''])):
            with self.subTest(image='deep-base', command=cname):
                before = sha256(self.path('deep.qcow2'))
                r = self.rechain(*(cmd + ['deep.qcow2']), expect=3)
                self.assert_error_line(r, 'deep-base.qcow2',
                                       r'L2 entry for guest offset 0x5dc00000: .*reserved bits set')
                self.assertEqual(before, sha256(self.path('deep.qcow2')),
                                 'the overlay was written before the refusal\n' + r.describe())

    def test_l2_table_named_beyond_its_refcount_refused(self):
        """An L2 table named by two L1 entries -- twice in the active L1
        table, or by the active one and a snapshot's -- with refcount 1:
        updated in place, it would change the guest data behind the other
        name too; qemu-img check reports "refcount=1 reference=2". The safe
        rebase refuses it and the image stays as it was. (fuzz-rebase found
        the first: fuzz/regression/rebase/l2-table-named-twice-refcount-1.)"""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '1G', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', 'big-base.qcow2', '1G', cwd=d)
        qemu_io('big-base.qcow2', 'write -P 0x11 0 1M', 'write -P 0x12 512M 1M', cwd=d)

        def overlay(name):
            qemu_img('create', '-q', '-f', 'qcow2', '-b', 'big-base.qcow2', '-F', 'qcow2',
                     name, '1G', cwd=d)
            qemu_io(name, 'write -P 0x55 64k 64k', cwd=d)
            h = read_header(self.path(name))
            with open(self.path(name), 'rb') as f:
                f.seek(h['l1_table_offset'])
                l1 = struct.unpack('>QQ', f.read(16))
                f.seek(h['refcount_table_offset'])
                refblock = struct.unpack('>Q', f.read(8))[0] & ~0x1ff
            self.assertEqual(l1[1], 0)
            return h, l1[0], l1[0] & 0x00fffffffffffe00, refblock

        # the same table at L1 indexes 0 and 1
        h, entry, l2, _ = overlay('twice.qcow2')
        patch(self.path('twice.qcow2'), h['l1_table_offset'] + 8, '>Q', entry)
        # a snapshot's table whose refcount went back to 1 (16-bit refcounts)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'big-base.qcow2', '-F', 'qcow2',
                 'snap.qcow2', '1G', cwd=d)
        _, _, snap_l2, refblock = overlay('snap.qcow2')
        qemu_img('snapshot', '-c', 's1', 'snap.qcow2', cwd=d)
        patch(self.path('snap.qcow2'), refblock + 2 * (snap_l2 // 65536), '>H', 1)

        for img, table in (('twice.qcow2', l2), ('snap.qcow2', snap_l2)):
            q = run([rt.QEMU_IMG, 'check', img], cwd=d)
            self.assertNotEqual(q.rc, 0, 'qemu-img check should see the corruption\n' + q.describe())
            self.assertIn('refcount=1 reference=2', q.out + q.err)
            for cname, cmd in SAFE_COMMANDS:
                with self.subTest(image=img, command=cname):
                    self.expect_refused(
                        img, cmd,
                        pattern=r'the L2 table at 0x%x is named by 2 L1 table entries but its '
                                r'refcount is 1' % table)

    def test_partial_cluster_mapped_beyond_its_refcount_refused(self):
        """Extended L2: a cluster whose free subclusters the rebase fills in
        place (refcount 1) but which a second L2 entry also maps, with a
        subcluster the first one leaves free: filling it would change the
        second guest cluster. qemu-img check reports "refcount=1
        reference=2"; the safe rebase refuses it and the image stays as
        it was."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', 'xbase.qcow2', '1M', cwd=d)
        qemu_io('xbase.qcow2', 'write -P 0x11 0 1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=64k',
                 '-b', 'xbase.qcow2', '-F', 'qcow2', 'partial.qcow2', '1M', cwd=d)
        qemu_io('partial.qcow2', 'write -P 0x22 0 4k', 'write -P 0x33 68k 4k', cwd=d)
        h = read_header(self.path('partial.qcow2'))
        with open(self.path('partial.qcow2'), 'rb') as f:
            f.seek(h['l1_table_offset'])
            l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            f.seek(l2)
            word, bitmap = struct.unpack('>QQ', f.read(16))
        self.assertEqual(bitmap, 0x3)  # subclusters 0 and 1 of guest cluster 0
        # guest cluster 1 -> the same host cluster, its subcluster 5 allocated
        patch(self.path('partial.qcow2'), l2 + 16, '>QQ', word, 1 << 5)
        host = word & 0x00fffffffffffe00
        q = run([rt.QEMU_IMG, 'check', 'partial.qcow2'], cwd=d)
        self.assertIn('refcount=1 reference=2', q.out + q.err, q.describe())
        for cname, cmd in SAFE_COMMANDS:
            with self.subTest(command=cname):
                self.expect_refused(
                    'partial.qcow2', cmd,
                    pattern=r'the data cluster at 0x%x is mapped by 2 L2 entries but its '
                            r'refcount is 1' % host)

    def test_no_crash_on_random_header_bytes(self):
        """Flipping single header bytes: any outcome but a crash or a modified
        image; when rechain accepts the header, qemu-img must accept it too
        (a header rechain accepts and QEMU refuses is a failure; the reverse,
        rechain stricter than QEMU, is allowed)."""
        import random
        rnd = random.Random(7)
        pristine = make_base(self.dir, 'pristine.qcow2', backing=False)
        p = self.path('fuzz.qcow2')
        surprises = []
        for i in range(60):
            shutil.copyfile(pristine, p)
            off = rnd.randrange(0, 112)
            with open(p, 'r+b') as f:
                f.seek(off)
                b = f.read(1)[0]
                f.seek(off)
                f.write(bytes([b ^ (1 << rnd.randrange(8))]))
            before = sha256(p)
            r = self.rechain('info', '-f', 'qcow2', '--output=json', 'fuzz.qcow2')
            self.assertIn(r.rc, (0, 3), r.describe())
            if r.rc == 0:
                q = run([rt.QEMU_IMG, 'info', '-f', 'qcow2', 'fuzz.qcow2'], cwd=self.dir)
                if q.rc != 0:
                    surprises.append('byte %d: rechain accepts, qemu-img: %s'
                                     % (off, q.err.strip()))
            else:
                self.assert_error_names(r, 'fuzz.qcow2')
            r = self.rechain('rebase', '-u', '-f', 'qcow2', '-b', '', 'fuzz.qcow2')
            self.assertIn(r.rc, (0, 3), r.describe())
            if r.rc != 0:
                self.assertEqual(before, sha256(p), r.describe())
            # a safe rebase (flatten) that fails must not have written a byte
            before = sha256(p)
            r = self.rechain('rebase', '-f', 'qcow2', '-b', '', 'fuzz.qcow2')
            self.assertIn(r.rc, (0, 3), r.describe())
            if r.rc != 0:
                self.assertEqual(before, sha256(p), 'failed and changed the image\n' + r.describe())
        self.assertEqual(surprises, [], 'headers rechain accepts and qemu-img refuses:\n'
                         + '\n'.join(surprises))


if __name__ == '__main__':
    main()
