#!/usr/bin/python3
# tool-ux-progress: -p draws a one-line bar on a terminal (run under a
# pseudo-terminal with script(1)), plain lines when not a terminal, JSON
# lines with --progress=json or on --progress-fd; a final 100 % always,
# even for tiny jobs; a 1 TiB map shows progress too.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rechaintest as rt  # noqa: E402
from rechaintest import ToolTestCase, main, qemu_img, qemu_io  # noqa: E402

TiB = 1 << 40
MiB = 1 << 20


def under_pty(argv, cwd, columns=100):
    """Runs @argv with stdin, stdout and stderr on a pseudo-terminal
    (script -q -e -c); returns (exit status, what the terminal got)."""
    cmd = 'stty cols %d 2>/dev/null; exec %s' % (columns, ' '.join(shlex.quote(a) for a in argv))
    p = subprocess.run(['script', '-q', '-e', '-c', cmd, '/dev/null'], cwd=cwd,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, LC_ALL='C.UTF-8', LANGUAGE='', TERM='xterm'),
                       timeout=300)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


class ProgressTest(ToolTestCase):

    def setUp(self):
        super().setUp()
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'base.qcow2', '64M', cwd=d)
        qemu_io('base.qcow2', 'write -P 1 0 24M', 'write -P 2 40M 8M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'top.qcow2', cwd=d)
        qemu_io('top.qcow2', 'write -P 3 1M 1M', cwd=d)

    def json_lines(self, text, r=None, images=None):
        """The byte-progress lines of @text; rebase adds one line per image
        as it ends, which must be those of @images (name -> status), each
        once, and before the last byte line."""
        objs = []
        seen = {}
        failed = r is not None and r.rc != 0
        for line in text.splitlines():
            if failed and line.startswith('rechain: '):
                continue  # the error message
            try:
                o = json.loads(line)
            except ValueError:
                self.fail('not a JSON line: %r\n%s' % (line, r.describe() if r else text))
            if failed and set(o) == {'error'}:
                continue  # --output=json's error
            if 'image' in o:
                self.assertEqual(set(o) - {'error'}, {'image', 'status', 'bytes-written'}, o)
                self.assertEqual('error' in o, o['status'] == 'failed', o)
                self.assertTrue(os.path.isabs(o['image']), o)
                self.assertNotIn(o['image'], seen, 'an image told twice')
                seen[o['image']] = o['status']
                self.assertFalse(objs and objs[-1]['progress'] == 1.0,
                                 'an image line after the last progress line')
                continue
            objs.append(o)
        if images is not None:
            self.assertEqual(seen, {self.path(k): v for k, v in images.items()})
        if failed:
            return objs, seen  # no final line after a failure
        self.assertTrue(objs, 'no progress lines\n' + (r.describe() if r else text))
        for o in objs:
            self.assertEqual(set(o), {'bytes-done', 'bytes-total', 'progress'}, o)
            self.assertIsInstance(o['bytes-done'], int)
            self.assertIsInstance(o['bytes-total'], int)
            self.assertTrue(0.0 <= o['progress'] <= 1.0, o)
            self.assertLessEqual(o['bytes-done'], o['bytes-total'], o)
        done = [o['bytes-done'] for o in objs]
        self.assertEqual(done, sorted(done), 'progress goes backwards')
        last = objs[-1]
        self.assertEqual(last['progress'], 1.0, objs)
        self.assertEqual(last['bytes-done'], last['bytes-total'], objs)
        self.assertEqual(sum(1 for o in objs if o['progress'] == 1.0), 1,
                         'the final line is printed once')
        return objs

    # -- terminal -----------------------------------------------------------

    def test_bar_on_terminal(self):
        if not shutil.which('script'):
            self.skipTest('script(1) not installed')
        rc, tty = under_pty([rt.RECHAIN, 'rebase', '-p', '-b', '', 'top.qcow2'], self.dir)
        self.assertEqual(rc, 0, tty)
        frames = [f for f in re.split(r'\r\n|\r|\n', tty) if f.strip()]
        self.assertTrue(frames, repr(tty))
        final = frames[-1]
        self.assertRegex(final, r'^100% \[#+\] ', repr(tty))
        self.assertRegex(final, r'/s', 'no throughput in %r' % final)
        # a bar, not a log: frames are redrawn with \r, no line per update
        self.assertIn('\r', tty.replace('\r\n', ''), repr(tty))
        self.assertEqual(tty.replace('\r\n', '\n').count('\n'), 1, repr(tty))
        for f in frames:
            self.assertLessEqual(len(f.rstrip()), 99, 'frame wider than the terminal: %r' % f)
            self.assertRegex(f, r'^\s*\d{1,3}%', repr(f))
        self.assert_backing_removed()

    def test_bar_redrawn_with_eta(self):
        """A longer job: intermediate frames with percent, bar, throughput
        and ETA, then the final 100 %."""
        if not shutil.which('script'):
            self.skipTest('script(1) not installed')
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'big.qcow2', '1G', cwd=d)
        qemu_io('big.qcow2', 'write -P 5 0 600M', cwd=d)
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'big.qcow2', '-F', 'qcow2',
                 'over.qcow2', cwd=d)
        rc, tty = under_pty([rt.RECHAIN, 'rebase', '-p', '-b', '', 'over.qcow2'], d, columns=80)
        self.assertEqual(rc, 0, tty)
        frames = [f for f in re.split(r'\r\n|\r|\n', tty) if f.strip()]
        self.assertGreaterEqual(len(frames), 2, 'no intermediate frame: %r' % tty)
        middle = frames[:-1]
        for f in middle:
            self.assertRegex(f, r'^\s*\d{1,2}% \[[#.]+\] .*ETA ', repr(f))
            self.assertLessEqual(len(f.rstrip()), 79, repr(f))
        self.assertRegex(frames[-1], r'^100% \[#+\] 1(\.0)?\sGiB in \d+:\d\d, ', repr(tty))

    def test_map_bar_on_terminal(self):
        if not shutil.which('script'):
            self.skipTest('script(1) not installed')
        qemu_img('create', '-q', '-f', 'qcow2', 'huge.qcow2', '1T', cwd=self.dir)
        rc, tty = under_pty([rt.RECHAIN, 'map', '-p', '--output=json', 'huge.qcow2'], self.dir)
        self.assertEqual(rc, 0, tty)
        self.assertRegex(tty, r'\r100% \[#+\] 1(\.0)?\sTiB in ', repr(tty))

    # -- not a terminal ----------------------------------------------------

    def test_plain_lines_when_not_a_terminal(self):
        r = self.rechain('rebase', '-p', '-b', '', 'top.qcow2', expect=0)
        self.assertNotIn('\r', r.err, r.describe())
        lines = r.err.splitlines()
        self.assertTrue(lines, r.describe())
        for l in lines:
            self.assertRegex(l, r'^rechain rebase: +\d{1,3}\.\d% of ', r.describe())
        self.assertRegex(lines[-1], r'^rechain rebase: 100\.0% of .* in \d+:\d\d, ', r.describe())
        self.assertEqual(r.out, '')
        self.assert_backing_removed()

    def test_final_line_for_tiny_jobs(self):
        """An unsafe rebase (a header write) and the map of a tiny image
        still end with 100 %."""
        r = self.rechain('rebase', '-u', '-p', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2',
                         expect=0)
        self.assertRegex(r.err.splitlines()[-1], r'100\.0%', r.describe())
        r = self.rechain('rebase', '-u', '--progress=json', '-b', 'base.qcow2', '-F', 'qcow2',
                         'top.qcow2', expect=0)
        self.json_lines(r.err, r, images={'top.qcow2': 'rebased'})
        qemu_img('create', '-q', '-f', 'qcow2', 'tiny.qcow2', '512', cwd=self.dir)
        r = self.rechain('map', '--progress=json', '--output=json', 'tiny.qcow2', expect=0)
        objs = self.json_lines(r.err, r)
        self.assertEqual(objs[-1]['bytes-total'], 512)
        r.json()   # stdout: still the map alone

    def test_no_final_line_on_failure(self):
        r = self.rechain('rebase', '-p', '-b', 'missing.qcow2', '-F', 'qcow2', 'top.qcow2')
        self.assertNotEqual(r.rc, 0, r.describe())
        self.assertNotIn('100.0%', r.err, r.describe())

    # -- JSON --------------------------------------------------------------

    def test_json_on_stderr(self):
        r = self.rechain('rebase', '--progress=json', '--output=json', '-b', '', 'top.qcow2',
                         expect=0)
        objs = self.json_lines(r.err, r, images={'top.qcow2': 'rebased'})
        self.assertGreater(objs[-1]['bytes-total'], 0)
        report = r.json()
        self.assertEqual(report['images'][0]['result'], 'rebased', r.describe())
        self.assert_backing_removed()

    def image_lines(self, r):
        return {o['image']: o for o in map(json.loads, (x for x in r.err.splitlines()
                                                        if x.startswith('{"image"')))
                if 'image' in o}

    def test_json_image_lines(self):
        """One line per image, with the report's result, bytes and error:
        planned for a dry run, failed for a run refused as a whole."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                 'clone.qcow2', cwd=d)
        r = self.rechain('rebase', '--dry-run', '--progress=json', '--output=json', '-b', '',
                         'top.qcow2', 'clone.qcow2', expect=0)
        self.json_lines(r.err, r, images={'top.qcow2': 'planned', 'clone.qcow2': 'planned'})
        lines = self.image_lines(r)
        for e in r.json()['images']:
            self.assertEqual(lines[self.path(e['image'])]['bytes-written'], e['bytes-written'])
        self.assertGreater(lines[self.path('clone.qcow2')]['bytes-written'], 0)
        # clone.qcow2 is no image rechain can rebase (qcow2 version 0)
        with open(self.path('clone.qcow2'), 'r+b') as f:
            f.seek(4)
            f.write(b'\0\0\0\0')
        before = rt.sha256(self.path('top.qcow2'))
        r = self.rechain('rebase', '--progress=json', '--output=json', '-b', '', 'top.qcow2',
                         'clone.qcow2', expect=rt.EXIT_INVALID)
        self.json_lines(r.err, r, images={'top.qcow2': 'failed', 'clone.qcow2': 'failed'})
        lines = self.image_lines(r)
        for e in r.json()['images']:
            self.assertEqual(lines[self.path(e['image'])]['error'], e['error'])
        self.assertIn('clone.qcow2', lines[self.path('clone.qcow2')]['error'])
        self.assertEqual(before, rt.sha256(self.path('top.qcow2')))

    def test_json_on_fd(self):
        rfd, wfd = os.pipe()
        try:
            p = subprocess.Popen([rt.RECHAIN, 'rebase', '--progress-fd=%d' % wfd, '-b', '',
                                  'top.qcow2'], cwd=self.dir, pass_fds=(wfd,),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=dict(os.environ, LC_ALL='C.UTF-8'))
            os.close(wfd)
            wfd = -1
            with os.fdopen(rfd, 'r') as f:
                rfd = -1
                text = f.read()
            out, err = p.communicate(timeout=120)
        finally:
            for fd in (rfd, wfd):
                if fd >= 0:
                    os.close(fd)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(err, b'', 'progress went to stderr too')
        self.assertEqual(out, b'')
        self.json_lines(text, images={'top.qcow2': 'rebased'})
        self.assert_backing_removed()

    def test_fd_with_plain_mode(self):
        r = subprocess.run(['sh', '-c', '"$0" map --progress=plain --progress-fd=3 top.qcow2 '
                            '3>progress.txt', rt.RECHAIN], cwd=self.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, LC_ALL='C.UTF-8'))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path('progress.txt')) as f:
            self.assertRegex(f.read(), r'rechain map: 100\.0% of 64(\.0)?\sMiB')

    def test_map_of_1_tib(self):
        """The plan of a 1 TiB image reports progress (slice by slice) and
        ends at 100 % of 1 TiB."""
        d = self.dir
        qemu_img('create', '-q', '-f', 'qcow2', 'huge.qcow2', '1T', cwd=d)
        qemu_io('huge.qcow2', 'write -P 7 0 1M', 'write -P 8 700G 1M', 'write -z 900G 64k',
                cwd=d)
        r = self.rechain('map', '--progress=json', '--output=json', 'huge.qcow2', expect=0)
        objs = self.json_lines(r.err, r)
        self.assertEqual(objs[-1]['bytes-total'], TiB)
        data = [e for e in r.json() if e['data']]
        self.assertEqual([(e['start'], e['length']) for e in data],
                         [(0, MiB), (700 << 30, MiB)], r.out)
        r = self.rechain('map', '-p', 'huge.qcow2', expect=0)
        self.assertRegex(r.err.splitlines()[-1], r'^rechain map: 100\.0% of 1(\.0)?\sTiB',
                         r.describe())

    # -- option errors -------------------------------------------------------

    def test_option_errors(self):
        cases = [
            ['rebase', '-p', '-q', '-b', '', 'top.qcow2'],
            ['rebase', '--progress=json', '-q', '-b', '', 'top.qcow2'],
            ['rebase', '--progress=loud', '-b', '', 'top.qcow2'],
            ['map', '--progress=', 'top.qcow2'],
            ['map', '--progress-fd=99', 'top.qcow2'],
            ['map', '--progress-fd=x', 'top.qcow2'],
            ['info', '-p', 'top.qcow2'],
        ]
        before = rt.sha256(self.path('top.qcow2'))
        for args in cases:
            with self.subTest(args=args):
                r = self.rechain(*args, expect=rt.EXIT_USAGE)
                self.assertIn('rechain: ', r.err, r.describe())
                self.assertEqual(r.out, '', r.describe())
        self.assertEqual(before, rt.sha256(self.path('top.qcow2')))
        # -q with progress on another descriptor is fine
        r = subprocess.run(['sh', '-c', '"$0" rebase -q --progress-fd=3 -b "" top.qcow2 3>p.json',
                            rt.RECHAIN], cwd=self.dir, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b'', b''))
        with open(self.path('p.json')) as f:
            self.json_lines(f.read(), images={'top.qcow2': 'rebased'})

    def test_quiet_prints_nothing(self):
        r = self.rechain('rebase', '-q', '-b', '', 'top.qcow2', expect=0)
        self.assertEqual((r.out, r.err), ('', ''), r.describe())

    def assert_backing_removed(self):
        info = rt.qemu_info('top.qcow2', cwd=self.dir)
        self.assertNotIn('backing-filename', info)


if __name__ == '__main__':
    main()
