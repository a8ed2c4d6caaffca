#!/usr/bin/python3
# tool-cli: command line handling, exit codes and the form of messages.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, qemu_img, sha256  # noqa: E402


class CliTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'img.qcow2', '1M', cwd=self.dir)
        self.sum = sha256(self.path('img.qcow2'))

    def tearDown(self):
        self.assertEqual(self.sum, sha256(self.path('img.qcow2')), 'img.qcow2 modified')
        super().tearDown()

    def usage(self, *args):
        r = self.rechain(*args, expect=rt.EXIT_USAGE)
        self.assertTrue(r.err.strip(), 'usage error without a message\n' + r.describe())
        self.assertEqual(r.out, '', 'usage error printed on stdout\n' + r.describe())
        return r

    def test_usage_errors(self):
        cases = [
            [],
            ['frobnicate', 'img.qcow2'],
            ['info'],
            ['map'],
            ['rebase'],
            ['rebase', '-u', 'img.qcow2'],            # no -b
            ['rebase', '-u', '-b'],                   # -b lacks its argument
            ['info', '--bogus', 'img.qcow2'],
            ['map', '-Z', 'img.qcow2'],
            ['rebase', '-u', '--bogus', '-b', '', 'img.qcow2'],
            ['info', '-f'],
            ['info', 'img.qcow2', 'img.qcow2'],       # extra argument
            ['map', 'img.qcow2', 'extra'],
            ['rebase', '-u', '-b', '', 'img.qcow2', 'extra'],
            ['info', '--output=xml', 'img.qcow2'],
            ['map', '--output=yaml', 'img.qcow2'],
        ]
        for args in cases:
            with self.subTest(args=args):
                self.usage(*args)

    def test_bad_option_values(self):
        """Semantically wrong values: usage error (2), failure (1) or unsupported (3), a message,
        nothing modified."""
        cases = [
            ['info', '-f', 'vmdk', 'img.qcow2'],
            ['map', '-f', 'nosuchformat', 'img.qcow2'],
            ['rebase', '-u', '-t', 'sometimes', '-b', '', 'img.qcow2'],
            ['rebase', '-u', '-b', 'base.qcow2', '-F', 'nosuchfmt', 'img.qcow2'],
        ]
        for args in cases:
            with self.subTest(args=args):
                # an unknown format may also count as an unsupported image (3)
                r = self.rechain(*args, expect=(rt.EXIT_FAILURE, rt.EXIT_USAGE,
                                                rt.EXIT_INVALID))
                self.assertIn('rechain: ', r.err, r.describe())

    def test_help(self):
        for args in (['--help'], ['info', '--help'], ['map', '--help'], ['rebase', '--help']):
            with self.subTest(args=args):
                r = self.rechain(*args, expect=0)
                self.assertTrue((r.out + r.err).strip(), r.describe())

    def test_nonexistent_image(self):
        for args in (['info'], ['map'], ['rebase', '-u', '-b', '']):
            with self.subTest(args=args):
                r = self.rechain(*(args + ['no/such/image.qcow2']),
                                 expect=(rt.EXIT_FAILURE, rt.EXIT_INVALID, rt.EXIT_IO))
                self.assert_error_names(r, 'no/such/image.qcow2')
                self.assertTrue(any(l.startswith('rechain: no/such/image.qcow2')
                                    for l in r.err.splitlines()),
                                'not in the form "rechain: FILE: message"\n' + r.describe())

    def test_directory_as_image(self):
        os.mkdir(self.path('adir'))
        for args in (['info'], ['map'], ['rebase', '-u', '-b', '']):
            with self.subTest(args=args):
                r = self.rechain(*(args + ['adir']))
                self.assertNotEqual(r.rc, 0, r.describe())
                self.assert_error_names(r, 'adir')

    def test_error_form(self):
        """Errors read 'rechain: FILE: message'."""
        with open(self.path('junk.qcow2'), 'wb') as f:
            f.write(b'QFI\xfb' + b'\xff' * 200)
        r = self.rechain('info', '-f', 'qcow2', 'junk.qcow2', expect=rt.EXIT_INVALID)
        first = [l for l in r.err.splitlines() if l.startswith('rechain: ')]
        self.assertTrue(first and first[0].startswith('rechain: junk.qcow2: '), r.describe())


if __name__ == '__main__':
    main()
