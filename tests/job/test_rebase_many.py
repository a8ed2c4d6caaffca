#!/usr/bin/python3
# job-rebase-many: many linked clones in one safe rebase, in batches under
# the open-file limit, the templates compared once; judged by qemu-img
# compare/check/info. --progress=json gives one line per clone as it ends
# (rebased, planned, or failed with the report's error: another template,
# unreadable when its batch opens it, unwritable), and a run killed half
# way has already told which clones were switched.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import collections
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobtest as jt  # noqa: E402
from jobtest import JobTestCase, rt, MiB, KiB, run  # noqa: E402

SIZE = 4 * MiB
# Hard and soft: rechain raises its soft limit to the hard one, which this
# test must not let it escape.
NOFILE = 64


class RebaseManyTest(JobTestCase):

    def setUp(self):
        super().setUp()
        self.img('base.qcow2', SIZE)
        self.io('base.qcow2', 'write -P 1 0 4M', 'write -z 1M 512k')
        jt.qemu_img('convert', '-O', 'qcow2', 'base.qcow2', 'near.qcow2', cwd=self.dir)
        # differences spread over the guest space, some of them allocated
        # by some clones only: a later batch meets ranges the first did not
        # compare
        self.io('near.qcow2', 'write -P 9 100k 8k', 'write -P 0 2M 4k', 'write -P 1 1M 4k',
                'write -P 8 3M 64k', 'write -P 7 3968k 128k')

    def clones(self, n, prefix='c', base='base.qcow2'):
        """@n clones of @base, each with data of its own; the first third
        all allocate [3M, 3M+64k), where the templates differ. Backing names
        are absolute so that copies elsewhere keep their chain."""
        names = []
        for i in range(n):
            name = '%s%03d.qcow2' % (prefix, i)
            self.img(name, SIZE, backing=self.path(base), bfmt='qcow2')
            cmds = ['write -P %d %dk 4k' % (10 + i % 200, 4 * (i % 1000))]
            if i < n // 3:
                cmds.append('write -P 5 3M 64k')
            self.io(name, *cmds)
            names.append(name)
        return names

    def keep_originals(self, names):
        os.makedirs(self.path('orig'), exist_ok=True)
        for n in names:
            shutil.copy(self.path(n), self.path('orig', n))

    def limited(self, *args, nofile=NOFILE, expect=0, env=None):
        e = None
        if env:
            # run() preloads the fault shim for rechain only, not prlimit
            e = rt.fault_env(dict(os.environ, **env))
        r = run(['prlimit', '--nofile=%d:%d' % (nofile, nofile), rt.RECHAIN, 'rebase'] +
                list(args), cwd=self.dir, timeout=600, env=e)
        if expect is not None:
            self.assert_no_crash(r)
            self.assertEqual(r.rc, expect, r.describe())
        return r

    def stream(self, r):
        """The --progress=json lines of @r (stderr): every line that is
        not an error message is one JSON object; (image lines, byte
        progress lines, the kinds of the lines in order)."""
        images, progress, kinds = [], [], []
        for line in r.err.splitlines():
            if line.startswith('rechain:'):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail('not a JSON line: %r\n%s' % (line, r.describe()))
            if set(obj) == {'error'}:
                continue  # --output=json's error, once the run failed
            if 'image' in obj:
                self.assertEqual(set(obj) - {'error'}, {'image', 'status', 'bytes-written'}, line)
                self.assertEqual('error' in obj, obj['status'] == 'failed', line)
                images.append(obj)
                kinds.append('image')
            else:
                self.assertEqual(set(obj), {'bytes-done', 'bytes-total', 'progress'}, line)
                progress.append(obj)
                kinds.append('progress')
        return images, progress, kinds

    def assert_each_once(self, images, names):
        count = collections.Counter(x['image'] for x in images)
        self.assertEqual(dict(count), {self.path(n): 1 for n in names},
                         'not one line per image')

    def assert_progress_sane(self, progress, complete=True):
        """Never backwards, one total; a run that completed ends at 100 %
        (one that failed stops where it was)."""
        done = [x['bytes-done'] for x in progress]
        self.assertTrue(progress or not complete)
        self.assertEqual(done, sorted(done), 'progress goes backwards')
        self.assertLessEqual(len({x['bytes-total'] for x in progress}), 1, 'total changed')
        if complete:
            self.assertEqual(progress[-1]['bytes-done'], progress[-1]['bytes-total'])

    def judge(self, names, backing=None):
        for n in names:
            c = jt.compare(self.path('orig', n), self.path(n), self.dir)
            self.assertEqual(c.rc, 0, '%s: content changed\n%s' % (n, c.describe()))
            self.assert_check(n, what=n)
            self.assert_backing(n, backing or self.path('near.qcow2'), 'qcow2')

    def test_more_clones_than_open_files(self):
        names = self.clones(150)
        self.keep_originals(names)
        r = self.limited('--output=json', '-p', '--progress=json', '-b', self.path('near.qcow2'),
                         '-F', 'qcow2', *names)
        rep = json.loads(r.out)
        self.assertEqual(len(rep['images']), 150)
        for e in rep['images']:
            self.assertEqual(e['result'], 'rebased', json.dumps(e))
        self.judge(names)
        # progress: one stream over all batches, never backwards, ends at
        # 100 %; and one line per clone
        images, progress, kinds = self.stream(r)
        self.assert_progress_sane(progress)
        self.assert_each_once(images, names)
        for x in images:
            self.assertEqual(x['status'], 'rebased', x)
        # all clones told before the last byte line (100 %) closes the stream
        self.assertEqual(kinds[-1], 'progress', r.describe())

    def fault_point(self, names, victim):
        """The first read of @victim after the survey of every image
        (rechain opens each image once alone before the batches): learned
        from a dry run's I/O log, the reads of @victim before the first
        read of the image after it. Returns (that read's number, the dry
        run)."""
        log = self.path('fault.log')
        r = self.limited('--dry-run', '--output=json', '--progress=json', '-b',
                         self.path('near.qcow2'), '-F', 'qcow2', *names, expect=2,
                         env={'RECHAIN_FAULT_LOG': log})
        after = names[names.index(victim) + 1]
        reads = 0
        with open(log) as f:
            for line in f:
                if line.startswith('read %s ' % after):
                    break
                if line.startswith('read %s ' % victim):
                    reads += 1
        self.assertGreater(reads, 0, 'no read of %s in the log' % victim)
        os.unlink(log)
        return reads + 1, r

    def test_progress_json_one_line_per_clone(self):
        names = self.clones(90)
        jt.qemu_img('convert', '-O', 'qcow2', 'base.qcow2', 'other.qcow2', cwd=self.dir)
        odd = self.clones(1, prefix='odd', base='other.qcow2')[0]
        names = names[:50] + [odd] + names[50:]
        unreadable, unwritable = 'c079.qcow2', 'c069.qcow2'
        self.keep_originals(names)
        failing = {odd: 'backing chain differs', unreadable: unreadable,
                   unwritable: unwritable}

        # the dry run: every clone planned but the odd one
        n, r = self.fault_point(names, unreadable)
        images, progress, _ = self.stream(r)
        self.assert_each_once(images, names)
        self.assert_progress_sane(progress, complete=False)
        for x in images:
            want = 'failed' if x['image'] == self.path(odd) else 'planned'
            self.assertEqual(x['status'], want, x)
        self.judge([x for x in names if x != odd], backing=self.path('base.qcow2'))

        # unreadable fails when its batch opens it, unwritable at its first
        # write; the run goes on (exit status of the first failure: odd's)
        r = self.limited('--output=json', '--progress=json', '-b', self.path('near.qcow2'),
                         '-F', 'qcow2', *names, expect=2,
                         env={'RECHAIN_FAULT': 'read:%d:EIO:%s,write:1+:EIO:%s'
                              % (n, unreadable, unwritable)})
        images, progress, _ = self.stream(r)
        self.assert_each_once(images, names)
        self.assert_progress_sane(progress, complete=False)
        report = {self.path(e['image']): e for e in json.loads(r.out)['images']}
        for x in images:
            name = os.path.basename(x['image'])
            e = report[x['image']]
            # the same outcome as the final report, the same message
            self.assertEqual(x['status'], e['result'], x)
            self.assertEqual(x.get('error'), e.get('error'), x)
            self.assertEqual(x['bytes-written'], e['bytes-written'], x)
            if name in failing:
                self.assertEqual(x['status'], 'failed', x)
                self.assertIn(failing[name], x['error'], x)
            else:
                self.assertEqual(x['status'], 'rebased', x)
            if x['status'] == 'rebased':
                # every clone has differences of the templates to copy
                self.assertGreater(x['bytes-written'], 0, x)
        ok = [x for x in names if x not in failing]
        self.judge(ok)
        for name in failing:
            c = jt.compare(self.path('orig', name), self.path(name), self.dir)
            self.assertEqual(c.rc, 0, c.describe())
        self.assert_backing(odd, self.path('other.qcow2'), 'qcow2')
        for name in (unreadable, unwritable):
            self.assert_backing(name, self.path('base.qcow2'), 'qcow2')

    def test_progress_json_before_the_end(self):
        """Killed at its last clone's first write, a run has already said
        which clones it switched: each of those is switched and whole."""
        names = self.clones(90)
        self.keep_originals(names)
        r = self.limited('--progress=json', '-b', self.path('near.qcow2'), '-F', 'qcow2', *names,
                         expect=None, env={'RECHAIN_FAULT': 'write:1:KILL:%s' % names[-1]})
        self.assertNotEqual(r.rc, 0, r.describe())
        images, progress, _ = self.stream(r)
        self.assertTrue(images, 'no clone reported before the kill\n' + r.describe())
        self.assertLess(len(images), len(names))
        reported = set()
        for x in images:
            self.assertEqual(x['status'], 'rebased', x)
            reported.add(os.path.basename(x['image']))
        self.assertNotIn(names[-1], reported)
        self.judge(sorted(reported))
        for name in names:
            c = jt.compare(self.path('orig', name), self.path(name), self.dir)
            self.assertEqual(c.rc, 0, c.describe())

    def reference_compare(self):
        """bytes-compared of one rebase of one clone that allocates nothing:
        the comparison of the templates over the whole guest space."""
        os.makedirs(self.path('one'))
        self.img(self.path('one', 'e.qcow2'), SIZE, backing=self.path('base.qcow2'),
                 bfmt='qcow2')
        rep, r = self.rebase_json('-b', self.path('near.qcow2'), '-F', 'qcow2',
                                  self.path('one', 'e.qcow2'))
        return rep

    def test_compared_once(self):
        names = self.clones(120)
        self.keep_originals(names)
        ref = self.reference_compare()
        self.assertGreater(ref['bytes-compared'], 0)
        # dry run first: it must say what the real run then does
        r = self.limited('--dry-run', '--output=json', '-b', self.path('near.qcow2'), '-F', 'qcow2',
                         *names)
        dry = json.loads(r.out)
        r = self.limited('--output=json', '-b', self.path('near.qcow2'), '-F', 'qcow2', *names)
        rep = json.loads(r.out)
        # the union of the clones' unallocated ranges is the whole guest
        # space (no range is allocated by every clone): compared once
        self.assertEqual(rep['bytes-compared'], ref['bytes-compared'], r.describe())
        self.assertEqual(rep['bytes-examined'], SIZE, r.describe())
        self.judge(names)
        for key in ('bytes-examined', 'bytes-same-by-metadata', 'bytes-compared',
                    'bytes-differing'):
            self.assertEqual(dry[key], rep[key], key)
        for d, e in zip(dry['images'], rep['images']):
            for key in ('image', 'bytes-examined', 'bytes-written', 'bytes-zeroed',
                        'clusters-allocated', 'metadata-bytes', 'flushes'):
                self.assertEqual(d[key], e[key], '%s %s\n%s\n%s' % (e['image'], key, d, e))

    def test_one_clone_failing_does_not_stop_the_others(self):
        names = self.clones(60)
        # one clone of another template: refused alone, in a later batch
        jt.qemu_img('convert', '-O', 'qcow2', 'base.qcow2', 'other.qcow2', cwd=self.dir)
        odd = self.clones(1, prefix='odd', base='other.qcow2')
        names = names[:45] + odd + names[45:]
        self.keep_originals(names)
        r = self.limited('--output=json', '-b', self.path('near.qcow2'), '-F', 'qcow2', *names,
                         expect=2)
        rep = json.loads(r.out)
        by_name = {e['image']: e for e in rep['images']}
        self.assertEqual(len(by_name), 61)
        self.assertNotEqual(by_name[odd[0]]['result'], 'rebased', r.describe())
        self.assertIn('backing chain differs', r.err)
        ok = [n for n in names if n != odd[0]]
        for n in ok:
            self.assertEqual(by_name[n]['result'], 'rebased', json.dumps(by_name[n]))
        self.judge(ok)
        c = jt.compare(self.path('orig', odd[0]), self.path(odd[0]), self.dir)
        self.assertEqual(c.rc, 0, c.describe())
        self.assert_backing(odd[0], self.path('other.qcow2'), 'qcow2')


if __name__ == '__main__':
    jt.main()
