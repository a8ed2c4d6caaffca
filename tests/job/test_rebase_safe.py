#!/usr/bin/python3
# job-rebase-safe: targeted cases of the safe rebase (`rechain rebase`
# without -u), judged by qemu-img compare/check/info/map.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobtest as jt  # noqa: E402
from jobtest import JobTestCase, rt, MiB, KiB, qemu_img, qemu_info, qemu_map  # noqa: E402


def map_ranges(m, start, end):
    """Entries of a qemu-img map clipped to [start, end)."""
    out = []
    for e in m:
        a, b = max(e['start'], start), min(e['start'] + e['length'], end)
        if a < b:
            out.append((a, b, e))
    return out


class RebaseSafeTest(JobTestCase):

    def base_chain(self, top='top.qcow2', size=4 * MiB, top_opts=None, cwd=None):
        """base.qcow2 (pattern 1 everywhere, a zero range, a hole)
        <- mid.qcow2 (a few writes) <- top (a few writes)."""
        d = cwd or self.dir
        self.img('base.qcow2', size, cwd=d)
        self.io('base.qcow2', 'write -P 1 0 %d' % size, 'write -z 1M 256k',
                'discard 3M 128k', cwd=d)
        self.img('mid.qcow2', size, backing='base.qcow2', bfmt='qcow2', cwd=d)
        self.io('mid.qcow2', 'write -P 2 512k 64k', 'write -P 7 2M 1000', 'write -z 2500k 64k',
                cwd=d)
        self.img(top, size, backing='mid.qcow2', bfmt='qcow2', opts=top_opts, cwd=d)
        self.io(top, 'write -P 3 64k 64k', 'write -z 3200k 64k', 'write -P 4 3M 1000', cwd=d)
        return top

    def near_copy(self, src, name='near.qcow2', cmds=('write -P 9 100k 8k', 'write -P 0 2M 4k'),
                  cwd=None):
        d = cwd or self.dir
        qemu_img('convert', '-O', 'qcow2', src, name, cwd=d)
        self.io(name, *cmds, cwd=d)
        return name

    def done(self, b, name, fmt, what=''):
        self.assert_content(b, what)
        self.assert_check(b.img, cwd=b.cwd, what=what)
        self.assert_backing(b.img, name, fmt, cwd=b.cwd)
        self.assert_extras(b, what)

    def entry(self, rep, i=0):
        return rep['images'][i]

    # ---- basic operations

    def test_flatten_three_levels(self):
        top = self.base_chain()
        b = self.before(top)
        rep, r = self.rebase_json('-b', '', top)
        self.done(b, '', None)
        e = self.entry(rep)
        self.assertEqual(e['result'], 'rebased', r.describe())
        self.assertFalse(rep['dry-run'])
        self.assertGreater(e['bytes-written'], 0, r.describe())
        for k in ('bytes-examined', 'bytes-same-by-metadata', 'bytes-compared', 'bytes-read',
                  'bytes-differing', 'seconds', 'images'):
            self.assertIn(k, rep, r.describe())
        for k in ('image', 'bytes-examined', 'bytes-written', 'bytes-zeroed',
                  'clusters-allocated', 'compressed-clusters', 'metadata-bytes', 'flushes'):
            self.assertIn(k, e, r.describe())

    def test_grandparent(self):
        """Moving to the grandparent: only what the middle layer allocates
        can differ; the rest is the same layer on both sides."""
        top = self.base_chain()
        b = self.before(top)
        rep, r = self.rebase_json('-b', 'base.qcow2', '-F', 'qcow2', top)
        self.done(b, 'base.qcow2', 'qcow2')
        self.assertLessEqual(rep['bytes-compared'], 256 * KiB, r.describe())
        self.assertGreaterEqual(rep['bytes-same-by-metadata'], rep['bytes-examined'] * 0.9,
                                r.describe())
        self.assertLessEqual(self.entry(rep)['bytes-written'] + self.entry(rep)['bytes-zeroed'],
                             512 * KiB, r.describe())

    def test_relative_name_in_subdirectory(self):
        os.makedirs(self.path('vm', 'disks'))
        os.makedirs(self.path('vm', 'bases'))
        d = self.path('vm', 'disks')
        self.base_chain(cwd=d)
        self.near_copy('mid.qcow2', cwd=d)
        shutil.move(os.path.join(d, 'near.qcow2'), self.path('vm', 'bases', 'near.qcow2'))
        img = 'vm/disks/top.qcow2'
        b = self.before(img)
        self.rebase('-b', '../bases/near.qcow2', '-F', 'qcow2', img)
        self.done(b, '../bases/near.qcow2', 'qcow2')
        qi = qemu_info(img, cwd=self.dir)
        self.assertEqual(qi.get('full-backing-filename'), 'vm/disks/../bases/near.qcow2')

    def test_raw_new_backing(self):
        top = self.base_chain()
        qemu_img('convert', '-O', 'raw', 'mid.qcow2', 'new.raw', cwd=self.dir)
        self.io('new.raw', 'write -P 11 1500k 300k', fmt='raw')
        b = self.before(top)
        rep, r = self.rebase_json('-b', 'new.raw', '-F', 'raw', top)
        self.done(b, 'new.raw', 'raw')
        self.assertGreater(self.entry(rep)['bytes-written'], 0, r.describe())

    def _zero_cases(self, top_opts):
        """Old backing shorter than the overlay (its view is zero past its
        end), new backing longer, with data everywhere."""
        self.img('short.qcow2', 2 * MiB)
        self.io('short.qcow2', 'write -P 1 0 2M')
        self.img('top.qcow2', 4 * MiB, backing='short.qcow2', bfmt='qcow2', opts=top_opts)
        self.io('top.qcow2', 'write -P 3 0 64k', 'write -P 3 3M 64k')
        self.img('long.qcow2', 6 * MiB)
        self.io('long.qcow2', 'write -P 5 0 6M')
        b = self.before('top.qcow2')
        rep, r = self.rebase_json('-b', 'long.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.done(b, 'long.qcow2', 'qcow2')
        return rep, r

    def test_new_backing_longer(self):
        rep, r = self._zero_cases(None)
        e = self.entry(rep)
        self.assertGreater(e['bytes-zeroed'], 0, r.describe())
        # [2M, 4M) minus the overlay's own cluster must be zero clusters of
        # the overlay (depth 0, no data), not written zero data
        m = qemu_map('top.qcow2', cwd=self.dir)
        for a, b_, ent in map_ranges(m, 2 * MiB, 4 * MiB):
            if a >= 3 * MiB and b_ <= 3 * MiB + 64 * KiB:
                continue
            self.assertEqual(ent['depth'], 0, 'range [%d,%d) not in the overlay: %r' % (a, b_, ent))
            self.assertTrue(ent['zero'], 'range [%d,%d) not zero: %r' % (a, b_, ent))
            self.assertFalse(ent['data'], 'range [%d,%d) written as data: %r\n%s'
                             % (a, b_, ent, r.describe()))

    def test_new_backing_longer_v2(self):
        """A v2 overlay has no zero flag: zeros must be written as data."""
        self._zero_cases('compat=0.10')
        m = qemu_map('top.qcow2', cwd=self.dir)
        for a, b_, ent in map_ranges(m, 2 * MiB, 4 * MiB):
            self.assertEqual(ent['depth'], 0, 'range [%d,%d) not in the overlay: %r' % (a, b_, ent))

    def test_zero_large_clusters(self):
        """Old view zero, new view data, in overlay clusters larger than
        rechain's copy chunk (1 and 2 MiB clusters), v2 and v3."""
        for cs in (MiB, 2 * MiB):
            for compat in ('0.10', '1.1'):
                with self.subTest(cluster_size=cs, compat=compat):
                    d = self.path('cs%d-%s' % (cs, compat))
                    os.makedirs(d)
                    self.img('old.qcow2', 4 * MiB, cwd=d)
                    self.io('old.qcow2', 'write -P 1 2M 2M', cwd=d)
                    self.img('top.qcow2', 4 * MiB, backing='old.qcow2', bfmt='qcow2',
                             opts='cluster_size=%d,compat=%s' % (cs, compat), cwd=d)
                    self.img('new.qcow2', 4 * MiB, cwd=d)
                    self.io('new.qcow2', 'write -P 5 4k 4k', 'write -P 6 3M 64k', cwd=d)
                    b = self.before('top.qcow2', cwd=d)
                    self.rebase('-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2', cwd=d)
                    self.done(b, 'new.qcow2', 'qcow2', what='cs %d compat %s' % (cs, compat))
                    if compat == '1.1':
                        for a, b_, ent in map_ranges(qemu_map('top.qcow2', cwd=d), 0, 2 * MiB):
                            if ent['depth'] == 0:
                                self.assertFalse(ent['data'], 'zeros written as data: %r' % ent)

    def test_new_backing_shorter(self):
        self.img('long.qcow2', 6 * MiB)
        self.io('long.qcow2', 'write -P 1 0 6M')
        self.img('top.qcow2', 4 * MiB, backing='long.qcow2', bfmt='qcow2')
        self.io('top.qcow2', 'write -P 3 0 64k')
        self.img('short.qcow2', 1 * MiB + 512)
        self.io('short.qcow2', 'write -P 1 0 1M', 'write -P 8 1M 512')
        b = self.before('top.qcow2')
        rep, r = self.rebase_json('-b', 'short.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.done(b, 'short.qcow2', 'qcow2')
        e = self.entry(rep)
        self.assertGreaterEqual(e['bytes-written'], 3 * MiB - 512, r.describe())

    def test_v2_overlay(self):
        top = self.base_chain(top_opts='compat=0.10')
        self.near_copy('mid.qcow2')
        b = self.before(top)
        self.rebase('-b', 'near.qcow2', '-F', 'qcow2', top)
        self.done(b, 'near.qcow2', 'qcow2')
        self.assertEqual(qemu_info(top, cwd=self.dir)['format-specific']['data']['compat'], '0.10')

    def _compressed(self, ctype):
        top = self.base_chain(top_opts='compression_type=%s' % ctype)
        b = self.before(top)
        rep, r = self.rebase_json('-c', '-b', '', top)
        self.done(b, '', None)
        e = self.entry(rep)
        self.assertGreater(e['compressed-clusters'], 0, r.describe())
        c = self.assert_check(top)
        m = re.search(r'([0-9.]+)% compressed clusters', c.out)
        self.assertTrue(m and float(m.group(1)) > 0, c.describe())
        qi = qemu_info(top, cwd=self.dir)
        self.assertEqual(qi['format-specific']['data']['compression-type'], ctype)
        # and the image stays writable by QEMU
        self.io(top, 'write -P 6 0 1M')
        self.assert_check(top)

    def test_compress_zlib(self):
        self._compressed('zlib')

    def test_compress_zstd(self):
        self._compressed('zstd')

    def test_cache_none(self):
        self._need_odirect()
        top = self.base_chain()
        self.near_copy('mid.qcow2')
        b = self.before(top)
        self.rebase('-t', 'none', '-T', 'none', '-b', 'near.qcow2', '-F', 'qcow2', top)
        self.done(b, 'near.qcow2', 'qcow2')

    def _need_odirect(self):
        try:
            fd = os.open(self.path('.odirect'), os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
            os.close(fd)
        except OSError as e:
            self.skipTest('O_DIRECT not supported in %s: %s' % (self.dir, e))

    def test_cache_none_small_clusters(self):
        """O_DIRECT with 512-byte clusters, an unaligned image size and a
        raw backing whose size is not a multiple of 4096."""
        self._need_odirect()
        rt.write_pattern_file(self.path('base.raw'), MiB + 1536,
                              [(0, MiB + 1536, None), (4096, 8192, 0)])
        self.img('top.qcow2', MiB + 2560, backing='base.raw', bfmt='raw',
                 opts='cluster_size=512')
        self.io('top.qcow2', 'write -P 3 1000 3000', 'write -z 500k 1536', 'write -P 4 1M 2048')
        rt.write_pattern_file(self.path('new.raw'), MiB - 512, [(0, 4096, 7), (200000, 512, 8)])
        b = self.before('top.qcow2')
        self.rebase('-t', 'none', '-T', 'none', '-b', 'new.raw', '-F', 'raw', 'top.qcow2')
        self.done(b, 'new.raw', 'raw')
        self.rebase('-t', 'directsync', '-T', 'none', '-c', '-b', '', 'top.qcow2')
        self.done(b, '', None)

    def test_cache_modes(self):
        for t in ('writeback', 'writethrough', 'directsync', 'unsafe'):
            with self.subTest(cache=t):
                d = self.path(t)
                os.makedirs(d)
                top = self.base_chain(cwd=d)
                b = self.before(top, cwd=d)
                self.rebase('-t', t, '-T', t, '-b', '', top, cwd=d)
                self.done(b, '', None, what='-t ' + t)

    def test_dry_run(self):
        top = self.base_chain()
        self.near_copy('mid.qcow2')
        hashes = rt.tree_hashes(self.dir)
        rep, r = self.rebase_json('--dry-run', '-b', 'near.qcow2', '-F', 'qcow2', top)
        self.assertEqual(rt.tree_hashes(self.dir), hashes, 'dry run changed files\n' + r.describe())
        self.assertTrue(rep['dry-run'], r.describe())
        e = self.entry(rep)
        self.assertEqual(e['result'], 'planned', r.describe())
        self.assertGreater(e['bytes-written'] + e['bytes-zeroed'], 0, r.describe())
        self.assertGreater(rep['bytes-differing'], 0, r.describe())
        # the real run then does what was planned
        b = self.before(top)
        rep2, r2 = self.rebase_json('-b', 'near.qcow2', '-F', 'qcow2', top)
        self.done(b, 'near.qcow2', 'qcow2')
        self.assert_predicted(e, self.entry(rep2), r, r2)
        # human output of a dry run
        h = self.rebase('--dry-run', '--output=human', '-b', '', top)
        self.assertNotEqual(h.out.strip(), '', 'dry run printed no plan\n' + h.describe())

    # a dry run runs the real code with a planning qcow2 writer: its report
    # is the real run's, to the byte, not an estimate
    PLAN_FIELDS = ('bytes-written', 'bytes-zeroed', 'bytes-shared', 'bytes-copied-in-kernel',
                   'bytes-copied-buffered', 'clusters-allocated', 'compressed-clusters',
                   'metadata-bytes', 'flushes')

    def assert_predicted(self, dry, done, r, r2, what=''):
        self.assertEqual({k: dry[k] for k in self.PLAN_FIELDS},
                         {k: done[k] for k in self.PLAN_FIELDS},
                         '%s: dry run and real run differ\n%s\n%s' % (
                             what, r.describe(), r2.describe()))

    def test_dry_run_predicts_exactly(self):
        """The dry run's per-image numbers equal the real run's on the same
        images, for each kind of overlay the writer treats differently:
        extended L2, an external data file, compression, qcow2 v2 (zeros
        written as data), internal snapshots (shared L2 tables and, with
        extended L2, shared data clusters copied), and each copy mode."""
        cases = [
            ('plain', None, (), False),
            ('extended-l2', 'extended_l2=on,cluster_size=128k', (), False),
            ('data-file', 'data_file=d.raw', (), False),
            ('compress', None, ('-c',), False),
            ('v2', 'compat=0.10', (), False),
            ('snapshot', None, (), True),
            ('snapshot-extended-l2', 'extended_l2=on', (), True),
            # -c with subclusters: clusters the top allocates in part are
            # rewritten whole, compressed (or whole, uncompressed)
            ('compress-extended-l2', 'extended_l2=on', ('-c',), False),
            ('compress-snapshot-extended-l2', 'extended_l2=on', ('-c',), True),
            ('copy-mode-copy', None, ('--copy-mode=copy',), False),
            ('copy-mode-auto', None, ('--copy-mode=auto',), False),
        ]
        for what, opts, args, snapshot in cases:
            with self.subTest(case=what):
                d = self.path(what)
                os.makedirs(d)
                top = self.base_chain(top_opts=opts, cwd=d)
                if snapshot:
                    jt.qemu_img('snapshot', '-c', 's1', top, cwd=d)
                    self.io(top, 'write -P 5 2M 4k', cwd=d)
                hashes = rt.tree_hashes(d)
                # flattened: everything the top does not allocate is written
                rep, r = self.rebase_json('--dry-run', *args, '-b', '', top, cwd=d)
                self.assertEqual(rt.tree_hashes(d), hashes, what + ': dry run changed files\n' +
                                 r.describe())
                rep2, r2 = self.rebase_json(*args, '-b', '', top, cwd=d)
                self.assertGreater(self.entry(rep2)['bytes-written'], 0, r2.describe())
                self.assert_predicted(self.entry(rep), self.entry(rep2), r, r2, what)

    def test_rerun_copies_nothing(self):
        top = self.base_chain()
        self.near_copy('mid.qcow2')
        b = self.before(top)
        self.rebase('-b', 'near.qcow2', '-F', 'qcow2', top)
        h = jt.sha256(self.path(top))
        rep, r = self.rebase_json('-b', 'near.qcow2', '-F', 'qcow2', top)
        e = self.entry(rep)
        self.assertEqual(e['result'], 'rebased', r.describe())
        self.assertEqual(e['bytes-written'], 0, r.describe())
        self.assertEqual(e['bytes-zeroed'], 0, r.describe())
        self.assertEqual(rep['bytes-compared'], 0, r.describe())
        self.done(b, 'near.qcow2', 'qcow2')
        self.assertEqual(jt.sha256(self.path(top)), h, 'rerun changed the image')

    def test_linked_clones(self):
        self.img('base.qcow2', 4 * MiB)
        self.io('base.qcow2', 'write -P 1 0 4M', 'write -z 1M 512k')
        self.near_copy('base.qcow2', cmds=('write -P 9 100k 8k', 'write -P 0 2M 4k',
                                           'write -P 1 1M 4k'))
        ovs = ['c%d.qcow2' % i for i in range(3)]
        for i, ov in enumerate(ovs):
            self.img(ov, 4 * MiB, backing='base.qcow2', bfmt='qcow2')
            self.io(ov, 'write -P %d 3M 64k' % (20 + i), 'write -P 3 %dk 4k' % (1024 + 512 * i))
        # a single-overlay run on a copy, for reference
        os.makedirs(self.path('one'))
        for f in ('base.qcow2', 'near.qcow2', 'c0.qcow2'):
            shutil.copy(self.path(f), self.path('one', f))
        rep1, r1 = self.rebase_json('-b', 'near.qcow2', '-F', 'qcow2', 'c0.qcow2',
                                    cwd=self.path('one'))
        bs = [self.before(ov) for ov in ovs]
        rep, r = self.rebase_json('-b', 'near.qcow2', '-F', 'qcow2', *ovs)
        self.assertEqual(len(rep['images']), 3, r.describe())
        for b, e in zip(bs, rep['images']):
            self.assertEqual(e['result'], 'rebased', r.describe())
            self.assertGreater(e['bytes-written'] + e['bytes-zeroed'], 0, r.describe())
            self.done(b, 'near.qcow2', 'qcow2')
        self.assertLessEqual(rep['bytes-compared'], rep1['bytes-compared'] * 1.5 + 64 * KiB,
                             'comparison repeated per overlay?\n%s\n%s'
                             % (r1.describe(), r.describe()))
        self.assertLessEqual(rep['bytes-read'], rep1['bytes-read'] * 1.5 + 64 * KiB,
                             'backing read per overlay?\n%s\n%s' % (r1.describe(), r.describe()))

    def test_linked_clones_in_other_directories(self):
        """A relative backing name is written as given into every clone and
        resolved from each clone's own directory: refused before writing
        when it leads the clones to different files; accepted when it leads
        them all to the same one."""
        self.img('base.qcow2', 4 * MiB)
        self.io('base.qcow2', 'write -P 1 0 4M')
        for d in ('a', 'b'):
            os.makedirs(self.path(d))
        # a/new.qcow2 differs from new.qcow2: "new.qcow2" from b/ names nothing
        self.near_copy('base.qcow2')
        shutil.copy(self.path('near.qcow2'), self.path('new.qcow2'))
        shutil.copy(self.path('near.qcow2'), self.path('a', 'new.qcow2'))
        self.io(os.path.join('a', 'new.qcow2'), 'write -P 7 0 64k')
        ovs = [os.path.join('a', 'o.qcow2'), os.path.join('b', 'o.qcow2')]
        for ov in ovs:
            self.img(ov, 4 * MiB, backing='../base.qcow2', bfmt='qcow2')
            self.io(ov, 'write -P 3 1M 64k')
        hashes = rt.tree_hashes(self.dir)
        r = self.rebase('-b', 'new.qcow2', '-F', 'qcow2', *ovs, expect=2)
        self.assertIn('b/o.qcow2', r.err, r.describe())
        self.assertIn('relative backing name', r.err, r.describe())
        self.assertEqual(rt.tree_hashes(self.dir), hashes, 'files changed\n' + r.describe())
        # "../new.qcow2" is the same file from both directories
        bs = [self.before(ov) for ov in ovs]
        self.rebase('-b', '../new.qcow2', '-F', 'qcow2', *ovs)
        for b in bs:
            self.done(b, '../new.qcow2', 'qcow2')

    def test_different_old_chains_refused(self):
        self.img('b1.qcow2', 4 * MiB)
        self.io('b1.qcow2', 'write -P 1 0 4M')
        self.img('b2.qcow2', 4 * MiB)
        self.io('b2.qcow2', 'write -P 2 0 4M')
        self.img('o1.qcow2', 4 * MiB, backing='b1.qcow2', bfmt='qcow2')
        self.img('o2.qcow2', 4 * MiB, backing='b2.qcow2', bfmt='qcow2')
        hashes = rt.tree_hashes(self.dir)
        r = self.rebase('-b', '', 'o1.qcow2', 'o2.qcow2', expect=(1, 2, 3))
        self.assertEqual(rt.tree_hashes(self.dir), hashes, 'files changed\n' + r.describe())
        self.assertIn('rechain: ', r.err, r.describe())

    def test_new_chain_contains_image(self):
        top = self.base_chain()
        self.img('new.qcow2', 4 * MiB, backing=top, bfmt='qcow2')
        self.io('new.qcow2', 'write -P 5 0 1M')
        hashes = rt.tree_hashes(self.dir)
        for args in (['-b', 'new.qcow2', '-F', 'qcow2'], ['-b', top, '-F', 'qcow2'],
                     ['-b', self.path(top), '-F', 'qcow2'],
                     ['-U', '-b', 'new.qcow2', '-F', 'qcow2']):
            with self.subTest(args=args):
                r = self.rebase(*(args + [top]), expect=(2, 3))
                self.assertEqual(rt.tree_hashes(self.dir), hashes,
                                 'files changed\n' + r.describe())
                self.assert_error_names(r, top)

    def test_in_use_refused(self):
        top = self.base_chain()
        hashes = rt.tree_hashes(self.dir)
        # qemu-io holds the image while it sleeps; no stdin needed (CI has
        # none)
        p = subprocess.Popen([rt.QEMU_IO, '-c', 'sleep 60000', top], cwd=self.dir,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            # wait until qemu-io holds its locks, as /proc/locks shows them
            # (probing with qemu-img info would take locks that can make
            # qemu-io's own fail); a loaded CI machine may take seconds
            import test_locking
            test_locking.wait_locked(p, self.path(top), timeout=120)
            r = self.rebase('-b', '', top, expect=4)
            self.assert_error_names(r, top)
            r = self.rebase('-b', 'base.qcow2', '-F', 'qcow2', top, expect=4)
        finally:
            p.terminate()
            p.wait(timeout=30)
        self.assertEqual(rt.tree_hashes(self.dir), hashes, 'files changed')

    def test_progress(self):
        top = self.base_chain()
        b = self.before(top)
        r = self.rebase('-p', '-b', '', top)
        lines = [l.strip() for l in re.split(r'[\r\n]', r.err) if l.strip()]
        self.assertTrue(lines, 'no progress output\n' + r.describe())
        self.assertRegex(lines[-1], r'100(\.0+)?\s*(/\s*100)?\s*%', r.describe())
        self.done(b, '', None)
        # -q prints nothing
        r = self.rebase('-q', '-b', '', top)
        self.assertEqual((r.out, r.err), ('', ''), r.describe())

    def test_data_file_flatten(self):
        self.img('base.qcow2', 4 * MiB)
        self.io('base.qcow2', 'write -P 1 0 4M', 'write -z 1M 64k')
        self.img('top.qcow2', 4 * MiB, backing='base.qcow2', bfmt='qcow2',
                 opts='data_file=d.raw')
        self.io('top.qcow2', 'write -P 3 64k 64k', 'write -z 2M 64k', 'write -P 4 3M 1000')
        b = self.before('top.qcow2')
        self.rebase('-b', '', 'top.qcow2')
        self.assert_content(b)
        c = jt.run([rt.QEMU_IMG, 'check', 'top.qcow2'], cwd=self.dir)
        self.assertEqual(c.rc, 0, c.describe())
        self.assert_backing('top.qcow2', '', None)
        qi = qemu_info('top.qcow2', cwd=self.dir)
        self.assertEqual(qi['format-specific']['data'].get('data-file'), 'd.raw')

    def test_data_file_switch(self):
        top = self.base_chain(top_opts='data_file=d.raw')
        self.near_copy('mid.qcow2')
        b = self.before(top)
        self.rebase('-b', 'near.qcow2', '-F', 'qcow2', top)
        self.assert_content(b)
        c = jt.run([rt.QEMU_IMG, 'check', top], cwd=self.dir)
        self.assertEqual(c.rc, 0, c.describe())
        self.assert_backing(top, 'near.qcow2', 'qcow2')

    def test_extended_l2_partial(self):
        for cs in (16 * KiB, 64 * KiB, 2 * MiB):
            with self.subTest(cluster_size=cs):
                d = self.path('cs%d' % cs)
                os.makedirs(d)
                self.img('base.qcow2', 4 * MiB, cwd=d)
                self.io('base.qcow2', 'write -P 1 0 4M', 'write -z 1M 256k', cwd=d)
                sub = cs // 32
                self.img('top.qcow2', 4 * MiB, backing='base.qcow2', bfmt='qcow2',
                         opts='extended_l2=on,cluster_size=%d' % cs, cwd=d)
                self.io('top.qcow2', 'write -P 3 %d %d' % (sub, sub),
                        'write -P 4 %d %d' % (5 * sub + 100, 2 * sub),
                        'write -z %d %d' % (cs + 3 * sub, sub),
                        'write -P 5 %d 700' % (2 * MiB + 7 * sub + 17), cwd=d)
                self.near_copy('base.qcow2', cmds=('write -P 9 0 %d' % (2 * sub),
                                                   'write -P 1 1M 4k'), cwd=d)
                b = self.before('top.qcow2', cwd=d)
                self.rebase('-b', 'near.qcow2', '-F', 'qcow2', 'top.qcow2', cwd=d)
                self.done(b, 'near.qcow2', 'qcow2', what='cs %d switch' % cs)
                self.rebase('-b', '', 'top.qcow2', cwd=d)
                self.done(b, '', None, what='cs %d flatten' % cs)

    # ---- -c with subclusters, as QEMU 8.2+ (iotest 271)

    def l2_entries(self, img, first, n):
        """The (entry, bitmap) pairs of guest clusters [first, first+n) of
        an extended-L2 image (all in its first L2 table)."""
        with open(self.path(img), 'rb') as f:
            d = f.read()
        cs = 1 << struct.unpack('>I', d[20:24])[0]
        l1 = struct.unpack('>Q', d[40:48])[0]
        l2 = struct.unpack('>Q', d[l1:l1 + 8])[0] & 0x00fffffffffffe00
        self.assertLess(first + n, cs // 16)
        return [struct.unpack('>QQ', d[l2 + 16 * i:l2 + 16 * i + 16]) for i in range(first, first + n)]

    def assert_compressed(self, img, clusters, others, what=''):
        """Each of @clusters is a compressed cluster (bit 62, no bitmap, as
        QEMU 8.2+ writes it and `qemu-img map` reports "compressed"), each
        of @others is not."""
        es = self.l2_entries(img, 0, max(clusters + others) + 1)
        for c in clusters:
            self.assertTrue(es[c][0] >> 62 & 1, '%s: cluster %d: %x %x' % (what, c, *es[c]))
            self.assertEqual(es[c][1], 0, '%s: cluster %d bitmap' % (what, c))
        for c in others:
            self.assertFalse(es[c][0] >> 62 & 1, '%s: cluster %d: %x %x' % (what, c, *es[c]))

    def test_compress_subclusters_iotest_271(self):
        """iotest 271, "Rebase with compression for images with subclusters":
        a cluster in which the rebase fills one subcluster becomes a whole
        compressed cluster of the overlay, with no subcluster bitmap; a
        cluster without differences stays unallocated. (Debian's qemu-img
        7.2 cannot rebase with -c; the expected structure is the one QEMU
        8.2+ writes and 271.out shows.)"""
        opts = 'cluster_size=1M,extended_l2=on'
        self.img('base.qcow2', 3 * MiB, opts=opts)
        self.img('mid.qcow2', 3 * MiB, backing='base.qcow2', bfmt='qcow2', opts=opts)
        self.img('top.qcow2', 3 * MiB, backing='mid.qcow2', bfmt='qcow2', opts=opts)
        self.io('base.qcow2', 'write -P 0x11 1M 1M')
        self.io('mid.qcow2', 'write -P 0x22 %dk 32k' % (31 * 32), 'write -P 0x33 %dk 32k' % (64 * 32))
        b = self.before('top.qcow2')
        rep, r = self.rebase_json('-c', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.done(b, 'base.qcow2', 'qcow2')
        self.assertEqual(self.entry(rep)['compressed-clusters'], 2, r.describe())
        rd = jt.qemu_io('top.qcow2', 'read -P 0x22 %dk 32k' % (31 * 32), 'read -P 0x11 1M 1M',
                        'read -P 0x33 %dk 32k' % (64 * 32), 'read -P 0 0 %dk' % (31 * 32),
                        cwd=self.dir)
        self.assertNotIn('failed', rd.out + rd.err, rd.describe())
        m = qemu_map('top.qcow2', cwd=self.dir)
        self.assertEqual([(e['start'], e['length'], e['depth']) for e in m],
                         [(0, MiB, 0), (MiB, MiB, 1), (2 * MiB, MiB, 0)], m)
        self.assertEqual(self.l2_entries('top.qcow2', 1, 1), [(0, 0)])
        self.assert_compressed('top.qcow2', [0, 2], [])
        c = self.assert_check('top.qcow2')
        self.assertIn('100.00% compressed clusters', c.out, c.describe())

    def test_compress_subclusters_partly_allocated(self):
        """-c where the overlay allocates some subclusters of a cluster the
        rebase must fill: the compressed cluster holds the overlay's own data
        and zeros and the old view elsewhere (the guest view is kept); the
        old host cluster is released, a snapshot sharing it keeps it; the
        last, partial cluster too; a cluster that does not compress is
        written whole, every subcluster allocated, as QEMU falls back."""
        size = 3 * MiB + 300 * KiB
        opts = 'cluster_size=64k,extended_l2=on'
        self.img('base.qcow2', size, opts=opts)
        self.img('mid.qcow2', size, backing='base.qcow2', bfmt='qcow2', opts=opts)
        self.img('top.qcow2', size, backing='mid.qcow2', bfmt='qcow2', opts=opts)
        for name in ('rnd', 'rnd2'):
            with open(self.path(name), 'wb') as f:
                f.write(os.urandom(64 * KiB))
        self.io('base.qcow2', 'write -P 0x11 0 %d' % size)
        self.io('mid.qcow2', 'write -P 0x22 6k 2k', 'write -P 0x33 3M 300k',
                'write -s %s 128k 64k' % self.path('rnd'))
        # cluster 0: own data and zero subclusters; cluster 2: random data
        # (own subcluster random too) that does not compress; cluster 48..:
        # the last cluster is partial
        self.io('top.qcow2', 'write -P 0x44 0 2k', 'write -z 2k 2k', 'write -P 0x55 3M 2k',
                'write -s %s 130k 2k' % self.path('rnd2'))
        jt.qemu_img('snapshot', '-c', 's1', 'top.qcow2', cwd=self.dir)
        jt.dump_raw('top.qcow2', self.path('top.raw'), self.dir)
        b = self.before('top.qcow2')
        rep, r = self.rebase_json('-c', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.done(b, 'base.qcow2', 'qcow2')
        self.assert_compressed('top.qcow2', [0] + list(range(48, 53)), [1, 2, 3])
        es = self.l2_entries('top.qcow2', 0, 4)
        self.assertEqual(es[1], (0, 0))
        self.assertEqual(es[3], (0, 0))
        self.assertEqual(es[2][1], 0xffffffff, '%x' % es[2][1])  # whole, uncompressed
        last = self.l2_entries('top.qcow2', 52, 1)[0]
        self.assertEqual(last[1], 0)
        c = self.assert_check('top.qcow2')
        self.assertIn('No errors', c.out, c.describe())
        # the snapshot keeps the overlay as it was (against its old backing)
        jt.qemu_img('snapshot', '-a', 's1', 'top.qcow2', cwd=self.dir)
        jt.qemu_img('rebase', '-u', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2', cwd=self.dir)
        jt.qemu_img('compare', '-F', 'raw', 'top.qcow2', 'top.raw', cwd=self.dir)
        self.assert_check('top.qcow2')

    def test_snapshot_overlay(self):
        """An overlay with internal snapshots: its L2 tables are shared with
        the snapshot and must be copied before they change."""
        top = self.base_chain()
        jt.qemu_img('snapshot', '-c', 's1', top, cwd=self.dir)
        self.io(top, 'write -P 6 1M 8k')
        jt.qemu_img('snapshot', '-c', 's2', top, cwd=self.dir)
        self.near_copy('mid.qcow2')
        b = self.before(top)
        self.rebase('-b', 'near.qcow2', '-F', 'qcow2', top)
        self.done(b, 'near.qcow2', 'qcow2')
        self.rebase('-b', '', top)
        self.done(b, '', None)

    def test_bitmaps_kept(self):
        top = self.base_chain()
        jt.qemu_img('bitmap', '--add', top, 'b0', cwd=self.dir)
        jt.qemu_img('bitmap', '--add', '--disable', top, 'b1', cwd=self.dir)
        self.io(top, 'write -P 6 1M 8k')
        b = self.before(top)
        self.rebase('-b', '', top)
        self.done(b, '', None)

    def test_no_backing_to_backing(self):
        """An image without backing file gets one: regions where the new
        backing shows data and the image does not allocate are zeroed."""
        self.img('alone.qcow2', 4 * MiB)
        self.io('alone.qcow2', 'write -P 3 0 1M')
        self.img('new.qcow2', 4 * MiB)
        self.io('new.qcow2', 'write -P 5 0 4M')
        b = self.before('alone.qcow2')
        rep, r = self.rebase_json('-b', 'new.qcow2', '-F', 'qcow2', 'alone.qcow2')
        self.done(b, 'new.qcow2', 'qcow2')
        self.assertGreaterEqual(self.entry(rep)['bytes-zeroed'], 3 * MiB, r.describe())

    def test_missing_format_refused(self):
        top = self.base_chain()
        hashes = rt.tree_hashes(self.dir)
        self.rebase('-b', 'base.qcow2', top, expect=2)
        self.assertEqual(rt.tree_hashes(self.dir), hashes)

    def test_report_on_failure(self):
        """A rebase that fails before it starts must not report the image
        as rebased."""
        top = self.base_chain()
        cases = [(['-b', '', 'nonexistent.qcow2'], (3,), {}),
                 (['-b', '', top], (5,), {'RECHAIN_FAULT': 'read:1:EIO'}),
                 (['-b', 'nope.qcow2', '-F', 'qcow2', top], (1, 3), {})]
        for args, codes, env in cases:
            with self.subTest(args=args, env=env):
                r = self.rebase('--output=json', *args, expect=codes, env=env)
                if r.out.strip():
                    rep = json.loads(r.out)
                    for e in rep.get('images', []):
                        self.assertNotEqual(e.get('result'), 'rebased',
                                            'failed run reports the image as rebased\n'
                                            + r.describe())

    def test_missing_new_backing_refused(self):
        top = self.base_chain()
        hashes = rt.tree_hashes(self.dir)
        r = self.rebase('-b', 'nope.qcow2', '-F', 'qcow2', top, expect=(1, 3))
        self.assertEqual(rt.tree_hashes(self.dir), hashes, r.describe())


if __name__ == '__main__':
    jt.main()
