#!/usr/bin/python3
# hostile-limits: bounds a crafted image cannot exceed (README "Limits on
# untrusted images"); each violation is a clear error (exit 3 naming the
# file and the limit), never an abort, a hang or a huge allocation.
#
#   - chain depth: 64 images open, 65 are refused (QEMU has no fixed limit;
#     rechain's is RECHAIN_CHAIN_MAX_DEPTH = 64);
#   - 64 header extensions are accepted, 65 refused;
#   - an L1 table over 32 MiB and a refcount table over 8 MiB are refused
#     (the header fields are patched; the file is small);
#   - commands are run under an address-space limit of 1 GiB (RLIMIT_AS)
#     so that an attempt to allocate what a field claims fails loudly.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import resource
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, KiB, run_rechain  # noqa: E402



def _asan():
    try:
        return b'__asan_init' in open(ht.rt.RECHAIN, 'rb').read()
    except OSError:
        return True


ASAN = _asan()


def as_limit():
    if not ASAN:  # ASan reserves terabytes of address space
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


class Limits(HostileCase):

    def rc(self, args, what):
        r = run_rechain(args, self.dir, preexec_fn=as_limit)
        self.assert_no_crash_markers(r, what)
        return r

    def test_chain_depth(self):
        self.img('l0.qcow2', 1 * MiB)
        for i in range(1, 66):
            self.img('l%d.qcow2' % i, 1 * MiB, backing='l%d.qcow2' % (i - 1), bfmt='qcow2')
        r = self.rc(['info', '--backing-chain', 'l63.qcow2'], 'depth 64')
        self.assertEqual(r.rc, 0, r.describe())
        r = self.rc(['map', 'l63.qcow2'], 'depth 64')
        self.assertEqual(r.rc, 0, r.describe())
        for args in (['info', '--backing-chain', 'l64.qcow2'], ['map', 'l64.qcow2'],
                     ['rebase', '-b', '', 'l65.qcow2']):
            r = self.rc(args, 'depth 65')
            self.assertEqual(r.rc, 3, r.describe())
            self.assertIn('64', r.err, r.describe())

    def test_chain_metadata_memory(self):
        """Each L1 table is bounded (32 MiB), and so are all of them
        together (128 MiB per process): a chain of images with 32 MiB L1
        tables (512-byte clusters, 127 GiB) is refused at the fifth, naming
        an image, under a 1 GiB address-space limit; four are fine."""
        self.img('m0.qcow2', 127 << 30, opts='cluster_size=512')
        for i in range(1, 5):
            self.img('m%d.qcow2' % i, 127 << 30, opts='cluster_size=512',
                     backing='m%d.qcow2' % (i - 1), bfmt='qcow2')
        r = self.rc(['info', '--backing-chain', 'm3.qcow2'], '4 x 32 MiB L1')
        self.assertEqual(r.rc, 0, r.describe())
        for args in (['info', '--backing-chain', 'm4.qcow2'], ['rebase', '-b', '', 'm4.qcow2']):
            r = self.rc(args, '5 x 32 MiB L1')
            self.assertEqual(r.rc, 3, r.describe())
            self.assertIn('limit of 128 MiB', r.err, r.describe())
            self.assertIn('.qcow2: ', r.err, r.describe())

    def with_extensions(self, n):
        self.img('e.qcow2', 1 * MiB, opts='cluster_size=64k')
        exts = [(0x10000000 + i, b'x' * 4) for i in range(n)]
        ht.rt.rewrite_header_extensions(self.path('e.qcow2'), exts, None)

    def test_extension_count(self):
        self.with_extensions(64)
        r = self.rc(['info', 'e.qcow2'], '64 extensions')
        self.assertEqual(r.rc, 0, r.describe())
        self.with_extensions(65)
        r = self.rc(['info', 'e.qcow2'], '65 extensions')
        self.assertEqual(r.rc, 3, r.describe())
        self.assertIn('e.qcow2', r.err)
        self.assertIn('extension', r.err.lower())

    def test_table_sizes(self):
        for field, value, word in (('l1_size', 32 * MiB // 8 + 1, 'l1'),
                                   ('refcount_table_clusters', 8 * MiB // 65536 + 1, 'refcount'),
                                   ('l1_size', 0xffffffff, 'l1')):
            self.img('t.qcow2', 1 * MiB, opts='cluster_size=64k')
            ht.rt.patch_field(self.path('t.qcow2'), field, value)
            for args in (['info', 't.qcow2'], ['map', 't.qcow2'], ['rebase', '-b', '', 't.qcow2']):
                r = self.rc(args, '%s=%d' % (field, value))
                self.assertEqual(r.rc, 3, r.describe())
                self.assertIn('t.qcow2', r.err)
                self.assertIn(word, r.err.lower(), r.describe())

    def test_huge_virtual_size_small_file(self):
        # a virtual size far beyond what the L1 table can map
        self.img('v.qcow2', 1 * MiB, opts='cluster_size=512')
        ht.rt.patch_field(self.path('v.qcow2'), 'size', 1 << 62)
        for args in (['info', 'v.qcow2'], ['map', 'v.qcow2']):
            r = self.rc(args, 'size 2^62')
            self.assertEqual(r.rc, 3, r.describe())
            self.assertIn('v.qcow2', r.err, r.describe())
            self.assertIn('too small for the virtual size', r.err, r.describe())


if __name__ == '__main__':
    ht.main()
