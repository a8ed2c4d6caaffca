/* test-chain.c: opening chains and reading them, judged by qemu-img.
 *
 * Every fixture is made by qemu-img/qemu-io at test time; the guest-visible
 * content rechain reads must equal `qemu-img convert -O raw` byte for byte.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "chain/chain.h"
#include "qemu-fixture.h"

typedef struct {
  const char *name;
  const char *script; /* shell commands run in a fresh directory, making top.img */
  const char *format; /* format of top.img, NULL to probe */
} ReadCase;

#define QIO "qemu-io -f qcow2 "
static const ReadCase read_cases[] = {
  { "v3-64k",
    "qemu-img create -q -f qcow2 top.img 4M && "
    QIO "-c 'write -P 0x11 0 100k' -c 'write -P 0x22 1M 4k' -c 'write -z 2M 64k' top.img" },
  { "v2-64k",
    "qemu-img create -q -f qcow2 -o compat=0.10 top.img 4M && "
    QIO "-c 'write -P 0x11 3k 70k' -c 'write -z 2M 64k' top.img" },
  { "cluster-512",
    "qemu-img create -q -f qcow2 -o cluster_size=512 top.img 3M && "
    QIO "-c 'write -P 0x33 1000 5000' -c 'write -P 0x34 2M 512' top.img" },
  { "cluster-2M",
    "qemu-img create -q -f qcow2 -o cluster_size=2M top.img 9M && "
    QIO "-c 'write -P 0x35 1000 5000' -c 'write -P 0x36 5M 2M' top.img" },
  { "extended-l2",
    "qemu-img create -q -f qcow2 base.img 4M && "
    QIO "-c 'write -P 0x41 0 4M' base.img && "
    "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k -b base.img -F qcow2 top.img && "
    QIO "-c 'write -P 0x42 6k 2k' -c 'write -z 64k 4k' -c 'write -P 0x43 130k 9k' -c 'discard 1M 64k' top.img" },
  { "compressed-zlib",
    "qemu-img create -q -f qcow2 top.img 2M && "
    QIO "-c 'write -c -P 0x51 0 64k' -c 'write -c -P 0x52 128k 64k' -c 'write -P 0x53 64k 4k' top.img" },
  { "compressed-zstd",
    "qemu-img create -q -f qcow2 -o compression_type=zstd top.img 2M && "
    QIO "-c 'write -c -P 0x61 0 64k' -c 'write -c -P 0x62 192k 64k' top.img" },
  { "compressed-convert-4k",
    "head -c 300000 /dev/urandom > r.raw && cat r.raw r.raw > r2.raw && "
    "qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4k r2.raw top.img" },
  { "refcount-bits-1",
    "qemu-img create -q -f qcow2 -o refcount_bits=1 top.img 1M && "
    QIO "-c 'write -P 0x71 0 200k' top.img" },
  { "raw-base",
    "qemu-img create -q -f raw base.raw 3M && qemu-io -f raw -c 'write -P 0x81 4k 1M' base.raw && "
    "qemu-img create -q -f qcow2 -b base.raw -F raw top.img 4M && "
    QIO "-c 'write -P 0x82 512k 64k' -c 'write -z 0 4k' top.img" },
  { "raw-alone",
    "qemu-img create -q -f raw top.img 3M && qemu-io -f raw -c 'write -P 0x83 100k 33k' top.img",
    "raw" },
  { "shorter-backing",
    "qemu-img create -q -f qcow2 b0.img 8M && " QIO "-c 'write -P 0x91 0 8M' b0.img && "
    "qemu-img create -q -f qcow2 -b b0.img -F qcow2 b1.img 2M && "
    "qemu-img create -q -f qcow2 -b b1.img -F qcow2 top.img 6M && "
    QIO "-c 'write -P 0x92 5M 64k' top.img" },
  { "longer-backing",
    "qemu-img create -q -f qcow2 base.img 8M && " QIO "-c 'write -P 0x93 0 8M' base.img && "
    "qemu-img create -q -f qcow2 -b base.img -F qcow2 top.img 3M && "
    QIO "-c 'write -P 0x94 1M 64k' top.img" },
  { "unaligned-size",
    "qemu-img create -q -f qcow2 base.img 1000000 && " QIO "-c 'write -P 0x95 0 999936' base.img && "
    "qemu-img create -q -f qcow2 -b base.img -F qcow2 top.img 1500000 && "
    QIO "-c 'write -P 0x96 990000 64000' top.img" },
  { "four-levels",
    "qemu-img create -q -f raw l0.raw 4M && qemu-io -f raw -c 'write -P 1 0 4M' l0.raw && "
    "qemu-img create -q -f qcow2 -b l0.raw -F raw l1.img && " QIO "-c 'write -P 2 1M 1M' l1.img && "
    "qemu-img create -q -f qcow2 -o cluster_size=4k -b l1.img -F qcow2 l2.img && "
    QIO "-c 'write -P 3 1536k 4k' -c 'write -z 0 64k' l2.img && "
    "qemu-img create -q -f qcow2 -b l2.img -F qcow2 top.img && " QIO "-c 'discard 1M 64k' -c 'write -P 4 3M 17k' top.img" },
  { "external-data-file",
    "qemu-img create -q -f qcow2 -o data_file=data.raw top.img 2M && "
    QIO "-c 'write -P 0xa1 64k 100k' -c 'write -z 1M 64k' top.img" },
  { "external-data-file-raw",
    "qemu-img create -q -f qcow2 -o data_file=data.raw,data_file_raw=on top.img 2M && "
    QIO "-c 'write -P 0xa2 64k 100k' top.img" },
  { "snapshot-then-write",
    "qemu-img create -q -f qcow2 top.img 2M && " QIO "-c 'write -P 0xb1 0 1M' top.img && "
    "qemu-img snapshot -c s1 top.img && " QIO "-c 'write -P 0xb2 64k 64k' top.img" },
  { "relative-backing-subdirs",
    "mkdir -p a/b c && qemu-img create -q -f qcow2 c/base.img 2M && " QIO "-c 'write -P 0xc1 0 2M' c/base.img && "
    "qemu-img create -q -f qcow2 -b ../../c/base.img -F qcow2 a/b/mid.img && "
    "qemu-img create -q -f qcow2 -b a/b/mid.img -F qcow2 top.img && "
    QIO "-c 'write -P 0xc2 64k 4k' a/b/mid.img" },
};

static void
test_read_case (gconstpointer data)
{
  const ReadCase *c = data;
  g_autofree char *dir = NULL;
  g_autofree char *top = NULL;
  g_autofree char *ref = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *actual = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  gsize expected_len;
  guint64 size;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  g_free (qemu_fixture_run (dir, "%s", c->script));
  g_free (qemu_fixture_run (dir, "qemu-img convert -O raw %s%s top.img ref.raw",
                            c->format ? "-f " : "", c->format ? c->format : ""));

  top = g_build_filename (dir, "top.img", NULL);
  chain = rechain_chain_open (top, c->format, RECHAIN_CHAIN_OPEN_DEFAULT,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  g_assert_nonnull (chain);
  g_assert_null (rechain_chain_get_warnings (chain)[0]);

  ref = g_build_filename (dir, "ref.raw", NULL);
  g_assert_true (g_file_get_contents (ref, &expected, &expected_len, NULL));
  size = rechain_layer_get_virtual_size (rechain_chain_get_top (chain));
  g_assert_cmpuint (size, ==, expected_len);

  /* Whole image in one read, then in odd-sized pieces that straddle
   * cluster, subcluster and L2-table boundaries. */
  actual = g_malloc (size);
  g_assert_true (rechain_chain_read (chain, 0, 0, actual, size, &error));
  g_assert_no_error (error);
  g_assert_true (memcmp (actual, expected, size) == 0);

  memset (actual, 0xee, size);
  for (guint64 pos = 0; pos < size; pos += 12345)
    {
      gsize len = (gsize) MIN (12345, size - pos);
      g_assert_true (rechain_chain_read (chain, 0, pos, actual + pos, len, &error));
      g_assert_no_error (error);
    }
  g_assert_true (memcmp (actual, expected, size) == 0);

  g_clear_pointer (&chain, rechain_chain_free);
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

/* The map of a 1 TiB image with a little data is a handful of extents,
 * built without visiting every cluster. */
static void
test_sparse_map (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *top = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  g_autoptr(GArray) extents = rechain_extent_list_new ();
  const RechainExtent *e;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  g_free (qemu_fixture_run (dir,
    "qemu-img create -q -f qcow2 base.img 1T && " QIO "-c 'write -P 1 512G 1M' base.img && "
    "qemu-img create -q -f qcow2 -b base.img -F qcow2 top.img && " QIO "-c 'write -P 2 1023G 64k' top.img"));
  top = g_build_filename (dir, "top.img", NULL);
  chain = rechain_chain_open (top, NULL, 0, RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  g_assert_true (rechain_chain_map (chain, 0, 0, G_GUINT64_CONSTANT (1) << 40, extents, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (extents->len, ==, 5);
  e = &g_array_index (extents, RechainExtent, 1);
  g_assert_cmpuint (e->offset, ==, G_GUINT64_CONSTANT (512) << 30);
  g_assert_cmpuint (e->length, ==, 1 << 20);
  g_assert_cmpint (e->kind, ==, RECHAIN_EXTENT_DATA);
  g_assert_cmpint (e->depth, ==, 1);
  e = &g_array_index (extents, RechainExtent, 3);
  g_assert_cmpint (e->kind, ==, RECHAIN_EXTENT_DATA);
  g_assert_cmpint (e->depth, ==, 0);
  e = &g_array_index (extents, RechainExtent, 4);
  g_assert_cmpint (e->kind, ==, RECHAIN_EXTENT_UNALLOCATED);
  g_assert_cmpint (e->depth, ==, 1);
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

static RechainChain *
open_top (const char *dir, GError **error)
{
  g_autofree char *top = g_build_filename (dir, "top.img", NULL);
  return rechain_chain_open (top, NULL, 0, RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, error);
}

static void
test_backing_loop (void)
{
  g_autofree char *dir = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  g_free (qemu_fixture_run (dir,
    "qemu-img create -q -f qcow2 a.img 1M && qemu-img create -q -f qcow2 -b a.img -F qcow2 top.img && "
    "qemu-img rebase -u -b top.img -F qcow2 a.img"));
  chain = open_top (dir, &error);
  g_assert_null (chain);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "loops"));
  g_assert_nonnull (strstr (error->message, "a.img"));

  /* An image naming itself */
  g_clear_error (&error);
  g_free (qemu_fixture_run (dir, "qemu-img rebase -u -b top.img -F qcow2 top.img"));
  chain = open_top (dir, &error);
  g_assert_null (chain);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

static void
test_backing_missing (void)
{
  g_autofree char *dir = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  g_free (qemu_fixture_run (dir, "qemu-img create -q -f qcow2 -u -b gone.img -F qcow2 top.img 1M"));
  chain = open_top (dir, &error);
  g_assert_null (chain);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_BACKING_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "gone.img"));
  g_assert_nonnull (strstr (error->message, "top.img"));
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

static void
test_backing_pseudo (void)
{
  g_autofree char *dir = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  g_free (qemu_fixture_run (dir, "qemu-img create -q -f qcow2 -u -b 'nbd:localhost:10809' -F raw top.img 1M"));
  chain = open_top (dir, &error);
  g_assert_null (chain);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "nbd"));
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

/* A header without a backing format: opened by probing, with a warning. */
static void
test_backing_probed (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *top = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  const char * const *warnings;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  /* qemu-img 7.2 refuses to write such a header; erase the backing
   * format extension's type so that it becomes an unknown extension. */
  g_free (qemu_fixture_run (dir,
    "qemu-img create -q -f raw base.raw 1M && qemu-io -f raw -c 'write -P 7 0 1M' base.raw && "
    "qemu-img create -q -f qcow2 -b base.raw -F raw top.img && "
    "/usr/bin/python3 -c \"import sys; d=bytearray(open('top.img','rb').read(65536)); "
    "i=d.find(bytes.fromhex('e2792aca')); assert i > 0; d[i:i+4]=bytes.fromhex('7e570000'); "
    "f=open('top.img','r+b'); f.write(d)\""));
  top = g_build_filename (dir, "top.img", NULL);
  chain = rechain_chain_open (top, NULL, 0, RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rechain_chain_get_depth (chain), ==, 2);
  g_assert_cmpint (rechain_layer_get_format (rechain_chain_get_layer (chain, 1)), ==, RECHAIN_FORMAT_RAW);
  warnings = rechain_chain_get_warnings (chain);
  g_assert_nonnull (warnings[0]);
  g_assert_nonnull (strstr (warnings[0], "probed as raw"));
  g_assert_null (warnings[1]);
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

static void
test_depth_limit (void)
{
  g_autofree char *dir = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;

  if (!qemu_fixture_require_qemu ())
    return;
  dir = qemu_fixture_tmpdir_new ();
  /* 64 layers open; 65 are one more than the limit. Made with unsafe creates, which
   * do not open the backing file, so this stays fast. */
  g_free (qemu_fixture_run (dir,
    "qemu-img create -q -f qcow2 l0.img 1M && for i in $(seq 1 62); do "
    "qemu-img create -q -f qcow2 -u -b l$((i-1)).img -F qcow2 l$i.img 1M || exit 1; done && "
    "qemu-img create -q -f qcow2 -u -b l62.img -F qcow2 top.img 1M"));
  chain = open_top (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rechain_chain_get_depth (chain), ==, 64);
  g_clear_pointer (&chain, rechain_chain_free);

  g_free (qemu_fixture_run (dir, "mv top.img l63.img && qemu-img create -q -f qcow2 -u -b l63.img -F qcow2 top.img 1M"));
  chain = open_top (dir, &error);
  g_assert_null (chain);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "deeper than 64"));
  qemu_fixture_tmpdir_free (g_steal_pointer (&dir));
}

static void
test_path_resolve (void)
{
  struct { const char *from, *name, *expected; } ok[] = {
    { "/a/b/top.img", "base.img", "/a/b/base.img" },
    { "/a/b/top.img", "../base.img", "/a/b/../base.img" },
    { "/a/b/top.img", "/abs/base.img", "/abs/base.img" },
    { "top.img", "base.img", "base.img" },
    { "d/top.img", "base.img", "d/base.img" },
    { "/a/top.img", "file:base.img", "/a/base.img" },
    { "/a/top.img", "dir/with:colon", "/a/dir/with:colon" },
  };
  const char *pseudo[] = { "json:{\"driver\":\"raw\"}", "nbd:host:10809", "http://x/y", "rbd:pool/img" };

  for (gsize i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *path = rechain_path_resolve (ok[i].from, ok[i].name, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (path, ==, ok[i].expected);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (pseudo); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *path = rechain_path_resolve ("/a/top.img", pseudo[i], &error);
      g_assert_null (path);
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (read_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/chain/read/%s", read_cases[i].name);
      g_test_add_data_func (path, &read_cases[i], test_read_case);
    }
  g_test_add_func ("/chain/map/sparse-1T", test_sparse_map);
  g_test_add_func ("/chain/open/loop", test_backing_loop);
  g_test_add_func ("/chain/open/missing", test_backing_missing);
  g_test_add_func ("/chain/open/pseudo-filename", test_backing_pseudo);
  g_test_add_func ("/chain/open/probed-format", test_backing_probed);
  g_test_add_func ("/chain/open/depth-limit", test_depth_limit);
  g_test_add_func ("/chain/path/resolve", test_path_resolve);
  return g_test_run ();
}
