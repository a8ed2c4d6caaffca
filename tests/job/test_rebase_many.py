#!/usr/bin/python3
# job-rebase-many: many linked clones in one safe rebase, in batches under
# the open-file limit, the templates compared once; judged by qemu-img
# compare/check/info.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

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

    def limited(self, *args, nofile=NOFILE, expect=0):
        r = run(['prlimit', '--nofile=%d:%d' % (nofile, nofile), rt.RECHAIN, 'rebase'] +
                list(args), cwd=self.dir, timeout=600)
        self.assert_no_crash(r)
        self.assertEqual(r.rc, expect, r.describe())
        return r

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
        # progress: one stream over all batches, never backwards, ends at 100 %
        lines = [json.loads(x) for x in r.err.splitlines() if x.startswith('{')]
        self.assertTrue(lines, r.describe())
        done = [x['bytes-done'] for x in lines]
        self.assertEqual(done, sorted(done), 'progress goes backwards')
        self.assertEqual(len({x['bytes-total'] for x in lines}), 1, 'total changed')
        self.assertEqual(lines[-1]['bytes-done'], lines[-1]['bytes-total'])

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
