#!/usr/bin/python3
"""rechain's leases against libvirt's real lock manager: a session libvirt
daemon configured with lock_manager = "lockd" and an indirect lockspace
(file_lockspace_dir), with the harness of test_libvirt_daemon.py.

On one machine QEMU's image locks refuse a second opener before libvirt
asks virtlockd for a lease (it does so when the guest CPUs start, after
QEMU has opened the images), so the lease is shown on its own by swapping
a symlink: the domain's disk is a symlink, its lease is named by the
SHA-256 of the symlink's path, and the image behind it changes.
  - virtlockd holds the lease of a running domain's disk path: rechain,
    given that path with no --connect, refuses it (exit 4, "leased by
    libvirt's lock manager"), its image unchanged, even though the image
    now behind the path is idle (no QEMU lock on it);
  - rechain, stopped while it holds the leases of an image (before opening
    its last lease file: the pause-open shim of tests/hostile), makes
    virsh start of a domain whose disk has that path fail; once rechain is
    done, the domain starts.
The lockspace is read from the daemon's own configuration
($XDG_CONFIG_HOME/libvirt/qemu.conf and qemu-lockd.conf), as rechain reads
it for a session daemon.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_libvirt_daemon as tld  # noqa: E402
from test_libvirt_daemon import DaemonBase, backing_of, log, virsh  # noqa: E402

LEASED = "leased by libvirt's lock manager (virtlockd) on this or an unknown host"


def lockspace():
    return os.path.join(os.environ['RECHAIN_VIRT_TOP'], 'lockspace')


def configure_lockd():
    """The session daemon's configuration, written before it starts."""
    conf = os.path.join(os.environ['XDG_CONFIG_HOME'], 'libvirt')
    os.makedirs(conf, exist_ok=True)
    os.makedirs(lockspace(), mode=0o700, exist_ok=True)
    with open(os.path.join(conf, 'qemu.conf'), 'w') as f:
        f.write('lock_manager = "lockd"\n')
    with open(os.path.join(conf, 'qemu-lockd.conf'), 'w') as f:
        f.write('file_lockspace_dir = "%s"\n' % lockspace())


def pause_shim():
    exe = os.environ.get('RECHAIN', '')
    shim = os.path.join(os.path.dirname(exe), '..', '..', 'tests', 'hostile', 'libpause-open.so')
    return os.path.realpath(shim) if exe and os.path.exists(shim) else None


def content(path):
    with open(path, 'rb') as f:
        return f.read()


def rechain_env(extra_preload=None):
    env = dict(os.environ)
    env.pop('RECHAIN_LIBVIRT_CONFDIR', None)  # the daemon's own configuration
    preload = []
    if os.environ.get('RECHAIN_TEST_PRELOAD'):
        preload.append(os.environ['RECHAIN_TEST_PRELOAD'])
        env['ASAN_OPTIONS'] = 'detect_leaks=0'
    if extra_preload:
        preload.append(extra_preload)
    if preload:
        env['LD_PRELOAD'] = ' '.join(preload)
    return env


class LockdTest(DaemonBase):

    def setUp(self):
        super().setUp()
        if not os.environ.get('RECHAIN') or not os.path.exists(os.environ['RECHAIN']):
            self.fail('the rechain tool is not built ($RECHAIN)')

    def link(self, target):
        """The domain's disk path: a symlink beside the pool (not a volume)."""
        path = os.path.join(os.path.dirname(tld.POOLDIR), self.name('disk.qcow2'))
        tmp = path + '.new'
        os.symlink(target, tmp)
        os.replace(tmp, path)
        if path not in self.files:
            self.files.append(path)
        return path

    def lease_file(self, path):
        return os.path.join(lockspace(), hashlib.sha256(path.encode()).hexdigest())

    def rebase(self, path, new, env=None):
        return subprocess.run([os.environ['RECHAIN'], 'rebase', '-b', new, '-F', 'qcow2', path],
                              capture_output=True, text=True, env=env or rechain_env())

    def other(self, b):
        o = self.name('other.qcow2')
        self.make(f"qemu-img create -q -f qcow2 -b {self.p(b)} -F qcow2 {o}")
        return o

    def test_virtlockd_lease_refuses_rechain(self):
        b, t, n = self.chain()
        o = self.other(b)
        disk = self.link(self.p(o))
        dom = self.start_domain(disk)
        # virtlockd holds the domain's lease: the file named by its disk path
        self.assertTrue(os.path.exists(self.lease_file(disk)), os.listdir(lockspace()))
        before = content(self.p(t))
        self.link(self.p(t))  # an idle image behind the leased path
        r = self.rebase(disk, self.p(n))
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn(LEASED, r.stderr)
        self.assertIn(self.lease_file(disk), r.stderr)
        self.assertEqual(content(self.p(t)), before)
        virsh('destroy', dom)
        r = self.rebase(disk, self.p(n))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assert_content_kept(t)

    def test_domain_start_fails_while_rechain_holds_lease(self):
        shim = pause_shim()
        if not shim:
            self.fail('tests/hostile/libpause-open.so is not built beside $RECHAIN')
        b, t, n = self.chain()
        o = self.other(b)
        disk = self.link(self.p(t))
        dom = self.start_domain(disk, start=False)
        # stopped just before the open of its second lease file (the one of
        # the resolved path): the lease of the symlink's path is held
        env = rechain_env(shim)
        env['RECHAIN_TEST_PAUSE_OPEN'] = os.path.basename(self.lease_file(self.p(t)))
        p = subprocess.Popen([os.environ['RECHAIN'], 'rebase', '-b', self.p(n), '-F', 'qcow2',
                              disk], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
        try:
            deadline = time.time() + 60
            state = None
            while time.time() < deadline and p.poll() is None:
                with open('/proc/%d/stat' % p.pid) as f:
                    state = f.read().rsplit(')', 1)[1].split()[0]
                if state == 'T':
                    break
                time.sleep(0.05)
            self.assertEqual(state, 'T', 'rechain did not stop: %s' % (p.poll(),))
            self.link(self.p(o))  # QEMU opens an image rechain does not lock
            r = virsh('start', dom, check=False)
            self.assertNotEqual(r.returncode, 0, 'the domain started while rechain held its lease')
            log('virsh start while rechain holds the lease: ' + r.stderr.strip())
            self.assertIn(os.path.basename(self.lease_file(disk)), r.stderr)
        finally:
            os.kill(p.pid, signal.SIGCONT)
            out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assertFalse(os.path.exists(self.lease_file(disk)))
        virsh('start', dom)


if __name__ == '__main__':
    tld.main(script=__file__, before_inner=configure_lockd)
