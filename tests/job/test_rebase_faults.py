#!/usr/bin/python3
# job-rebase-faults: crash consistency of the safe rebase.
#
# For a few small but rich scenarios, rechain runs once with
# RECHAIN_FAULT_LOG to learn its write and flush points, then once per
# point N with RECHAIN_FAULT=any:N:EIO and any:N:KILL (and any:N:ENOSPC at
# a few points, read:N:EIO at a few reads), each on a fresh copy of the
# images.  After each interrupted run:
#   - the exit status is non-zero (5 for an I/O error), or the process was
#     killed;
#   - qemu-img check finds no corruption (leaked clusters allowed);
#   - if the header still names the old backing file, the guest content
#     through it is unchanged; if it names the new one (only possible when
#     the last flush failed), the content through the new one is the
#     original content;
#   - running the same command again completes the rebase, with the
#     original content and a clean check (leaks from the interrupted run
#     are allowed and reported).
# A SIGTERM/SIGINT during a larger rebase gives exit 6 and the same.
#
# A SIGKILL keeps every write already issued (the page cache survives the
# process), so it cannot show that a flush is missing.  RebaseCrashTest
# models a power loss instead: at every write and flush point N of a
# flatten, a small safe rebase and a linked-clone rebase of 2 overlays,
# RECHAIN_FAULT=any:N:CRASH-REVERT (every write since its file's last flush
# is lost), CRASH-KEEP (none is), at flushes CRASH-MASK losing the k oldest
# and keeping the rest for each k, and CRASH with a few RECHAIN_FAULT_SEEDs
# (a random subset is lost), with the same checks (exit status 86).
# Runs known to leave the same files are not repeated (see crash_jobs);
# CRASH-KEEP, which leaves what any:N:KILL leaves, only runs when the
# KILL runs of the same scenario are filtered out or with
# RECHAIN_FAULT_CRASH_ALL=1.
#
# RebaseBackgroundFlushTest fails (or kills at) the first of the io layer's
# background flushes during a 12 MiB flatten: exit 5 and the same promise.
#
# RebaseCloneIndependenceTest fails the writes or flushes of one of 3
# linked clones (RECHAIN_FAULT=...:FILE): the other two must be rebased, the
# failing one untouched on its old backing, the exit status 5 and the
# report must give each image its own result; a clone whose writer cannot
# even be set up fails alone too.
#
# Environment: RECHAIN_JOBS parallel runs (default: number of CPUs);
# RECHAIN_FAULT_SCENARIOS=a,b to run some scenarios only (the crash tests
# are named crash_SCENARIO); RECHAIN_FAULT_CRASH_SEEDS=K random subsets per
# point (default 2) starting at RECHAIN_FAULT_CRASH_SEED_BASE (default 1),
# for longer runs.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobtest as jt  # noqa: E402
from jobtest import JobTestCase, rt, MiB, KiB, qemu_img, qemu_info  # noqa: E402

JOBS = int(os.environ.get('RECHAIN_JOBS', str(os.cpu_count() or 2)))
ONLY = [s for s in os.environ.get('RECHAIN_FAULT_SCENARIOS', '').split(',') if s]
CRASH_SEEDS = int(os.environ.get('RECHAIN_FAULT_CRASH_SEEDS', '2'))
CRASH_SEED_BASE = int(os.environ.get('RECHAIN_FAULT_CRASH_SEED_BASE', '1'))
# exit status of a process the CRASH actions stopped (tests/fault/fault-shim.h)
CRASH_STATUS = 86


# ---------------------------------------------------------------------------
# scenarios: each builds its images in a directory and returns
# (overlays, rebase arguments before the overlays, new backing name)

def _img(d, name, size, opts=None, backing=None, bfmt=None, fmt='qcow2'):
    args = ['create', '-q', '-f', fmt]
    if backing:
        args += ['-b', backing, '-F', bfmt]
    if opts:
        args += ['-o', opts]
    qemu_img(*(args + [name, str(size)]), cwd=d)


def _io(d, name, *cmds, fmt=None):
    jt.qemu_io(name, *cmds, fmt=fmt, cwd=d)


def _chain(d, top_opts=None, mid_opts=None, size=2 * MiB):
    _img(d, 'base.qcow2', size)
    _io(d, 'base.qcow2', 'write -P 1 0 %d' % size, 'write -z 1M 128k', 'discard 1536k 64k')
    _img(d, 'mid.qcow2', size, opts=mid_opts, backing='base.qcow2', bfmt='qcow2')
    _io(d, 'mid.qcow2', 'write -P 2 256k 64k', 'write -P 7 1200k 1000', 'write -z 640k 64k')
    _img(d, 'top.qcow2', size, opts=top_opts, backing='mid.qcow2', bfmt='qcow2')
    _io(d, 'top.qcow2', 'write -P 3 64k 64k', 'write -z 1800k 64k', 'write -P 4 1M 1000')


def _near(d, src='mid.qcow2', name='near.qcow2'):
    qemu_img('convert', '-O', 'qcow2', src, name, cwd=d)
    _io(d, name, 'write -P 9 100k 8k', 'write -P 0 700k 4k', 'write -P 8 1900k 64k')
    return name


def sc_flatten(d):
    _chain(d)
    return ['top.qcow2'], ['-b', ''], ''


def sc_near_copy(d):
    _chain(d)
    _near(d)
    return ['top.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


def sc_refcount_grow(d):
    """512-byte clusters and 64-bit refcounts: one refcount block covers
    32 KiB and the one-cluster refcount table 2 MiB.  The overlay already
    fills 1.9 MiB of its file; flattening the rest must grow the refcount
    table (checked after the unfaulted run)."""
    _img(d, 'base.qcow2', 3 * MiB)
    _io(d, 'base.qcow2', 'write -P 1 0 3M', 'write -z 2000k 8k')
    _img(d, 'top.qcow2', 2176 * KiB, opts='cluster_size=512,refcount_bits=64',
         backing='base.qcow2', bfmt='qcow2')
    _io(d, 'top.qcow2', 'write -P 3 0 1900k', 'write -P 4 2100k 1000')
    assert rt.get_field(os.path.join(d, 'top.qcow2'), 'refcount_table_clusters') == 1
    return ['top.qcow2'], ['-b', ''], ''


def post_refcount_grow(tc, d):
    tc.assertGreater(rt.get_field(os.path.join(d, 'top.qcow2'), 'refcount_table_clusters'), 1,
                     'the scenario no longer grows the refcount table')


def post_snapshot(tc, d):
    tc.assertEqual(jt.snapshot_names('top.qcow2', d), ['s1'])


POST = {'refcount_grow': post_refcount_grow, 'snapshot': post_snapshot,
        'compressed_subclusters': post_snapshot}


def sc_snapshot(d):
    """Internal snapshots share the overlay's L2 tables and data clusters."""
    _chain(d)
    qemu_img('snapshot', '-c', 's1', 'top.qcow2', cwd=d)
    _io(d, 'top.qcow2', 'write -P 6 300k 8k')
    _near(d)
    return ['top.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


def sc_compressed(d):
    _chain(d, top_opts='compression_type=zstd')
    _io(d, 'top.qcow2', 'write -c -P 5 0 64k')
    return ['top.qcow2'], ['-c', '-b', ''], ''


def sc_extended_l2(d):
    _chain(d, top_opts='extended_l2=on,cluster_size=64k')
    _io(d, 'top.qcow2', 'write -P 5 2048 2048', 'write -P 6 %d 4096' % (512 * KiB + 10240),
        'write -z %d 2048' % (768 * KiB + 4096))
    _near(d)
    return ['top.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


def sc_compressed_subclusters(d):
    """-c with extended L2: clusters the overlay allocates in part (data and
    zero subclusters) become whole compressed clusters and their old host
    clusters are released, one of them shared with a snapshot."""
    _chain(d, top_opts='extended_l2=on,cluster_size=64k')
    _io(d, 'top.qcow2', 'write -P 5 2048 2048', 'write -z 4096 2048',
        'write -P 6 %d 4096' % (256 * KiB + 10240))
    qemu_img('snapshot', '-c', 's1', 'top.qcow2', cwd=d)
    _io(d, 'top.qcow2', 'write -P 7 %d 2048' % (1200 * KiB))
    _near(d)
    return ['top.qcow2'], ['-c', '-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


def sc_linked_clones(d):
    _chain(d)
    _img(d, 'top2.qcow2', 2 * MiB, backing='mid.qcow2', bfmt='qcow2',
         opts='cluster_size=16k')
    _io(d, 'top2.qcow2', 'write -P 12 0 4k', 'write -P 13 1700k 64k')
    _near(d)
    return ['top.qcow2', 'top2.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


def sc_fragmented(d):
    """Every other cluster of the overlay allocated, a near copy that
    differs in many places: many separate data writes between the
    metadata updates."""
    _chain(d, top_opts='cluster_size=16k')
    _io(d, 'top.qcow2', *['write -P %d %d 16k' % (30 + i % 50, i * 32 * KiB) for i in range(0, 64, 3)])
    qemu_img('convert', '-O', 'qcow2', 'mid.qcow2', 'near.qcow2', cwd=d)
    _io(d, 'near.qcow2', *['write -P %d %d 4k' % (90 + i % 50, i * 24 * KiB + 2048)
                           for i in range(0, 85, 4)])
    return ['top.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


# ---------------------------------------------------------------------------
# encrypted scenarios: LUKS layers, each with its own key, given to rechain
# with --key-file and to qemu-img (the judge) as secrets. A scenario
# function's .keys attribute (file -> secret id) marks it encrypted.

ENC_SECRETS = {'k0': 'Fa1-fault-base-passphrase', 'k1': 'Fb2-fault-mid-passphrase',
               'k2': 'Fc3-fault-top-passphrase', 'k3': 'Fd4-fault-near-passphrase'}


def _enc_objects():
    out = []
    for sid, p in sorted(ENC_SECRETS.items()):
        out += ['--object', 'secret,id=%s,data=%s' % (sid, p)]
    return out


def _enc_opts(keys, chain):
    """--image-opts of the view through @chain (file names, top first)."""
    s = 'driver=qcow2,file.filename=%s' % chain[0]
    for depth, name in enumerate(chain):
        if keys.get(name):
            s += ',%sencrypt.key-secret=%s' % ('backing.' * depth, keys[name])
    return s


def _enc_chain(d, img):
    """@img and the backing files its header names, as they are now (read
    here: a qemu-img process per layer would cost more than the judging)."""
    chain = [img]
    while True:
        bf = rt.read_header(os.path.join(d, chain[-1]))['backing_file']
        if not bf:
            return chain
        chain.append(bf)


_enc_templates = {}


def _enc_template(sid):
    """An empty 2 MiB LUKS qcow2 image encrypted with secret @sid, made
    once per key: qemu-img spends seconds of CPU timing its key derivation
    for every image it creates, whatever the iter-time."""
    if sid not in _enc_templates:
        d = tempfile.mkdtemp(prefix='rechain-fault-luks-')
        argv = [rt.QEMU_IMG, 'create', '-q', '-f', 'qcow2'] + _enc_objects() + [
            '-o', 'encrypt.format=luks,encrypt.key-secret=%s,encrypt.iter-time=10' % sid,
            'template.qcow2', str(2 * MiB)]
        # on a loaded machine qemu-img may fail with "Unable to get accurate
        # CPU usage": tried a few times
        for _ in range(5):
            r = rt.run(argv, cwd=d)
            if r.rc == 0:
                break
        else:
            raise AssertionError('qemu-img could not make a LUKS image\n' + r.describe())
        _enc_templates[sid] = os.path.join(d, 'template.qcow2')
    return _enc_templates[sid]


def _enc_img(d, name, keys, backing=None):
    """@name: a copy of the template of its key, on @backing (qemu-img
    needs the key even to change the backing name)."""
    shutil.copy(_enc_template(keys[name]), os.path.join(d, name))
    if backing:
        rt.must([rt.QEMU_IMG, 'rebase', '-u'] + _enc_objects()
                + ['-b', backing, '-F', 'qcow2', '--image-opts',
                   _enc_opts(keys, [name])], cwd=d)


def _enc_io(d, keys, name, *cmds):
    argv = [rt.QEMU_IO] + _enc_objects() + ['--image-opts',
                                            _enc_opts(keys, _enc_chain(d, name))]
    for c in cmds:
        argv += ['-c', c]
    rt.must(argv, cwd=d)


def _enc_key_args(keys):
    """rechain's --key-file options, the key files written in the scenario."""
    out = []
    for name, sid in sorted(keys.items()):
        if sid:
            out += ['--key-file', '%s=%s.key' % (name, sid)]
    return out


def _enc_chain_fixture(d, keys):
    """_chain's layers and writes, each layer encrypted with its key."""
    # the templates of every key of both scenarios, JOBS at a time
    sids = sorted(set(sc_encrypted_flatten.keys.values()) | set(sc_encrypted_near_copy.keys.values()))
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        list(pool.map(_enc_template, sids))
    for sid, p in ENC_SECRETS.items():
        with open(os.path.join(d, sid + '.key'), 'w') as f:
            f.write(p)
    _enc_img(d, 'base.qcow2', keys)
    _enc_io(d, keys, 'base.qcow2', 'write -P 1 0 2M', 'write -z 1M 128k', 'discard 1536k 64k')
    _enc_img(d, 'mid.qcow2', keys, backing='base.qcow2')
    _enc_io(d, keys, 'mid.qcow2', 'write -P 2 256k 64k', 'write -P 7 1200k 1000',
            'write -z 640k 64k')
    _enc_img(d, 'top.qcow2', keys, backing='mid.qcow2')
    _enc_io(d, keys, 'top.qcow2', 'write -P 3 64k 64k', 'write -z 1800k 64k',
            'write -P 4 1M 1000')


def sc_encrypted_flatten(d):
    """A 3-layer chain, each layer LUKS-encrypted with its own key,
    flattened: every copied cluster decrypted with its layer's key and
    encrypted with the overlay's at its new host offset."""
    keys = sc_encrypted_flatten.keys
    _enc_chain_fixture(d, keys)
    return ['top.qcow2'], _enc_key_args(keys) + ['-b', ''], ''


sc_encrypted_flatten.keys = {'base.qcow2': 'k0', 'mid.qcow2': 'k1', 'top.qcow2': 'k2'}


def sc_encrypted_near_copy(d):
    """An encrypted overlay over an encrypted chain, rebased onto a near
    copy of its backing view encrypted with another key (the middle layer
    shares the overlay's key)."""
    keys = sc_encrypted_near_copy.keys
    _enc_chain_fixture(d, keys)
    # the near copy: mid's view, encrypted with k3, then a few changes
    _enc_img(d, 'near.qcow2', keys)
    rt.must([rt.QEMU_IMG, 'convert', '-n'] + _enc_objects()
            + ['--image-opts', _enc_opts(keys, ['mid.qcow2', 'base.qcow2']),
               '--target-image-opts', _enc_opts(keys, ['near.qcow2'])], cwd=d)
    _enc_io(d, keys, 'near.qcow2', 'write -P 9 100k 8k', 'write -P 0 700k 4k',
            'write -P 8 1900k 64k')
    return ['top.qcow2'], _enc_key_args(keys) + ['-b', 'near.qcow2', '-F', 'qcow2'], 'near.qcow2'


sc_encrypted_near_copy.keys = {'base.qcow2': 'k0', 'mid.qcow2': 'k2', 'top.qcow2': 'k2',
                               'near.qcow2': 'k3'}


# the judges, given the keys of an encrypted scenario (@keys None: plain)

def judge_dump_raw(keys, img, out, d):
    if not keys:
        return jt.dump_raw(img, out, d)
    return rt.must([rt.QEMU_IMG, 'convert', '-U', '-O', 'raw'] + _enc_objects()
                   + ['--image-opts', _enc_opts(keys, _enc_chain(d, img)), out], cwd=d)


def judge_compare(keys, raw, img, d):
    if not keys:
        return jt.compare(raw, img, d, fmt_a='raw')
    return rt.run([rt.QEMU_IMG, 'compare', '-U'] + _enc_objects()
                  + ['--image-opts', 'driver=raw,file.filename=%s' % raw,
                     _enc_opts(keys, _enc_chain(d, img))], cwd=d, timeout=300)


def judge_check(keys, img, d):
    """qemu-img check of @img alone (see rt.qemu_check), with its key."""
    if not keys:
        return jt.qemu_check(img, cwd=d)
    spec = {'driver': 'qcow2', 'backing': None, 'file': {'driver': 'file', 'filename': img}}
    if keys.get(img):
        spec['encrypt.key-secret'] = keys[img]
    return rt.run([rt.QEMU_IMG, 'check', '-U'] + _enc_objects() + ['json:' + json.dumps(spec)],
                  cwd=d)


SCENARIOS = [sc_flatten, sc_near_copy, sc_refcount_grow, sc_snapshot, sc_compressed,
             sc_extended_l2, sc_compressed_subclusters, sc_linked_clones, sc_fragmented,
             sc_encrypted_flatten, sc_encrypted_near_copy]


# ---------------------------------------------------------------------------

class Scenario:
    def __init__(self, fn, root):
        self.name = fn.__name__[3:]
        self.keys = getattr(fn, 'keys', None)
        self.pristine = os.path.join(root, self.name, 'pristine')
        os.makedirs(self.pristine)
        self.overlays, self.args, self.new = fn(self.pristine)
        self.old = {ov: qemu_info(ov, cwd=self.pristine).get('backing-filename')
                    for ov in self.overlays}
        self.raw = {}
        for ov in self.overlays:
            p = os.path.join(root, self.name, ov + '.before.raw')
            judge_dump_raw(self.keys, ov, p, self.pristine)
            self.raw[ov] = p
        self.hashes = rt.tree_hashes(self.pristine)
        self.root = os.path.join(root, self.name)
        self.counter = 0

    def argv(self):
        return ['rebase'] + self.args + self.overlays

    def fresh(self, tag):
        d = os.path.join(self.root, tag)
        jt.copy_tree(self.pristine, d)
        return d

    def repro(self, env):
        return ('(cd DIR && %s %s rechain %s)   # DIR: a copy of %s'
                % (' '.join('%s=%s' % kv for kv in env.items()), '', ' '.join(
                    rt.shlex_quote(a) for a in self.argv()), self.pristine))


def run_rechain(argv, cwd, env=None, timeout=120):
    return rt.run([rt.RECHAIN] + argv, cwd=cwd, env=env, timeout=timeout)


def verify_promise(sc, d, what, allow_switched=True):
    """The crash-consistency promise for each overlay in @d; returns a list
    of error strings and of notes."""
    errors, notes = [], []
    for ov in sc.overlays:
        c = judge_check(sc.keys, ov, d)
        if c.rc not in (0, 3):
            errors.append('%s: %s: qemu-img check exit %d (corruption)\n%s'
                          % (what, ov, c.rc, c.describe()))
            continue
        if c.rc == 3:
            notes.append('%s: %s: leaked clusters' % (what, ov))
        try:
            qi = qemu_info(ov, cwd=d)
        except rt.CommandFailed as e:
            errors.append('%s: %s: qemu-img info fails: %s' % (what, ov, e))
            continue
        bf = qi.get('backing-filename')
        if bf == sc.old[ov]:
            state = 'old backing'
        elif allow_switched and (bf or '') == sc.new:
            state = 'new backing'
        else:
            errors.append('%s: %s: header names backing %r (old %r, new %r)'
                          % (what, ov, bf, sc.old[ov], sc.new))
            continue
        cmp = judge_compare(sc.keys, sc.raw[ov], ov, d)
        if cmp.rc != 0:
            errors.append('%s: %s: content through the %s (%r) changed\n%s'
                          % (what, ov, state, bf, cmp.describe()))
    return errors, notes


def verify_rerun(sc, d, what):
    errors, notes = [], []
    r = run_rechain(sc.argv(), d)
    if r.rc != 0:
        return ['%s: rerun failed\n%s' % (what, r.describe())], notes
    for m in rt.CRASH_MARKERS:
        if m in r.err:
            errors.append('%s: rerun stderr has %r\n%s' % (what, m, r.describe()))
    for ov in sc.overlays:
        bf = qemu_info(ov, cwd=d).get('backing-filename')
        if (bf or '') != sc.new:
            errors.append('%s: after rerun %s names backing %r, not %r' % (what, ov, bf, sc.new))
        cmp = judge_compare(sc.keys, sc.raw[ov], ov, d)
        if cmp.rc != 0:
            errors.append('%s: after rerun content of %s changed\n%s' % (what, ov, cmp.describe()))
        c = judge_check(sc.keys, ov, d)
        if c.rc == 3:
            notes.append('%s: after rerun %s has leaked clusters' % (what, ov))
        elif c.rc != 0:
            errors.append('%s: after rerun qemu-img check of %s exit %d\n%s'
                          % (what, ov, c.rc, c.describe()))
    return errors, notes


def fault_point(sc, spec, expect, untouched=False):
    """One run with RECHAIN_FAULT=@spec on a fresh copy.  @expect: 'error'
    (exit status 5), 'kill' (SIGKILL) or 'any-nonzero'.  @untouched: the
    files must be byte-identical afterwards if no write or flush preceded
    the fault in the run's log."""
    tag = spec.replace(':', '-')
    d = sc.fresh(tag)
    env = {'RECHAIN_FAULT': spec}
    what = '%s %s' % (sc.name, spec)
    errors, notes = [], []
    log = os.path.join(sc.root, tag + '.log')
    argv = sc.argv()
    if untouched:
        argv = argv[:1] + ['--output=json'] + argv[1:]
    r = run_rechain(argv, d, env=dict(env, RECHAIN_FAULT_LOG=log))
    if untouched:
        # rechain reads ahead on worker threads: the image must be
        # untouched only if no write came before the failed read in this run
        kind, n = spec.split(':')[0], int(spec.split(':')[1])
        seen = 0
        for l in open(log).read().splitlines():
            op = l.split(' ', 1)[0]
            if op in ('write', 'flush'):
                untouched = False
                break
            if op == kind:
                seen += 1
                if seen == n:
                    break
    for m in rt.CRASH_MARKERS:
        if m in r.err:
            errors.append('%s: stderr has %r\n%s' % (what, m, r.describe()))
    if expect == 'kill':
        if r.rc != -signal.SIGKILL:
            errors.append('%s: expected SIGKILL, exit %d\n%s' % (what, r.rc, r.describe()))
    elif expect == 'error':
        if r.rc != rt.EXIT_IO:
            errors.append('%s: expected exit 5 (I/O error), got %d\n%s'
                          % (what, r.rc, r.describe()))
    elif r.rc == 0:
        errors.append('%s: a failed operation gave exit 0\n%s' % (what, r.describe()))
    if untouched:
        # every file but the overlays the report says were rebased (linked
        # clones: one failing does not stop the others)
        done = set()
        try:
            for e in json.loads(r.out).get('images', []):
                if e.get('result') == 'rebased':
                    done.add(e.get('image'))
        except ValueError:
            errors.append('%s: no JSON report\n%s' % (what, r.describe()))
        if len(done) == len(sc.overlays):
            errors.append('%s: every overlay rebased though a read failed\n%s'
                          % (what, r.describe()))
        # Whether files changed is not asserted: reads run ahead of the
        # writes on worker threads, so a read that came before the first
        # write in the logged run may come after it in this one. The
        # promise below (consistent, content unchanged, rerun completes)
        # is what must hold.
    e, n = verify_promise(sc, d, what)
    errors += e
    notes += n
    if not e:
        e, n = verify_rerun(sc, d, what)
        errors += e
        notes += n
    if errors:
        errors.insert(0, 'reproduce: ' + sc.repro(env))
        errors.insert(1, 'files kept in %s' % d)
    elif not rt.KEEP:
        shutil.rmtree(d, ignore_errors=True)
    return errors, notes


class RebaseFaultTest(JobTestCase):

    def setUp(self):
        super().setUp()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=JOBS)

    def tearDown(self):
        self.pool.shutdown()
        if getattr(self, 'failed_runs', False):
            sys.stdout.write('# keeping the failed runs\' files in %s\n' % self.dir)
        else:
            super().tearDown()

    def count_points(self, sc):
        d = sc.fresh('log')
        log = os.path.join(sc.root, 'fault.log')
        r = run_rechain(sc.argv(), d, env={'RECHAIN_FAULT_LOG': log})
        self.assertEqual(r.rc, 0, 'unfaulted run failed\n' + r.describe())
        e, n = verify_rerun(sc, d, sc.name + ' unfaulted')
        self.assertEqual(e, [], '\n'.join(e))
        if sc.name in POST:
            POST[sc.name](self, d)
        ops = [l.split()[0] for l in open(log).read().splitlines() if l.strip()]
        writes = [i for i, o in enumerate(ops) if o in ('write', 'flush')]
        reads = [i for i, o in enumerate(ops) if o == 'read']
        first_write = writes[0] if writes else len(ops)
        reads_before = sum(1 for i in reads if i < first_write)
        return len(writes), len(reads), reads_before, ops

    def run_points(self, sc, jobs):
        futs = [(spec, self.pool.submit(fault_point, sc, spec, exp, untouched))
                for spec, exp, untouched in jobs]
        failures = []
        leaks = 0
        for spec, f in futs:
            e, n = f.result()
            leaks += len(n)
            if e:
                failures.append('\n'.join(e))
        return failures, leaks

    def _scenario(self, fn):
        if ONLY and fn.__name__[3:] not in ONLY:
            self.skipTest('not in RECHAIN_FAULT_SCENARIOS')
        sc = Scenario(fn, self.dir)
        nany, nread, nread_before, ops = self.count_points(sc)
        self.assertGreater(nany, 0)
        jobs = []
        for n in range(1, nany + 1):
            jobs.append(('any:%d:EIO' % n, 'error', False))
            jobs.append(('any:%d:KILL' % n, 'kill', False))
        # ENOSPC at every point of an encrypted scenario (few points),
        # at three of the others
        for n in (range(1, nany + 1) if sc.keys else sorted({1, (nany + 1) // 2, nany})):
            jobs.append(('any:%d:ENOSPC' % n, 'error', False))
        flushes = ops.count('flush')
        for n in sorted({1, flushes}):
            jobs.append(('flush:%d:ENOSPC' % n, 'error', False))
        for n in sorted({1, max(1, nread_before // 2), nread_before, (nread + nread_before) // 2,
                         nread} - {0}):
            jobs.append(('read:%d:EIO' % n, 'error', True))
        failures, leaks = self.run_points(sc, jobs)
        sys.stdout.write('# %s: %d write/flush points, %d reads (%d before the first write), '
                         '%d fault runs, %d leak notes\n'
                         % (sc.name, nany, nread, nread_before, len(jobs), leaks))
        if failures:
            self.failed_runs = True
            self.fail('%d of %d fault runs broke the promise:\n\n%s'
                      % (len(failures), len(jobs), '\n\n'.join(failures[:6])))


for _fn in SCENARIOS:
    def _mk(fn):
        def t(self):
            self._scenario(fn)
        t.__doc__ = fn.__doc__
        return t
    setattr(RebaseFaultTest, 'test_' + _fn.__name__[3:], _mk(_fn))


def sc_flatten_large(d):
    """12 MiB to copy: more than the 4 MiB after which the io layer flushes
    on a thread of its own (src/io/file.c), with no commit of the writer
    before (a flush of its own starts the count again).  How many more
    follow depends on timing: only the first is certain."""
    _img(d, 'base.qcow2', 16 * MiB)
    _io(d, 'base.qcow2', 'write -P 1 0 6M', 'write -P 2 8M 6M')
    _img(d, 'top.qcow2', 16 * MiB, backing='base.qcow2', bfmt='qcow2')
    _io(d, 'top.qcow2', 'write -P 3 1M 64k')
    return ['top.qcow2'], ['-b', ''], ''


class RebaseBackgroundFlushTest(JobTestCase):
    """A background flush that fails (or a kill while one runs): the error
    reaches the exit status through the writer's next flush, the header is
    not switched, and a rerun completes.  The EIO runs also prove that the
    background flushes happen: without one, the run would succeed."""

    def test_background_flush(self):
        sc = Scenario(sc_flatten_large, self.dir)
        failures = []
        for spec, expect in (('background-flush:1:EIO', 'error'),
                             ('background-flush:1:KILL', 'kill')):
            e, n = fault_point(sc, spec, expect)
            if e:
                failures.append('\n'.join(e))
        self.assertEqual(failures, [], '\n\n'.join(failures))


# ---------------------------------------------------------------------------
# power loss at every write and flush point

def crash_points(log_lines):
    """For each write/flush point of a logged run (in order): the number of
    writes issued before it that no flush of their file followed, a key of
    what losing all of them leaves (each file as of its last flush), and
    whether the point is a flush."""
    pending, flushed, total = {}, {}, {}
    out = []
    for l in log_lines:
        parts = l.split(' ')
        if parts[0] not in ('write', 'flush'):
            continue
        out.append((sum(pending.values()), tuple(sorted((p, n) for p, n in flushed.items() if n)),
                    parts[0] == 'flush'))
        path = ' '.join(parts[1:] if parts[0] == 'flush' else parts[1:-2])
        if parts[0] == 'write':
            pending[path] = pending.get(path, 0) + 1
            total[path] = total.get(path, 0) + 1
        else:
            pending[path] = 0
            flushed[path] = total.get(path, 0)
    return out


def crash_jobs(points, keep_runs=True):
    """(RECHAIN_FAULT, seed, RECHAIN_FAULT_CRASH_MASK) of the crash runs:
    at every point, all unflushed writes lost (once per distinct result:
    each file as of its last flush) and all kept (which, at the points
    before, also gives every "the oldest ones kept, the rest lost"); at
    each flush, where the most writes are unflushed, every "the k oldest
    lost, the rest kept", so that every write is tried surviving without
    each write issued before it since the last flush (the reordering a
    missing flush allows); and where 3 or more writes are unflushed,
    CRASH_SEEDS random subsets.  Without @keep_runs, no CRASH-KEEP runs:
    they leave the files exactly as a SIGKILL at the same point does."""
    jobs, reverted = [], set()
    for n, (u, key, is_flush) in enumerate(points, 1):
        if key not in reverted:
            reverted.add(key)
            jobs.append(('any:%d:CRASH-REVERT' % n, 0, None))
        if u >= 1 and keep_runs:
            jobs.append(('any:%d:CRASH-KEEP' % n, 0, None))
        for k in range(1, u if is_flush else 0):
            jobs.append(('any:%d:CRASH-MASK' % n, 0, '0' * k + '1' * (u - k)))
        if u >= 3:
            for seed in range(CRASH_SEED_BASE, CRASH_SEED_BASE + CRASH_SEEDS):
                jobs.append(('any:%d:CRASH' % n, seed, None))
    return jobs


def crash_point(sc, spec, seed, mask=None):
    """One run with RECHAIN_FAULT=@spec (a CRASH action), seed @seed and
    RECHAIN_FAULT_CRASH_MASK=@mask on a fresh copy; returns (errors, notes,
    writes lost)."""
    tag = 'crash-%s-s%d%s' % (spec.replace(':', '-'), seed, '-m' + mask if mask else '')
    d = sc.fresh(tag)
    env = {'RECHAIN_FAULT': spec, 'RECHAIN_FAULT_SEED': str(seed)}
    if mask:
        env['RECHAIN_FAULT_CRASH_MASK'] = mask
    what = '%s %s seed %d%s' % (sc.name, spec, seed, ' mask ' + mask if mask else '')
    errors, notes = [], []
    log = os.path.join(sc.root, tag + '.log')
    r = run_rechain(sc.argv(), d, env=dict(env, RECHAIN_FAULT_LOG=log))
    lines = open(log).read().splitlines()
    crashes = [l for l in lines if l.startswith('crash ')]
    lost = sum(int(l.rsplit('reverted=', 1)[1]) for l in crashes)
    crashes += [l.replace('crash-mask ', 'surviving (RECHAIN_FAULT_CRASH_MASK) ')
                for l in lines if l.startswith('crash-mask ')]
    if r.rc != CRASH_STATUS:
        errors.append('%s: expected the crash (exit %d), got %d\n%s'
                      % (what, CRASH_STATUS, r.rc, r.describe()))
    for m in rt.CRASH_MARKERS:
        if m in r.err:
            errors.append('%s: stderr has %r\n%s' % (what, m, r.describe()))
    e, n = verify_promise(sc, d, what)
    errors += e
    notes += n
    if not e:
        e, n = verify_rerun(sc, d, what)
        errors += e
        notes += n
    if errors:
        errors.insert(0, 'reproduce: ' + sc.repro(env))
        errors.insert(1, 'files kept in %s; the crash: %s' % (d, '; '.join(crashes) or 'none'))
    elif not rt.KEEP:
        shutil.rmtree(d, ignore_errors=True)
    return errors, notes, lost


CRASH_SCENARIOS = [sc_flatten, sc_near_copy, sc_linked_clones]


class RebaseCrashTest(JobTestCase):
    """Power loss at every write and flush point: the unflushed writes are
    all lost, all kept, or a random subset of them is lost."""

    def setUp(self):
        super().setUp()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=JOBS)

    def tearDown(self):
        self.pool.shutdown()
        if getattr(self, 'failed_runs', False):
            sys.stdout.write('# keeping the failed runs\' files in %s\n' % self.dir)
        else:
            super().tearDown()

    def _scenario(self, fn):
        name = fn.__name__[3:]
        if ONLY and 'crash_' + name not in ONLY:
            self.skipTest('not in RECHAIN_FAULT_SCENARIOS')
        sc = Scenario(fn, self.dir)
        d = sc.fresh('log')
        log = os.path.join(sc.root, 'fault.log')
        r = run_rechain(sc.argv(), d, env={'RECHAIN_FAULT_LOG': log})
        self.assertEqual(r.rc, 0, 'unfaulted run failed\n' + r.describe())
        points = crash_points(open(log).read().splitlines())
        self.assertGreater(len(points), 0)
        unflushed = [u for u, _, _ in points]
        # CRASH-KEEP leaves what any:N:KILL leaves; RebaseFaultTest runs
        # that at every point of the same scenario, unless filtered out
        kill_runs = (fn in SCENARIOS and (not ONLY or name in ONLY) and
                     os.environ.get('RECHAIN_FAULT_CRASH_ALL') != '1')
        jobs = crash_jobs(points, keep_runs=not kill_runs)
        futs = [self.pool.submit(crash_point, sc, *job) for job in jobs]
        failures = []
        leaks = lost_runs = lost = 0
        for f in futs:
            e, notes, k = f.result()
            leaks += len(notes)
            lost += k
            lost_runs += k > 0
            if e:
                failures.append('\n'.join(e))
        sys.stdout.write('# crash %s: %d write/flush points (at most %d writes unflushed), %d crash '
                         'runs%s, %d of them losing writes (%d writes lost), %d leak notes\n'
                         % (sc.name, len(unflushed), max(unflushed), len(jobs),
                            ' (CRASH-KEEP left to the KILL runs)' if kill_runs else '',
                            lost_runs, lost, leaks))
        if failures:
            self.failed_runs = True
            self.fail('%d of %d crash runs broke the promise:\n\n%s'
                      % (len(failures), len(jobs), '\n\n'.join(failures[:6])))
        # the runs must really lose writes, or they prove nothing about flushes
        self.assertGreater(lost_runs, 0, 'no crash run lost a write')


for _fn in CRASH_SCENARIOS:
    def _mk_crash(fn):
        def t(self):
            self._scenario(fn)
        t.__doc__ = 'power loss: ' + (fn.__doc__ or fn.__name__[3:])
        return t
    setattr(RebaseCrashTest, 'test_crash_' + _fn.__name__[3:], _mk_crash(_fn))


# ---------------------------------------------------------------------------
# linked clones: one failing does not touch the others

def sc_three_clones(d):
    """Three linked clones of mid.qcow2 with their own data, moved onto a
    near copy in one call."""
    _chain(d)
    _img(d, 'clone1.qcow2', 2 * MiB, backing='mid.qcow2', bfmt='qcow2')
    _io(d, 'clone1.qcow2', 'write -P 21 0 64k', 'write -P 22 1536k 4k')
    _img(d, 'clone2.qcow2', 2 * MiB, backing='mid.qcow2', bfmt='qcow2', opts='cluster_size=16k')
    _io(d, 'clone2.qcow2', 'write -P 23 64k 16k', 'write -P 24 1700k 64k')
    _img(d, 'clone3.qcow2', 2 * MiB, backing='mid.qcow2', bfmt='qcow2')
    _io(d, 'clone3.qcow2', 'write -P 25 512k 64k')
    _near(d)
    return (['clone1.qcow2', 'clone2.qcow2', 'clone3.qcow2'], ['-b', 'near.qcow2', '-F', 'qcow2'],
            'near.qcow2')


class RebaseCloneIndependenceTest(JobTestCase):
    """Writes (or flushes) failing on one of 3 linked clones."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='rechain-clones-')
        cls.sc = Scenario(sc_three_clones, cls.root)
        # the header write of each clone is its last write: learn where it is
        d = cls.sc.fresh('log')
        log = os.path.join(cls.sc.root, 'fault.log')
        r = run_rechain(cls.sc.argv(), d, env={'RECHAIN_FAULT_LOG': log})
        assert r.rc == 0, r.describe()
        cls.writes = {ov: sum(1 for l in open(log) if l.startswith('write %s ' % ov))
                      for ov in cls.sc.overlays}
        cls.flushes = {ov: sum(1 for l in open(log) if l.strip() == 'flush %s' % ov)
                       for ov in cls.sc.overlays}

    @classmethod
    def tearDownClass(cls):
        if not rt.KEEP:
            shutil.rmtree(cls.root, ignore_errors=True)

    def specs(self):
        """(failing clone, RECHAIN_FAULT) cases: from its first write on, its
        first write only, every flush, its header write (the last write)."""
        out = []
        for ov, rules in (('clone2.qcow2', ['write:1+:EIO', 'write:1:ENOSPC', 'flush:1+:EIO',
                                            'write:%d:EIO' % self.writes['clone2.qcow2']]),
                          ('clone1.qcow2', ['any:1+:EIO']),
                          ('clone3.qcow2', ['write:%d:EIO' % self.writes['clone3.qcow2']])):
            out += [(ov, '%s:%s' % (r, ov)) for r in rules]
        return out

    def run_case(self, failing, spec, prepare=None, tag=''):
        sc = self.sc
        d = sc.fresh(tag + spec.replace(':', '-').replace('+', 'p'))
        if prepare:
            prepare(d)
        what = 'RECHAIN_FAULT=%s' % spec
        r = run_rechain(['rebase', '--output=json'] + sc.args + sc.overlays, d,
                        env={'RECHAIN_FAULT': spec})
        desc = '%s\n%s' % (what, r.describe())
        self.assert_no_crash(r)
        self.assertEqual(r.rc, rt.EXIT_IO, desc)
        self.assertIn(failing, r.err, 'the error does not name the failing clone\n' + desc)
        for ov in sc.overlays:
            c = judge_check(sc.keys, ov, d)
            qi = qemu_info(ov, cwd=d)
            cmp = judge_compare(sc.keys, sc.raw[ov], ov, d)
            self.assertEqual(cmp.rc, 0, '%s: content of %s changed\n%s\n%s'
                             % (what, ov, cmp.describe(), desc))
            if ov == failing:
                self.assertIn(c.rc, (0, 3), '%s: %s\n%s' % (what, c.describe(), desc))
                self.assertEqual(qi.get('backing-filename'), sc.old[ov],
                                 '%s: the failing %s left its old backing\n%s' % (what, ov, desc))
            else:
                self.assertEqual(c.rc, 0, '%s: %s\n%s' % (what, c.describe(), desc))
                self.assertEqual(qi.get('backing-filename'), sc.new,
                                 '%s: %s was not rebased though only %s failed\n%s'
                                 % (what, ov, failing, desc))
        return d, r

    def test_others_rebased(self):
        """The other clones are switched, the failing one stays as it was
        on its old backing, and a rerun completes it."""
        for failing, spec in self.specs():
            with self.subTest(spec=spec):
                d, _ = self.run_case(failing, spec)
                e, n = verify_rerun(self.sc, d, 'rerun after ' + spec)
                self.assertEqual(e, [], '\n'.join(e))

    def test_report_names_each(self):
        """The report lists each clone with its own result: the failing one
        "failed" with its error, the others "rebased"."""
        for failing, spec in self.specs():
            d, r = self.run_case(failing, spec)
            desc = 'RECHAIN_FAULT=%s\n%s' % (spec, r.describe())
            try:
                images = json.loads(r.out)['images']
            except (ValueError, KeyError) as e:
                self.fail('no JSON report (%s)\n%s' % (e, desc))
            self.assertEqual(sorted(i.get('image') for i in images), sorted(self.sc.overlays), desc)
            for i in images:
                if i['image'] == failing:
                    self.assertEqual(i.get('result'), 'failed', desc)
                    self.assertIn(failing, i.get('error', ''), desc)
                else:
                    self.assertEqual(i.get('result'), 'rebased',
                                     '%s is reported as %r though it was rebased\n%s'
                                     % (i['image'], i.get('result'), desc))
                    self.assertNotIn('error', i, desc)


    def test_writer_setup_failure(self):
        """The clone whose writer cannot be set up (here: its header rewrite,
        which clears an unknown autoclear bit before any other write, fails)
        fails alone."""
        def unknown_autoclear(d):
            rt.patch_field(os.path.join(d, 'clone2.qcow2'), 'autoclear_features', 1 << 40)
        self.run_case('clone2.qcow2', 'write:1:EIO:clone2.qcow2', unknown_autoclear, 'setup-')




class RebaseSignalTest(JobTestCase):
    """SIGTERM and SIGINT during a 256 MiB flatten."""

    SIZE = 256 * MiB

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='rechain-sig-')
        d = cls.pristine = os.path.join(cls.root, 'pristine')
        os.makedirs(d)
        _img(d, 'base.qcow2', cls.SIZE)
        _io(d, 'base.qcow2', 'write -P 1 0 %d' % cls.SIZE, 'write -z 64M 1M')
        _img(d, 'top.qcow2', cls.SIZE, backing='base.qcow2', bfmt='qcow2')
        _io(d, 'top.qcow2', 'write -P 3 64k 64k', 'write -P 4 100M 1000')
        cls.raw = os.path.join(cls.root, 'top.before.raw')
        jt.dump_raw('top.qcow2', cls.raw, d)

    @classmethod
    def tearDownClass(cls):
        if not rt.KEEP:
            shutil.rmtree(cls.root, ignore_errors=True)

    def _signal(self, sig):
        d = self.path('run')
        jt.copy_tree(self.pristine, d)
        log = self.path('fault.log')
        # -c: compressing goes through buffers, cluster by cluster, so the
        # signal lands mid-copy (clones and in-kernel copies are too fast)
        argv = [rt.RECHAIN, 'rebase', '-c', '-t', 'writethrough', '--output=json', '-b', '', 'top.qcow2']
        env = rt.fault_env(dict(os.environ, RECHAIN_FAULT_LOG=log))
        p = subprocess.Popen(argv, cwd=d, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        # wait for the first writes
        t0 = time.time()
        while time.time() - t0 < 60 and p.poll() is None:
            try:
                with open(log) as f:
                    if sum(1 for l in f if l.startswith('write')) >= 4:
                        break
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        running = p.poll() is None
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        desc = ('$ (cd %s && RECHAIN_FAULT_LOG=%s %s)  # %s after the 4th write\nexit %d\n%s\n%s'
                % (d, log, ' '.join(argv), signal.Signals(sig).name, p.returncode,
                   out.decode()[-2000:], err.decode()[-2000:]))
        if not running:
            self.skipTest('the rebase finished before the signal (too fast)')
        self.assertEqual(p.returncode, rt.EXIT_CANCELLED, desc)
        for m in rt.CRASH_MARKERS:
            self.assertNotIn(m, err.decode(), desc)
        c = jt.qemu_check('top.qcow2', cwd=d)
        self.assertIn(c.rc, (0, 3), c.describe() + '\n' + desc)
        self.assertEqual(qemu_info('top.qcow2', cwd=d).get('backing-filename'), 'base.qcow2',
                         desc)
        cmp = jt.compare(self.raw, 'top.qcow2', d, fmt_a='raw')
        self.assertEqual(cmp.rc, 0, cmp.describe() + '\n' + desc)
        # the rerun completes
        r = run_rechain(['rebase', '-b', '', 'top.qcow2'], d, timeout=600)
        self.assertEqual(r.rc, 0, r.describe())
        cmp = jt.compare(self.raw, 'top.qcow2', d, fmt_a='raw')
        self.assertEqual(cmp.rc, 0, cmp.describe())
        c = jt.qemu_check('top.qcow2', cwd=d)
        self.assertIn(c.rc, (0, 3), c.describe())
        if c.rc == 3:
            sys.stdout.write('# %s: leaked clusters after the rerun\n' % signal.Signals(sig).name)
        self.assert_backing('top.qcow2', '', None, cwd=d)

    def test_sigterm(self):
        self._signal(signal.SIGTERM)

    def test_sigint(self):
        self._signal(signal.SIGINT)


if __name__ == '__main__':
    jt.main()
