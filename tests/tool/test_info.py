#!/usr/bin/python3
# tool-info: `rechain info` agrees with `qemu-img info --output=json`.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rechaintest import (FIXTURES, ToolTestCase, compare_info, fixture_name,  # noqa: E402
                         main, qemu_info, qemu_img, qemu_io, tree_hashes, MiB)


class InfoTest(ToolTestCase):

    def _check(self, x, extra=(), chain=False):
        d, path, fmt = x['cwd'], x['path'], x['fmt']
        fargs = ['-f', fmt] if fmt else []
        q = qemu_info(path, cwd=d, fmt=fmt)
        r, res = self.rechain_json('info', '--output=json', *(list(extra) + fargs + [path]), cwd=d)
        errs = compare_info(q, r)
        if errs:
            self.fail('rechain info differs from qemu-img info:\n  ' + '\n  '.join(errs) +
                      '\nqemu-img: ' + json.dumps(q, sort_keys=True) + '\n' + res.describe())
        if x.get('warns') and chain:
            self.assertIn('warning', res.err.lower(),
                          'no warning about the probed backing format\n' + res.describe())
            self.assertRegex(res.err, r'rechain: .*warning|warning: ',
                             'warning not in the "rechain: ..." form\n' + res.describe())
        return q, r

    def test_fixture_info(self):
        """info --output=json of every fixture, key by key."""
        for f in FIXTURES:
            with self.subTest(fixture=fixture_name(f)):
                d = self.path(fixture_name(f))
                os.mkdir(d)
                x = f(d)
                before = tree_hashes(d)
                self._check(x)
                self.assertEqual(before, tree_hashes(d), 'files changed by rechain')

    def test_fixture_info_force_share(self):
        """-U changes nothing for an image nobody else uses."""
        for f in FIXTURES[:3]:
            with self.subTest(fixture=fixture_name(f)):
                d = self.path(fixture_name(f))
                os.mkdir(d)
                self._check(f(d), extra=['-U'])

    def test_fixture_backing_chain(self):
        """--backing-chain gives an array, top first, like qemu-img."""
        for f in FIXTURES:
            name = fixture_name(f)
            with self.subTest(fixture=name):
                d = self.path(name)
                os.mkdir(d)
                x = f(d)
                fargs = ['-f', x['fmt']] if x['fmt'] else []
                q = qemu_info(x['path'], cwd=d, fmt=x['fmt'], chain=True)
                r, res = self.rechain_json('info', '--output=json', '--backing-chain',
                                           *(fargs + [x['path']]), cwd=d)
                if x.get('warns'):
                    # the backing file's format is probed: a warning says so
                    self.assertRegex(res.err, r'rechain: .*warning|warning: ',
                                     'no warning about the probed backing format\n'
                                     + res.describe())
                if not isinstance(r, list):
                    self.fail('--backing-chain output is not a JSON array\n' + res.describe())
                self.assertEqual(len(q), len(r), 'chain length differs\nqemu-img: %s\n%s'
                                 % (json.dumps(q), res.describe()))
                errs = []
                for i, (a, b) in enumerate(zip(q, r)):
                    errs += compare_info(a, b, 'info[%d]' % i)
                if errs:
                    self.fail('rechain info --backing-chain differs:\n  ' + '\n  '.join(errs) +
                              '\n' + res.describe())

    def test_human_output(self):
        """Default and --output=human print text (not JSON) naming the image."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'top.qcow2', '1M', cwd=d)
        for args in ([], ['--output=human']):
            with self.subTest(args=args):
                r = self.rechain('info', *(args + ['top.qcow2']), expect=0)
                self.assertIn('top.qcow2', r.out, r.describe())
                self.assertIn('base.qcow2', r.out, r.describe())
                with self.assertRaises(ValueError, msg=r.describe()):
                    json.loads(r.out)
        r = self.rechain('info', '--backing-chain', 'top.qcow2', expect=0)
        self.assertIn('top.qcow2', r.out, r.describe())

    def test_absolute_path(self):
        """filename and full-backing-filename for an absolute image path."""
        d = self.dir
        os.mkdir(self.path('s'))
        qemu_img('create', '-q', '-f', 'qcow2', 's/base.qcow2', '1M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 's/top.qcow2', '1M', cwd=d)
        top = self.path('s', 'top.qcow2')
        q = qemu_info(top, cwd='/')
        r, res = self.rechain_json('info', '--output=json', top, cwd='/')
        errs = compare_info(q, r)
        self.assertEqual(errs, [], res.describe())
        self.assertEqual(r.get('full-backing-filename'), self.path('s', 'base.qcow2'))

    def test_info_does_not_modify(self):
        """info on a dirty or corrupt-flagged image leaves it byte-identical."""
        from rechaintest import fx_dirty_lazy, fx_corrupt_bit, sha256
        for f in (fx_dirty_lazy, fx_corrupt_bit):
            with self.subTest(fixture=fixture_name(f)):
                d = self.path(fixture_name(f))
                os.mkdir(d)
                x = f(d)
                p = os.path.join(d, x['path'])
                before = sha256(p)
                self.rechain('info', x['path'], cwd=d, expect=0)
                self.rechain('info', '--output=json', x['path'], cwd=d, expect=0)
                self.assertEqual(before, sha256(p))

    def test_info_missing_backing(self):
        """qemu-img info opens no backing file: a missing one does not stop it.
        rechain info agrees (exit 0, the same JSON, the human form too);
        --backing-chain must refuse with 3, naming the missing file."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'gone.qcow2', '-F', 'qcow2',
                 '-u', 'orphan.qcow2', '1M', cwd=d)
        r = self.rechain('info', '--output=json', 'orphan.qcow2', expect=0)
        errs = compare_info(qemu_info('orphan.qcow2', cwd=d), json.loads(r.out))
        self.assertEqual(errs, [], r.describe())
        r = self.rechain('info', 'orphan.qcow2', expect=0)
        self.assertIn('gone.qcow2', r.out, r.describe())
        r = self.rechain('info', '--backing-chain', 'orphan.qcow2', expect=3)
        self.assert_error_names(r, 'gone.qcow2')


if __name__ == '__main__':
    main()
