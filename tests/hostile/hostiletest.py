# hostiletest.py: helpers of the hostile-environment tests (tests/hostile).
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds on tests/tool/rechaintest.py and tests/job/jobtest.py (imported,
# not modified). Every scenario is judged by QEMU: qemu-img check (no
# corruption; leaked clusters allowed after an interrupted run and
# reported), qemu-img compare of the guest content with a raw dump taken
# before, and a rerun without the fault that must succeed.

import json
import os
import shutil
import signal
import subprocess
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, '..', 'tool'))
sys.path.insert(0, os.path.join(_here, '..', 'job'))
import rechaintest as rt  # noqa: E402,F401
import jobtest as jt  # noqa: E402,F401
from rechaintest import main, qemu_img, qemu_info, run, MiB  # noqa: E402,F401
from jobtest import JobTestCase, KiB  # noqa: E402,F401

# Outcome of a rechain run started with run_rechain(): rechaintest's Result
# (the pause machinery, ToolTestCase.pause_before()/resume(), returns one too).
Proc = rt.Result


def run_rechain(args, cwd, env=None, preexec_fn=None, timeout=300):
    argv = [rt.RECHAIN] + [str(a) for a in args]
    e = dict(os.environ)
    e.setdefault('LC_ALL', 'C.UTF-8')
    if env:
        e.update(env)
    rt.fault_env(e)
    p = subprocess.run(argv, cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=preexec_fn, timeout=timeout)
    return Proc(argv, cwd, p.returncode, p.stdout.decode('utf-8', 'replace'),
                p.stderr.decode('utf-8', 'replace'))


def fault_log(args, cwd, env=None):
    """Runs rechain once with RECHAIN_FAULT_LOG; returns (result, lines)."""
    log = os.path.join(cwd, '.fault-log')
    if os.path.exists(log):
        os.unlink(log)
    e = dict(env or {})
    e['RECHAIN_FAULT_LOG'] = log
    r = run_rechain(args, cwd, env=e)
    with open(log) as f:
        lines = [l.rstrip('\n') for l in f]
    os.unlink(log)
    return r, lines


def any_index(lines, i):
    """The RECHAIN_FAULT 'any' number (writes and flushes) of line @i."""
    return sum(1 for l in lines[:i + 1] if l.startswith(('write ', 'flush ')))


def read_index(lines, i):
    return sum(1 for l in lines[:i + 1] if l.startswith('read '))


class HostileCase(JobTestCase):
    """Scenario helpers: a chain base <- top and a different new backing,
    so a safe rebase of top onto new copies data and zeros."""

    SIZE = 4 * MiB

    def make_scenario(self, d=None, size=None, cluster='64k', raw_base=False):
        d = d or self.dir
        size = size or self.SIZE
        if raw_base:
            with open(os.path.join(d, 'base.raw'), 'wb') as f:
                for i in range(size // (64 * KiB)):
                    f.write(bytes([(i * 37 + 1) & 255]) * (64 * KiB))
            base, bfmt = 'base.raw', 'raw'
        else:
            self.img('base.qcow2', size, opts='cluster_size=%s' % cluster, cwd=d)
            self.io('base.qcow2', 'write -P 1 0 %d' % size, 'write -z 1M 128k',
                    'write -P 5 2M 64k', cwd=d)
            base, bfmt = 'base.qcow2', 'qcow2'
        self.img('top.qcow2', size, opts='cluster_size=%s' % cluster, backing=base, bfmt=bfmt, cwd=d)
        self.io('top.qcow2', 'write -P 3 64k 64k', 'write -z 1800k 64k',
                'write -P 4 3M 1000', cwd=d)
        self.img('new.qcow2', size, opts='cluster_size=%s' % cluster, cwd=d)
        self.io('new.qcow2', 'write -P 9 0 1M', 'write -P 1 1M 1M', cwd=d)
        return base, bfmt

    def rebase_args(self, *extra):
        return ['rebase'] + list(extra) + ['-b', 'new.qcow2', '-F', 'qcow2', 'top.qcow2']

    def check_after_failure(self, b, r, what, expect_rc=None, d=None, old_backing=None):
        """After a failed or killed run: the process ended with a documented
        status (or a signal), the image is check-clean (leaks allowed and
        reported), the header names the old or (only if the switch was the
        last step) the new backing, and the guest content is the old one.
        Then a rerun without the fault succeeds with the same content."""
        d = d or self.dir
        self.assert_no_crash_markers(r, what)
        if expect_rc is not None:
            self.assertIn(r.rc, expect_rc if isinstance(expect_rc, tuple) else (expect_rc,),
                          '%s: exit status\n%s' % (what, r.describe()))
        c = self.assert_check('top.qcow2', cwd=d, allow_leaks=True, what=what)
        leaks = 'leaked' in c.out
        qi = qemu_info('top.qcow2', cwd=d)
        self.assertIn(qi.get('backing-filename'), (old_backing, 'new.qcow2'),
                      '%s: backing name is neither old nor new: %s' % (what, json.dumps(qi)))
        self.assert_content(b, what + ' (content after the failure)')
        r2 = run_rechain(self.rebase_args(), d)
        self.assertEqual(r2.rc, 0, '%s: rerun failed\n%s' % (what, r2.describe()))
        self.assert_check('top.qcow2', cwd=d, allow_leaks=True, what=what + ' (after rerun)')
        self.assert_backing('top.qcow2', 'new.qcow2', 'qcow2', cwd=d)
        self.assert_content(b, what + ' (content after the rerun)')
        return leaks

    def assert_no_crash_markers(self, r, what):
        for m in rt.CRASH_MARKERS:
            if m in r.err:
                self.fail('%s: stderr contains "%s"\n%s' % (what, m, r.describe()))
        if r.rc < 0 and r.rc != -signal.SIGKILL and r.rc != -signal.SIGXFSZ:
            self.fail('%s: killed by signal %d\n%s' % (what, -r.rc, r.describe()))

    def fresh(self, pristine):
        for f in os.listdir(pristine):
            shutil.copy2(os.path.join(pristine, f), self.path(f))

    def save(self):
        pristine = self.path('pristine')
        os.mkdir(pristine)
        for f in os.listdir(self.dir):
            if f.endswith(('.qcow2', '.raw')):
                shutil.copy2(self.path(f), pristine)
        return pristine
