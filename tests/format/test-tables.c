/* test-tables.c: crafted snapshot tables and bitmap directories.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"

#define FILE_SIZE (64 * 65536)

static void
put16 (GByteArray *a, guint16 v)
{
  v = GUINT16_TO_BE (v);
  g_byte_array_append (a, (const guint8 *) &v, 2);
}

static void
put32 (GByteArray *a, guint32 v)
{
  v = GUINT32_TO_BE (v);
  g_byte_array_append (a, (const guint8 *) &v, 4);
}

static void
put64 (GByteArray *a, guint64 v)
{
  v = GUINT64_TO_BE (v);
  g_byte_array_append (a, (const guint8 *) &v, 8);
}

static void
pad8 (GByteArray *a)
{
  static const guint8 zeros[8] = { 0 };

  if (a->len % 8)
    g_byte_array_append (a, zeros, 8 - a->len % 8);
}

static void
geom64k (RechainQcow2Geometry *g)
{
  RechainQcow2Header h = { 0 };

  h.version = 3;
  h.cluster_bits = 16;
  rechain_qcow2_geometry_init (g, &h);
}

/* ---- snapshots ---- */

static void
add_snapshot (GByteArray *a, guint64 l1_off, guint32 l1_size, const char *id,
              gsize id_len, const char *name, gsize name_len, guint32 extra_size,
              guint64 vm_state, guint64 disk_size)
{
  put64 (a, l1_off);
  put32 (a, l1_size);
  put16 (a, (guint16) id_len);
  put16 (a, (guint16) name_len);
  put32 (a, 1700000000);
  put32 (a, 123456789);
  put64 (a, 5000000000ull);
  put32 (a, (guint32) MIN (vm_state, G_MAXUINT32));
  put32 (a, extra_size);
  for (guint32 i = 0; i < extra_size; i += 8)
    {
      if (i == 0)
        put64 (a, vm_state);
      else if (i == 8)
        put64 (a, disk_size);
      else
        put64 (a, 0x1111111111111111ull);
    }
  g_byte_array_set_size (a, a->len - (((extra_size + 7) & ~7u) - extra_size));
  g_byte_array_append (a, (const guint8 *) id, (guint) id_len);
  g_byte_array_append (a, (const guint8 *) name, (guint) name_len);
  pad8 (a);
}

static GArray *
parse_snapshots (GByteArray *a, guint32 nb, GError **error)
{
  RechainQcow2Geometry g;

  geom64k (&g);
  return rechain_qcow2_snapshots_parse (a->data, a->len, nb, &g, FILE_SIZE, error);
}

static void
expect_snapshot_error (GByteArray *a, guint32 nb, const char *substring)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) s = parse_snapshots (a, nb, &error);

  g_assert_null (s);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  if (strstr (error->message, substring) == NULL)
    g_error ("\"%s\" lacks \"%s\"", error->message, substring);
}

static void
test_snapshots_valid (void)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) s = NULL;
  const RechainQcow2Snapshot *sn;

  add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0x100000000ull, 1ull << 30);
  add_snapshot (a, 6 * 65536, 2, "2", 1, "bad \xff name\0x", 12, 0, 77, 0);
  add_snapshot (a, 7 * 65536, 0, "3", 1, "", 0, 24, 0, 1ull << 20);
  add_snapshot (a, 0, 0, "", 0, "oddly", 5, 5, 0, 0);
  s = parse_snapshots (a, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->len, ==, 4);

  sn = &g_array_index (s, RechainQcow2Snapshot, 0);
  g_assert_cmpuint (sn->l1_table_offset, ==, 5 * 65536);
  g_assert_cmpuint (sn->l1_size, ==, 2);
  g_assert_cmpstr (sn->id, ==, "1");
  g_assert_cmpstr (sn->name, ==, "first");
  g_assert_cmpuint (sn->date_sec, ==, 1700000000);
  g_assert_cmpuint (sn->date_nsec, ==, 123456789);
  g_assert_cmpuint (sn->vm_clock_nsec, ==, 5000000000ull);
  /* the 64-bit field of the extra data wins over the 32-bit one */
  g_assert_cmpuint (sn->vm_state_size, ==, 0x100000000ull);
  g_assert_cmpuint (sn->disk_size, ==, 1ull << 30);
  g_assert_cmpint (sn->icount, ==, -1);

  sn = &g_array_index (s, RechainQcow2Snapshot, 1);
  g_assert_true (g_utf8_validate (sn->name, -1, NULL));
  g_assert_true (g_str_has_prefix (sn->name, "bad "));
  g_assert_true (g_str_has_suffix (sn->name, "x"));
  g_assert_nonnull (strstr (sn->name, "\xef\xbf\xbd")); /* U+FFFD */
  g_assert_cmpuint (sn->vm_state_size, ==, 77);
  g_assert_cmpuint (sn->disk_size, ==, 0);

  sn = &g_array_index (s, RechainQcow2Snapshot, 2);
  g_assert_cmpstr (sn->name, ==, "");
  g_assert_cmpint (sn->icount, ==, 0x1111111111111111ll);
  g_assert_cmpuint (sn->disk_size, ==, 1ull << 20);

  sn = &g_array_index (s, RechainQcow2Snapshot, 3);
  g_assert_cmpstr (sn->id, ==, "");
  g_assert_cmpstr (sn->name, ==, "oddly");

  /* fewer entries than present is fine, and 0 is an empty array */
  g_clear_pointer (&s, g_array_unref);
  s = parse_snapshots (a, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->len, ==, 1);
  g_clear_pointer (&s, g_array_unref);
  s = rechain_qcow2_snapshots_parse (NULL, 0, 0, &(RechainQcow2Geometry) { .cluster_size = 65536 }, FILE_SIZE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->len, ==, 0);

  /* the last entry's padding may be cut off */
  g_clear_pointer (&s, g_array_unref);
  g_byte_array_set_size (a, a->len - 5);
  s = parse_snapshots (a, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->len, ==, 4);
}

static void
test_snapshots_invalid (void)
{
  {
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0, 0);
    expect_snapshot_error (a, 2, "too small for nb_snapshots 2");
    expect_snapshot_error (a, 65537, "nb_snapshots 65537 exceeds the maximum");
    g_byte_array_set_size (a, 60);
    expect_snapshot_error (a, 1, "snapshot table entry 0 at offset 0 (extra data 16, id_str_size 1, name_size 5) extends past the end of the table (60 bytes)");
  }
  {
    /* second entry truncated in its fixed part */
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0, 0);
    add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0, 0);
    g_byte_array_set_size (a, a->len - 40);
    expect_snapshot_error (a, 2, "snapshot table entry 1 at offset 64 extends past the end");
  }
  {
    /* huge extra data size */
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0, 0);
    a->data[36] = 0xff;
    expect_snapshot_error (a, 1, "extra data 4278190096");
  }
  {
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 5 * 65536 + 512, 2, "1", 1, "x", 1, 16, 0, 0);
    expect_snapshot_error (a, 1, "snapshot 0: l1_table_offset 0x50200 is not aligned");
  }
  {
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 64 * 65536, 2, "1", 1, "x", 1, 16, 0, 0);
    expect_snapshot_error (a, 1, "snapshot 0: L1 table at l1_table_offset 0x400000 (l1_size 2) is outside the file");
  }
  {
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 0, 2, "1", 1, "x", 1, 16, 0, 0);
    expect_snapshot_error (a, 1, "l1_table_offset 0x0 (l1_size 2) is outside the file");
  }
  {
    g_autoptr (GByteArray) a = g_byte_array_new ();
    add_snapshot (a, 5 * 65536, 4194305, "1", 1, "x", 1, 16, 0, 0);
    expect_snapshot_error (a, 1, "snapshot 0: l1_size 4194305 exceeds the maximum");
  }
}

static void
test_snapshots_mutations (void)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (77);
  g_autofree guint8 *copy = NULL;
  RechainQcow2Geometry g;

  geom64k (&g);
  add_snapshot (a, 5 * 65536, 2, "1", 1, "first", 5, 16, 0, 0);
  add_snapshot (a, 6 * 65536, 2, "2", 1, "second", 6, 24, 0, 0);
  add_snapshot (a, 7 * 65536, 2, "3", 1, "third", 5, 0, 0, 0);
  copy = g_malloc (a->len);
  for (int iter = 0; iter < 20000; iter++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GArray) s = NULL;

      memcpy (copy, a->data, a->len);
      for (int i = g_rand_int_range (rand, 1, 4); i > 0; i--)
        copy[g_rand_int_range (rand, 0, (gint32) a->len)] = (guint8) g_rand_int (rand);
      s = rechain_qcow2_snapshots_parse (copy, (gsize) g_rand_int_range (rand, 0, (gint32) a->len + 1),
                                         (guint32) g_rand_int_range (rand, 0, 5), &g, FILE_SIZE, &error);
      if (s == NULL)
        g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
      else
        for (guint i = 0; i < s->len; i++)
          {
            g_assert_true (g_utf8_validate (g_array_index (s, RechainQcow2Snapshot, i).name, -1, NULL));
            g_assert_true (g_utf8_validate (g_array_index (s, RechainQcow2Snapshot, i).id, -1, NULL));
          }
    }
}

/* ---- bitmaps ---- */

static void
add_bitmap (GByteArray *a, guint64 table_off, guint32 table_size, guint32 flags,
            guint8 type, guint8 gran, const char *name, gsize name_len,
            guint32 extra_size)
{
  guint8 b[2] = { type, gran };

  put64 (a, table_off);
  put32 (a, table_size);
  put32 (a, flags);
  g_byte_array_append (a, b, 2);
  put16 (a, (guint16) name_len);
  put32 (a, extra_size);
  for (guint32 i = 0; i < extra_size; i++)
    g_byte_array_append (a, (const guint8 *) "E", 1);
  g_byte_array_append (a, (const guint8 *) name, (guint) name_len);
  pad8 (a);
}

static GArray *
parse_bitmaps (GByteArray *a, guint32 nb, GError **error)
{
  RechainQcow2Geometry g;

  geom64k (&g);
  return rechain_qcow2_bitmaps_parse (a->data, a->len, nb, &g, FILE_SIZE, error);
}

static void
expect_bitmap_error (GByteArray *a, guint32 nb, const char *substring)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) s = parse_bitmaps (a, nb, &error);

  g_assert_null (s);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  if (strstr (error->message, substring) == NULL)
    g_error ("\"%s\" lacks \"%s\"", error->message, substring);
}

static void
test_bitmaps_valid (void)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) s = NULL;
  const RechainQcow2Bitmap *bm;

  add_bitmap (a, 8 * 65536, 1, RECHAIN_QCOW2_BITMAP_AUTO, 1, 16, "b0", 2, 0);
  add_bitmap (a, 9 * 65536, 3, RECHAIN_QCOW2_BITMAP_IN_USE | 4, 1, 9, "with extra", 10, 5);
  add_bitmap (a, 0, 0, 0, 1, 63, "\xc3\x28", 2, 0);
  s = parse_bitmaps (a, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->len, ==, 3);
  bm = &g_array_index (s, RechainQcow2Bitmap, 0);
  g_assert_cmpstr (bm->name, ==, "b0");
  g_assert_cmpuint (bm->table_offset, ==, 8 * 65536);
  g_assert_cmpuint (bm->table_size, ==, 1);
  g_assert_cmpuint (bm->flags, ==, RECHAIN_QCOW2_BITMAP_AUTO);
  g_assert_cmpuint (bm->type, ==, 1);
  g_assert_cmpuint (bm->granularity_bits, ==, 16);
  bm = &g_array_index (s, RechainQcow2Bitmap, 1);
  g_assert_cmpstr (bm->name, ==, "with extra");
  g_assert_cmpuint (bm->flags, ==, 5);
  bm = &g_array_index (s, RechainQcow2Bitmap, 2);
  g_assert_true (g_utf8_validate (bm->name, -1, NULL));
}

static void
test_bitmaps_invalid (void)
{
  g_autofree char *longname = g_strnfill (1024, 'b');

#define ONE(setup, nb, msg) \
  { \
    g_autoptr (GByteArray) a = g_byte_array_new (); \
    setup; \
    expect_bitmap_error (a, nb, msg); \
  }

  ONE (add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), 2, "too small for nb_bitmaps 2");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), 65536, "nb_bitmaps 65536 exceeds the maximum");
  ONE (add_bitmap (a, 8 * 65536, 1, 8, 1, 16, "b0", 2, 0), 1, "bitmap directory entry 0: flags 0x8 has reserved bits set");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 0, 16, "b0", 2, 0), 1, "type 0 is reserved");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 2, 16, "b0", 2, 0), 1, "type 2 is reserved");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 1, 64, "b0", 2, 0), 1, "granularity_bits 64 is out of range");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "", 0, 0), 1, "name_size 0 is out of range");
  ONE (add_bitmap (a, 8 * 65536, 1, 0, 1, 16, longname, 1024, 0), 1, "name_size 1024 is out of range (1..1023)");
  ONE (add_bitmap (a, 8 * 65536 + 512, 1, 0, 1, 16, "b0", 2, 0), 1, "bitmap_table_offset 0x80200 is not aligned");
  ONE (add_bitmap (a, 64 * 65536, 1, 0, 1, 16, "b0", 2, 0), 1, "bitmap table at bitmap_table_offset 0x400000 (bitmap_table_size 1) is outside the file");
  ONE (add_bitmap (a, 0, 1, 0, 1, 16, "b0", 2, 0), 1, "bitmap_table_offset 0x0 (bitmap_table_size 1)");
  ONE (add_bitmap (a, 63 * 65536, 8193, 0, 1, 16, "b0", 2, 0), 1, "is outside the file");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0),
        add_bitmap (a, 9 * 65536, 1, 0, 1, 16, "b0", 2, 0)), 2, "bitmap directory entry 1: duplicate bitmap name");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), a->data[27] = 1), 1, "padding byte at offset 27 is 0x01");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), g_byte_array_set_size (a, 20)), 0 + 1,
       "too small for nb_bitmaps 1");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), g_byte_array_set_size (a, 25)), 1,
       "bitmap directory entry 0: at offset 0 (extra_data_size 0, name_size 2) extends past the end of the directory (bitmap_directory_size 25)");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0), a->data[20] = 0x80), 1,
       "extra_data_size 2147483648");
  ONE ((add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0),
        add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b1", 2, 0),
        g_byte_array_set_size (a, 50)), 2, "bitmap directory entry 1: at offset 32 extends past the end");
#undef ONE
}

static void
test_bitmaps_mutations (void)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (78);
  g_autofree guint8 *copy = NULL;
  RechainQcow2Geometry g;

  geom64k (&g);
  add_bitmap (a, 8 * 65536, 1, 0, 1, 16, "b0", 2, 0);
  add_bitmap (a, 9 * 65536, 3, 3, 1, 9, "with extra", 10, 5);
  copy = g_malloc (a->len);
  for (int iter = 0; iter < 20000; iter++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GArray) s = NULL;

      memcpy (copy, a->data, a->len);
      for (int i = g_rand_int_range (rand, 1, 4); i > 0; i--)
        copy[g_rand_int_range (rand, 0, (gint32) a->len)] = (guint8) g_rand_int (rand);
      s = rechain_qcow2_bitmaps_parse (copy, (gsize) g_rand_int_range (rand, 0, (gint32) a->len + 1),
                                       (guint32) g_rand_int_range (rand, 0, 4), &g, FILE_SIZE, &error);
      if (s == NULL)
        g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/format/snapshots/valid", test_snapshots_valid);
  g_test_add_func ("/format/snapshots/invalid", test_snapshots_invalid);
  g_test_add_func ("/format/snapshots/mutations", test_snapshots_mutations);
  g_test_add_func ("/format/bitmaps/valid", test_bitmaps_valid);
  g_test_add_func ("/format/bitmaps/invalid", test_bitmaps_invalid);
  g_test_add_func ("/format/bitmaps/mutations", test_bitmaps_mutations);

  return g_test_run ();
}
