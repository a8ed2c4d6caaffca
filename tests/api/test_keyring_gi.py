#!/usr/bin/python3
"""Passphrases from Python through GObject introspection: a
Rechain.Keyring built from bytes, matched by file (device and inode) not by
name, given to Rechain.Image.open_with_keyring and to a RebaseJob's keyring
property; an unsafe rebase of a LUKS image with it (or without one)
changes the backing name, which qemu-img, given the key, confirms."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import gi
gi.require_version('Rechain', '1.0')
from gi.repository import GLib, Rechain  # noqa: E402

# Under AddressSanitizer the runtime is preloaded into this interpreter;
# QEMU's tools must not inherit it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
PASS = b'py-gi-passphrase'


def sh(argv, cwd):
    return subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=CHILD_ENV)


class KeyringGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-keyring-gi-')
        for _ in range(5):  # qemu-img times its key derivation: may fail when loaded
            r = sh(['qemu-img', 'create', '-q', '-f', 'qcow2', '--object',
                    'secret,id=s0,data=' + PASS.decode(), '-o',
                    'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
                    'luks.qcow2', '1M'], self.dir)
            if r.returncode == 0:
                break
        self.assertEqual(r.returncode, 0, r.stderr)
        r = sh(['qemu-img', 'create', '-q', '-f', 'qcow2', 'base.qcow2', '1M'], self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.luks = os.path.join(self.dir, 'luks.qcow2')

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_keyring_matches_files(self):
        keyring = Rechain.Keyring.new()
        self.assertEqual(keyring.get_n_passphrases(), 0)
        self.assertFalse(keyring.has_passphrase(self.luks))
        self.assertTrue(keyring.add_passphrase(self.luks, GLib.Bytes.new(PASS)))
        # another name for the same file finds it
        os.symlink('luks.qcow2', os.path.join(self.dir, 'link.qcow2'))
        self.assertTrue(keyring.has_passphrase(os.path.join(self.dir, 'link.qcow2')))
        self.assertFalse(keyring.has_passphrase(os.path.join(self.dir, 'base.qcow2')))
        # the same file again replaces its passphrase
        keyring.add_passphrase(os.path.join(self.dir, 'link.qcow2'), GLib.Bytes.new(b'other'))
        self.assertEqual(keyring.get_n_passphrases(), 1)
        keyring.add_default_passphrase(GLib.Bytes.new(b'default'))
        self.assertTrue(keyring.has_passphrase(os.path.join(self.dir, 'base.qcow2')))
        self.assertEqual(keyring.get_n_passphrases(), 2)
        with self.assertRaises(GLib.Error) as cm:
            keyring.add_passphrase(os.path.join(self.dir, 'missing.qcow2'), GLib.Bytes.new(PASS))
        self.assertTrue(cm.exception.matches(Rechain.error_quark(),
                                             Rechain.Error.INVALID_ARGUMENT))
        self.assertNotIn(PASS.decode(), str(cm.exception))

    def test_image_and_job_take_it(self):
        keyring = Rechain.Keyring.new()
        keyring.add_passphrase(self.luks, GLib.Bytes.new(PASS))
        image = Rechain.Image.open_with_keyring(self.luks, None, Rechain.ImageOpenFlags.NONE,
                                                None, keyring, None)
        self.assertIs(image.get_keyring(), keyring)
        self.assertEqual(image.get_encryption_format(), 'luks')
        info = image.get_info()
        self.assertTrue(info.props.encrypted)
        self.assertEqual(info.props.encryption_format, 'luks')
        del image

        job = Rechain.RebaseJob(image=self.luks, backing_file='base.qcow2',
                                backing_format='qcow2', mode=Rechain.RebaseMode.UNSAFE,
                                keyring=keyring)
        self.assertIs(job.get_keyring(), keyring)
        self.assertIs(job.props.keyring, keyring)
        self.assertTrue(job.run_sync(None))
        r = sh(['qemu-img', 'info', '--output=json', '--object',
                'secret,id=s0,data=' + PASS.decode(), '--image-opts',
                'driver=qcow2,encrypt.key-secret=s0,file.filename=luks.qcow2'], self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)['backing-filename'], 'base.qcow2')

        # a safe flatten works with the key from the keyring (decrypted,
        # encrypted again) and warns of nothing: the image stays encrypted
        job = Rechain.RebaseJob(image=self.luks, backing_file='', keyring=keyring)
        self.assertTrue(job.run_sync(None))
        self.assertEqual(list(job.get_stats().get_warnings()), [])
        r = sh(['qemu-img', 'check', '--object', 'secret,id=s0,data=' + PASS.decode(),
                '--image-opts', 'driver=qcow2,encrypt.key-secret=s0,file.filename=luks.qcow2'],
               self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)

        # without the key, refused, naming the image
        job = Rechain.RebaseJob(image=self.luks, backing_file='', keyring=Rechain.Keyring.new())
        with self.assertRaises(GLib.Error) as cm:
            job.run_sync(None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.NOT_PERMITTED))
        self.assertIn('luks.qcow2', cm.exception.message)
        self.assertNotIn(PASS.decode(), cm.exception.message)

if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap
    run_tap()
