#!/usr/bin/python3
"""Issue 13 (privilege boundaries) through the libvirt plugin, against a
real libvirt daemon (no mock), with the harness of test_libvirt_daemon.py:
a throwaway unprivileged user runs its session daemon with a dir pool.

As that user (the daemon's user):
- the plugin's storage directories are the target paths of the
  connection's local pools, active and inactive; the "path" helper has none;
- a pool volume whose backing chain leaves every pool's directory (a
  backing file in another directory, one two levels down, a symlink in the
  pool that leads out) is refused by `rechain rebase|info --backing-chain|map
  --connect --pool` with exit status 3, the message naming the volume, its
  pool and the path; the image is byte for byte unchanged; --trust-chain
  lifts it (judged by qemu-img compare and check); --backing-root applies as
  well; the library's volume API (rebase_sync, rebase_async, NO_CHECK,
  open_image) refuses the same way;
- a chain inside the pool still works.

As root, against that user's session daemon (qemu+unix:///session with the
user's socket), the ownership rule through the plugin: a volume owned by the
user whose backing file, inside the pool directory (so the confinement
passes), is a root-only 0600 file (directly, or through a symlink in the
pool) is refused with exit status 3 naming the backing file; the overlay
is unchanged, the secret file untouched and its bytes in no output and not
in the overlay. A backing file the user could read is rebased as root.

Without root the root part is not run (logged). Skipped (77) as
test_libvirt_daemon.py is; RECHAIN_TEST_STRICT=1 turns a skip into a
failure.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_libvirt_daemon as tld  # noqa: E402
from test_libvirt_daemon import (DaemonBase, POOL, URI, as_user, backing_of, log,  # noqa: E402
                                 rechain_exe, run_rechain, sha256, sh)

NOT_PERMITTED_EXIT = 3


def text(r):
    return r.stdout.decode(errors='replace') + r.stderr.decode(errors='replace')


def qemu_img_check(test, path):
    r = subprocess.run(['qemu-img', 'check', '-U', path], capture_output=True, text=True)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)


# ---------------------------------------------------------------- as the daemon's user

class ConfinementTest(DaemonBase):
    """Chains confined to the pools' directories."""

    def setUp(self):
        super().setUp()
        self.outside = tempfile.mkdtemp(prefix='outside-', dir=os.path.dirname(tld.POOLDIR))
        self.extra_pools = []

    def tearDown(self):
        for p in self.extra_pools:
            tld.virsh('pool-destroy', p, check=False)
            tld.virsh('pool-undefine', p, check=False)
        shutil.rmtree(self.outside, ignore_errors=True)
        super().tearDown()

    def need_cli(self):
        if not rechain_exe():
            self.fail('the rechain tool is not built ($RECHAIN)')

    def outside_chain(self):
        """base, outside every pool <- top, a volume of the pool; new, a
        volume with one 64 KiB difference from base. Returns their paths /
        names and records the guest content of top in <id>-before.raw."""
        base = os.path.join(self.outside, 'base.qcow2')
        sh("qemu-img create -q -f qcow2 base.qcow2 64M && "
           "qemu-io -f qcow2 -c 'write -P 0x11 0 8M' base.qcow2 >/dev/null", self.outside)
        t, n = self.name('top.qcow2'), self.name('new.qcow2')
        self.make(f"qemu-img create -q -f qcow2 -b {base} -F qcow2 {t} && "
                  f"qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' {t} >/dev/null && "
                  f"qemu-img convert -O qcow2 {base} {n} && "
                  f"qemu-io -f qcow2 -c 'write -P 0x33 4M 64k' {n} >/dev/null && "
                  f"qemu-img convert -O raw {t} {self.name('before.raw')}")
        return base, t, n

    def assert_refused(self, r, volume, path, *words):
        out = text(r)
        self.assertEqual(r.returncode, NOT_PERMITTED_EXIT, out)
        for w in ("volume '%s' of pool '%s'" % (volume, POOL), path,
                  'the storage pools of', tld.POOLDIR, '--trust-chain') + words:
            self.assertIn(w, r.stderr.decode(), out)

    def test_storage_dirs_are_the_local_pools_targets(self):
        dirs = self.helper.get_storage_dirs(None)
        self.assertIn(tld.POOLDIR, dirs)
        self.assertNotIn(self.outside, dirs)
        # an inactive pool counts too
        tld.virsh('pool-define-as', 'rechain-test-inactive', 'dir', '--target', self.outside)
        self.extra_pools.append('rechain-test-inactive')
        self.assertIn(self.outside, self.helper.get_storage_dirs(None))
        # the built-in path helper confines nothing (NULL, which PyGObject
        # gives as an empty list)
        self.assertIn(Rechain().VolumeHelper.lookup('path', None, None).get_storage_dirs(None),
                      (None, []))

    def test_rebase_outside_pools_refused_trust_chain_allows(self):
        self.need_cli()
        base, t, n = self.outside_chain()
        before = sha256(self.p(t))
        for extra in ([], ['--dry-run'], ['--backing-root', tld.POOLDIR]):
            r = run_rechain('rebase', '--connect', URI, '--pool', POOL, '-b', n, t, *extra)
            if extra and extra[0] == '--backing-root':
                # both apply: whichever refuses first, the chain is refused
                self.assertEqual(r.returncode, NOT_PERMITTED_EXIT, text(r))
                self.assertIn(base, r.stderr.decode())
            else:
                self.assert_refused(r, t, base, 'the backing file at depth 1')
            self.assertEqual(sha256(self.p(t)), before)
        self.assertEqual(backing_of(self.p(t)), (base, 'qcow2'))
        self.assertEqual(tld.vol_backing(t), base)
        # --trust-chain lifts the confinement
        r = run_rechain('rebase', '--trust-chain', '--connect', URI, '--pool', POOL, '-b', n, t)
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assertEqual(tld.vol_backing(t), self.p(n))
        self.assert_content_kept(t)
        qemu_img_check(self, self.p(t))

    def test_info_and_map_outside_pools_refused(self):
        self.need_cli()
        base, t, n = self.outside_chain()
        before = sha256(self.p(t))
        for args in (['info', '--backing-chain'], ['info', '--backing-chain', '--output=json'],
                     ['map'], ['map', '--output=json']):
            r = run_rechain(*args, '--connect', URI, '--pool', POOL, t)
            self.assert_refused(r, t, base)
            self.assertEqual(r.stdout, b'', args)
        self.assertEqual(sha256(self.p(t)), before)
        # info without --backing-chain opens no backing file
        r = run_rechain('info', '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, text(r))
        # --trust-chain: the whole chain, as qemu-img sees it
        r = run_rechain('info', '--backing-chain', '--output=json', '--trust-chain',
                        '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual([i['filename'] for i in json.loads(r.stdout)], [self.p(t), base])
        r = run_rechain('map', '--output=json', '--trust-chain', '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, text(r))
        # the base's 8 MiB of data, from depth 1
        self.assertIn((1, True), [(e['depth'], e['data']) for e in json.loads(r.stdout)])

    def test_deeper_and_symlinked_backing_files_refused(self):
        self.need_cli()
        base, t, n = self.outside_chain()
        m, t2, link, t3 = (self.name(x) for x in ('mid.qcow2', 'top2.qcow2', 'link.qcow2', 'top3.qcow2'))
        # top2 -> mid (in the pool) -> base (outside); top3 -> link (a
        # symlink in the pool) -> base
        self.make(f'qemu-img create -q -f qcow2 -b {base} -F qcow2 {m} && '
                  f'qemu-img create -q -f qcow2 -b {m} -F qcow2 {t2} && '
                  f'ln -s {base} {link} && qemu-img create -q -f qcow2 -b {link} -F qcow2 {t3}')
        before = {v: sha256(self.p(v)) for v in (m, t2, t3)}
        r = run_rechain('rebase', '--connect', URI, '--pool', POOL, '-b', n, t2)
        self.assert_refused(r, t2, base, 'the backing file at depth 2', self.p(m))
        r = run_rechain('rebase', '--connect', URI, '--pool', POOL, '-b', n, t3)
        # named as recorded, and where it resolves to
        self.assert_refused(r, t3, base, self.p(link))
        r = run_rechain('map', '--connect', URI, '--pool', POOL, t3)
        self.assert_refused(r, t3, base, self.p(link))
        self.assertEqual({v: sha256(self.p(v)) for v in (m, t2, t3)}, before)

    def test_chain_inside_pool_works(self):
        self.need_cli()
        b, t, n = self.chain()
        r = run_rechain('info', '--backing-chain', '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, 0, text(r))
        # --backing-root applies with the pools: a backing root elsewhere refuses
        r = run_rechain('info', '--backing-chain', '--backing-root', self.outside,
                        '--connect', URI, '--pool', POOL, t)
        self.assertEqual(r.returncode, NOT_PERMITTED_EXIT, text(r))
        self.assertIn('backing root', r.stderr.decode())
        r = run_rechain('rebase', '--connect', URI, '--pool', POOL, '-b', n, t,
                        '--backing-root', tld.POOLDIR)
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(backing_of(self.p(t)), (self.p(n), 'qcow2'))
        self.assert_content_kept(t)
        qemu_img_check(self, self.p(t))

    def test_inactive_pool_directory_allowed(self):
        self.need_cli()
        base, t, n = self.outside_chain()
        tld.virsh('pool-define-as', 'rechain-test-inactive', 'dir', '--target', self.outside)
        self.extra_pools.append('rechain-test-inactive')
        r = run_rechain('rebase', '--connect', URI, '--pool', POOL, '-b', n, t)
        self.assertEqual(r.returncode, 0, text(r))
        self.assert_content_kept(t)
        qemu_img_check(self, self.p(t))

    def test_volume_api_refuses(self):
        base, t, n = self.outside_chain()
        before = sha256(self.p(t))
        R = Rechain()
        vol = self.helper.resolve(POOL, t, None)
        new = self.helper.resolve(POOL, n, None)

        def check(e):
            self.assertTrue(e.matches(R.error_quark(), R.Error.NOT_PERMITTED), e.message)
            for w in ("volume '%s' of pool '%s'" % (t, POOL), base, tld.POOLDIR):
                self.assertIn(w, e.message)

        for flags in (R.VolumeRebaseFlags.NONE, R.VolumeRebaseFlags.NO_CHECK):
            job = vol.new_rebase_job(new, None, R.RebaseMode.SAFE)
            with self.assertRaises(tld.GLib.Error) as cm:
                vol.rebase_sync(job, flags, None)
            check(cm.exception)
        loop = tld.GLib.MainLoop()
        result = {}

        def done(v, res):
            try:
                result['ok'] = v.rebase_finish(res)
            except tld.GLib.Error as e:
                result['error'] = e
            loop.quit()
        vol.rebase_async(vol.new_rebase_job(new, None, R.RebaseMode.SAFE), 0,
                         tld.GLib.PRIORITY_DEFAULT, None, done)
        loop.run()
        self.assertIn('error', result)
        check(result['error'])
        with self.assertRaises(tld.GLib.Error) as cm:
            vol.open_image(None, R.ImageOpenFlags.FORCE_SHARE, None, None)
        check(cm.exception)
        self.assertEqual(sha256(self.p(t)), before)
        image = vol.open_image(None, R.ImageOpenFlags.FORCE_SHARE | R.ImageOpenFlags.TRUST_CHAIN,
                               None, None)
        self.assertEqual(image.get_chain_length(), 2)
        del image
        job = R.RebaseJob(image=self.p(t), backing_file=self.p(n), backing_format='qcow2',
                          trust_chain=True)
        ok, _ = vol.rebase_sync(job, 0, None)
        self.assertTrue(ok)
        self.assert_content_kept(t)
        qemu_img_check(self, self.p(t))


def Rechain():
    return tld.Rechain


# ---------------------------------------------------------------- as root, another user's daemon

ROOT = {}
PRIV_POOL = 'rechain-test-priv'
SECRET = b'ROOT-ONLY-SECRET-' * 3855  # 65535 bytes


class OwnershipAsRootTest(unittest.TestCase):
    """rechain as root on the volumes of another user's session daemon."""

    def setUp(self):
        self.dir = ROOT['pooldir']
        self.uri = ROOT['uri']
        self.user = ROOT['user']
        for f in os.listdir(self.dir):
            p = os.path.join(self.dir, f)
            os.unlink(p) if not os.path.isdir(p) or os.path.islink(p) else shutil.rmtree(p)

    def p(self, name):
        return os.path.join(self.dir, name)

    def as_user_sh(self, cmd):
        r = as_user(self.user, ['sh', '-c', cmd], dict(ROOT['env'], PWD=self.dir))
        self.assertEqual(r.returncode, 0, cmd + ': ' + r.stderr)

    def secret(self):
        """A root-only 0600 file in the pool directory: the user cannot read it."""
        path = self.p('secret.raw')
        with open(path, 'wb') as f:
            f.write(SECRET)
            f.truncate(1 << 20)
        os.chmod(path, 0o600)
        st = os.stat(path)
        return path, sha256(path), (st.st_mtime_ns, st.st_size, st.st_mode)

    def test_backing_file_the_owner_cannot_read_refused(self):
        secret, secret_sum, secret_stat = self.secret()
        d = self.dir
        # made by the user: overlays naming the secret directly and through a
        # symlink in the pool, and a new backing volume
        self.as_user_sh(f'cd {d} && ln -s secret.raw link.raw && '
                        'qemu-img create -q -f qcow2 -u -b secret.raw -F raw top.qcow2 1M && '
                        'qemu-img create -q -f qcow2 -u -b link.raw -F raw top2.qcow2 1M && '
                        'qemu-img create -q -f qcow2 new.qcow2 1M')
        r = subprocess.run(['virsh', '-c', self.uri, 'pool-refresh', PRIV_POOL], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for top, named in (('top.qcow2', secret), ('top2.qcow2', self.p('link.raw'))):
            before = sha256(self.p(top))
            runs = [('rebase', '-b', 'new.qcow2'), ('rebase', '-b', ''),
                    ('info', '--backing-chain'), ('map',), ('map', '--output=json')]
            for args in runs:
                r = run_rechain(*args, '--connect', self.uri, '--pool', PRIV_POOL, top)
                out = text(r)
                self.assertEqual(r.returncode, NOT_PERMITTED_EXIT, (args, out))
                for w in ("volume '%s' of pool '%s'" % (top, PRIV_POOL), named,
                          'the backing file at depth 1', self.user, '--trust-chain'):
                    self.assertIn(w, r.stderr.decode(), (args, out))
                self.assertNotIn(SECRET[:32], r.stdout + r.stderr)
                self.assertEqual(sha256(self.p(top)), before, args)
                with open(self.p(top), 'rb') as f:
                    self.assertNotIn(SECRET[:32], f.read())
            self.assertEqual(backing_of(self.p(top))[0], os.path.basename(named))
        st = os.stat(secret)
        self.assertEqual((st.st_mtime_ns, st.st_size, st.st_mode), secret_stat)
        self.assertEqual(sha256(secret), secret_sum)

    def test_backing_file_the_owner_can_read_allowed(self):
        d = self.dir
        self.as_user_sh(f"cd {d} && qemu-img create -q -f qcow2 base.qcow2 4M && "
                        f"qemu-io -f qcow2 -c 'write -P 0x11 0 1M' base.qcow2 >/dev/null && "
                        f"qemu-img create -q -f qcow2 -b {d}/base.qcow2 -F qcow2 top.qcow2 && "
                        f"qemu-io -f qcow2 -c 'write -P 0x22 64k 64k' top.qcow2 >/dev/null && "
                        f"qemu-img create -q -f qcow2 new.qcow2 4M && "
                        f"qemu-img convert -O raw top.qcow2 before.raw")
        r = run_rechain('rebase', '--connect', self.uri, '--pool', PRIV_POOL, '-b', 'new.qcow2',
                        'top.qcow2')
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(backing_of(self.p('top.qcow2')), (self.p('new.qcow2'), 'qcow2'))
        c = subprocess.run(['qemu-img', 'compare', '-U', '-f', 'raw', '-F', 'qcow2',
                            self.p('before.raw'), self.p('top.qcow2')], capture_output=True, text=True)
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
        qemu_img_check(self, self.p('top.qcow2'))


def root_phase(top, env, user):
    if not rechain_exe():
        log('the rechain tool is not built ($RECHAIN): the tests as root fail')
        return 1
    pooldir = os.path.join(top, 'priv-pool')
    os.mkdir(pooldir, 0o755)
    shutil.chown(pooldir, user, user)
    sock = os.path.join(env['XDG_RUNTIME_DIR'], 'libvirt', 'libvirt-sock')
    uri = 'qemu+unix:///session?socket=' + sock
    # the user's session daemon (started again if it timed out meanwhile)
    for args in (['uri'], ['pool-define-as', PRIV_POOL, 'dir', '--target', pooldir],
                 ['pool-start', PRIV_POOL]):
        r = as_user(user, ['virsh', '-c', URI] + args, env)
        if r.returncode != 0:
            log('virsh %s as %s: %s' % (' '.join(args), user, r.stderr.strip()))
            return 1
    ROOT.update(pooldir=pooldir, uri=uri, user=user, env=env)
    try:
        # root reaches the user's daemon through its socket
        r = subprocess.run(['virsh', '-c', uri, 'pool-info', PRIV_POOL], capture_output=True, text=True)
        if r.returncode != 0:
            log('root cannot connect to %s: %s' % (uri, r.stderr.strip()))
            return 1
        log('as root, against the session daemon of %s (%s)' % (user, uri))
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(OwnershipAsRootTest)
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
        return 0 if result.wasSuccessful() else 1
    finally:
        as_user(user, ['virsh', '-c', URI, 'pool-destroy', PRIV_POOL], env)
        as_user(user, ['virsh', '-c', URI, 'pool-undefine', PRIV_POOL], env)


def load_tests(loader, tests, pattern):
    # the inner run (as the user): ConfinementTest only
    return loader.loadTestsFromTestCase(ConfinementTest)


if __name__ == '__main__':
    tld.main(script=__file__, root_phase=root_phase)
