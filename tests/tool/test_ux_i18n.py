#!/usr/bin/python3
# tool-ux-i18n: the command line speaks Brazilian Portuguese with
# LANGUAGE=pt_BR (help, usage errors, errors found by the tool, human
# output), English otherwise; the pt_BR catalogue is complete and valid.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, qemu_img  # noqa: E402

LOCALEDIR = os.environ.get('RECHAIN_TEST_LOCALEDIR', '')
SOURCE_ROOT = os.environ.get('RECHAIN_SOURCE_ROOT',
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
PO = os.path.join(SOURCE_ROOT, 'po', 'pt_BR.po')
COMMANDS = ('info', 'map', 'rebase')

PT = {'LANGUAGE': 'pt_BR', 'LC_ALL': 'C.UTF-8'}
EN = {'LANGUAGE': '', 'LC_ALL': 'C.UTF-8'}


class I18nTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        if not LOCALEDIR or not os.path.exists(
                os.path.join(LOCALEDIR, 'pt_BR', 'LC_MESSAGES', 'rechain.mo')):
            self.skipTest('pt_BR.mo not built (RECHAIN_TEST_LOCALEDIR=%r)' % LOCALEDIR)
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'img.qcow2', '1M', cwd=self.dir)

    def run_in(self, env, *args, expect=None):
        e = dict(env, RECHAIN_LOCALEDIR=LOCALEDIR)
        r = rt.run([rt.RECHAIN] + list(args), cwd=self.dir, env=e)
        self.assert_no_crash(r)
        if expect is not None:
            self.assertEqual(r.rc, expect, r.describe())
        return r

    def test_main_help(self):
        r = self.run_in(PT, '--help', expect=0)
        for s in ('Uso: rechain COMANDO', 'Comandos:', 'Troca o arquivo de apoio de uma imagem',
                  'Códigos de saída:', 'em uso', 'cancelado'):
            self.assertIn(s, r.out, r.describe())
        self.assertNotIn('Usage:', r.out, r.describe())
        r = self.run_in(EN, '--help', expect=0)
        self.assertIn('Usage: rechain COMMAND', r.out, r.describe())
        self.assertIn('Exit status:', r.out, r.describe())

    def test_command_help(self):
        """Every option of every command has its description translated."""
        for cmd in COMMANDS:
            with self.subTest(command=cmd):
                en = self.run_in(EN, cmd, '--help', expect=0).out
                pt = self.run_in(PT, cmd, '--help', expect=0)
                self.assertIn('IMAGEM', pt.out, pt.describe())
                en_opts = {m.group(1): m.group(2) for m in
                           re.finditer(r'^\s+(?:-\w, )?(--[\w-]+)\S*\s+(.*)$', en, re.M)}
                pt_opts = {m.group(1): m.group(2) for m in
                           re.finditer(r'^\s+(?:-\w, )?(--[\w-]+)\S*\s+(.*)$', pt.out, re.M)}
                self.assertTrue(en_opts, en)
                self.assertEqual(set(en_opts), set(pt_opts), pt.describe())
                for opt, text in en_opts.items():
                    if opt == '--help':
                        continue   # GLib's own, translated by GLib if installed
                    self.assertNotEqual(text, pt_opts[opt],
                                        '%s %s: help not translated\n%s' % (cmd, opt, pt.describe()))

    def test_rebase_summary(self):
        r = self.run_in(PT, 'rebase', '--help', expect=0)
        self.assertIn('modo seguro', r.out, r.describe())
        self.assertIn('clones vinculados', r.out, r.describe())

    def test_usage_errors(self):
        cases = [
            (['frobnicate'], 'comando desconhecido'),
            (['info'], 'esperava exatamente uma IMAGEM'),
            (['rebase', '-u', 'img.qcow2'], 'o novo arquivo de apoio deve ser informado'),
            (['info', '--output=xml', 'img.qcow2'], '--output deve ser'),
            (['rebase', '-p', '-q', '-b', '', 'img.qcow2'], 'não podem ser usadas juntas'),
            (['map', '--progress=loud', 'img.qcow2'], '--progress deve ser'),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                r = self.run_in(PT, *args)
                self.assertIn(r.rc, (rt.EXIT_USAGE,), r.describe())
                self.assertIn(words, r.err, r.describe())
                self.assertTrue(r.err.startswith('rechain: '), r.describe())
                if r.rc == rt.EXIT_USAGE and args != ['info', '--output=xml', 'img.qcow2']:
                    self.assertIn('Tente “rechain', r.err, r.describe())
                en = self.run_in(EN, *args)
                self.assertEqual(en.rc, r.rc, en.describe())
                self.assertNotIn(words, en.err, en.describe())

    def test_human_output(self):
        r = self.run_in(PT, 'info', 'img.qcow2', expect=0)
        self.assertIn('arquivo de apoio: base.qcow2', r.out, r.describe())
        self.assertIn('tamanho virtual:', r.out, r.describe())
        r = self.run_in(PT, 'map', 'img.qcow2', expect=0)
        self.assertIn('Deslocamento', r.out, r.describe())
        r = self.run_in(PT, 'map', '-p', 'img.qcow2', expect=0)
        self.assertRegex(r.err, r'100[.,]0% de ', r.describe())

    def test_json_is_not_translated(self):
        en = self.run_in(EN, 'info', '--output=json', 'img.qcow2', expect=0)
        pt = self.run_in(PT, 'info', '--output=json', 'img.qcow2', expect=0)
        self.assertEqual(en.json(), pt.json())

    def test_catalogue_complete(self):
        """pt_BR.po is valid (msgfmt -c), has no fuzzy or untranslated
        message, and covers every message xgettext finds in POTFILES.in."""
        if not shutil.which('msgfmt'):
            self.skipTest('msgfmt not installed')
        p = subprocess.run(['msgfmt', '-c', '--statistics', '-o', os.devnull, PO],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertNotIn('fuzzy', p.stdout, p.stdout)
        self.assertNotIn('untranslated', p.stdout, p.stdout)
        if not shutil.which('xgettext') or not shutil.which('msgcmp'):
            self.skipTest('xgettext not installed')
        with open(os.path.join(SOURCE_ROOT, 'po', 'POTFILES.in')) as f:
            files = [l.strip() for l in f if l.strip() and not l.startswith('#')]
        tmp = tempfile.mkdtemp(prefix='rechain-pot-')
        try:
            pot = os.path.join(tmp, 'rechain.pot')
            # meson's "glib" preset
            p = subprocess.run(['xgettext', '--from-code=UTF-8', '--add-comments', '-k_', '-kN_',
                                '-kC_:1c,2', '-kNC_:1c,2', '-kg_dcgettext:2',
                                '-kg_dngettext:2,3', '-kg_dpgettext2:2c,3',
                                '--flag=N_:1:pass-c-format', '--flag=C_:2:pass-c-format',
                                '--flag=NC_:2:pass-c-format', '--flag=g_strdup_printf:1:c-format',
                                '--flag=g_set_error:4:c-format', '--flag=g_printerr:1:c-format',
                                '-o', pot] + files,
                               cwd=SOURCE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stdout)
            p = subprocess.run(['msgcmp', PO, pot], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            self.assertEqual(p.returncode, 0, 'messages missing from pt_BR.po:\n' + p.stdout)
        finally:
            shutil.rmtree(tmp)

    def test_potfiles_lists_every_tool_source(self):
        with open(os.path.join(SOURCE_ROOT, 'po', 'POTFILES.in')) as f:
            listed = {l.strip() for l in f if l.strip() and not l.startswith('#')}
        tool = os.path.join(SOURCE_ROOT, 'src', 'tool')
        for name in sorted(os.listdir(tool)):
            if name.endswith('.c'):
                with open(os.path.join(tool, name), encoding='utf-8') as f:
                    marked = re.search(r'\bN?_\s*\("', f.read())
                if marked:
                    self.assertIn('src/tool/' + name, listed,
                                  'src/tool/%s has translatable strings but is not in '
                                  'po/POTFILES.in' % name)


if __name__ == '__main__':
    main()
