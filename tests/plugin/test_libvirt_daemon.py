#!/usr/bin/python3
"""The libvirt volume helper against a real libvirt daemon (no mock).

As root (CI), the harness creates a throwaway unprivileged user, a private
XDG_RUNTIME_DIR, HOME and a dir pool in a temporary directory, runs the
tests as that user, and tears everything down: domains destroyed and
undefined, the pool destroyed and undefined, the session daemon it started
stopped (by its pid file), the directory and the user removed. As an
unprivileged user it does the same without the user. The first virsh -c
qemu:///session autostarts libvirtd --timeout=120 in session mode; running
domains are minimal TCG guests (64 MiB, one virtio disk, no OS).

The tests use the library the way a management layer does, through GObject
introspection: resolve pool volumes, rebase them (safe and unsafe) with the
in-use check before and the pool refresh after (virsh vol-dumpxml shows the
new <backingStore> at once), refusals for a running (and paused) domain's
disk and for images in a running domain's backing chain, warnings and
--strict for inactive domains, unknown pool/volume, daemon not reachable.
When the tool has --connect (the CLI wiring), its tests run too.

Skipped (exit 77, with the reason) only where the daemon cannot start or
the packages are missing (libvirt-daemon libvirt-clients qemu-system-x86).
"""

import json
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77


def skip():
    # CI on a machine that can run the daemon sets RECHAIN_TEST_STRICT=1:
    # there a skip would hide a gap, so it fails.
    return 1 if os.environ.get('RECHAIN_TEST_STRICT') == '1' else SKIP
POOL = 'rechain-test-pool'
URI = 'qemu:///session'


def log(msg):
    print('# ' + msg, flush=True)


# ---------------------------------------------------------------- harness

def harness(script=None, root_phase=None):
    """Runs @script (this file by default) with --inner as the daemon's
    user; then, as root only, root_phase(top, env, user) while that user's
    session daemon still runs (test_libvirt_privilege.py). Returns the exit
    status."""
    for prog in ('virsh', 'qemu-img', 'qemu-io'):
        if shutil.which(prog) is None:
            log('SKIP: %s not found (Debian: libvirt-clients, qemu-utils)' % prog)
            return skip()
    if not any(os.path.exists(p) for p in ('/usr/sbin/libvirtd', '/usr/sbin/virtqemud')):
        log('SKIP: no libvirt daemon installed (Debian: libvirt-daemon)')
        return skip()

    top = tempfile.mkdtemp(prefix='rechain-virt-')
    os.chmod(top, 0o755)
    run, home, pool = (os.path.join(top, d) for d in ('run', 'home', 'pool'))
    for d in (run, home, pool):
        os.mkdir(d)
    os.chmod(run, 0o700)
    user = None
    env = {
        'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'HOME': home, 'XDG_RUNTIME_DIR': run,
        'XDG_CONFIG_HOME': os.path.join(home, '.config'),
        'XDG_CACHE_HOME': os.path.join(home, '.cache'),
        'LC_ALL': 'C.UTF-8', 'PYTHONDONTWRITEBYTECODE': '1',
        'RECHAIN_VIRT_TOP': top,
    }
    for k in ('GI_TYPELIB_PATH', 'LD_LIBRARY_PATH', 'RECHAIN_MODULE_DIR', 'RECHAIN', 'G_DEBUG',
              'RECHAIN_TEST_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'QEMU_IMG'):
        if k in os.environ:
            env[k] = os.environ[k]
    cmd = [sys.executable, os.path.abspath(script or __file__), '--inner']
    try:
        if os.geteuid() == 0:
            user = 'rechainvt%d' % os.getpid()
            subprocess.run(['useradd', '--system', '--no-create-home', '--home-dir', home,
                            '--shell', '/usr/sbin/nologin', user], check=True)
            # a session daemon needs /dev/kvm only for kvm domains; TCG needs nothing
            for d in (top, run, home, pool):
                shutil.chown(d, user, user)
            cmd = ['runuser', '-u', user, '--'] + cmd
        r = subprocess.run(cmd, env=env)
        if root_phase is None or r.returncode not in (0, 1):
            return r.returncode
        if user is None:
            log('the tests as root against another user\'s daemon need root: not run')
            return r.returncode
        return max(r.returncode, root_phase(top, env, user))
    finally:
        teardown(top, env, user)


def as_user(user, argv, env):
    if user is not None:
        argv = ['runuser', '-u', user, '--'] + argv
    return subprocess.run(argv, env=env, capture_output=True, text=True)


def stop(pid):
    """Stops one process the tests started (by its pid)."""
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def teardown(top, env, user):
    rundir = os.path.join(env['XDG_RUNTIME_DIR'], 'libvirt')
    pidfile = os.path.join(rundir, 'libvirtd.pid')
    if os.path.exists(pidfile):
        # whatever the tests left behind (normally nothing)
        r = as_user(user, ['virsh', '-c', URI, 'list', '--all', '--name'], env)
        for name in r.stdout.split():
            as_user(user, ['virsh', '-c', URI, 'destroy', name], env)
            as_user(user, ['virsh', '-c', URI, 'undefine', name], env)
        as_user(user, ['virsh', '-c', URI, 'pool-destroy', POOL], env)
        as_user(user, ['virsh', '-c', URI, 'pool-undefine', POOL], env)
    # the session daemon and the helpers it spawned (virtlogd, ...)
    for f in ('libvirtd.pid', 'virtlogd.pid', 'virtlockd.pid', 'virtqemud.pid'):
        try:
            stop(int(open(os.path.join(rundir, f)).read().strip()))
        except (OSError, ValueError):
            pass
    if user is not None:
        # anything else the throwaway user still runs was started by these tests
        uid = pwd.getpwnam(user).pw_uid
        for pid in os.listdir('/proc'):
            try:
                if pid.isdigit() and os.stat('/proc/' + pid).st_uid == uid:
                    stop(int(pid))
            except OSError:
                pass
    shutil.rmtree(top, ignore_errors=True)
    if user is not None:
        r = subprocess.run(['userdel', user], capture_output=True, text=True)
        if r.returncode != 0:
            log('teardown: userdel %s: %s' % (user, r.stderr.strip()))


# ---------------------------------------------------------------- tests (as the test user)

def virsh(*args, check=True):
    r = subprocess.run(['virsh', '-q', '-c', URI] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError('virsh %s: %s' % (' '.join(args), r.stderr.strip()))
    return r


def sh(cmd, cwd):
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError('%s: %s' % (cmd, r.stderr.strip()))
    return r.stdout


DOMAIN_XML = '''<domain type="qemu">
  <name>{name}</name>
  <memory unit="MiB">64</memory>
  <os><type arch="x86_64">hvm</type></os>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="{disk}"/>
      <target dev="vda" bus="virtio"/>
    </disk>
  </devices>
</domain>
'''


def inner():
    top = os.environ['RECHAIN_VIRT_TOP']
    pool = os.path.join(top, 'pool')
    # Autostarts the session daemon; the only failure that skips.
    r = subprocess.run(['virsh', '-c', URI, 'uri'], capture_output=True, text=True)
    if r.returncode != 0:
        log('SKIP: the libvirt session daemon cannot start here: ' + r.stderr.strip())
        return skip()
    virsh('pool-define-as', POOL, 'dir', '--target', pool)
    virsh('pool-start', POOL)
    virsh('pool-refresh', POOL)

    import gi
    gi.require_version('Rechain', '1.0')
    from gi.repository import GLib, Gio, Rechain  # noqa: F401
    g = globals()
    g.update(GLib=GLib, Gio=Gio, Rechain=Rechain, POOLDIR=pool)
    try:
        prog = unittest.main(module='__main__', argv=[sys.argv[0], '-v'], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        virsh('pool-destroy', POOL, check=False)
        virsh('pool-undefine', POOL, check=False)
    return 0 if ok else 1


def backing_of(path):
    info = json.loads(sh('qemu-img info -U --output=json ' + path, '/'))
    return info.get('backing-filename'), info.get('backing-filename-format')


def vol_backing(name):
    """The <backingStore> path libvirt shows for a volume, as it is now."""
    xml = virsh('vol-dumpxml', '--pool', POOL, name).stdout
    if '<backingStore>' not in xml:
        return None
    bs = xml.split('<backingStore>', 1)[1]
    return bs.split('<path>', 1)[1].split('</path>', 1)[0]


class DaemonBase(unittest.TestCase):

    def setUp(self):
        self.domains = []
        self.files = []
        self.helper = Rechain.VolumeHelper.lookup('libvirt', URI, None)

    def tearDown(self):
        for d in self.domains:
            virsh('destroy', d, check=False)
            virsh('undefine', d, check=False)
        for f in self.files:
            if os.path.exists(f):
                os.unlink(f)
        virsh('pool-refresh', POOL, check=False)

    def p(self, name):
        return os.path.join(POOLDIR, name)

    def make(self, script):
        """Runs qemu-img commands in the pool directory; files named
        <id>-* are removed after the test."""
        sh(script, POOLDIR)
        for f in os.listdir(POOLDIR):
            path = self.p(f)
            if f.startswith(self.id().rsplit('.', 1)[-1]) and path not in self.files:
                self.files.append(path)

    def name(self, suffix):
        return self.id().rsplit('.', 1)[-1] + '-' + suffix

    def chain(self):
        """base <- top (absolute backing name, as libvirt makes them), and
        new: a copy of base with one 64 KiB difference. The pool is not
        refreshed: resolving refreshes it when a name is not known yet."""
        b, t, n = self.name('base.qcow2'), self.name('top.qcow2'), self.name('new.qcow2')
        self.make(f"qemu-img create -q -f qcow2 {b} 64M && qemu-io -f qcow2 -c 'write -P 0x11 0 8M' {b} >/dev/null && "
                  f"qemu-img create -q -f qcow2 -b {self.p(b)} -F qcow2 {t} && "
                  f"qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' {t} >/dev/null && "
                  f"qemu-img convert -O qcow2 {b} {n} && qemu-io -f qcow2 -c 'write -P 0x33 4M 64k' {n} >/dev/null && "
                  f"qemu-img convert -O raw {t} {self.name('before.raw')}")
        return b, t, n

    def start_domain(self, disk, start=True):
        name = self.name('vm')
        xml = os.path.join(os.path.dirname(POOLDIR), name + '.xml')
        with open(xml, 'w') as f:
            f.write(DOMAIN_XML.format(name=name, disk=disk))
        self.files.append(xml)
        virsh('define', xml)
        self.domains.append(name)
        if start:
            virsh('start', name)
        return name

    def assert_content_kept(self, top):
        r = subprocess.run(['qemu-img', 'compare', '-U', '-f', 'raw', '-F', 'qcow2',
                            self.p(self.name('before.raw')), self.p(top)], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def assert_in_use(self, cm, *words):
        e = cm.exception
        self.assertTrue(e.matches(Rechain.error_quark(), Rechain.Error.IN_USE), e.message)
        for w in words:
            self.assertIn(w, e.message)


class DaemonTest(DaemonBase):

    # -- resolve and rebase

    def test_resolve_pool_volume(self):
        b, t, n = self.chain()
        vol = Rechain.Volume.resolve('libvirt', URI, POOL, t, None)
        self.assertEqual(vol.get_pool(), POOL)
        self.assertEqual(vol.get_name(), t)
        self.assertEqual(vol.get_path(), self.p(t))
        self.assertEqual(vol.get_format(), 'qcow2')
        # dir pools: libvirt records the absolute path of the backing volume
        self.assertEqual(vol.get_backing_name(), self.p(t))
        self.assertEqual(vol.get_helper().get_uri(), URI)
        self.assertEqual(vol_backing(t), self.p(b))

    def test_unsafe_rebase_shows_in_vol_dumpxml(self):
        b, t, n = self.chain()
        vol = self.helper.resolve(POOL, t, None)
        new = self.helper.resolve(POOL, n, None)
        job = vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE)
        ok, warnings = vol.rebase_sync(job, Rechain.VolumeRebaseFlags.STRICT, None)
        self.assertTrue(ok)
        self.assertEqual(warnings, [])
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        # no pool-refresh here: the helper refreshed the pool
        self.assertEqual(vol_backing(t), self.p(n))

    def test_safe_rebase_async_keeps_content(self):
        b, t, n = self.chain()
        vol = Rechain.Volume.resolve('libvirt', URI, POOL, t, None)
        new = vol.get_helper().resolve(POOL, n, None)
        job = vol.new_rebase_job(new, None, Rechain.RebaseMode.SAFE)
        loop = GLib.MainLoop()
        result = {}

        def done(v, res):
            try:
                result['ok'], result['warnings'] = v.rebase_finish(res)
            except GLib.Error as e:
                result['error'] = e
            loop.quit()
        vol.rebase_async(job, Rechain.VolumeRebaseFlags.NONE, GLib.PRIORITY_DEFAULT, None, done)
        loop.run()
        self.assertNotIn('error', result, result.get('error') and result['error'].message)
        self.assertTrue(result['ok'])
        self.assertEqual(job.props.state, Rechain.JobState.COMPLETED)
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assertEqual(vol_backing(t), self.p(n))
        self.assert_content_kept(t)

    def test_backing_path_and_backing_name_override(self):
        b, t, n = self.chain()
        outside = tempfile.mkdtemp(prefix='outside-', dir=os.path.dirname(POOLDIR))
        try:
            sh('qemu-img create -q -f raw o.raw 64M', outside)
            vol = self.helper.resolve(POOL, t, None)
            # -b a path outside every pool: format probed, recorded as the path
            o = self.helper.resolve(POOL, os.path.join(outside, 'o.raw'), None)
            self.assertIsNone(o.get_pool())
            self.assertEqual(o.get_format(), 'raw')
            ok, _ = vol.rebase_sync(vol.new_rebase_job(o, None, Rechain.RebaseMode.UNSAFE), 0, None)
            self.assertEqual(backing_of(self.p(t)), (os.path.join(outside, 'o.raw'), 'raw'))
            # -b a pool volume by its path, --backing-name relative
            new = self.helper.resolve(POOL, self.p(n), None)
            self.assertEqual((new.get_pool(), new.get_name()), (POOL, n))
            ok, _ = vol.rebase_sync(vol.new_rebase_job(new, n, Rechain.RebaseMode.UNSAFE), 0, None)
            self.assertEqual(backing_of(self.p(t)), (n, 'qcow2'))
            self.assertEqual(vol_backing(t), self.p(n))
        finally:
            shutil.rmtree(outside)

    # -- refusals

    def test_running_domain_disk_refused(self):
        b, t, n = self.chain()
        dom = self.start_domain(self.p(t))
        vol = self.helper.resolve(POOL, t, None)
        new = self.helper.resolve(POOL, n, None)
        for mode in (Rechain.RebaseMode.UNSAFE, Rechain.RebaseMode.SAFE):
            job = vol.new_rebase_job(new, None, mode)
            with self.assertRaises(GLib.Error) as cm:
                vol.rebase_sync(job, 0, None)
            self.assert_in_use(cm, '"%s"' % dom, 'vda', 'active', URI)
            self.assertEqual(job.props.state, Rechain.JobState.CREATED)
        # paused is still active
        virsh('suspend', dom)
        with self.assertRaises(GLib.Error) as cm:
            vol.rebase_sync(vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE), 0, None)
        self.assert_in_use(cm, '"%s"' % dom)
        # QEMU's own locks are the second guard, without the helper's check
        with self.assertRaises(GLib.Error) as cm:
            vol.rebase_sync(vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE),
                            Rechain.VolumeRebaseFlags.NO_CHECK, None)
        self.assert_in_use(cm)
        self.assertEqual(backing_of(self.p(t)), (self.p(b), 'qcow2'))

    def test_backing_chain_of_running_domain_refused(self):
        # base <- mid <- top, the domain runs top: mid (one level down) and
        # base (two levels down) are refused by name, not only by QEMU's locks
        b, m, t = self.name('base.qcow2'), self.name('mid.qcow2'), self.name('top.qcow2')
        n = self.name('new.qcow2')
        self.make(f'qemu-img create -q -f qcow2 {b} 64M && qemu-img create -q -f qcow2 {n} 64M && '
                  f'qemu-img create -q -f qcow2 -b {self.p(b)} -F qcow2 {m} && '
                  f'qemu-img create -q -f qcow2 -b {m} -F qcow2 {t}')
        dom = self.start_domain(self.p(t))
        new = self.helper.resolve(POOL, n, None)
        for victim in (m, b):
            vol = self.helper.resolve(POOL, victim, None)
            with self.assertRaises(GLib.Error) as cm:
                vol.rebase_sync(vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE), 0, None)
            self.assert_in_use(cm, '"%s"' % dom, 'backing chain', self.p(t), 'vda')
        users = self.helper.get_users(self.p(b), None)
        self.assertEqual([(u.domain, u.disk, u.source, u.active) for u in users],
                         [(dom, 'vda', self.p(t), True)])
        # QEMU's own locks are the second guard for an image the VM only
        # reads as a backing file: it does not share write access to it
        for victim in (m, b):
            vol = self.helper.resolve(POOL, victim, None)
            for mode in (Rechain.RebaseMode.UNSAFE, Rechain.RebaseMode.SAFE):
                with self.assertRaises(GLib.Error) as cm:
                    vol.rebase_sync(vol.new_rebase_job(new, None, mode),
                                    Rechain.VolumeRebaseFlags.NO_CHECK, None)
                self.assert_in_use(cm)
        self.assertEqual(backing_of(self.p(m)), (self.p(b), 'qcow2'))
        self.assertEqual(backing_of(self.p(b)), (None, None))

    def test_inactive_domain_warns_strict_refuses(self):
        b, t, n = self.chain()
        dom = self.start_domain(self.p(t), start=False)
        vol = self.helper.resolve(POOL, t, None)
        new = self.helper.resolve(POOL, n, None)
        with self.assertRaises(GLib.Error) as cm:
            vol.rebase_sync(vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE),
                            Rechain.VolumeRebaseFlags.STRICT, None)
        self.assert_in_use(cm, '"%s"' % dom, 'inactive', 'strict')
        ok, warnings = vol.rebase_sync(vol.new_rebase_job(new, None, Rechain.RebaseMode.UNSAFE), 0, None)
        self.assertTrue(ok)
        self.assertEqual(len(warnings), 1)
        self.assertIn('inactive domain "%s"' % dom, warnings[0])
        self.assertEqual(vol_backing(t), self.p(n))

    # -- errors

    def test_unknown_pool_and_volume(self):
        for pool, name, what in (('no-such-pool', 'x.qcow2', 'no-such-pool'),
                                 (POOL, 'no-such-volume.qcow2', 'no-such-volume.qcow2')):
            with self.assertRaises(GLib.Error) as cm:
                Rechain.Volume.resolve('libvirt', URI, pool, name, None)
            e = cm.exception
            self.assertTrue(e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND), e.message)
            self.assertIn(URI, e.message)
            self.assertIn(what, e.message)

    def test_daemon_not_reachable(self):
        uri = 'qemu+unix:///session?socket=%s/no-daemon/sock' % POOLDIR
        with self.assertRaises(GLib.Error) as cm:
            Rechain.VolumeHelper.lookup('libvirt', uri, None)
        e = cm.exception
        self.assertTrue(e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CONNECTION_REFUSED), e.message)
        self.assertIn(uri, e.message)

    @unittest.skipIf(os.geteuid() == 0, 'root is never denied')
    def test_permission_denied(self):
        closed = os.path.join(POOLDIR, 'closed')
        os.mkdir(closed, 0)
        try:
            uri = 'qemu+unix:///session?socket=%s/sock' % closed
            with self.assertRaises(GLib.Error) as cm:
                Rechain.VolumeHelper.lookup('libvirt', uri, None)
            e = cm.exception
            self.assertTrue(e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.PERMISSION_DENIED), e.message)
            self.assertIn(uri, e.message)
        finally:
            os.rmdir(closed)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def rechain_exe():
    exe = os.environ.get('RECHAIN')
    return exe if exe and os.path.exists(exe) else None


def run_rechain(*args, text=False):
    """The rechain tool, as the daemon tests run it (output as bytes, or
    @text)."""
    env = dict(os.environ)
    # under ASan, the tool loads the libvirt module too (see main())
    if os.environ.get('RECHAIN_TEST_PRELOAD'):
        env['LD_PRELOAD'] = os.environ['RECHAIN_TEST_PRELOAD']
        env['ASAN_OPTIONS'] = 'detect_leaks=0'
    return subprocess.run([rechain_exe()] + [str(a) for a in args], capture_output=True,
                          text=text, env=env)


def main(script=None, root_phase=None, before_inner=None):
    """The entry of a daemon test: as root, harness() runs @script again
    with --inner as the daemon's user; that run calls @before_inner (if
    any), then the tests (inner())."""
    if '--inner' in sys.argv:
        preload = os.environ.get('RECHAIN_TEST_PRELOAD')
        if preload and os.environ.get('LD_PRELOAD') != preload:
            # a sanitized build: the runtime first, in this process only
            os.environ['LD_PRELOAD'] = preload
            os.environ['ASAN_OPTIONS'] = 'detect_leaks=0'
            os.execv(sys.executable, [sys.executable] + sys.argv)
        os.environ.pop('LD_PRELOAD', None)  # not for virsh, qemu-img, libvirtd
        if before_inner:
            before_inner()
        sys.exit(inner())
    sys.exit(harness(script=script, root_phase=root_phase))


def rechain_cli():
    exe = os.environ.get('RECHAIN')
    if not exe or not os.path.exists(exe):
        return None
    r = subprocess.run([exe, 'rebase', '--help'], capture_output=True, text=True)
    return exe if '--connect' in r.stdout + r.stderr else None


@unittest.skipUnless(rechain_cli(), 'the rechain tool has no --connect/--pool yet')
class CliTest(DaemonBase):
    """rechain rebase/info --connect URI --pool POOL: a thin user of the API."""

    def rechain(self, *args):
        env = dict(os.environ)
        # under ASan, the tool loads the libvirt module too: libtirpc must
        # come before ASan's xdr interceptors, as for this process
        if os.environ.get('RECHAIN_TEST_PRELOAD'):
            env['LD_PRELOAD'] = os.environ['RECHAIN_TEST_PRELOAD']
        return subprocess.run([rechain_cli()] + list(args), capture_output=True, text=True,
                              env=env)

    def test_cli(self):
        b, t, n = self.chain()
        r = self.rechain('info', '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.p(b), r.stdout)
        r = self.rechain('rebase', '-u', '--connect', URI, '--pool', POOL, '-b', n, t)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assertEqual(vol_backing(t), self.p(n))
        dom = self.start_domain(self.p(t))
        r = self.rechain('rebase', '-u', '--connect', URI, '--pool', POOL, '-b', b, t)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn(dom, r.stderr)
        r = self.rechain('rebase', '-u', '--connect', URI, '--pool', 'no-such-pool', '-b', b, t)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('no-such-pool', r.stderr)


if __name__ == '__main__':
    main()
