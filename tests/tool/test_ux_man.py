#!/usr/bin/python3
# tool-ux-man: rechain(1) renders without warnings (groff -ww, man -l) and
# documents every command, every option the tool accepts, every exit code,
# and examples with virsh and with a storage pool.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main  # noqa: E402

MAN = os.environ.get('RECHAIN_MAN_PAGE', '')


def render(cmd, env=None):
    e = dict(os.environ, LC_ALL='C.UTF-8', MANWIDTH='80', MAN_KEEP_FORMATTING='0')
    e.pop('LANGUAGE', None)
    if env:
        e.update(env)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)


class ManTest(ToolTestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = None
        if MAN and os.path.exists(MAN) and shutil.which('groff'):
            p = render(['groff', '-ww', '-man', '-Tutf8', '-P-c', '-P-b', '-P-u', MAN])
            if p.returncode == 0:
                cls.text = p.stdout.decode('utf-8')

    def setUp(self):
        super().setUp()
        if not MAN or not os.path.exists(MAN):
            self.skipTest('man page not built (RECHAIN_MAN_PAGE=%r)' % MAN)
        if not shutil.which('groff'):
            self.skipTest('groff not installed')

    def test_groff_no_warnings(self):
        for dev in ('utf8', 'ascii'):
            with self.subTest(device=dev):
                p = render(['groff', '-ww', '-z', '-man', '-T' + dev, MAN])
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                self.assertEqual(p.stderr.decode(), '', 'groff warnings')

    def test_man_no_warnings(self):
        if not shutil.which('man'):
            self.skipTest('man not installed')
        p = render(['man', '--warnings', '-l', MAN])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stderr.decode(), '', 'man -l warnings')
        self.assertIn('rechain', p.stdout.decode())

    def test_sections(self):
        text = self.text
        self.assertIsNotNone(text, 'groff failed')
        for sec in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'JSON OUTPUT',
                    'EXIT STATUS', 'ENVIRONMENT', 'LIBVIRT STORAGE POOLS', 'EXAMPLES',
                    'SEE ALSO'):
            self.assertRegex(text, r'(?m)^%s$' % re.escape(sec), 'section %s missing' % sec)

    def test_every_option_documented(self):
        """Each option in the --help of each command appears in the page."""
        text = self.text.replace('\u2010', '-').replace('\u2212', '-')
        for cmd in ('info', 'map', 'rebase'):
            r = self.rechain(cmd, '--help', expect=0)
            opts = re.findall(r'^\s+(?:(-\w), )?(--[\w-]+)', r.out, re.M)
            self.assertTrue(opts, r.describe())
            for short, long in opts:
                with self.subTest(command=cmd, option=long):
                    self.assertIn(long, text)
                    if short:
                        self.assertRegex(text, r'(?<![\w-])%s\b' % re.escape(short))
        self.assertIn('--version', text)

    def test_exit_codes(self):
        text = self.text
        section = text[text.index('\nEXIT STATUS'):text.index('\nENVIRONMENT')]
        for code in range(7):
            self.assertRegex(section, r'(?m)^\s+%d\s*$|^\s+%d\s{2,}\S' % (code, code),
                             'exit code %d not documented' % code)
        # the tool's help lists the same codes
        r = self.rechain('--help', expect=0)
        for code in range(7):
            self.assertRegex(r.out, r'(?m)^\s+%d\s+\S' % code)

    def test_examples(self):
        text = self.text.replace('\u2010', '-')
        examples = text[text.index('\nEXAMPLES'):]
        self.assertIn('virsh', examples)
        self.assertIn('--pool', examples)
        self.assertIn('virsh vol-path', examples)
        self.assertIn('--connect qemu:///system', examples)
        pools = text[text.index('\nLIBVIRT STORAGE POOLS'):text.index('\nEXAMPLES')]
        self.assertIn('plugin', pools)
        for opt in ('--connect', '--pool', '--backing-name', '--strict'):
            self.assertIn(opt, pools)

    def test_version_matches(self):
        r = self.rechain('--version', '--output=json', expect=0)
        version = r.json()['version']
        with open(MAN) as f:
            head = f.read(2000)
        self.assertIn('"rechain %s"' % version, head)


if __name__ == '__main__':
    main()
