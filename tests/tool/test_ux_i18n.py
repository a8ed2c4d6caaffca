#!/usr/bin/python3
# tool-ux-i18n: the command line speaks Brazilian Portuguese with
# LANGUAGE=pt_BR (help, usage errors, errors found by the tool and by the
# library under it, errors of the libvirt plugin, human output), even
# with no LANG or LC_ALL at all, English otherwise; the pt_BR catalogue is
# complete and valid.
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

# Every directory whose sources may hold translatable messages.
SOURCE_DIRS = ('src/tool', 'src/rechain', 'src/format', 'src/io', 'src/chain', 'src/job',
               'plugin/libvirt')


def plugin_module_dir():
    """The build tree's libvirt module: $RECHAIN_MODULE_DIR (meson devenv),
    else beside the tool (BUILD/src/tool/rechain -> BUILD/plugin/libvirt)."""
    for d in os.environ.get('RECHAIN_MODULE_DIR', '').split(':') + [
            os.path.join(os.path.dirname(rt.RECHAIN or '.'), '..', '..', 'plugin', 'libvirt')]:
        if d and os.path.isdir(d) and any(n.endswith('.so') for n in os.listdir(d)):
            return os.path.abspath(d)
    return None


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

    def assert_translated(self, args, pt_words, en_words, expect):
        """`rechain ARGS` fails with @expect; in pt_BR stderr says
        @pt_words and not @en_words, in English the reverse."""
        r = self.run_in(PT, *args, expect=expect)
        self.assertTrue(r.err.startswith('rechain: '), r.describe())
        for w in pt_words:
            self.assertIn(w, r.err, r.describe())
        for w in en_words:
            self.assertNotIn(w, r.err, r.describe())
        en = self.run_in(EN, *args, expect=expect)
        for w in en_words:
            self.assertIn(w, en.err, en.describe())
        for w in pt_words:
            self.assertNotIn(w, en.err, en.describe())

    def test_library_errors(self):
        """Errors found by the library (I/O, format parser, backing chain)
        are translated, not only those of the tool."""
        # a truncated header and a bad magic, read as qcow2
        with open(self.path('img.qcow2'), 'rb') as f:
            header = f.read(50)
        with open(self.path('short.qcow2'), 'wb') as f:
            f.write(header)
        with open(self.path('magic.qcow2'), 'wb') as f:
            f.write(b'\0' * 65536)
        # a backing loop: b -> a -> b
        qemu_img('create', '-q', '-f', 'qcow2', 'b.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'b.qcow2', '-F', 'qcow2', 'a.qcow2',
                 cwd=self.dir)
        qemu_img('rebase', '-u', '-b', 'a.qcow2', '-F', 'qcow2', 'b.qcow2', cwd=self.dir)
        cases = [
            (['info', 'missing.qcow2'],
             ['não foi possível abrir'], ['could not open'], rt.EXIT_INVALID),
            (['info', '-f', 'qcow2', 'short.qcow2'],
             ['o arquivo é curto demais para um cabeçalho qcow2 (50 bytes'],
             ['file is too short'], rt.EXIT_INVALID),
            (['map', '-f', 'qcow2', 'magic.qcow2'],
             ['o número mágico 0x00000000 não é o do qcow2'], ['is not the qcow2 magic'],
             rt.EXIT_INVALID),
            (['info', '--backing-chain', 'a.qcow2'],
             ['a cadeia de apoio forma um ciclo'], ['loops'], rt.EXIT_INVALID),
            (['rebase', '-b', '', 'a.qcow2'],
             ['a cadeia de apoio forma um ciclo'], ['loops'], rt.EXIT_INVALID),
            (['rebase', '-t', 'bogus', '-b', '', 'img.qcow2'],
             ['Modo de cache inválido'], ['Invalid cache mode'], rt.EXIT_USAGE),
        ]
        for args, pt_words, en_words, expect in cases:
            with self.subTest(args=args):
                self.assert_translated(args, pt_words, en_words, expect)

    def test_locked_image(self):
        """A rebase refused because another process holds the image's lock
        says so in Portuguese."""
        if not rt.have_exe(shutil.which(rt.QEMU_IO) or rt.QEMU_IO):
            self.skipTest('qemu-io not installed')
        from test_locking import Holder
        h = Holder('img.qcow2', self.dir)
        try:
            for args in (['rebase', '-u', '-b', '', 'img.qcow2'], ['rebase', '-b', '', 'img.qcow2']):
                with self.subTest(args=args):
                    self.assert_translated(
                        args, ['Falha ao obter o bloqueio', 'outro processo'],
                        ['Failed to get', 'another process'], rt.EXIT_IN_USE)
        finally:
            h.close()

    def test_plugin_errors(self):
        """The libvirt module's errors are translated (through libvirt's
        test driver, which needs no daemon)."""
        module_dir = plugin_module_dir()
        if module_dir is None:
            self.skipTest('libvirt module not built')
        env_pt = dict(PT, RECHAIN_MODULE_DIR=module_dir)
        env_en = dict(EN, RECHAIN_MODULE_DIR=module_dir)
        args = ['info', '--connect', 'test:///default', '--pool', 'no-such-pool', 'vol']
        en = self.run_in(env_en, *args)
        if 'no storage pool' not in en.err:
            self.skipTest('libvirt test driver unavailable: ' + en.describe())
        pt = self.run_in(env_pt, *args, expect=en.rc)
        self.assertIn('nenhum pool de armazenamento “no-such-pool”', pt.err, pt.describe())
        self.assertNotIn('no storage pool "', pt.err, pt.describe())

    def run_bare(self, *args, **env):
        """Runs the tool in an environment with nothing but PATH, the
        translations and @env (like env -i): no LANG, no LC_*."""
        e = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'RECHAIN_LOCALEDIR': LOCALEDIR}
        e.update(env)
        p = subprocess.run([rt.RECHAIN] + list(args), cwd=self.dir, env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        r = rt.Result([rt.RECHAIN] + list(args), self.dir, p.returncode,
                      p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace'))
        self.assert_no_crash(r)
        return r

    def test_language_without_locale(self):
        """LANGUAGE=pt_BR alone (no LANG, no LC_ALL: the "C" locale, where
        gettext ignores LANGUAGE) still gives Portuguese, as rechain(1) and
        the README promise; an explicit LC_ALL=C or LANG=C keeps English."""
        r = self.run_bare('--help', LANGUAGE='pt_BR')
        self.assertEqual(r.rc, 0, r.describe())
        self.assertIn('Uso: rechain COMANDO', r.out, r.describe())
        self.assertIn('Códigos de saída:', r.out, r.describe())
        r = self.run_bare('info', '--help', LANGUAGE='pt_BR')
        self.assertIn('IMAGEM', r.out, r.describe())
        r = self.run_bare('info', 'missing.qcow2', LANGUAGE='pt_BR')
        self.assertEqual(r.rc, rt.EXIT_INVALID, r.describe())
        self.assertIn('não foi possível abrir', r.err, r.describe())
        r = self.run_bare('--help')
        self.assertIn('Usage: rechain COMMAND', r.out, r.describe())
        for explicit in ({'LC_ALL': 'C'}, {'LANG': 'C'}, {'LC_MESSAGES': 'POSIX'}):
            with self.subTest(env=explicit):
                r = self.run_bare('--help', LANGUAGE='pt_BR', **explicit)
                self.assertIn('Usage: rechain COMMAND', r.out, r.describe())

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

    def test_potfiles_lists_every_marked_source(self):
        """Every C file with a message marked for translation (the tool, the
        library, the plugin) is in POTFILES.in, so that the catalogue check
        above covers it."""
        with open(os.path.join(SOURCE_ROOT, 'po', 'POTFILES.in')) as f:
            listed = {l.strip() for l in f if l.strip() and not l.startswith('#')}
        for d in SOURCE_DIRS:
            for name in sorted(os.listdir(os.path.join(SOURCE_ROOT, d))):
                if name.endswith('.c'):
                    with open(os.path.join(SOURCE_ROOT, d, name), encoding='utf-8') as f:
                        marked = re.search(r'\bN?_\s*\("', f.read())
                    if marked:
                        self.assertIn(d + '/' + name, listed,
                                      '%s/%s has translatable strings but is not in '
                                      'po/POTFILES.in' % (d, name))
        for path in listed:
            self.assertTrue(os.path.exists(os.path.join(SOURCE_ROOT, path)),
                            'po/POTFILES.in lists %s, which does not exist' % path)

if __name__ == '__main__':
    main()
