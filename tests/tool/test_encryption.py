#!/usr/bin/python3
# tool-encryption: encrypted qcow2 images (issue 15, first step).
#
# - An unsafe rebase of a LUKS or legacy AES image needs no key: the header
#   changes as `qemu-img rebase -u` (given the key) changes it, byte for
#   byte, and everything after the header cluster (the LUKS header and key
#   material, the data) stays as it was. qemu-img, given the secrets, then
#   checks the image clean, reads the new backing name and compares the
#   guest content with the original.
# - info and map need no key; their JSON matches qemu-img's where rechain
#   can know the answer without parsing the LUKS header.
# - A safe rebase or flatten without the key of an encrypted image it
#   involves is refused (exit 3), naming it, and changes nothing; legacy AES
#   is told to convert (what works with keys: tests/job/test_rebase_encrypted.py).
# - qemu-img's key syntax parses and works verbatim: --object secret (file,
#   data, format=base64, keyid/iv wrapping as libvirt uses it),
#   --image-opts, -b json: (whose plain file name is written), and the
#   native --key-file / --key-secret. Every bad key option is a clear usage
#   error, and the secret bytes never appear on stdout or stderr.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import base64
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import (ToolTestCase, main, qemu_img, read_header, run, sha256,  # noqa: E402
                         MiB)

# Distinctive, so that an echo of them anywhere is found.
PASS0 = 'Zq7-base-passphrase-41'
PASS1 = 'Wx3-top-passphrase-77'
EXT_BACKING_FORMAT = 0xe2792aca
EXT_CRYPTO = 0x0537be77


def secret_obj(sid, passphrase):
    return 'secret,id=%s,data=%s' % (sid, passphrase)


def image_opts(path, sid=None):
    s = 'driver=qcow2,file.filename=%s' % path
    if sid:
        s += ',encrypt.key-secret=%s' % sid
    return s


def aes256_cbc_encrypt(key, iv, plain):
    """PKCS#7-padded AES-256-CBC, through openssl(1), as libvirt wraps
    secrets for QEMU."""
    r = subprocess.run(['openssl', 'enc', '-aes-256-cbc', '-K', key.hex(), '-iv', iv.hex()],
                       input=plain, stdout=subprocess.PIPE, check=True)
    return r.stdout


class EncryptionTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        for name, passphrase in (('s0.key', PASS0), ('s1.key', PASS1)):
            with open(self.path(name), 'w') as f:
                f.write(passphrase)

    def make_luks(self, name, passphrase=PASS0, backing=None, extra_opts=''):
        """A LUKS qcow2 image, its data written through qemu-io with the
        key. qemu-img times its key derivation and, on a loaded machine, may
        fail with "Unable to get accurate CPU usage": tried a few times."""
        opts = 'encrypt.format=luks,encrypt.key-secret=sx,encrypt.iter-time=10' + extra_opts
        argv = [rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2', '--object',
                secret_obj('sx', passphrase), '-o', opts]
        if backing:
            argv += ['-u', '-b', backing, '-F', 'qcow2']
        argv += [name, '1M']
        for _ in range(60):
            r = run(argv, cwd=self.dir)
            if r.rc == 0:
                break
        else:
            self.fail('qemu-img could not make a LUKS image\n' + r.describe())

    def qemu_with_key(self, *args, secrets=(('s0', PASS0), ('s1', PASS1))):
        objs = []
        for sid, p in secrets:
            objs += ['--object', secret_obj(sid, p)]
        return qemu_img(*(args[:1] + tuple(objs) + args[1:]), cwd=self.dir)

    def write_luks(self, opts, offset, length, pattern):
        rt.must([rt.QEMU_IO, '--object', secret_obj('s0', PASS0), '--object',
                 secret_obj('s1', PASS1), '--image-opts', opts,
                 '-c', 'write -P %d %d %d' % (pattern, offset, length)], cwd=self.dir)

    def chain(self):
        """base.qcow2 (LUKS, PASS0, data) <- top.qcow2 (LUKS, PASS1, data),
        and base2.qcow2 a byte copy of base.qcow2."""
        self.make_luks('base.qcow2', PASS0)
        self.write_luks(image_opts('base.qcow2', 's0'), 0, 65536, 0x11)
        self.make_luks('top.qcow2', PASS1, backing='base.qcow2')
        self.write_luks(image_opts('top.qcow2', 's1') + ',backing.encrypt.key-secret=s0',
                        131072, 65536, 0x22)
        shutil.copy(self.path('base.qcow2'), self.path('base2.qcow2'))

    def assert_only_backing_changed(self, before, after):
        """The header fields other than the backing name (offset, size) and
        the backing format extension are equal, the crypto extension too,
        and every byte after the header cluster is unchanged."""
        hb, ha = read_header(before), read_header(after)
        for k in hb:
            if k in ('backing_file_offset', 'backing_file_size', 'backing_file', 'extensions'):
                continue
            self.assertEqual(hb[k], ha.get(k), 'header field %s changed' % k)
        strip = [(m, d) for m, d in hb['extensions'] if m != EXT_BACKING_FORMAT]
        self.assertEqual(strip, [(m, d) for m, d in ha['extensions'] if m != EXT_BACKING_FORMAT])
        self.assertIn(EXT_CRYPTO, [m for m, _ in ha['extensions']])
        cs = hb['cluster_size']
        with open(before, 'rb') as f, open(after, 'rb') as g:
            f.seek(cs)
            g.seek(cs)
            self.assertTrue(f.read() == g.read(), 'bytes after the header cluster changed')

    def assert_qemu_sees(self, img, sid, backing):
        """qemu-img, given the keys (every backing file here is keyed
        with s0), reads the backing name and checks the image clean."""
        # info opens no backing file, so it takes no backing option
        info = json.loads(self.qemu_with_key('info', '--output=json', '--image-opts',
                                             image_opts(img, sid)).out)
        self.assertEqual(info.get('backing-filename'), backing)
        self.assertTrue(info.get('encrypted'))
        opts = image_opts(img, sid) + (',backing.encrypt.key-secret=s0' if backing else '')
        self.qemu_with_key('check', '--image-opts', opts)

    def assert_no_secret(self, r, *secrets):
        for s in secrets + (PASS0, PASS1):
            self.assertNotIn(s, r.out, r.describe())
            self.assertNotIn(s, r.err, r.describe())

    # --- unsafe rebase needs no key ---------------------------------------

    def test_unsafe_rebase_without_key_matches_qemu_img(self):
        self.chain()
        shutil.copy(self.path('top.qcow2'), self.path('orig.qcow2'))
        shutil.copy(self.path('top.qcow2'), self.path('qemu.qcow2'))
        self.rechain('rebase', '-u', '-b', 'base2.qcow2', '-F', 'qcow2', 'top.qcow2', expect=0)
        # qemu-img needs the key even for -u
        self.qemu_with_key('rebase', '-u', '-b', 'base2.qcow2', '-F', 'qcow2', '--image-opts',
                           image_opts('qemu.qcow2', 's1'))
        cs = read_header(self.path('top.qcow2'))['cluster_size']
        with open(self.path('top.qcow2'), 'rb') as f, open(self.path('qemu.qcow2'), 'rb') as g:
            self.assertEqual(f.read(cs), g.read(cs), 'header cluster differs from qemu-img -u')
        self.assert_only_backing_changed(self.path('orig.qcow2'), self.path('top.qcow2'))
        self.assert_qemu_sees('top.qcow2', 's1', 'base2.qcow2')
        # the guest content is the same (base2 is a copy of base)
        self.qemu_with_key('compare', '--image-opts',
                           image_opts('orig.qcow2', 's1') + ',backing.encrypt.key-secret=s0',
                           image_opts('top.qcow2', 's1') + ',backing.encrypt.key-secret=s0')

    def test_unsafe_rebase_to_none_and_back(self):
        self.chain()
        shutil.copy(self.path('top.qcow2'), self.path('orig.qcow2'))
        self.rechain('rebase', '-u', '-b', '', 'top.qcow2', expect=0)
        self.assertIsNone(read_header(self.path('top.qcow2'))['backing_file'])
        self.rechain('rebase', '-u', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2', expect=0)
        self.assert_only_backing_changed(self.path('orig.qcow2'), self.path('top.qcow2'))
        self.assert_qemu_sees('top.qcow2', 's1', 'base.qcow2')

    def test_cinder_command_line(self):
        """OpenStack Cinder's remotefs driver, verbatim: no driver=, so the
        format is probed."""
        self.chain()
        shutil.copy(self.path('top.qcow2'), self.path('orig.qcow2'))
        r = self.rechain('rebase', '-u', '--object', 'secret,id=s0,file=s1.key', '-b',
                         'base2.qcow2', '-F', 'qcow2', '--image-opts',
                         'encrypt.key-secret=s0,file.filename=top.qcow2', expect=0)
        self.assert_no_secret(r)
        self.assert_only_backing_changed(self.path('orig.qcow2'), self.path('top.qcow2'))
        self.assert_qemu_sees('top.qcow2', 's1', 'base2.qcow2')

    def test_libvirt_command_line(self):
        """libvirt's secret object names, and its wrapped secrets: the
        passphrase AES-256-CBC encrypted with a master key secret."""
        self.chain()
        r = self.rechain('rebase', '-u', '--object',
                         'secret,id=vol_encrypt0,file=%s' % self.path('s1.key'),
                         '-b', 'base2.qcow2', '-F', 'qcow2', '--image-opts',
                         'driver=qcow2,encrypt.key-secret=vol_encrypt0,file.filename=top.qcow2',
                         expect=0)
        self.assert_no_secret(r)
        self.assert_qemu_sees('top.qcow2', 's1', 'base2.qcow2')

        master = os.urandom(32)
        with open(self.path('master.key'), 'wb') as f:
            f.write(master)
        iv = os.urandom(16)
        wrapped = base64.b64encode(aes256_cbc_encrypt(master, iv, PASS1.encode())).decode()
        objs = ['--object', 'secret,id=masterKey0,format=raw,file=master.key',
                '--object', 'secret,id=vol_encrypt0,keyid=masterKey0,iv=%s,format=base64,data=%s'
                % (base64.b64encode(iv).decode(), wrapped)]
        # qemu-img unwraps it to the right key (check reads the data)
        qemu_img('check', *objs, '--object', secret_obj('s0', PASS0), '--image-opts',
                 image_opts('top.qcow2', 'vol_encrypt0') + ',backing.encrypt.key-secret=s0',
                 cwd=self.dir)
        r = self.rechain('rebase', '-u', *objs, '-b', 'base.qcow2', '-F', 'qcow2',
                         '--image-opts', image_opts('top.qcow2', 'vol_encrypt0'), expect=0)
        self.assert_no_secret(r, wrapped)
        self.assert_qemu_sees('top.qcow2', 's1', 'base.qcow2')

    def test_wrapped_secret_unwraps_exactly(self):
        """A wrapped secret that is itself the 32-byte keyid of another one:
        only an exact unwrap (right key, padding removed, 32 bytes left)
        gives a key that unwraps the second. Fixed bytes, so that the
        wrong-key case fails the same way every run."""
        self.make_luks('top.qcow2', PASS1)
        master, k2 = bytes(range(32)), bytes(range(32, 64))
        iv1, iv2 = bytes(range(64, 80)), bytes(range(80, 96))
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        w1 = b64(aes256_cbc_encrypt(master, iv1, k2))
        w2 = b64(aes256_cbc_encrypt(k2, iv2, PASS1.encode()))
        objs = ['--object', 'secret,id=m,file=master.key',
                '--object', 'secret,id=k2,keyid=m,iv=%s,format=base64,data=%s' % (b64(iv1), w1),
                '--object', 'secret,id=s,keyid=k2,iv=%s,format=base64,data=%s' % (b64(iv2), w2)]
        with open(self.path('master.key'), 'wb') as f:
            f.write(master)
        r = self.rechain('rebase', '-u', *objs, '-b', '', '--image-opts',
                         image_opts('top.qcow2', 's'), expect=0)
        self.assert_no_secret(r, w1, w2)
        # a wrong master key: the unwrapped k2 is garbage, refused
        with open(self.path('master.key'), 'wb') as f:
            f.write(bytes([master[0] ^ 1]) + master[1:])
        r = self.rechain('rebase', '-u', *objs, '-b', '', '--image-opts',
                         image_opts('top.qcow2', 's'), expect=2)
        self.assertIn("secret 'k2'", r.err)
        self.assert_no_secret(r, w1, w2)

    def test_json_backing_writes_plain_name(self):
        self.chain()
        for spec in ({'driver': 'qcow2', 'encrypt.key-secret': 's0',
                      'file': {'driver': 'file', 'filename': 'base2.qcow2'}},
                     {'driver': 'qcow2', 'encrypt.key-secret': 's0', 'file.filename': 'base.qcow2'}):
            with self.subTest(spec=spec):
                name = spec.get('file.filename') or spec['file']['filename']
                r = self.rechain('rebase', '-u', '--object', 'secret,id=s0,file=s0.key',
                                 '--object', 'secret,id=s1,file=s1.key',
                                 '-b', 'json:' + json.dumps(spec), '--image-opts',
                                 image_opts('top.qcow2', 's1'), expect=0)
                self.assert_no_secret(r)
                h = read_header(self.path('top.qcow2'))
                self.assertEqual(h['backing_file'], name)
                fmts = [d for m, d in h['extensions'] if m == EXT_BACKING_FORMAT]
                self.assertEqual(fmts, [b'qcow2'], 'the driver is the backing format')
                self.assert_qemu_sees('top.qcow2', 's1', name)

    def test_native_key_options(self):
        self.chain()
        for args in (['--key-file', 'top.qcow2=s1.key'],
                     ['--key-file', 's1.key'],
                     ['--object', 'secret,id=k,file=s1.key', '--key-secret', 'top.qcow2=k'],
                     ['--object', 'secret,id=k,file=s1.key', '--key-secret', 'k']):
            with self.subTest(args=args):
                r = self.rechain('rebase', '-u', *args, '-b', 'base2.qcow2', '-F', 'qcow2',
                                 'top.qcow2', expect=0)
                self.assert_no_secret(r)
                self.assert_qemu_sees('top.qcow2', 's1', 'base2.qcow2')

    def test_legacy_aes_unsafe_works_safe_refused(self):
        argv = [rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2', '--object', secret_obj('s0', PASS0),
                '-o', 'encrypt.format=aes,encrypt.key-secret=s0', 'aes.qcow2', '1M']
        if run(argv, cwd=self.dir).rc != 0:
            # a qemu-img that no longer makes them: the header says AES
            qemu_img('create', '-q', '-f', 'qcow2', 'aes.qcow2', '1M', cwd=self.dir)
            rt.patch_field(self.path('aes.qcow2'), 'crypt_method', 1)
        qemu_img('create', '-q', '-f', 'qcow2', 'other.qcow2', '1M', cwd=self.dir)
        before = sha256(self.path('aes.qcow2'))
        for args in (['-b', 'other.qcow2', '-F', 'qcow2'], ['-b', '']):
            r = self.rechain('rebase', *args, 'aes.qcow2', expect=3)
            self.assert_error_names(r, 'aes.qcow2', 'legacy AES', 'convert',
                                    'encrypt.format=luks')
            self.assertEqual(sha256(self.path('aes.qcow2')), before)
        self.rechain('rebase', '-u', '-b', 'other.qcow2', '-F', 'qcow2', 'aes.qcow2', expect=0)
        self.assertEqual(read_header(self.path('aes.qcow2'))['crypt_method'], 1)
        info = self.rechain('info', '--output=json', 'aes.qcow2', expect=0).json()
        self.assertTrue(info['encrypted'])
        self.assertEqual(info['format-specific']['data']['encrypt'], {'format': 'aes'})
        q = json.loads(qemu_img('info', '--output=json', 'aes.qcow2', cwd=self.dir).out)
        self.assertEqual(q['format-specific']['data']['encrypt'], {'format': 'aes'})

    # --- what needs the data is refused -----------------------------------

    def test_safe_rebase_and_flatten_without_key_refused(self):
        """Without the key of every encrypted layer involved, a safe rebase
        or flatten is refused, naming the first image without one, and
        changes nothing (tests/job/test_rebase_encrypted.py covers what
        works with the keys)."""
        self.chain()
        qemu_img('create', '-q', '-f', 'qcow2', 'plain.qcow2', '1M', cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', '-u',
                 'plain-over.qcow2', '1M', cwd=self.dir)
        # a key for top.qcow2 alone (an unqualified --key-file would be
        # tried on every image: a wrong key for base.qcow2)
        cases = [('top.qcow2', ['-b', 'base2.qcow2', '-F', 'qcow2'], 'base.qcow2'),
                 ('top.qcow2', ['-b', ''], 'base.qcow2'),
                 ('top.qcow2', ['--dry-run', '-b', ''], 'base.qcow2'),
                 # a plain overlay: the encrypted old backing is named
                 ('plain-over.qcow2', ['-b', ''], 'base.qcow2'),
                 # and an encrypted new backing
                 ('plain.qcow2', ['-b', 'base.qcow2', '-F', 'qcow2'], 'base.qcow2')]
        for img, args, named in cases:
            with self.subTest(img=img, args=args):
                before = sha256(self.path(img))
                r = self.rechain('rebase', '--key-file', 'top.qcow2=s1.key', *args, img, expect=3)
                self.assert_error_names(r, named, 'LUKS-encrypted', 'no key was given')
                self.assert_no_secret(r)
                self.assertEqual(sha256(self.path(img)), before, 'the image changed')

    # --- info and map need no key -----------------------------------------

    def test_info_without_key(self):
        self.chain()
        r = self.rechain('info', '--output=json', 'top.qcow2', expect=0).json()
        q = json.loads(qemu_img('info', '--output=json', 'top.qcow2', cwd=self.dir).out)
        self.assertIs(r['encrypted'], True)
        self.assertIs(q['encrypted'], True)
        self.assertEqual(r['format-specific']['data']['encrypt']['format'],
                         q['format-specific']['data']['encrypt']['format'])
        for k in ('virtual-size', 'cluster-size', 'format', 'backing-filename',
                  'backing-filename-format', 'dirty-flag'):
            self.assertEqual(r.get(k), q.get(k), k)
        # the JSON key order of qemu-img: encrypted after format-specific
        keys = list(json.loads(self.rechain('info', '--output=json', 'top.qcow2').out).keys())
        self.assertLess(keys.index('format-specific'), keys.index('encrypted'))
        human = self.rechain('info', '--backing-chain', 'top.qcow2', expect=0).out
        self.assertEqual(human.count('encrypted: yes'), 2, human)
        self.assertIn('format: luks', human)

    def test_map_without_key_matches_qemu(self):
        """qemu-img map (given the keys) gives no offset for encrypted data:
        it is not where the guest bytes can be read. Neither does rechain,
        which needs no key for the map."""
        self.chain()
        r = self.rechain('map', '--output=json', 'top.qcow2', expect=0)
        q = self.qemu_with_key('map', '--output=json', '--image-opts',
                               image_opts('top.qcow2', 's1') + ',backing.encrypt.key-secret=s0')
        errors, _ = rt.compare_maps(json.loads(q.out), r.json())
        self.assertEqual(errors, [], r.describe() + q.out)
        self.assertFalse(any('offset' in e for e in r.json()), r.out)
        human = self.rechain('map', 'top.qcow2', expect=0).out
        self.assertIn('encrypted', human)

    # --- errors -------------------------------------------------------------

    def test_key_option_errors(self):
        self.make_luks('top.qcow2', PASS1)
        secret = 'Qv9-never-echoed-secret-13'
        with open(self.path('k.key'), 'w') as f:
            f.write(secret)
        os.chmod(self.path('k.key'), 0)
        unreadable = os.geteuid() != 0  # root reads mode 0 files
        cases = [
            (['--object', 'secret,id=s0,data=%s' % secret, '--image-opts',
              image_opts('top.qcow2', 'nosuch')], "no secret with id 'nosuch'"),
            (['--object', 'secret,id=s0,file=%s' % self.path('missing.key'),
              'top.qcow2'], 'missing.key'),
            (['--object', 'secret,id=s0,data=%s!,format=base64' % secret, 'top.qcow2'],
             'not valid base64'),
            (['--object', 'secret,id=s0,data=%s,format=hex' % secret, 'top.qcow2'],
             'format must be raw or base64'),
            (['--object', 'secret_keyring,id=s0,serial=1', 'top.qcow2'], 'unknown object type'),
            (['--object', 'secret,id=s0,data=%s,bogus=1' % secret, 'top.qcow2'],
             "unknown property 'bogus'"),
            (['--object', 'secret,data=%s' % secret, 'top.qcow2'], 'id=ID is missing'),
            (['--object', 'secret,id=s0', 'top.qcow2'], 'file= or data= is required'),
            (['--object', 'secret,id=s0,data=%s,keyid=m,iv=AAAA' % secret, 'top.qcow2'],
             "keyid 'm'"),
            (['--image-opts', 'driver=qcow2,file.filename=top.qcow2,cache.direct=on'],
             "unknown key 'cache.direct'"),
            (['--image-opts', 'driver=vmdk,file.filename=top.qcow2'], 'driver must be qcow2'),
            (['--image-opts', 'encrypt.key-secret=s0'], 'file.filename'),
            (['--key-file', 'top.qcow2=%s' % self.path('missing.key'), 'top.qcow2'],
             'missing.key'),
            (['--key-file', 'nosuch.qcow2=k.key', 'top.qcow2'], 'nosuch.qcow2'),
            (['--key-secret', 'nosuch', 'top.qcow2'], "no secret with id 'nosuch'"),
            (['-b', 'json:{"driver":"qcow2"', '--object', 'secret,id=s0,data=%s' % secret,
              'top.qcow2'], 'json:'),
        ]
        if unreadable:
            cases.append((['--object', 'secret,id=s0,file=k.key', 'top.qcow2'], 'k.key'))
        for cmd in (['rebase', '-u'], ['info'], ['map']):
            for args, words in cases:
                if cmd[0] != 'rebase' and args[0] == '-b':
                    continue
                with self.subTest(cmd=cmd, args=args):
                    argv = list(cmd) + list(args)
                    if cmd[0] == 'rebase' and '-b' not in args:
                        argv[2:2] = ['-b', '']
                    for json_errors in (False, True):
                        extra = ['--output=json'] if json_errors else []
                        r = self.rechain(*(argv[:1] + extra + argv[1:]), expect=2)
                        self.assertIn(words, r.err)
                        self.assert_no_secret(r, secret)
                        self.assertNotIn(base64.b64encode(secret.encode()).decode(), r.err)

    def test_secret_in_base64_is_decoded(self):
        self.chain()
        b64 = base64.b64encode(PASS1.encode()).decode()
        r = self.rechain('rebase', '-u', '--object', 'secret,id=s1,format=base64,data=' + b64,
                         '-b', 'base2.qcow2', '-F', 'qcow2', '--image-opts',
                         image_opts('top.qcow2', 's1'), expect=0)
        self.assert_no_secret(r, b64)
        self.assert_qemu_sees('top.qcow2', 's1', 'base2.qcow2')


if __name__ == '__main__':
    main()
