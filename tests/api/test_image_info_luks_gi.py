#!/usr/bin/python3
"""The LUKS header of an encrypted image in the typed model of `rechain
info`, through GObject introspection, opened without any key: the luks-*
properties of Rechain.ImageInfo and its Rechain.LuksSlotInfo slots equal
qemu-img's `format-specific.data.encrypt` (qemu-img given the key); an
image that is not LUKS-encrypted has none of them.

SPDX-License-Identifier: LGPL-2.1-or-later"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import gi
gi.require_version('Rechain', '1.0')
from gi.repository import Rechain  # noqa: E402

# Under AddressSanitizer the runtime is preloaded into this interpreter
# (it loads the instrumented library); QEMU's tools must not inherit it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
SECRET = 'secret,id=s0,data=Gi5-luks-info-passphrase'

# qemu-img's encrypt key -> the property of Rechain.ImageInfo
LUKS_KEYS = {
    'cipher-alg': 'luks-cipher-alg',
    'cipher-mode': 'luks-cipher-mode',
    'ivgen-alg': 'luks-ivgen-alg',
    'ivgen-hash-alg': 'luks-ivgen-hash-alg',
    'hash-alg': 'luks-hash-alg',
    'payload-offset': 'luks-payload-offset',
    'master-key-iters': 'luks-master-key-iters',
    'uuid': 'luks-uuid',
}
SLOT_KEYS = ['active', 'iters', 'key-offset', 'stripes']


def qemu_img(*args, cwd):
    # qemu-img may fail timing its key derivation on a loaded machine
    for _ in range(60):
        r = subprocess.run(['qemu-img'] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
        if r.returncode == 0:
            return r.stdout
    raise AssertionError('qemu-img %s: %s' % (' '.join(args), r.stderr))


def items(model):
    return [model.get_item(i) for i in range(model.get_n_items())]


class ImageInfoLuksGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-info-luks-gi-')
        qemu_img('create', '-q', '-f', 'qcow2', '--object', SECRET, '-o',
                 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,'
                 'encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,'
                 'encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1', 'luks.qcow2', '1M',
                 cwd=self.dir)
        qemu_img('create', '-q', '-f', 'qcow2', 'plain.qcow2', '1M', cwd=self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def info(self, name):
        return Rechain.Image.open(os.path.join(self.dir, name), None, 0, None).get_info()

    def test_luks_properties_equal_qemu_img(self):
        q = json.loads(qemu_img('info', '--output=json', '--object', SECRET, '--image-opts',
                                'driver=qcow2,file.filename=luks.qcow2,encrypt.key-secret=s0',
                                cwd=self.dir))['format-specific']['data']['encrypt']
        info = self.info('luks.qcow2')
        self.assertEqual(info.props.encryption_format, q['format'])
        for key, prop in LUKS_KEYS.items():
            self.assertEqual(info.get_property(prop), q[key], key)
        slots = items(info.props.luks_slots)
        self.assertEqual(len(slots), len(q['slots']))
        for s, qs in zip(slots, q['slots']):
            self.assertIsInstance(s, Rechain.LuksSlotInfo)
            for key in SLOT_KEYS:
                # qemu-img leaves out iters and stripes of an inactive slot
                self.assertEqual(s.get_property(key), qs.get(key, 0), key)
        self.assertEqual(slots[0].get_iters(), q['slots'][0]['iters'])
        self.assertEqual(json.loads(info.to_json())['format-specific']['data']['encrypt'], q)

    def test_no_luks_properties_without_luks(self):
        info = self.info('plain.qcow2')
        for prop in LUKS_KEYS.values():
            self.assertIn(info.get_property(prop), (None, 0), prop)
        self.assertEqual(info.props.luks_slots.get_n_items(), 0)


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap  # noqa: E402
    run_tap()
