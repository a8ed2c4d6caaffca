# jobtest.py: helpers of the tests of the safe rebase engine (tests/job).
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds on tests/tool/rechaintest.py (imported, not modified).  QEMU's
# qemu-img and qemu-io make every fixture and judge every result.

import json
import os
import shutil
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, '..', 'tool'))
import rechaintest as rt  # noqa: E402,F401
from rechaintest import (ToolTestCase, main, qemu_check, qemu_img, qemu_info,  # noqa: E402,F401
                         qemu_io, qemu_map, run, must, sha256, tree_hashes, MiB,
                         CommandFailed, CRASH_MARKERS)

KiB = 1024


def nobacking_spec(img):
    """A json: filename opening qcow2 @img without its backing file."""
    return 'json:' + json.dumps({'driver': 'qcow2', 'backing': None,
                                 'file': {'driver': 'file', 'filename': img}})


def dump_raw(img, out, cwd, fmt=None, snapshot=None, no_backing=False):
    """Guest content of @img (through its chain) into the raw file @out."""
    args = [rt.QEMU_IMG, 'convert', '-U', '-O', 'raw']
    if snapshot is not None:
        args += ['-l', 'snapshot.name=' + snapshot]
    if no_backing:
        args.append(nobacking_spec(img))
    else:
        if fmt:
            args += ['-f', fmt]
        args.append(img)
    args.append(out)
    return must(args, cwd=cwd)


def compare(a, b, cwd, fmt_a=None, fmt_b=None):
    """qemu-img compare; returns the Result (rc 0 = identical)."""
    args = [rt.QEMU_IMG, 'compare', '-U']
    if fmt_a:
        args += ['-f', fmt_a]
    if fmt_b:
        args += ['-F', fmt_b]
    return run(args + [a, b], cwd=cwd, timeout=300)


def snapshot_names(img, cwd):
    qi = qemu_info(img, cwd=cwd)
    return [s['name'] for s in qi.get('snapshots', [])]


def bitmap_names(img, cwd):
    qi = qemu_info(img, cwd=cwd)
    data = qi.get('format-specific', {}).get('data', {})
    return sorted(b['name'] for b in data.get('bitmaps', []))


class Before:
    """The state of an overlay before a rebase: raw dump of its content, the
    own data of each internal snapshot (read without the backing file),
    bitmap and snapshot names."""

    def __init__(self, tc, img, cwd, tag=None):
        self.img = img
        self.cwd = cwd
        tag = tag or os.path.basename(img)
        self.raw = os.path.join(cwd, '.before-%s.raw' % tag)
        dump_raw(img, self.raw, cwd)
        self.snaps = snapshot_names(img, cwd)
        self.bitmaps = bitmap_names(img, cwd)
        self.snap_raw = {}
        for s in self.snaps:
            p = os.path.join(cwd, '.before-%s.snap-%s.raw' % (tag, s))
            dump_raw(os.path.join(cwd, img), p, cwd, snapshot=s, no_backing=True)
            self.snap_raw[s] = p


class JobTestCase(ToolTestCase):

    def img(self, name, size, fmt='qcow2', opts=None, backing=None, bfmt=None, cwd=None):
        args = ['create', '-q', '-f', fmt]
        if backing is not None:
            args += ['-b', backing, '-F', bfmt]
        if opts:
            args += ['-o', opts]
        qemu_img(*(args + [name, str(size)]), cwd=cwd or self.dir)
        return name

    def io(self, img, *cmds, fmt=None, cwd=None):
        if cmds:
            qemu_io(img, *cmds, fmt=fmt, cwd=cwd or self.dir)

    def before(self, img, cwd=None, tag=None):
        return Before(self, img, cwd or self.dir, tag)

    def rebase(self, *args, cwd=None, expect=0, timeout=300, env=None):
        r = run([rt.RECHAIN, 'rebase'] + [str(a) for a in args], cwd=cwd or self.dir,
                timeout=timeout, env=env)
        self.assert_no_crash(r)
        if expect is not None:
            exp = expect if isinstance(expect, tuple) else (expect,)
            if r.rc not in exp:
                self.fail('rechain exit status %d, expected %s\n%s'
                          % (r.rc, ' or '.join(map(str, exp)), r.describe()))
        return r

    def rebase_json(self, *args, cwd=None, expect=0, env=None):
        r = self.rebase('--output=json', *args, cwd=cwd, expect=expect, env=env)
        try:
            return json.loads(r.out), r
        except ValueError as e:
            self.fail('rechain did not print valid JSON (%s)\n%s' % (e, r.describe()))

    def assert_content(self, b, what='', fmt=None):
        """The guest content of b.img (through its current chain) equals the
        dump taken before."""
        c = compare(b.raw, b.img, b.cwd, fmt_a='raw', fmt_b=fmt)
        if c.rc != 0:
            self.fail('%s: content of %s changed\n%s\n%s'
                      % (what, b.img, c.describe(), self._map_txt(b.img, b.cwd)))

    def _map_txt(self, img, cwd):
        try:
            m = qemu_map(img, cwd=cwd)
            return 'qemu-img map: ' + json.dumps(m)[:3000]
        except Exception as e:  # noqa: BLE001
            return 'qemu-img map failed: %s' % e

    def assert_check(self, img, cwd=None, allow_leaks=False, what=''):
        c = qemu_check(img, cwd=cwd or self.dir)
        ok = (0, 3) if allow_leaks else (0,)
        if c.rc not in ok:
            self.fail('%s: qemu-img check of %s exit %d\n%s'
                      % (what, img, c.rc, c.describe()))
        return c

    def assert_backing(self, img, name, fmt, cwd=None):
        qi = qemu_info(img, cwd=cwd or self.dir)
        if not name:
            for k in ('backing-filename', 'backing-filename-format'):
                self.assertNotIn(k, qi, '%s: backing remains: %s' % (img, json.dumps(qi)))
        else:
            self.assertEqual(qi.get('backing-filename'), name, json.dumps(qi))
            self.assertEqual(qi.get('backing-filename-format'), fmt, json.dumps(qi))

    def assert_extras(self, b, what=''):
        """Bitmaps still listed, snapshots listed and their own data unchanged."""
        self.assertEqual(bitmap_names(b.img, b.cwd), b.bitmaps, '%s: bitmaps changed' % what)
        self.assertEqual(snapshot_names(b.img, b.cwd), b.snaps, '%s: snapshots changed' % what)
        for s, p in b.snap_raw.items():
            after = p + '.after'
            dump_raw(os.path.join(b.cwd, b.img), after, b.cwd, snapshot=s, no_backing=True)
            c = compare(p, after, b.cwd, fmt_a='raw', fmt_b='raw')
            if c.rc != 0:
                self.fail('%s: data of internal snapshot %s of %s changed\n%s'
                          % (what, s, b.img, c.describe()))
            os.unlink(after)


def copy_tree(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
