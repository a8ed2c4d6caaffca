#!/usr/bin/python3
"""The typed model of `rechain info`, through GObject introspection:
Rechain.Image.get_info() gives a Rechain.ImageInfo whose properties equal
what `qemu-img info --output=json` says of the same image (qemu-img's keys,
backing-format for its backing-filename-format), snapshots and bitmaps
included; ImageInfo.to_json() is rechain's JSON; a rebase's per-image
statistics are Rechain.RebaseImageStats objects equal to the JSON report."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import gi
gi.require_version('Rechain', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import Gio, Rechain  # noqa: E402


# Under AddressSanitizer the runtime is preloaded into this interpreter
# (it loads the instrumented library); QEMU's tools must not inherit it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}

# qemu-img's JSON key -> the property of Rechain.ImageInfo
TOP_KEYS = {
    'filename': 'filename',
    'format': 'format',
    'virtual-size': 'virtual-size',
    'actual-size': 'actual-size',
    'cluster-size': 'cluster-size',
    'backing-filename': 'backing-filename',
    'full-backing-filename': 'full-backing-filename',
    'backing-filename-format': 'backing-format',
    'dirty-flag': 'dirty-flag',
    'encrypted': 'encrypted',
}
QCOW2_KEYS = ['compat', 'compression-type', 'lazy-refcounts', 'refcount-bits', 'corrupt',
              'extended-l2', 'data-file', 'data-file-raw']
SNAPSHOT_KEYS = ['name', 'id', 'vm-state-size', 'date-sec', 'date-nsec', 'vm-clock-sec',
                 'vm-clock-nsec', 'icount']
BITMAP_KEYS = ['name', 'granularity', 'flags']
# what a key qemu-img leaves out reads as
ABSENT = {str: None, int: 0, bool: False}


def sh(cmd, cwd):
    r = subprocess.run(cmd, shell=True, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    if r.returncode != 0:
        raise AssertionError('%s: %s' % (cmd, r.stderr))
    return r.stdout


def items(model):
    """The elements of a Gio.ListModel, through the interface itself."""
    return [model.get_item(i) for i in range(model.get_n_items())]


class ImageInfoGiTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='rechain-info-gi-')
        sh("qemu-img create -q -f qcow2 base.qcow2 64M && "
           "qemu-io -f qcow2 -c 'write -P 1 0 2M' base.qcow2 >/dev/null && "
           "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
           "qemu-io -f qcow2 -c 'write -P 2 1M 64k' top.qcow2 >/dev/null && "
           "qemu-img snapshot -c first top.qcow2 && "
           "qemu-io -f qcow2 -c 'write -P 3 0 64k' top.qcow2 >/dev/null && "
           "qemu-img snapshot -c second top.qcow2 && "
           "qemu-img bitmap --add top.qcow2 tracking && "
           "qemu-img bitmap --add -g 131072 --disable top.qcow2 frozen && "
           "qemu-img create -q -f qcow2 -o data_file=data.raw,data_file_raw=on ext.qcow2 32M && "
           "qemu-io -f qcow2 -c 'write -P 4 0 1M' ext.qcow2 >/dev/null && "
           "qemu-img create -q -f qcow2 -o compat=0.10 old.qcow2 16M && "
           "qemu-img create -q -f qcow2 -o compression_type=zstd,extended_l2=on,"
           "cluster_size=128k,refcount_bits=4,lazy_refcounts=on features.qcow2 16M && "
           "qemu-img create -q -f raw plain.raw 8M", self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def qemu_info(self, name):
        return json.loads(sh('qemu-img info -U --output=json ' + name, self.dir))

    def info(self, name):
        image = Rechain.Image.open(self.path(name), None, 0, None)
        return image.get_info()

    def assert_like_qemu(self, name):
        q = self.qemu_info(self.path(name))
        info = self.info(name)
        for key, prop in TOP_KEYS.items():
            value = info.get_property(prop)
            self.assertEqual(value, q.get(key, ABSENT[type(value)] if value is not None else None),
                             '%s: %s' % (name, key))
        data = q.get('format-specific', {}).get('data', {})
        for key in QCOW2_KEYS:
            value = info.get_property(key)
            expected = data.get(key, None if isinstance(value, str) or value is None
                                else ABSENT[type(value)])
            self.assertEqual(value, expected, '%s: %s' % (name, key))
        self.assertEqual(info.props.has_data_file, 'data-file-raw' in data, name)

        snapshots = items(info.props.snapshots)
        self.assertEqual(len(snapshots), len(q.get('snapshots', [])), name)
        for s, qs in zip(snapshots, q.get('snapshots', [])):
            self.assertIsInstance(s, Rechain.SnapshotInfo)
            for key in SNAPSHOT_KEYS:
                self.assertEqual(s.get_property(key), qs.get(key, -1), '%s: snapshot %s' % (name, key))

        bitmaps = items(info.props.bitmaps)
        self.assertEqual(len(bitmaps), len(data.get('bitmaps', [])), name)
        for b, qb in zip(bitmaps, data.get('bitmaps', [])):
            self.assertIsInstance(b, Rechain.BitmapInfo)
            for key in BITMAP_KEYS:
                self.assertEqual(b.get_property(key), qb[key], '%s: bitmap %s' % (name, key))

        # the JSON of the typed object is qemu-img's
        self.assertEqual(json.loads(info.to_json()), q, name)
        return info

    def test_snapshots_bitmaps_backing(self):
        info = self.assert_like_qemu('top.qcow2')
        # what the images were made with, not only what qemu-img says
        self.assertEqual([s.props.name for s in items(info.props.snapshots)], ['first', 'second'])
        self.assertEqual([s.props.id for s in items(info.props.snapshots)], ['1', '2'])
        self.assertEqual([(b.props.name, b.props.granularity, b.props.flags)
                          for b in items(info.props.bitmaps)],
                         [('tracking', 65536, ['auto']), ('frozen', 131072, [])])
        self.assertEqual(info.props.backing_filename, 'base.qcow2')
        self.assertEqual(info.props.full_backing_filename, self.path('base.qcow2'))
        self.assertEqual(info.props.backing_format, 'qcow2')
        self.assertEqual(info.get_virtual_size(), 64 << 20)
        self.assertEqual(info.get_cluster_size(), 65536)
        self.assertEqual(info.get_snapshots().get_n_items(), 2)
        self.assertEqual(info.get_bitmaps().get_item(1).get_name(), 'frozen')
        self.assertIsInstance(info.props.snapshots, Gio.ListModel)

    def test_data_file(self):
        info = self.assert_like_qemu('ext.qcow2')
        self.assertTrue(info.props.has_data_file)
        self.assertEqual(info.props.data_file, 'data.raw')
        self.assertTrue(info.props.data_file_raw)

    def test_features_and_versions(self):
        info = self.assert_like_qemu('features.qcow2')
        self.assertEqual((info.props.compression_type, info.props.extended_l2,
                          info.props.refcount_bits, info.props.lazy_refcounts,
                          info.props.cluster_size),
                         ('zstd', True, 4, True, 131072))
        info = self.assert_like_qemu('old.qcow2')
        self.assertEqual(info.props.compat, '0.10')
        info = self.assert_like_qemu('plain.raw')
        self.assertIsNone(info.props.compat)
        self.assertEqual(info.props.format, 'raw')
        self.assert_like_qemu('base.qcow2')

    def test_backing_chain(self):
        image = Rechain.Image.open(self.path('top.qcow2'), None, 0, None)
        chain = json.loads(image.get_info_json(True))
        infos = [image.get_info(), image.get_backing_image().get_info()]
        self.assertEqual(chain, [json.loads(i.to_json()) for i in infos])
        self.assertEqual(json.loads(image.get_info_json(False)), chain[0])

    def test_rebase_image_stats(self):
        job = Rechain.RebaseJob(image=self.path('top.qcow2'), backing_file='',
                                mode=Rechain.RebaseMode.SAFE)
        self.assertTrue(job.run_sync(None))
        stats = job.get_stats()
        report = json.loads(stats.to_json())
        images = stats.get_images()
        self.assertEqual(len(images), len(report['images']))
        self.assertGreater(images[0].props.bytes_written, 0)
        self.assertEqual(images[0].props.bytes_written, report['images'][0]['bytes-written'])
        for image, entry in zip(images, report['images']):
            self.assertIsInstance(image, Rechain.RebaseImageStats)
            self.assertIsNone(image.props.error)
            for key, value in entry.items():
                self.assertEqual(image.get_property(key), value, key)
        # the index getters of 0.1 still agree, and say they are deprecated
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(stats.get_image_bytes_written(0), images[0].get_bytes_written())


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tool'))
    from rechaintest import run_tap
    run_tap()
