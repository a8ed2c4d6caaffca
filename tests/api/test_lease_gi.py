#!/usr/bin/python3
"""libvirt's lock manager from Python through GObject introspection:
Rechain.read_libvirt_lock_config reads qemu.conf and qemu-lockd.conf as
libvirt writes them, and a RebaseJob with its lockspace-dir refuses an image
whose indirect lease another process holds (Rechain.Error.IN_USE, the image
unchanged), moves it once the lease is free, and with leases=False ignores
the lease. Jobs run through a volume helper (RechainVolume, RechainFleet)
take the local libvirt's lockspace when given none."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import gi
gi.require_version('Rechain', '1.0')
from gi.repository import GLib, Rechain  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
import rechaintest as rt  # noqa: E402

CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}


def sh(argv, cwd):
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=CHILD_ENV)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r


class LeaseGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-lease-gi-')
        self.space = os.path.join(self.dir, 'lockspace')
        os.mkdir(self.space)
        sh(['qemu-img', 'create', '-q', '-f', 'qcow2', 'base.qcow2', '1M'], self.dir)
        sh(['qemu-img', 'create', '-q', '-f', 'qcow2', 'new.qcow2', '1M'], self.dir)
        sh(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
            'vm.qcow2'], self.dir)
        self.image = os.path.join(self.dir, 'vm.qcow2')

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), 'w') as f:
            f.write(text)

    def test_read_config(self):
        ok, manager, space = Rechain.read_libvirt_lock_config(self.dir)
        self.assertEqual((ok, manager, space), (True, None, None))
        self.write('qemu.conf', 'lock_manager = "lockd"\n')
        self.assertEqual(Rechain.read_libvirt_lock_config(self.dir), (True, 'lockd', None))
        self.write('qemu-lockd.conf', '# file_lockspace_dir = "/old"\n'
                   'file_lockspace_dir = "%s"  # shared\n' % self.space)
        self.assertEqual(Rechain.read_libvirt_lock_config(self.dir), (True, 'lockd', self.space))
        self.write('qemu.conf', "lock_manager = 'sanlock'\n")
        self.assertEqual(Rechain.read_libvirt_lock_config(self.dir), (True, 'sanlock', None))
        os.chmod(os.path.join(self.dir, 'qemu.conf'), 0)
        if os.geteuid() != 0:
            with self.assertRaises(GLib.Error) as cm:
                Rechain.read_libvirt_lock_config(self.dir)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IO))

    def test_job_leases(self):
        job = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2', backing_format='qcow2')
        self.assertTrue(job.props.leases)
        self.assertIsNone(job.props.lockspace_dir)
        lease = os.path.join(self.space, hashlib.sha256(self.image.encode()).hexdigest())
        with open(self.image, 'rb') as f:
            before = f.read()
        holder = rt.LeaseHolder(lease)
        try:
            job = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2',
                                    backing_format='qcow2', lockspace_dir=self.space)
            with self.assertRaises(GLib.Error) as cm:
                job.run_sync(None)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
            self.assertIn("leased by libvirt's lock manager", cm.exception.message)
            with open(self.image, 'rb') as f:
                self.assertEqual(f.read(), before)
            job = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2',
                                    backing_format='qcow2', lockspace_dir=self.space,
                                    leases=False)
            job.run_sync(None)
        finally:
            holder.stop()
        info = sh(['qemu-img', 'info', '-U', '--output=json', self.image], self.dir).stdout
        self.assertIn('"backing-filename": "new.qcow2"', info)

    def test_volume_and_fleet_use_local_lockspace(self):
        """A job run through a volume helper (RechainVolume, RechainFleet)
        with no lockspace-dir gets the one libvirt's lock manager uses on
        this host, as `rechain rebase --pool` does: an indirect lease held
        elsewhere refuses it. A job given its own lockspace-dir keeps it."""
        conf = os.path.join(self.dir, 'conf')
        os.mkdir(conf)
        with open(os.path.join(conf, 'qemu.conf'), 'w') as f:
            f.write('lock_manager = "lockd"\n')
        with open(os.path.join(conf, 'qemu-lockd.conf'), 'w') as f:
            f.write('file_lockspace_dir = "%s"\n' % self.space)
        old = os.environ.get('RECHAIN_LIBVIRT_CONFDIR')
        os.environ['RECHAIN_LIBVIRT_CONFDIR'] = conf
        lease = os.path.join(self.space, hashlib.sha256(self.image.encode()).hexdigest())
        with open(self.image, 'rb') as f:
            before = f.read()
        helper = Rechain.VolumeHelper.lookup('path', None, None)
        holder = rt.LeaseHolder(lease)
        try:
            vol = Rechain.Volume.new(helper, None, None, self.image, 'qcow2', None)
            job = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2',
                                    backing_format='qcow2')
            with self.assertRaises(GLib.Error) as cm:
                vol.rebase_sync(job, 0, None)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE),
                            cm.exception.message)
            self.assertEqual(job.props.lockspace_dir, self.space)
            with open(self.image, 'rb') as f:
                self.assertEqual(f.read(), before)

            # a pool-wide pass (SKIP_IN_USE): the leased volume is skipped,
            # the other one moves
            sh(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                'vm2.qcow2'], self.dir)
            vol2 = Rechain.Volume.new(helper, None, None, os.path.join(self.dir, 'vm2.qcow2'),
                                      'qcow2', None)
            fleet = Rechain.Fleet.new()
            self.assertTrue(fleet.add_helper(helper))
            options = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2',
                                        backing_format='qcow2')
            loop = GLib.MainLoop()
            out = {}

            def done(fleet, res):
                try:
                    out['results'], out['job'], out['warnings'] = fleet.rebase_finish(res)
                except GLib.Error as e:
                    out['error'] = e
                loop.quit()
            for vols in ([vol], [vol, vol2]):
                fleet.rebase_async(vols, options, Rechain.FleetRebaseFlags.SKIP_IN_USE,
                                   GLib.PRIORITY_DEFAULT, None, done)
                loop.run()
                self.assertNotIn('error', out)
                self.assertEqual(out['job'].props.lockspace_dir, self.space)
                res = out['results']
                self.assertEqual(res[0].get_status(), Rechain.FleetStatus.SKIPPED)
                self.assertIn("leased by libvirt's lock manager", res[0].get_reason())
            self.assertEqual(res[1].get_status(), Rechain.FleetStatus.MOVED, res[1].get_reason())
            info = sh(['qemu-img', 'info', '-U', '--output=json', 'vm2.qcow2'], self.dir).stdout
            self.assertIn('"backing-filename": "new.qcow2"', info)
            with open(self.image, 'rb') as f:
                self.assertEqual(f.read(), before)

            # the caller's own lockspace wins (here: an empty one)
            other = os.path.join(self.dir, 'other-space')
            os.mkdir(other)
            job = Rechain.RebaseJob(image=self.image, backing_file='new.qcow2',
                                    backing_format='qcow2', lockspace_dir=other)
            vol.rebase_sync(job, 0, None)
            self.assertEqual(job.props.lockspace_dir, other)
        finally:
            holder.stop()
            if old is None:
                del os.environ['RECHAIN_LIBVIRT_CONFDIR']
            else:
                os.environ['RECHAIN_LIBVIRT_CONFDIR'] = old
        info = sh(['qemu-img', 'info', '-U', '--output=json', self.image], self.dir).stdout
        self.assertIn('"backing-filename": "new.qcow2"', info)


if __name__ == '__main__':
    rt.run_tap()
