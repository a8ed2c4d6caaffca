#!/usr/bin/python3
# tool-info-luks: what `rechain info` says of a LUKS-encrypted qcow2 image's
# LUKS header, read without any key, against `qemu-img info` given the key.
#
# - Over several cipher variants (aes-256-xts-plain64, aes-128-cbc-essiv,
#   serpent-xts with the plain IV generator, twofish-cbc with a
#   "plain64:sha256" hash suffix QEMU writes and ignores, cast5-ecb), with
#   several active key slots and one disabled again (`qemu-img amend`), and
#   for each layer of a chain (--backing-chain): the JSON `format-specific.data.encrypt`
#   object equals qemu-img's key for key, value for value and in qemu-img's
#   key order; the human "encrypt:" block equals qemu-img's line for line.
# - A LUKS header rechain cannot parse makes `info` fail naming the image,
#   as qemu-img info fails on it.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, run  # noqa: E402

PASS0 = 'Lk4-info-passphrase-19'
PASS1 = 'Mn8-second-passphrase-23'

# (file name, qemu-img -o encrypt.* options). qemu-img spends about 2.5 s
# of CPU per image (and per added key) measuring its PBKDF2 speed whatever
# the iter-time, so each variant covers several cases.
VARIANTS = [
    # several active slots are added to this one
    ('aes256-xts', 'cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256'),
    ('aes128-cbc-essiv', 'cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,'
                         'ivgen-hash-alg=sha256,hash-alg=sha1'),
    ('serpent256-xts-plain', 'cipher-alg=serpent-256,cipher-mode=xts,ivgen-alg=plain,'
                             'hash-alg=sha512'),
    # written "cbc-plain64:sha256", with a hash suffix QEMU ignores, as
    # Nova's "xts-plain64:sha256"
    ('twofish128-cbc-hash-suffix', 'cipher-alg=twofish-128,cipher-mode=cbc,ivgen-alg=plain64,'
                                   'ivgen-hash-alg=sha256,hash-alg=sha384'),
    ('cast5-ecb', 'cipher-alg=cast5-128,cipher-mode=ecb,ivgen-alg=plain64,hash-alg=sha1'),
]


def secret(sid, passphrase):
    return ['--object', 'secret,id=%s,data=%s' % (sid, passphrase)]


def encrypt_block(human):
    """The lines of the "encrypt:" block of a human `info` output."""
    lines = human.splitlines()
    start = lines.index('    encrypt:')
    block = [lines[start]]
    for l in lines[start + 1:]:
        if not l.startswith('        '):
            break
        block.append(l)
    return block


def qemu_argv(*args):
    return [rt.QEMU_IMG, args[0]] + secret('s0', PASS0) + secret('s1', PASS1) + list(args[1:])


def create_argv(name, opts, sid='s0'):
    opts = 'encrypt.format=luks,encrypt.key-secret=%s,encrypt.iter-time=10' % sid + ''.join(
        ',encrypt.' + o for o in opts.split(',') if o)
    return qemu_argv('create', '-q', '-f', 'qcow2', '-o', opts, name, '1M')


class InfoLuksTest(ToolTestCase):

    @classmethod
    def setUpClass(cls):
        """Every image made once, by qemu-img processes running at once:
        each spends seconds of CPU timing its key derivation."""
        cls.images = tempfile.mkdtemp(prefix='rechain-luks-info-')
        argvs = [create_argv(n + '.qcow2', o) for n, o in VARIANTS]
        argvs.append(create_argv('top.qcow2', '', 's1')[:-2]
                     + ['-u', '-b', 'aes128-cbc-essiv.qcow2', '-F', 'qcow2', 'top.qcow2', '1M'])
        procs = [subprocess.Popen(a, cwd=cls.images, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for a in argvs]
        for a, p in zip(argvs, procs):
            # qemu-img times its key derivation and fails with "Unable to
            # get accurate CPU usage" when a round is too fast to measure
            # (sha1 at iter-time=10: 5 runs in 6 on an idle machine here,
            # each failing in milliseconds): tried again, many times
            if p.wait() != 0:
                for _ in range(60):
                    if run(a, cwd=cls.images).rc == 0:
                        break
                else:
                    raise AssertionError('qemu-img could not make an image: %s' % a)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.images, ignore_errors=True)

    def setUp(self):
        super().setUp()
        for f in os.listdir(self.images):
            shutil.copy(os.path.join(self.images, f), self.path(f))

    def qemu(self, *args):
        """qemu-img with both keys, tried a few times (see setUpClass)."""
        for _ in range(60):
            r = run(qemu_argv(*args), cwd=self.dir)
            if r.rc == 0:
                return r
        self.fail('qemu-img failed\n' + r.describe())

    def image_opts(self, name):
        return 'driver=qcow2,file.filename=%s,encrypt.key-secret=s0' % name

    def amend(self, name, *opts):
        self.qemu('amend', '-o', ','.join(opts), '--image-opts', self.image_opts(name))

    def qemu_info(self, name):
        q = self.qemu('info', '--output=json', '--image-opts', self.image_opts(name))
        return json.loads(q.out)

    def assert_same_encrypt(self, name):
        q = self.qemu_info(name)['format-specific']['data']['encrypt']
        r = self.rechain('info', '--output=json', name, expect=0)
        self.assertNotIn(PASS0, r.out + r.err)
        re_ = r.json()['format-specific']['data']['encrypt']
        self.assertEqual(re_, q, name)
        # qemu-img's key order (that of its hash table), slots included
        self.assertEqual(list(re_.keys()), list(q.keys()), name)
        for rs, qs in zip(re_['slots'], q['slots']):
            self.assertEqual(list(rs.keys()), list(qs.keys()), name)
        qh = self.qemu('info', '--image-opts', self.image_opts(name)).out
        rh = self.rechain('info', name, expect=0).out
        self.assertEqual(encrypt_block(rh), encrypt_block(qh), name)
        return re_

    def test_cipher_variants_match_qemu_img(self):
        for name, opts in VARIANTS:
            with self.subTest(variant=name):
                e = self.assert_same_encrypt(name + '.qcow2')
                self.assertEqual([s['active'] for s in e['slots']], [True] + [False] * 7)

    def test_several_active_slots(self):
        img = 'aes256-xts.qcow2'
        # a second passphrase in slots 3 and 5, then slot 5 disabled again:
        # its header keeps the old numbers, which qemu-img does not show
        for slot in (3, 5):
            self.amend(img, 'encrypt.new-secret=s1', 'encrypt.state=active',
                       'encrypt.keyslot=%d' % slot, 'encrypt.iter-time=10')
        e = self.assert_same_encrypt(img)
        self.assertEqual([i for i, s in enumerate(e['slots']) if s['active']], [0, 3, 5])
        self.amend(img, 'encrypt.state=inactive', 'encrypt.keyslot=5')
        e = self.assert_same_encrypt(img)
        self.assertEqual([i for i, s in enumerate(e['slots']) if s['active']], [0, 3])
        self.assertNotIn('iters', e['slots'][5])

    def test_backing_chain_json(self):
        """--backing-chain: each LUKS layer described from its own header."""
        r = self.rechain('info', '--output=json', '--backing-chain', 'top.qcow2', expect=0).json()
        self.assertEqual([i['format-specific']['data']['encrypt']['cipher-alg'] for i in r],
                         ['aes-256', 'aes-128'])
        self.assertEqual(r[1]['format-specific']['data']['encrypt'],
                         self.qemu_info('aes128-cbc-essiv.qcow2')['format-specific']['data']['encrypt'])

    def test_unparsable_luks_header_refused(self):
        shutil.copy(self.path('aes256-xts.qcow2'), self.path('bad.qcow2'))
        with open(self.path('bad.qcow2'), 'rb') as f:
            data = f.read()
        at = data.index(b'LUKS\xba\xbe')
        # the cipher name: one neither QEMU nor rechain knows
        with open(self.path('bad.qcow2'), 'r+b') as f:
            f.seek(at + 8)
            f.write(b'rot13'.ljust(32, b'\0'))
        q = run([rt.QEMU_IMG, 'info'] + secret('s0', PASS0)
                + ['--image-opts', self.image_opts('bad.qcow2')], cwd=self.dir)
        self.assertNotEqual(q.rc, 0, q.describe())
        for args in (['info'], ['info', '--output=json']):
            r = self.rechain(*args, 'bad.qcow2')
            self.assert_error_names(r, 'bad.qcow2', 'rot13')


if __name__ == '__main__':
    main()
