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


class Case:
    def __init__(self, seed, idx):
        self.seed = seed
        self.idx = idx
        self.rng = random.Random('%d:%d' % (seed, idx))
        self.desc = []        # short description for the TAP line
        self.log = []         # commands run to build the fixture (for reproduction)
        self.dir = None

    # ---- fixture building

    def qimg(self, *args):
        self.log.append('qemu-img ' + ' '.join(rt.shlex_quote(a) for a in args))
        return jt.qemu_img(*args, cwd=self.dir)

    def qio(self, img, cmds, fmt):
        if not cmds:
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
        args = ['create', '-q', '-f', 'qcow2', '-o', self.opts_str(opts)]
        if backing:
            args += ['-b', backing, '-F', bfmt]
        self.qimg(*(args + [name, str(size)]))
        ncomp = self.rng.choice([0, 0, 1, 3])
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
            self.desc.append('l%d=%s/%d' % (i, self.opts_short(opts) if opts else 'raw', size))
        self.old_chain = chain
        top = chain[-1] if chain else (None, None)
        # overlays
        nov = 2 if chain and r.random() < 0.25 else 1
        self.overlays = []
        for j in range(nov):
            opts = self.qcow2_opts()
            name = 'ov%d.qcow2' % j
            args = ['create', '-q', '-f', 'qcow2', '-o', self.opts_str(opts)]
            if top[0]:
                args += ['-b', top[0], '-F', top[1]]
            self.qimg(*(args + [name, str(ov_size)]))
            cs = opts['cluster_size']
            ops = self.random_ops(ov_size, 'qcow2', cs, compressed=r.choice([0, 1, 2, 4]))
            snaps = opts['refcount_bits'] >= 4 and r.random() < 0.3
            d = 'ov%d=%s/%d' % (j, self.opts_short(opts), ov_size)
            if snaps:
                half = len(ops) // 2
                self.qio(name, ops[:half], 'qcow2')
                self.qimg('snapshot', '-c', 'snap1', name)
                if r.random() < 0.3:
                    self.qio(name, self.random_ops(ov_size, 'qcow2', cs, nops=2), 'qcow2')
                    self.qimg('snapshot', '-c', 'snap2', name)
                self.qio(name, ops[half:], 'qcow2')
                d += '+snap'
            else:
                self.qio(name, ops, 'qcow2')
            if opts['compat'] != '0.10' and r.random() < 0.3:
                self.qimg('bitmap', '--add', name, 'bm0')
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
            if r.random() < 0.25:
                name, fmt = 'near.raw', 'raw'
                self.qimg('convert', '-O', 'raw', top[0], name)
            else:
                name, fmt = 'near.qcow2', 'qcow2'
                opts = self.qcow2_opts()
                self.qimg('convert', '-O', 'qcow2', '-o', self.opts_str(opts), top[0], name)
                self.desc.append('near=%s' % self.opts_short(opts))
            if size is not None:
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
            self.desc.append('new=%s/%d' % (self.opts_short(opts), size))
        elif kind == 'raw':
            self.new = self.make_layer('new.raw', self.vsize(ov_size), 'raw')
        else:
            self.new = ('', None)
        self.desc.append('target=%s(%s)' % (kind, self.new[0] or '""'))
        # options
        self.args = []
        if r.random() < 0.2:
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
        self.args += ['-b', bname]
        if self.new[1]:
            self.args += ['-F', self.new[1]]

    # ---- the run

    def run(self):
        tc = jt.JobTestCase()
        tc.dir = self.dir
        self.build()
        befores = [jt.Before(tc, ov, self.dir) for ov in self.overlays]
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
            tc.assert_content(b, 'after rebase')
            tc.assert_check(b.img, cwd=self.dir, what='after rebase')
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
            tc.assert_content(b, 'after second run')
            tc.assert_check(b.img, cwd=self.dir, what='after second run')


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
