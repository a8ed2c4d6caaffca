#!/usr/bin/python3
# tool-map: `rechain map` agrees with `qemu-img map --output=json`.
#
# Both maps are normalized to per-byte-range semantics (split at every
# boundary of either) so that only merging granularity may differ.  QEMU's
# conventions, which rechain must follow:
#   - a range no layer allocates: depth = index of the bottom layer,
#     present false, zero true, data false;
#   - a range beyond the end of a shorter backing file: depth = index of the
#     layer whose backing file is too short, present false, zero true;
#   - raw layers: present true, data or zero by the file's holes
#     (SEEK_DATA/SEEK_HOLE), offset = the guest offset;
#   - offset only where the range has a host offset (not for compressed
#     clusters; qemu-img also gives one for zero-allocated clusters).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rechaintest import (FIXTURES, ToolTestCase, compare_maps, fixture_name,  # noqa: E402
                         main, qemu_img, tree_hashes, qemu_io, qemu_map)


class MapTest(ToolTestCase):

    def _check(self, x, extra=()):
        d, path, fmt = x['cwd'], x['path'], x['fmt']
        fargs = ['-f', fmt] if fmt else []
        q = qemu_map(path, cwd=d, fmt=fmt)
        r, res = self.rechain_json('map', '--output=json', *(list(extra) + fargs + [path]), cwd=d)
        if not isinstance(r, list):
            self.fail('rechain map output is not a JSON array\n' + res.describe())
        try:
            errs, notes = compare_maps(q, r)
        except AssertionError as e:
            self.fail('%s\n%s' % (e, res.describe()))
        if x.get('warns'):
            self.assertRegex(res.err, r'rechain: .*warning|warning: ',
                             'no warning about the probed backing format\n' + res.describe())
        for n in notes[:5]:
            sys.stdout.write('# note (%s): %s\n' % (path, n))
        if errs:
            self.fail('rechain map differs from qemu-img map:\n  ' + '\n  '.join(errs[:40]) +
                      '\nqemu-img map:\n' + '\n'.join(json.dumps(e) for e in q[:60]) +
                      '\n' + res.describe())

    def test_fixture_map(self):
        for f in FIXTURES:
            with self.subTest(fixture=fixture_name(f)):
                d = self.path(fixture_name(f))
                os.mkdir(d)
                x = f(d)
                before = tree_hashes(d)
                self._check(x)
                self.assertEqual(before, tree_hashes(d), 'files changed by rechain')

    def test_map_force_share(self):
        from rechaintest import fx_chain2
        self._check(fx_chain2(self.dir), extra=['-U'])

    def test_map_shapes(self):
        """Entries have exactly the documented keys and types."""
        from rechaintest import fx_chain3_raw_base
        x = fx_chain3_raw_base(self.dir)
        r, res = self.rechain_json('map', '--output=json', x['path'])
        for e in r:
            keys = set(e)
            self.assertTrue({'start', 'length', 'depth', 'present', 'zero', 'data'} <= keys,
                            'missing keys in %r' % e)
            self.assertTrue(keys <= {'start', 'length', 'depth', 'present', 'zero', 'data',
                                     'offset', 'filename', 'compressed'},
                            'unexpected keys in %r' % e)
            for k in ('present', 'zero', 'data'):
                self.assertIsInstance(e[k], bool, '%s in %r' % (k, e))
            for k in ('start', 'length', 'depth'):
                self.assertIsInstance(e[k], int, '%s in %r' % (k, e))
            if 'offset' in e:
                self.assertIsInstance(e['offset'], int)

    def test_compressed_has_no_offset(self):
        """Compressed clusters are data without an offset."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'c.qcow2', '1M', cwd=d)
        qemu_io('c.qcow2', 'write -c -P 7 0 64k', 'write -P 8 64k 64k', cwd=d)
        r, res = self.rechain_json('map', '--output=json', 'c.qcow2')
        first = [e for e in r if e['start'] == 0][0]
        self.assertTrue(first['data'], res.describe())
        self.assertNotIn('offset', first, res.describe())

    def test_human_output(self):
        from rechaintest import fx_chain2
        x = fx_chain2(self.dir)
        for args in ([], ['--output=human']):
            with self.subTest(args=args):
                r = self.rechain('map', *(args + [x['path']]), expect=0)
                self.assertTrue(r.out.strip(), r.describe())
                with self.assertRaises(ValueError, msg=r.describe()):
                    json.loads(r.out)

    def test_map_missing_backing(self):
        """qemu-img map needs the whole chain: a missing backing file fails."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'gone.qcow2', '-F', 'qcow2',
                 '-u', 'orphan.qcow2', '1M', cwd=d)
        r = self.rechain('map', '--output=json', 'orphan.qcow2', expect=3)
        self.assert_error_names(r, 'gone.qcow2')


if __name__ == '__main__':
    main()
