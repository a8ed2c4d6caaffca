#!/usr/bin/python3
"""rechain rebase with several hosts (--connect repeated) and pool-wide
selection (--clones-of), against two real libvirt daemons (no mock).

Two "hosts" on one machine share one pool directory: two session daemons
of one user (the throwaway user of test_libvirt_daemon.py's harness), each
with its own XDG_RUNTIME_DIR, XDG_CONFIG_HOME and XDG_CACHE_HOME, so their
sockets differ (qemu+unix:///session?socket=...). Each defines a dir pool
on the shared directory and runs a minimal TCG domain on a different clone
of one template; the second also has a defined, shut-off domain on a third
clone.

Asserted: refusals name the right domain and host whatever the order of
--connect; an unreachable host (a socket with no daemon) fails before
anything is written, and with --skip-unreachable gives a warning naming
it; --clones-of --dry-run lists what would move (with bytes) and what
would be skipped; --clones-of moves exactly the idle clones (each judged
by qemu-img compare against a copy of its content before, and qemu-img
check), reports the busy ones with host, domain and reason, exits 4, and
with --progress=json prints one line per clone moved; both daemons show
the new backing store afterwards (virsh vol-dumpxml).

Both daemons run libvirt's lock manager (lock_manager = "lockd") with one
shared lockspace directory, as hosts on shared storage do. A clone leased
by a host no --connect names is shown the way it looks there: an fcntl
lock on byte 0 of its lease file, held by a process of this machine with
no QEMU. --clones-of skips it with the lease as its reason (rechain reads
the lockspace from the daemon's qemu-lockd.conf), and moves the others.

Skipped (77) as test_libvirt_daemon.py: only where a daemon cannot start
or the packages are missing.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_libvirt_daemon as base  # noqa: E402  (the harness)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
import rechaintest as rt  # noqa: E402

POOL = 'rechain-fleet-pool'
TOP = os.environ.get('RECHAIN_VIRT_TOP', '')
POOLDIR = os.path.join(TOP, 'pool')
HOSTS = {}  # 'h1'/'h2' -> {'env': ..., 'uri': ...}
log = base.log


def host_env(name):
    d = os.path.join(TOP, name)
    env = dict(os.environ)
    env.pop('LD_PRELOAD', None)
    env.update(XDG_RUNTIME_DIR=os.path.join(d, 'run'), XDG_CONFIG_HOME=os.path.join(d, 'config'),
               XDG_CACHE_HOME=os.path.join(d, 'cache'))
    return env


def virsh(host, *args, check=True):
    h = HOSTS[host]
    r = subprocess.run(['virsh', '-q', '-c', h['uri']] + list(args), capture_output=True, text=True,
                       env=h['env'])
    if check and r.returncode != 0:
        raise AssertionError('virsh %s on %s: %s' % (' '.join(args), host, r.stderr.strip()))
    return r


def sh(cmd):
    return base.sh(cmd, POOLDIR)


def lockspace():
    return os.path.join(TOP, 'lockspace')


def configure_lockd(env):
    """libvirt's lock manager with the shared lockspace, written before the
    daemon starts."""
    conf = os.path.join(env['XDG_CONFIG_HOME'], 'libvirt')
    os.makedirs(conf, exist_ok=True)
    os.makedirs(lockspace(), mode=0o700, exist_ok=True)
    with open(os.path.join(conf, 'qemu.conf'), 'w') as f:
        f.write('lock_manager = "lockd"\n')
    with open(os.path.join(conf, 'qemu-lockd.conf'), 'w') as f:
        f.write('file_lockspace_dir = "%s"\n' % lockspace())


def start_host(name):
    env = host_env(name)
    for k in ('XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME'):
        os.makedirs(env[k], mode=0o700, exist_ok=True)
    configure_lockd(env)
    # autostarts this host's session daemon (libvirtd --timeout=120)
    r = subprocess.run(['virsh', '-c', 'qemu:///session', 'uri'], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        return r.stderr.strip()
    sock = os.path.join(env['XDG_RUNTIME_DIR'], 'libvirt', 'libvirt-sock')
    for _ in range(50):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    HOSTS[name] = {'env': env, 'uri': 'qemu+unix:///session?socket=' + sock}
    return None


def stop_host(name):
    rundir = os.path.join(host_env(name)['XDG_RUNTIME_DIR'], 'libvirt')
    if name in HOSTS:
        for d in virsh(name, 'list', '--all', '--name', check=False).stdout.split():
            virsh(name, 'destroy', d, check=False)
            virsh(name, 'undefine', d, check=False)
        virsh(name, 'pool-destroy', POOL, check=False)
        virsh(name, 'pool-undefine', POOL, check=False)
    for f in ('libvirtd.pid', 'virtlogd.pid', 'virtlockd.pid'):
        try:
            base.stop(int(open(os.path.join(rundir, f)).read().strip()))
        except (OSError, ValueError):
            pass


def p(name):
    return os.path.join(POOLDIR, name)


def backing_of(name):
    return base.backing_of(p(name))


def vol_backing(host, name):
    xml = virsh(host, 'vol-dumpxml', '--pool', POOL, name).stdout
    if '<backingStore>' not in xml:
        return None
    return xml.split('<backingStore>', 1)[1].split('<path>', 1)[1].split('</path>', 1)[0]


def rechain(*args):
    env = dict(os.environ)
    # the lock manager's configuration of "this host" (h1's daemon)
    env['RECHAIN_LIBVIRT_CONFDIR'] = os.path.join(host_env('h1')['XDG_CONFIG_HOME'], 'libvirt')
    if os.environ.get('RECHAIN_TEST_PRELOAD'):
        env['LD_PRELOAD'] = os.environ['RECHAIN_TEST_PRELOAD']
    return subprocess.run([os.environ['RECHAIN']] + list(args), capture_output=True, text=True,
                          env=env)


def define(host, name, disk, start=True):
    xml = os.path.join(TOP, name + '.xml')
    with open(xml, 'w') as f:
        f.write(base.DOMAIN_XML.format(name=name, disk=p(disk)))
    virsh(host, 'define', xml)
    if start:
        virsh(host, 'start', name)


CLONES = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6']
IDLE = ['c1', 'c3', 'c5']          # c5: only a shut-off domain of h2 (a warning)
BUSY = {'c2': ('vm1', 'h1'), 'c4': ('vm7', 'h2')}
LEASED = ['c6']                    # leased on a host no --connect names
LEASED_REASON = "leased by libvirt's lock manager (virtlockd) on this or an unknown host"
HOLDERS = []


def hold_lease(path):
    """What a lease of another host looks like on shared storage: an fcntl
    write lock on byte 0 of the file named by the SHA-256 of the path."""
    HOLDERS.append(rt.LeaseHolder(
        os.path.join(lockspace(), hashlib.sha256(path.encode()).hexdigest())))


class FleetTest(unittest.TestCase):
    """Ordered: the checks that write nothing first, the move last."""

    @classmethod
    def setUpClass(cls):
        cmds = ["qemu-img create -q -f qcow2 tmpl.qcow2 64M",
                "qemu-io -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x12 16M 1M' tmpl.qcow2 >/dev/null",
                "qemu-img convert -O qcow2 tmpl.qcow2 tmpl2.qcow2",
                "qemu-io -f qcow2 -c 'write -P 0x33 4M 64k' -c 'write -P 0x34 16M 128k' tmpl2.qcow2 >/dev/null"]
        for i, c in enumerate(CLONES):
            cmds.append("qemu-img create -q -f qcow2 -b %s -F qcow2 %s.qcow2" % (p('tmpl.qcow2'), c))
            cmds.append("qemu-io -f qcow2 -c 'write -P 0x%x %dM 64k' %s.qcow2 >/dev/null" % (0x40 + i, i + 1, c))
            cmds.append("qemu-img convert -O raw %s.qcow2 %s.before.raw" % (c, c))
        # not a clone of tmpl: a clone of tmpl2, and a standalone image
        cmds.append("qemu-img create -q -f qcow2 -b %s -F qcow2 other.qcow2" % p('tmpl2.qcow2'))
        cmds.append("qemu-img create -q -f qcow2 alone.qcow2 16M")
        sh(' && '.join(cmds))
        for h in ('h1', 'h2'):
            virsh(h, 'pool-define-as', POOL, 'dir', '--target', POOLDIR)
            virsh(h, 'pool-start', POOL)
            virsh(h, 'pool-refresh', POOL)
        define('h1', 'vm1', 'c2.qcow2')
        define('h2', 'vm7', 'c4.qcow2')
        define('h2', 'vm3', 'c5.qcow2', start=False)
        for c in LEASED:
            hold_lease(p(c + '.qcow2'))

    @classmethod
    def tearDownClass(cls):
        for holder in HOLDERS:
            holder.stop()

    def where(self, host):
        return 'on %s (%s)' % (self.host_name(), HOSTS[host]['uri'])

    def host_name(self):
        import socket
        return socket.gethostname()

    def test_1_refusal_names_host_and_domain_in_any_order(self):
        for order in (('h1', 'h2'), ('h2', 'h1')):
            conn = []
            for h in order:
                conn += ['--connect', HOSTS[h]['uri']]
            for vol, (dom, host) in BUSY.items():
                r = rechain('rebase', *conn, '--pool', POOL, '-b', 'tmpl2.qcow2', vol + '.qcow2')
                self.assertEqual(r.returncode, 4, r.stderr)
                self.assertIn('%s %s' % (dom, self.where(host)), r.stderr)
                self.assertEqual(backing_of(vol + '.qcow2')[0], p('tmpl.qcow2'))
            # the template: in the backing chain of both running domains
            r = rechain('rebase', *conn, '--pool', POOL, '-b', '', 'tmpl.qcow2')
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertIn('backing chain', r.stderr)
            first = 'vm1' if order[0] == 'h1' else 'vm7'
            self.assertIn('%s %s' % (first, self.where(order[0])), r.stderr)
        # an image of a shut-off domain: a warning naming host and domain;
        # --strict refuses it
        r = rechain('rebase', '--dry-run', '--connect', HOSTS['h1']['uri'], '--connect',
                    HOSTS['h2']['uri'], '--pool', POOL, '-b', 'tmpl2.qcow2', 'c5.qcow2')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('warning', r.stderr)
        self.assertIn('vm3 ' + self.where('h2'), r.stderr)
        r = rechain('rebase', '--strict', '--connect', HOSTS['h1']['uri'], '--connect',
                    HOSTS['h2']['uri'], '--pool', POOL, '-b', 'tmpl2.qcow2', 'c5.qcow2')
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn('vm3 ' + self.where('h2'), r.stderr)

    def test_2_unreachable_host(self):
        dead = 'qemu+unix:///session?socket=%s' % os.path.join(TOP, 'no-daemon', 'libvirt-sock')
        def content():
            with open(p('c1.qcow2'), 'rb') as f:
                return f.read()
        before = content()
        r = rechain('rebase', '--connect', HOSTS['h1']['uri'], '--connect', dead, '--pool', POOL,
                    '-b', 'tmpl2.qcow2', 'c1.qcow2')
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(dead, r.stderr)
        self.assertIn('cannot be reached', r.stderr)
        self.assertEqual(content(), before)
        # the same with the selection: nothing at all is written
        r = rechain('rebase', '--connect', dead, '--connect', HOSTS['h1']['uri'], '--pool', POOL,
                    '--clones-of', 'tmpl.qcow2', '-b', 'tmpl2.qcow2')
        self.assertEqual(r.returncode, 1, r.stderr)
        for c in CLONES:
            self.assertEqual(backing_of(c + '.qcow2')[0], p('tmpl.qcow2'))
        # skipped on request: a warning names it, the rest goes on
        r = rechain('rebase', '--dry-run', '--skip-unreachable', '--connect', dead, '--connect',
                    HOSTS['h1']['uri'], '--pool', POOL, '-b', 'tmpl2.qcow2', 'c1.qcow2')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('warning', r.stderr)
        self.assertIn(dead, r.stderr)
        self.assertEqual(content(), before)

    def selection(self, *extra):
        r = rechain('rebase', '--connect', HOSTS['h2']['uri'], '--connect', HOSTS['h1']['uri'],
                    '--pool', POOL, '--clones-of', 'tmpl.qcow2', '-b', 'tmpl2.qcow2',
                    '--output=json', *extra)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        return {v['volume']: v for v in doc['volumes']}, doc, r

    def test_3_dry_run_lists_what_would_move(self):
        vols, doc, r = self.selection('--dry-run')
        self.assertEqual(sorted(vols), sorted(c + '.qcow2' for c in CLONES))
        for c in IDLE:
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'would-move', v)
            self.assertIsInstance(v['bytes'], int)
            self.assertGreater(v['bytes'], 0)  # the templates differ under every clone's view
        for c, (dom, host) in BUSY.items():
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'skipped', v)
            self.assertEqual(v['domain'], dom)
            self.assertEqual(v['uri'], HOSTS[host]['uri'])
            self.assertIn(dom, v['reason'])
        for c in LEASED:
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'skipped', v)
            self.assertIn(LEASED_REASON, v['reason'])
        for c in CLONES:
            self.assertEqual(backing_of(c + '.qcow2')[0], p('tmpl.qcow2'))
        # the human listing
        r = rechain('rebase', '--dry-run', '--connect', HOSTS['h1']['uri'], '--pool', POOL,
                    '--clones-of', p('tmpl.qcow2'), '-b', 'tmpl2.qcow2')
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn('c1.qcow2: would move', r.stdout)
        self.assertIn('c2.qcow2: skipped', r.stdout)
        # vm7 of h2, not asked: its QEMU's lock on c4 skips it still
        self.assertIn('c4.qcow2: skipped', r.stdout)
        self.assertIn('c6.qcow2: skipped', r.stdout)
        self.assertNotIn('other.qcow2', r.stdout)

    def test_4_clones_of_moves_exactly_the_idle_clones(self):
        # the daemons know the old backing store
        for h in ('h1', 'h2'):
            self.assertEqual(vol_backing(h, 'c1.qcow2'), p('tmpl.qcow2'))
        vols, doc, r = self.selection('--progress=json')
        self.assertIsNotNone(doc['rebase'])
        # --progress=json: one line per clone moved, as it was switched,
        # with the bytes of the report; the byte progress lines as ever
        lines = [json.loads(x) for x in r.stderr.splitlines() if x.startswith('{')]
        images = [x for x in lines if 'image' in x]
        # the leased clone reaches the job, which refuses it alone
        self.assertEqual(sorted(x['image'] for x in images),
                         sorted(p(c + '.qcow2') for c in IDLE + LEASED), r.stderr)
        written = {e['image']: e['bytes-written'] for e in doc['rebase']['images']}
        for x in images:
            if x['image'] in [p(c + '.qcow2') for c in LEASED]:
                self.assertEqual(x['status'], 'failed', x)
                self.assertIn(LEASED_REASON, x['error'])
                continue
            self.assertEqual(x['status'], 'rebased', x)
            self.assertEqual(x['bytes-written'], written[x['image']], x)
        progress = [x for x in lines if 'image' not in x]
        self.assertTrue(progress, r.stderr)
        for x in progress:
            self.assertEqual(set(x), {'bytes-done', 'bytes-total', 'progress'}, x)
        self.assertEqual(progress[-1]['progress'], 1.0, r.stderr)
        for c in IDLE:
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'moved', v)
            self.assertEqual(v['path'], p(c + '.qcow2'))
            self.assertEqual(v['pool'], POOL)
            self.assertEqual(backing_of(c + '.qcow2'), (p('tmpl2.qcow2'), 'qcow2'))
            cmp = subprocess.run(['qemu-img', 'compare', '-U', '-f', 'raw', '-F', 'qcow2',
                                  p(c + '.before.raw'), p(c + '.qcow2')], capture_output=True, text=True)
            self.assertEqual(cmp.returncode, 0, cmp.stdout + cmp.stderr)
            chk = subprocess.run(['qemu-img', 'check', '-U', p(c + '.qcow2')], capture_output=True, text=True)
            self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
            # both daemons see it: the pool was refreshed on each
            for h in ('h1', 'h2'):
                self.assertEqual(vol_backing(h, c + '.qcow2'), p('tmpl2.qcow2'), h)
        for c, (dom, host) in BUSY.items():
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'skipped', v)
            self.assertEqual((v['domain'], v['uri']), (dom, HOSTS[host]['uri']))
            self.assertEqual(backing_of(c + '.qcow2')[0], p('tmpl.qcow2'))
        for c in LEASED:
            v = vols[c + '.qcow2']
            self.assertEqual(v['status'], 'skipped', v)
            self.assertIn(LEASED_REASON, v['reason'])
            self.assertEqual(backing_of(c + '.qcow2')[0], p('tmpl.qcow2'))
        # the shut-off domain's clone moved, with a warning naming it
        self.assertIn('vm3 ' + self.where('h2'), r.stderr)
        # nothing left to move but the busy and the leased ones: the busy
        # ones never reach the job; the leased one is refused by it, and
        # its image line says so
        vols, doc, r = self.selection('--progress=json')
        self.assertEqual(sorted(vols), sorted(c + '.qcow2' for c in list(BUSY) + LEASED))
        lines = [json.loads(l) for l in r.stderr.splitlines() if l.startswith('{"image"')]
        self.assertEqual(sorted(l['image'] for l in lines), sorted(p(c + '.qcow2') for c in LEASED),
                         r.stderr)
        for l in lines:
            self.assertEqual(l['status'], 'failed', l)
            self.assertIn(LEASED_REASON, l['error'])


def inner():
    for h in ('h1', 'h2'):
        err = start_host(h)
        if err is not None:
            log('SKIP: a libvirt session daemon cannot start here: ' + err)
            for k in HOSTS:
                stop_host(k)
            return base.skip()
    if HOSTS['h1']['uri'] == HOSTS['h2']['uri']:
        raise AssertionError('the two daemons share a socket')
    try:
        prog = unittest.main(module='__main__', argv=[sys.argv[0], '-v'], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        for h in ('h1', 'h2'):
            stop_host(h)
    return 0 if ok else 1


if __name__ == '__main__':
    if '--inner' in sys.argv:
        os.environ.pop('LD_PRELOAD', None)
        sys.exit(inner())
    if not os.environ.get('RECHAIN') or shutil.which('qemu-system-x86_64') is None:
        log('SKIP: no rechain tool or no qemu-system-x86_64 (Debian: qemu-system-x86)')
        sys.exit(base.skip())
    sys.exit(base.harness(os.path.abspath(__file__)))
