#!/usr/bin/python3
# job-rebase-random: randomized differential test of the safe rebase.
#
# Each case builds a random backing chain (raw and qcow2 layers of random
# cluster sizes, v2/v3, refcount widths, extended L2, zlib/zstd compressed
# clusters, zero and discarded ranges, unaligned writes, backings shorter
# and longer than the overlay, internal snapshots and bitmaps on the
# overlay), picks a random new backing (an image of the old chain, a near
# copy of the old backing, an unrelated image, a raw file, or none) and
# rebases with `rechain rebase` (sometimes -c, sometimes a cache mode,
# --copy-mode auto or copy, sometimes two linked clones).
# In a fifth of the cases (ENC_P) qcow2 layers are LUKS-encrypted, each
# with one of three keys or none (so keys differ or are shared between the
# overlay, its backing files and the new backing); the keys go to rechain
# with --key-file and to qemu-img and qemu-io as secrets. Those overlays
# have no snapshots, bitmaps, compressed clusters or -c.
# QEMU judges: the guest content must equal a raw dump taken before
# (qemu-img compare), qemu-img check must be clean, qemu-img info must
# name the new backing, bitmaps and snapshots must remain (and the
# snapshots' own data be unchanged), no backing file may change, and a
# second run onto the same backing must write nothing.
#
# Environment (.ci/run sets the first two: 200 cases with seed 1 in the
# normal pass, 40 with seed 2 in the sanitizer pass; CI_RANDOM_CASES,
# CI_RANDOM_SEED and their _SANITIZE forms change them there):
#   RECHAIN_SEED   seed (default 1)
#   RECHAIN_CASES  number of cases (default 120)
#   RECHAIN_CASE   run only this case number (with the same seed) to
#                  reproduce a failure; RECHAIN_TEST_KEEP=1 keeps its files
#   RECHAIN_JOBS   parallel cases (default: number of CPUs)
# The first TAP comment gives the seed; each case's line gives its number
# and parameters (layers, overlays, target, options, the rechain command).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import concurrent.futures
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobtest as jt  # noqa: E402
from jobtest import rt, MiB, KiB  # noqa: E402



def env_int(name, default, minimum):
    v = os.environ.get(name, '')
    if v == '':
        return default
    try:
        n = int(v)
    except ValueError:
        n = None
    if n is None or n < minimum:
        sys.stdout.write('Bail out! %s=%r is not an integer >= %d\n' % (name, v, minimum))
        sys.exit(1)
    return n


SEED = env_int('RECHAIN_SEED', 1, 0)
CASES = env_int('RECHAIN_CASES', 120, 1)
ONLY = env_int('RECHAIN_CASE', None, 0)
JOBS = env_int('RECHAIN_JOBS', os.cpu_count() or 2, 1)

CLUSTER_SIZES = [512, 1024, 4096, 16384, 65536, 65536, 262144, 2 * MiB]
REFCOUNT_BITS = [1, 2, 4, 8, 16, 16, 16, 32, 64]

# Encrypted cases: each qcow2 layer (backing, overlay, new backing) is
# LUKS-encrypted with one of these keys or not, so keys differ between
# layers or are shared. The keys go to rechain (--key-file) and to
# qemu-img and qemu-io (secrets, --image-opts). Encryption is decided by a
# random generator of its own, so the plain cases of a seed stay as they
# were. ENC_P of the cases are encrypted.
ENC_P = 0.2
ENC_SECRETS = {'k0': 'Ra1-random-passphrase-0', 'k1': 'Rb2-random-passphrase-1',
               'k2': 'Rc3-random-passphrase-2'}
# qemu-img spends seconds of CPU timing its key derivation for every LUKS
# image it creates: an encrypted layer is a copy of an empty template
# (one per key and qcow2 options, made once) resized to its size. So an
# encrypted layer has one of these qcow2 options.
ENC_OPTS = [
    {'cluster_size': 65536, 'compat': '1.1', 'refcount_bits': 16, 'compression_type': 'zlib'},
    {'cluster_size': 4096, 'compat': '1.1', 'refcount_bits': 64, 'compression_type': 'zstd'},
    {'cluster_size': 131072, 'compat': '1.1', 'refcount_bits': 16, 'compression_type': 'zlib',
     'extended_l2': 'on'},
]
ENC_TEMPLATE_SIZE = 8 * MiB
_enc_templates = {}
_enc_lock = threading.Lock()


def enc_objects():
    out = []
    for sid, p in sorted(ENC_SECRETS.items()):
        out += ['--object', 'secret,id=%s,data=%s' % (sid, p)]
    return out


def enc_template(sid, opts_str):
    """The empty template of key @sid with qcow2 options @opts_str."""
    with _enc_lock:
        key = (sid, opts_str)
        if key not in _enc_templates:
            d = tempfile.mkdtemp(prefix='rechain-rand-luks-')
            argv = [rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2'] + enc_objects() + [
                '-o', 'encrypt.format=luks,encrypt.key-secret=%s,encrypt.iter-time=10,%s'
                % (sid, opts_str), 't.qcow2', str(ENC_TEMPLATE_SIZE)]
            # on a loaded machine qemu-img may fail with "Unable to get
            # accurate CPU usage": tried a few times
            for _ in range(60):
                r = rt.run(argv, cwd=d)
                if r.rc == 0:
                    break
            else:
                raise AssertionError('qemu-img could not make a LUKS template\n' + r.describe())
            _enc_templates[key] = os.path.join(d, 't.qcow2')
        return _enc_templates[key]


class Case:
    def __init__(self, seed, idx):
        self.seed = seed
        self.idx = idx
        self.rng = random.Random('%d:%d' % (seed, idx))
        # encryption decisions: a generator of their own (see ENC_P)
        self.erng = random.Random('enc:%d:%d' % (seed, idx))
        self.encrypted_case = self.erng.random() < ENC_P
        self.keys = {}        # file name -> secret id of its LUKS key
        self.desc = []        # short description for the TAP line
        self.log = []         # commands run to build the fixture (for reproduction)
        self.dir = None

    # ---- fixture building

    def qimg(self, *args):
        self.log.append('qemu-img ' + ' '.join(rt.shlex_quote(a) for a in args))
        return jt.qemu_img(*args, cwd=self.dir)

    # ---- encrypted layers

    def pick_key(self):
        """None (plain) or the secret id of a new qcow2 layer's key."""
        if not self.encrypted_case or self.erng.random() < 0.35:
            return None
        return self.erng.choice(sorted(ENC_SECRETS))

    def view_opts(self, img):
        """--image-opts of the view through @img's chain as its headers
        name it now, with the key of every encrypted layer."""
        s = 'file.filename=%s' % img
        name, depth = img, 0
        while name:
            # every file is in the case's directory; a header may name one
            # by its absolute path
            sid = self.keys.get(os.path.basename(name))
            if sid:
                s += ',%sencrypt.key-secret=%s' % ('backing.' * depth, sid)
            if name.endswith('.raw'):
                break
            name = rt.read_header(os.path.join(self.dir, name))['backing_file']
            depth += 1
        return ('driver=raw,' if img.endswith('.raw') else 'driver=qcow2,') + s

    def qimg_keys(self, *args):
        """qemu-img with every secret (before its other arguments)."""
        self.log.append('qemu-img ' + ' '.join(rt.shlex_quote(a) for a in args))
        return rt.must([rt.QEMU_IMG, args[0]] + enc_objects() + list(args[1:]), cwd=self.dir)

    def qimg_on(self, img, *args):
        """qemu-img @args on @img (a plain overlay), which opens its backing
        chain (qemu-img snapshot does): with the keys of its encrypted
        backing files if any."""
        if not self.keys:
            return self.qimg(*(args + (img,)))
        return self.qimg_keys(*(args + ('--image-opts', self.view_opts(img))))

    def make_encrypted(self, name, size, sid, opts, backing=None, bfmt=None):
        """@name: a copy of its template, resized, on @backing."""
        shutil.copy(enc_template(sid, self.opts_str(opts)), os.path.join(self.dir, name))
        self.keys[name] = sid
        self.log.append('cp TEMPLATE(%s, %s) %s' % (sid, self.opts_str(opts), name))
        self.qimg_keys('resize', '-q', '--shrink', '--image-opts', self.view_opts(name), str(size))
        if backing:
            self.qimg_keys('rebase', '-u', '-b', backing, '-F', bfmt, '--image-opts',
                           self.view_opts(name))

    def qio(self, img, cmds, fmt):
        if not cmds:
            return
        if self.keys:
            self.log.append('qemu-io --image-opts %s %s' % (self.view_opts(img),
                                                             ' '.join("-c '%s'" % c for c in cmds)))
            for i in range(0, len(cmds), 60):
                argv = [rt.QEMU_IO] + enc_objects() + ['--image-opts', self.view_opts(img)]
                for c in cmds[i:i + 60]:
                    argv += ['-c', c]
                rt.must(argv, cwd=self.dir)
            return
        self.log.append('qemu-io -f %s %s %s' % (fmt, ' '.join("-c '%s'" % c for c in cmds), img))
        # many commands per qemu-io process; chunked to keep argv sane
        for i in range(0, len(cmds), 60):
            jt.qemu_io(img, *cmds[i:i + 60], fmt=fmt, cwd=self.dir)

    def qcow2_opts(self, allow_v2=True):
        r = self.rng
        cs = r.choice(CLUSTER_SIZES)
        o = {'cluster_size': cs}
        if allow_v2 and r.random() < 0.2:
            o['compat'] = '0.10'
            o['refcount_bits'] = 16
        else:
            o['compat'] = '1.1'
            o['refcount_bits'] = r.choice(REFCOUNT_BITS)
            o['compression_type'] = r.choice(['zlib', 'zstd'])
            if cs >= 16384 and r.random() < 0.4:
                o['extended_l2'] = 'on'
            if r.random() < 0.1:
                o['lazy_refcounts'] = 'on'
        return o

    @staticmethod
    def opts_str(o):
        return ','.join('%s=%s' % kv for kv in o.items())

    @staticmethod
    def opts_short(o):
        s = 'cs%d' % o['cluster_size']
        if o.get('compat') == '0.10':
            s += ',v2'
        else:
            s += ',rc%d,%s' % (o['refcount_bits'], o['compression_type'])
            if o.get('extended_l2'):
                s += ',el2'
        return s

    def key_desc(self, name):
        return '+luks:' + self.keys[name] if self.keys.get(name) else ''

    def pattern(self):
        r = self.rng
        return r.choice([0] + list(range(1, 256)))

    def data_cmd(self, off, length):
        r = self.rng
        if r.random() < 0.25:
            return 'write -s pat.bin %d %d' % (off, length)
        return 'write -P %d %d %d' % (self.pattern(), off, length)

    def random_ops(self, size, fmt, cs=None, nops=None, compressed=0):
        """qemu-io commands shaping an image of @size."""
        r = self.rng
        cmds = []
        if compressed and cs and size // cs >= 1:
            n = min(compressed, size // cs)
            for c in sorted(r.sample(range(size // cs), n)):
                if r.random() < 0.3:
                    cmds.append('write -c -s pat.bin %d %d' % (c * cs, cs))
                else:
                    cmds.append('write -c -P %d %d %d' % (r.randrange(1, 256), c * cs, cs))
        nops = nops if nops is not None else r.randrange(2, 12)
        for _ in range(nops):
            length = r.choice([1, 511, 512, 4096, 5000, 65536, 65536 + 512, 200000,
                               cs or 4096, 2 * (cs or 4096), 600000])
            length = min(length, size)
            off = r.randrange(0, size - length + 1)
            k = r.random()
            if k < 0.6:
                if r.random() < 0.5:
                    off &= ~511
                cmds.append(self.data_cmd(off, length))
            else:
                a = off & ~511
                ln = min(((length + 511) & ~511), size - a)
                if ln <= 0:
                    continue
                if k < 0.75:
                    cmds.append('write -z %d %d' % (a, ln))
                elif k < 0.85:
                    cmds.append('write -z -u %d %d' % (a, ln))
                else:
                    cmds.append('discard %d %d' % (a, ln))
        return cmds

    def make_layer(self, name, size, fmt, backing=None, bfmt=None, opts=None):
        if fmt == 'raw':
            self.qimg('create', '-q', '-f', 'raw', name, str(size))
            self.qio(name, self.random_ops(size, 'raw'), 'raw')
            return name, 'raw'
        opts = opts or self.qcow2_opts()
        sid = self.pick_key()
        if sid:
            opts.clear()
            opts.update(self.erng.choice(ENC_OPTS))
            self.make_encrypted(name, size, sid, opts, backing, bfmt)
        else:
            args = ['create', '-q', '-f', 'qcow2', '-o', self.opts_str(opts)]
            if backing:
                args += ['-b', backing, '-F', bfmt]
            self.qimg(*(args + [name, str(size)]))
        ncomp = self.rng.choice([0, 0, 1, 3])
        if sid:
            # QEMU writes no compressed cluster into an encrypted image
            ncomp = 0
        self.qio(name, self.random_ops(size, 'qcow2', opts['cluster_size'], compressed=ncomp),
                 'qcow2')
        return name, 'qcow2'

    def vsize(self, base):
        r = self.rng
        k = r.random()
        if k < 0.5:
            return base
        if k < 0.75:
            return max(512, base - 512 * r.randrange(1, 2048))
        return base + 512 * r.randrange(1, 2048)

    def build(self):
        r = self.rng
        with open(os.path.join(self.dir, 'pat.bin'), 'wb') as f:
            f.write(r.randbytes(2 * MiB + 4096))
        if self.encrypted_case:
            for sid, p in ENC_SECRETS.items():
                with open(os.path.join(self.dir, sid + '.key'), 'w') as f:
                    f.write(p)
        ov_size = r.choice([1, 2, 3, 4]) * MiB
        if r.random() < 0.3:
            ov_size += 512 * r.randrange(1, 2048)
        nback = r.choice([0, 1, 1, 2, 2, 3])
        chain = []  # bottom first: (name, fmt)
        for i in range(nback):
            size = self.vsize(ov_size)
            fmt = 'raw' if i == 0 and r.random() < 0.3 else 'qcow2'
            below = chain[-1] if chain else (None, None)
            opts = self.qcow2_opts() if fmt == 'qcow2' else None
            chain.append(self.make_layer('l%d.%s' % (i, fmt), size, fmt, below[0], below[1], opts))
            self.desc.append('l%d=%s/%d%s' % (i, self.opts_short(opts) if opts else 'raw', size,
                                              self.key_desc(chain[-1][0])))
        self.old_chain = chain
        top = chain[-1] if chain else (None, None)
        # overlays
        nov = 2 if chain and r.random() < 0.25 else 1
        self.overlays = []
        for j in range(nov):
            opts = self.qcow2_opts()
            name = 'ov%d.qcow2' % j
            sid = self.pick_key()
            if sid:
                opts = dict(self.erng.choice(ENC_OPTS))
                self.make_encrypted(name, ov_size, sid, opts, top[0], top[1])
            else:
                args = ['create', '-q', '-f', 'qcow2', '-o', self.opts_str(opts)]
                if top[0]:
                    args += ['-b', top[0], '-F', top[1]]
                self.qimg(*(args + [name, str(ov_size)]))
            cs = opts['cluster_size']
            ncomp = r.choice([0, 1, 2, 4])
            ops = self.random_ops(ov_size, 'qcow2', cs, compressed=0 if sid else ncomp)
            # snapshots and bitmaps only on plain overlays (qemu-img needs
            # the key for them; not what this test is about)
            snaps = opts['refcount_bits'] >= 4 and r.random() < 0.3 and not sid
            d = 'ov%d=%s/%d%s' % (j, self.opts_short(opts), ov_size, self.key_desc(name))
            if snaps:
                half = len(ops) // 2
                self.qio(name, ops[:half], 'qcow2')
                self.qimg_on(name, 'snapshot', '-c', 'snap1')
                if r.random() < 0.3:
                    self.qio(name, self.random_ops(ov_size, 'qcow2', cs, nops=2), 'qcow2')
                    self.qimg_on(name, 'snapshot', '-c', 'snap2')
                self.qio(name, ops[half:], 'qcow2')
                d += '+snap'
            else:
                self.qio(name, ops, 'qcow2')
            if opts['compat'] != '0.10' and r.random() < 0.3 and not sid:
                self.qimg('bitmap', '--add', name, 'bm0')  # opens no backing file
                self.qio(name, self.random_ops(ov_size, 'qcow2', cs, nops=2), 'qcow2')
                d += '+bitmap'
            self.desc.append(d)
            self.overlays.append(name)
        # the new backing
        choices = ['unrelated', 'raw', 'none']
        if chain:
            choices += ['ancestor', 'ancestor', 'copy', 'copy', 'copy']
        kind = r.choice(choices)
        if kind == 'ancestor':
            i = r.randrange(len(chain))
            self.new = chain[i]
        elif kind == 'copy':
            size = self.vsize(ov_size) if r.random() < 0.3 else None
            near_raw = r.random() < 0.25
            sid = None if near_raw else self.pick_key()
            if near_raw:
                name, fmt = 'near.raw', 'raw'
                if self.keys:
                    self.qimg_keys('convert', '-O', 'raw', '--image-opts', self.view_opts(top[0]),
                                   name)
                else:
                    self.qimg('convert', '-O', 'raw', top[0], name)
            elif sid:
                name, fmt = 'near.qcow2', 'qcow2'
                opts = dict(self.erng.choice(ENC_OPTS))
                self.qcow2_opts()  # drawn as for a plain near copy
                vs = jt.qemu_info(top[0], cwd=self.dir)['virtual-size']
                self.make_encrypted(name, vs, sid, opts)
                self.qimg_keys('convert', '-n', '--image-opts', self.view_opts(top[0]),
                               '--target-image-opts', self.view_opts(name))
                self.desc.append('near=%s%s' % (self.opts_short(opts), self.key_desc(name)))
            else:
                name, fmt = 'near.qcow2', 'qcow2'
                opts = self.qcow2_opts()
                if self.keys:
                    self.qimg_keys('convert', '-O', 'qcow2', '-o', self.opts_str(opts),
                                   '--image-opts', self.view_opts(top[0]), name)
                else:
                    self.qimg('convert', '-O', 'qcow2', '-o', self.opts_str(opts), top[0], name)
                self.desc.append('near=%s' % self.opts_short(opts))
            if size is not None:
                if sid:
                    self.qimg_keys('resize', '-q', '--shrink', '--image-opts',
                                   self.view_opts(name), str(size))
                else:
                    self.qimg('resize', '-q', '-f', fmt, '--shrink', name, str(size))
                self.desc.append('near-size=%d' % size)
            vs = jt.qemu_info(name, cwd=self.dir)['virtual-size']
            self.qio(name, self.random_ops(vs, fmt, nops=r.randrange(1, 5)), fmt)
            self.new = (name, fmt)
        elif kind == 'unrelated':
            size = self.vsize(ov_size)
            below = (None, None)
            if chain and r.random() < 0.4:
                below = chain[0]     # shares the bottom of the old chain
                kind += '-on-' + below[0]
            opts = self.qcow2_opts()
            self.new = self.make_layer('new.qcow2', size, 'qcow2', below[0], below[1], opts)
            self.desc.append('new=%s/%d%s' % (self.opts_short(opts), size,
                                               self.key_desc('new.qcow2')))
        elif kind == 'raw':
            self.new = self.make_layer('new.raw', self.vsize(ov_size), 'raw')
        else:
            self.new = ('', None)
        self.desc.append('target=%s(%s)' % (kind, self.new[0] or '""'))
        # options
        self.args = []
        # -c is refused for an encrypted overlay, as qemu-img refuses it
        if r.random() < 0.2 and not any(self.keys.get(ov) for ov in self.overlays):
            self.args.append('-c')
            self.desc.append('-c')
        if r.random() < 0.15:
            t = r.choice(['writethrough', 'unsafe', 'directsync'])
            self.args += ['-t', t]
            self.desc.append('-t ' + t)
        self.name_abs = self.new[0] and r.random() < 0.15
        bname = os.path.join(self.dir, self.new[0]) if self.name_abs else self.new[0]
        # how copied data gets into the overlay: "auto" (the default: block
        # sharing or in-kernel copy where the file system offers it) or a
        # plain "copy"; given explicitly or left to the default
        mode = r.choice(['default', 'auto', 'copy', 'copy'])
        if mode != 'default':
            self.args.append('--copy-mode=' + mode)
        self.desc.append('copy-mode=' + mode)
        for f, sid in sorted(self.keys.items()):
            self.args += ['--key-file', '%s=%s.key' % (f, sid)]
        self.args += ['-b', bname]
        if self.new[1]:
            self.args += ['-F', self.new[1]]

    # ---- the judges, given the keys of an encrypted case

    def before(self, tc, ov):
        if not self.keys:
            return jt.Before(tc, ov, self.dir)
        b = jt.Before.__new__(jt.Before)
        b.img, b.cwd = ov, self.dir
        b.raw = os.path.join(self.dir, '.before-%s.raw' % ov)
        self.qimg_keys('convert', '-U', '-O', 'raw', '--image-opts', self.view_opts(ov), b.raw)
        b.snaps = jt.snapshot_names(ov, self.dir)
        b.bitmaps = jt.bitmap_names(ov, self.dir)
        b.snap_raw = {}
        # only plain overlays have snapshots: their own data needs no key
        for s in b.snaps:
            p = os.path.join(self.dir, '.before-%s.snap-%s.raw' % (ov, s))
            jt.dump_raw(os.path.join(self.dir, ov), p, self.dir, snapshot=s, no_backing=True)
            b.snap_raw[s] = p
        return b

    def assert_content(self, tc, b, what):
        if not self.keys:
            return tc.assert_content(b, what)
        c = rt.run([rt.QEMU_IMG, 'compare', '-U'] + enc_objects()
                   + ['--image-opts', 'driver=raw,file.filename=' + b.raw,
                      self.view_opts(b.img)], cwd=self.dir, timeout=300)
        tc.assertEqual(c.rc, 0, '%s: content of %s changed\n%s' % (what, b.img, c.describe()))

    def assert_check(self, tc, img, what):
        if not self.keys:
            return tc.assert_check(img, cwd=self.dir, what=what)
        spec = {'driver': 'qcow2', 'backing': None, 'file': {'driver': 'file', 'filename': img}}
        if self.keys.get(img):
            spec['encrypt.key-secret'] = self.keys[img]
        c = rt.run([rt.QEMU_IMG, 'check', '-U'] + enc_objects() + ['json:' + json.dumps(spec)],
                   cwd=self.dir)
        tc.assertEqual(c.rc, 0, '%s: qemu-img check of %s exit %d\n%s'
                       % (what, img, c.rc, c.describe()))

    # ---- the run

    def run(self):
        tc = jt.JobTestCase()
        tc.dir = self.dir
        self.build()
        befores = [self.before(tc, ov) for ov in self.overlays]
        others = {f: h for f, h in rt.tree_hashes(self.dir).items()
                  if not f.startswith('.') and f not in self.overlays}
        cmd = self.args + self.overlays
        self.desc.append('| rechain rebase ' + ' '.join(
            rt.shlex_quote(a).replace(self.dir, '$DIR') for a in cmd))
        self.log.append('rechain rebase --output=json ' + ' '.join(rt.shlex_quote(a) for a in cmd))
        rep, r = tc.rebase_json(*cmd, cwd=self.dir)
        self.report = rep
        imgs = rep.get('images', [])
        tc.assertEqual(len(imgs), len(self.overlays), r.describe())
        for e in imgs:
            tc.assertEqual(e.get('result'), 'rebased', r.describe())
        for b in befores:
            self.assert_content(tc, b, 'after rebase')
            self.assert_check(tc, b.img, 'after rebase')
            tc.assert_backing(b.img, self.args[self.args.index('-b') + 1],
                              self.new[1], cwd=self.dir)
            tc.assert_extras(b, 'after rebase')
        now = {f: h for f, h in rt.tree_hashes(self.dir).items()
               if not f.startswith('.') and f not in self.overlays}
        tc.assertEqual(now, others, 'rechain changed files other than the overlays')
        # a second run onto the same backing has nothing to do
        self.log.append('rechain rebase --output=json ' + ' '.join(rt.shlex_quote(a) for a in cmd))
        rep2, r2 = tc.rebase_json(*cmd, cwd=self.dir)
        for e in rep2.get('images', []):
            tc.assertEqual(e.get('result'), 'rebased', r2.describe())
            tc.assertEqual(e.get('bytes-written'), 0, 'second run wrote data\n' + r2.describe())
            tc.assertEqual(e.get('bytes-zeroed'), 0, 'second run zeroed\n' + r2.describe())
        for b in befores:
            self.assert_content(tc, b, 'after second run')
            self.assert_check(tc, b.img, 'after second run')


def run_case(idx):
    c = Case(SEED, idx)
    c.dir = tempfile.mkdtemp(prefix='rechain-rand-%d-%d-' % (SEED, idx))
    t0 = time.time()
    err = None
    try:
        c.run()
    except Exception:  # noqa: BLE001 (AssertionError, CommandFailed, timeouts)
        err = traceback.format_exc()
    finally:
        if not rt.KEEP and err is None:
            shutil.rmtree(c.dir, ignore_errors=True)
    return c, err, time.time() - t0


def main():
    out = sys.stdout
    if not rt.have_exe(rt.RECHAIN):
        out.write('1..0 # SKIP rechain executable not built (RECHAIN=%r)\n' % rt.RECHAIN)
        return 0
    idxs = [ONLY] if ONLY is not None else list(range(CASES))
    out.write('# seed %d, %d cases, %d jobs (reproduce one: RECHAIN_SEED=%d RECHAIN_CASE=N %s)\n'
              % (SEED, len(idxs), JOBS, SEED, sys.argv[0]))
    out.flush()
    n = 0
    failed = 0
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as ex:
        for c, err, secs in ex.map(run_case, idxs):
            n += 1
            line = 'seed=%d case=%d %s (%.1fs)' % (SEED, c.idx, ' '.join(c.desc), secs)
            if err is None:
                out.write('ok %d - %s\n' % (n, line))
            else:
                failed += 1
                out.write('not ok %d - %s\n' % (n, line))
                diag = ['files kept in %s' % c.dir,
                        'reproduce: RECHAIN_SEED=%d RECHAIN_CASE=%d %s' % (SEED, c.idx, sys.argv[0]),
                        'fixture commands (cwd = that directory):'] + c.log + [err]
                for l in '\n'.join(diag).splitlines():
                    out.write('# %s\n' % l)
            out.flush()
    out.write('1..%d\n' % n)
    out.write('# %d failed of %d in %.1fs\n' % (failed, n, time.time() - t0))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
