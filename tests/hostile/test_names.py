#!/usr/bin/python3
# hostile-names: backing names an attacker controls.
#
#   - json: and protocol pseudo-filenames, given with -b or recorded in a
#     crafted header, are refused before anything is opened or written;
#   - a header that records a raw backing file is never probed: a raw file
#     whose bytes are a qcow2 image (pointing at a secret file) reads as
#     those raw bytes, as QEMU reads it;
#   - --backing-root DIR (for pool scripts): every file of the chain, after
#     resolving symlinks, must lie under DIR, else exit 3 naming the file.
#     Skipped until `rechain rebase --help` lists the option.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, KiB, run_rechain  # noqa: E402

PSEUDO = ['json:{"file.driver":"file","file.filename":"base.qcow2"}',
          'nbd://localhost:10809/x', 'nbd:localhost:10809', 'http://example.com/base.qcow2',
          'https://example.com/b.qcow2', 'ssh://host/b.qcow2',
          'iscsi://h/iqn/1', 'rbd:pool/img', 'gluster://h/v/b']
# ("file:NAME" is QEMU's local file protocol: accepted as the local file NAME)
# -b json: naming a local file is how qemu-img takes the new backing's key
# (issue 15): accepted, and the plain file name is what the header gets. A
# json: name of any other protocol is refused like the names above.
LOCAL_JSON = PSEUDO[0]
PSEUDO_B = PSEUDO[1:] + ['json:{"file.driver":"nbd","file.host":"localhost"}',
                         'json:{"driver":"qcow2","file":{"driver":"nbd","host":"localhost"}}']


def has_backing_root():
    if not ht.rt.have_exe(ht.rt.RECHAIN):
        return False
    r = subprocess.run([ht.rt.RECHAIN, 'rebase', '--help'], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return b'--backing-root' in r.stdout


class Names(HostileCase):

    def test_pseudo_names_with_b(self):
        self.make_scenario()
        before = ht.rt.sha256(self.path('top.qcow2'))
        for name in PSEUDO_B:
            for mode in (['-u'], []):
                r = run_rechain(['rebase'] + mode + ['-b', name, '-F', 'qcow2', 'top.qcow2'], self.dir)
                self.assert_no_crash_markers(r, name)
                self.assertIn(r.rc, (2, 3), '%s %s accepted\n%s' % (mode, name, r.describe()))
        self.assertEqual(ht.rt.sha256(self.path('top.qcow2')), before, 'image changed')
        r = run_rechain(['rebase', '-u', '-b', LOCAL_JSON, '-F', 'qcow2', 'top.qcow2'], self.dir)
        self.assertEqual(r.rc, 0, r.describe())
        info = ht.qemu_img('info', '--output=json', 'top.qcow2', cwd=self.dir).json()
        self.assertEqual(info['backing-filename'], 'base.qcow2')

    def test_pseudo_names_in_header(self):
        self.make_scenario()
        for name in PSEUDO:
            ht.qemu_img('rebase', '-u', '-b', name, '-F', 'qcow2', 'top.qcow2', cwd=self.dir)
            before = ht.rt.sha256(self.path('top.qcow2'))
            for args in (['info', '--backing-chain', 'top.qcow2'], ['map', 'top.qcow2'],
                         self.rebase_args()):
                r = run_rechain(args, self.dir)
                self.assert_no_crash_markers(r, name)
                self.assertEqual(r.rc, 3, '%s: %s\n%s' % (name, args, r.describe()))
                self.assertIn('top.qcow2', r.err, r.describe())
            self.assertEqual(ht.rt.sha256(self.path('top.qcow2')), before, 'image changed')
            # info without the chain shows the name, opening nothing
            r = run_rechain(['info', 'top.qcow2'], self.dir)
            self.assertEqual(r.rc, 0, r.describe())

    def test_raw_never_probed(self):
        d = self.dir
        with open(self.path('secret'), 'wb') as f:
            f.write(b'SECRET' * 1000)
        # a qcow2 image whose backing is the secret file, stored as the
        # *content* of a raw disk
        self.img('evil.qcow2', 1 * MiB, backing='secret', bfmt='raw')
        data = open(self.path('evil.qcow2'), 'rb').read()
        with open(self.path('disk.raw'), 'wb') as f:
            f.write(data)
            f.truncate(1 * MiB)
        self.img('top.qcow2', 1 * MiB, backing='disk.raw', bfmt='raw')
        self.io('top.qcow2', 'write -P 7 512k 64k')
        b = self.before('top.qcow2')
        r = run_rechain(['info', '--backing-chain', '--output=json', 'top.qcow2'], d)
        self.assertEqual(r.rc, 0, r.describe())
        infos = json.loads(r.out)
        self.assertEqual([i['format'] for i in infos], ['qcow2', 'raw'], r.out)
        self.assertNotIn('secret', r.out)
        r = run_rechain(['map', '--output=json', 'top.qcow2'], d)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertLessEqual(max(e['depth'] for e in json.loads(r.out)), 1, r.out)
        # flatten: the raw bytes (a qcow2 header) are copied as data
        r = run_rechain(['rebase', '-b', '', 'top.qcow2'], d)
        self.assertEqual(r.rc, 0, r.describe())
        self.assert_backing('top.qcow2', None, None)
        self.assert_content(b, 'flattened over a raw disk holding a qcow2 image')
        ref = self.path('ref.raw')
        ht.jt.dump_raw('top.qcow2', ref, d)
        self.assertEqual(open(ref, 'rb').read(len(data)), data)

    # ---- --backing-root ----

    def root_setup(self):
        if not has_backing_root():
            self.skipTest('rechain has no --backing-root option yet (needed feature)')
        root = self.path('pool')
        out = self.path('outside')
        os.mkdir(root)
        os.mkdir(out)
        self.img('base.qcow2', 1 * MiB, cwd=out)
        self.io('base.qcow2', 'write -P 1 0 1M', cwd=out)
        self.img('base.qcow2', 1 * MiB, cwd=root)
        self.io('base.qcow2', 'write -P 1 0 1M', cwd=root)
        self.img('new.qcow2', 1 * MiB, cwd=root)
        return root, out

    def assert_refused(self, r, name, what):
        self.assertEqual(r.rc, 3, '%s: expected exit 3\n%s' % (what, r.describe()))
        self.assertIn(name, r.err, '%s: error does not name %s\n%s' % (what, name, r.describe()))

    def test_backing_root_inside(self):
        root, out = self.root_setup()
        self.img('top.qcow2', 1 * MiB, backing='base.qcow2', bfmt='qcow2', cwd=root)
        os.symlink('base.qcow2', os.path.join(root, 'link.qcow2'))
        self.img('top2.qcow2', 1 * MiB, backing='link.qcow2', bfmt='qcow2', cwd=root)
        for img in ('top.qcow2', 'top2.qcow2'):
            for args in (['info', '--backing-root', root, '--backing-chain', img],
                         ['map', '--backing-root', root, img],
                         ['rebase', '--backing-root', root, '-b', 'new.qcow2', '-F', 'qcow2', img]):
                r = run_rechain(args, root)
                self.assertEqual(r.rc, 0, r.describe())

    def test_backing_root_escapes(self):
        root, out = self.root_setup()
        os.symlink(os.path.join(out, 'base.qcow2'), os.path.join(root, 'evil-link.qcow2'))
        os.symlink(out, os.path.join(root, 'evil-dir'))
        cases = {
            'evil-link.qcow2': 'evil-link.qcow2',
            'evil-dir/base.qcow2': 'base.qcow2',
            '../outside/base.qcow2': 'base.qcow2',
            os.path.join(out, 'base.qcow2'): 'base.qcow2',
        }
        for backing, named in cases.items():
            self.img('top.qcow2', 1 * MiB, backing=backing, bfmt='qcow2', cwd=root)
            before = ht.rt.sha256(os.path.join(root, 'top.qcow2'))
            for args in (['info', '--backing-root', root, '--backing-chain', 'top.qcow2'],
                         ['map', '--backing-root', root, 'top.qcow2'],
                         ['rebase', '--backing-root', root, '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2']):
                r = run_rechain(args, root)
                self.assert_no_crash_markers(r, backing)
                self.assert_refused(r, named, 'backing %s: %s' % (backing, args[0]))
            self.assertEqual(ht.rt.sha256(os.path.join(root, 'top.qcow2')), before)
            os.unlink(os.path.join(root, 'top.qcow2'))

    def test_backing_root_new_backing_outside(self):
        root, out = self.root_setup()
        self.img('top.qcow2', 1 * MiB, backing='base.qcow2', bfmt='qcow2', cwd=root)
        os.symlink(os.path.join(out, 'base.qcow2'), os.path.join(root, 'evil-new.qcow2'))
        for new in ('evil-new.qcow2', '../outside/base.qcow2'):
            for mode in ([], ['-u']):
                r = run_rechain(['rebase', '--backing-root', root] + mode +
                                ['-b', new, '-F', 'qcow2', 'top.qcow2'], root)
                if mode and r.rc == 0:
                    self.fail('unsafe rebase wrote a backing name outside the root: ' + new)
                self.assert_refused(r, os.path.basename(new), 'new backing ' + new)

    def test_backing_root_image_outside(self):
        root, out = self.root_setup()
        self.img('top.qcow2', 1 * MiB, backing='base.qcow2', bfmt='qcow2', cwd=out)
        r = run_rechain(['info', '--backing-root', root, os.path.join(out, 'top.qcow2')], root)
        self.assert_refused(r, 'top.qcow2', 'image outside the root')


if __name__ == '__main__':
    ht.main()
