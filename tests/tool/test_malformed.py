#!/usr/bin/python3
# tool-malformed: crafted broken images are refused with exit status 3 and
# a message naming the file, never crash rechain, and stay byte-identical;
# for `info`, `map` and `rebase -u`.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import shutil
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


# Each corruption: (name, function(path) patching the image, extra words
# the message must contain (any of a tuple)).

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


def c_aes_encryption(p):
    patch_field(p, 'crypt_method', 1)


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


def c_l1_too_small(p):
    patch_field(p, 'l1_size', 0)


def c_huge_virtual_size(p):
    patch_field(p, 'size', 1 << 62)


CORRUPTIONS = [
    ('truncated_header', c_truncated_header, ()),
    ('truncated_l1', c_truncated_l1, ()),
    ('huge_l1_size', c_huge_l1_size, ('l1',)),
    ('l1_misaligned', c_l1_misaligned, ('l1',)),
    ('refcount_table_misaligned', c_refcount_table_misaligned, ('refcount',)),
    ('l1_beyond_eof', c_l1_beyond_eof, ('l1',)),
    ('cluster_bits_8', c_cluster_bits_8, ('cluster',)),
    ('cluster_bits_22', c_cluster_bits_22, ('cluster',)),
    ('backing_name_2000', c_backing_name_2000, ('backing',)),
    ('backing_offset_beyond_cluster', c_backing_offset_beyond_cluster, ('backing',)),
    ('unknown_incompatible_bit', c_unknown_incompatible_bit, (('incompatible', 'feature'),)),
    ('header_length_unaligned', c_header_length_unaligned, ('header',)),
    ('extension_past_cluster', c_extension_past_cluster, ('extension',)),
    ('aes_encryption', c_aes_encryption, ('encrypt',)),
    ('version_4', c_version_4, ('version',)),
    ('bad_magic', c_bad_magic, ()),
    ('refcount_order_7', c_refcount_order_7, ('refcount',)),
    ('huge_refcount_table', c_huge_refcount_table, ('refcount',)),
    ('snapshot_table_beyond_eof', c_snapshot_table_beyond_eof, ('snapshot',)),
    ('l1_too_small', c_l1_too_small, ('l1',)),
    ('huge_virtual_size', c_huge_virtual_size, (('size', 'large', 'big'),)),
]

COMMANDS = [
    ('info', ['info', '--output=json']),
    ('map', ['map', '--output=json']),
    ('rebase', ['rebase', '-u', '-b', 'other.qcow2', '-F', 'qcow2']),
    ('unrebase', ['rebase', '-u', '-b', '']),
]


class MalformedTest(ToolTestCase):

    def expect_refused(self, img, cmd, words=(), code=3, cwd=None, fmt='qcow2'):
        cwd = cwd or self.dir
        p = os.path.join(cwd, img)
        before = sha256(p)
        fargs = ['-f', fmt] if fmt else []
        r = self.rechain(*(cmd[:1] + fargs + cmd[1:] + [img]), cwd=cwd, expect=code)
        self.assert_error_names(r, img, *words)
        self.assertEqual(before, sha256(p), 'the image was modified\n' + r.describe())
        return r

    def test_corruptions(self):
        pristine = make_base(self.dir, 'pristine.qcow2')
        for name, corrupt, words in CORRUPTIONS:
            img = name + '.qcow2'
            p = self.path(img)
            shutil.copyfile(pristine, p)
            corrupt(p)
            q = run([rt.QEMU_IMG, 'info', '-f', 'qcow2', img], cwd=self.dir)
            qv = 'ok' if q.rc == 0 else q.err.strip().splitlines()[0]
            for cname, cmd in COMMANDS:
                with self.subTest(image=name, command=cname):
                    try:
                        self.expect_refused(img, cmd, words)
                    except AssertionError as e:
                        raise AssertionError('%s\n(qemu-img info says: %s)' % (e, qv))
            # and with format probing (except where the magic is broken:
            # then the image is raw, which is fine)
            if name != 'bad_magic' and name != 'truncated_header':
                with self.subTest(image=name, command='info probed'):
                    self.expect_refused(img, ['info'], words, fmt=None)

    def test_luks_encryption(self):
        qemu_img('create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=password',
                 '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
                 'luks.qcow2', '1M', cwd=self.dir)
        for cname, cmd in COMMANDS:
            with self.subTest(command=cname):
                self.expect_refused('luks.qcow2', cmd, ['encrypt', 'not supported'])

    def test_luks_encryption_in_backing(self):
        qemu_img('create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=password',
                 '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
                 'luks.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'luks.qcow2', '-F', 'qcow2', '-u',
                 'over.qcow2', '1M', cwd=self.dir)
        r = self.rechain('map', 'over.qcow2', expect=3)
        self.assert_error_names(r, 'luks.qcow2', 'encrypt', 'not supported')

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

    def test_no_crash_on_random_header_bytes(self):
        """Flipping single header bytes: any outcome but a crash or a modified
        image; when rechain accepts the header, qemu-img must accept it too."""
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
        for s in surprises:
            sys.stdout.write('# NOTE: %s\n' % s)


if __name__ == '__main__':
    main()
