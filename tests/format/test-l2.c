/* test-l2.c: L1/L2 entry decoding and refcount block access.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"

#define COPIED RECHAIN_QCOW2_OFLAG_COPIED
#define COMPRESSED RECHAIN_QCOW2_OFLAG_COMPRESSED

enum {
  U = RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED,
  Z = RECHAIN_QCOW2_SUBCLUSTER_ZERO,
  D = RECHAIN_QCOW2_SUBCLUSTER_DATA,
  C = RECHAIN_QCOW2_SUBCLUSTER_COMPRESSED,
};

typedef enum {
  V2,
  V3,
  V3_EXTL2,
  V3_DATA_FILE,
  V3_EXTL2_DATA_FILE,
} Kind;

static void
geom (RechainQcow2Geometry *g, Kind kind, guint32 cluster_bits)
{
  RechainQcow2Header h = { 0 };

  h.version = kind == V2 ? 2 : 3;
  h.cluster_bits = cluster_bits;
  if (kind == V3_EXTL2 || kind == V3_EXTL2_DATA_FILE)
    h.incompatible_features |= RECHAIN_QCOW2_INCOMPAT_EXTL2;
  if (kind == V3_DATA_FILE || kind == V3_EXTL2_DATA_FILE)
    h.incompatible_features |= RECHAIN_QCOW2_INCOMPAT_DATA_FILE;
  rechain_qcow2_geometry_init (g, &h);
}

/* ---- geometry ---- */

static void
test_geometry (void)
{
  RechainQcow2Geometry g;

  for (guint32 bits = 9; bits <= 21; bits++)
    {
      geom (&g, V3, bits);
      g_assert_cmpuint (g.cluster_size, ==, 1u << bits);
      g_assert_cmpuint (g.l2_entries, ==, (1u << bits) / 8);
      g_assert_cmpuint (g.l2_bits, ==, bits - 3);
      g_assert_cmpuint (g.subclusters, ==, 1);
      g_assert_cmpuint (g.subcluster_size, ==, 1u << bits);
      g_assert_cmpuint (g.compressed_offset_bits, ==, 62 - (bits - 8));
      g_assert_true (g.zero_flag_allowed);
      g_assert_false (g.external_data);
    }
  for (guint32 bits = 14; bits <= 21; bits++)
    {
      geom (&g, V3_EXTL2, bits);
      g_assert_cmpuint (g.l2_entries, ==, (1u << bits) / 16);
      g_assert_cmpuint (g.subclusters, ==, 32);
      g_assert_cmpuint (g.subcluster_size, ==, (1u << bits) / 32);
      g_assert_false (g.zero_flag_allowed);
    }
  geom (&g, V2, 16);
  g_assert_false (g.zero_flag_allowed);
  geom (&g, V3_DATA_FILE, 16);
  g_assert_true (g.external_data);
}

/* ---- L1 ---- */

static void
test_l1 (void)
{
  static const struct {
    guint32 bits;
    guint64 entry;
    gboolean ok;
    guint64 offset;
    const char *msg;
  } cases[] = {
    { 16, 0, TRUE, 0, NULL },
    { 16, 0x30000, TRUE, 0x30000, NULL },
    { 16, COPIED | 0x30000, TRUE, 0x30000, NULL },
    { 16, COPIED, TRUE, 0, NULL },
    { 16, 0x00fffffffff0000ull, TRUE, 0x00fffffffff0000ull, NULL },
    { 16, 0x30200, FALSE, 0, "L2 table offset 0x30200 in L1 entry 0x0000000000030200 is not aligned to the cluster size (65536)" },
    { 9, 0x30200, TRUE, 0x30200, NULL },
    { 12, 0x30200, FALSE, 0, "not aligned" },
    { 21, 0x200000, TRUE, 0x200000, NULL },
    { 21, 0x100000, FALSE, 0, "not aligned" },
    { 16, 0x30001, FALSE, 0, "L1 entry 0x0000000000030001 has reserved bits set (0x1)" },
    { 16, 0x30100, FALSE, 0, "reserved bits set (0x100)" },
    { 16, (1ull << 56) | 0x30000, FALSE, 0, "reserved bits set (0x100000000000000)" },
    { 16, COMPRESSED | 0x30000, FALSE, 0, "reserved bits set (0x4000000000000000)" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      RechainQcow2Geometry g;
      g_autoptr (GError) error = NULL;
      guint64 off = 0xdead;
      gboolean ok;

      geom (&g, V3, cases[i].bits);
      ok = rechain_qcow2_l1_entry_decode (&g, cases[i].entry, &off, &error);
      if (cases[i].ok)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpuint (off, ==, cases[i].offset);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
          if (strstr (error->message, cases[i].msg) == NULL)
            g_error ("case %zu: \"%s\" lacks \"%s\"", i, error->message, cases[i].msg);
        }
    }
}

/* ---- L2, standard entries ---- */

typedef struct {
  Kind kind;
  guint32 bits;
  guint64 entry;
  guint64 bitmap;
  const char *msg; /* NULL: must decode */
  guint8 type0;
  guint64 host;
  gboolean copied;
} StdCase;

static void
run_std_cases (const StdCase *cases, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      RechainQcow2Geometry g;
      RechainQcow2L2Entry e;
      g_autoptr (GError) error = NULL;
      gboolean ok;

      geom (&g, cases[i].kind, cases[i].bits);
      ok = rechain_qcow2_l2_entry_decode (&g, cases[i].entry, cases[i].bitmap, &e, &error);
      if (cases[i].msg == NULL)
        {
          if (!ok)
            g_error ("case %zu: unexpected error %s", i, error->message);
          g_assert_false (e.compressed);
          if (e.type[0] != cases[i].type0)
            g_error ("case %zu: type %u, expected %u", i, e.type[0], cases[i].type0);
          g_assert_cmpuint (e.host_offset, ==, cases[i].host);
          g_assert_cmpint (e.copied, ==, cases[i].copied);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
          if (strstr (error->message, cases[i].msg) == NULL)
            g_error ("case %zu: \"%s\" lacks \"%s\"", i, error->message, cases[i].msg);
        }
    }
}

static void
test_l2_standard (void)
{
  static const StdCase cases[] = {
    /* unallocated */
    { V3, 16, 0, 0, NULL, U, 0, FALSE },
    { V2, 16, 0, 0, NULL, U, 0, FALSE },
    /* offset 0 with copied and no data file: still unallocated */
    { V3, 16, COPIED, 0, NULL, U, 0, TRUE },
    /* data */
    { V3, 16, COPIED | 0x50000, 0, NULL, D, 0x50000, TRUE },
    { V3, 16, 0x50000, 0, NULL, D, 0x50000, FALSE },
    { V2, 16, COPIED | 0x50000, 0, NULL, D, 0x50000, TRUE },
    { V3, 9, 0x50200, 0, NULL, D, 0x50200, FALSE },
    { V3, 21, 0x00ffffffffe00000ull, 0, NULL, D, 0x00ffffffffe00000ull, FALSE },
    /* zero, plain and preallocated */
    { V3, 16, 1, 0, NULL, Z, 0, FALSE },
    { V3, 16, 0x50001, 0, NULL, Z, 0x50000, FALSE },
    { V3, 16, COPIED | 0x50001, 0, NULL, Z, 0x50000, TRUE },
    /* zero flag not allowed in v2 */
    { V2, 16, 1, 0, "zero flag (bit 0) set in a version 2 image", 0, 0, 0 },
    { V2, 16, COPIED | 0x50001, 0, "zero flag", 0, 0, 0 },
    /* reserved bits */
    { V3, 16, 0x50002, 0, "reserved bits set (0x2)", 0, 0, 0 },
    { V3, 16, 0x50100, 0, "reserved bits set (0x100)", 0, 0, 0 },
    { V3, 16, (1ull << 56) | 0x50000, 0, "reserved bits set (0x100000000000000)", 0, 0, 0 },
    { V3, 16, (1ull << 61), 0, "reserved bits set (0x2000000000000000)", 0, 0, 0 },
    { V2, 9, 0x1fe, 0, "reserved bits set (0x1fe)", 0, 0, 0 },
    /* misaligned host offsets */
    { V3, 16, 0x50200, 0, "host offset 0x50200 is not aligned to the cluster size (65536)", 0, 0, 0 },
    { V3, 16, 0x58001, 0, "host offset 0x58000 is not aligned", 0, 0, 0 },
    { V3, 21, 0x100000, 0, "not aligned", 0, 0, 0 },
    /* external data file: offset 0 is real when copied is set */
    { V3_DATA_FILE, 16, COPIED, 0, NULL, D, 0, TRUE },
    { V3_DATA_FILE, 16, 0, 0, NULL, U, 0, FALSE },
    { V3_DATA_FILE, 16, COPIED | 0x50000, 0, NULL, D, 0x50000, TRUE },
    { V3_DATA_FILE, 16, COPIED | 1, 0, NULL, Z, 0, TRUE },
    { V3_DATA_FILE, 16, COMPRESSED | (1ull << 54) | 0x123456, 0,
      "compressed cluster in an image with an external data file", 0, 0, 0 },
  };

  run_std_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_l2_compressed (void)
{
  static const struct {
    Kind kind;
    guint32 bits;
    guint64 offset;
    guint64 nb_sectors; /* additional sectors */
    gboolean copied;
    guint64 expected_length;
  } cases[] = {
    { V3, 16, 0x123456, 3, FALSE, 4 * 512 - 0x56 },
    { V3, 16, 0x123400, 0, FALSE, 512 },
    { V3, 16, 0x1234ff, 0, TRUE, 512 - 0xff },
    { V3, 16, 0x1235ff, 1, TRUE, 1024 - 0x1ff },
    { V2, 16, 0x10000, 127, FALSE, 128 * 512 },
    /* 512-byte clusters: x = 61, a single bit of sector count */
    { V3, 9, 0x200, 1, FALSE, 1024 },
    { V3, 9, 0x00fffffffffffffeull, 0, FALSE, 512 - 0x1fe },
    /* 2 MiB clusters: x = 49, 13 bits of sector count */
    { V3, 21, 0x1ffffffffffffull, 8191, FALSE, 8192 * 512 - 0x1ff },
    { V3, 21, 0x200000, 4096, FALSE, 4097 * 512 },
    /* extended L2: compressed clusters look the same */
    { V3_EXTL2, 16, 0x123456, 3, FALSE, 4 * 512 - 0x56 },
    { V3_EXTL2, 14, 0x4000, 0, FALSE, 512 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      RechainQcow2Geometry g;
      RechainQcow2L2Entry e;
      g_autoptr (GError) error = NULL;
      guint64 entry;

      geom (&g, cases[i].kind, cases[i].bits);
      entry = COMPRESSED | (cases[i].nb_sectors << g.compressed_offset_bits) |
              cases[i].offset | (cases[i].copied ? COPIED : 0);
      if (!rechain_qcow2_l2_entry_decode (&g, entry, 0, &e, &error))
        g_error ("case %zu: %s", i, error->message);
      g_assert_true (e.compressed);
      g_assert_cmpuint (e.compressed_offset, ==, cases[i].offset);
      g_assert_cmpuint (e.compressed_length, ==, cases[i].expected_length);
      g_assert_cmpint (e.copied, ==, cases[i].copied);
      for (guint32 sc = 0; sc < g.subclusters; sc++)
        g_assert_cmpuint (e.type[sc], ==, C);
    }
}

static void
test_l2_compressed_invalid (void)
{
  RechainQcow2Geometry g;
  RechainQcow2L2Entry e;
  g_autoptr (GError) error = NULL;

  /* 512-byte clusters: offset bits 56..60 must be zero */
  geom (&g, V3, 9);
  g_assert_false (rechain_qcow2_l2_entry_decode (&g, COMPRESSED | (1ull << 56) | 0x1000, 0, &e, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "bits above 55"));
  g_clear_error (&error);

  /* data in the header cluster */
  geom (&g, V3, 16);
  g_assert_false (rechain_qcow2_l2_entry_decode (&g, COMPRESSED | 0x100, 0, &e, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "overlaps the header"));
  g_clear_error (&error);

  /* extended L2: the bitmap must be zero */
  geom (&g, V3_EXTL2, 16);
  g_assert_false (rechain_qcow2_l2_entry_decode (&g, COMPRESSED | 0x123456, 1ull << 40, &e, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "compressed cluster with a nonzero subcluster bitmap"));
  g_assert_nonnull (strstr (error->message, "bitmap 0x0000010000000000"));
}

/* ---- L2, extended entries ---- */

static void
test_l2_extended (void)
{
  RechainQcow2Geometry g;
  RechainQcow2L2Entry e;
  g_autoptr (GError) error = NULL;
  guint32 alloc = (1u << 0) | (1u << 30) | (1u << 31);
  guint32 zero = (1u << 1) | (1u << 29);

  geom (&g, V3_EXTL2, 16);
  if (!rechain_qcow2_l2_entry_decode (&g, COPIED | 0x70000,
                                      ((guint64) zero << 32) | alloc, &e, &error))
    g_error ("%s", error->message);
  g_assert_cmpuint (e.host_offset, ==, 0x70000);
  g_assert_true (e.copied);
  g_assert_false (e.compressed);
  for (guint sc = 0; sc < 32; sc++)
    {
      guint8 want = U;

      if (sc == 0 || sc == 30 || sc == 31)
        want = D;
      else if (sc == 1 || sc == 29)
        want = Z;
      g_assert_cmpuint (e.type[sc], ==, want);
    }
}

static void
test_l2_extended_table (void)
{
  static const StdCase cases[] = {
    /* fully unallocated, no offset */
    { V3_EXTL2, 16, 0, 0, NULL, U, 0, FALSE },
    /* all zero, no offset */
    { V3_EXTL2, 16, 0, 0xffffffff00000000ull, NULL, Z, 0, FALSE },
    /* preallocated but nothing allocated: reads from backing */
    { V3_EXTL2, 16, 0x50000, 0, NULL, U, 0x50000, FALSE },
    /* all allocated */
    { V3_EXTL2, 16, COPIED | 0x50000, 0xffffffffull, NULL, D, 0x50000, TRUE },
    /* allocated without an offset */
    { V3_EXTL2, 16, 0, 1, "allocated subclusters without a host offset", 0, 0, 0 },
    { V3_EXTL2, 16, COPIED, 0x80000000ull, "allocated subclusters without a host offset", 0, 0, 0 },
    /* both allocated and zero */
    { V3_EXTL2, 16, 0x50000, 0x0000000400000004ull, "subclusters both allocated and zero (mask 0x00000004)", 0, 0, 0 },
    /* bit 0 is not a zero flag with extended L2 */
    { V3_EXTL2, 16, 0x50001, 0, "zero flag (bit 0) set with extended L2 entries", 0, 0, 0 },
    /* reserved bits and alignment as for standard entries */
    { V3_EXTL2, 16, 0x50010, 0, "reserved bits", 0, 0, 0 },
    { V3_EXTL2, 14, 0x52000, 1, "not aligned to the cluster size (16384)", 0, 0, 0 },
    { V3_EXTL2, 14, 0x54000, 1, NULL, D, 0x54000, FALSE },
    /* external data file: offset 0 with copied is valid */
    { V3_EXTL2_DATA_FILE, 16, COPIED, 1, NULL, D, 0, TRUE },
    { V3_EXTL2_DATA_FILE, 16, 0, 1, "allocated subclusters without a host offset", 0, 0, 0 },
  };

  run_std_cases (cases, G_N_ELEMENTS (cases));

  /* subclusters are reported individually */
  {
    RechainQcow2Geometry g;
    RechainQcow2L2Entry e;
    g_autoptr (GError) error = NULL;
    guint32 alloc = 0x0000f00fu, zero = 0x00f00000u;

    geom (&g, V3_EXTL2, 21);
    g_assert_true (rechain_qcow2_l2_entry_decode (&g, 0x200000, ((guint64) zero << 32) | alloc, &e, &error));
    g_assert_no_error (error);
    for (guint sc = 0; sc < 32; sc++)
      {
        guint8 want = (alloc >> sc) & 1 ? D : (zero >> sc) & 1 ? Z : U;
        g_assert_cmpuint (e.type[sc], ==, want);
      }
  }
}

/* ---- refcounts ---- */

static void
test_refcount_layout (void)
{
  guint8 block[64];

  /* 1 bit: entry i is bit i % 8 of byte i / 8 */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 0, 0, 1);
  rechain_qcow2_refblock_set (block, 0, 3, 1);
  rechain_qcow2_refblock_set (block, 0, 9, 1);
  g_assert_cmpuint (block[0], ==, 0x09);
  g_assert_cmpuint (block[1], ==, 0x02);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 0, 3), ==, 1);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 0, 2), ==, 0);
  rechain_qcow2_refblock_set (block, 0, 3, 0);
  g_assert_cmpuint (block[0], ==, 0x01);

  /* 2 bits: entry 1 is bits 2..3 of byte 0 */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 1, 1, 3);
  rechain_qcow2_refblock_set (block, 1, 4, 2);
  g_assert_cmpuint (block[0], ==, 0x0c);
  g_assert_cmpuint (block[1], ==, 0x02);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 1, 1), ==, 3);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 1, 4), ==, 2);

  /* 4 bits: entry 0 is the low nibble */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 2, 0, 0xa);
  rechain_qcow2_refblock_set (block, 2, 1, 0x5);
  rechain_qcow2_refblock_set (block, 2, 3, 0xf);
  g_assert_cmpuint (block[0], ==, 0x5a);
  g_assert_cmpuint (block[1], ==, 0xf0);

  /* 8 bits */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 3, 5, 0xfe);
  g_assert_cmpuint (block[5], ==, 0xfe);

  /* 16 bits, big-endian */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 4, 1, 0x1234);
  g_assert_cmpmem (block, 4, "\0\0\x12\x34", 4);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 4, 1), ==, 0x1234);

  /* 32 bits */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 5, 1, 0x89abcdef);
  g_assert_cmpmem (block + 4, 4, "\x89\xab\xcd\xef", 4);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 5, 1), ==, 0x89abcdef);

  /* 64 bits */
  memset (block, 0, sizeof block);
  rechain_qcow2_refblock_set (block, 6, 2, G_GUINT64_CONSTANT (0x0102030405060708));
  g_assert_cmpmem (block + 16, 8, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  rechain_qcow2_refblock_set (block, 6, 3, G_MAXUINT64);
  g_assert_cmpuint (rechain_qcow2_refblock_get (block, 6, 3), ==, G_MAXUINT64);
}

static void
test_refcount_random (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);

  /* A 4 KiB block against a model array, for every order: each set must
   * change exactly its own entry. */
  for (guint32 order = 0; order <= 6; order++)
    {
      guint64 entries = 4096 * 8 / (1u << order);
      guint64 max = order == 6 ? G_MAXUINT64 : (G_GUINT64_CONSTANT (1) << (1u << order)) - 1;
      g_autofree guint8 *block = g_malloc0 (4096);
      g_autofree guint64 *model = g_new0 (guint64, entries);

      for (int iter = 0; iter < 20000; iter++)
        {
          guint64 idx = (guint64) g_rand_int_range (rand, 0, (gint32) entries);
          guint64 val = (((guint64) g_rand_int (rand) << 32) | g_rand_int (rand)) & max;

          rechain_qcow2_refblock_set (block, order, idx, val);
          model[idx] = val;
        }
      for (guint64 i = 0; i < entries; i++)
        if (rechain_qcow2_refblock_get (block, order, i) != model[i])
          g_error ("order %u entry %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT " != %" G_GUINT64_FORMAT,
                   order, i, rechain_qcow2_refblock_get (block, order, i), model[i]);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/format/l2/geometry", test_geometry);
  g_test_add_func ("/format/l2/l1", test_l1);
  g_test_add_func ("/format/l2/standard", test_l2_standard);
  g_test_add_func ("/format/l2/compressed", test_l2_compressed);
  g_test_add_func ("/format/l2/compressed-invalid", test_l2_compressed_invalid);
  g_test_add_func ("/format/l2/extended", test_l2_extended);
  g_test_add_func ("/format/l2/extended-table", test_l2_extended_table);
  g_test_add_func ("/format/refcount/layout", test_refcount_layout);
  g_test_add_func ("/format/refcount/random", test_refcount_random);

  return g_test_run ();
}
