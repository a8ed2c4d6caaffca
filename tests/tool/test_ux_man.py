#!/usr/bin/python3
# tool-ux-man: rechain(1) renders without warnings (groff -ww, man -l) and
# documents every command, every option the tool accepts (matched as a whole
# option: "--backing" is not documented by "--backing-format"), short and
# long forms paired as --help pairs them, no option the tool lacks, every
# exit code, and examples with virsh and with a storage pool.
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

    @staticmethod
    def option_re(opt):
        """An option as a whole word: "--backing" must not match inside
        "--backing-format" nor "--cache" inside "--source-cache"."""
        return re.compile(r'(?<![\w-])%s(?![\w-])' % re.escape(opt))

    @staticmethod
    def source_option_re(opt):
        """The same in the man(7) source, where every "-" of an option is
        written "\\-" (so that it renders as a hyphen-minus a reader can
        copy, not as a typographic hyphen)."""
        esc = re.escape(opt.replace('-', '\\-'))
        return re.compile(r'(?<![\w\\-])%s(?![\w]|\\-)' % esc)

    def help_options(self, cmd):
        r = self.rechain(cmd, '--help', expect=0)
        opts = re.findall(r'^\s+(?:(-\w), )?(--[\w-]+)', r.out, re.M)
        self.assertTrue(opts, r.describe())
        return opts

    def test_option_matching(self):
        """The matching itself: a longer option does not document a shorter
        one that is its prefix."""
        for opt, text in (('--backing', 'see --backing-format=FMT'),
                          ('--cache', 'with --source-cache=CACHE'),
                          ('--progress', 'use --progress-fd=FD'),
                          ('-b', 'the -backing word'), ('-t', 'a --t-x')):
            self.assertIsNone(self.option_re(opt).search(text), (opt, text))
        for opt, text in (('--backing', '--backing=BACKING'), ('--progress', '[--progress]'),
                          ('-b', '-b, --backing'), ('--cache', 'a --cache.')):
            self.assertIsNotNone(self.option_re(opt).search(text), (opt, text))
        self.assertIsNone(self.source_option_re('--backing').search(r'.BR \-\-backing\-format'))
        self.assertIsNotNone(self.source_option_re('--backing').search(r'.BR \-b ", " \-\-backing= '))

    def test_every_option_documented(self):
        """Each option in the --help of each command appears in the page as a
        whole option, both rendered and in the source markup."""
        text = self.text.replace('\u2010', '-').replace('\u2212', '-')
        with open(MAN) as f:
            src = f.read()
        for cmd in ('info', 'map', 'rebase'):
            for short, long in self.help_options(cmd):
                for opt in (long, short) if short else (long,):
                    with self.subTest(command=cmd, option=opt):
                        self.assertRegex(text, self.option_re(opt))
                        self.assertRegex(src, self.source_option_re(opt))
        for opt in ('--version', '-V', '--help', '-h'):
            with self.subTest(command='', option=opt):
                self.assertRegex(text, self.option_re(opt))
                self.assertRegex(src, self.source_option_re(opt))

    def test_short_and_long_paired(self):
        """An option with a short and a long form has a tagged paragraph
        whose tag names both, as --help pairs them (".TP" then
        ".BR \\-t ", " \\-\\-cache= ...")."""
        with open(MAN) as f:
            src = f.read()
        for cmd in ('info', 'map', 'rebase'):
            for short, long in self.help_options(cmd):
                if not short:
                    continue
                with self.subTest(command=cmd, option='%s, %s' % (short, long)):
                    tag = (r'(?m)^\.TP\n\.BR %s ", " %s(?![\w]|\\-)'
                           % (re.escape(short.replace('-', '\\-')),
                              re.escape(long.replace('-', '\\-'))))
                    self.assertRegex(src, tag)

    def test_no_unknown_options(self):
        """The other way round: every long option the page names in its
        SYNOPSIS, COMMANDS, OPTIONS and LIBVIRT STORAGE POOLS sections is
        one the tool accepts."""
        with open(MAN) as f:
            src = f.read()
        known = {'--help', '--version'}
        for cmd in ('info', 'map', 'rebase'):
            known.update(l for _, l in self.help_options(cmd))
        sections = re.split(r'(?m)^\.SH ', src)
        for sec in sections:
            title = sec.split('\n', 1)[0].strip('"')
            if title not in ('SYNOPSIS', 'COMMANDS', 'OPTIONS', 'LIBVIRT STORAGE POOLS'):
                continue
            for m in re.finditer(r'(?<![\w\\-])((?:\\-){2}\w(?:\w|\\-(?=\w))*)', sec):
                opt = m.group(1).replace('\\-', '-')
                with self.subTest(section=title, option=opt):
                    self.assertIn(opt, known)

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
