#!/usr/bin/python3
"""The library as a Python VM manager uses it, through GObject
introspection (gi.repository.Rechain): open an image, rebase it
asynchronously in a GLib main loop counting progress notifications, cancel
one, match errors; follow 40 linked clones image by image
(RebaseJob::image-finished); qemu-img judges the results."""

import os
import shutil
import sys
import subprocess
import tempfile
import threading
import unittest

import gi
gi.require_version('Rechain', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib, Rechain  # noqa: E402


# Under AddressSanitizer the runtime is preloaded into this interpreter
# (it loads the instrumented library); QEMU's tools must not inherit it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}


def sh(cmd, cwd):
    return subprocess.run(cmd, shell=True, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=CHILD_ENV)


class RechainGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-gi-')
        r = sh("qemu-img create -q -f qcow2 base.qcow2 512M && "
               "qemu-io -f qcow2 -c 'write -P 0x33 0 128M' base.qcow2 && "
               "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
               "qemu-io -f qcow2 -c 'write -P 0x44 4M 1M' top.qcow2 && "
               "qemu-img convert -O raw top.qcow2 before.raw", self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.top = os.path.join(self.dir, 'top.qcow2')

    def tearDown(self):
        shutil.rmtree(self.dir)

    def assert_check_clean(self, name):
        """qemu-img check finds nothing at all: no corruption, no leaked
        cluster, no check error (exit status 0, not 3 for leaks)."""
        import json
        r = sh('qemu-img check --output=json %s' % name, self.dir)
        self.assertEqual(r.returncode, 0, '%s: qemu-img check is not clean:\n%s%s'
                         % (name, r.stdout, r.stderr))
        c = json.loads(r.stdout)
        for k in ('corruptions', 'leaks', 'check-errors', 'corruptions-fixed',
                  'leaks-fixed'):
            self.assertEqual(c.get(k, 0), 0, '%s: %s\n%s' % (name, k, r.stdout))

    def assert_content_unchanged(self, *others):
        r = sh('qemu-img compare -q -f raw -F qcow2 before.raw top.qcow2', self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name in ('top.qcow2',) + others:
            self.assert_check_clean(name)

    def backing(self):
        r = sh('qemu-img info --output=json top.qcow2', self.dir)
        import json
        return json.loads(r.stdout).get('backing-filename')

    def test_open_image(self):
        img = Rechain.Image.open(self.top, None, Rechain.ImageOpenFlags.NONE, None)
        self.assertEqual(img.props.format, 'qcow2')
        self.assertEqual(img.props.virtual_size, 512 << 20)
        self.assertEqual(img.props.backing_file, 'base.qcow2')
        self.assertEqual(img.get_chain_length(), 2)
        base = img.get_backing_image()
        self.assertEqual(os.path.basename(base.get_path()), 'base.qcow2')
        extents = img.get_extents(0, img.get_virtual_size())
        data = [(e.offset, e.length, e.depth) for e in extents
                if e.kind == Rechain.ExtentKind.DATA]
        self.assertEqual(data, [(0, 4 << 20, 1), (4 << 20, 1 << 20, 0),
                                (5 << 20, 123 << 20, 1)])

    def test_open_async(self):
        loop = GLib.MainLoop()
        result = {}

        def done(source, res):
            result['image'] = Rechain.Image.open_finish(res)
            loop.quit()
        Rechain.Image.open_async(self.top, 'qcow2', Rechain.ImageOpenFlags.NO_BACKING,
                                 GLib.PRIORITY_DEFAULT, None, done)
        loop.run()
        self.assertEqual(result['image'].get_chain_length(), 1)

    def test_errors_match_the_domain(self):
        with self.assertRaises(GLib.Error) as cm:
            Rechain.Image.open(os.path.join(self.dir, 'missing.qcow2'), None, 0, None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(),
                                             Rechain.Error.BACKING_NOT_FOUND))
        self.assertIn('missing.qcow2', cm.exception.message)

    def test_async_safe_rebase(self):
        job = Rechain.RebaseJob(image=self.top, backing_file='',
                                mode=Rechain.RebaseMode.SAFE)
        self.assertEqual(job.props.state, Rechain.JobState.CREATED)
        loop = GLib.MainLoop()
        seen = []
        main = threading.current_thread()
        result = {}

        def on_progress(j, pspec):
            self.assertIs(threading.current_thread(), main)
            seen.append(j.props.progress)

        def done(j, res):
            result['ok'] = j.run_finish(res)
            loop.quit()
        job.connect('notify::progress', on_progress)
        job.run_async(GLib.PRIORITY_DEFAULT, None, done)
        loop.run()
        self.assertTrue(result['ok'])
        self.assertEqual(job.props.state, Rechain.JobState.COMPLETED)
        self.assertGreaterEqual(len(seen), 1)
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(seen[-1], 1.0)
        stats = job.get_stats()
        self.assertEqual(len(stats.get_images()), 1)
        self.assertEqual(stats.get_images()[0].props.bytes_written, 127 << 20)
        self.assertIsNone(self.backing())
        self.assert_content_unchanged()

    def test_cancelled_rebase(self):
        job = Rechain.RebaseJob(image=self.top, backing_file='',
                                cache_mode=Rechain.CacheMode.WRITETHROUGH)
        cancellable = Gio.Cancellable()
        cancellable.cancel()
        loop = GLib.MainLoop()
        result = {}

        def done(j, res):
            try:
                j.run_finish(res)
                result['error'] = None
            except GLib.Error as e:
                result['error'] = e
            loop.quit()
        job.run_async(GLib.PRIORITY_DEFAULT, cancellable, done)
        loop.run()
        self.assertTrue(result['error'].matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))
        self.assertEqual(job.props.state, Rechain.JobState.CANCELLED)
        self.assertEqual(self.backing(), 'base.qcow2')
        self.assert_content_unchanged()

    def test_linked_clones_and_plan(self):
        r = sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 clone.qcow2 && "
               "qemu-img convert -O qcow2 base.qcow2 new.qcow2 && "
               "qemu-io -f qcow2 -c 'write -P 0x55 64M 64k' new.qcow2", self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = Rechain.RebaseJob(image=self.top, backing_file='new.qcow2',
                                backing_format='qcow2',
                                linked_images=[os.path.join(self.dir, 'clone.qcow2')])
        plan = job.plan(None)
        self.assertTrue(plan.get_dry_run())
        self.assertEqual([i.props.result for i in plan.get_images()], ['planned', 'planned'])
        self.assertTrue(job.run_sync(None))
        stats = job.get_stats()
        self.assertEqual(len(stats.get_images()), 2)
        # one 64 KiB difference, found once, copied into both
        self.assertEqual(stats.get_bytes_differing(), 65536)
        self.assertEqual([i.props.bytes_written for i in stats.get_images()], [65536, 65536])
        self.assertEqual(self.backing(), 'new.qcow2')
        self.assert_content_unchanged('clone.qcow2')


class ImageFinishedGiTest(unittest.TestCase):
    """Rechain.RebaseJob::image-finished from Python: one emission per
    image as it ends, in the caller's main context, before the completion,
    with the outcome the final statistics give it."""

    N = 40  # linked clones: more than rebase in one batch

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-gi-events-')
        cmds = ["qemu-img create -q -f qcow2 base.qcow2 4M",
                "qemu-io -f qcow2 -c 'write -P 0x11 0 4M' base.qcow2",
                "qemu-img convert -O qcow2 base.qcow2 new.qcow2",
                "qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' new.qcow2",
                "qemu-img convert -O qcow2 base.qcow2 other.qcow2",
                "mkdir orig"]
        self.clones = []
        for i in range(self.N):
            c = 'c%02d.qcow2' % i
            cmds.append("qemu-img create -q -f qcow2 -b %s/base.qcow2 -F qcow2 %s" % (self.dir, c))
            # each its own data, away from where the templates differ
            cmds.append("qemu-io -f qcow2 -c 'write -P %d %dk 4k' %s" % (0x30 + i, 2048 + 32 * i, c))
            self.clones.append(self.p(c))
        # another template's clone: refused alone
        cmds.append("qemu-img create -q -f qcow2 -b %s/other.qcow2 -F qcow2 odd.qcow2" % self.dir)
        cmds.append("cp *.qcow2 orig/")
        r = sh(' && '.join(cmds), self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def job(self, images, **props):
        props.setdefault('backing_file', self.p('new.qcow2'))
        props.setdefault('backing_format', 'qcow2')
        return Rechain.RebaseJob(image=images[0], linked_images=images[1:], **props)

    def watch(self, job, out):
        main = threading.current_thread()

        def on_image(j, image):
            self.assertIs(j, job)
            out.append({'image': image.props.image, 'result': image.props.result,
                        'error': image.props.error.message if image.props.error else None,
                        'bytes-written': image.props.bytes_written,
                        'main-thread': threading.current_thread() is main,
                        'state': j.props.state})
        job.connect('image-finished', on_image)

    def run_async(self, job, cancellable=None):
        loop = GLib.MainLoop()
        seen = []
        result = {}
        self.watch(job, seen)

        def done(j, res):
            result['emissions'] = len(seen)
            try:
                result['ok'] = j.run_finish(res)
            except GLib.Error as e:
                result['error'] = e
            loop.quit()
        job.run_async(GLib.PRIORITY_DEFAULT, cancellable, done)
        loop.run()
        # none after the completion
        self.assertEqual(result['emissions'], len(seen))
        return seen, result

    def assert_like_stats(self, seen, job, result):
        stats = {s.props.image: s for s in job.get_stats().get_images()}
        count = {}
        for e in seen:
            count[e['image']] = count.get(e['image'], 0) + 1
        self.assertEqual(count, {i: 1 for i in stats}, 'not one emission per image')
        for e in seen:
            s = stats[e['image']]
            self.assertTrue(e['main-thread'], e)
            self.assertEqual(e['state'], Rechain.JobState.RUNNING, e)
            self.assertEqual(e['result'], s.props.result, e)
            self.assertEqual(e['error'], s.props.error.message if s.props.error else None, e)
            self.assertEqual(e['bytes-written'], s.props.bytes_written, e)

    def assert_same_content(self, name):
        r = sh('qemu-img compare -q orig/%s %s && qemu-img check -q %s' % (name, name, name),
               self.dir)
        self.assertEqual(r.returncode, 0, '%s: %s%s' % (name, r.stdout, r.stderr))

    def backing(self, name):
        import json
        r = sh('qemu-img info -U --output=json %s' % name, self.dir)
        return json.loads(r.stdout).get('backing-filename')

    def test_linked_clones_one_emission_each(self):
        images = self.clones[:25] + [self.p('odd.qcow2')] + self.clones[25:]
        job = self.job(images)
        seen, result = self.run_async(job)
        self.assertIn('error', result)  # odd's
        self.assertEqual(len(seen), self.N + 1)
        self.assert_like_stats(seen, job, result)
        for e in seen:
            if e['image'] == self.p('odd.qcow2'):
                self.assertEqual(e['result'], 'failed')
                self.assertIn('backing chain differs', e['error'])
            else:
                self.assertEqual(e['result'], 'rebased', e)
                self.assertEqual(e['bytes-written'], 65536, e)
        for c in self.clones:
            self.assertEqual(self.backing(c), self.p('new.qcow2'))
            self.assert_same_content(os.path.basename(c))
        self.assertEqual(self.backing('odd.qcow2'), self.p('other.qcow2'))
        self.assert_same_content('odd.qcow2')

    def test_dry_run_sync_and_plan(self):
        job = self.job(self.clones, dry_run=True)
        # plan() is no run: no emission
        plan_seen = []
        self.watch(job, plan_seen)
        job.plan(None)
        self.assertEqual(plan_seen, [])
        # run_sync: on the calling thread, while it runs
        self.assertTrue(job.run_sync(None))
        self.assertEqual(len(plan_seen), self.N)
        self.assert_like_stats(plan_seen, job, {})
        self.assertEqual({e['result'] for e in plan_seen}, {'planned'})
        for c in self.clones:
            self.assertEqual(self.backing(c), self.p('base.qcow2'))

    def test_cancelled_each_failed_once(self):
        # few enough to be opened at once: the cancellation reaches every one
        job = self.job(self.clones[:3])
        cancellable = Gio.Cancellable()
        cancellable.cancel()
        seen, result = self.run_async(job, cancellable)
        self.assertTrue(result['error'].matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))
        self.assertEqual(len(seen), 3)
        self.assert_like_stats(seen, job, result)
        self.assertEqual({e['result'] for e in seen}, {'failed'})
        for c in self.clones[:3]:
            self.assertEqual(self.backing(c), self.p('base.qcow2'))

    def test_unsafe_each_image(self):
        job = self.job(self.clones[:5], mode=Rechain.RebaseMode.UNSAFE)
        seen, result = self.run_async(job)
        self.assertTrue(result.get('ok'), result)
        self.assertEqual(len(seen), 5)
        self.assert_like_stats(seen, job, result)
        # one after the other, in their order
        self.assertEqual([e['image'] for e in seen], self.clones[:5])
        self.assertEqual({e['result'] for e in seen}, {'rebased'})
        for c in self.clones[:5]:
            self.assertEqual(self.backing(c), self.p('new.qcow2'))


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap
    run_tap()
