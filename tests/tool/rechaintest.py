# rechaintest.py: shared helpers of the end-to-end tests of the rechain tool.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# QEMU's own tools are the oracle: qemu-img and qemu-io create every
# fixture at test time, and qemu-img info/map/compare/check/convert judge
# rechain's results.  Standard library only.
#
# Environment:
#   RECHAIN       path of the built rechain executable (required; the
#                 test scripts skip themselves when it is missing)
#   RECHAIN_DUMP  path of the rechain-dump test helper (tests needing it
#                 skip when it is missing)
#   QEMU_IMG, QEMU_IO  override the QEMU tools (default: from PATH)
#   RECHAIN_TEST_KEEP=1  keep the temporary directories for inspection
#   RECHAIN_TEST_STRICT=1  what would skip for want of root, loop devices or
#                 a tool fails instead (CI sets it)

import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
import traceback
import unittest

RECHAIN = os.environ.get('RECHAIN', '')
RECHAIN_DUMP = os.environ.get('RECHAIN_DUMP', '')
# the tests run the tools from many directories
RECHAIN = os.path.abspath(RECHAIN) if RECHAIN else ''
RECHAIN_DUMP = os.path.abspath(RECHAIN_DUMP) if RECHAIN_DUMP else ''
QEMU_IMG = os.environ.get('QEMU_IMG', 'qemu-img')
QEMU_IO = os.environ.get('QEMU_IO', 'qemu-io')
KEEP = os.environ.get('RECHAIN_TEST_KEEP') == '1'
STRICT = os.environ.get('RECHAIN_TEST_STRICT') == '1'

# Exit codes of the rechain tool.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_IN_USE = 4
EXIT_IO = 5
EXIT_CANCELLED = 6

# Things that must never show up on rechain's stderr.
CRASH_MARKERS = ('CRITICAL', 'Assertion', 'assertion', 'Segmentation fault',
                 'AddressSanitizer', 'LeakSanitizer', 'runtime error:',
                 'core dumped', 'g_return_if_fail', 'should not be reached')


def have_exe(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


# A stand-in for virtlockd, on this host or another one sharing the
# storage: a POSIX (process-associated) F_SETLK write lock on byte 0 of a
# file, taken by a process of its own and held until its stdin is closed.
_LEASE_HOLDER = r'''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
sys.stdout.write('held\n')
sys.stdout.flush()
sys.stdin.read()
'''


class LeaseHolder:
    """Holds libvirt's lease on @path (an image, or a lease file, created
    0600 if missing) until stop() or the end of a with block."""

    def __init__(self, path):
        # a plain Python: no sanitizer runtime preloaded into it
        env = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
        self.p = subprocess.Popen([sys.executable, '-c', _LEASE_HOLDER, path],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        if self.p.stdout.readline() != b'held\n':
            raise RuntimeError('could not hold the lease of %s: %s'
                               % (path, self.p.stderr.read().decode()))

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# fcntl(2), Linux: a pipe's capacity
F_SETPIPE_SZ = 1031


class Result:
    """Outcome of one command."""

    def __init__(self, argv, cwd, rc, out, err):
        self.argv = argv
        self.cwd = cwd
        self.rc = rc
        self.out = out
        self.err = err

    def describe(self):
        return ('$ (cd %s && %s)\nexit %s\n--- stdout ---\n%s\n--- stderr ---\n%s'
                % (self.cwd or '.', ' '.join(shlex_quote(a) for a in self.argv),
                   self.rc, self.out[-4000:], self.err[-4000:]))

    def json(self):
        return json.loads(self.out)


def shlex_quote(s):
    import shlex
    return shlex.quote(str(s))


# Fault injection (RECHAIN_FAULT, RECHAIN_FAULT_LOG) is not in the rechain
# that ships: it lives in a shim, tests/fault/fault-shim.c, which meson
# builds and names in RECHAIN_FAULT_SHIM (the value for LD_PRELOAD; under
# AddressSanitizer its runtime comes first).
FAULT_VARS = ('RECHAIN_FAULT', 'RECHAIN_FAULT_LOG')


def fault_env(env):
    """@env (a complete environment, changed in place and returned) with
    the fault shim preloaded if it asks for fault injection."""
    if any(env.get(k) for k in FAULT_VARS):
        shim = os.environ.get('RECHAIN_FAULT_SHIM')
        if not shim:
            raise RuntimeError('RECHAIN_FAULT or RECHAIN_FAULT_LOG set, but no RECHAIN_FAULT_SHIM '
                               '(the fault shim, tests/fault): run the tests through meson')
        env['LD_PRELOAD'] = shim
    return env


def run(argv, cwd=None, timeout=120, input=None, env=None):
    argv = [str(a) for a in argv]
    e = dict(os.environ)
    e.setdefault('LC_ALL', 'C.UTF-8')
    if env:
        e.update(env)
    if os.path.basename(argv[0]) == 'rechain':
        fault_env(e)
    p = subprocess.run(argv, cwd=cwd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       input=input, env=e)
    return Result(argv, cwd, p.returncode,
                  p.stdout.decode('utf-8', 'replace'),
                  p.stderr.decode('utf-8', 'replace'))


class CommandFailed(Exception):
    pass


def must(argv, cwd=None, **kw):
    r = run(argv, cwd=cwd, **kw)
    if r.rc != 0:
        raise CommandFailed(r.describe())
    return r


def qemu_img(*args, cwd=None):
    return must([QEMU_IMG] + list(args), cwd=cwd)


def qemu_io(img, *cmds, fmt=None, cwd=None, extra=()):
    argv = [QEMU_IO]
    if fmt:
        argv += ['-f', fmt]
    argv += list(extra)
    for c in cmds:
        argv += ['-c', c]
    argv.append(img)
    r = must(argv, cwd=cwd)
    # qemu-io reports failed commands on stdout/stderr but exits 0
    low = (r.out + r.err).lower()
    if 'failed' in low or 'error' in low:
        raise CommandFailed('qemu-io command failed:\n' + r.describe())
    return r


def qemu_info(img, cwd=None, fmt=None, chain=False, force_share=True):
    args = ['info', '--output=json']
    if fmt:
        args += ['-f', fmt]
    if chain:
        args.append('--backing-chain')
    if force_share:
        args.append('-U')
    return json.loads(qemu_img(*(args + [img]), cwd=cwd).out)


def qemu_map(img, cwd=None, fmt=None):
    args = ['map', '--output=json', '-U']
    if fmt:
        args += ['-f', fmt]
    return json.loads(qemu_img(*(args + [img]), cwd=cwd).out)


def qemu_check(img, cwd=None, fmt=None):
    """qemu-img check of @img alone: its backing file is not opened (it
    need not exist after an unsafe rebase)."""
    if fmt in (None, 'qcow2'):
        spec = json.dumps({'driver': 'qcow2', 'backing': None,
                           'file': {'driver': 'file', 'filename': img}})
        return run([QEMU_IMG, 'check', '-U', 'json:' + spec], cwd=cwd)
    return run([QEMU_IMG, 'check', '-U', '-f', fmt, img], cwd=cwd)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tree_hashes(directory):
    """sha256 of every regular file below @directory (relative names)."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            out[os.path.relpath(p, directory)] = sha256(p)
    return out


def write_pattern_file(path, size, chunks):
    """Creates a sparse file of @size with (offset, length, byte) chunks."""
    with open(path, 'wb') as f:
        f.truncate(size)
        for off, length, val in chunks:
            f.seek(off)
            if val is None:
                # pseudo-random, incompressible-ish data
                f.write(hashlib.sha256(b'%d' % off).digest() * (length // 32) +
                        b'\x5a' * (length % 32))
            else:
                f.write(bytes([val]) * length)


# ---------------------------------------------------------------------------
# qcow2 header access (for crafting and inspecting images)

QCOW2_MAGIC = 0x514649fb
EXT_END = 0
EXT_BACKING_FORMAT = 0xe2792aca
EXT_FEATURE_TABLE = 0x6803f857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537be77
EXT_DATA_FILE = 0x44415441

HDR_FIELDS = [  # (name, offset, struct format)
    ('magic', 0, '>I'),
    ('version', 4, '>I'),
    ('backing_file_offset', 8, '>Q'),
    ('backing_file_size', 16, '>I'),
    ('cluster_bits', 20, '>I'),
    ('size', 24, '>Q'),
    ('crypt_method', 32, '>I'),
    ('l1_size', 36, '>I'),
    ('l1_table_offset', 40, '>Q'),
    ('refcount_table_offset', 48, '>Q'),
    ('refcount_table_clusters', 56, '>I'),
    ('nb_snapshots', 60, '>I'),
    ('snapshots_offset', 64, '>Q'),
    ('incompatible_features', 72, '>Q'),
    ('compatible_features', 80, '>Q'),
    ('autoclear_features', 88, '>Q'),
    ('refcount_order', 96, '>I'),
    ('header_length', 100, '>I'),
]
FIELD = {n: (o, f) for n, o, f in HDR_FIELDS}


def read_header(path):
    with open(path, 'rb') as f:
        head = f.read(1 << 21)
    h = {}
    for name, off, fmt in HDR_FIELDS:
        if name == 'incompatible_features' and struct.unpack_from('>I', head, 4)[0] < 3:
            break
        h[name] = struct.unpack_from(fmt, head, off)[0]
    cs = 1 << h['cluster_bits']
    h['cluster_size'] = cs
    ext_start = h.get('header_length', 72) if h['version'] >= 3 else 72
    h['extensions'] = []
    off = ext_start
    end = min(cs, len(head))
    while off + 8 <= end:
        magic, length = struct.unpack_from('>II', head, off)
        if magic == EXT_END:
            break
        h['extensions'].append((magic, head[off + 8:off + 8 + length]))
        off += 8 + ((length + 7) & ~7)
    if h['backing_file_offset']:
        b = h['backing_file_offset']
        h['backing_file'] = head[b:b + h['backing_file_size']].decode('utf-8', 'replace')
    else:
        h['backing_file'] = None
    return h


def patch(path, offset, fmt, *values):
    """Overwrites bytes of @path at @offset with struct.pack(@fmt, values)."""
    with open(path, 'r+b') as f:
        buf = bytearray(struct.calcsize(fmt))
        struct.pack_into(fmt, buf, 0, *values)
        f.seek(offset)
        f.write(buf)


def patch_field(path, name, value):
    off, fmt = FIELD[name]
    patch(path, off, fmt, value)


def get_field(path, name):
    off, fmt = FIELD[name]
    with open(path, 'rb') as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def rewrite_header_extensions(path, extensions, backing_name):
    """Re-lays out the extension area and backing name of a v3 image's header
    cluster: header (header_length bytes), @extensions [(magic, data)], end
    marker, then @backing_name (str or None).  The rest of the first
    cluster is zeroed."""
    h = read_header(path)
    cs = h['cluster_size']
    hl = h['header_length'] if h['version'] >= 3 else 72
    with open(path, 'r+b') as f:
        head = bytearray(f.read(cs))
        buf = bytearray(head[:hl])
        for magic, data in extensions:
            buf += struct.pack('>II', magic, len(data)) + data
            buf += b'\0' * (((len(data) + 7) & ~7) - len(data))
        buf += struct.pack('>II', 0, 0)
        if backing_name:
            name = backing_name.encode()
            struct.pack_into('>QI', buf, 8, len(buf), len(name))
            buf += name
        else:
            struct.pack_into('>QI', buf, 8, 0, 0)
        assert len(buf) <= cs, 'header does not fit'
        buf += b'\0' * (cs - len(buf))
        f.seek(0)
        f.write(buf)


# ---------------------------------------------------------------------------
# map comparison

def _norm_entries(entries, who):
    """Validates a map (contiguous, starting at 0) and returns
    [(start, end, entry)] without zero-length entries."""
    out = []
    pos = 0
    for e in entries:
        for k in ('start', 'length', 'depth', 'present', 'zero', 'data'):
            if k not in e:
                raise AssertionError('%s map entry lacks "%s": %r' % (who, k, e))
        if e['start'] != pos:
            raise AssertionError('%s map is not contiguous at %d: %r' % (who, pos, e))
        if e['length'] < 0:
            raise AssertionError('%s map entry has negative length: %r' % (who, e))
        if e['length'] == 0:
            continue
        out.append((e['start'], e['start'] + e['length'], e))
        pos += e['length']
    return out, pos


def _piece(e, a):
    kind = 'data' if e['data'] else ('zero' if e['zero'] else 'neither')
    off = None
    if 'offset' in e:
        off = e['offset'] + (a - e['start'])
    return {'present': e['present'], 'kind': kind, 'depth': e['depth'], 'offset': off}


def compare_maps(qmap, rmap):
    """Compares qemu-img map and rechain map JSON per byte range.

    Returns (errors, notes): errors are real mismatches; notes are tolerated
    differences (qemu gives an offset for a range that is not data -- a
    zero-allocated cluster or an unallocated range of a raw external data
    file -- where rechain gives none)."""
    q, qend = _norm_entries(qmap, 'qemu-img')
    r, rend = _norm_entries(rmap, 'rechain')
    errors = []
    notes = []
    if qend != rend:
        errors.append('map covers %d bytes in qemu-img, %d in rechain' % (qend, rend))
    bounds = sorted(set([a for a, b, e in q] + [b for a, b, e in q] +
                        [a for a, b, e in r] + [b for a, b, e in r]))
    qi = ri = 0
    last = None
    for a, b in zip(bounds, bounds[1:]):
        while qi < len(q) and q[qi][1] <= a:
            qi += 1
        while ri < len(r) and r[ri][1] <= a:
            ri += 1
        if qi >= len(q) or ri >= len(r):
            break
        qp = _piece(q[qi][2], a)
        rp = _piece(r[ri][2], a)
        diffs = []
        for k in ('present', 'kind', 'depth'):
            if qp[k] != rp[k]:
                diffs.append('%s qemu=%r rechain=%r' % (k, qp[k], rp[k]))
        if qp['kind'] == 'data' and rp['kind'] == 'data':
            if qp['offset'] is not None and qp['offset'] != rp['offset']:
                diffs.append('offset qemu=%r rechain=%r' % (qp['offset'], rp['offset']))
            if (qp['offset'] is None) != (rp['offset'] is None):
                diffs.append('offset presence qemu=%r rechain=%r' % (qp['offset'], rp['offset']))
        elif qp['offset'] is not None or rp['offset'] is not None:
            if qp['offset'] is not None and rp['offset'] is not None:
                if qp['offset'] != rp['offset']:
                    diffs.append('offset qemu=%r rechain=%r' % (qp['offset'], rp['offset']))
            elif rp['offset'] is not None:
                diffs.append('offset given by rechain only (%r) for a %s range'
                             % (rp['offset'], rp['kind']))
            else:
                notes.append('[%d, %d): qemu-img gives offset %r for a non-data range, '
                             'rechain none' % (a, b, qp['offset']))
        if diffs:
            msg = '[%d, %d): %s' % (a, b, '; '.join(diffs))
            # merge consecutive ranges with the same difference
            if last is not None and last[1] == a and last[2] == diffs:
                errors[-1] = '[%d, %d): %s' % (last[0], b, '; '.join(diffs))
                last = (last[0], b, diffs)
            else:
                errors.append(msg)
                last = (a, b, diffs)
    return errors, notes


# ---------------------------------------------------------------------------
# info comparison

INFO_TOP_KEYS = ['virtual-size', 'filename', 'cluster-size', 'format',
                 'actual-size', 'dirty-flag', 'backing-filename',
                 'backing-filename-format', 'full-backing-filename',
                 'snapshots', 'format-specific']
INFO_QCOW2_KEYS = ['compat', 'compression-type', 'lazy-refcounts',
                   'refcount-bits', 'corrupt', 'extended-l2', 'bitmaps',
                   'data-file', 'data-file-raw']
INFO_SNAPSHOT_KEYS = ['id', 'name', 'vm-state-size', 'date-sec', 'date-nsec',
                      'vm-clock-sec', 'vm-clock-nsec', 'icount']
INFO_BITMAP_KEYS = ['flags', 'name', 'granularity']


def _cmp_keys(q, r, keys, where, errors):
    for k in keys:
        if k in q and k not in r:
            errors.append('%s: rechain lacks key "%s" (qemu-img: %r)' % (where, k, q[k]))
        elif k not in q and k in r:
            errors.append('%s: rechain prints key "%s" (%r) that qemu-img omits'
                          % (where, k, r[k]))
        elif k in q and q[k] != r[k]:
            errors.append('%s: "%s" qemu-img=%r rechain=%r' % (where, k, q[k], r[k]))


def compare_info(q, r, where='info'):
    errors = []
    if not isinstance(r, dict):
        return ['%s: rechain output is not a JSON object: %r' % (where, r)]
    plain = [k for k in INFO_TOP_KEYS if k not in ('snapshots', 'format-specific')]
    _cmp_keys(q, r, plain, where, errors)
    # snapshots
    if 'snapshots' in q or 'snapshots' in r:
        qs, rs = q.get('snapshots'), r.get('snapshots')
        if qs is None or rs is None:
            errors.append('%s: snapshots qemu-img=%r rechain=%r' % (where, qs, rs))
        elif len(qs) != len(rs):
            errors.append('%s: %d snapshots in qemu-img, %d in rechain'
                          % (where, len(qs), len(rs)))
        else:
            for i, (a, b) in enumerate(zip(qs, rs)):
                _cmp_keys(a, b, INFO_SNAPSHOT_KEYS, '%s.snapshots[%d]' % (where, i), errors)
    if 'format-specific' in q or 'format-specific' in r:
        qf, rf = q.get('format-specific'), r.get('format-specific')
        if qf is None or rf is None:
            errors.append('%s: format-specific qemu-img=%r rechain=%r' % (where, qf, rf))
        else:
            if qf.get('type') != rf.get('type'):
                errors.append('%s: format-specific.type qemu-img=%r rechain=%r'
                              % (where, qf.get('type'), rf.get('type')))
            qd, rd = qf.get('data', {}), rf.get('data', {})
            keys = [k for k in INFO_QCOW2_KEYS if k != 'bitmaps']
            _cmp_keys(qd, rd, keys, where + '.format-specific.data', errors)
            if 'bitmaps' in qd or 'bitmaps' in rd:
                qb, rb = qd.get('bitmaps'), rd.get('bitmaps')
                if qb is None or rb is None or len(qb) != len(rb):
                    errors.append('%s: bitmaps qemu-img=%r rechain=%r' % (where, qb, rb))
                else:
                    for i, (a, b) in enumerate(zip(qb, rb)):
                        _cmp_keys(a, b, INFO_BITMAP_KEYS,
                                  '%s.bitmaps[%d]' % (where, i), errors)
    return errors


# ---------------------------------------------------------------------------
# fixtures: every builder takes a fresh directory and returns a dict
#   path: image path relative to cwd;  cwd: directory to run tools in;
#   fmt: format to pass with -f (None: let both tools probe);
#   small: True if converting it to raw is cheap

MiB = 1 << 20
KiB = 1 << 10


def _create(d, name, size, fmt='qcow2', opts=None, backing=None, bfmt=None):
    args = ['create', '-q', '-f', fmt]
    if opts:
        args += ['-o', opts]
    if backing is not None:
        args += ['-b', backing]
        if bfmt:
            args += ['-F', bfmt]
    args += [name, str(size)]
    qemu_img(*args, cwd=d)
    return name


def _fx(d, path, fmt=None, small=True, **kw):
    x = {'path': path, 'cwd': d, 'fmt': fmt, 'small': small}
    x.update(kw)
    return x


def fx_v2(d):
    _create(d, 'v2.qcow2', 4 * MiB, opts='compat=0.10')
    qemu_io('v2.qcow2', 'write -P 0x11 0 300k', 'write -P 0x12 1000k 5000',
            'write -z 64k 64k', 'discard 128k 64k', 'write -P 0x13 3M 64k', cwd=d)
    return _fx(d, 'v2.qcow2')


def fx_v3(d):
    _create(d, 'v3.qcow2', 4 * MiB)
    qemu_io('v3.qcow2', 'write -P 0x21 0 300k', 'write -P 0x22 1000001 4097',
            'write -z 64k 64k', 'write -z -u 192k 64k', 'discard 256k 64k',
            'write -P 0x23 4128768 65536', 'write -z 2M 1M', cwd=d)
    return _fx(d, 'v3.qcow2')


def _cluster_fixture(d, cs, size):
    name = 'c%d.qcow2' % cs
    _create(d, name, size, opts='cluster_size=%d' % cs)
    qemu_io(name, 'write -P 0x31 0 %d' % (cs * 3 + 100),
            'write -P 0x32 %d 3000' % (size // 2 - 1500),
            'write -z %d %d' % (cs * 8, cs * 2),
            'write -P 0x33 %d %d' % (size - cs - 7, cs + 7), cwd=d)
    return _fx(d, name)


def fx_cluster_512(d):
    return _cluster_fixture(d, 512, 2 * MiB)


def fx_cluster_4k(d):
    return _cluster_fixture(d, 4096, 4 * MiB)


def fx_cluster_64k(d):
    return _cluster_fixture(d, 65536, 4 * MiB)


def fx_cluster_2m(d):
    return _cluster_fixture(d, 2 * MiB, 24 * MiB)


def fx_unaligned_size(d):
    _create(d, 'odd.qcow2', 1000448)
    qemu_io('odd.qcow2', 'write -P 0x41 983040 17408', 'write -P 0x42 7 100', cwd=d)
    return _fx(d, 'odd.qcow2')


def _extl2(d, cs):
    name = 'el2-%d.qcow2' % cs
    sc = cs // 32
    size = max(4 * MiB, cs * 3)
    _create(d, name, size, opts='cluster_size=%d,extended_l2=on' % cs)
    qemu_io(name, 'write -P 0x51 %d %d' % (sc, sc * 3),
            'write -P 0x52 %d 700' % (cs + 5 * sc + 100),
            'write -z %d %d' % (cs + 10 * sc, sc * 2),
            'write -P 0x53 %d %d' % (2 * cs, cs),
            'write -z -u %d %d' % (2 * cs + sc, sc),
            'discard %d %d' % (2 * cs + 4 * sc, sc * 4), cwd=d)
    return _fx(d, name)


def fx_extl2_16k(d):
    return _extl2(d, 16384)


def fx_extl2_64k(d):
    return _extl2(d, 65536)


def fx_extl2_2m(d):
    return _extl2(d, 2 * MiB)


def _compressed(d, ctype, extl2=False):
    write_pattern_file(os.path.join(d, 'src.raw'), 4 * MiB,
                       [(0, 200 * KiB, None), (512 * KiB, 64 * KiB, 0x61),
                        (1 * MiB, 1 * MiB, None), (3 * MiB + 12345, 5000, 0x62)])
    name = 'comp-%s%s.qcow2' % (ctype, '-el2' if extl2 else '')
    opts = 'compression_type=%s' % ctype
    if extl2:
        opts += ',extended_l2=on'
    qemu_img('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', opts, 'src.raw', name, cwd=d)
    os.unlink(os.path.join(d, 'src.raw'))
    qemu_io(name, 'write -c -P 0x63 2M 64k', 'write -P 0x64 1100k 3k',
            'write -z 1200k 64k', cwd=d)
    return _fx(d, name)


def fx_compressed_zlib(d):
    return _compressed(d, 'zlib')


def fx_compressed_zstd(d):
    return _compressed(d, 'zstd')


def fx_compressed_zstd_extl2(d):
    return _compressed(d, 'zstd', extl2=True)


def _refcount(d, bits):
    name = 'rc%d.qcow2' % bits
    _create(d, name, 4 * MiB, opts='refcount_bits=%d' % bits)
    qemu_io(name, 'write -P 0x71 0 200k', 'write -P 0x72 3M 10k', cwd=d)
    return _fx(d, name)


def _mk_refcount(bits):
    f = lambda d: _refcount(d, bits)  # noqa: E731
    f.__name__ = 'fx_refcount_%d' % bits
    return f


def fx_bitmaps(d):
    _create(d, 'bm.qcow2', 4 * MiB)
    qemu_img('bitmap', '--add', 'bm.qcow2', 'bm-auto', cwd=d)
    qemu_img('bitmap', '--add', '-g', '128k', '--disable', 'bm.qcow2', 'bm-off', cwd=d)
    qemu_io('bm.qcow2', 'write -P 0x81 0 100k', cwd=d)
    return _fx(d, 'bm.qcow2')


def fx_data_file(d):
    # QEMU 7.2 opens a relative data file name relative to its working
    # directory, not to the image's: keep both in the same directory.
    _create(d, 'df.qcow2', 4 * MiB, opts='data_file=df.data')
    qemu_io('df.qcow2', 'write -P 0x91 64k 100k', 'write -z 1M 64k',
            'write -P 0x92 3M 4k', cwd=d)
    return _fx(d, 'df.qcow2')


def fx_data_file_raw(d):
    _create(d, 'dfr.qcow2', 4 * MiB, opts='data_file=dfr.data,data_file_raw=on')
    qemu_io('dfr.qcow2', 'write -P 0x93 64k 100k', 'write -P 0x94 3M 4k', cwd=d)
    return _fx(d, 'dfr.qcow2')


def fx_lazy_refcounts(d):
    _create(d, 'lazy.qcow2', 4 * MiB, opts='lazy_refcounts=on')
    qemu_io('lazy.qcow2', 'write -P 0xa1 0 200k', cwd=d)
    return _fx(d, 'lazy.qcow2')


def fx_snapshots(d):
    _create(d, 'snap.qcow2', 4 * MiB)
    qemu_io('snap.qcow2', 'write -P 0xb1 0 200k', cwd=d)
    qemu_img('snapshot', '-c', 'first', 'snap.qcow2', cwd=d)
    qemu_io('snap.qcow2', 'write -P 0xb2 64k 64k', 'write -z 128k 64k', cwd=d)
    qemu_img('snapshot', '-c', 'second one', 'snap.qcow2', cwd=d)
    qemu_io('snap.qcow2', 'write -P 0xb3 1M 64k', cwd=d)
    return _fx(d, 'snap.qcow2')


def fx_preallocated(d):
    _create(d, 'prealloc.qcow2', 2 * MiB, opts='preallocation=metadata')
    qemu_io('prealloc.qcow2', 'write -P 0xc1 100k 10k', cwd=d)
    return _fx(d, 'prealloc.qcow2')


def fx_empty(d):
    _create(d, 'empty.qcow2', 0)
    return _fx(d, 'empty.qcow2')


def fx_big_sparse(d):
    _create(d, 'big.qcow2', 1 << 40)
    qemu_io('big.qcow2', 'write -P 0xd1 0 64k', 'write -P 0xd2 700G 64k', cwd=d)
    return _fx(d, 'big.qcow2', small=False)


def fx_raw(d):
    write_pattern_file(os.path.join(d, 'plain.img'), 3 * MiB,
                       [(0, 4096, 0xe1), (1 * MiB, 300 * KiB, None)])
    return _fx(d, 'plain.img', fmt='raw')


def fx_raw_probed(d):
    write_pattern_file(os.path.join(d, 'probe.img'), 2 * MiB,
                       [(0, 4096, 0xe2), (1 * MiB, 100 * KiB, 0xe3)])
    return _fx(d, 'probe.img')


def fx_qcow2_as_raw(d):
    _create(d, 'asraw.qcow2', 1 * MiB)
    qemu_io('asraw.qcow2', 'write -P 0xe4 0 64k', cwd=d)
    return _fx(d, 'asraw.qcow2', fmt='raw')


def fx_chain2(d):
    _create(d, 'base.qcow2', 4 * MiB)
    qemu_io('base.qcow2', 'write -P 0x01 0 1M', 'write -z 2M 64k',
            'write -P 0x02 3M 1M', cwd=d)
    _create(d, 'top.qcow2', 4 * MiB, backing='base.qcow2', bfmt='qcow2')
    qemu_io('top.qcow2', 'write -P 0x03 32k 64k', 'write -z 512k 64k',
            'write -z -u 3M 64k', 'write -P 0x04 2M 32k', 'write -P 0x05 1500k 100', cwd=d)
    return _fx(d, 'top.qcow2')


def fx_chain_short_backing(d):
    _create(d, 'sbase.qcow2', 1 * MiB)
    qemu_io('sbase.qcow2', 'write -P 0x06 0 1M', cwd=d)
    _create(d, 'stop.qcow2', 3 * MiB, backing='sbase.qcow2', bfmt='qcow2')
    qemu_io('stop.qcow2', 'write -P 0x07 900k 200k', 'write -P 0x08 2M 64k', cwd=d)
    return _fx(d, 'stop.qcow2')


def fx_chain_long_backing(d):
    _create(d, 'lbase.qcow2', 4 * MiB)
    qemu_io('lbase.qcow2', 'write -P 0x09 0 4M', cwd=d)
    _create(d, 'ltop.qcow2', 1 * MiB + 512, backing='lbase.qcow2', bfmt='qcow2')
    qemu_io('ltop.qcow2', 'write -P 0x0a 100k 10k', cwd=d)
    return _fx(d, 'ltop.qcow2')


def fx_chain3_raw_base(d):
    write_pattern_file(os.path.join(d, 'rbase.raw'), 2 * MiB,
                       [(0, 8192, 0x0b), (1 * MiB, 128 * KiB, None)])
    _create(d, 'rmid.qcow2', 3 * MiB, backing='rbase.raw', bfmt='raw')
    qemu_io('rmid.qcow2', 'write -P 0x0c 4k 64k', 'write -z 1100k 64k', cwd=d)
    _create(d, 'rtop.qcow2', 3 * MiB, opts='cluster_size=4096',
            backing='rmid.qcow2', bfmt='qcow2')
    qemu_io('rtop.qcow2', 'write -P 0x0d 2500k 4k', 'write -P 0x0e 0 512', cwd=d)
    return _fx(d, 'rtop.qcow2')


def fx_chain4_mixed(d):
    write_pattern_file(os.path.join(d, 'l3.raw'), 4 * MiB,
                       [(0, 1 * MiB, None), (3 * MiB, 512 * KiB, 0x10)])
    write_pattern_file(os.path.join(d, 'l2src.raw'), 3 * MiB,
                       [(512 * KiB, 512 * KiB, None), (2 * MiB, 64 * KiB, 0x11)])
    qemu_img('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'compression_type=zstd',
             '-B', 'l3.raw', '-F', 'raw', 'l2src.raw', 'l2.qcow2', cwd=d)
    os.unlink(os.path.join(d, 'l2src.raw'))
    _create(d, 'l1.qcow2', 5 * MiB, opts='extended_l2=on', backing='l2.qcow2', bfmt='qcow2')
    qemu_io('l1.qcow2', 'write -P 0x12 600k 3k', 'write -z 0 128k', cwd=d)
    _create(d, 'l0.qcow2', 5 * MiB, opts='cluster_size=16384',
            backing='l1.qcow2', bfmt='qcow2')
    qemu_io('l0.qcow2', 'write -P 0x13 4M 64k', 'write -z 3M 32k', cwd=d)
    return _fx(d, 'l0.qcow2')


def fx_chain_subdirs(d):
    for sub in ('imgs/top', 'imgs/base/deeper'):
        os.makedirs(os.path.join(d, sub))
    _create(os.path.join(d, 'imgs/base/deeper'), 'b0.qcow2', 2 * MiB)
    qemu_io('imgs/base/deeper/b0.qcow2', 'write -P 0x14 0 1M', cwd=d)
    # names are resolved relative to the directory of the image naming them
    _create(os.path.join(d, 'imgs/base'), 'b1.qcow2', 2 * MiB,
            backing='deeper/b0.qcow2', bfmt='qcow2')
    qemu_io('imgs/base/b1.qcow2', 'write -P 0x15 512k 64k', cwd=d)
    _create(os.path.join(d, 'imgs/top'), 'top.qcow2', 2 * MiB,
            backing='../base/b1.qcow2', bfmt='qcow2')
    qemu_io('imgs/top/top.qcow2', 'write -P 0x16 1M 64k', cwd=d)
    return _fx(d, 'imgs/top/top.qcow2')


def fx_chain_absolute(d):
    os.mkdir(os.path.join(d, 'abs'))
    base = os.path.join(d, 'abs', 'base.qcow2')
    _create(d, base, 2 * MiB)
    qemu_io(base, 'write -P 0x17 0 2M', cwd=d)
    _create(d, 'abstop.qcow2', 2 * MiB, backing=base, bfmt='qcow2')
    qemu_io('abstop.qcow2', 'write -P 0x18 64k 64k', cwd=d)
    return _fx(d, 'abstop.qcow2')


def strip_backing_format(path):
    h = read_header(path)
    exts = [(m, data) for m, data in h['extensions'] if m != EXT_BACKING_FORMAT]
    rewrite_header_extensions(path, exts, h['backing_file'])


def fx_no_backing_format(d):
    _create(d, 'nfbase.qcow2', 2 * MiB)
    qemu_io('nfbase.qcow2', 'write -P 0x19 0 1M', cwd=d)
    _create(d, 'nftop.qcow2', 2 * MiB, backing='nfbase.qcow2', bfmt='qcow2')
    qemu_io('nftop.qcow2', 'write -P 0x1a 64k 64k', cwd=d)
    strip_backing_format(os.path.join(d, 'nftop.qcow2'))
    return _fx(d, 'nftop.qcow2', warns=True)


def fx_no_backing_format_raw(d):
    write_pattern_file(os.path.join(d, 'nfr.raw'), 2 * MiB, [(4096, 8192, 0x1b)])
    _create(d, 'nfrtop.qcow2', 2 * MiB, backing='nfr.raw', bfmt='raw')
    qemu_io('nfrtop.qcow2', 'write -P 0x1c 1M 64k', cwd=d)
    strip_backing_format(os.path.join(d, 'nfrtop.qcow2'))
    return _fx(d, 'nfrtop.qcow2', warns=True)


def fx_dirty_lazy(d):
    _create(d, 'dirty.qcow2', 2 * MiB, opts='lazy_refcounts=on')
    qemu_io('dirty.qcow2', 'write -P 0x1d 0 100k', cwd=d)
    p = os.path.join(d, 'dirty.qcow2')
    patch_field(p, 'incompatible_features', get_field(p, 'incompatible_features') | 1)
    return _fx(d, 'dirty.qcow2')


def fx_corrupt_bit(d):
    _create(d, 'corrupt.qcow2', 2 * MiB)
    qemu_io('corrupt.qcow2', 'write -P 0x1e 0 100k', cwd=d)
    p = os.path.join(d, 'corrupt.qcow2')
    patch_field(p, 'incompatible_features', get_field(p, 'incompatible_features') | 2)
    return _fx(d, 'corrupt.qcow2')


def fx_unknown_extension(d):
    _create(d, 'unkext.qcow2', 2 * MiB)
    qemu_io('unkext.qcow2', 'write -P 0x1f 0 64k', cwd=d)
    p = os.path.join(d, 'unkext.qcow2')
    h = read_header(p)
    exts = h['extensions'] + [(0x12345678, b'rechain test extension!')]
    rewrite_header_extensions(p, exts, None)
    # and an unknown compatible feature bit
    patch_field(p, 'compatible_features', get_field(p, 'compatible_features') | (1 << 40))
    return _fx(d, 'unkext.qcow2')


def fx_file_prefix(d):
    """A backing name with the "file:" protocol prefix.  (QEMU 7.2 resolves
    such a name relative to its working directory, not to the image's
    directory, so image and backing file sit in the working directory.)"""
    _create(d, 'fbase.qcow2', 1 * MiB)
    qemu_io('fbase.qcow2', 'write -P 0x21 0 512k', cwd=d)
    _create(d, 'ftop.qcow2', 1 * MiB, backing='file:fbase.qcow2', bfmt='qcow2')
    qemu_io('ftop.qcow2', 'write -P 0x22 256k 64k', cwd=d)
    return _fx(d, 'ftop.qcow2')


def fx_odd_names(d):
    """Spaces, quotes, a backslash and non-ASCII in file names (JSON escaping)."""
    base = 'b "q" \\ \u00fc.qcow2'
    os.mkdir(os.path.join(d, 'dir with space'))
    _create(os.path.join(d, 'dir with space'), base, 1 * MiB)
    qemu_io('dir with space/' + base, 'write -P 0x23 0 64k', cwd=d)
    _create(os.path.join(d, 'dir with space'), 'my top.qcow2', 1 * MiB, backing=base,
            bfmt='qcow2')
    qemu_io('dir with space/my top.qcow2', 'write -P 0x24 64k 64k', cwd=d)
    return _fx(d, 'dir with space/my top.qcow2')


def fx_random_chain(d):
    """A 3-layer chain (raw <- qcow2 512-byte clusters <- qcow2 ext. L2 zstd)
    shaped by a few hundred pseudo-random writes, zero writes, discards and
    compressed writes."""
    import random
    rnd = random.Random(20240611)
    size = 3 * MiB
    write_pattern_file(os.path.join(d, 'rnd0.raw'), 2 * MiB + 4096,
                       [(rnd.randrange(0, 2 * MiB) & ~511, 8192, rnd.randrange(1, 255))
                        for _ in range(20)])
    _create(d, 'rnd1.qcow2', size, opts='cluster_size=512', backing='rnd0.raw', bfmt='raw')
    _create(d, 'rnd2.qcow2', size + 12288,
            opts='cluster_size=32768,extended_l2=on,compression_type=zstd',
            backing='rnd1.qcow2', bfmt='qcow2')
    for img, top_size in (('rnd1.qcow2', size), ('rnd2.qcow2', size + 12288)):
        cmds = []
        if img == 'rnd2.qcow2':
            # compressed writes only go to unallocated clusters: first
            for c in sorted(rnd.sample(range(top_size // 32768 - 1), 12)):
                cmds.append('write -c -P %d %d 32768' % (rnd.randrange(1, 255), c * 32768))
        for i in range(120):
            off = rnd.randrange(0, top_size - 70000)
            length = rnd.choice([1, 511, 512, 4096, 5000, 32768, 65536])
            op = rnd.random()
            if op < 0.55:
                cmds.append('write -P %d %d %d' % (rnd.randrange(1, 255), off, length))
            elif op < 0.7:
                cmds.append('write -z %d %d' % (off & ~511, (length + 511) & ~511))
            elif op < 0.8:
                cmds.append('write -z -u %d %d' % (off & ~511, (length + 511) & ~511))
            else:
                cmds.append('discard %d %d' % (off & ~511, (length + 511) & ~511))
        qemu_io(img, *cmds, cwd=d)
    return _fx(d, 'rnd2.qcow2')


FIXTURES = [
    fx_v2, fx_v3, fx_cluster_512, fx_cluster_4k, fx_cluster_64k, fx_cluster_2m,
    fx_unaligned_size, fx_extl2_16k, fx_extl2_64k, fx_extl2_2m,
    fx_compressed_zlib, fx_compressed_zstd, fx_compressed_zstd_extl2,
] + [_mk_refcount(b) for b in (1, 2, 4, 8, 16, 32, 64)] + [
    fx_bitmaps, fx_data_file, fx_data_file_raw, fx_lazy_refcounts, fx_snapshots,
    fx_preallocated, fx_empty, fx_big_sparse, fx_raw, fx_raw_probed,
    fx_qcow2_as_raw, fx_chain2, fx_chain_short_backing, fx_chain_long_backing,
    fx_chain3_raw_base, fx_chain4_mixed, fx_chain_subdirs, fx_chain_absolute,
    fx_no_backing_format, fx_no_backing_format_raw, fx_dirty_lazy, fx_corrupt_bit,
    fx_unknown_extension, fx_file_prefix, fx_odd_names, fx_random_chain,
]


def fixture_name(f):
    return f.__name__[3:]


# ---------------------------------------------------------------------------
# test case base and TAP runner

class ToolTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-tool-')
        if KEEP:
            sys.stdout.write('# keeping %s\n' % self.dir)

    def tearDown(self):
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def rechain(self, *args, cwd=None, expect=None, timeout=120):
        """Runs rechain; asserts it did not crash, and its exit status if
        @expect (an int or a tuple of ints) is given."""
        r = run([RECHAIN] + list(args), cwd=cwd or self.dir, timeout=timeout)
        self.assert_no_crash(r)
        if expect is not None:
            exp = expect if isinstance(expect, tuple) else (expect,)
            if r.rc not in exp:
                self.fail('rechain exit status %d, expected %s\n%s'
                          % (r.rc, ' or '.join(map(str, exp)), r.describe()))
        return r

    # ---- pausing rechain at a chosen operation (fault shim's log)

    def pause_before(self, args, dry_lines, k, env=None):
        """Starts rechain with RECHAIN_FAULT_LOG on a FIFO and pauses it,
        deterministically, while it writes log line @k (0-based) of a
        previous identical run, i.e. before operation k happens: the pipe
        (one page) is pre-filled so that exactly lines 0..k-1 fit, and
        nobody reads it until the test is done. Returns (process, read fd,
        write fd, capacity)."""
        fifo = self.path('.fifo')
        os.mkfifo(fifo)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        cap = fcntl.fcntl(rfd, F_SETPIPE_SZ, 4096)
        before = sum(len(l.encode()) + 1 for l in dry_lines[:k])
        if before >= cap:
            self.skipTest('%d bytes of log before the pause point do not fit a %d-byte pipe'
                          % (before, cap))
        os.write(wfd, b'\0' * (cap - before))
        e = dict(os.environ)
        e.update(env or {})
        e['RECHAIN_FAULT_LOG'] = fifo
        fault_env(e)
        p = subprocess.Popen([RECHAIN] + args, cwd=self.dir, env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        buf = bytearray(4)
        while time.time() < deadline and p.poll() is None:
            fcntl.ioctl(rfd, termios.FIONREAD, buf)
            if int.from_bytes(buf, sys.byteorder) >= cap:
                break
            time.sleep(0.01)
        time.sleep(0.2)
        return p, rfd, wfd, cap

    def paused_lines(self, rfd, cap):
        """Reads the pipe's content at the pause (lets rechain go on)."""
        data = b''
        while len(data) < cap:
            try:
                data += os.read(rfd, cap - len(data))
            except BlockingIOError:
                time.sleep(0.001)
        return [l.decode() for l in data.replace(b'\0', b'').split(b'\n') if l]

    def resume(self, p, rfd, wfd):
        """Lets a paused rechain finish; its Result."""
        os.close(wfd)
        fl = fcntl.fcntl(rfd, fcntl.F_GETFL)
        fcntl.fcntl(rfd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
        while os.read(rfd, 65536):
            pass
        os.close(rfd)
        out, err = p.communicate(timeout=120)
        return Result(p.args, self.dir, p.returncode, out.decode(), err.decode())

    def assert_no_crash(self, r):
        if r.rc < 0:
            self.fail('rechain killed by signal %d\n%s' % (-r.rc, r.describe()))
        if r.rc > 6:
            self.fail('rechain exit status %d is not one of the documented ones\n%s'
                      % (r.rc, r.describe()))
        for m in CRASH_MARKERS:
            if m in r.err:
                self.fail('rechain stderr contains "%s"\n%s' % (m, r.describe()))

    def assert_error_names(self, r, filename, *words):
        """An error message on stderr in the form 'rechain: FILE: message'
        naming @filename (its basename at least)."""
        self.assertNotEqual(r.rc, 0, r.describe())
        base = os.path.basename(filename)
        lines = [l for l in r.err.splitlines() if l.startswith('rechain: ')]
        if not lines:
            self.fail('no "rechain: ..." error line on stderr\n' + r.describe())
        if not any(base in l for l in lines):
            self.fail('error does not name the file %r\n%s' % (base, r.describe()))
        low = r.err.lower()
        for w in words:
            if isinstance(w, tuple):
                if not any(x.lower() in low for x in w):
                    self.fail('error message mentions none of %r\n%s' % (w, r.describe()))
            elif w.lower() not in low:
                self.fail('error message does not mention %r\n%s' % (w, r.describe()))

    def rechain_json(self, *args, cwd=None):
        r = self.rechain(*args, cwd=cwd, expect=0)
        try:
            return json.loads(r.out), r
        except ValueError as e:
            self.fail('rechain did not print valid JSON (%s)\n%s' % (e, r.describe()))

    def need_dump(self):
        if not have_exe(RECHAIN_DUMP):
            self.skipTest('rechain-dump not built (RECHAIN_DUMP=%r)' % RECHAIN_DUMP)


class TapResult(unittest.TestResult):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.n = 0

    def _line(self, ok, name, extra='', diag=None):
        self.n += 1
        self.stream.write('%s %d - %s%s\n' % ('ok' if ok else 'not ok', self.n, name, extra))
        if diag:
            for l in diag.rstrip().splitlines():
                self.stream.write('# %s\n' % l)
        self.stream.flush()

    @staticmethod
    def _name(test):
        return test.id().split('.', 1)[-1]

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, self._name(test))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, self._name(test), diag=self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, self._name(test), diag=self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, self._name(test), ' # SKIP %s' % reason)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        name = self._name(subtest)
        if err is None:
            self._line(True, name)
        elif issubclass(err[0], unittest.SkipTest):
            self._line(True, name, ' # SKIP %s' % err[1])
        else:
            self._line(False, name, diag=self._exc_info_to_string(err, test))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        # TAP: a known failure is "not ok ... # TODO" ("ok ... # TODO" is a
        # bonus, an unexpected pass)
        self._line(False, self._name(test), ' # TODO expected failure (known bug, see the docstring)')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, self._name(test), ' # unexpected success')


def skip_or_fail(reason):
    """Skips the running test, or fails it under RECHAIN_TEST_STRICT=1 (CI
    on a machine that can run everything: a skip there hides a gap)."""
    if STRICT:
        raise AssertionError('RECHAIN_TEST_STRICT=1 and this test cannot run: ' + reason)
    raise unittest.SkipTest(reason)


def main(module_name='__main__'):
    """Runs the tests of @module_name and prints TAP on stdout."""
    if not have_exe(RECHAIN):
        sys.stdout.write('1..0 # SKIP rechain executable not built (RECHAIN=%r)\n' % RECHAIN)
        sys.exit(0)
    run_tap(module_name)


def run_tap(module_name='__main__'):
    """Runs the tests of @module_name, prints TAP on stdout and exits."""
    out = sys.stdout
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    module = sys.modules[module_name]
    if names:
        suite = loader.loadTestsFromNames(names, module)
    else:
        suite = loader.loadTestsFromModule(module)
    result = TapResult(out)
    t0 = time.time()
    suite.run(result)
    out.write('1..%d\n' % result.n)
    out.write('# %d failures, %d errors, %d skipped in %.1fs\n'
              % (len(result.failures), len(result.errors), len(result.skipped),
                 time.time() - t0))
    sys.exit(0 if result.wasSuccessful() else 1)
