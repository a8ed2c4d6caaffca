#!/usr/bin/python3
"""Encrypted pool volumes through the libvirt plugin (issue 15), against a
real libvirt daemon (no mock), with the harness of test_libvirt_daemon.py:
a throwaway unprivileged user runs its session daemon with a dir pool.

The keys are libvirt's: each volume's <encryption format='luks'> names a
secret of libvirt's secret driver (virsh secret-define, secret-set-value),
and `rechain rebase|info|map --connect URI --pool POOL` fetch them with no
key handling by the user. Fixtures:
- one volume is made by libvirt itself: `virsh vol-create` from XML with an
  <encryption format='luks'><secret type='passphrase' uuid=.../> element
  (libvirt runs qemu-img with that secret, at QEMU's default iter-time);
- the others are made with qemu-img (`encrypt.iter-time=10`, fast) in the
  pool directory, their secrets defined with <usage type='volume'> naming
  the volume's path, so that `virsh pool-refresh` links them: the volume
  XML libvirt then reports has the same <encryption> element.

Covered: a safe rebase of an encrypted overlay (over an encrypted base)
onto a new encrypted volume with another secret; a flatten (-b ""); a
chain of three volumes, each with its own secret, rebased onto a fourth;
`info --backing-chain` and `map` through --pool, and the library's volume
API (open_image keeps a keyring with the three keys, add_keys); keys given
on the command line take precedence over libvirt's; a secret without a
value, a secret libvirt does not know and an <encryption> without a secret
fail with exit status 3, naming the volume and the secret's UUID, the
image byte for byte unchanged (an unsafe rebase needs no key and still
works); a legacy (format='qcow') volume is refused by add_keys. No
passphrase appears in stdout, stderr or JSON. Judged by `qemu-img compare`
and `qemu-img check` given the secrets (--object secret).

Skipped (77) as test_libvirt_daemon.py is; RECHAIN_TEST_STRICT=1 turns a
skip into a failure.

SPDX-License-Identifier: LGPL-2.1-or-later
"""

import gc
import json
import os
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_libvirt_daemon as tld  # noqa: E402
from test_libvirt_daemon import (DaemonBase, POOL, URI, backing_of, rechain_exe,  # noqa: E402
                                 sha256, virsh)

INVALID_IMAGE_EXIT = 3

# Distinctive, so that an echo of them anywhere is found.
PASSPHRASES = {'k0': 'Xq7-virt-base-passphrase', 'k1': 'Rw3-virt-mid-passphrase',
               'k2': 'Hz9-virt-top-passphrase', 'k3': 'Bp4-virt-newbase-passphrase',
               'kw': 'Wrong-virt-passphrase-Zz1'}


def run_rechain(*args):
    return tld.run_rechain(*args, text=True)



def vol_create(xml):
    """virsh vol-create, tried again when libvirt's qemu-img fails to time
    its key derivation on a loaded machine ("Unable to get accurate CPU
    usage": QEMU's own flake, at the default iter-time libvirt uses; the
    failed volume is deleted by libvirt)."""
    for attempt in range(5):
        r = subprocess.run(['virsh', '-q', '-c', URI, 'vol-create', POOL, xml],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return
        if 'Unable to get accurate CPU usage' not in r.stderr:
            break
        # whatever the failed attempt left, gone before the next one
        with open(xml) as f:
            name = f.read().split('<name>', 1)[1].split('</name>', 1)[0]
        virsh('vol-delete', '--pool', POOL, name, check=False)
        try:
            os.unlink(os.path.join(tld.POOLDIR, name))
        except OSError:
            pass
        virsh('pool-refresh', POOL, check=False)
    raise AssertionError('virsh vol-create %s %s: %s' % (POOL, xml, r.stderr.strip()))

class EncryptedVolumeTest(DaemonBase):

    def setUp(self):
        super().setUp()
        if not rechain_exe():
            self.skipTest('no rechain tool')
        self.keydir = os.path.join(os.path.dirname(tld.POOLDIR), 'keys-' + self.name('x'))
        os.makedirs(self.keydir, exist_ok=True)
        for sid, p in PASSPHRASES.items():
            with open(self.key(sid), 'w') as f:
                f.write(p)
        self.secrets = []

    def tearDown(self):
        for u in self.secrets:
            virsh('secret-undefine', u, check=False)
        super().tearDown()
        for f in os.listdir(self.keydir):
            os.unlink(os.path.join(self.keydir, f))
        os.rmdir(self.keydir)

    # -- fixtures

    def key(self, sid):
        return os.path.join(self.keydir, sid + '.key')

    def objects(self):
        out = []
        for sid in sorted(PASSPHRASES):
            out += ['--object', 'secret,id=%s,file=%s' % (sid, self.key(sid))]
        return out

    def define_secret(self, sid, volume_path=None, value=True):
        """A libvirt secret with the passphrase @sid (unless @value is
        False); with @volume_path, its usage names that volume, which links
        it to the volume's <encryption> when the pool is refreshed."""
        u = str(uuid.uuid4())
        usage = ("<usage type='volume'><volume>%s</volume></usage>" % volume_path
                 if volume_path else '')
        xml = os.path.join(self.keydir, u + '.xml')
        with open(xml, 'w') as f:
            f.write("<secret ephemeral='no' private='no'><uuid>%s</uuid>%s</secret>" % (u, usage))
        virsh('secret-define', xml)
        self.secrets.append(u)
        if value:
            virsh('secret-set-value', u, '--file', self.key(sid), '--plain')
        return u

    def qemu(self, *args, check=True):
        r = subprocess.run(['qemu-img'] + list(args), capture_output=True, text=True,
                           cwd=tld.POOLDIR)
        if check:
            self.assertEqual(r.returncode, 0, ' '.join(args) + '\n' + r.stdout + r.stderr)
        return r

    def enc_image(self, name, sid, backing=None, value=True):
        """A LUKS qcow2 volume made with qemu-img in the pool directory,
        with a libvirt secret (uuid returned) that the pool links to it."""
        path = self.p(name)
        argv = ['create', '-q', '-f', 'qcow2'] + self.objects()
        argv += ['-o', 'encrypt.format=luks,encrypt.key-secret=%s,encrypt.iter-time=10' % sid]
        if backing:
            argv += ['-u', '-b', self.p(backing), '-F', 'qcow2']
        argv += [path, '64M']
        # qemu-img times its key derivation and, on a loaded machine, may
        # fail with "Unable to get accurate CPU usage": tried a few times
        for _ in range(60):
            r = self.qemu(*argv, check=False)
            if r.returncode == 0:
                break
        self.assertEqual(r.returncode, 0, r.stderr)
        self.files.append(path)
        return self.define_secret(sid, path, value)

    def view(self, chain):
        """--image-opts for @chain: (volume name, secret id) from the top down."""
        s = 'driver=qcow2,file.filename=%s' % self.p(chain[0][0])
        for depth, (_, sid) in enumerate(chain):
            if sid:
                s += ',%sencrypt.key-secret=%s' % ('backing.' * depth, sid)
        return s

    def write(self, chain, *cmds):
        argv = ['qemu-io'] + self.objects() + ['--image-opts', self.view(chain)]
        for c in cmds:
            argv += ['-c', c]
        r = subprocess.run(argv, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def build(self, layers):
        """@layers from the bottom up: (suffix, secret id); each writes its
        own pattern over part of the one below. Returns the chain, top
        first, as (volume name, secret id)."""
        chain = []
        for i, (suffix, sid) in enumerate(layers):
            name = self.name(suffix)
            self.enc_image(name, sid, backing=chain[0][0] if chain else None)
            chain.insert(0, (name, sid))
            self.write(chain, 'write -P %d %dk 192k' % (0x11 * (i + 1), 256 * i + 64),
                       'write -z %dk 64k' % (256 * i + 1024))
        virsh('pool-refresh', POOL)
        return chain

    def snapshot(self, chain):
        """The guest view of @chain now, as a raw file outside the pool."""
        raw = os.path.join(self.keydir, 'view-%d.raw' % len(os.listdir(self.keydir)))
        self.qemu('convert', *self.objects(), '--image-opts', self.view(chain), '-O', 'raw', raw)
        return raw

    # -- judges

    def assert_same_view(self, raw, chain):
        r = self.qemu('compare', *self.objects(), '--image-opts',
                      'driver=raw,file.filename=%s' % raw, self.view(chain), check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def assert_checks(self, chain):
        r = self.qemu('check', *self.objects(), '--image-opts', self.view(chain), check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def assert_no_secret(self, *outputs):
        for out in outputs:
            for p in PASSPHRASES.values():
                self.assertNotIn(p, out)

    def rebase(self, *args):
        return run_rechain('rebase', '--connect', URI, '--pool', POOL, *args)

    # -- rebases

    def test_safe_rebase_onto_libvirt_made_volume(self):
        chain = self.build([('base.qcow2', 'k0'), ('top.qcow2', 'k1')])
        top = chain[0][0]
        # the new backing: made by libvirt itself, with its own secret
        new = self.name('new.qcow2')
        u = self.define_secret('k3')
        xml = os.path.join(self.keydir, 'vol.xml')
        with open(xml, 'w') as f:
            f.write("<volume><name>%s</name><capacity unit='M'>64</capacity><target>"
                    "<format type='qcow2'/><encryption format='luks'>"
                    "<secret type='passphrase' uuid='%s'/></encryption></target></volume>"
                    % (new, u))
        self.files.append(self.p(new))
        vol_create(xml)
        self.assertIn(u, virsh('vol-dumpxml', '--pool', POOL, new).stdout)
        self.write([(new, 'k3')], 'write -P 0x77 0 128k')
        before = self.snapshot(chain)
        r = self.rebase('--output', 'json', '-b', new, top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        json.loads(r.stdout)
        self.assertEqual(backing_of(self.p(top)), (self.p(new), 'qcow2'))
        self.assert_same_view(before, [(top, 'k1'), (new, 'k3')])
        self.assert_checks([(top, 'k1'), (new, 'k3')])
        # libvirt sees the new chain (the plugin refreshed the pool)
        self.assertEqual(tld.vol_backing(top), self.p(new))

    def test_flatten(self):
        chain = self.build([('base.qcow2', 'k0'), ('top.qcow2', 'k1')])
        top = chain[0][0]
        before = self.snapshot(chain)
        r = self.rebase('-b', '', top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        self.assertEqual(backing_of(self.p(top)), (None, None))
        self.assert_same_view(before, [(top, 'k1')])
        self.assert_checks([(top, 'k1')])

    def test_chain_of_three_onto_fourth_key(self):
        chain = self.build([('base.qcow2', 'k0'), ('mid.qcow2', 'k1'), ('top.qcow2', 'k2')])
        top = chain[0][0]
        new = self.build([('new.qcow2', 'k3')])
        before = self.snapshot(chain)

        # info and map through --pool: every layer, no key asked for
        r = run_rechain('info', '--backing-chain', '--output', 'json', '--connect', URI,
                        '--pool', POOL, top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        infos = json.loads(r.stdout)
        self.assertEqual([i['filename'] for i in infos], [self.p(n) for n, _ in chain])
        self.assertTrue(all(i.get('encrypted') for i in infos), r.stdout)
        r = run_rechain('info', '--backing-chain', '--connect', URI, '--pool', POOL, top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        r = run_rechain('map', '--output', 'json', '--connect', URI, '--pool', POOL, top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        depths = {e['depth'] for e in json.loads(r.stdout) if e['data']}
        self.assertEqual(depths, {0, 1, 2})

        # the library: the image opened through the volume keeps libvirt's
        # three keys (and none for a plain file)
        vol = self.helper.resolve(POOL, top, None)
        image = vol.open_image(None, 0, None, None)
        keyring = image.get_keyring()
        self.assertEqual(keyring.get_n_passphrases(), 3)
        for n, _ in chain:
            self.assertTrue(keyring.has_passphrase(self.p(n)), n)
        kr = tld.Rechain.Keyring.new()
        self.assertTrue(vol.add_keys(kr, tld.Rechain.ImageOpenFlags.NO_BACKING, None))
        self.assertEqual(kr.get_n_passphrases(), 1)
        # its shared locks would keep the rebase from writing the overlay
        del image, keyring
        gc.collect()

        r = self.rebase('--output', 'json', '-b', new[0][0], top)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        self.assertEqual(backing_of(self.p(top)), (self.p(new[0][0]), 'qcow2'))
        self.assert_same_view(before, [(top, 'k2')] + new)
        self.assert_checks([(top, 'k2')] + new)

    def test_linked_images(self):
        # two overlays of one encrypted base, moved together onto a new one
        base = self.build([('base.qcow2', 'k0')])
        t1, t2 = self.name('t1.qcow2'), self.name('t2.qcow2')
        self.enc_image(t1, 'k1', backing=base[0][0])
        self.enc_image(t2, 'k2', backing=base[0][0])
        self.write([(t1, 'k1')] + base, 'write -P 0x5a 2M 64k')
        self.write([(t2, 'k2')] + base, 'write -P 0x5b 3M 64k')
        new = self.build([('new.qcow2', 'k3')])
        b1, b2 = self.snapshot([(t1, 'k1')] + base), self.snapshot([(t2, 'k2')] + base)
        r = self.rebase('-b', new[0][0], t1, t2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        self.assert_same_view(b1, [(t1, 'k1')] + new)
        self.assert_same_view(b2, [(t2, 'k2')] + new)

    def test_command_line_keys_take_precedence(self):
        b = self.name('base.qcow2')
        self.enc_image(b, 'k0')
        # libvirt's secret for the overlay holds a wrong passphrase
        t = self.name('top.qcow2')
        self.enc_image(t, 'k1', backing=b)
        virsh('pool-refresh', POOL)
        u = virsh('vol-dumpxml', '--pool', POOL, t).stdout.split("uuid='", 1)[1].split("'", 1)[0]
        virsh('secret-set-value', u, '--file', self.key('kw'), '--plain')
        chain = [(t, 'k1'), (b, 'k0')]
        self.write(chain, 'write -P 0x66 0 64k')
        before = self.snapshot(chain)
        digest = sha256(self.p(t))
        r = self.rebase('-b', '', t)
        self.assertEqual(r.returncode, INVALID_IMAGE_EXIT, r.stderr)
        self.assertIn(self.p(t), r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        self.assertEqual(sha256(self.p(t)), digest)
        # the right key given for the overlay wins; the base's comes from libvirt
        r = self.rebase('--object', 'secret,id=mine,file=%s' % self.key('k1'),
                        '--key-secret', '%s=mine' % self.p(t), '-b', '', t)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)
        self.assert_same_view(before, [(t, 'k1')])

    # -- refusals

    def assert_refused(self, r, volume, *words):
        self.assertEqual(r.returncode, INVALID_IMAGE_EXIT, r.stdout + r.stderr)
        self.assertIn('"%s"' % volume, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assert_no_secret(r.stdout, r.stderr)

    def test_secret_without_value(self):
        b = self.name('base.qcow2')
        ub = self.enc_image(b, 'k0', value=False)
        t = self.name('top.qcow2')
        self.enc_image(t, 'k1', backing=b)
        virsh('pool-refresh', POOL)
        self.assertIn(ub, virsh('vol-dumpxml', '--pool', POOL, b).stdout)
        digest = sha256(self.p(t))
        new = self.build([('new.qcow2', 'k3')])
        for args in (['-b', ''], ['-b', new[0][0]], ['--output', 'json', '-b', '']):
            r = self.rebase(*args, t)
            self.assert_refused(r, b, ub, 'secret-set-value')
            self.assertEqual(sha256(self.p(t)), digest)
        self.assertIn('"exit-status":3', r.stderr)  # the JSON error of the last run
        # info needs no key: it still works
        r = run_rechain('info', '--backing-chain', '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, r.stderr)
        # an unsafe rebase needs no key: it asks for none
        r = self.rebase('-u', '-b', new[0][0], t)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(backing_of(self.p(t)), (self.p(new[0][0]), 'qcow2'))

    def test_secret_libvirt_does_not_know(self):
        # made by libvirt with its secret, the secret undefined since: the
        # volume XML still names it (libvirt keeps the uuid of a volume it
        # made; for the others it finds the secret by its usage, so an
        # undefined one simply disappears from their XML)
        t = self.name('top.qcow2')
        u = self.define_secret('k1')
        xml = os.path.join(self.keydir, 'vol.xml')
        with open(xml, 'w') as f:
            f.write("<volume><name>%s</name><capacity unit='M'>64</capacity><target>"
                    "<format type='qcow2'/><encryption format='luks'>"
                    "<secret type='passphrase' uuid='%s'/></encryption></target></volume>"
                    % (t, u))
        self.files.append(self.p(t))
        vol_create(xml)
        virsh('secret-undefine', u)
        self.assertIn(u, virsh('vol-dumpxml', '--pool', POOL, t).stdout)
        digest = sha256(self.p(t))
        r = self.rebase('-b', '', t)
        self.assert_refused(r, t, u, 'does not know')
        self.assertEqual(sha256(self.p(t)), digest)

    def test_encryption_without_secret(self):
        # a LUKS volume libvirt has no secret for (none names its path)
        t = self.name('top.qcow2')
        u = self.enc_image(t, 'k1')
        virsh('secret-undefine', u)
        virsh('pool-refresh', POOL)
        xml = virsh('vol-dumpxml', '--pool', POOL, t).stdout
        self.assertIn("<encryption format='luks'>", xml)
        digest = sha256(self.p(t))
        r = self.rebase('-b', '', t)
        self.assert_refused(r, t, 'names no secret')
        self.assertEqual(sha256(self.p(t)), digest)

    def test_legacy_encryption_format_refused(self):
        # qcow2's legacy AES encryption: libvirt reports format='qcow'
        t = self.name('aes.qcow2')
        r = self.qemu('create', '-q', '-f', 'qcow2', *self.objects(), '-o',
                      'encrypt.format=aes,encrypt.key-secret=k0', self.p(t), '64M', check=False)
        if r.returncode != 0:
            self.skipTest('qemu-img does not make legacy AES images: ' + r.stderr.strip())
        self.files.append(self.p(t))
        self.define_secret('k0', self.p(t))
        virsh('pool-refresh', POOL)
        kr = tld.Rechain.Keyring.new()
        with self.assertRaises(tld.GLib.Error) as cm:
            self.helper.add_keys(self.p(t), kr, None)
        e = cm.exception
        self.assertTrue(e.matches(tld.Rechain.error_quark(), tld.Rechain.Error.UNSUPPORTED), e.message)
        self.assertIn('LUKS', e.message)
        self.assertIn(t, e.message)
        self.assertEqual(kr.get_n_passphrases(), 0)
        # a file outside the pools: nothing to add, no error
        self.assertTrue(self.helper.add_keys(self.key('k0'), kr, None))
        self.assertEqual(kr.get_n_passphrases(), 0)


def load_tests(loader, tests, pattern):
    return loader.loadTestsFromTestCase(EncryptedVolumeTest)


if __name__ == '__main__':
    tld.main(script=__file__)
