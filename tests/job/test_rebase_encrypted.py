#!/usr/bin/python3
# job-rebase-encrypted: safe rebase and flatten of LUKS-encrypted qcow2
# images (issue 15), every layer with its own key or one shared key, with
# qemu-img as the judge.
#
# Each result is checked three ways, given the secrets: `qemu-img compare`
# of the old view (a byte copy of the overlay taken before, over the old
# chain) with the new view, `qemu-img check` of the overlay, and the
# backing name `qemu-img info` reads. Refusals (missing key, wrong key,
# -c, copy mode reflink) leave the image byte for byte as it was, and the
# dry run of an encrypted flatten predicts the real run's numbers.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import shutil
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, '..', 'tool'))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, run, sha256  # noqa: E402

# Distinctive, so that an echo of them anywhere is found.
SECRETS = {'k0': 'Lm4-enc-base-passphrase', 'k1': 'Qe8-enc-mid-passphrase',
           'k2': 'Tj2-enc-top-passphrase', 'k3': 'Vn5-enc-newbase-passphrase'}

CIPHERS = {
    'aes-256-xts': '',
    'aes-128-xts': ',encrypt.cipher-alg=aes-128',
    'aes-256-cbc-essiv': (',encrypt.cipher-alg=aes-256,encrypt.cipher-mode=cbc,'
                          'encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256'),
    'serpent-256-xts': ',encrypt.cipher-alg=serpent-256',
    'twofish-256-cbc-plain64': (',encrypt.cipher-alg=twofish-256,encrypt.cipher-mode=cbc,'
                                'encrypt.ivgen-alg=plain64'),
}

SIZE = '4M'


def objects():
    out = []
    for sid, p in sorted(SECRETS.items()):
        out += ['--object', 'secret,id=%s,data=%s' % (sid, p)]
    return out


def view_opts(chain):
    """--image-opts for @chain, a list of (file, secret id or None) from
    the top down: the keys of the backing files as backing.(backing.)..."""
    s = 'driver=qcow2,file.filename=%s' % chain[0][0]
    for depth, (_, sid) in enumerate(chain):
        if sid:
            s += ',%sencrypt.key-secret=%s' % ('backing.' * depth, sid)
    return s


class EncryptedRebaseTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        for sid, p in SECRETS.items():
            with open(self.path(sid + '.key'), 'w') as f:
                f.write(p)

    # ---- fixtures

    def make(self, name, sid=None, backing=None, cipher='aes-256-xts', size=SIZE, extra=''):
        """A qcow2 image, LUKS-encrypted with secret @sid if given."""
        argv = [rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2'] + objects()
        if sid:
            argv += ['-o', 'encrypt.format=luks,encrypt.key-secret=%s,encrypt.iter-time=10%s%s'
                     % (sid, CIPHERS[cipher], extra)]
        if backing:
            argv += ['-u', '-b', backing, '-F', 'qcow2']
        argv += [name, size]
        # qemu-img times its key derivation and, on a loaded machine, may
        # fail with "Unable to get accurate CPU usage": tried a few times
        for _ in range(60):
            r = run(argv, cwd=self.dir)
            if r.rc == 0:
                return
        self.fail('qemu-img could not make %s\n%s' % (name, r.describe()))

    def write(self, chain, *cmds):
        argv = [rt.QEMU_IO] + objects() + ['--image-opts', view_opts(chain)]
        for c in cmds:
            argv += ['-c', c]
        rt.must(argv, cwd=self.dir)

    def build(self, layers, cipher='aes-256-xts'):
        """@layers from the bottom up, as (name, secret id or None, cipher
        or None); each writes its own pattern over part of the one below
        and zeroes a piece. Returns the chain, top first."""
        chain = []
        for i, (name, sid, c) in enumerate(layers):
            self.make(name, sid, backing=chain[0][0] if chain else None, cipher=c or cipher)
            chain.insert(0, (name, sid))
            self.write(chain, 'write -P %d %dk 192k' % (0x11 * (i + 1), 256 * i + 64),
                       'write -P %d %dk 8k' % (0x40 + i, 2048 + 512 * i + 4),
                       'write -z %dk 64k' % (3072 + 64 * i))
        return chain

    def keys(self, chain):
        out = []
        for name, sid in chain:
            if sid:
                out += ['--key-file', '%s=%s.key' % (name, sid)]
        return out

    # ---- judges

    def qemu(self, *args):
        return run([rt.QEMU_IMG, args[0]] + objects() + list(args[1:]), cwd=self.dir,
                   timeout=300)

    def assert_same_view(self, old_chain, new_chain, what=''):
        r = self.qemu('compare', '--image-opts', view_opts(old_chain), view_opts(new_chain))
        self.assertEqual(r.rc, 0, '%s: old and new view differ\n%s' % (what, r.describe()))

    def assert_qemu_ok(self, chain, backing):
        top, sid = chain[0]
        r = self.qemu('check', '--image-opts', view_opts(chain))
        self.assertEqual(r.rc, 0, r.describe())
        info = json.loads(self.qemu('info', '--output=json', '--image-opts',
                                    view_opts(chain[:1])).out)
        self.assertEqual(info.get('backing-filename'), backing)
        self.assertEqual(bool(info.get('encrypted')), sid is not None)

    def assert_no_secret(self, r):
        for p in SECRETS.values():
            self.assertNotIn(p, r.out, r.describe())
            self.assertNotIn(p, r.err, r.describe())

    def snapshot(self, chain):
        """A byte copy of the overlay: the old view, over the old chain."""
        shutil.copy(self.path(chain[0][0]), self.path('orig-' + chain[0][0]))
        return [('orig-' + chain[0][0], chain[0][1])] + chain[1:]

    def flatten_judged(self, chain, what='', output_json=False):
        """Flattens the top of @chain (-b '') with every key, judges the
        result; returns rechain's Result."""
        old = self.snapshot(chain)
        r = self.rechain('rebase', *(['--output=json'] if output_json else []),
                         *self.keys(chain), '-b', '', chain[0][0], expect=0)
        self.assert_no_secret(r)
        self.assert_same_view(old, chain[:1], what)
        self.assert_qemu_ok(chain[:1], None)
        return r

    # ---- what works

    def test_flatten_chains(self):
        """Chains 1-3 deep, a key per layer or one shared key, each cipher
        at least once, flattened (-b '')."""
        cases = [
            ('one-layer', [('a', 'k0', None)]),
            ('two-keys', [('a', 'k0', None), ('b', 'k1', None)]),
            ('three-keys', [('a', 'k0', 'aes-128-xts'), ('b', 'k1', 'aes-256-cbc-essiv'),
                            ('c', 'k2', 'serpent-256-xts')]),
            ('three-shared-key', [('a', 'k1', 'twofish-256-cbc-plain64'), ('b', 'k1', None),
                                  ('c', 'k1', 'aes-256-cbc-essiv')]),
            ('two-shared-key', [('a', 'k2', 'serpent-256-xts'), ('b', 'k2', 'aes-128-xts')]),
        ]
        for what, layers in cases:
            with self.subTest(case=what):
                layers = [('%s-%s.qcow2' % (what, n), sid, c) for n, sid, c in layers]
                self.flatten_judged(self.build(layers), what)

    def test_rebase_onto_encrypted_base_with_another_key(self):
        chain = self.build([('base.qcow2', 'k0', None), ('top.qcow2', 'k1', 'aes-128-xts')])
        # the new base: another key and cipher, part of the old base's data
        self.make('new.qcow2', 'k3', cipher='aes-256-cbc-essiv')
        self.write([('new.qcow2', 'k3')], 'write -P 17 64k 64k', 'write -P 99 1M 64k')
        old = self.snapshot(chain)
        r = self.rechain('rebase', *self.keys(chain), '--key-file', 'new.qcow2=k3.key',
                         '-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2', expect=0)
        self.assert_no_secret(r)
        new = [('top.qcow2', 'k1'), ('new.qcow2', 'k3')]
        self.assert_same_view(old, new)
        self.assert_qemu_ok(new, 'new.qcow2')

    def test_rebase_onto_own_base_needs_no_base_key(self):
        """base <- mid <- top rebased onto base (the new chain is the old
        one's lower part, as when a snapshot layer is dropped): base is
        never read, so it is not unlocked and needs no key. A wrong key for
        it is not even tried. mid's data is copied without comparing."""
        chain = self.build([('base.qcow2', 'k0', None), ('mid.qcow2', 'k1', 'aes-128-xts'),
                            ('top.qcow2', 'k2', 'aes-256-cbc-essiv')])
        old = self.snapshot(chain)
        keys = ['--key-file', 'top.qcow2=k2.key', '--key-file', 'mid.qcow2=k1.key',
                '--key-file', 'base.qcow2=k3.key']
        rep, r = self.rechain_json('rebase', '--output=json', *keys, '-b', 'base.qcow2',
                                   '-F', 'qcow2', 'top.qcow2')
        self.assert_no_secret(r)
        new = [('top.qcow2', 'k2'), ('base.qcow2', 'k0')]
        self.assert_same_view(old, new)
        self.assert_qemu_ok(new, 'base.qcow2')
        # nothing read from base: only mid's data was read, to be copied
        self.assertEqual(rep['bytes-compared'], 0, r.describe())
        self.assertGreater(rep['images'][0]['bytes-written'], 0, r.describe())
        # the same for a plain overlay, with no key for base at all
        chain = self.build([('pbase.qcow2', 'k0', None), ('pmid.qcow2', 'k1', None),
                            ('ptop.qcow2', None, None)])
        old = self.snapshot(chain)
        r = self.rechain('rebase', '--key-file', 'pmid.qcow2=k1.key', '-b', 'pbase.qcow2',
                         '-F', 'qcow2', 'ptop.qcow2', expect=0)
        new = [('ptop.qcow2', None), ('pbase.qcow2', 'k0')]
        self.assert_same_view(old, new)
        self.assert_qemu_ok(new, 'pbase.qcow2')

    def test_plain_overlay_over_encrypted_backing_warns(self):
        chain = self.build([('base.qcow2', 'k0', None), ('mid.qcow2', 'k1', None),
                            ('top.qcow2', None, None)])
        # refused for a missing key: nothing is written, so no warning that
        # decrypted data would be, on stderr or in the JSON report
        r = self.rechain('rebase', '--output=json', '--key-file', 'base.qcow2=k0.key',
                         '-b', '', 'top.qcow2', expect=3)
        self.assert_error_names(r, 'mid.qcow2', 'no key was given')
        self.assertNotIn('unencrypted', r.err, r.describe())
        if r.out.strip():
            self.assertEqual(r.json()['warnings'], [], r.describe())
        r = self.flatten_judged(chain, output_json=True)
        self.assertRegex(r.err, r'rechain: warning: .*top\.qcow2.*unencrypted', r.describe())
        # the JSON report has it too, as the same text
        warnings = r.json()['warnings']
        self.assertEqual(len(warnings), 1, r.describe())
        self.assertRegex(warnings[0], r'top\.qcow2 is not encrypted.*unencrypted')
        self.assertIn('warning: ' + warnings[0], r.err)

    def test_encrypted_overlay_over_plain_backings(self):
        chain = self.build([('base.qcow2', None, None), ('mid.qcow2', None, None),
                            ('top.qcow2', 'k2', 'serpent-256-xts')])
        self.make('new.qcow2')
        self.write([('new.qcow2', None)], 'write -P 17 64k 64k')
        old = self.snapshot(chain)
        # every copy mode but reflink ends in buffers: nothing encrypted is
        # copied as it is
        rep, r = self.rechain_json('rebase', '--output=json', '--copy-mode=auto',
                                   *self.keys(chain), '-b', 'new.qcow2', '-F', 'qcow2',
                                   'top.qcow2')
        entry = rep['images'][0]
        self.assertEqual(entry['bytes-shared'] + entry['bytes-copied-in-kernel'], 0, r.describe())
        self.assertGreater(entry['bytes-copied-buffered'], 0, r.describe())
        new = [('top.qcow2', 'k2'), ('new.qcow2', None)]
        self.assert_same_view(old, new)
        self.assert_qemu_ok(new, 'new.qcow2')
        self.flatten_judged(new)

    def test_extended_l2_cluster_shared_with_snapshot(self):
        """Subclusters of an encrypted overlay, in a cluster an internal
        snapshot shares: the writer copies the cluster (read back through
        the decrypting I/O, encrypted again at its new place). The cluster
        at 128k keeps its snapshot share and lies over the base's data."""
        chain = self.build([('base.qcow2', 'k0', None)])
        self.make('top.qcow2', 'k1', backing='base.qcow2', extra=',extended_l2=on')
        chain.insert(0, ('top.qcow2', 'k1'))
        self.write(chain, 'write -P 34 4k 4k', 'write -P 35 128k 2k')
        r = self.qemu('snapshot', '--image-opts', view_opts(chain), '-c', 'snap1')
        self.assertEqual(r.rc, 0, r.describe())
        self.write(chain, 'write -P 36 8k 4k')
        self.flatten_judged(chain)

    def test_dry_run_predicts_encrypted_flatten(self):
        chain = self.build([('base.qcow2', 'k0', None), ('top.qcow2', 'k1', None)])
        hashes = rt.tree_hashes(self.dir)
        dry, r = self.rechain_json('rebase', '--output=json', '--dry-run', *self.keys(chain),
                                   '-b', '', 'top.qcow2')
        self.assertEqual(rt.tree_hashes(self.dir), hashes, 'the dry run changed files')
        done, r2 = self.rechain_json('rebase', '--output=json', *self.keys(chain), '-b', '',
                                     'top.qcow2')
        fields = ('bytes-written', 'bytes-zeroed', 'bytes-shared', 'bytes-copied-in-kernel',
                  'bytes-copied-buffered', 'clusters-allocated', 'compressed-clusters',
                  'metadata-bytes', 'flushes')
        d, e = dry['images'][0], done['images'][0]
        self.assertGreater(e['bytes-written'], 0, r2.describe())
        # nothing decrypted goes into a plain image: no warning
        self.assertEqual(done['warnings'], [], r2.describe())
        self.assertEqual({k: d[k] for k in fields}, {k: e[k] for k in fields},
                         '%s\n%s' % (r.describe(), r2.describe()))

    # ---- refusals: the image untouched

    def assert_refused(self, img, args, named, *words, status=3):
        before = sha256(self.path(img))
        r = self.rechain('rebase', *args, img, expect=status)
        self.assert_error_names(r, named, *words)
        self.assert_no_secret(r)
        self.assertEqual(sha256(self.path(img)), before, 'the image changed\n' + r.describe())

    def test_missing_and_wrong_keys(self):
        chain = self.build([('base.qcow2', 'k0', None), ('top.qcow2', 'k1', None)])
        self.make('new.qcow2', 'k3')
        # no key at all, then no key for the backing file, then none for the new base
        self.assert_refused('top.qcow2', ['-b', ''], 'top.qcow2', 'no key was given')
        self.assert_refused('top.qcow2', ['--key-file', 'top.qcow2=k1.key', '-b', ''],
                            'base.qcow2', 'no key was given')
        self.assert_refused('top.qcow2', self.keys(chain) + ['-b', 'new.qcow2', '-F', 'qcow2'],
                            'new.qcow2', 'no key was given')
        # a wrong key for either layer
        self.assert_refused('top.qcow2', ['--key-file', 'top.qcow2=k0.key',
                                          '--key-file', 'base.qcow2=k0.key', '-b', ''],
                            'top.qcow2', 'does not open any of its key slots')
        self.assert_refused('top.qcow2', ['--key-file', 'top.qcow2=k1.key',
                                          '--key-file', 'base.qcow2=k2.key', '-b', ''],
                            'base.qcow2', 'does not open any of its key slots')

    def test_compress_and_reflink_refused(self):
        chain = self.build([('base.qcow2', 'k0', None), ('top.qcow2', 'k1', None)])
        self.assert_refused('top.qcow2', self.keys(chain) + ['-c', '-b', ''], 'top.qcow2',
                            'encrypted', '-c')
        self.assert_refused('top.qcow2', self.keys(chain) + ['--copy-mode=reflink', '-b', ''],
                            'top.qcow2', 'reflink', 'encrypted')
        # a plain overlay over an encrypted chain: reflink would copy ciphertext
        self.make('plain.qcow2', backing='top.qcow2')
        self.assert_refused('plain.qcow2', self.keys(chain) + ['--copy-mode=reflink', '-b', ''],
                            'plain.qcow2', 'reflink', 'encrypted')


if __name__ == '__main__':
    main()
