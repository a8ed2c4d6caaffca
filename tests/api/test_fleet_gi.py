#!/usr/bin/python3
"""Rechain.Fleet from Python through GObject introspection, with no
daemon: the built-in "path" helper as the one host. Linked clones moved in
one pass with typed per-volume results (Rechain.FleetResult: status enum,
reason, bytes); a dry run that writes nothing; a clone another process
holds (qemu-io keeps it open for writing) skipped with its reason under
SKIP_IN_USE and refusing the whole rebase without it; a helper with no
pools cannot list them. qemu-img judges the moved clones."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

import gi
gi.require_version('Rechain', '1.0')
from gi.repository import Gio, GLib, Rechain  # noqa: E402

CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}


def sh(cmd, cwd):
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, env=CHILD_ENV)
    if r.returncode != 0:
        raise AssertionError('%s: %s' % (cmd, r.stderr))
    return r.stdout


class FleetGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-fleet-gi-')
        sh("qemu-img create -q -f qcow2 old.qcow2 16M && "
           "qemu-io -f qcow2 -c 'write -P 0x11 0 4M' old.qcow2 >/dev/null && "
           "qemu-img convert -O qcow2 old.qcow2 new.qcow2 && "
           "qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' new.qcow2 >/dev/null && "
           "for c in a b c; do qemu-img create -q -f qcow2 -b old.qcow2 -F qcow2 $c.qcow2 && "
           "qemu-img convert -O raw $c.qcow2 $c.raw; done", self.dir)
        self.helper = Rechain.VolumeHelper.lookup('path', None, None)
        self.fleet = Rechain.Fleet.new()
        self.assertTrue(self.fleet.add_helper(self.helper))
        self.holder = None

    def tearDown(self):
        if self.holder is not None:
            self.holder.stdin.close()
            self.holder.wait()
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def volumes(self, *names):
        return [Rechain.Volume.new(self.helper, None, None, self.p(n), 'qcow2', None) for n in names]

    def rebase(self, volumes, flags, dry_run=False):
        options = Rechain.RebaseJob(image=self.p('a.qcow2'), backing_file=self.p('new.qcow2'),
                                    backing_format='qcow2', dry_run=dry_run)
        loop = GLib.MainLoop()
        out = {'progress': [], 'images': []}
        main = __import__('threading').current_thread()

        def on_progress(job, pspec):
            self.assertIs(__import__('threading').current_thread(), main)
            out['progress'].append(job.get_progress())

        def started(fleet, job):
            out['started'] = job
            job.connect('notify::progress', on_progress)

            def on_image(job, image):
                self.assertIs(__import__('threading').current_thread(), main)
                self.assertNotIn('results', out)  # before the completion
                out['images'].append((image.props.image, image.props.result))
            job.connect('image-finished', on_image)
        handler = self.fleet.connect('rebase-started', started)

        def done(fleet, res):
            try:
                out['results'], out['job'], out['warnings'] = fleet.rebase_finish(res)
            except GLib.Error as e:
                out['error'] = e
            loop.quit()
        self.fleet.rebase_async(volumes, options, flags, GLib.PRIORITY_DEFAULT, None, done)
        loop.run()
        self.fleet.disconnect(handler)
        self.last = out
        if 'error' in out:
            raise out['error']
        return out['results'], out['job']

    def backing(self, name):
        import json
        info = json.loads(sh('qemu-img info -U --output=json ' + name, self.dir))
        return info.get('backing-filename')

    def test_hosts(self):
        self.assertEqual(self.fleet.get_n_hosts(), 1)
        self.assertEqual(self.fleet.get_host_name(0), socket.gethostname())
        self.assertIs(self.fleet.get_helper(0), self.helper)
        self.assertFalse(self.fleet.get_skip_unreachable())
        self.assertEqual(self.fleet.get_warnings(), [])
        self.assertTrue(self.fleet.check_in_use(self.p('a.qcow2'), True)[0])
        with self.assertRaises(GLib.Error) as cm:
            self.helper.list_volumes('pool', None)
        self.assertTrue(cm.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_SUPPORTED))

    def test_dry_run_then_move(self):
        vols = self.volumes('a.qcow2', 'b.qcow2', 'c.qcow2')
        results, job = self.rebase(vols, Rechain.FleetRebaseFlags.NONE, dry_run=True)
        self.assertEqual([r.get_status() for r in results], [Rechain.FleetStatus.WOULD_MOVE] * 3)
        self.assertEqual([r.get_bytes() for r in results], [65536] * 3)
        self.assertEqual(Rechain.fleet_status_to_string(results[0].get_status()), 'would-move')
        self.assertEqual(self.backing('a.qcow2'), 'old.qcow2')
        self.assertEqual(sorted(self.last['images']),
                         [(self.p(n + '.qcow2'), 'planned') for n in 'abc'])

        results, job = self.rebase(vols, Rechain.FleetRebaseFlags.NONE)
        # each volume told once, as it was switched
        self.assertEqual(sorted(self.last['images']),
                         [(self.p(n + '.qcow2'), 'rebased') for n in 'abc'])
        self.assertEqual(len(job.get_stats().get_images()), 3)  # one pass
        # the job that ran was announced, its progress notified here
        self.assertIs(self.last['started'], job)
        self.assertTrue(self.last['progress'])
        self.assertEqual(self.last['progress'][-1], 1.0)
        for r, n in zip(results, 'abc'):
            self.assertEqual(r.get_status(), Rechain.FleetStatus.MOVED)
            self.assertIsNone(r.get_reason())
            self.assertEqual(r.get_bytes(), 65536)
            self.assertEqual(r.get_volume().get_path(), self.p(n + '.qcow2'))
            self.assertEqual(self.backing(n + '.qcow2'), self.p('new.qcow2'))
            sh('qemu-img compare -f raw -F qcow2 %s.raw %s.qcow2' % (n, n), self.dir)
            sh('qemu-img check %s.qcow2' % n, self.dir)

    def test_held_clone_skipped_or_refused(self):
        # qemu-io keeps b.qcow2 open for writing, with QEMU's locks
        self.holder = subprocess.Popen(['qemu-io', '-f', 'qcow2', self.p('b.qcow2')],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       env=CHILD_ENV)
        sh("for i in $(seq 50); do qemu-img info b.qcow2 >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1",
           self.dir)
        vols = self.volumes('a.qcow2', 'b.qcow2', 'c.qcow2')
        with self.assertRaises(GLib.Error) as cm:
            self.rebase(vols, Rechain.FleetRebaseFlags.NONE)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
        self.assertEqual(self.backing('a.qcow2'), 'old.qcow2')
        results, job = self.rebase(vols, Rechain.FleetRebaseFlags.SKIP_IN_USE)
        st = [r.get_status() for r in results]
        self.assertEqual(st, [Rechain.FleetStatus.MOVED, Rechain.FleetStatus.SKIPPED,
                              Rechain.FleetStatus.MOVED])
        self.assertIn('b.qcow2', results[1].get_reason())
        self.assertEqual(results[1].get_bytes(), -1)
        self.assertEqual(self.backing('b.qcow2'), 'old.qcow2')
        for n in 'ac':
            sh('qemu-img compare -f raw -F qcow2 %s.raw %s.qcow2' % (n, n), self.dir)


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap
    run_tap()
