/* test-qemu.c: the parser against images made by the real qemu-img, with
 * `qemu-img info --output=json` as the oracle.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "format/qcow2.h"

static char *qemu_img;
static char *qemu_io;
static char *tmpdir;

/* ---- helpers ---- */

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

/* Runs a program in tmpdir, up to @attempts times while it fails; aborts the
 * test with its output when the last attempt fails too. */
static char *
run_attempts (const char *const *argv, guint attempts)
{
  g_autofree char *cmd = g_strjoinv (" ", (char **) argv);

  for (guint i = 1;; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *out = NULL, *err = NULL;
      int status;

      if (!g_spawn_sync (tmpdir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                         &out, &err, &status, &error))
        g_error ("cannot run %s: %s", cmd, error->message);
      if (g_spawn_check_wait_status (status, &error))
        return g_steal_pointer (&out);
      if (i >= attempts)
        g_error ("%s failed: %s\n%s%s", cmd, error->message, out, err);
    }
}

/* Runs a program in tmpdir; aborts the test with its output on failure. */
static char *
run (const char *const *argv)
{
  return run_attempts (argv, 1);
}

static void
qemu_img_create_attempts (const char *name, const char *options, const char *size,
                          const char *const *extra, guint attempts)
{
  GPtrArray *argv = g_ptr_array_new ();

  g_ptr_array_add (argv, qemu_img);
  g_ptr_array_add (argv, (char *) "create");
  g_ptr_array_add (argv, (char *) "-q");
  g_ptr_array_add (argv, (char *) "-f");
  g_ptr_array_add (argv, (char *) "qcow2");
  for (; extra != NULL && *extra != NULL; extra++)
    g_ptr_array_add (argv, (char *) *extra);
  if (options != NULL && *options != '\0')
    {
      g_ptr_array_add (argv, (char *) "-o");
      g_ptr_array_add (argv, (char *) options);
    }
  g_ptr_array_add (argv, (char *) name);
  g_ptr_array_add (argv, (char *) size);
  g_ptr_array_add (argv, NULL);
  g_free (run_attempts ((const char *const *) argv->pdata, attempts));
  g_ptr_array_free (argv, TRUE);
}

static void
qemu_img_create (const char *name, const char *options, const char *size,
                 const char *const *extra)
{
  qemu_img_create_attempts (name, options, size, extra, 1);
}

static JsonNode *
qemu_info (const char *name)
{
  const char *argv[] = { qemu_img, "info", "-U", "--output=json", name, NULL };
  g_autofree char *out = run (argv);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  if (!json_parser_load_from_data (parser, out, -1, &error))
    g_error ("qemu-img info output is not JSON: %s\n%s", error->message, out);
  return json_node_copy (json_parser_get_root (parser));
}

static JsonObject *
format_data (JsonNode *info)
{
  JsonObject *fs = json_object_get_object_member (json_node_get_object (info), "format-specific");

  return json_object_get_object_member (fs, "data");
}

typedef struct {
  guint8 *data;
  gsize len;
} Bytes;

static void
bytes_free (Bytes *b)
{
  g_free (b->data);
  g_free (b);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Bytes, bytes_free)

static Bytes *
read_file (const char *name)
{
  g_autofree char *path = tmp_path (name);
  g_autoptr (GError) error = NULL;
  Bytes *b = g_new0 (Bytes, 1);

  if (!g_file_get_contents (path, (char **) &b->data, &b->len, &error))
    g_error ("%s", error->message);
  return b;
}

static RechainQcow2Header *
parse (const Bytes *b, GError **error)
{
  return rechain_qcow2_header_parse (b->data, b->len, b->len, error);
}

static guint64
be64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, 8);
  return GUINT64_FROM_BE (v);
}

/* Checks the parsed header against qemu-img info. */
static void
check_against_info (const RechainQcow2Header *h, JsonNode *info)
{
  JsonObject *o = json_node_get_object (info);
  JsonObject *d = format_data (info);
  const char *compat = json_object_get_string_member (d, "compat");

  g_assert_cmpuint (h->size, ==, (guint64) json_object_get_int_member (o, "virtual-size"));
  g_assert_cmpuint (rechain_qcow2_cluster_size (h), ==, (guint64) json_object_get_int_member (o, "cluster-size"));
  g_assert_cmpuint (1u << h->refcount_order, ==, (guint) json_object_get_int_member (d, "refcount-bits"));
  g_assert_cmpuint (h->version, ==, g_str_equal (compat, "0.10") ? 2 : 3);
  if (h->version == 3)
    {
      g_assert_cmpstr (compat, ==, "1.1");
      g_assert_cmpint (rechain_qcow2_has_extl2 (h), ==,
                       json_object_get_boolean_member (d, "extended-l2"));
      g_assert_cmpstr (h->compression_type == RECHAIN_QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib", ==,
                       json_object_get_string_member (d, "compression-type"));
      g_assert_cmpint ((h->compatible_features & RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS) != 0, ==,
                       json_object_get_boolean_member (d, "lazy-refcounts"));
      g_assert_cmpint ((h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_CORRUPT) != 0, ==,
                       json_object_get_boolean_member (d, "corrupt"));
      g_assert_cmpstr (h->data_file, ==, json_object_get_string_member_with_default (d, "data-file", NULL));
      if (json_object_has_member (d, "data-file-raw"))
        g_assert_cmpint ((h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0, ==,
                         json_object_get_boolean_member (d, "data-file-raw"));
    }
  g_assert_cmpstr (h->backing_file, ==, json_object_get_string_member_with_default (o, "backing-filename", NULL));
  g_assert_cmpstr (h->backing_format, ==, json_object_get_string_member_with_default (o, "backing-filename-format", NULL));
  g_assert_cmpint ((h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DIRTY) != 0, ==,
                   json_object_get_boolean_member (o, "dirty-flag"));
}

static RechainQcow2Header *
create_and_check (const char *name, const char *options, const char *size,
                  const char *const *extra)
{
  g_autoptr (Bytes) b = NULL;
  g_autoptr (JsonNode) info = NULL;
  g_autoptr (GError) error = NULL;
  RechainQcow2Header *h;

  qemu_img_create (name, options, size, extra);
  b = read_file (name);
  h = parse (b, &error);
  if (h == NULL)
    g_error ("%s (-o %s): %s", name, options, error->message);
  info = qemu_info (name);
  check_against_info (h, info);
  return h;
}

/* Refcount of the host cluster at @offset, through the real tables. */
static guint64
refcount_of (const Bytes *b, const RechainQcow2Header *h, guint64 offset)
{
  guint64 cs = rechain_qcow2_cluster_size (h);
  guint64 entries = cs * 8 >> h->refcount_order;
  guint64 cluster = offset / cs;
  guint64 ti = cluster / entries, bi = cluster % entries;
  guint64 block;

  g_assert_cmpuint (ti, <, h->refcount_table_clusters * cs / 8);
  block = be64 (b->data + h->refcount_table_offset + ti * 8) & ~(cs - 1);
  if (block == 0)
    return 0;
  g_assert_cmpuint (block + cs, <=, b->len);
  return rechain_qcow2_refblock_get (b->data + block, h->refcount_order, bi);
}

/* ---- tests ---- */

typedef struct {
  const char *name;
  const char *options;
  const char *size;
} CreateCase;

static const CreateCase create_cases[] = {
  { "v2", "compat=0.10", "64M" },
  { "v2-512", "compat=0.10,cluster_size=512", "64M" },
  { "v3", "compat=1.1", "1G" },
  { "v3-empty", "", "0" },
  { "v3-odd-size", "", "1000000001" },
  { "cs512", "cluster_size=512", "64M" },
  { "cs1k", "cluster_size=1k", "64M" },
  { "cs4k", "cluster_size=4k", "64M" },
  { "cs64k", "cluster_size=64k", "64M" },
  { "cs256k", "cluster_size=256k", "64M" },
  { "cs2m", "cluster_size=2M", "64M" },
  { "extl2-16k", "extended_l2=on,cluster_size=16k", "1G" },
  { "extl2-64k", "extended_l2=on", "1G" },
  { "extl2-2m", "extended_l2=on,cluster_size=2M", "100G" },
  { "zstd", "compression_type=zstd", "64M" },
  { "rc1", "refcount_bits=1", "64M" },
  { "rc2", "refcount_bits=2", "64M" },
  { "rc4", "refcount_bits=4", "64M" },
  { "rc8", "refcount_bits=8", "64M" },
  { "rc16", "refcount_bits=16", "64M" },
  { "rc32", "refcount_bits=32", "64M" },
  { "rc64", "refcount_bits=64", "64M" },
  { "rc64-512", "refcount_bits=64,cluster_size=512", "64M" },
  { "lazy", "lazy_refcounts=on", "64M" },
  { "data-file", "data_file=data.raw", "64M" },
  { "data-file-raw", "data_file=data2.raw,data_file_raw=on", "64M" },
  { "big", "", "16T" },
  { "prealloc-meta", "preallocation=metadata", "64M" },
};

static void
test_create (gconstpointer data)
{
  const CreateCase *c = data;
  g_autofree char *name = g_strconcat (c->name, ".qcow2", NULL);
  g_autoptr (RechainQcow2Header) h = create_and_check (name, c->options, c->size, NULL);
  g_autoptr (Bytes) b = read_file (name);
  RechainQcow2Geometry g;
  guint64 cs = rechain_qcow2_cluster_size (h);

  rechain_qcow2_geometry_init (&g, h);
  /* the header cluster, the refcount table and the L1 table are in use */
  g_assert_cmpuint (refcount_of (b, h, 0), ==, 1);
  g_assert_cmpuint (refcount_of (b, h, h->refcount_table_offset), ==, 1);
  if (h->l1_size > 0)
    g_assert_cmpuint (refcount_of (b, h, h->l1_table_offset), ==, 1);
  /* an unused cluster far past the end has refcount 0 (if covered) */
  if (b->len + cs < h->refcount_table_clusters * cs / 8 * (cs * 8 >> h->refcount_order) * cs)
    {
      guint64 beyond = (b->len + cs) & ~(cs - 1);
      guint64 ti = beyond / cs / (cs * 8 >> h->refcount_order);
      guint64 block = be64 (b->data + h->refcount_table_offset + ti * 8) & ~(cs - 1);

      if (block != 0)
        g_assert_cmpuint (refcount_of (b, h, beyond), ==, 0);
    }

  /* every L1 entry and every L2 entry decodes */
  for (guint32 i = 0; i < h->l1_size; i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 l2;

      g_assert_true (rechain_qcow2_l1_entry_decode (&g, be64 (b->data + h->l1_table_offset + i * 8), &l2, &error));
      g_assert_no_error (error);
      if (l2 == 0)
        continue;
      g_assert_cmpuint (l2 + cs, <=, b->len);
      for (guint64 j = 0; j < g.l2_entries; j++)
        {
          RechainQcow2L2Entry e;
          const guint8 *p = b->data + l2 + j * (g.extended_l2 ? 16 : 8);

          if (!rechain_qcow2_l2_entry_decode (&g, be64 (p), g.extended_l2 ? be64 (p + 8) : 0, &e, &error))
            g_error ("L2 entry %" G_GUINT64_FORMAT ": %s", j, error->message);
        }
    }

  /* serialising the unchanged header reproduces the file's first cluster */
  {
    g_autoptr (GError) error = NULL;
    g_autofree guint8 *out = rechain_qcow2_header_serialize (h, &error);

    g_assert_no_error (error);
    g_assert_cmpmem (out, MIN (cs, b->len), b->data, MIN (cs, b->len));
  }
}

static void
test_backing (void)
{
  const char *extra_q[] = { "-b", "base.qcow2", "-F", "qcow2", NULL };
  const char *extra_raw[] = { "-b", "base.raw", "-F", "raw", NULL };
  const char *extra_v2[] = { "-b", "base.qcow2", "-F", "qcow2", NULL };
  const char *raw_argv[] = { qemu_img, "create", "-q", "-f", "raw", "base.raw", "64M", NULL };
  g_autoptr (RechainQcow2Header) h1 = NULL, h2 = NULL, h3 = NULL;

  rechain_qcow2_header_free (create_and_check ("base.qcow2", "", "64M", NULL));
  g_free (run (raw_argv));
  h1 = create_and_check ("ov-qcow2.qcow2", "", "64M", extra_q);
  g_assert_cmpstr (h1->backing_file, ==, "base.qcow2");
  g_assert_cmpstr (h1->backing_format, ==, "qcow2");
  h2 = create_and_check ("ov-raw.qcow2", "cluster_size=512", "64M", extra_raw);
  g_assert_cmpstr (h2->backing_file, ==, "base.raw");
  g_assert_cmpstr (h2->backing_format, ==, "raw");
  h3 = create_and_check ("ov-v2.qcow2", "compat=0.10", "64M", extra_v2);
  g_assert_cmpstr (h3->backing_file, ==, "base.qcow2");
  g_assert_cmpuint (h3->version, ==, 2);
}

/* Rewrites the header of a real image with a new backing file and lets
 * qemu-img judge the result. */
static void
rebase_header (const char *name, const char *backing, const char *format)
{
  g_autoptr (Bytes) b = read_file (name);
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = parse (b, &error);
  g_autofree guint8 *out = NULL;
  g_autofree char *path = tmp_path (name);
  guint64 cs;

  g_assert_no_error (error);
  cs = rechain_qcow2_cluster_size (h);
  rechain_qcow2_header_set_backing (h, backing, format);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  memcpy (b->data, out, MIN (cs, b->len));
  if (!g_file_set_contents (path, (const char *) b->data, (gssize) b->len, &error))
    g_error ("%s", error->message);
}

static void
test_rewrite_header (void)
{
  const char *raw_argv[] = { qemu_img, "create", "-q", "-f", "raw", "new-base.raw", "64M", NULL };
  const char *raw2_argv[] = { qemu_img, "create", "-q", "-f", "raw",
                              "a-much-longer-backing-file-name-than-before.raw", "64M", NULL };
  const char *extra[] = { "-b", "rw-base.qcow2", "-F", "qcow2", NULL };
  const char *cases[][2] = {
    { "a-much-longer-backing-file-name-than-before.raw", "raw" },
    { "new-base.raw", NULL },
    { NULL, NULL },
    { "new-base.raw", "raw" },
  };
  g_autoptr (RechainQcow2Header) h = NULL;
  const char *bitmap_argv[] = { qemu_img, "bitmap", "--add", "rw.qcow2", "keepme", NULL };

  rechain_qcow2_header_free (create_and_check ("rw-base.qcow2", "", "64M", NULL));
  g_free (run (raw_argv));
  g_free (run (raw2_argv));
  h = create_and_check ("rw.qcow2", "", "64M", extra);
  g_free (run (bitmap_argv));

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *check_argv[] = { qemu_img, "check", "-q", "rw.qcow2", NULL };
      g_autoptr (JsonNode) info = NULL;
      g_autoptr (Bytes) b = NULL;
      g_autoptr (RechainQcow2Header) h2 = NULL;
      g_autoptr (GError) error = NULL;
      JsonArray *bitmaps;

      rebase_header ("rw.qcow2", cases[i][0], cases[i][1]);
      g_free (run (check_argv));
      info = qemu_info ("rw.qcow2");
      b = read_file ("rw.qcow2");
      h2 = parse (b, &error);
      g_assert_no_error (error);
      check_against_info (h2, info);
      g_assert_cmpstr (h2->backing_file, ==, cases[i][0]);
      g_assert_cmpstr (h2->backing_format, ==, cases[i][1]);
      /* the bitmap survived the rewrite */
      bitmaps = json_object_get_array_member (format_data (info), "bitmaps");
      g_assert_cmpuint (json_array_get_length (bitmaps), ==, 1);
      g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (bitmaps, 0), "name"), ==, "keepme");
    }
}

static void
test_luks (void)
{
  const char *extra[] = { "--object", "secret,id=s0,data=x", NULL };
  g_autoptr (Bytes) b = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;

  /* qemu-img times its key derivation and, on a loaded machine, may fail
   * with "Unable to get accurate CPU usage": tried a few times. */
  qemu_img_create_attempts ("luks.qcow2",
                            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
                            "16M", extra, 60);
  b = read_file ("luks.qcow2");
  /* parsed without any key: the LUKS header is found, not read */
  h = parse (b, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (h->crypt_method, ==, RECHAIN_QCOW2_CRYPT_LUKS);
  g_assert_true (h->has_crypto_ext);
  g_assert_cmpuint (h->crypto_header_offset, >, 0);
  g_assert_cmpuint (h->crypto_header_offset % 65536, ==, 0);
}

static void
test_snapshots (void)
{
  const char *s1[] = { qemu_img, "snapshot", "-c", "first", "snap.qcow2", NULL };
  const char *s2[] = { qemu_img, "snapshot", "-c", "second snapshot \xc3\xa9", "snap.qcow2", NULL };
  const char *s3[] = { qemu_img, "snapshot", "-c", "3", "snap.qcow2", NULL };
  const char *wr[] = { qemu_io, "-c", "write -P 0x11 0 128k", "snap.qcow2", NULL };
  g_autoptr (Bytes) b = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;
  g_autoptr (JsonNode) info = NULL;
  g_autoptr (GArray) snaps = NULL;
  RechainQcow2Geometry g;
  JsonArray *qs;

  rechain_qcow2_header_free (create_and_check ("snap.qcow2", "", "64M", NULL));
  g_free (run (s1));
  g_free (run (wr));
  g_free (run (s2));
  g_free (run (s3));
  b = read_file ("snap.qcow2");
  h = parse (b, &error);
  g_assert_no_error (error);
  info = qemu_info ("snap.qcow2");
  check_against_info (h, info);
  g_assert_cmpuint (h->nb_snapshots, ==, 3);

  rechain_qcow2_geometry_init (&g, h);
  snaps = rechain_qcow2_snapshots_parse (b->data + h->snapshots_offset,
                                         b->len - h->snapshots_offset,
                                         h->nb_snapshots, &g, b->len, &error);
  g_assert_no_error (error);
  qs = json_object_get_array_member (json_node_get_object (info), "snapshots");
  g_assert_cmpuint (snaps->len, ==, json_array_get_length (qs));
  for (guint i = 0; i < snaps->len; i++)
    {
      const RechainQcow2Snapshot *sn = &g_array_index (snaps, RechainQcow2Snapshot, i);
      JsonObject *q = json_array_get_object_element (qs, i);

      g_assert_cmpstr (sn->id, ==, json_object_get_string_member (q, "id"));
      g_assert_cmpstr (sn->name, ==, json_object_get_string_member (q, "name"));
      g_assert_cmpuint (sn->date_sec, ==, (guint64) json_object_get_int_member (q, "date-sec"));
      g_assert_cmpuint (sn->date_nsec, ==, (guint64) json_object_get_int_member (q, "date-nsec"));
      g_assert_cmpuint (sn->vm_state_size, ==, (guint64) json_object_get_int_member (q, "vm-state-size"));
      g_assert_cmpuint (sn->disk_size, ==, h->size);
      g_assert_cmpuint (sn->l1_size, >=, 1);
      /* the snapshot's L1 table is referenced */
      g_assert_cmpuint (refcount_of (b, h, sn->l1_table_offset), ==, 1);
    }
  g_assert_cmpstr (g_array_index (snaps, RechainQcow2Snapshot, 1).name, ==, "second snapshot \xc3\xa9");
}

static void
test_bitmaps (void)
{
  const char *add1[] = { qemu_img, "bitmap", "--add", "bm.qcow2", "alpha", NULL };
  const char *add2[] = { qemu_img, "bitmap", "--add", "-g", "128k", "--disable", "bm.qcow2", "beta-with-a-longer-name", NULL };
  const char *add3[] = { qemu_img, "bitmap", "--add", "-g", "512", "bm.qcow2", "g", NULL };
  g_autoptr (Bytes) b = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;
  g_autoptr (JsonNode) info = NULL;
  g_autoptr (GArray) bitmaps = NULL;
  RechainQcow2Geometry g;
  JsonArray *qb;

  rechain_qcow2_header_free (create_and_check ("bm.qcow2", "", "256M", NULL));
  g_free (run (add1));
  g_free (run (add2));
  g_free (run (add3));
  b = read_file ("bm.qcow2");
  h = parse (b, &error);
  g_assert_no_error (error);
  info = qemu_info ("bm.qcow2");
  check_against_info (h, info);
  g_assert_true (h->has_bitmaps_ext);
  g_assert_cmpuint (h->nb_bitmaps, ==, 3);
  g_assert_true (h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_BITMAPS);

  rechain_qcow2_geometry_init (&g, h);
  bitmaps = rechain_qcow2_bitmaps_parse (b->data + h->bitmap_directory_offset,
                                         h->bitmap_directory_size, h->nb_bitmaps,
                                         &g, b->len, &error);
  g_assert_no_error (error);
  qb = json_object_get_array_member (format_data (info), "bitmaps");
  g_assert_cmpuint (bitmaps->len, ==, json_array_get_length (qb));
  for (guint i = 0; i < bitmaps->len; i++)
    {
      const RechainQcow2Bitmap *bm = &g_array_index (bitmaps, RechainQcow2Bitmap, i);
      JsonObject *q = json_array_get_object_element (qb, i);
      JsonArray *flags = json_object_get_array_member (q, "flags");
      gboolean qauto = FALSE, qin_use = FALSE;

      for (guint f = 0; f < json_array_get_length (flags); f++)
        {
          qauto |= g_str_equal (json_array_get_string_element (flags, f), "auto");
          qin_use |= g_str_equal (json_array_get_string_element (flags, f), "in-use");
        }
      g_assert_cmpstr (bm->name, ==, json_object_get_string_member (q, "name"));
      g_assert_cmpuint (G_GUINT64_CONSTANT (1) << bm->granularity_bits, ==,
                        (guint64) json_object_get_int_member (q, "granularity"));
      g_assert_cmpint ((bm->flags & RECHAIN_QCOW2_BITMAP_AUTO) != 0, ==, qauto);
      g_assert_cmpint ((bm->flags & RECHAIN_QCOW2_BITMAP_IN_USE) != 0, ==, qin_use);
      g_assert_cmpuint (bm->type, ==, 1);
    }
}

/* Reads guest cluster @guest through L1/L2 of a real image, decompressing
 * compressed clusters, and compares with @expect. */
static void
check_cluster (const Bytes *b, const RechainQcow2Header *h,
               const RechainQcow2Geometry *g, guint64 guest,
               const guint8 *expect, int want_compressed)
{
  g_autoptr (GError) error = NULL;
  guint64 cs = g->cluster_size;
  guint64 cl = guest / cs;
  guint64 l1i = cl / g->l2_entries, l2i = cl % g->l2_entries;
  guint64 l2;
  RechainQcow2L2Entry e;
  const guint8 *p;
  g_autofree guint8 *out = g_malloc (cs);

  g_assert_cmpuint (l1i, <, h->l1_size);
  g_assert_true (rechain_qcow2_l1_entry_decode (g, be64 (b->data + h->l1_table_offset + l1i * 8), &l2, &error));
  memset (&e, 0, sizeof e);
  if (l2 != 0)
    {
      p = b->data + l2 + l2i * (g->extended_l2 ? 16 : 8);
      g_assert_true (rechain_qcow2_l2_entry_decode (g, be64 (p), g->extended_l2 ? be64 (p + 8) : 0, &e, &error));
      g_assert_no_error (error);
    }
  if (want_compressed >= 0)
    g_assert_cmpint (e.compressed, ==, want_compressed);
  if (e.compressed)
    {
      gsize avail = (gsize) MIN (e.compressed_length, b->len - e.compressed_offset);

      g_assert_cmpuint (e.compressed_offset, <, b->len);
      if (!rechain_qcow2_decompress (h->compression_type, b->data + e.compressed_offset,
                                     avail, out, cs, &error))
        g_error ("guest 0x%" G_GINT64_MODIFIER "x: %s", guest, error->message);
    }
  else if (e.type[0] != RECHAIN_QCOW2_SUBCLUSTER_DATA)
    {
      /* zeros are left unallocated (or zero) by qemu-img convert */
      g_assert_cmpint (want_compressed, !=, 1);
      memset (out, 0, cs);
    }
  else
    {
      g_assert_cmpuint (e.host_offset + cs, <=, b->len);
      memcpy (out, b->data + e.host_offset, cs);
      g_assert_cmpuint (refcount_of (b, h, e.host_offset), ==, 1);
    }
  g_assert_cmpmem (out, cs, expect, cs);
}

typedef struct {
  const char *name;
  const char *options;
} CompressCase;

static const CompressCase compress_cases[] = {
  { "c-zlib-64k", "cluster_size=64k" },
  { "c-zlib-512", "cluster_size=512" },
  { "c-zlib-2m", "cluster_size=2M" },
  { "c-zstd-64k", "cluster_size=64k,compression_type=zstd" },
  { "c-zstd-4k", "cluster_size=4k,compression_type=zstd" },
  { "c-zstd-2m", "cluster_size=2M,compression_type=zstd" },
  { "c-extl2", "cluster_size=64k,extended_l2=on" },
};

static void
test_compressed (gconstpointer data)
{
  const CompressCase *c = data;
  g_autofree char *raw = g_strconcat (c->name, ".raw", NULL);
  g_autofree char *qcow = g_strconcat (c->name, ".qcow2", NULL);
  g_autofree char *raw_path = tmp_path (raw);
  gsize len = 6 * 1024 * 1024;
  g_autofree guint8 *data_buf = g_malloc0 (len);
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  g_autoptr (GError) error = NULL;
  g_autoptr (Bytes) b = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;
  g_autoptr (JsonNode) info = NULL;
  RechainQcow2Geometry g;
  guint n_compressed = 0;

  /* compressible text, a stretch of random (incompressible) bytes, zeros */
  for (gsize i = 0; i < 4 * 1024 * 1024; i++)
    data_buf[i] = (guint8) ("rechain qcow2 test "[i % 19] + (i / 4096) % 3);
  for (gsize i = 4 * 1024 * 1024; i < 5 * 1024 * 1024; i++)
    data_buf[i] = (guint8) g_rand_int (rand);
  if (!g_file_set_contents (raw_path, (const char *) data_buf, (gssize) len, &error))
    g_error ("%s", error->message);
  {
    const char *argv[] = { qemu_img, "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", c->options, raw, qcow, NULL };
    g_free (run (argv));
  }
  b = read_file (qcow);
  h = parse (b, &error);
  g_assert_no_error (error);
  info = qemu_info (qcow);
  check_against_info (h, info);
  rechain_qcow2_geometry_init (&g, h);

  for (guint64 guest = 0; guest < len; guest += g.cluster_size)
    {
      /* the random part is stored uncompressed (compression would not save
       * anything); for 512-byte clusters sample to keep the test fast */
      int want = guest + g.cluster_size <= 4 * 1024 * 1024 ? 1
                 : guest + g.cluster_size <= 5 * 1024 * 1024 ? 0 : -1;

      if (g.cluster_size == 512 && guest % 65536 != 0 && guest % 65536 != 65024)
        continue;
      check_cluster (b, h, &g, guest, data_buf + guest, want);
      n_compressed += want == 1;
    }
  g_assert_cmpuint (n_compressed, >, 0);
}

/* Decodes the L2 entry of guest cluster @cl. */
static void
l2_entry_of (const Bytes *b, const RechainQcow2Header *h,
             const RechainQcow2Geometry *g, guint64 cl, RechainQcow2L2Entry *e)
{
  g_autoptr (GError) error = NULL;
  guint64 l2;
  const guint8 *p;

  g_assert_true (rechain_qcow2_l1_entry_decode (g, be64 (b->data + h->l1_table_offset + cl / g->l2_entries * 8), &l2, &error));
  g_assert_no_error (error);
  memset (e, 0xff, sizeof *e);
  if (l2 == 0)
    {
      memset (e, 0, sizeof *e);
      return;
    }
  p = b->data + l2 + cl % g->l2_entries * (g->extended_l2 ? 16 : 8);
  g_assert_true (rechain_qcow2_l2_entry_decode (g, be64 (p), g->extended_l2 ? be64 (p + 8) : 0, e, &error));
  g_assert_no_error (error);
}

static void
test_extl2_subclusters (void)
{
  const char *io[] = { qemu_io, "-c", "write -P 0xaa 0 4k", "-c", "write -z 8k 2k",
                       "-c", "write -P 0xbb 62k 2k", "-c", "write -z 128k 64k",
                       "ext.qcow2", NULL };
  g_autoptr (Bytes) b = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;
  RechainQcow2Geometry g;
  RechainQcow2L2Entry e;

  rechain_qcow2_header_free (create_and_check ("ext.qcow2", "extended_l2=on", "64M", NULL));
  g_free (run (io));
  b = read_file ("ext.qcow2");
  h = parse (b, &error);
  g_assert_no_error (error);
  rechain_qcow2_geometry_init (&g, h);
  g_assert_cmpuint (g.subcluster_size, ==, 2048);

  l2_entry_of (b, h, &g, 0, &e);
  g_assert_false (e.compressed);
  g_assert_cmpuint (e.host_offset, !=, 0);
  for (guint sc = 0; sc < 32; sc++)
    {
      guint8 want = RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED;

      if (sc == 0 || sc == 1 || sc == 31)
        want = RECHAIN_QCOW2_SUBCLUSTER_DATA;
      else if (sc == 4)
        want = RECHAIN_QCOW2_SUBCLUSTER_ZERO;
      g_assert_cmpuint (e.type[sc], ==, want);
    }
  for (guint i = 0; i < 4096; i++)
    g_assert_cmpuint (b->data[e.host_offset + i], ==, 0xaa);
  for (guint i = 0; i < 2048; i++)
    g_assert_cmpuint (b->data[e.host_offset + 31 * 2048 + i], ==, 0xbb);

  l2_entry_of (b, h, &g, 1, &e);
  for (guint sc = 0; sc < 32; sc++)
    g_assert_cmpuint (e.type[sc], ==, RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED);
  l2_entry_of (b, h, &g, 2, &e);
  for (guint sc = 0; sc < 32; sc++)
    g_assert_cmpuint (e.type[sc], ==, RECHAIN_QCOW2_SUBCLUSTER_ZERO);
}

static void
test_zero_clusters (void)
{
  const char *io[] = { qemu_io, "-c", "write -P 1 0 64k", "-c", "write -z 0 64k",
                       "-c", "write -z 128k 64k", "-c", "write -P 2 192k 64k",
                       "zero.qcow2", NULL };
  g_autoptr (Bytes) b = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = NULL;
  RechainQcow2Geometry g;
  RechainQcow2L2Entry e;

  rechain_qcow2_header_free (create_and_check ("zero.qcow2", "", "64M", NULL));
  g_free (run (io));
  b = read_file ("zero.qcow2");
  h = parse (b, &error);
  g_assert_no_error (error);
  rechain_qcow2_geometry_init (&g, h);

  /* zero with a preallocated host cluster */
  l2_entry_of (b, h, &g, 0, &e);
  g_assert_cmpuint (e.type[0], ==, RECHAIN_QCOW2_SUBCLUSTER_ZERO);
  g_assert_cmpuint (e.host_offset, !=, 0);
  g_assert_cmpuint (refcount_of (b, h, e.host_offset), ==, 1);
  l2_entry_of (b, h, &g, 1, &e);
  g_assert_cmpuint (e.type[0], ==, RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED);
  /* plain zero */
  l2_entry_of (b, h, &g, 2, &e);
  g_assert_cmpuint (e.type[0], ==, RECHAIN_QCOW2_SUBCLUSTER_ZERO);
  g_assert_cmpuint (e.host_offset, ==, 0);
  l2_entry_of (b, h, &g, 3, &e);
  g_assert_cmpuint (e.type[0], ==, RECHAIN_QCOW2_SUBCLUSTER_DATA);
  g_assert_true (e.copied);
  g_assert_cmpuint (b->data[e.host_offset + 65535], ==, 2);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);

  qemu_img = g_strdup (g_getenv ("QEMU_IMG"));
  if (qemu_img == NULL)
    qemu_img = g_find_program_in_path ("qemu-img");
  qemu_io = g_strdup (g_getenv ("QEMU_IO"));
  if (qemu_io == NULL)
    qemu_io = g_find_program_in_path ("qemu-io");
  if (qemu_img == NULL || qemu_io == NULL)
    {
      /* QEMU is the oracle of these tests: without it they cannot pass. */
      g_printerr ("qemu-img/qemu-io not found (install qemu-utils)\n");
      return 1;
    }
  tmpdir = g_dir_make_tmp ("rechain-format-XXXXXX", &error);
  g_assert_no_error (error);

  for (gsize i = 0; i < G_N_ELEMENTS (create_cases); i++)
    {
      g_autofree char *path = g_strconcat ("/format/qemu/create/", create_cases[i].name, NULL);
      g_test_add_data_func (path, &create_cases[i], test_create);
    }
  g_test_add_func ("/format/qemu/backing", test_backing);
  g_test_add_func ("/format/qemu/rewrite-header", test_rewrite_header);
  g_test_add_func ("/format/qemu/luks", test_luks);
  g_test_add_func ("/format/qemu/snapshots", test_snapshots);
  g_test_add_func ("/format/qemu/bitmaps", test_bitmaps);
  for (gsize i = 0; i < G_N_ELEMENTS (compress_cases); i++)
    {
      g_autofree char *path = g_strconcat ("/format/qemu/compressed/", compress_cases[i].name, NULL);
      g_test_add_data_func (path, &compress_cases[i], test_compressed);
    }
  g_test_add_func ("/format/qemu/extl2-subclusters", test_extl2_subclusters);
  g_test_add_func ("/format/qemu/zero-clusters", test_zero_clusters);

  ret = g_test_run ();

  /* best-effort cleanup of what the tests created */
  {
    g_autoptr (GDir) dir = g_dir_open (tmpdir, 0, NULL);
    const char *n;

    while (dir != NULL && (n = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *p = tmp_path (n);
        g_unlink (p);
      }
    g_rmdir (tmpdir);
  }
  return ret;
}
