#!/usr/bin/python3
"""Unit tests of the volume helpers through GObject introspection, without a
daemon: the extension point and module loading (RECHAIN_MODULE_DIR), the
built-in "path" helper, and the libvirt helper's resolution and in-use
logic against libvirt's test:/// driver with a node XML that describes real
qemu-img-made images (a running domain whose disk is top <- mid <- base, a
shut-off one that uses mid). The real-daemon tests are
test_libvirt_daemon.py; these do not replace them."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

# A sanitized build: the runtime first, in this process only (qemu-img must
# not inherit it).
PRELOAD = os.environ.get('RECHAIN_TEST_PRELOAD', '')
if PRELOAD and os.environ.get('LD_PRELOAD') != PRELOAD:
    os.environ.update(LD_PRELOAD=PRELOAD, ASAN_OPTIONS='detect_leaks=0')
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ.pop('LD_PRELOAD', None)

import gi  # noqa: E402
gi.require_version('Rechain', '1.0')
from gi.repository import GLib, Gio, Rechain  # noqa: E402

MODULE_DIR = os.environ.get('RECHAIN_MODULE_DIR', '')
HAVE_LIBVIRT = bool(MODULE_DIR) and os.path.exists(os.path.join(MODULE_DIR, 'librechain-libvirt.so'))


def sh(cmd, cwd):
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, cmd + ': ' + r.stderr
    return r.stdout


def backing_of(path):
    info = json.loads(sh('qemu-img info -U --output=json ' + path, '/'))
    return info.get('backing-filename'), info.get('backing-filename-format')


NODE_XML = '''<node>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>runner</name><memory>65536</memory><os><type>hvm</type></os>
    <devices>
      <disk type="file" device="disk"><driver name="qemu" type="qcow2"/>
        <source file="{d}/top.qcow2"/><target dev="vda" bus="virtio"/></disk>
      <disk type="volume" device="disk"><driver name="qemu" type="qcow2"/>
        <source pool="p" volume="other.qcow2"/><target dev="vdc" bus="virtio"/></disk>
    </devices>
  </domain>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>sleeper</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><disk type="file" device="disk"><driver name="qemu" type="qcow2"/>
      <source file="{d}/mid.qcow2"/><target dev="vdb" bus="virtio"/></disk></devices>
    <test:runstate>5</test:runstate>
  </domain>
  <pool type="dir">
    <name>p</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
    <target><path>{d}</path></target>
    <volume type="file"><name>top.qcow2</name><capacity>16777216</capacity>
      <target><path>{d}/top.qcow2</path><format type="qcow2"/></target></volume>
    <volume type="file"><name>free.qcow2</name><capacity>16777216</capacity>
      <target><path>{d}/free.qcow2</path><format type="qcow2"/></target></volume>
    <volume type="file"><name>other.qcow2</name><capacity>16777216</capacity>
      <target><path>{d}/other.qcow2</path><format type="qcow2"/></target></volume>
    <volume type="file"><name>new.qcow2</name><capacity>16777216</capacity>
      <target><path>{d}/new.qcow2</path><format type="qcow2"/></target></volume>
  </pool>
</node>
'''


class ExtensionPointTest(unittest.TestCase):

    def test_builtin_path_helper_is_listed(self):
        self.assertIn('path', Rechain.VolumeHelper.list())

    def test_modules_come_from_rechain_module_dir(self):
        # A fresh process: modules are loaded once per process.
        empty = tempfile.mkdtemp(prefix='rechain-nomod-')
        try:
            code = ('import gi; gi.require_version("Rechain", "1.0"); '
                    'from gi.repository import Rechain; print(",".join(Rechain.VolumeHelper.list()))')
            env = dict(os.environ, RECHAIN_MODULE_DIR=empty)
            if PRELOAD:
                env['LD_PRELOAD'] = PRELOAD
            out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                                 text=True, check=True).stdout.strip()
            self.assertEqual(out, 'path')
            if HAVE_LIBVIRT:
                # a search path: the first directory has nothing, the second the plugin
                env['RECHAIN_MODULE_DIR'] = empty + ':' + MODULE_DIR
                out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                                     text=True, check=True).stdout.strip()
                self.assertEqual(out, 'libvirt,path')
        finally:
            shutil.rmtree(empty)

    def test_unknown_helper(self):
        with self.assertRaises(GLib.Error) as cm:
            Rechain.VolumeHelper.lookup('no-such-helper', None, None)
        self.assertTrue(cm.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND))
        self.assertIn('no-such-helper', cm.exception.message)
        self.assertIn('path', cm.exception.message)


class PathHelperTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-path-')
        sh('qemu-img create -q -f qcow2 base.qcow2 8M && qemu-img create -q -f raw new.raw 8M && '
           'qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2', self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_resolve_and_rebase(self):
        top = Rechain.Volume.resolve('path', None, None, os.path.join(self.dir, 'top.qcow2'), None)
        self.assertEqual(top.get_path(), os.path.join(self.dir, 'top.qcow2'))
        self.assertEqual(top.get_format(), 'qcow2')
        self.assertIsNone(top.get_pool())
        new = top.get_helper().resolve(None, os.path.join(self.dir, 'new.raw'), None)
        self.assertEqual(new.get_format(), 'raw')
        self.assertEqual(new.get_backing_name(), os.path.join(self.dir, 'new.raw'))
        self.assertEqual(top.get_helper().get_users(top.get_path(), None), [])
        job = top.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE)
        ok, warnings = top.rebase_sync(job, Rechain.VolumeRebaseFlags.STRICT, None)
        self.assertTrue(ok)
        self.assertEqual(warnings, [])
        self.assertEqual(backing_of(top.get_path()), (os.path.join(self.dir, 'new.raw'), 'raw'))

    def test_users_are_processes_with_the_file_open(self):
        """The path helper's users: processes that have the file open. A
        writer (qemu-io holding the image) is active and refused; a reader
        that is not QEMU is reported inactive (refused only when strict)."""
        import time
        top = os.path.join(self.dir, 'top.qcow2')
        helper = Rechain.VolumeHelper.lookup('path', None, None)
        self.assertEqual(helper.get_users(top, None), [])
        reader = subprocess.Popen(['sh', '-c', 'exec sleep 600 < "$0"', top])
        writer = None
        try:
            deadline = time.monotonic() + 60
            # the shell opens the file, then execs sleep: until the exec the
            # user is "sh" (a race the test lost once on a loaded machine)
            while (not helper.get_users(top, None) or
                   open('/proc/%d/comm' % reader.pid).read().strip() != 'sleep'):
                self.assertLess(time.monotonic(), deadline, 'the reader never showed up')
                time.sleep(0.05)
            users = helper.get_users(top, None)
            self.assertEqual([(u.domain, u.source, u.active) for u in users],
                             [('process sleep (pid %d)' % reader.pid, top, False)])
            ok, warnings = helper.check_in_use(top, False, None)
            self.assertTrue(ok)
            self.assertEqual(len(warnings), 1)
            self.assertIn('sleep', warnings[0])
            with self.assertRaises(GLib.Error) as cm:
                helper.check_in_use(top, True, None)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))

            writer = subprocess.Popen(['qemu-io', '-f', 'qcow2', '-c', 'sleep 600000', top],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      env={k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'})
            while len(helper.get_users(top, None)) < 2:
                self.assertLess(time.monotonic(), deadline, 'qemu-io never showed up')
                time.sleep(0.05)
            active = [u for u in helper.get_users(top, None) if u.active]
            self.assertEqual([u.domain for u in active], ['process qemu-io (pid %d)' % writer.pid])
            with self.assertRaises(GLib.Error) as cm:
                helper.check_in_use(top, False, None)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
            self.assertIn('qemu-io', cm.exception.message)
        finally:
            for p in (reader, writer):
                if p:
                    p.kill()
                    p.wait()

    def test_missing_file_and_pools(self):
        with self.assertRaises(GLib.Error) as cm:
            Rechain.Volume.resolve('path', None, None, os.path.join(self.dir, 'nope.qcow2'), None)
        self.assertTrue(cm.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND))
        with self.assertRaises(GLib.Error) as cm:
            Rechain.Volume.resolve('path', None, 'p', 'top.qcow2', None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.INVALID_ARGUMENT))

    def test_job_must_be_for_the_volume(self):
        top = Rechain.Volume.resolve('path', None, None, os.path.join(self.dir, 'top.qcow2'), None)
        job = Rechain.RebaseJob(image=os.path.join(self.dir, 'base.qcow2'), backing_file='',
                                mode=Rechain.RebaseMode.UNSAFE)
        with self.assertRaises(GLib.Error) as cm:
            top.rebase_sync(job, 0, None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.INVALID_ARGUMENT))
        self.assertEqual(job.props.state, Rechain.JobState.CREATED)


@unittest.skipUnless(HAVE_LIBVIRT, 'the libvirt plugin is not built (meson -Dlibvirt=enabled)')
class LibvirtTestDriverTest(unittest.TestCase):
    """libvirt's test driver: running domain "runner" (vda: top <- mid <-
    base, vdc: pool volume other.qcow2), shut-off domain "sleeper" (vdb:
    mid). free.qcow2 and new.qcow2 are used by nobody."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-testdrv-')
        sh('qemu-img create -q -f qcow2 base.qcow2 16M && '
           f'qemu-img create -q -f qcow2 -b {self.dir}/base.qcow2 -F qcow2 mid.qcow2 && '
           'qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 && '
           'qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 free.qcow2 && '
           'qemu-img create -q -f qcow2 other.qcow2 16M && qemu-img create -q -f qcow2 new.qcow2 16M',
           self.dir)
        with open(os.path.join(self.dir, 'node.xml'), 'w') as f:
            f.write(NODE_XML.format(d=self.dir))
        self.uri = 'test://' + os.path.join(self.dir, 'node.xml')
        self.helper = Rechain.VolumeHelper.lookup('libvirt', self.uri, None)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def test_resolve_pool_volume(self):
        v = self.helper.resolve('p', 'top.qcow2', None)
        self.assertEqual((v.get_pool(), v.get_name(), v.get_path(), v.get_format()),
                         ('p', 'top.qcow2', self.p('top.qcow2'), 'qcow2'))
        self.assertEqual(v.get_backing_name(), self.p('top.qcow2'))
        self.assertEqual(self.helper.get_name(), 'libvirt')
        self.assertEqual(self.helper.get_uri(), self.uri)
        # by path: a volume of a pool, and a file outside the pools
        v = self.helper.resolve(None, self.p('new.qcow2'), None)
        self.assertEqual((v.get_pool(), v.get_name()), ('p', 'new.qcow2'))
        v = self.helper.resolve('p', self.p('base.qcow2'), None)
        self.assertEqual((v.get_pool(), v.get_path(), v.get_format()), (None, self.p('base.qcow2'), 'qcow2'))

    def test_unknown_pool_and_volume(self):
        for pool, name in (('nopool', 'top.qcow2'), ('p', 'novol.qcow2'), (None, self.p('nofile'))):
            with self.assertRaises(GLib.Error) as cm:
                self.helper.resolve(pool, name, None)
            self.assertTrue(cm.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND),
                            cm.exception.message)
            self.assertIn(self.uri, cm.exception.message)
        with self.assertRaises(GLib.Error) as cm:
            self.helper.resolve(None, 'top.qcow2', None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.INVALID_ARGUMENT))

    def test_storage_dirs_and_confinement(self):
        # the target path of the node's one (dir) pool
        self.assertEqual(self.helper.get_storage_dirs(None), [self.dir])
        # free.qcow2 -> base.qcow2 stays in it: opened; a chain that leaves it
        # is refused, naming the volume and the path, unless trusted
        self.helper.resolve('p', 'free.qcow2', None).open_image(
            None, Rechain.ImageOpenFlags.FORCE_SHARE, None, None)
        outside = tempfile.mkdtemp(prefix='rechain-outside-')
        try:
            sh('qemu-img create -q -f qcow2 o.qcow2 16M', outside)
            sh(f'qemu-img rebase -u -b {outside}/o.qcow2 -F qcow2 free.qcow2', self.dir)
            vol = self.helper.resolve('p', 'free.qcow2', None)
            with self.assertRaises(GLib.Error) as cm:
                vol.open_image(None, Rechain.ImageOpenFlags.FORCE_SHARE, None, None)
            e = cm.exception
            self.assertTrue(e.matches(Rechain.error_quark(), Rechain.Error.NOT_PERMITTED), e.message)
            for w in ("volume 'free.qcow2' of pool 'p'", outside + '/o.qcow2', self.dir, self.uri):
                self.assertIn(w, e.message)
            with self.assertRaises(GLib.Error) as cm:
                vol.rebase_sync(vol.new_rebase_job(self.helper.resolve('p', 'new.qcow2', None), None,
                                                   Rechain.RebaseMode.SAFE),
                                Rechain.VolumeRebaseFlags.NO_CHECK, None)
            self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.NOT_PERMITTED))
            self.assertEqual(backing_of(self.p('free.qcow2'))[0], outside + '/o.qcow2')
            vol.open_image(None, Rechain.ImageOpenFlags.FORCE_SHARE | Rechain.ImageOpenFlags.TRUST_CHAIN,
                           None, None)
        finally:
            shutil.rmtree(outside)

    def users(self, name):
        return sorted((u.domain, u.disk, os.path.basename(u.source), u.active)
                      for u in self.helper.get_users(self.p(name), None))

    def test_users_follow_backing_chains(self):
        self.assertEqual(self.users('top.qcow2'), [('runner', 'vda', 'top.qcow2', True)])
        self.assertEqual(self.users('mid.qcow2'), [('runner', 'vda', 'top.qcow2', True),
                                                   ('sleeper', 'vdb', 'mid.qcow2', False)])
        # two levels down, found through the images' own headers
        self.assertEqual(self.users('base.qcow2'), [('runner', 'vda', 'top.qcow2', True),
                                                    ('sleeper', 'vdb', 'mid.qcow2', False)])
        self.assertEqual(self.users('other.qcow2'), [('runner', 'vdc', 'other.qcow2', True)])
        self.assertEqual(self.users('free.qcow2'), [])

    def test_check_in_use(self):
        with self.assertRaises(GLib.Error) as cm:
            self.helper.check_in_use(self.p('base.qcow2'), False, None)
        e = cm.exception
        self.assertTrue(e.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
        for word in ('"runner"', 'vda', 'top.qcow2', 'backing chain', self.uri):
            self.assertIn(word, e.message)
        ok, warnings = self.helper.check_in_use(self.p('free.qcow2'), True, None)
        self.assertTrue(ok)
        self.assertEqual(warnings, [])

    def test_rebase_refused_then_allowed(self):
        mid = self.helper.resolve(None, self.p('mid.qcow2'), None)
        new = self.helper.resolve('p', 'new.qcow2', None)
        job = mid.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE)
        with self.assertRaises(GLib.Error) as cm:
            mid.rebase_sync(job, 0, None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
        self.assertEqual(job.props.state, Rechain.JobState.CREATED)
        self.assertEqual(backing_of(self.p('mid.qcow2'))[0], self.p('base.qcow2'))

        # free.qcow2 is used by nobody: rebased, with the pool refreshed
        free = self.helper.resolve('p', 'free.qcow2', None)
        job = free.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE)
        ok, warnings = free.rebase_sync(job, Rechain.VolumeRebaseFlags.STRICT, None)
        self.assertTrue(ok)
        self.assertEqual(warnings, [])
        self.assertEqual(backing_of(self.p('free.qcow2')), (self.p('new.qcow2'), 'qcow2'))

    def test_inactive_domain_warns_strict_refuses(self):
        # a node where runner no longer uses mid: only sleeper references it
        xml = NODE_XML.format(d=self.dir).replace('<source file="{}/top.qcow2"/>'.format(self.dir),
                                                  '<source file="{}/free.qcow2"/>'.format(self.dir))
        with open(self.p('node2.xml'), 'w') as f:
            f.write(xml)
        helper = Rechain.VolumeHelper.lookup('libvirt', 'test://' + self.p('node2.xml'), None)
        vol = helper.resolve(None, self.p('mid.qcow2'), None)
        with self.assertRaises(GLib.Error) as cm:
            vol.rebase_sync(vol.new_rebase_job(None, None, Rechain.RebaseMode.UNSAFE),
                            Rechain.VolumeRebaseFlags.STRICT, None)
        self.assertTrue(cm.exception.matches(Rechain.error_quark(), Rechain.Error.IN_USE))
        self.assertIn('"sleeper"', cm.exception.message)
        self.assertIn('strict', cm.exception.message)
        # without --strict: a warning; --backing-name overrides the name recorded
        new = helper.resolve('p', 'new.qcow2', None)
        ok, warnings = vol.rebase_sync(vol.new_rebase_job(new, 'new.qcow2', Rechain.RebaseMode.UNSAFE),
                                       0, None)
        self.assertTrue(ok)
        self.assertEqual(len(warnings), 1)
        self.assertIn('inactive domain "sleeper"', warnings[0])
        self.assertEqual(backing_of(self.p('mid.qcow2')), ('new.qcow2', 'qcow2'))


    # -- issue 16: listing a pool, and a fleet of one host (the test driver)

    def fleet_node(self):
        """The node with top2.qcow2 (an idle clone of mid, as top is)."""
        sh('qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top2.qcow2', self.dir)
        vol = ('    <volume type="file"><name>top2.qcow2</name><capacity>16777216</capacity>\n'
               '      <target><path>%s/top2.qcow2</path><format type="qcow2"/></target></volume>\n'
               '  </pool>' % self.dir)
        with open(self.p('node2.xml'), 'w') as f:
            f.write(NODE_XML.format(d=self.dir).replace('  </pool>', vol))
        return Rechain.VolumeHelper.lookup('libvirt', 'test://' + self.p('node2.xml'), None)

    def test_list_volumes(self):
        helper = self.fleet_node()
        vols = sorted((v.get_name(), v.get_pool(), v.get_path(), v.get_format())
                      for v in helper.list_volumes('p', None))
        self.assertEqual(vols, [(n, 'p', self.p(n), 'qcow2') for n in
                                ('free.qcow2', 'new.qcow2', 'other.qcow2', 'top.qcow2', 'top2.qcow2')])
        with self.assertRaises(GLib.Error) as cm:
            helper.list_volumes('nopool', None)
        self.assertTrue(cm.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND))

    def test_fleet_selects_clones_and_skips_the_busy_one(self):
        import socket
        fleet = Rechain.Fleet.new()
        fleet.add_helper(self.fleet_node())
        # by the headers: top and top2 name mid; free names base
        self.assertEqual([v.get_name() for v in fleet.select_clones('p', self.p('mid.qcow2'), None)],
                         ['top.qcow2', 'top2.qcow2'])
        self.assertEqual([v.get_name() for v in fleet.select_clones('p', self.p('base.qcow2'), None)],
                         ['free.qcow2'])
        self.assertEqual(fleet.select_clones('p', 'new.qcow2', None), [])
        clones = fleet.select_clones('p', self.p('mid.qcow2'), None)
        new = fleet.resolve('p', 'new.qcow2', None)
        options = Rechain.RebaseJob(image=clones[0].get_path(), backing_file=new.get_path(),
                                    backing_format='qcow2', mode=Rechain.RebaseMode.UNSAFE)
        loop = GLib.MainLoop()
        out = {}

        def done(f, res):
            try:
                out['r'] = f.rebase_finish(res)
            except GLib.Error as e:
                out['e'] = e
            loop.quit()
        # refused as a whole without SKIP_IN_USE, nothing written
        fleet.rebase_async(clones, options, Rechain.FleetRebaseFlags.NONE, 0, None, done)
        loop.run()
        self.assertTrue(out['e'].matches(Rechain.error_quark(), Rechain.Error.IN_USE))
        self.assertIn('runner on %s' % socket.gethostname(), out['e'].message)
        self.assertEqual(backing_of(self.p('top2.qcow2'))[0], 'mid.qcow2')
        fleet.rebase_async(clones, options, Rechain.FleetRebaseFlags.SKIP_IN_USE, 0, None, done)
        loop.run()
        results, job, warnings = out['r']
        self.assertEqual([(r.get_volume().get_name(), r.get_status()) for r in results],
                         [('top.qcow2', Rechain.FleetStatus.SKIPPED), ('top2.qcow2', Rechain.FleetStatus.MOVED)])
        self.assertEqual((results[0].get_domain(), results[0].get_host()), ('runner', socket.gethostname()))
        self.assertIn('vda', results[0].get_reason())
        self.assertEqual(backing_of(self.p('top2.qcow2')), (new.get_path(), 'qcow2'))
        self.assertEqual(backing_of(self.p('top.qcow2'))[0], 'mid.qcow2')
        # sleeper uses mid, not top2: no warning about it
        self.assertEqual(warnings, [])

if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap
    run_tap()
