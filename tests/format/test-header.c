/* test-header.c: crafted-buffer tests of rechain_qcow2_header_parse and
 * friends. Each test starts from a valid header built in memory and breaks
 * exactly one rule.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"

/* ---- An image header under construction ---- */

typedef struct {
  guint8 *buf;
  gsize len;        /* bytes handed to the parser */
  gsize cluster;    /* allocated size of buf */
  guint64 file_size;
  gsize ext_pos;    /* where the next extension goes */
} Img;

static void
put32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_BE (v);
  memcpy (p, &v, 4);
}

static void
put64 (guint8 *p, guint64 v)
{
  v = GUINT64_TO_BE (v);
  memcpy (p, &v, 8);
}

static guint32
get32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_BE (v);
}

static guint64
get64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, 8);
  return GUINT64_FROM_BE (v);
}

/* A valid image: 1 GiB virtual size, refcount table in cluster 1, L1 table in
 * cluster 3, 16 clusters of file. v3 headers are 112 bytes long (with the
 * compression type byte), as QEMU writes them. */
static Img *
img_new (guint32 version, guint32 cluster_bits)
{
  Img *img = g_new0 (Img, 1);
  gsize cs = (gsize) 1 << cluster_bits;
  guint64 per_l1 = (guint64) cs * (cs / 8);

  img->cluster = cs;
  img->len = cs;
  img->buf = g_malloc0 (cs);
  img->file_size = 16 * (guint64) cs;
  {
    /* small clusters need a bigger L1 table than fits in 16 clusters */
    guint64 l1_bytes = ((G_GUINT64_CONSTANT (1) << 30) + per_l1 - 1) / per_l1 * 8;

    if (3 * (guint64) cs + l1_bytes > img->file_size)
      img->file_size = 3 * (guint64) cs + ((l1_bytes + cs - 1) & ~(guint64) (cs - 1)) + 16 * (guint64) cs;
  }

  put32 (img->buf, RECHAIN_QCOW2_MAGIC);
  put32 (img->buf + 4, version);
  put32 (img->buf + 20, cluster_bits);
  put64 (img->buf + 24, G_GUINT64_CONSTANT (1) << 30);
  put32 (img->buf + 36, (guint32) (((G_GUINT64_CONSTANT (1) << 30) + per_l1 - 1) / per_l1));
  put64 (img->buf + 40, 3 * (guint64) cs);
  put64 (img->buf + 48, cs);
  put32 (img->buf + 56, 1);
  if (version >= 3)
    {
      put32 (img->buf + 96, 4);
      put32 (img->buf + 100, 112);
      img->ext_pos = 112;
    }
  else
    img->ext_pos = 72;
  return img;
}

static void
img_free (Img *img)
{
  g_free (img->buf);
  g_free (img);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Img, img_free)

/* Appends an extension (padded to 8) followed by a zero end marker. */
static void
img_add_ext (Img *img, guint32 type, const void *data, gsize len)
{
  gsize padded = (len + 7) & ~(gsize) 7;

  g_assert_cmpuint (img->ext_pos + 8 + padded + 8, <=, img->cluster);
  put32 (img->buf + img->ext_pos, type);
  put32 (img->buf + img->ext_pos + 4, (guint32) len);
  if (len > 0)
    memcpy (img->buf + img->ext_pos + 8, data, len);
  img->ext_pos += 8 + padded;
  memset (img->buf + img->ext_pos, 0, 8);
}

/* Stores the backing name after the end marker, as QEMU does. */
static void
img_set_backing (Img *img, const char *name)
{
  gsize off = img->ext_pos + 8;
  gsize n = strlen (name);

  memcpy (img->buf + off, name, n);
  put64 (img->buf + 8, off);
  put32 (img->buf + 16, (guint32) n);
}

static void
img_set_incompat (Img *img, guint64 bits)
{
  put64 (img->buf + 72, bits);
}

static void
img_set_autoclear (Img *img, guint64 bits)
{
  put64 (img->buf + 88, bits);
}

static RechainQcow2Header *
img_parse (Img *img, GError **error)
{
  return rechain_qcow2_header_parse (img->buf, img->len, img->file_size, error);
}

static RechainQcow2Header *
img_parse_ok (Img *img)
{
  g_autoptr (GError) error = NULL;
  RechainQcow2Header *h = img_parse (img, &error);

  g_assert_no_error (error);
  g_assert_nonnull (h);
  return h;
}

static void
img_expect_error (Img *img, int code, const char *substring)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) h = img_parse (img, &error);

  g_assert_null (h);
  g_assert_error (error, RECHAIN_ERROR, code);
  if (strstr (error->message, substring) == NULL)
    g_error ("message \"%s\" does not contain \"%s\"", error->message, substring);
  g_test_message ("expected error: %s", error->message);
}

static void
img_expect_invalid (Img *img, const char *substring)
{
  img_expect_error (img, RECHAIN_ERROR_INVALID_IMAGE, substring);
}

static void
bitmaps_ext (guint8 out[24], guint32 nb, guint32 reserved, guint64 dir_size,
             guint64 dir_offset)
{
  put32 (out, nb);
  put32 (out + 4, reserved);
  put64 (out + 8, dir_size);
  put64 (out + 16, dir_offset);
}

static void
feature_entry (guint8 out[48], guint8 type, guint8 bit, const char *name)
{
  memset (out, 0, 48);
  out[0] = type;
  out[1] = bit;
  memcpy (out + 2, name, MIN (strlen (name), 46));
}

/* ---- Valid headers ---- */

static void
test_valid_v2 (void)
{
  g_autoptr (Img) img = img_new (2, 16);
  g_autoptr (RechainQcow2Header) h = NULL;
  RechainQcow2Geometry g;

  /* Bytes 72.. must be ignored by a v2 parser. */
  memset (img->buf + 72, 0xff, 32);
  memset (img->buf + 72, 0, 8); /* still an end marker at 72 */
  img_set_backing (img, "base.img");
  h = img_parse_ok (img);
  g_assert_cmpuint (h->version, ==, 2);
  g_assert_cmpuint (h->header_length, ==, 72);
  g_assert_cmpuint (h->refcount_order, ==, 4);
  g_assert_cmpuint (h->cluster_bits, ==, 16);
  g_assert_cmpuint (h->size, ==, G_GUINT64_CONSTANT (1) << 30);
  g_assert_cmpuint (h->l1_size, ==, 2);
  g_assert_cmpuint (h->l1_table_offset, ==, 3 * 65536);
  g_assert_cmpuint (h->refcount_table_offset, ==, 65536);
  g_assert_cmpuint (h->incompatible_features, ==, 0);
  g_assert_cmpstr (h->backing_file, ==, "base.img");
  g_assert_cmpuint (h->backing_file_offset, ==, 80);
  g_assert_cmpuint (h->backing_file_size, ==, 8);
  g_assert_null (h->backing_format);
  g_assert_cmpuint (h->extensions->len, ==, 0);
  g_assert_null (h->extra_header);

  rechain_qcow2_geometry_init (&g, h);
  g_assert_false (g.zero_flag_allowed);
  g_assert_false (g.extended_l2);
}

static void
test_valid_v3 (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;
  guint8 ft[2 * 48];
  guint8 unk[5] = { 1, 2, 3, 4, 5 };

  feature_entry (ft, 0, 0, "dirty bit");
  feature_entry (ft + 48, 1, 0, "lazy refcounts");
  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, "qcow2", 5);
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, ft, sizeof ft);
  img_add_ext (img, 0x12345678, unk, sizeof unk);
  img_add_ext (img, 0x12345678, unk, 3); /* unknown types may repeat */
  img_set_backing (img, "/images/base.qcow2");
  put64 (img->buf + 80, RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS);
  put64 (img->buf + 88, 1ull << 40); /* unknown autoclear: fine */
  h = img_parse_ok (img);

  g_assert_cmpuint (h->version, ==, 3);
  g_assert_cmpuint (h->header_length, ==, 112);
  g_assert_cmpuint (h->compression_type, ==, 0);
  g_assert_cmpuint (h->compatible_features, ==, RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS);
  g_assert_cmpuint (h->autoclear_features, ==, 1ull << 40);
  g_assert_cmpstr (h->backing_file, ==, "/images/base.qcow2");
  g_assert_cmpstr (h->backing_format, ==, "qcow2");
  g_assert_cmpuint (h->extensions->len, ==, 4);
  g_assert_nonnull (h->extra_header);
  g_assert_cmpuint (g_bytes_get_size (h->extra_header), ==, 7);
  {
    const RechainQcow2Extension *e = g_ptr_array_index (h->extensions, 2);
    gsize n;
    const guint8 *d = g_bytes_get_data (e->data, &n);

    g_assert_cmpuint (e->type, ==, 0x12345678);
    g_assert_cmpmem (d, n, unk, sizeof unk);
  }
  g_assert_cmpuint (h->feature_names->len, ==, 2);
  g_assert_cmpstr (rechain_qcow2_header_feature_name (h, 0, 0), ==, "dirty bit");
  g_assert_cmpstr (rechain_qcow2_header_feature_name (h, 1, 0), ==, "lazy refcounts");
  g_assert_null (rechain_qcow2_header_feature_name (h, 2, 0));
  g_assert_null (rechain_qcow2_header_feature_name (h, 0, 1));
}

static void
test_valid_small_buffer (void)
{
  /* A file shorter than one cluster: only its bytes are given. */
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;

  img_set_backing (img, "base");
  img->len = 124;
  h = img_parse_ok (img);
  g_assert_cmpstr (h->backing_file, ==, "base");
}

static void
test_dirty_corrupt_reported (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;

  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_DIRTY | RECHAIN_QCOW2_INCOMPAT_CORRUPT);
  h = img_parse_ok (img);
  g_assert_cmpuint (h->incompatible_features, ==,
                    RECHAIN_QCOW2_INCOMPAT_DIRTY | RECHAIN_QCOW2_INCOMPAT_CORRUPT);
}

static void
test_extra_header (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;
  const guint8 *d;
  gsize n;

  put32 (img->buf + 100, 128);
  for (int i = 105; i < 128; i++)
    img->buf[i] = (guint8) i;
  img->ext_pos = 128;
  h = img_parse_ok (img);
  g_assert_cmpuint (h->header_length, ==, 128);
  g_assert_cmpuint (h->compression_type, ==, 0);
  d = g_bytes_get_data (h->extra_header, &n);
  g_assert_cmpuint (n, ==, 23);
  g_assert_cmpmem (d, n, img->buf + 105, 23);

  /* header_length 104: no compression type field, no extra bytes */
  g_clear_pointer (&h, rechain_qcow2_header_free);
  put32 (img->buf + 100, 104);
  memset (img->buf + 104, 0, 24);
  h = img_parse_ok (img);
  g_assert_null (h->extra_header);
  g_assert_cmpuint (h->compression_type, ==, 0);
}

static void
test_extl2_geometry (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;
  RechainQcow2Geometry g;

  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_EXTL2);
  put32 (img->buf + 36, 4); /* 1 GiB / (64 KiB * 4096) */
  h = img_parse_ok (img);
  rechain_qcow2_geometry_init (&g, h);
  g_assert_true (g.extended_l2);
  g_assert_cmpuint (g.l2_bits, ==, 12);
  g_assert_cmpuint (g.l2_entries, ==, 4096);
  g_assert_cmpuint (g.subclusters, ==, 32);
  g_assert_cmpuint (g.subcluster_bits, ==, 11);
  g_assert_cmpuint (g.subcluster_size, ==, 2048);
  g_assert_cmpuint (g.compressed_offset_bits, ==, 54);
  g_assert_false (g.zero_flag_allowed);
  g_assert_false (g.external_data);
}

/* ---- Fixed fields ---- */

static void
test_too_short (void)
{
  g_autoptr (Img) img = img_new (2, 16);

  img->len = 71;
  img_expect_invalid (img, "too short");
  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img->len = 100;
  img_expect_invalid (img, "too short");
  img->len = 0;
  img_expect_invalid (img, "too short");
}

static void
test_magic (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  put32 (img->buf, 0x514649fa);
  img_expect_invalid (img, "magic 0x514649fa");
}

static void
test_version (void)
{
  static const guint32 versions[] = { 0, 1, 4, 0xffffffff };

  for (gsize i = 0; i < G_N_ELEMENTS (versions); i++)
    {
      g_autoptr (Img) img = img_new (3, 16);
      g_autofree char *s = g_strdup_printf ("version %u", versions[i]);

      put32 (img->buf + 4, versions[i]);
      img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, s);
    }
}

static void
test_cluster_bits (void)
{
  static const guint32 bad[] = { 0, 8, 22, 30, 0xffffffff };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (Img) img = img_new (3, 16);
      g_autofree char *s = g_strdup_printf ("cluster_bits %u is out of range (9..21)", bad[i]);

      put32 (img->buf + 20, bad[i]);
      img_expect_invalid (img, s);
    }
  for (guint32 bits = 9; bits <= 21; bits++)
    {
      g_autoptr (Img) img = img_new (3, bits);
      g_autoptr (RechainQcow2Header) h = img_parse_ok (img);

      g_assert_cmpuint (rechain_qcow2_cluster_size (h), ==, 1u << bits);
    }
}

static void
test_extl2_cluster_bits (void)
{
  g_autoptr (Img) img = img_new (3, 13);

  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_EXTL2);
  put32 (img->buf + 36, 64);
  img_expect_invalid (img, "cluster_bits 13 is too small for extended L2");
}

static void
test_header_length (void)
{
  g_autoptr (Img) img = img_new (3, 9);

  put32 (img->buf + 100, 96);
  img_expect_invalid (img, "header_length 96 is out of range");
  put32 (img->buf + 100, 0);
  img_expect_invalid (img, "header_length 0 is out of range");
  put32 (img->buf + 100, 108);
  img_expect_invalid (img, "header_length 108 is not a multiple of 8");
  put32 (img->buf + 100, 520);
  img_expect_invalid (img, "header_length 520 is out of range (104..512)");
  put32 (img->buf + 100, 0xfffffff8);
  img_expect_invalid (img, "header_length 4294967288");
  /* longer than the buffer (a file of 104 bytes) */
  put32 (img->buf + 100, 112);
  img->len = 104;
  img_expect_invalid (img, "header_length 112 extends past the end");
}

static void
test_refcount_order (void)
{
  for (guint32 order = 0; order <= 8; order++)
    {
      g_autoptr (Img) img = img_new (3, 16);
      g_autoptr (GError) error = NULL;
      g_autoptr (RechainQcow2Header) h = NULL;

      put32 (img->buf + 96, order);
      h = img_parse (img, &error);
      if (order <= 6)
        {
          g_assert_no_error (error);
          g_assert_cmpuint (h->refcount_order, ==, order);
        }
      else
        {
          g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
          g_assert_nonnull (strstr (error->message, "refcount_order"));
        }
    }
  {
    /* v2: the field does not exist, the order is always 4 */
    g_autoptr (Img) img = img_new (2, 16);
    g_autoptr (RechainQcow2Header) h = NULL;

    put32 (img->buf + 96, 9);
    h = img_parse_ok (img);
    g_assert_cmpuint (h->refcount_order, ==, 4);
  }
}

static void
test_unknown_incompat (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  guint8 ft[3 * 48];

  img_set_incompat (img, 1ull << 5);
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, "bit 5");
  img_set_incompat (img, (1ull << 5) | (1ull << 63) | RECHAIN_QCOW2_INCOMPAT_DIRTY);
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, "incompatible_features 0x8000000000000020: bit 5, bit 63");

  /* The feature name table names the bit. An autoclear entry for bit 5 must
   * not be mistaken for it. */
  feature_entry (ft, 2, 5, "wrong table");
  feature_entry (ft + 48, 0, 5, "frobnicated clusters");
  feature_entry (ft + 96, 0, 63, "0123456789012345678901234567890123456789012345");
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, ft, sizeof ft);
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED,
                    "bit 5 (frobnicated clusters), bit 63 (0123456789012345678901234567890123456789012345)");
}

static void
test_compression_type (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;

  /* zstd, properly flagged */
  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_COMPRESSION);
  img->buf[104] = 1;
  h = img_parse_ok (img);
  g_assert_cmpuint (h->compression_type, ==, RECHAIN_QCOW2_COMPRESSION_ZSTD);

  /* bit set, field zero */
  img->buf[104] = 0;
  img_expect_invalid (img, "compression_type is 0");
  /* bit set, field absent */
  put32 (img->buf + 100, 104);
  img_expect_invalid (img, "header_length 104 has no compression_type field");
  put32 (img->buf + 100, 112);
  /* field set, bit clear */
  img_set_incompat (img, 0);
  img->buf[104] = 1;
  img_expect_invalid (img, "compression_type 1 is set but the compression type bit is not");
  /* unknown type */
  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_COMPRESSION);
  img->buf[104] = 2;
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, "compression_type 2 is not supported");
  img->buf[104] = 0xff;
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, "compression_type 255");
}

static void
test_encryption (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  guint8 crypto[16];

  /* Encrypted images parse: what needs their data refuses them later, and
   * an unsafe rebase keeps these fields byte for byte. */
  put32 (img->buf + 32, 1);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_cmpuint (h->crypt_method, ==, RECHAIN_QCOW2_CRYPT_AES);
  }
  put32 (img->buf + 32, 3);
  img_expect_invalid (img, "crypt_method 3");
  put32 (img->buf + 32, 0xffffffff);
  img_expect_invalid (img, "crypt_method 4294967295");

  /* LUKS without the pointer to its LUKS header is malformed */
  put32 (img->buf + 32, 2);
  img_expect_invalid (img, "pointer extension is missing");
  put64 (crypto, 4 * 65536);
  put64 (crypto + 8, 2048);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_cmpuint (h->crypt_method, ==, RECHAIN_QCOW2_CRYPT_LUKS);
    g_assert_true (h->has_crypto_ext);
    g_assert_cmpuint (h->crypto_header_offset, ==, 4 * 65536);
    g_assert_cmpuint (h->crypto_header_length, ==, 2048);
  }

  /* v2 AES images exist too */
  {
    g_autoptr (Img) v2 = img_new (2, 16);
    g_autoptr (RechainQcow2Header) h = NULL;
    put32 (v2->buf + 32, 1);
    h = img_parse_ok (v2);
    g_assert_cmpuint (h->crypt_method, ==, RECHAIN_QCOW2_CRYPT_AES);
  }
}

static void
test_crypto_ext (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  guint8 crypto[16];

  put64 (crypto, 4 * 65536);
  put64 (crypto + 8, 2048);
  /* without LUKS */
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  img_expect_invalid (img, "crypt_method 0");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  put32 (img->buf + 32, 2);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, 8);
  img_expect_invalid (img, "length 8 is not 16");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  put32 (img->buf + 32, 2);
  put64 (crypto, 4 * 65536 + 512);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  img_expect_invalid (img, "crypto_header_offset 0x40200");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  put32 (img->buf + 32, 2);
  put64 (crypto, 15 * 65536);
  put64 (crypto + 8, 65537);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  img_expect_invalid (img, "crypto_header_offset 0xf0000");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  put32 (img->buf + 32, 2);
  put64 (crypto, 4 * 65536);
  put64 (crypto + 8, 2048);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  img_add_ext (img, RECHAIN_QCOW2_EXT_CRYPTO, crypto, sizeof crypto);
  img_expect_invalid (img, "duplicate full disk encryption header pointer");
}

static void
test_virtual_size (void)
{
  g_autoptr (Img) img = img_new (3, 21);

  put64 (img->buf + 24, (G_GUINT64_CONSTANT (1) << 62) + 1);
  put32 (img->buf + 36, 4u << 20);
  img_expect_invalid (img, "virtual size 4611686018427387905 exceeds the maximum of 2^62");
  put64 (img->buf + 24, G_MAXUINT64);
  img_expect_invalid (img, "virtual size 18446744073709551615");
}

static void
test_l1 (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;

  /* l1_size exactly enough (2 for 1 GiB at 64 KiB) and larger are fine */
  put32 (img->buf + 36, 3);
  h = img_parse_ok (img);
  g_clear_pointer (&h, rechain_qcow2_header_free);

  put32 (img->buf + 36, 1);
  img_expect_invalid (img, "l1_size 1 is too small for the virtual size 1073741824 (needs 2 entries)");
  put32 (img->buf + 36, 0);
  img_expect_invalid (img, "l1_size 0 is too small");

  /* one byte more needs another entry */
  put32 (img->buf + 36, 2);
  put64 (img->buf + 24, (G_GUINT64_CONSTANT (1) << 30) + 1);
  img_expect_invalid (img, "l1_size 2 is too small for the virtual size 1073741825 (needs 3 entries)");
  put64 (img->buf + 24, G_GUINT64_CONSTANT (1) << 30);

  put32 (img->buf + 36, (32u << 20) / 8 + 1);
  img_expect_invalid (img, "l1_size 4194305 (33554440 bytes) exceeds the maximum L1 table size");
  put32 (img->buf + 36, 0xffffffff);
  img_expect_invalid (img, "l1_size 4294967295");
  put32 (img->buf + 36, 2);

  put64 (img->buf + 40, 3 * 65536 + 512);
  img_expect_invalid (img, "l1_table_offset 0x30200 is not aligned to the cluster size (65536)");
  put64 (img->buf + 40, 0);
  img_expect_invalid (img, "l1_table_offset is 0 but l1_size is 2");
  put64 (img->buf + 40, 16 * 65536);
  img_expect_invalid (img, "L1 table at offset 0x100000 (l1_size 2) extends past the end of the file (size 1048576)");
  put64 (img->buf + 40, G_MAXUINT64 & ~G_GUINT64_CONSTANT (0xffff));
  img_expect_invalid (img, "l1_table_offset 0xffffffffffff0000 (l1_size 2) is beyond the largest offset");
  put64 (img->buf + 40, G_GUINT64_CONSTANT (0x7fffffffffff0000));
  img_expect_invalid (img, "extends past the end of the file");
  /* ends exactly at the end of the file: fine */
  put64 (img->buf + 40, 16 * 65536 - 16);
  img_expect_invalid (img, "not aligned"); /* (still must be aligned) */
  put64 (img->buf + 40, 15 * 65536);
  h = img_parse_ok (img);
  g_clear_pointer (&h, rechain_qcow2_header_free);

  /* empty image: no L1 table needed, even at offset 0 */
  put64 (img->buf + 24, 0);
  put32 (img->buf + 36, 0);
  put64 (img->buf + 40, 0);
  h = img_parse_ok (img);
  g_clear_pointer (&h, rechain_qcow2_header_free);
  /* ... nor in the file; but, as for QEMU ("Active L1 table offset
   * invalid"), aligned and not beyond INT64_MAX */
  put64 (img->buf + 40, G_GUINT64_CONSTANT (0x7fffffffffff0000));
  h = img_parse_ok (img);
  put64 (img->buf + 40, G_GUINT64_CONSTANT (0x8000000000000000));
  img_expect_invalid (img, "l1_table_offset 0x8000000000000000 (l1_size 0) is beyond the largest "
                      "offset a qcow2 table may end at (0x7fffffffffffffff)");
}

static void
test_l1_extl2 (void)
{
  /* With extended L2 an L2 table maps half as much: 1 GiB at 64 KiB needs 4
   * L1 entries instead of 2. */
  g_autoptr (Img) img = img_new (3, 16);

  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_EXTL2);
  put32 (img->buf + 36, 2);
  img_expect_invalid (img, "l1_size 2 is too small for the virtual size 1073741824 (needs 4 entries)");
  put32 (img->buf + 36, 4);
  rechain_qcow2_header_free (img_parse_ok (img));
}

static void
test_l1_cluster_sizes (void)
{
  /* A 2 GiB disk needs 2^31 / (cs * cs / 8) entries. */
  for (guint32 bits = 9; bits <= 21; bits++)
    {
      g_autoptr (Img) img = img_new (3, bits);
      guint64 cs = G_GUINT64_CONSTANT (1) << bits;
      guint64 per = cs * (cs / 8);
      guint64 needed = ((G_GUINT64_CONSTANT (1) << 31) + per - 1) / per;
      g_autofree char *s = NULL;

      img->file_size = 4096 * cs;
      put64 (img->buf + 24, G_GUINT64_CONSTANT (1) << 31);
      put32 (img->buf + 36, (guint32) needed);
      rechain_qcow2_header_free (img_parse_ok (img));
      if (needed > 1)
        {
          put32 (img->buf + 36, (guint32) needed - 1);
          s = g_strdup_printf ("needs %" G_GUINT64_FORMAT " entries", needed);
          img_expect_invalid (img, s);
        }
    }
}

static void
test_refcount_table (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  put64 (img->buf + 48, 65536 + 8);
  img_expect_invalid (img, "refcount_table_offset 0x10008 is not aligned");
  put64 (img->buf + 48, 0);
  img_expect_invalid (img, "refcount_table_offset is 0 but refcount_table_clusters is 1");
  put64 (img->buf + 48, 65536);
  put32 (img->buf + 56, 0);
  img_expect_invalid (img, "refcount_table_clusters is 0");
  put32 (img->buf + 56, 129);
  img_expect_invalid (img, "refcount_table_clusters 129 (8454144 bytes) exceeds the maximum refcount table size");
  put32 (img->buf + 56, 0xffffffff);
  img_expect_invalid (img, "refcount_table_clusters 4294967295");
  put32 (img->buf + 56, 16);
  img_expect_invalid (img, "refcount table at offset 0x10000 (refcount_table_clusters 16) extends past the end of the file");
  put32 (img->buf + 56, 15);
  rechain_qcow2_header_free (img_parse_ok (img));
  put32 (img->buf + 56, 1);
  put64 (img->buf + 48, 16 * 65536);
  img_expect_invalid (img, "refcount table at offset 0x100000");
}

static void
test_snapshots_fields (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;

  /* no snapshots: QEMU still wants the offset aligned and the (empty)
   * table to end by INT64_MAX ("Snapshot table offset invalid"); past the
   * end of the file is fine then */
  put64 (img->buf + 64, 12345);
  img_expect_invalid (img, "snapshots_offset 0x3039 is not aligned to the cluster size (65536)");
  put64 (img->buf + 64, G_GUINT64_CONSTANT (0x8000000000000000));
  img_expect_invalid (img, "snapshots_offset 0x8000000000000000 (nb_snapshots 0) is beyond the "
                      "largest offset a qcow2 table may end at (0x7fffffffffffffff)");
  put64 (img->buf + 64, G_GUINT64_CONSTANT (0x7fffffffffff0000));
  h = img_parse_ok (img);
  g_clear_pointer (&h, rechain_qcow2_header_free);
  put64 (img->buf + 64, 0);
  h = img_parse_ok (img);
  g_clear_pointer (&h, rechain_qcow2_header_free);

  put64 (img->buf + 64, 12345);
  put32 (img->buf + 60, 2);
  img_expect_invalid (img, "snapshots_offset 0x3039 is not aligned");
  /* 65536 entries of 40 bytes at least from 0x7fffffffffef0000: past INT64_MAX */
  put32 (img->buf + 60, RECHAIN_QCOW2_MAX_SNAPSHOTS);
  put64 (img->buf + 64, G_GUINT64_CONSTANT (0x7fffffffffef0000));
  img_expect_invalid (img, "snapshots_offset 0x7fffffffffef0000 (nb_snapshots 65536) is beyond");
  put32 (img->buf + 60, 2);
  put64 (img->buf + 64, 0);
  img_expect_invalid (img, "snapshots_offset is 0 but nb_snapshots is 2");
  put64 (img->buf + 64, 16 * 65536);
  img_expect_invalid (img, "snapshots_offset 0x100000 (nb_snapshots 2) is past the end of the file");
  put64 (img->buf + 64, 5 * 65536);
  h = img_parse_ok (img);
  g_assert_cmpuint (h->nb_snapshots, ==, 2);
  put32 (img->buf + 60, RECHAIN_QCOW2_MAX_SNAPSHOTS + 1);
  img_expect_invalid (img, "nb_snapshots 65537 exceeds the maximum of 65536");
}

/* ---- Extensions ---- */

static void
test_ext_truncated (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  /* The backing name starts 4 bytes after the header, leaving half an
   * extension header in between. */
  put32 (img->buf + 112, 0x12345678);
  memcpy (img->buf + 116, "base", 4);
  put64 (img->buf + 8, 116);
  put32 (img->buf + 16, 4);
  img_expect_invalid (img, "header extension at offset 0x70 is truncated");
}

static void
test_ext_too_long (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  img_add_ext (img, 0x12345678, "abc", 3);
  put32 (img->buf + 116, 65536 - 112 - 8 + 1);
  img_expect_invalid (img, "length 65417 extends past the end of the header area");
  put32 (img->buf + 116, 0xffffffff);
  img_expect_invalid (img, "length 4294967295");
  /* exactly filling the cluster is fine (no end marker needed) */
  put32 (img->buf + 116, 65536 - 112 - 8);
  rechain_qcow2_header_free (img_parse_ok (img));

  /* with a backing file, the area ends where the name starts */
  put32 (img->buf + 116, 16);
  put64 (img->buf + 8, 130);
  put32 (img->buf + 16, 4);
  memcpy (img->buf + 130, "base", 4);
  img_expect_invalid (img, "length 16 extends past the end of the header area (offset 0x82)");

  /* the area is also bounded by the bytes actually given */
  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, 0x12345678, "abcdefghijklmnop", 16);
  img->len = 130;
  img_expect_invalid (img, "length 16 extends past the end of the header area (offset 0x82)");
}

static void
test_ext_count (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  for (guint i = 0; i < RECHAIN_QCOW2_MAX_EXTENSIONS; i++)
    img_add_ext (img, 0x1000 + i, NULL, 0);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_cmpuint (h->extensions->len, ==, RECHAIN_QCOW2_MAX_EXTENSIONS);
  }
  img_add_ext (img, 0x2000, NULL, 0);
  img_expect_invalid (img, "more than 64 header extensions");
}

static void
test_ext_duplicates (void)
{
  static const struct {
    guint32 type;
    const char *name;
  } known[] = {
    { RECHAIN_QCOW2_EXT_BACKING_FORMAT, "duplicate backing format header extension" },
    { RECHAIN_QCOW2_EXT_DATA_FILE, "duplicate external data file name header extension" },
    { RECHAIN_QCOW2_EXT_FEATURE_TABLE, "duplicate feature name table header extension" },
    { RECHAIN_QCOW2_EXT_BITMAPS, "duplicate bitmaps header extension" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (known); i++)
    {
      g_autoptr (Img) img = img_new (3, 16);
      guint8 data[48];

      memset (data, 0, sizeof data);
      if (known[i].type == RECHAIN_QCOW2_EXT_BITMAPS)
        bitmaps_ext (data, 1, 0, 64, 4 * 65536);
      else if (known[i].type == RECHAIN_QCOW2_EXT_FEATURE_TABLE)
        feature_entry (data, 0, 0, "dirty bit");
      else
        memcpy (data, "qcow2", 5);
      img_add_ext (img, known[i].type, data,
                   known[i].type == RECHAIN_QCOW2_EXT_FEATURE_TABLE ? 48 :
                   known[i].type == RECHAIN_QCOW2_EXT_BITMAPS ? 24 : 5);
      rechain_qcow2_header_free (img_parse_ok (img));
      img_add_ext (img, known[i].type, data,
                   known[i].type == RECHAIN_QCOW2_EXT_FEATURE_TABLE ? 48 :
                   known[i].type == RECHAIN_QCOW2_EXT_BITMAPS ? 24 : 5);
      img_expect_invalid (img, known[i].name);
    }
}

static void
test_ext_backing_format (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autofree char *longname = g_strnfill (1024, 'x');

  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, NULL, 0);
  img_expect_invalid (img, "backing format header extension is empty");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, "qc\0w2", 5);
  img_expect_invalid (img, "backing format header extension (length 5) contains a NUL byte");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, longname, 1024);
  img_expect_invalid (img, "backing format header extension length 1024 exceeds the maximum");

  /* not NUL-terminated and padded with garbage: the length counts */
  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, "rawXXXXX", 8);
  put32 (img->buf + 116, 3);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_cmpstr (h->backing_format, ==, "raw");
  }
}

static void
test_ext_data_file (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_DATA_FILE);
  img_add_ext (img, RECHAIN_QCOW2_EXT_DATA_FILE, "disk.raw", 8);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    RechainQcow2Geometry g;

    g_assert_cmpstr (h->data_file, ==, "disk.raw");
    rechain_qcow2_geometry_init (&g, h);
    g_assert_true (g.external_data);
    g_assert_true (g.zero_flag_allowed);
  }

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_DATA_FILE, NULL, 0);
  img_expect_invalid (img, "external data file name header extension is empty");

  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_DATA_FILE, "a\0b", 3);
  img_expect_invalid (img, "external data file name header extension (length 3) contains a NUL byte");
}

static void
test_ext_feature_table (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  guint8 ft[96];

  memset (ft, 0, sizeof ft);
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, ft, 47);
  img_expect_invalid (img, "feature name table header extension length 47 is not a multiple of 48");

  /* names with control characters are made printable */
  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  feature_entry (ft, 0, 7, "bad\x1b[31mname\xff");
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, ft, 48);
  img_set_incompat (img, 1ull << 7);
  img_expect_error (img, RECHAIN_ERROR_UNSUPPORTED, "bit 7 (bad?[31mname?)");

  /* empty table is allowed */
  img_free (g_steal_pointer (&img));
  img = img_new (3, 16);
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, NULL, 0);
  rechain_qcow2_header_free (img_parse_ok (img));
}

static void
test_ext_bitmaps (void)
{
  guint8 bm[32];

  {
    g_autoptr (Img) img = img_new (3, 16);
    g_autoptr (RechainQcow2Header) h = NULL;

    bitmaps_ext (bm, 2, 0, 96, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_set_autoclear (img, RECHAIN_QCOW2_AUTOCLEAR_BITMAPS);
    h = img_parse_ok (img);
    g_assert_true (h->has_bitmaps_ext);
    g_assert_cmpuint (h->nb_bitmaps, ==, 2);
    g_assert_cmpuint (h->bitmap_directory_size, ==, 96);
    g_assert_cmpuint (h->bitmap_directory_offset, ==, 4 * 65536);
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 2, 0, 96, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 16);
    img_expect_invalid (img, "bitmaps header extension length 16 is too short");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 0, 0, 96, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "nb_bitmaps is 0");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 65536, 0, 96, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "nb_bitmaps 65536 exceeds the maximum of 65535");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 7, 96, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "reserved field of the bitmaps header extension is 0x7");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 0, 96, 4 * 65536 + 4096);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "bitmap_directory_offset 0x41000 is not a nonzero multiple");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 0, 96, 0);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "bitmap_directory_offset 0x0 is not a nonzero multiple");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 0, 65537, 15 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "bitmap directory at bitmap_directory_offset 0xf0000 (bitmap_directory_size 65537) extends past the end");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 0, G_MAXUINT64, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "bitmap_directory_size 18446744073709551615 exceeds the maximum");
  }
  {
    g_autoptr (Img) img = img_new (3, 16);
    bitmaps_ext (bm, 1, 0, 0, 4 * 65536);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
    img_expect_invalid (img, "bitmap_directory_size is 0");
  }
  {
    /* longer extensions are accepted (and kept raw) */
    g_autoptr (Img) img = img_new (3, 16);
    g_autoptr (RechainQcow2Header) h = NULL;
    bitmaps_ext (bm, 1, 0, 32, 4 * 65536);
    memset (bm + 24, 0xaa, 8);
    img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 32);
    h = img_parse_ok (img);
    g_assert_cmpuint (g_bytes_get_size (((RechainQcow2Extension *) h->extensions->pdata[0])->data), ==, 32);
  }
}

/* ---- Backing file name ---- */

static void
test_backing_name (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  img_set_backing (img, "base.qcow2");
  put64 (img->buf + 8, 100);
  img_expect_invalid (img, "backing_file_offset 0x64 overlaps the header (header_length 112)");

  img_set_backing (img, "base.qcow2");
  put32 (img->buf + 16, 1024);
  img_expect_invalid (img, "backing_file_size 1024 exceeds the maximum of 1023");
  put32 (img->buf + 16, 0xffffffff);
  img_expect_invalid (img, "backing_file_size 4294967295");

  put64 (img->buf + 8, 65536 - 5);
  put32 (img->buf + 16, 10);
  img_expect_invalid (img, "backing file name at backing_file_offset 0xfffb (backing_file_size 10) extends past the first cluster");
  put64 (img->buf + 8, G_MAXUINT64);
  img_expect_invalid (img, "extends past the first cluster");

  /* inside the cluster but past the bytes of a short file */
  img_set_backing (img, "base.qcow2");
  img->len = 125;
  img_expect_invalid (img, "backing file name at backing_file_offset 0x78 (backing_file_size 10) extends past the end of the file (size 125)");
  img->len = 130;
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_cmpstr (h->backing_file, ==, "base.qcow2");
  }
  img->len = img->cluster;

  memcpy (img->buf + 120, "ba\0e", 4);
  img_expect_invalid (img, "backing file name (backing_file_size 10) contains a NUL byte");

  /* size without an offset: "undefined", ignored */
  put64 (img->buf + 8, 0);
  put32 (img->buf + 16, 77);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_null (h->backing_file);
    g_assert_cmpuint (h->backing_file_size, ==, 0);
  }
  /* an offset with size 0: an empty name, i.e. no backing file */
  put64 (img->buf + 8, 120);
  put32 (img->buf + 16, 0);
  {
    g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
    g_assert_null (h->backing_file);
  }
}

static void
test_backing_v2_overlap (void)
{
  g_autoptr (Img) img = img_new (2, 16);

  img_set_backing (img, "base");
  put64 (img->buf + 8, 64);
  img_expect_invalid (img, "backing_file_offset 0x40 overlaps the header (header_length 72)");
}

static void
test_data_file_raw (void)
{
  g_autoptr (Img) img = img_new (3, 16);

  img_set_autoclear (img, RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW);
  img_expect_invalid (img, "data-file-raw bit is set without the external data file bit");
  img_set_incompat (img, RECHAIN_QCOW2_INCOMPAT_DATA_FILE);
  rechain_qcow2_header_free (img_parse_ok (img));
  img_set_backing (img, "base.qcow2");
  img_expect_invalid (img, "data-file-raw bit is set together with a backing file");
}

/* ---- Serialization ---- */

static Img *
rich_image (void)
{
  Img *img = img_new (3, 16);
  guint8 ft[48], bm[24];
  static const guint8 unk[5] = { 0xde, 0xad, 0xbe, 0xef, 0x01 };

  feature_entry (ft, 0, 0, "dirty bit");
  bitmaps_ext (bm, 1, 0, 40, 6 * 65536);
  put32 (img->buf + 100, 120);
  img->buf[112] = 0x42; /* an unknown future header field */
  img->ext_pos = 120;
  img_add_ext (img, RECHAIN_QCOW2_EXT_BACKING_FORMAT, "raw", 3);
  img_add_ext (img, RECHAIN_QCOW2_EXT_FEATURE_TABLE, ft, 48);
  img_add_ext (img, RECHAIN_QCOW2_EXT_BITMAPS, bm, 24);
  img_add_ext (img, 0x7777aaaa, unk, 5);
  img_set_backing (img, "old-base.img");
  img_set_autoclear (img, RECHAIN_QCOW2_AUTOCLEAR_BITMAPS);
  put64 (img->buf + 80, RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS);
  return img;
}

static void
assert_ext (const RechainQcow2Header *h, guint i, guint32 type,
            const void *data, gsize len)
{
  const RechainQcow2Extension *e;
  const guint8 *d;
  gsize n;

  g_assert_cmpuint (i, <, h->extensions->len);
  e = g_ptr_array_index (h->extensions, i);
  g_assert_cmpuint (e->type, ==, type);
  d = g_bytes_get_data (e->data, &n);
  g_assert_cmpmem (d, n, data, len);
}

static void
test_roundtrip (void)
{
  g_autoptr (Img) img = rich_image ();
  g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
  g_autoptr (RechainQcow2Header) h2 = NULL;
  g_autofree guint8 *out = NULL;
  g_autoptr (GError) error = NULL;
  gsize pos;

  /* Unchanged: the serializer reproduces QEMU's layout byte for byte. */
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (out, img->cluster, img->buf, img->cluster);
  g_clear_pointer (&out, g_free);

  rechain_qcow2_header_set_backing (h, "../new/base.qcow2", "qcow2");
  g_assert_cmpstr (h->backing_file, ==, "../new/base.qcow2");
  g_assert_cmpstr (h->backing_format, ==, "qcow2");
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);

  /* layout: header, format ext (replaced in place), feature table, bitmaps,
   * unknown, end marker, backing name */
  g_assert_cmpuint (get32 (out + 120), ==, RECHAIN_QCOW2_EXT_BACKING_FORMAT);
  g_assert_cmpuint (get32 (out + 124), ==, 5);
  g_assert_cmpmem (out + 128, 8, "qcow2\0\0\0", 8);
  pos = 136;
  g_assert_cmpuint (get32 (out + pos), ==, RECHAIN_QCOW2_EXT_FEATURE_TABLE);
  pos += 8 + 48;
  g_assert_cmpuint (get32 (out + pos), ==, RECHAIN_QCOW2_EXT_BITMAPS);
  g_assert_cmpmem (out + pos, 32, img->buf + 120 + 16 + 56, 32);
  pos += 8 + 24;
  g_assert_cmpuint (get32 (out + pos), ==, 0x7777aaaa);
  g_assert_cmpuint (get32 (out + pos + 4), ==, 5);
  g_assert_cmpmem (out + pos + 8, 8, "\xde\xad\xbe\xef\x01\0\0\0", 8);
  pos += 16;
  g_assert_cmpuint (get64 (out + pos), ==, 0);
  pos += 8;
  g_assert_cmpuint (get64 (out + 8), ==, pos);
  g_assert_cmpuint (get32 (out + 16), ==, strlen ("../new/base.qcow2"));
  g_assert_cmpmem (out + pos, strlen ("../new/base.qcow2"), "../new/base.qcow2", strlen ("../new/base.qcow2"));
  g_assert_cmpuint (h->backing_file_offset, ==, pos);
  /* nothing after the name */
  for (gsize i = pos + strlen ("../new/base.qcow2"); i < img->cluster; i++)
    g_assert_cmpuint (out[i], ==, 0);
  /* the unknown header field survived */
  g_assert_cmpuint (out[112], ==, 0x42);
  g_assert_cmpuint (get32 (out + 100), ==, 120);

  h2 = rechain_qcow2_header_parse (out, img->cluster, img->file_size, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (h2->backing_file, ==, "../new/base.qcow2");
  g_assert_cmpstr (h2->backing_format, ==, "qcow2");
  g_assert_cmpuint (h2->size, ==, h->size);
  g_assert_cmpuint (h2->l1_size, ==, h->l1_size);
  g_assert_cmpuint (h2->l1_table_offset, ==, h->l1_table_offset);
  g_assert_cmpuint (h2->refcount_table_offset, ==, h->refcount_table_offset);
  g_assert_cmpuint (h2->compatible_features, ==, RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS);
  g_assert_cmpuint (h2->autoclear_features, ==, RECHAIN_QCOW2_AUTOCLEAR_BITMAPS);
  g_assert_cmpuint (h2->header_length, ==, 120);
  g_assert_cmpmem (g_bytes_get_data (h2->extra_header, NULL), g_bytes_get_size (h2->extra_header),
                   g_bytes_get_data (h->extra_header, NULL), g_bytes_get_size (h->extra_header));
  g_assert_true (h2->has_bitmaps_ext);
  g_assert_cmpuint (h2->bitmap_directory_offset, ==, 6 * 65536);
  g_assert_cmpuint (h2->extensions->len, ==, 4);
  assert_ext (h2, 2, RECHAIN_QCOW2_EXT_BITMAPS, img->buf + 120 + 16 + 56 + 8, 24);
  assert_ext (h2, 3, 0x7777aaaa, "\xde\xad\xbe\xef\x01", 5);
  g_assert_cmpstr (rechain_qcow2_header_feature_name (h2, 0, 0), ==, "dirty bit");
}

static void
test_roundtrip_remove_backing (void)
{
  g_autoptr (Img) img = rich_image ();
  g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
  g_autoptr (RechainQcow2Header) h2 = NULL;
  g_autofree guint8 *out = NULL;
  g_autoptr (GError) error = NULL;

  rechain_qcow2_header_set_backing (h, NULL, NULL);
  g_assert_null (h->backing_file);
  g_assert_null (h->backing_format);
  g_assert_cmpuint (h->extensions->len, ==, 3);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (get64 (out + 8), ==, 0);
  g_assert_cmpuint (get32 (out + 16), ==, 0);
  g_assert_cmpuint (get32 (out + 120), ==, RECHAIN_QCOW2_EXT_FEATURE_TABLE);
  h2 = rechain_qcow2_header_parse (out, img->cluster, img->file_size, &error);
  g_assert_no_error (error);
  g_assert_null (h2->backing_file);
  g_assert_null (h2->backing_format);
  g_assert_cmpuint (h2->extensions->len, ==, 3);
  assert_ext (h2, 2, 0x7777aaaa, "\xde\xad\xbe\xef\x01", 5);

  /* a backing file without a format removes a stale format extension */
  g_clear_pointer (&h2, rechain_qcow2_header_free);
  g_clear_pointer (&out, g_free);
  rechain_qcow2_header_set_backing (h, "b", "qcow2");
  rechain_qcow2_header_set_backing (h, "c", NULL);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  h2 = rechain_qcow2_header_parse (out, img->cluster, img->file_size, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (h2->backing_file, ==, "c");
  g_assert_null (h2->backing_format);
}

static void
test_roundtrip_add_format (void)
{
  g_autoptr (Img) img = img_new (3, 16);
  g_autoptr (RechainQcow2Header) h = NULL;
  g_autoptr (RechainQcow2Header) h2 = NULL;
  g_autofree guint8 *out = NULL;
  g_autoptr (GError) error = NULL;

  img_add_ext (img, 0x11112222, "x", 1);
  h = img_parse_ok (img);
  rechain_qcow2_header_set_backing (h, "base.raw", "raw");
  /* inserted first, as QEMU does */
  assert_ext (h, 0, RECHAIN_QCOW2_EXT_BACKING_FORMAT, "raw", 3);
  assert_ext (h, 1, 0x11112222, "x", 1);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  h2 = rechain_qcow2_header_parse (out, img->cluster, img->file_size, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (h2->backing_file, ==, "base.raw");
  g_assert_cmpstr (h2->backing_format, ==, "raw");
  g_assert_cmpuint (h2->backing_file_offset, ==, 112 + 16 + 16 + 8);
}

static void
test_roundtrip_v2 (void)
{
  g_autoptr (Img) img = img_new (2, 12);
  g_autoptr (RechainQcow2Header) h = NULL;
  g_autoptr (RechainQcow2Header) h2 = NULL;
  g_autofree guint8 *out = NULL;
  g_autoptr (GError) error = NULL;

  img_set_backing (img, "base.img");
  h = img_parse_ok (img);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (out, img->cluster, img->buf, img->cluster);
  g_clear_pointer (&out, g_free);

  rechain_qcow2_header_set_backing (h, "other.img", "qcow2");
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (get32 (out + 4), ==, 2);
  g_assert_cmpuint (get32 (out + 72), ==, RECHAIN_QCOW2_EXT_BACKING_FORMAT);
  h2 = rechain_qcow2_header_parse (out, img->cluster, img->file_size, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (h2->version, ==, 2);
  g_assert_cmpstr (h2->backing_file, ==, "other.img");
  g_assert_cmpstr (h2->backing_format, ==, "qcow2");
  g_assert_cmpuint (h2->backing_file_offset, ==, 72 + 16 + 8);
}

static void
test_serialize_too_big (void)
{
  g_autoptr (Img) img = img_new (3, 9);
  g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_strnfill (1024, 'n');
  g_autofree guint8 *out = NULL;

  /* 512-byte cluster: 112 header + 16 format + 8 end leaves 376 bytes */
  rechain_qcow2_header_set_backing (h, name, "qcow2");
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_null (out);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  name[376] = '\0';
  rechain_qcow2_header_set_backing (h, name, "qcow2");
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (h->backing_file_offset + h->backing_file_size, ==, 512);
  g_clear_pointer (&out, g_free);

  name[376] = 'n';
  name[377] = '\0';
  rechain_qcow2_header_set_backing (h, name, "qcow2");
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_null (out);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
  g_clear_error (&error);

  /* even at 2 MiB clusters, names are limited to 1023 bytes */
  {
    g_autoptr (Img) big = img_new (3, 21);
    g_autoptr (RechainQcow2Header) hb = img_parse_ok (big);
    g_autofree char *n2 = g_strnfill (1024, 'm');

    rechain_qcow2_header_set_backing (hb, n2, NULL);
    out = rechain_qcow2_header_serialize (hb, &error);
    g_assert_null (out);
    g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
    n2[1023] = '\0';
    rechain_qcow2_header_set_backing (hb, n2, NULL);
    out = rechain_qcow2_header_serialize (hb, &error);
    g_assert_no_error (error);
  }
}

static void
test_serialize_extensions_overflow (void)
{
  g_autoptr (Img) img = img_new (3, 9);
  g_autoptr (RechainQcow2Header) h = img_parse_ok (img);
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *out = NULL;
  guint8 junk[400] = { 0 };
  RechainQcow2Extension *e = g_new0 (RechainQcow2Extension, 1);

  e->type = 0x99;
  e->data = g_bytes_new (junk, sizeof junk);
  g_ptr_array_add (h->extensions, e);
  out = rechain_qcow2_header_serialize (h, &error);
  g_assert_null (out);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
}

/* ---- Robustness: random mutations never crash ---- */

static void
test_mutations (void)
{
  g_autoptr (Img) img = rich_image ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (1234);
  g_autofree guint8 *copy = g_malloc (img->cluster);
  guint ok = 0;

  for (int iter = 0; iter < 20000; iter++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (RechainQcow2Header) h = NULL;
      int n = g_rand_int_range (rand, 1, 6);

      memcpy (copy, img->buf, img->cluster);
      for (int i = 0; i < n; i++)
        {
          /* most mutations hit the interesting first 400 bytes */
          gsize at = (gsize) g_rand_int_range (rand, 0, 400);
          copy[at] = (guint8) g_rand_int_range (rand, 0, 256);
        }
      h = rechain_qcow2_header_parse (copy, (gsize) g_rand_int_range (rand, 0, (gint32) img->cluster + 1),
                                      img->file_size, &error);
      if (h != NULL)
        {
          g_autofree guint8 *out = NULL;

          ok++;
          g_assert_no_error (error);
          out = rechain_qcow2_header_serialize (h, &error);
          /* whatever parsed must serialize, except for a changed cluster
           * size that makes it not fit */
          if (out == NULL)
            g_assert_true (g_error_matches (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT) ||
                          g_error_matches (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE));
        }
      else
        {
          g_assert_nonnull (error);
          g_assert_true (error->domain == RECHAIN_ERROR);
          g_assert_true (error->code == RECHAIN_ERROR_INVALID_IMAGE ||
                         error->code == RECHAIN_ERROR_UNSUPPORTED);
        }
    }
  g_test_message ("%u of 20000 mutated headers parsed", ok);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/format/header/valid-v2", test_valid_v2);
  g_test_add_func ("/format/header/valid-v3", test_valid_v3);
  g_test_add_func ("/format/header/valid-small-buffer", test_valid_small_buffer);
  g_test_add_func ("/format/header/dirty-corrupt-reported", test_dirty_corrupt_reported);
  g_test_add_func ("/format/header/extra-header", test_extra_header);
  g_test_add_func ("/format/header/extl2-geometry", test_extl2_geometry);
  g_test_add_func ("/format/header/too-short", test_too_short);
  g_test_add_func ("/format/header/magic", test_magic);
  g_test_add_func ("/format/header/version", test_version);
  g_test_add_func ("/format/header/cluster-bits", test_cluster_bits);
  g_test_add_func ("/format/header/extl2-cluster-bits", test_extl2_cluster_bits);
  g_test_add_func ("/format/header/header-length", test_header_length);
  g_test_add_func ("/format/header/refcount-order", test_refcount_order);
  g_test_add_func ("/format/header/unknown-incompat", test_unknown_incompat);
  g_test_add_func ("/format/header/compression-type", test_compression_type);
  g_test_add_func ("/format/header/encryption", test_encryption);
  g_test_add_func ("/format/header/crypto-ext", test_crypto_ext);
  g_test_add_func ("/format/header/virtual-size", test_virtual_size);
  g_test_add_func ("/format/header/l1", test_l1);
  g_test_add_func ("/format/header/l1-extl2", test_l1_extl2);
  g_test_add_func ("/format/header/l1-cluster-sizes", test_l1_cluster_sizes);
  g_test_add_func ("/format/header/refcount-table", test_refcount_table);
  g_test_add_func ("/format/header/snapshots-fields", test_snapshots_fields);
  g_test_add_func ("/format/header/ext-truncated", test_ext_truncated);
  g_test_add_func ("/format/header/ext-too-long", test_ext_too_long);
  g_test_add_func ("/format/header/ext-count", test_ext_count);
  g_test_add_func ("/format/header/ext-duplicates", test_ext_duplicates);
  g_test_add_func ("/format/header/ext-backing-format", test_ext_backing_format);
  g_test_add_func ("/format/header/ext-data-file", test_ext_data_file);
  g_test_add_func ("/format/header/ext-feature-table", test_ext_feature_table);
  g_test_add_func ("/format/header/ext-bitmaps", test_ext_bitmaps);
  g_test_add_func ("/format/header/backing-name", test_backing_name);
  g_test_add_func ("/format/header/backing-v2-overlap", test_backing_v2_overlap);
  g_test_add_func ("/format/header/data-file-raw", test_data_file_raw);
  g_test_add_func ("/format/header/roundtrip", test_roundtrip);
  g_test_add_func ("/format/header/roundtrip-remove-backing", test_roundtrip_remove_backing);
  g_test_add_func ("/format/header/roundtrip-add-format", test_roundtrip_add_format);
  g_test_add_func ("/format/header/roundtrip-v2", test_roundtrip_v2);
  g_test_add_func ("/format/header/serialize-too-big", test_serialize_too_big);
  g_test_add_func ("/format/header/serialize-extensions-overflow", test_serialize_extensions_overflow);
  g_test_add_func ("/format/header/mutations", test_mutations);

  return g_test_run ();
}
