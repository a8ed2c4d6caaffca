#!/usr/bin/python3
# hostile-privilege: root runs rechain on images another user owns.
#
# A file named by an image's header (backing file at any depth, external
# data file) of an image owned by another uid is opened only if that owner
# could open it: read for backing files, read+write for the data file of
# the image being written; mode bits, owner, primary and supplementary
# groups, checked on the opened descriptor; every directory on the way
# searchable by the owner; device nodes, FIFOs and sockets refused outright.
# Refused: exit 3 before anything is written, 'rechain: NAMER: refusing to
# open the backing file at depth N|data file 'PATH': ... --trust-chain'.
# Root's own images (and what a root-owned backing file names) are trusted;
# --trust-chain turns the rule off; --backing-root DIR still applies.
#
# Attacks: a root-only secret by absolute name, by a relative name, by a
# user symlink, at depth 2, /etc/shadow, a block device, a FIFO, data files
# (root-owned file, symlink, device) and a symlink swapped between rechain's
# decision and its open (LD_PRELOAD shim pause-open.c stops rechain at the
# open). Each: exit 3, the message, the overlay byte-for-byte unchanged and
# without the secret bytes, the secret/victim unchanged. Allowed cases are
# judged by qemu-img compare and check. Root only (the test makes the
# system user rechain-test-user and groups rechain-test-grp/-nogrp and
# leaves them); skips otherwise unless RECHAIN_TEST_STRICT=1.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import grp
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostiletest as ht  # noqa: E402
from hostiletest import HostileCase, MiB, run_rechain  # noqa: E402

USER = 'rechain-test-user'
GROUP = 'rechain-test-grp'       # USER is a supplementary member
NOGROUP = 'rechain-test-nogrp'   # USER is not
SIZE = 1 * MiB
MARK = b'ROOT-ONLY-SECRET'       # the secret's bytes (16 x 65536 = 1 MiB)
VICTIM = b'ROOT-OWNED-VICTIM'
SHIM = os.environ.get('RECHAIN_TEST_PAUSE_SHIM', '')
GI_TYPELIB = os.environ.get('RECHAIN_TEST_GI_TYPELIB_PATH', '')
# run in a child interpreter (under ASan it needs the runtime preloaded)
GI_CHILD = '''
import json, sys, gi
gi.require_version('Rechain', '1.0')
from gi.repository import GLib, Rechain
ov, out = sys.argv[1], {}
def attempt(key, fn):
    try:
        fn()
        out[key] = 'ok'
    except GLib.Error as e:
        out[key] = [e.matches(Rechain.error_quark(), Rechain.Error.NOT_PERMITTED), e.message]
attempt('open', lambda: Rechain.Image.open(ov, None, Rechain.ImageOpenFlags.NONE, None))
attempt('open-trust', lambda: Rechain.Image.open(ov, None, Rechain.ImageOpenFlags.TRUST_CHAIN, None))
job = Rechain.RebaseJob(image=ov, backing_file='')
out['default'] = job.props.trust_chain
attempt('job', lambda: job.run_sync(None))
attempt('job-trust', lambda: Rechain.RebaseJob(image=ov, backing_file='', trust_chain=True).run_sync(None))
print(json.dumps(out))
'''


def ensure_accounts():
    """The unprivileged user and the two groups (made once, left behind)."""
    def must(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            ht.rt.skip_or_fail('%s not installed (passwd)' % argv[0])
        if r.returncode != 0:
            ht.rt.skip_or_fail('%s failed: %s' % (' '.join(argv), r.stdout.decode()))
    for g in (GROUP, NOGROUP):
        try:
            grp.getgrnam(g)
        except KeyError:
            must(['groupadd', '--system', g])
    try:
        pwd.getpwnam(USER)
    except KeyError:
        must(['useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent',
              '--shell', '/usr/sbin/nologin', USER])
    if USER not in grp.getgrnam(GROUP).gr_mem:
        must(['usermod', '-aG', GROUP, USER])
    pw = pwd.getpwnam(USER)
    groups = os.getgrouplist(USER, pw.pw_gid)
    banned = {0} | {g.gr_gid for g in grp.getgrall() if g.gr_name in ('disk', NOGROUP)}
    if grp.getgrnam(GROUP).gr_gid not in groups or banned & set(groups):
        ht.rt.skip_or_fail('unexpected groups of %s: %s' % (USER, groups))
    return pw.pw_uid, pw.pw_gid


class Privilege(HostileCase):

    # ---- fixtures ----

    def setUp(self):
        if os.geteuid() != 0:
            ht.rt.skip_or_fail('not root: the rule is about root opening files of other users')
        self.uid, self.gid = ensure_accounts()
        self.dir = tempfile.mkdtemp(prefix='rechain-priv-', dir='/tmp')
        if not ht.rt.KEEP:   # also when setUp fails half-way (tearDown does not run)
            self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)   # the user must reach its images
        self.secret = self.root_file('secret.raw', MARK, 0o600)
        self.other = self.make_img('other.qcow2', pattern=0x66)   # a user-readable new base

    def root_file(self, name, fill, mode, group=0):
        p = self.path(name)
        with open(p, 'wb') as f:
            f.write(fill * (SIZE // len(fill)) + fill[:SIZE % len(fill)])
        os.chown(p, 0, group)
        os.chmod(p, mode)
        return p

    def mkdir(self, name, mode, user=False):
        p = self.path(name)
        os.mkdir(p)
        os.chmod(p, mode)
        if user:
            os.chown(p, self.uid, self.gid)
        return p

    def symlink(self, name, target):
        """A symlink owned by the user."""
        p = self.path(name)
        os.symlink(target, p)
        os.lchown(p, self.uid, self.gid)
        return p

    def make_img(self, name, backing=None, bfmt='raw', pattern=0x55, data_file=False,
                 owner=None, mode=0o644):
        """A qcow2 image owned by the user (or @owner) with its own data at
        0..64k; the backing name is recorded unsafely (nothing is opened:
        the backing may be a FIFO)."""
        p = self.path(name)
        opts = ['-o', 'data_file=%s.data,data_file_raw=off' % p] if data_file else []
        ht.qemu_img('create', '-q', '-f', 'qcow2', *opts, p, str(SIZE))
        self.io(p, 'write -P %d 0 64k' % pattern)
        if backing is not None:
            ht.qemu_img('rebase', '-u', '-b', backing, '-F', bfmt, p)
        uid, gid = owner if owner else (self.uid, self.gid)
        for f in [p] + ([p + '.data'] if data_file else []):
            os.chown(f, uid, gid)
            os.chmod(f, mode)
        return p

    def root_img(self, name, group=0, mode=0o644, **kw):
        return self.make_img(name, owner=(0, group), mode=mode, **kw)

    def set_data_file(self, img, name):
        ht.qemu_img('amend', '-f', 'qcow2', '-o', 'data_file=' + name, img)

    def loop(self, backing_file):
        try:
            r = subprocess.run(['losetup', '-f', '--show', backing_file],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError:
            ht.rt.skip_or_fail('losetup not installed (mount)')
        if r.returncode != 0:
            ht.rt.skip_or_fail('losetup failed: %s' % r.stdout.decode().strip())
        dev = r.stdout.decode().strip()
        self.addCleanup(subprocess.run, ['losetup', '-d', dev])
        self.assertTrue(stat.S_ISBLK(os.stat(dev).st_mode), dev)
        return dev

    # ---- judging ----

    def rechain(self, args, timeout=60, env=None):
        try:
            r = run_rechain(args, self.dir, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail('rechain %s hung (> %ds)' % (' '.join(map(str, args)), timeout))
        self.assert_no_crash_markers(r, ' '.join(map(str, args)))
        return r

    def hashes(self, paths):
        return {p: ht.rt.sha256(p) for p in paths if stat.S_ISREG(os.stat(p).st_mode)}

    def assert_refusal_message(self, r, namer, target, depth=None, what=''):
        """rc 3 and one stderr line naming the namer, the kind of file (backing
        at DEPTH or data file), the resolved path (one of @target) and the
        way out."""
        self.assertEqual(r.rc, 3, '%s: expected exit 3 (refused)\n%s' % (what, r.describe()))
        kind = 'backing file at depth %d' % depth if depth else 'data file'
        targets = target if isinstance(target, tuple) else (target,)
        for line in r.err.splitlines():
            if (line.startswith('rechain: ') and namer in line and kind in line
                    and '--trust-chain' in line and any("'%s'" % t in line for t in targets)):
                return
        self.fail("%s: no stderr line 'rechain: ...%s...: refusing to open the %s '%s': ... "
                  "--trust-chain'\n%s" % (what, namer, kind, "' or '".join(targets), r.describe()))

    def assert_refused(self, args, namer, target, depth=None, watch=(), secret=True):
        """Refused before writing: the message, every watched file byte-for-
        byte unchanged, and (read attacks) no secret bytes in the namer."""
        watch = [namer] + list(watch)
        before = self.hashes(watch)
        r = self.rechain(args)
        what = ' '.join(map(str, args))
        self.assert_refusal_message(r, namer, target, depth, what)
        self.assertEqual(self.hashes(watch), before, '%s: a file changed\n%s' % (what, r.describe()))
        if secret:
            for p in watch[:1]:
                with open(p, 'rb') as f:
                    self.assertNotIn(MARK, f.read(), '%s: secret bytes in %s' % (what, p))
        return r

    def assert_allowed(self, args, img, check=True):
        b = self.before(img, tag='allowed')
        r = self.rechain(args)
        self.assertEqual(r.rc, 0, r.describe())
        if check:
            self.assert_check(img, what=' '.join(map(str, args)))
        self.assert_content(b, ' '.join(map(str, args)))
        for f in os.listdir(self.dir):
            if f.startswith('.before-allowed'):
                os.unlink(self.path(f))
        return r

    def chain_commands(self, ov, *extra):
        """Every command that opens the backing chain of @ov."""
        return [['rebase'] + list(extra) + ['-b', '', ov],
                ['rebase'] + list(extra) + ['-b', self.other, '-F', 'qcow2', ov],
                ['map'] + list(extra) + [ov],
                ['info'] + list(extra) + ['--backing-chain', ov]]

    # ---- attacks ----

    def test_root_only_secret(self):
        ov = self.make_img('ov.qcow2', backing=self.secret)
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, self.secret, depth=1, watch=[self.secret, self.other])
        # info alone opens no backing file
        self.assertEqual(self.rechain(['info', ov]).rc, 0)

    def test_etc_shadow(self):
        shadow = '/etc/shadow'
        if not os.path.isfile(shadow) or os.stat(shadow).st_mode & 0o004:
            ht.rt.skip_or_fail('no root-only /etc/shadow here')
        st = os.stat(shadow)
        ov = self.make_img('ov.qcow2', backing=shadow)
        self.assert_refused(['rebase', '-b', '', ov], ov, shadow, depth=1)
        st2 = os.stat(shadow)
        self.assertEqual((st.st_size, st.st_mtime_ns, st.st_mode),
                         (st2.st_size, st2.st_mtime_ns, st2.st_mode))

    def test_relative_name(self):
        d = self.path('u', 'a', 'b')
        os.makedirs(d)
        for p in (self.path('u'), self.path('u', 'a'), d):
            os.chown(p, self.uid, self.gid)
        rel = '../../../secret.raw'
        ov = self.make_img('u/a/b/ov.qcow2', backing=rel)
        target = (os.path.join(d, rel), self.secret)
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, target, depth=1, watch=[self.secret])

    def test_user_symlink(self):
        link = self.symlink('evil-link.raw', self.secret)
        ov = self.make_img('ov.qcow2', backing='evil-link.raw')
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, link, depth=1, watch=[self.secret])

    def test_block_device(self):
        dev = self.loop(self.root_file('disk.raw', MARK, 0o600))
        ov = self.make_img('ov.qcow2', backing=dev)
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, dev, depth=1, watch=[self.secret])
        # refused outright: a node of the same device the user owns, mode 0666
        node = self.path('node.raw')
        os.mknod(node, 0o666 | stat.S_IFBLK, os.stat(dev).st_rdev)
        os.chown(node, self.uid, self.gid)
        os.chmod(node, 0o666)
        ov2 = self.make_img('ov2.qcow2', backing='node.raw')
        for args in self.chain_commands(ov2):
            self.assert_refused(args, ov2, node, depth=1)

    def test_fifo(self):
        fifo = self.path('pipe.raw')
        os.mkfifo(fifo)
        os.chown(fifo, self.uid, self.gid)
        os.chmod(fifo, 0o666)
        ov = self.make_img('ov.qcow2', backing='pipe.raw')
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, fifo, depth=1)   # self.rechain: a hang fails

    def data_file_img(self, target):
        """A user overlay (backing: a user raw file) whose header names
        @target as its external data file."""
        base = self.root_file('ubase.raw', b'user-base', 0o644)
        os.chown(base, self.uid, self.gid)
        ov = self.make_img('dov.qcow2', backing=base, data_file=True)
        self.set_data_file(ov, target)
        return ov

    def data_file_refusals(self, ov, target, watch, read_ok):
        for args in (['rebase', '-b', self.other, '-F', 'qcow2', ov], ['rebase', '-b', '', ov],
                     ['rebase', '-u', '-b', self.other, '-F', 'qcow2', ov]):
            self.assert_refused(args, ov, target, watch=watch, secret=False)
        for args in (['info', ov], ['map', ov]):
            if read_ok:   # read-only: the user may read the victim
                r = self.rechain(args)
                self.assertEqual(r.rc, 0, r.describe())
            else:
                self.assert_refused(args, ov, target, watch=watch, secret=False)

    def test_data_file_not_writable(self):
        victim = self.root_file('victim.raw', VICTIM, 0o644)
        ov = self.data_file_img(victim)
        self.data_file_refusals(ov, victim, [victim], read_ok=True)

    def test_data_file_symlink(self):
        victim = self.root_file('victim.raw', VICTIM, 0o644)
        link = self.symlink('data-link.raw', victim)
        ov = self.data_file_img(link)
        self.data_file_refusals(ov, link, [victim], read_ok=True)
        # and a symlink to the root-only secret: not even readable
        link2 = self.symlink('data-link2.raw', self.secret)
        self.set_data_file(ov, link2)
        self.data_file_refusals(ov, link2, [self.secret], read_ok=False)

    def test_data_file_device(self):
        dev = self.loop(self.root_file('disk.raw', VICTIM, 0o600))
        disk = self.path('disk.raw')
        ov = self.data_file_img(dev)
        self.data_file_refusals(ov, dev, [disk], read_ok=False)

    def test_second_level(self):
        mid = self.make_img('mid.qcow2', backing=self.secret)
        ov = self.make_img('ov.qcow2', backing=mid, bfmt='qcow2')
        for args in self.chain_commands(ov):
            self.assert_refused(args, mid, self.secret, depth=2, watch=[ov, self.secret])

    def test_symlink_swap(self):
        if not os.path.isfile(SHIM):
            ht.rt.skip_or_fail('pause-open shim not built (RECHAIN_TEST_PAUSE_SHIM=%r)' % SHIM)
        benign = self.root_file('benign.raw', b'benign', 0o644)
        os.chown(benign, self.uid, self.gid)
        link = self.symlink('link.raw', benign)
        ov = self.make_img('ov.qcow2', backing=link)
        before = self.hashes([ov, self.secret])
        env = dict(os.environ, LD_PRELOAD=SHIM, RECHAIN_TEST_PAUSE_OPEN='link.raw')
        argv = [ht.rt.RECHAIN, 'rebase', '-b', '', ov]
        p = subprocess.Popen(argv, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        deadline = time.time() + 30
        state = ''
        while time.time() < deadline and p.poll() is None:
            with open('/proc/%d/stat' % p.pid) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
            if state == 'T':
                break
            time.sleep(0.01)
        if state != 'T':
            out, err = p.communicate(timeout=60)
            if b'ASan runtime does not come first' in err:
                self.skipTest('rechain built with ASan: LD_PRELOAD shim refused')
            self.fail('rechain never stopped at an open of link.raw (exit %s)\n%s'
                      % (p.returncode, err.decode()))
        tmp = self.symlink('swap.tmp', self.secret)
        os.replace(tmp, link)
        os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        r = ht.Proc(argv, self.dir, p.returncode, out.decode(), err.decode())
        self.assert_no_crash_markers(r, 'swap')
        self.assert_refusal_message(r, ov, link, 1, 'symlink swapped before the open')
        self.assertEqual(self.hashes([ov, self.secret]), before, r.describe())
        with open(ov, 'rb') as f:
            self.assertNotIn(MARK, f.read())

    # ---- allowed ----

    def test_root_templates(self):
        tpl1 = self.root_img('tpl1.qcow2', pattern=1)
        tpl2 = self.root_img('tpl2.qcow2', pattern=2)
        ov = self.make_img('ov.qcow2', backing=tpl1, bfmt='qcow2')
        self.io(ov, 'write -P 7 512k 64k')
        self.assert_allowed(['rebase', '-b', tpl2, '-F', 'qcow2', ov], ov)
        self.assert_backing(ov, tpl2, 'qcow2')
        self.assert_allowed(['rebase', '-b', '', ov], ov)
        self.assert_backing(ov, None, None)

    def test_group_permission(self):
        g_in, g_out = grp.getgrnam(GROUP).gr_gid, grp.getgrnam(NOGROUP).gr_gid
        tpl = self.root_img('tpl.qcow2', group=g_in, mode=0o640, pattern=1)
        ov = self.make_img('ov.qcow2', backing=tpl, bfmt='qcow2')
        self.assert_allowed(['map', ov], ov)
        self.assert_allowed(['rebase', '-b', '', ov], ov)
        tpl2 = self.root_img('tpl2.qcow2', group=g_out, mode=0o640, pattern=2)
        ov2 = self.make_img('ov2.qcow2', backing=tpl2, bfmt='qcow2')
        for args in self.chain_commands(ov2):
            self.assert_refused(args, ov2, tpl2, depth=1, watch=[tpl2])

    def test_root_own_chain(self):
        ov = self.root_img('ov.qcow2', backing=self.secret)
        self.assertEqual(self.rechain(['map', ov]).rc, 0)
        self.assert_allowed(['rebase', '-b', '', ov], ov)
        with open(ov, 'rb') as f:
            self.assertIn(MARK, f.read())
        # a root-owned template is trusted for what it names
        mid = self.root_img('mid.qcow2', backing=self.secret)
        uov = self.make_img('uov.qcow2', backing=mid, bfmt='qcow2')
        self.assertEqual(self.rechain(['info', '--backing-chain', uov]).rc, 0)
        self.assert_allowed(['rebase', '-b', self.other, '-F', 'qcow2', uov], uov)

    def test_libvirt_layout(self):
        tdir = self.mkdir('templates', 0o711)
        idir = self.mkdir('images', 0o755, user=True)
        tpl1 = self.root_img('templates/debian.qcow2', pattern=1)
        tpl2 = self.root_img('templates/debian-2.qcow2', pattern=2)
        ov = self.make_img('images/vm1.qcow2', backing=tpl1, bfmt='qcow2')
        self.assertTrue(tpl1.startswith(tdir) and ov.startswith(idir))
        for args in (['info', '--backing-chain', ov], ['map', ov]):
            self.assertEqual(self.rechain(args).rc, 0, args)
        self.assert_allowed(['rebase', '-b', tpl2, '-F', 'qcow2', ov], ov)

    def test_trust_chain(self):
        ov = self.make_img('ov.qcow2', backing=self.secret)
        for args in (['map', '--trust-chain', ov], ['info', '--trust-chain', '--backing-chain', ov]):
            r = self.rechain(args)
            self.assertEqual(r.rc, 0, r.describe())
        self.assert_allowed(['rebase', '--trust-chain', '-b', '', ov], ov)
        with open(ov, 'rb') as f:
            self.assertIn(MARK, f.read(), 'the rule was not switched off')

    def test_library_gi(self):
        if not GI_TYPELIB:
            self.skipTest('GObject introspection data not built')
        ov = self.make_img('ov.qcow2', backing=self.secret)
        before = self.hashes([ov])
        b = self.before(ov)
        env = dict(os.environ, GI_TYPELIB_PATH=GI_TYPELIB, LD_LIBRARY_PATH=GI_TYPELIB)
        for var in ('PRELOAD', 'ASAN_OPTIONS'):
            if os.environ.get('RECHAIN_TEST_GI_' + var):
                env[{'PRELOAD': 'LD_PRELOAD'}.get(var, var)] = os.environ['RECHAIN_TEST_GI_' + var]
        p = subprocess.run([sys.executable, '-c', GI_CHILD, ov], env=env, timeout=120,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        res = json.loads(p.stdout)
        msg = '%s\n%s' % (res, p.stderr)
        self.assertIs(res['default'], False, msg)
        for key in ('open', 'job'):
            self.assertIsInstance(res[key], list, key + ': not refused: ' + msg)
            self.assertTrue(res[key][0], key + ': not RECHAIN_ERROR_NOT_PERMITTED: ' + msg)
            self.assertIn(self.secret, res[key][1], msg)
        self.assertEqual(res['open-trust'], 'ok', msg)
        self.assertEqual(res['job-trust'], 'ok', msg)
        self.assertNotEqual(self.hashes([ov]), before)   # only the trusted job wrote
        self.assert_backing(ov, None, None)
        self.assert_content(b, 'flattened by the trusted job')

    def test_backing_root(self):
        pool = self.mkdir('pool', 0o755)
        out = self.root_img('tpl-out.qcow2', pattern=1)
        ov = self.make_img('pool/ov.qcow2', backing=out, bfmt='qcow2')
        for extra in ([], ['--trust-chain']):
            before = self.hashes([ov])
            r = self.rechain(['rebase', '--backing-root', pool] + extra + ['-b', '', ov])
            self.assertEqual(r.rc, 3, r.describe())
            self.assertIn(out, r.err, r.describe())
            self.assertEqual(self.hashes([ov]), before)
        self.root_img('pool/tpl.qcow2', pattern=1)
        ov2 = self.make_img('pool/ov2.qcow2', backing='tpl.qcow2', bfmt='qcow2')
        self.assert_allowed(['rebase', '--backing-root', pool, '-b', '', ov2], ov2)
        secret = self.root_file('pool/secret.raw', MARK, 0o600)
        ov3 = self.make_img('pool/ov3.qcow2', backing='secret.raw')
        for args in self.chain_commands(ov3, '--backing-root', pool):
            if self.other in args:   # outside the pool
                continue
            self.assert_refused(args, ov3, secret, depth=1, watch=[secret])

    def test_unsearchable_dir(self):
        self.mkdir('vault', 0o700)
        hidden = self.root_file('vault/open.raw', MARK, 0o644)
        ov = self.make_img('ov.qcow2', backing=hidden)
        for args in self.chain_commands(ov):
            self.assert_refused(args, ov, hidden, depth=1, watch=[hidden])
        # a symlink in a searchable place does not help
        link = self.symlink('way-in.raw', hidden)
        ov2 = self.make_img('ov2.qcow2', backing='way-in.raw')
        self.assert_refused(['rebase', '-b', '', ov2], ov2, link, depth=1, watch=[hidden])


if __name__ == '__main__':
    ht.main()
