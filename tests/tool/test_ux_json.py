#!/usr/bin/python3
# tool-ux-json: what a script parses. --output=json of every command and of
# --version is one JSON document on stdout; with --output=json a failure
# also ends stderr with {"error": {...}} whose exit-status and reason match
# the (distinct, documented) exit status.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, qemu_img, qemu_io  # noqa: E402

REASONS = {1: 'failed', 2: 'usage', 3: 'invalid-image', 4: 'in-use', 5: 'io', 6: 'cancelled'}


class JsonTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '4M', cwd=d)
        qemu_io('base.qcow2', 'write -P 1 0 2M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'top.qcow2', '4M', cwd=d)
        qemu_io('top.qcow2', 'write -P 2 1M 64k', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', 'new.qcow2', '4M', cwd=d)
        qemu_io('new.qcow2', 'write -P 1 0 2M', cwd=d)

    def json_out(self, *args, expect=0):
        r = self.rechain(*args, expect=expect)
        try:
            return json.loads(r.out), r
        except ValueError as e:
            self.fail('stdout is not one JSON document (%s)\n%s' % (e, r.describe()))

    def json_error(self, r):
        """The JSON error object: the last line of stderr."""
        lines = r.err.strip().splitlines()
        self.assertTrue(lines, r.describe())
        try:
            obj = json.loads(lines[-1])
        except ValueError:
            self.fail('last stderr line is not JSON\n' + r.describe())
        self.assertEqual(list(obj), ['error'], r.describe())
        err = obj['error']
        for key, kind in (('reason', str), ('exit-status', int), ('domain', str),
                          ('code', int), ('message', str)):
            self.assertIsInstance(err.get(key), kind, '%s in %r' % (key, err))
        self.assertEqual(err['exit-status'], r.rc, r.describe())
        self.assertEqual(err['reason'], REASONS[r.rc], r.describe())
        # the human line is still there, with the same message
        self.assertIn('rechain: ' + err['message'], r.err, r.describe())
        return err

    # -- results -------------------------------------------------------------

    def test_info(self):
        o, _ = self.json_out('info', '--output=json', 'top.qcow2')
        self.assertEqual(o['format'], 'qcow2')
        self.assertEqual(o['virtual-size'], 4 << 20)
        self.assertEqual(o['backing-filename'], 'base.qcow2')
        chain, _ = self.json_out('info', '--output', 'json', '--backing-chain', 'top.qcow2')
        self.assertEqual([x['filename'] for x in chain], ['top.qcow2', 'base.qcow2'])

    def test_map(self):
        m, _ = self.json_out('map', '--output=json', 'top.qcow2')
        self.assertIsInstance(m, list)
        self.assertEqual(sum(e['length'] for e in m), 4 << 20)
        self.assertIn((1 << 20, 64 << 10, 0), [(e['start'], e['length'], e['depth'])
                                                for e in m if e['data']])

    def test_rebase_reports(self):
        plan, _ = self.json_out('rebase', '--dry-run', '--output=json', '-b', 'new.qcow2',
                                '-F', 'qcow2', 'top.qcow2')
        self.assertTrue(plan['dry-run'])
        self.assertEqual(plan['images'][0]['image'], 'top.qcow2')
        done, _ = self.json_out('rebase', '--output=json', '-b', 'new.qcow2', '-F', 'qcow2',
                                'top.qcow2')
        self.assertFalse(done['dry-run'])
        self.assertEqual(done['images'][0]['result'], 'rebased')
        for key in ('bytes-examined', 'bytes-compared', 'seconds'):
            self.assertIn(key, done)
        u, _ = self.json_out('rebase', '-u', '--output=json', '-b', 'base.qcow2', '-F', 'qcow2',
                             'top.qcow2')
        self.assertEqual(u['images'][0]['image'], 'top.qcow2')

    def test_version(self):
        v, r = self.json_out('--version', '--output=json')
        self.assertEqual(v['name'], 'rechain')
        self.assertRegex(v['version'], r'^\d+\.\d+\.\d+')
        self.assertEqual(v['commands'], ['info', 'map', 'rebase'])
        self.assertIsInstance(v['features'], list)
        h = self.rechain('--version', expect=0)
        self.assertTrue(h.out.startswith('rechain %s' % v['version']), h.describe())
        self.assertEqual(self.rechain('-V', expect=0).out, h.out)
        self.rechain('--version', '--output=xml', expect=rt.EXIT_USAGE)
        self.rechain('--version', 'extra', expect=rt.EXIT_USAGE)

    # -- errors --------------------------------------------------------------

    def test_usage_errors(self):
        for args in (['frobnicate', '--output=json'],
                     ['info', '--output=json'],
                     ['info', '--output=json', '--bogus', 'top.qcow2'],
                     ['map', '--output', 'json', 'top.qcow2', 'extra'],
                     ['rebase', '--output=json', 'top.qcow2'],
                     ['rebase', '--output=json', '-u', '-c', '-b', '', 'top.qcow2']):
            with self.subTest(args=args):
                r = self.rechain(*args, expect=rt.EXIT_USAGE)
                self.json_error(r)
                self.assertEqual(r.out, '', r.describe())

    def test_invalid_image(self):
        with open(self.path('junk.qcow2'), 'wb') as f:
            f.write(b'QFI\xfb' + b'\xff' * 200)
        for cmd in (['info'], ['map'], ['rebase', '-u', '-b', '']):
            with self.subTest(cmd=cmd[0]):
                r = self.rechain(*(cmd + ['--output=json', '-f', 'qcow2', 'junk.qcow2']),
                                 expect=rt.EXIT_INVALID)
                err = self.json_error(r)
                self.assertEqual(err['domain'], 'rechain-error-quark')
                self.assertIn('junk.qcow2', err['message'])
        r = self.rechain('info', '--output=json', 'missing.qcow2',
                         expect=(rt.EXIT_FAILURE, rt.EXIT_INVALID, rt.EXIT_IO))
        self.assertIn('missing.qcow2', self.json_error(r)['message'])

    def test_in_use(self):
        from test_locking import Holder
        h = Holder('top.qcow2', self.dir)
        try:
            for args in (['info', '--output=json', 'top.qcow2'],
                         ['rebase', '--output=json', '-u', '-b', '', 'top.qcow2']):
                with self.subTest(args=args):
                    r = self.rechain(*args, expect=rt.EXIT_IN_USE)
                    err = self.json_error(r)
                    self.assertEqual(err['reason'], 'in-use')
        finally:
            h.close()

    def test_no_json_without_output_json(self):
        r = self.rechain('info', 'missing.qcow2')
        self.assertNotEqual(r.rc, 0)
        self.assertNotIn('{', r.err, r.describe())
        r = self.rechain('info', '--output=human', 'top.qcow2', expect=0)
        with self.assertRaises(ValueError):
            json.loads(r.out)

    def test_exit_codes_distinct(self):
        """usage 2, invalid image 3, in use 4: distinct and as documented."""
        from test_locking import Holder
        codes = {}
        codes['usage'] = self.rechain('info', expect=rt.EXIT_USAGE).rc
        with open(self.path('junk.qcow2'), 'wb') as f:
            f.write(b'QFI\xfb' + b'\x00' * 200)
        codes['invalid'] = self.rechain('info', '-f', 'qcow2', 'junk.qcow2',
                                        expect=rt.EXIT_INVALID).rc
        h = Holder('top.qcow2', self.dir)
        try:
            codes['in-use'] = self.rechain('rebase', '-u', '-b', '', 'top.qcow2',
                                           expect=rt.EXIT_IN_USE).rc
        finally:
            h.close()
        self.assertEqual(len(set(codes.values())), len(codes), codes)


if __name__ == '__main__':
    main()
