#!/usr/bin/python3
# tool-leases: rechain rebase honours and takes the leases of libvirt's lock
# manager, virtlockd, as virtlockd takes them: a process-associated fcntl
# write lock on byte 0 of the image (direct) or of the file of the lockspace
# directory named by the SHA-256 of the image's path (indirect). Another
# process holding one, the way virtlockd does for a running domain on this
# or another host, makes rechain refuse the image (exit 4, image unchanged);
# while rechain writes an image, another process sees both leases held;
# they are gone afterwards. The lockspace comes from --lockspace or from
# libvirt's qemu.conf / qemu-lockd.conf (RECHAIN_LIBVIRT_CONFDIR).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import fcntl
import hashlib
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import LeaseHolder, ToolTestCase, main, qemu_img, run, sha256  # noqa: E402

LEASED = "leased by libvirt's lock manager (virtlockd) on this or an unknown host"


def lease_name(path):
    return hashlib.sha256(path.encode()).hexdigest()


def held_by_other(path):
    """Whether a process other than this one holds a lock on byte 0 of
    @path (F_GETLK for a write lock, as virtlockd's F_SETLK would meet)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # struct flock on Linux/x86-64 and aarch64: type, whence, start, len, pid
        fl = struct.pack('hhxxxxqqixxxx', fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, fl)
        return struct.unpack('hhxxxxqqixxxx', res)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


class LeaseTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        # never the host's own libvirt configuration
        self.confdir = self.path('libvirt')
        os.mkdir(self.confdir)
        self.env = {'RECHAIN_LIBVIRT_CONFDIR': self.confdir}
        self.space = self.path('lockspace')
        os.mkdir(self.space, 0o700)
        qemu_img('create', '-q', '-f', 'qcow2', self.path('base.qcow2'), '4M')
        rt.qemu_io(self.path('base.qcow2'), 'write -P 0x11 0 1M')
        qemu_img('create', '-q', '-f', 'qcow2', self.path('new.qcow2'), '4M')
        rt.qemu_io(self.path('new.qcow2'), 'write -P 0x22 0 2M')
        for name in ('a.qcow2', 'b.qcow2'):
            qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                     self.path(name))
            rt.qemu_io(self.path(name), 'write -P 0x33 3M 64k')

    def run_rechain(self, *args, env=None, expect=None):
        e = dict(self.env)
        e.update(env or {})
        r = run([rt.RECHAIN] + list(args), cwd=self.dir, env=e)
        self.assert_no_crash(r)
        if expect is not None and r.rc != expect:
            self.fail('rechain exit status %d, expected %d\n%s' % (r.rc, expect, r.describe()))
        return r

    def rebase(self, *images, extra=(), env=None, expect=None):
        return self.run_rechain('rebase', '-b', self.path('new.qcow2'), '-F', 'qcow2', *extra,
                                *[self.path(i) for i in images], env=env, expect=expect)

    def write_conf(self, qemu, lockd=None):
        with open(os.path.join(self.confdir, 'qemu.conf'), 'w') as f:
            f.write(qemu)
        if lockd is not None:
            with open(os.path.join(self.confdir, 'qemu-lockd.conf'), 'w') as f:
                f.write(lockd)

    def lease_file(self, image):
        return os.path.join(self.space, lease_name(self.path(image)))

    def assert_moved(self, image):
        info = rt.qemu_info(self.path(image))
        self.assertEqual(info.get('full-backing-filename', info.get('backing-filename')),
                         self.path('new.qcow2'))

    def assert_refused(self, r, image, lease_file=None):
        self.assertEqual(r.rc, 4, r.describe())
        self.assert_error_names(r, image, LEASED)
        if lease_file:
            self.assertIn(lease_file, r.err)

    def test_direct_lease_refused(self):
        before = sha256(self.path('a.qcow2'))
        with LeaseHolder(self.path('a.qcow2')):
            r = self.rebase('a.qcow2')
            self.assert_refused(r, 'a.qcow2')
            self.assertIn('byte 0 of the image', r.err)
            self.assertEqual(sha256(self.path('a.qcow2')), before)
            # unsafe rebases rewrite the header: leased just the same
            r = self.run_rechain('rebase', '-u', '-b', 'new.qcow2', '-F', 'qcow2',
                                 self.path('a.qcow2'))
            self.assert_refused(r, 'a.qcow2')
            self.assertEqual(sha256(self.path('a.qcow2')), before)
            # a dry run reports it as the real run would refuse it
            r = self.rebase('a.qcow2', extra=('--dry-run',))
            self.assert_refused(r, 'a.qcow2')
            # --no-leases is for those who know no libvirt host uses it
            self.rebase('a.qcow2', extra=('--no-leases',), expect=0)
        self.assert_moved('a.qcow2')
        rt.qemu_check(self.path('a.qcow2'))

    def test_indirect_lease_refused(self):
        before = sha256(self.path('a.qcow2'))
        lf = self.lease_file('a.qcow2')
        with LeaseHolder(lf):
            r = self.rebase('a.qcow2', extra=('--lockspace', self.space))
            self.assert_refused(r, 'a.qcow2', lf)
            self.assertEqual(sha256(self.path('a.qcow2')), before)
            # without --lockspace, the direct lease alone is free
            self.assertFalse(held_by_other(self.path('a.qcow2')))
        self.rebase('a.qcow2', extra=('--lockspace', self.space), expect=0)
        self.assert_moved('a.qcow2')
        self.assertEqual(os.listdir(self.space), [])

    def test_lockspace_from_libvirt_config(self):
        before = sha256(self.path('a.qcow2'))
        lf = self.lease_file('a.qcow2')
        # libvirt's syntax, as a hand-edited file may have it
        self.write_conf('# lock_manager = "sanlock"\nlock_manager   =  "lockd"   # virtlockd\n'
                        'security_driver = [ "selinux",\n  "dac" ]\n',
                        "auto_disk_leases = 1\nfile_lockspace_dir = '%s'\n" % self.space)
        with LeaseHolder(lf):
            r = self.rebase('a.qcow2')
            self.assert_refused(r, 'a.qcow2', lf)
            self.assertEqual(sha256(self.path('a.qcow2')), before)
            # auto_disk_leases = 0: virtlockd takes no disk leases there
            self.write_conf('lock_manager = "lockd"\n',
                            'auto_disk_leases = 0\nfile_lockspace_dir = "%s"\n' % self.space)
            self.rebase('b.qcow2', expect=0)
            # no lock manager at all: the direct lease only
            self.write_conf('#lock_manager = "lockd"\n',
                            'file_lockspace_dir = "%s"\n' % self.space)
            self.rebase('a.qcow2', expect=0)
        self.assert_moved('a.qcow2')
        self.assert_moved('b.qcow2')

    def test_missing_lockspace(self):
        before = sha256(self.path('a.qcow2'))
        r = self.rebase('a.qcow2', extra=('--lockspace', self.path('nowhere')))
        self.assertEqual(r.rc, 2, r.describe())
        self.assertIn('lockspace directory %s' % self.path('nowhere'), r.err)
        self.assertEqual(sha256(self.path('a.qcow2')), before)
        r = self.rebase('a.qcow2', extra=('--lockspace', self.space, '--no-leases'))
        self.assertEqual(r.rc, 2, r.describe())

    def test_sanlock_warns(self):
        self.write_conf('lock_manager = "sanlock"\n')
        r = self.rebase('a.qcow2', expect=0)
        self.assertIn('sanlock', r.err)
        self.assertIn('warning', r.err)

    def test_linked_clone_leased_alone(self):
        before = sha256(self.path('b.qcow2'))
        lf = self.lease_file('b.qcow2')
        with LeaseHolder(lf):
            r = self.rebase('a.qcow2', 'b.qcow2', extra=('--lockspace', self.space,
                                                         '--output=json'))
            self.assert_refused(r, 'b.qcow2', lf)
        self.assertEqual(sha256(self.path('b.qcow2')), before)
        self.assert_moved('a.qcow2')
        qemu_img('compare', '-q', self.path('a.qcow2'), self.path('b.qcow2'))
        rt.qemu_check(self.path('a.qcow2'))
        report = json.loads(r.out)
        errors = {os.path.basename(i['image']): i.get('error') for i in report['images']}
        self.assertIsNone(errors['a.qcow2'], r.out)
        self.assertIn(LEASED, json.dumps(errors['b.qcow2']), r.out)

    def test_dry_run_takes_nothing(self):
        self.rebase('a.qcow2', extra=('--dry-run', '--lockspace', self.space), expect=0)
        self.assertEqual(os.listdir(self.space), [])

    def test_held_while_writing(self):
        """rechain stopped just before its first write to the image: both
        leases are held then, by rechain. It is stopped the way the hostile
        tests stop it: its fault log is a FIFO nobody reads, filled so that
        exactly the lines of a first identical run before that write fit."""
        if not os.environ.get('RECHAIN_FAULT_SHIM'):
            self.skipTest('fault shim not built')
        image = self.path('a.qcow2')
        lf = self.lease_file('a.qcow2')
        args = [rt.RECHAIN, 'rebase', '--lockspace', self.space, '-b', self.path('new.qcow2'),
                '-F', 'qcow2', image]
        with open(image, 'rb') as f:
            pristine = f.read()
        e = dict(os.environ, LC_ALL='C.UTF-8', RECHAIN_FAULT_LOG=self.path('log'), **self.env)
        rt.fault_env(e)
        subprocess.run(args, cwd=self.dir, env=e, check=True, stdout=subprocess.DEVNULL)
        with open(self.path('log')) as f:
            lines = f.read().splitlines()
        k = next(i for i, l in enumerate(lines)
                 if l.startswith('write ') and l.split()[1] == image)
        with open(image, 'wb') as f:
            f.write(pristine)

        p, rfd, wfd, cap = self.pause_before(args[1:], lines, k,
                                             env=dict(LC_ALL='C.UTF-8', **self.env))
        try:
            self.assertIsNone(p.poll(), 'rechain did not stay stopped')
            self.assertTrue(os.path.exists(lf))
            self.assertTrue(held_by_other(lf), 'no indirect lease while writing')
            self.assertTrue(held_by_other(image), 'no direct lease while writing')
        finally:
            r = self.resume(p, rfd, wfd)
        self.assertEqual(r.rc, 0, r.describe())
        self.assert_moved('a.qcow2')
        # released after the switch: the lease file is gone as virtlockd
        # removes it, and the image is free
        self.assertFalse(os.path.exists(lf))
        self.assertFalse(held_by_other(image))

if __name__ == '__main__':
    main()
