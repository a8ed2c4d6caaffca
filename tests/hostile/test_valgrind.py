#!/usr/bin/python3
# hostile-valgrind: representative rechain commands under valgrind
# (memcheck), with zero reports required: invalid reads/writes, uses of
# uninitialised values, and definite leaks all fail the test
# (--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite).
#
# Commands: every subcommand (info human/json/--backing-chain, map
# human/json/-p, rebase, help, --help, --version) and the main paths of
# rebase: -u, safe (plain, --copy-mode=copy, -c, onto "" i.e. flatten,
# --dry-run, --output=json, linked clones), an image with unknown autoclear
# bits (regression: use-after-free in the header rewrite), and the error
# paths, which must fail cleanly: malformed inputs (bad L1 offset, truncated
# file, random header bytes, a backing loop) for info, map and rebase, an
# image a qemu-io holds (exit 4) for info, map, rebase -u and rebase, and
# an I/O error in the middle of a safe rebase (exit 5).  test_zz_coverage,
# run last, checks that the runs covered all of that.
# Fails when valgrind is not installed under RECHAIN_TEST_STRICT=1 (CI),
# skips otherwise; skipped when the binary is built with ASan.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import random
import shutil
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, KiB, run_rechain  # noqa: E402
from test_locking import Holder  # noqa: E402  (tests/tool, on the path by hostiletest)

VALGRIND = shutil.which('valgrind')
VG = [VALGRIND, '-q', '--error-exitcode=99', '--leak-check=full',
      '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
      '--track-origins=yes', '--num-callers=30'] if VALGRIND else []


def asan_build():
    try:
        return b'__asan_init' in open(ht.rt.RECHAIN, 'rb').read()
    except OSError:
        return False


class Valgrind(HostileCase):

    def setUp(self):
        super().setUp()
        if asan_build():
            self.skipTest('rechain is built with AddressSanitizer (valgrind cannot run it)')
        if not VALGRIND:
            ht.rt.skip_or_fail('valgrind not installed (apt-get install valgrind)')

    # What the runs must cover, as labels of classify().
    REQUIRED = {
        'info', 'info --output=json', 'info --backing-chain', 'map', 'map --output=json',
        'map -p', 'rebase', 'rebase -u', 'rebase safe', 'rebase --copy-mode=copy',
        'rebase -c', 'rebase flatten', 'rebase --dry-run', 'rebase --output=json',
        'rebase linked clones', 'help', '--help', '--version',
        'info malformed', 'map malformed', 'rebase malformed', 'rebase -u malformed',
        'info in use', 'map in use', 'rebase -u in use', 'rebase safe in use',
        'rebase I/O error',
    }
    covered = set()
    runs = 0

    @staticmethod
    def classify(args, expect, env):
        """Labels of what a run of rechain @args (expected exit @expect)
        exercises."""
        exp = expect if isinstance(expect, tuple) else (expect,)
        cmd = args[0]
        labels = {cmd}
        opts = [a for a in args[1:] if a.startswith('-')]
        for o in opts:
            if o in ('--output=json', '--backing-chain', '-p', '-u', '-c', '--dry-run',
                     '--copy-mode=copy'):
                labels.add('%s %s' % (cmd, o))
        if cmd == 'rebase' and '-b' in args:
            if '-u' not in opts:
                labels.add('rebase safe')
            i = args.index('-b')
            if args[i + 1] == '':
                labels.add('rebase flatten')
            images = [a for a in args[i + 2:] if not a.startswith('-') and a not in ('qcow2', 'raw')]
            if len(images) > 1:
                labels.add('rebase linked clones')
        base = 'rebase -u' if cmd == 'rebase' and '-u' in opts else \
            'rebase safe' if cmd == 'rebase' else cmd
        if 3 in exp and 0 not in exp:
            labels.add('%s malformed' % ('rebase -u' if base == 'rebase -u' else cmd))
        if exp == (4,):
            labels.add('%s in use' % base)
        if exp == (5,) and env and env.get('RECHAIN_FAULT'):
            labels.add('%s I/O error' % cmd)
        return labels

    def vg(self, args, expect, cwd=None, env=None):
        import subprocess
        e = dict(os.environ)
        e.update({'LC_ALL': 'C.UTF-8', 'G_SLICE': 'always-malloc', 'G_DEBUG': 'gc-friendly'})
        e.update(env or {})
        ht.rt.fault_env(e)
        p = subprocess.run(VG + [ht.rt.RECHAIN] + [str(a) for a in args], cwd=cwd or self.dir,
                           env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        r = ht.Proc(args, cwd or self.dir, p.returncode, p.stdout.decode('utf-8', 'replace'),
                    p.stderr.decode('utf-8', 'replace'))
        self.assertNotIn('==', ''.join(l for l in r.err.splitlines(True) if l.startswith('==')) or '',
                         'valgrind report for %s\n%s' % (args, r.describe()))
        self.assertNotEqual(r.rc, 99, 'valgrind errors for %s\n%s' % (args, r.describe()))
        self.assertIn(r.rc, expect if isinstance(expect, tuple) else (expect,),
                      'exit status for %s\n%s' % (args, r.describe()))
        Valgrind.runs += 1
        Valgrind.covered |= self.classify([str(a) for a in args], expect, env)
        return r

    def test_commands(self):
        self.make_scenario()
        for args in (['info', 'top.qcow2'], ['info', '--output=json', '--backing-chain', 'top.qcow2'],
                     ['map', 'top.qcow2'], ['map', '--output=json', 'top.qcow2'],
                     ['map', '-p', 'top.qcow2'], ['--help'], ['--version'],
                     ['--version', '--output=json'], ['help', 'rebase'], ['rebase', '--help']):
            self.vg(args, 0)
        b = self.before('top.qcow2')
        shutil.copy2(self.path('top.qcow2'), self.path('top-copy.qcow2'))
        self.vg(['rebase', '-u', '-b', 'base.qcow2', '-F', 'qcow2', 'top-copy.qcow2'], 0)
        self.vg(['rebase', '--dry-run', '--output=json', '-b', 'new.qcow2', '-F', 'qcow2',
                 'top.qcow2'], 0)
        self.vg(['rebase', '--output=json', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 0)
        self.assert_content(b, 'after the safe rebase')
        self.vg(['rebase', '-c', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'], 0)
        self.vg(['rebase', '--copy-mode=copy', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 0)
        self.vg(['rebase', '-b', '', 'top.qcow2'], 0)
        self.assert_content(b, 'after the flatten')
        self.assert_check('top.qcow2', allow_leaks=True)

    def test_linked_clones(self):
        self.make_scenario()
        self.img('clone.qcow2', self.SIZE, opts='cluster_size=64k', backing='base.qcow2',
                 bfmt='qcow2')
        self.io('clone.qcow2', 'write -P 7 1M 256k', 'write -z 3M 64k')
        b1, b2 = self.before('top.qcow2'), self.before('clone.qcow2')
        self.vg(['rebase', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2', 'clone.qcow2'], 0)
        for b in (b1, b2):
            self.assert_content(b, 'linked clones')
            self.assert_backing(b.img, 'new.qcow2', 'qcow2')

    def test_in_use(self):
        """A qemu-io holds the image open for writing: exit 4, no report."""
        self.make_scenario()
        h = Holder('top.qcow2', self.dir)
        try:
            self.vg(['info', 'top.qcow2'], 4)
            self.vg(['map', 'top.qcow2'], 4)
            self.vg(['rebase', '-u', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 4)
            self.vg(['rebase', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 4)
            self.vg(['info', '-U', 'top.qcow2'], 0)
        finally:
            h.close()

    def test_io_error(self):
        """The third write of a safe rebase fails: exit 5, nothing leaked on
        the way out."""
        self.make_scenario()
        b = self.before('top.qcow2')
        self.vg(['rebase', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 5,
                env={'RECHAIN_FAULT': 'write:3:EIO'})
        self.assert_check('top.qcow2', allow_leaks=True)
        self.assert_content(b, 'after the I/O error')

    def test_zz_coverage(self):
        """Runs last (by name): the runs of the tests above covered every
        subcommand and every path in REQUIRED."""
        missing = sorted(self.REQUIRED - Valgrind.covered)
        sys.stdout.write('# %d runs under valgrind, covering: %s\n'
                         % (Valgrind.runs, ', '.join(sorted(Valgrind.covered))))
        self.assertEqual(missing, [], 'not run under valgrind (a test above failed or '
                         'was skipped, or a case was dropped)')

    def test_unknown_autoclear(self):
        self.make_scenario()
        ht.rt.patch_field(self.path('top.qcow2'), 'autoclear_features', 1 << 5)
        b = self.before('top.qcow2')
        self.vg(['rebase', '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2'], 0)
        self.assert_content(b, 'unknown autoclear bits')
        self.assert_backing('top.qcow2', 'new.qcow2', 'qcow2')

    def test_malformed(self):
        self.img('good.qcow2', 1 * MiB, opts='cluster_size=4k')
        self.io('good.qcow2', 'write -P 1 0 64k')
        cases = {}
        p = self.path('badl1.qcow2')
        shutil.copy2(self.path('good.qcow2'), p)
        ht.rt.patch_field(p, 'l1_table_offset', 0x123457)
        cases['badl1.qcow2'] = 3
        p = self.path('trunc.qcow2')
        shutil.copy2(self.path('good.qcow2'), p)
        os.truncate(p, 6000)
        cases['trunc.qcow2'] = 3
        rnd = random.Random(7)
        for k in range(2):
            p = self.path('rand%d.qcow2' % k)
            data = bytearray(open(self.path('good.qcow2'), 'rb').read())
            for _ in range(12):
                i = rnd.randrange(0, 200)
                data[i] = rnd.randrange(256)
            open(p, 'wb').write(data)
            cases['rand%d.qcow2' % k] = (0, 3)
        self.img('loopa.qcow2', 1 * MiB)
        self.img('loopb.qcow2', 1 * MiB, backing='loopa.qcow2', bfmt='qcow2')
        ht.qemu_img('rebase', '-u', '-b', 'loopb.qcow2', '-F', 'qcow2', 'loopa.qcow2', cwd=self.dir)
        cases['loopb.qcow2'] = 3
        for name, exp in cases.items():
            self.vg(['info', '--backing-chain', name], exp)
            self.vg(['map', name], exp)
            self.vg(['rebase', '-b', 'good.qcow2', '-F', 'qcow2', name], exp if exp != 0 else (0, 3))
            # unsafe mode does not open the backing chain: a loop is no error
            self.vg(['rebase', '-u', '-b', '', name], 0 if name.startswith('loop') else exp)


if __name__ == '__main__':
    ht.main()
