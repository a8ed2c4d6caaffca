#!/usr/bin/python3
# tool-rebase-unsafe: `rechain rebase -u` changes exactly what
# `qemu-img rebase -u` changes: the backing name and the backing format
# extension.  Each case rebases one copy with rechain and one with qemu-img
# and compares them: the header cluster byte for byte, and every byte after
# it (which must also equal the original).  The change is one write of the
# header cluster then one fdatasync (seen by the fault shim's log and, when
# strace is installed, at the system call level); a failed write or flush
# (RECHAIN_FAULT) or a SIGKILL gives a non-zero exit and leaves the whole
# old or new header, never a mix, which qemu-img opens and checks clean.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import (ToolTestCase, main, qemu_check, qemu_img, qemu_info,  # noqa: E402
                         qemu_io, read_header, run, sha256, MiB)


def hexdiff(a, b, limit=8):
    out = []
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            out.append('0x%x: qemu-img %02x rechain %02x' % (i, a[i], b[i]))
            if len(out) >= limit:
                break
    if len(a) != len(b):
        out.append('length qemu-img %d rechain %d' % (len(a), len(b)))
    return '; '.join(out)


class RebaseUnsafeTest(ToolTestCase):

    def rebase_both(self, img, args, cwd=None, fmt=None, expect_same_header=True):
        """Rebases a copy of @img with `qemu-img rebase -u ARGS` and @img itself
        with `rechain rebase -u ARGS`; checks rechain's result against
        qemu-img's.  Returns (rechain Result, path of qemu-img's copy)."""
        cwd = cwd or self.dir
        p = os.path.join(cwd, img)
        qcopy = p + '.qemu'
        shutil.copyfile(p, qcopy)
        orig = open(p, 'rb').read()
        fargs = ['-f', fmt] if fmt else []
        qr = run([rt.QEMU_IMG, 'rebase', '-u'] + fargs + list(args) + [img + '.qemu'], cwd=cwd)
        if qr.rc != 0:
            raise rt.CommandFailed(qr.describe())
        r = self.rechain('rebase', '-u', *(fargs + list(args) + [img]), cwd=cwd)
        if r.rc != 0:
            self.fail('rechain rebase -u failed\n' + r.describe())
        new = open(p, 'rb').read()
        ref = open(qcopy, 'rb').read()
        cs = read_header(qcopy)['cluster_size']
        self.assertEqual(len(new), len(orig), 'file size changed\n' + r.describe())
        if new[cs:] != orig[cs:]:
            self.fail('rechain changed bytes after the header cluster: %s\n%s'
                      % (hexdiff(orig[cs:], new[cs:]), r.describe()))
        ref = bytearray(ref[:cs])
        bm = bitmap_ext_span(p + '.orig-header', orig[:cs])
        if bm:
            # qemu-img rewrites the bitmap directory (elsewhere in the file)
            # whenever it opens an image with bitmaps read-write, so its
            # bitmaps extension differs; rechain's must equal the original's
            qbm = bitmap_ext_span(None, bytes(ref))
            nbm = bitmap_ext_span(None, new[:cs])
            self.assertIsNotNone(nbm, 'rechain dropped the bitmaps extension')
            self.assertEqual(new[nbm[0]:nbm[1]], orig[bm[0]:bm[1]],
                             'rechain changed the bitmaps extension\n' + r.describe())
            ref[qbm[0]:qbm[1]] = orig[bm[0]:bm[1]]
        ref = bytes(ref)
        if expect_same_header and new[:cs] != ref[:cs]:
            self.fail('header cluster differs from qemu-img rebase -u\'s: %s\n'
                      'qemu-img header: %r\nrechain header: %r\n%s'
                      % (hexdiff(ref[:cs], new[:cs]), _hdr(qcopy), _hdr(p), r.describe()))
        # qemu-img judges the result
        c = qemu_check(img, cwd=cwd, fmt=fmt)
        self.assertEqual(c.rc, 0, 'qemu-img check is not clean\n' + c.describe())
        qi = qemu_info(img, cwd=cwd, fmt=fmt)
        qq = qemu_info(img + '.qemu', cwd=cwd, fmt=fmt)
        for k in ('backing-filename', 'backing-filename-format', 'format-specific',
                  'virtual-size', 'cluster-size', 'snapshots'):
            self.assertEqual(qi.get(k), qq.get(k), 'qemu-img info "%s" differs' % k)
        return r, qcopy

    def chain(self, top='top.qcow2', opts=None, cwd=None):
        d = cwd or self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '4M', cwd=d)
        qemu_io('base.qcow2', 'write -P 1 0 4M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '4M', cwd=d)
        qemu_io('other.qcow2', 'write -P 2 0 4M', cwd=d)
        args = ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2']
        if opts:
            args += ['-o', opts]
        qemu_img(*(args + [top, '4M']), cwd=d)
        qemu_io(top, 'write -P 3 64k 64k', 'write -z 1M 64k', 'write -P 4 3M 1000', cwd=d)
        return top

    def assert_backing(self, img, name, fmt, cwd=None):
        qi = qemu_info(img, cwd=cwd or self.dir)
        self.assertEqual(qi.get('backing-filename'), name, json.dumps(qi))
        self.assertEqual(qi.get('backing-filename-format'), fmt, json.dumps(qi))

    # ---- the basic operation

    def test_new_backing(self):
        top = self.chain()
        r, qcopy = self.rebase_both(top, ['-b', 'other.qcow2', '-F', 'qcow2'])
        self.assert_backing(top, 'other.qcow2', 'qcow2')
        # guest view through the new chain equals that of qemu-img's result
        c = run([rt.QEMU_IMG, 'compare', '-U', top, qcopy], cwd=self.dir)
        self.assertEqual(c.rc, 0, c.describe())

    def test_quiet_and_stdout(self):
        top = self.chain()
        r = self.rechain('rebase', '-u', '-q', '-b', 'other.qcow2', '-F', 'qcow2', top, expect=0)
        self.assertEqual(r.out, '', r.describe())
        self.assertEqual(r.err, '', r.describe())
        self.assert_backing(top, 'other.qcow2', 'qcow2')

    def test_nonexistent_backing(self):
        """In unsafe mode the new backing file need not exist."""
        top = self.chain()
        self.rebase_both(top, ['-b', 'does/not/exist.qcow2', '-F', 'qcow2'])
        self.assert_backing(top, 'does/not/exist.qcow2', 'qcow2')

    def test_current_backing_missing(self):
        """Unsafe rebase is how a broken chain is repaired: it must not need
        the current backing file (qemu-img rebase -u does not open it)."""
        top = self.chain()
        os.unlink(self.path('base.qcow2'))
        self.rebase_both(top, ['-b', 'other.qcow2', '-F', 'qcow2'])
        self.assert_backing(top, 'other.qcow2', 'qcow2')

    def test_remove_backing(self):
        top = self.chain()
        self.rebase_both(top, ['-b', ''])
        qi = qemu_info(top, cwd=self.dir)
        for k in ('backing-filename', 'backing-filename-format', 'full-backing-filename'):
            self.assertNotIn(k, qi, json.dumps(qi))
        h = read_header(self.path(top))
        self.assertEqual(h['backing_file_offset'], 0)
        self.assertEqual(h['backing_file_size'], 0)
        self.assertNotIn(rt.EXT_BACKING_FORMAT, [m for m, _ in h['extensions']])

    def test_add_backing_to_standalone(self):
        qemu_img('create', '-q', '-f', 'qcow2', 'alone.qcow2', '4M', cwd=self.dir)
        qemu_io('alone.qcow2', 'write -P 9 0 100k', cwd=self.dir)
        self.rebase_both('alone.qcow2', ['-b', 'base.qcow2', '-F', 'qcow2'])
        self.assert_backing('alone.qcow2', 'base.qcow2', 'qcow2')

    def test_backing_format_raw(self):
        top = self.chain()
        rt.write_pattern_file(self.path('raw.img'), 4 * MiB, [(0, 4096, 5)])
        self.rebase_both(top, ['-b', 'raw.img', '-F', 'raw'])
        self.assert_backing(top, 'raw.img', 'raw')
        # qemu-img reads the new chain
        qemu_img('convert', '-O', 'raw', top, 'out.raw', cwd=self.dir)

    def test_relative_name_in_subdirectory(self):
        """A relative name is stored as given and resolved relative to the
        directory of the image."""
        os.makedirs(self.path('vm', 'disks'))
        os.makedirs(self.path('vm', 'bases'))
        d = self.path('vm', 'disks')
        self.chain(cwd=d)
        shutil.move(os.path.join(d, 'other.qcow2'), self.path('vm', 'bases', 'other.qcow2'))
        self.rebase_both('vm/disks/top.qcow2', ['-b', '../bases/other.qcow2', '-F', 'qcow2'])
        qi = qemu_info('vm/disks/top.qcow2', cwd=self.dir)
        self.assertEqual(qi.get('backing-filename'), '../bases/other.qcow2')
        self.assertEqual(qi.get('full-backing-filename'), 'vm/disks/../bases/other.qcow2')
        # and the chain opens (through rechain too)
        r = self.rechain('info', '--backing-chain', '--output=json', 'vm/disks/top.qcow2',
                         expect=0)
        self.assertEqual(len(json.loads(r.out)), 2, r.describe())

    def test_absolute_name(self):
        top = self.chain()
        absname = self.path('other.qcow2')
        self.rebase_both(top, ['-b', absname, '-F', 'qcow2'])
        self.assert_backing(top, absname, 'qcow2')

    def test_long_name_fits(self):
        """A 1000-byte name fits a 64 KiB header cluster (QEMU's limit is 1023)."""
        top = self.chain()
        name = 'n' * 990 + '.qcow2'
        self.rebase_both(top, ['-b', name, '-F', 'qcow2'])
        self.assert_backing(top, name, 'qcow2')

    def _refused_untouched(self, img, args, cwd=None, codes=(1, 3, 5)):
        cwd = cwd or self.dir
        p = os.path.join(cwd, img)
        before = sha256(p)
        r = self.rechain('rebase', '-u', *(list(args) + [img]), cwd=cwd, expect=codes)
        self.assert_error_names(r, img)
        self.assertEqual(before, sha256(p), 'the image was modified\n' + r.describe())
        return r

    def test_name_too_long_for_cluster(self):
        """512-byte clusters: a 1000-byte name does not fit the header cluster
        (qemu-img: 'No space left in the file header')."""
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', '-b', 'base.qcow2',
                 '-F', 'qcow2', '-u', 'small.qcow2', '1M', cwd=self.dir)
        qemu_io('small.qcow2', 'write -P 7 0 10k', cwd=self.dir)
        q = run([rt.QEMU_IMG, 'rebase', '-u', '-b', 'y' * 1000, '-F', 'qcow2', 'small.qcow2'],
                cwd=self.dir)
        self.assertNotEqual(q.rc, 0, 'oracle: qemu-img accepted it?\n' + q.describe())
        self._refused_untouched('small.qcow2', ['-b', 'y' * 1000, '-F', 'qcow2'])

    def test_name_over_qemu_limit(self):
        """QEMU refuses names longer than 1023 bytes."""
        top = self.chain()
        before = sha256(self.path(top))
        r = self.rechain('rebase', '-u', '-b', 'z' * 1024, '-F', 'qcow2', top, expect=(1, 2, 3))
        self.assertEqual(before, sha256(self.path(top)), 'the image was modified')
        if r.rc == rt.EXIT_USAGE:
            # refused as a bad argument before the image is looked at
            self.assertIn('rechain: ', r.err, r.describe())
        else:
            self.assert_error_names(r, top)

    def test_raw_image_refused(self):
        rt.write_pattern_file(self.path('disk.raw'), 1 * MiB, [(0, 4096, 1)])
        self._refused_untouched('disk.raw', ['-f', 'raw', '-b', 'base.qcow2', '-F', 'qcow2'])
        self._refused_untouched('disk.raw', ['-b', 'base.qcow2', '-F', 'qcow2'])

    def test_missing_backing_format_option(self):
        """-F is required when -b names a file."""
        top = self.chain()
        before = sha256(self.path(top))
        r = self.rechain('rebase', '-u', '-b', 'other.qcow2', top, expect=(1, 2))
        self.assertIn('rechain: ', r.err, r.describe())
        self.assertEqual(before, sha256(self.path(top)))

    def test_invalid_backing_format_option(self):
        top = self.chain()
        before = sha256(self.path(top))
        r = self.rechain('rebase', '-u', '-b', 'other.qcow2', '-F', 'bogus', top, expect=(1, 2))
        self.assertIn('bogus', r.err, r.describe())
        self.assertEqual(before, sha256(self.path(top)))

    # ---- everything else is preserved

    def test_preserves_bitmaps(self):
        top = self.chain()
        qemu_img('bitmap', '--add', top, 'b1', cwd=self.dir)
        qemu_img('bitmap', '--add', '-g', '256k', '--disable', top, 'b2', cwd=self.dir)
        qemu_io(top, 'write -P 5 2M 64k', cwd=self.dir)
        before = qemu_info(top, cwd=self.dir)['format-specific']['data']['bitmaps']
        self.rebase_both(top, ['-b', 'other.qcow2', '-F', 'qcow2'])
        after = qemu_info(top, cwd=self.dir)['format-specific']['data']['bitmaps']
        self.assertEqual(before, after)
        self.rebase_both(top, ['-b', ''])
        after = qemu_info(top, cwd=self.dir)['format-specific']['data']['bitmaps']
        self.assertEqual(before, after)

    def test_preserves_unknown_extension_and_bits(self):
        top = self.chain()
        p = self.path(top)
        h = read_header(p)
        rt.rewrite_header_extensions(p, h['extensions'] + [(0x7e57e417, b'keep me, please')],
                                     h['backing_file'])
        rt.patch_field(p, 'compatible_features', rt.get_field(p, 'compatible_features') | 1 << 33)
        rt.patch_field(p, 'autoclear_features', rt.get_field(p, 'autoclear_features') | 1 << 40)
        r, qcopy = self.rebase_both(top, ['-b', 'other.qcow2', '-F', 'qcow2'],
                                    expect_same_header=False)
        h2 = read_header(p)
        self.assertIn((0x7e57e417, b'keep me, please'), h2['extensions'])
        self.assertEqual(h2['compatible_features'], h['compatible_features'] | 1 << 33)
        # qemu-img clears unknown autoclear bits when it opens read-write;
        # rechain should leave the header alone, report which one it did
        sys.stdout.write('# autoclear after rechain: 0x%x, after qemu-img: 0x%x\n'
                         % (h2['autoclear_features'], read_header(qcopy)['autoclear_features']))

    def test_header_variants(self):
        """The header of every kind of image ends up as qemu-img makes it."""
        variants = [
            ('v2', 'compat=0.10'),
            ('v3', None),
            ('c512', 'cluster_size=512'),
            ('c2m', 'cluster_size=2M'),
            ('el2', 'extended_l2=on'),
            ('zstd', 'compression_type=zstd'),
            ('rc1', 'refcount_bits=1'),
            ('rc64', 'refcount_bits=64'),
            ('lazy', 'lazy_refcounts=on'),
            ('datafile', 'data_file=dfdata.raw'),
        ]
        for name, opts in variants:
            with self.subTest(variant=name):
                d = self.path(name)
                os.mkdir(d)
                top = self.chain(cwd=d, opts=opts)
                if name in ('v3', 'zstd'):
                    qemu_img('snapshot', '-c', 's1', top, cwd=d)
                if name in ('v3', 'el2', 'rc64', 'c512'):
                    qemu_img('bitmap', '--add', top, 'bm', cwd=d)
                self.rebase_both(top, ['-b', 'other.qcow2', '-F', 'qcow2'], cwd=d)
                self.rebase_both(top, ['-b', 'base.qcow2', '-F', 'qcow2'], cwd=d)
                self.rebase_both(top, ['-b', 'x' * 300, '-F', 'raw'], cwd=d)
                self.rebase_both(top, ['-b', ''], cwd=d)
                self.rebase_both(top, ['-b', 'base.qcow2', '-F', 'qcow2'], cwd=d)

    def test_data_file_raw_refuses_backing(self):
        """QEMU forbids a backing file for an image with a raw external data
        file (qemu-img rebase -u: 'Invalid argument')."""
        qemu_img('create', '-q', '-f', 'qcow2', '-o', 'data_file=dfr.data,data_file_raw=on',
                 'dfr.qcow2', '1M', cwd=self.dir)
        qemu_io('dfr.qcow2', 'write -P 3 0 64k', cwd=self.dir)
        q = run([rt.QEMU_IMG, 'rebase', '-u', '-b', 'base.qcow2', '-F', 'qcow2', 'dfr.qcow2'],
                cwd=self.dir)
        self.assertNotEqual(q.rc, 0, 'oracle: ' + q.describe())
        self._refused_untouched('dfr.qcow2', ['-b', 'base.qcow2', '-F', 'qcow2'])
        # removing (no) backing file is fine
        self.rebase_both('dfr.qcow2', ['-b', ''])

    def test_compressed_image(self):
        rt.write_pattern_file(self.path('src.raw'), 2 * MiB, [(0, 1 * MiB, None)])
        qemu_img('convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd',
                 '-f', 'raw', 'src.raw', 'c.qcow2', cwd=self.dir)
        self.rebase_both('c.qcow2', ['-b', 'base.qcow2', '-F', 'qcow2'])

    def test_without_backing_format_ext(self):
        """An image without a backing format extension gets one."""
        from rechaintest import fx_no_backing_format
        x = fx_no_backing_format(self.dir)
        self.rebase_both(x['path'], ['-b', 'nfbase.qcow2', '-F', 'qcow2'])
        self.assert_backing(x['path'], 'nfbase.qcow2', 'qcow2')

    def test_explicit_format_and_options(self):
        """-f qcow2, -t CACHE and -U are accepted."""
        top = self.chain()
        for extra in (['-f', 'qcow2'], ['-t', 'none'], ['-t', 'writeback'], ['-t', 'unsafe'],
                      ['-t', 'directsync'], ['-t', 'writethrough'], ['-U']):
            with self.subTest(options=extra):
                tgt = 'other.qcow2' if extra != ['-U'] else 'base.qcow2'
                self.rebase_both(top, extra + ['-b', tgt, '-F', 'qcow2'])

    def test_rebase_twice_is_idempotent(self):
        top = self.chain()
        self.rechain('rebase', '-u', '-b', 'other.qcow2', '-F', 'qcow2', top, expect=0)
        first = open(self.path(top), 'rb').read()
        self.rechain('rebase', '-u', '-b', 'other.qcow2', '-F', 'qcow2', top, expect=0)
        self.assertEqual(first, open(self.path(top), 'rb').read())

    # ---- one write of the header cluster, then fdatasync; failures of either
    #
    # The fault shim of tests/fault (RECHAIN_FAULT=KIND:N:ACTION, KIND
    # write|flush, N counted from 1 per process; RECHAIN_FAULT_LOG=FILE logs
    # every write and flush) fails the header write or its flush.

    def _faultless_result(self, top, args):
        """Header cluster and whole file of a faultless rechain rebase -u of
        a copy of @top (the "new" state a failed run may also leave)."""
        ref = self.path('ref-' + top)
        shutil.copyfile(self.path(top), ref)
        self.rechain('rebase', '-u', *(list(args) + [os.path.basename(ref)]), expect=0)
        return open(ref, 'rb').read()

    def _run_fault(self, top, args, fault):
        log = self.path('.fault-log')
        if os.path.exists(log):
            os.unlink(log)
        r = run([rt.RECHAIN, 'rebase', '-u'] + list(args) + [top], cwd=self.dir,
                env={'RECHAIN_FAULT': fault, 'RECHAIN_FAULT_LOG': log})
        with open(log) as f:
            ops = [l.split() for l in f if not l.startswith('read ')]
        return r, ops

    def _assert_whole_header(self, top, old, new, allowed, what):
        """The image is byte for byte @old or @new (whichever @allowed
        names: 'old', 'new' or both) and qemu-img opens and checks it."""
        cur = open(self.path(top), 'rb').read()
        states = {'old': old, 'new': new}
        got = [k for k, v in states.items() if cur == v]
        if not got:
            cs = read_header(self.path(top))['cluster_size']
            self.fail('%s: the image is neither the old nor the new one (header vs old: %s; '
                      'vs new: %s; rest of the file changed: %s)'
                      % (what, hexdiff(old[:cs], cur[:cs]), hexdiff(new[:cs], cur[:cs]),
                         cur[cs:] != old[cs:]))
        self.assertIn(got[0], allowed, '%s: the image is the %s one' % (what, got[0]))
        c = qemu_check(top, cwd=self.dir)
        self.assertEqual(c.rc, 0, '%s: qemu-img check\n%s' % (what, c.describe()))
        qi = qemu_info(top, cwd=self.dir)
        want = {'old': 'base.qcow2', 'new': 'other.qcow2'}[got[0]]
        self.assertEqual(qi.get('backing-filename'), want, '%s: %s' % (what, json.dumps(qi)))
        return got[0]

    def test_fault_log_one_write_one_flush(self):
        """The fault shim sees exactly one write (the header cluster at
        offset 0) and then one flush, for every cache mode that flushes."""
        top = self.chain()
        for cache in ('writeback', 'writethrough', 'none', 'directsync'):
            with self.subTest(cache=cache):
                shutil.copyfile(self.path(top), self.path('c.qcow2'))
                r, ops = self._run_fault('c.qcow2', ['-t', cache, '-b', 'other.qcow2',
                                                     '-F', 'qcow2'], '')
                self.assertEqual(r.rc, 0, r.describe())
                self.assertEqual(ops, [['write', 'c.qcow2', '0', '65536'], ['flush', 'c.qcow2']],
                                 r.describe())

    def test_header_write_fails(self):
        """The header write fails (EIO, ENOSPC): exit 5, an error naming the
        file and the failed write, and the image byte-identical; a rerun
        without the fault then succeeds."""
        top = self.chain()
        args = ['-b', 'other.qcow2', '-F', 'qcow2']
        old = open(self.path(top), 'rb').read()
        new = self._faultless_result(top, args)
        for errno_name, words in (('EIO', 'input/output error'),
                                  ('ENOSPC', 'no space left')):
            with self.subTest(fault='write:1:' + errno_name):
                r, ops = self._run_fault(top, args, 'write:1:' + errno_name)
                self.assert_no_crash(r)
                self.assertEqual(r.rc, rt.EXIT_IO, r.describe())
                self.assert_error_names(r, top, 'write', words)
                # nothing after the failed write: no flush, no second try
                self.assertEqual(ops, [['write', top, '0', '65536']], r.describe())
                self._assert_whole_header(top, old, new, ('old',), 'write:1:' + errno_name)
        self.rechain('rebase', '-u', *(args + [top]), expect=0)
        self._assert_whole_header(top, old, new, ('new',), 'rerun')

    def test_header_flush_fails(self):
        """The fdatasync after the header write fails (EIO, ENOSPC): exit 5
        (never 0, as qemu-img's "Failed to flush" is), an error naming the
        file and the flush; the header is whole, old or new, never half."""
        top = self.chain()
        args = ['-b', 'other.qcow2', '-F', 'qcow2']
        old = open(self.path(top), 'rb').read()
        new = self._faultless_result(top, args)
        for errno_name, words in (('EIO', 'input/output error'),
                                  ('ENOSPC', 'no space left')):
            with self.subTest(fault='flush:1:' + errno_name):
                with open(self.path(top), 'wb') as f:
                    f.write(old)
                r, ops = self._run_fault(top, args, 'flush:1:' + errno_name)
                self.assert_no_crash(r)
                self.assertEqual(r.rc, rt.EXIT_IO, r.describe())
                self.assert_error_names(r, top, 'flush', words)
                self.assertEqual(ops, [['write', top, '0', '65536'], ['flush', top]],
                                 r.describe())
                self._assert_whole_header(top, old, new, ('old', 'new'),
                                          'flush:1:' + errno_name)
                # and the same command completes the change
                self.rechain('rebase', '-u', *(args + [top]), expect=0)
                self._assert_whole_header(top, old, new, ('new',), 'rerun')

    def test_killed_at_header_write(self):
        """SIGKILL just before the header write or just before its flush:
        the image is the old or the new one, whole."""
        top = self.chain()
        args = ['-b', 'other.qcow2', '-F', 'qcow2']
        old = open(self.path(top), 'rb').read()
        new = self._faultless_result(top, args)
        for fault, allowed in (('write:1:KILL', ('old',)), ('flush:1:KILL', ('old', 'new'))):
            with self.subTest(fault=fault):
                with open(self.path(top), 'wb') as f:
                    f.write(old)
                r, ops = self._run_fault(top, args, fault)
                self.assertEqual(r.rc, -9, r.describe())
                self._assert_whole_header(top, old, new, allowed, fault)

    def test_strace_one_pwrite_one_fdatasync(self):
        """At the system call level (strace): the image receives exactly one
        write, a pwrite64 of the header cluster at offset 0 (with O_DIRECT
        and 512-byte clusters: of the aligned block holding it), followed by
        exactly one fdatasync, and nothing else that writes or syncs."""
        strace = shutil.which('strace')
        if not strace:
            self.skipTest('strace not installed (apt-get install strace)')
        probe = run([strace, '-f', '-qq', '-o', os.devnull, 'true'])
        if probe.rc != 0:
            self.skipTest('strace cannot trace here: ' + probe.err.strip())
        calls = ('write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'fsync', 'fdatasync',
                 'sync_file_range', 'syncfs', 'ftruncate', 'fallocate', 'copy_file_range',
                 'sendfile', 'splice', 'msync')
        import re
        line_re = re.compile(r'^(?:\d+\s+)?(\w+)\((\d+)<([^>]*)>(.*)$')
        variants = [
            ('64k-writeback', None, [], ['-b', 'other.qcow2', '-F', 'qcow2'], 65536),
            ('64k-none', None, ['-t', 'none'], ['-b', 'other.qcow2', '-F', 'qcow2'], 65536),
            ('64k-remove', None, [], ['-b', ''], 65536),
            ('512-none', 'cluster_size=512', ['-t', 'none'],
             ['-b', 'other.qcow2', '-F', 'qcow2'], 4096),
        ]
        for name, opts, extra, args, length in variants:
            with self.subTest(variant=name):
                d = self.path(name)
                os.mkdir(d)
                top = self.chain(cwd=d, opts=opts)
                img = os.path.realpath(os.path.join(d, top))
                old = open(img, 'rb').read()
                trace = os.path.join(d, 'strace.log')
                # LeakSanitizer cannot run under ptrace: leaks are checked
                # by every other run of the sanitizer build
                asan = os.environ.get('ASAN_OPTIONS', '')
                r = run([strace, '-f', '-y', '-qq', '-e', 'trace=' + ','.join(calls),
                         '-o', trace, rt.RECHAIN, 'rebase', '-u'] + extra + args + [top], cwd=d,
                        env={'ASAN_OPTIONS': (asan + ':' if asan else '') + 'detect_leaks=0'})
                self.assertEqual(r.rc, 0, r.describe())
                seen = []
                for l in open(trace):
                    m = line_re.match(l)
                    if m and m.group(3) == img:
                        seen.append((m.group(1), m.group(4)))
                names = [c for c, _ in seen]
                self.assertEqual(names, ['pwrite64', 'fdatasync'],
                                 'system calls on the image:\n' + ''.join(
                                     '%s(%s\n' % x for x in seen))
                m = re.search(r', (\d+), (\d+)\)\s+= (\d+)$', seen[0][1])
                self.assertIsNotNone(m, seen[0][1])
                self.assertEqual((int(m.group(1)), int(m.group(2)), int(m.group(3))),
                                 (length, 0, length), seen[0][1])
                new = open(img, 'rb').read()
                self.assertEqual(new[length:], old[length:])

    # ---- safe mode

    def test_safe_mode(self):
        """Without -u: a correct safe rebase (exit 0, the new backing in the
        header, guest content unchanged, qemu-img check clean).  A refusal
        is a failure: safe mode is implemented."""
        top = self.chain()
        shutil.copyfile(self.path(top), self.path('orig.qcow2'))
        r = self.rechain('rebase', '-b', 'other.qcow2', '-F', 'qcow2', top)
        self.assertEqual(r.rc, 0, 'safe rebase refused\n' + r.describe())
        self.assert_backing(top, 'other.qcow2', 'qcow2')
        c = qemu_check(top, cwd=self.dir)
        self.assertEqual(c.rc, 0, c.describe())
        c = run([rt.QEMU_IMG, 'compare', '-U', 'orig.qcow2', top], cwd=self.dir)
        self.assertEqual(c.rc, 0, 'safe rebase changed guest content\n' + c.describe())


class RebaseSafeTest(ToolTestCase):
    """Safe rebase (without -u): the guest content must not change."""

    def _safe(self, d, top, args, origfmt='qcow2'):
        # keep a reference copy of the whole original chain: convert to raw
        qemu_img('convert', '-U', '-O', 'raw', top, 'before.raw', cwd=d)
        r = self.rechain('rebase', *(list(args) + [top]), cwd=d)
        self.assertEqual(r.rc, 0, r.describe())
        c = qemu_check(top, cwd=d)
        self.assertEqual(c.rc, 0, c.describe())
        c = run([rt.QEMU_IMG, 'compare', '-U', '-f', 'raw', 'before.raw', top], cwd=d)
        self.assertEqual(c.rc, 0, 'safe rebase changed guest content\n' + c.describe()
                         + '\n' + r.describe())
        return r

    def test_variants(self):
        from rechaintest import (fx_chain2, fx_chain_short_backing, fx_chain3_raw_base,
                                 fx_random_chain, fx_chain_long_backing)
        cases = [
            (fx_chain2, ['-b', 'other.qcow2', '-F', 'qcow2'], 'other'),
            (fx_chain2, ['-b', ''], None),
            (fx_chain_short_backing, ['-b', 'other.qcow2', '-F', 'qcow2'], 'other'),
            (fx_chain_long_backing, ['-b', 'small.qcow2', '-F', 'qcow2'], 'small'),
            (fx_chain3_raw_base, ['-b', 'rbase.raw', '-F', 'raw'], None),
            (fx_random_chain, ['-b', 'rnd0.raw', '-F', 'raw'], None),
            (fx_random_chain, ['-b', ''], None),
        ]
        for i, (f, args, extra) in enumerate(cases):
            with self.subTest(fixture=rt.fixture_name(f), args=args):
                d = self.path('c%d' % i)
                os.mkdir(d)
                x = f(d)
                if extra == 'other':
                    qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '2M', cwd=d)
                    qemu_io('other.qcow2', 'write -P 0x77 0 1536k', 'write -z 64k 64k', cwd=d)
                elif extra == 'small':
                    qemu_img('create', '-q', '-f', 'qcow2', 'small.qcow2', '512k', cwd=d)
                    qemu_io('small.qcow2', 'write -P 0x78 0 512k', cwd=d)
                self._safe(d, x['path'], args)


def bitmap_ext_span(_unused, head):
    """(start, end) of the bitmaps extension data in header bytes @head."""
    import struct
    version = struct.unpack_from('>I', head, 4)[0]
    off = struct.unpack_from('>I', head, 100)[0] if version >= 3 else 72
    while off + 8 <= len(head):
        magic, length = struct.unpack_from('>II', head, off)
        if magic == 0:
            return None
        if magic == rt.EXT_BITMAPS:
            return (off + 8, off + 8 + length)
        off += 8 + ((length + 7) & ~7)
    return None


def _hdr(path):
    h = read_header(path)
    h['extensions'] = [('0x%08x' % m, len(d)) for m, d in h['extensions']]
    return h


if __name__ == '__main__':
    main()
