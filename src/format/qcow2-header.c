/* qcow2-header.c: parsing, validation and serialization of the qcow2 header,
 * its extensions and the backing file name (QEMU docs/interop/qcow2.txt).
 *
 * Everything here works on a caller-supplied buffer: nothing is read from a
 * file, so the parser can be fed arbitrary bytes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"
#include "format/be.h"
#include "rechain/rechain-i18n-private.h"

/* Largest virtual size rechain accepts. The L1 limit already caps what can be
 * mapped at 2^61 bytes (2 MiB clusters); 2^62 leaves room for that while
 * keeping every "size + cluster_size" style computation far from overflow. */
#define MAX_VIRTUAL_SIZE (G_GUINT64_CONSTANT (1) << 62)

/* QEMU stores the bitmap directory in one allocation and caps it; anything
 * bigger is surely corrupt and must not make us allocate. */
#define MAX_BITMAP_DIRECTORY_SIZE (64u * 1024 * 1024)

#define FEATURE_NAME_ENTRY_SIZE 48u
#define BITMAPS_EXT_MIN_SIZE 24u
#define CRYPTO_EXT_SIZE 16u
#define MAX_EXT_STRING 1023u

static inline guint64
round_up8 (guint64 v)
{
  /* Callers only pass values far below G_MAXUINT64. */
  return (v + 7) & ~G_GUINT64_CONSTANT (7);
}

static void
extension_free (gpointer p)
{
  RechainQcow2Extension *ext = p;

  if (ext == NULL)
    return;
  g_clear_pointer (&ext->data, g_bytes_unref);
  g_free (ext);
}

static RechainQcow2Extension *
extension_new (guint32 type, const void *data, gsize len)
{
  RechainQcow2Extension *ext = g_new0 (RechainQcow2Extension, 1);

  ext->type = type;
  ext->data = g_bytes_new (data, len);
  return ext;
}

void
rechain_qcow2_header_free (RechainQcow2Header *header)
{
  if (header == NULL)
    return;
  g_clear_pointer (&header->extra_header, g_bytes_unref);
  g_clear_pointer (&header->extensions, g_ptr_array_unref);
  g_free (header->backing_file);
  g_free (header->backing_format);
  g_free (header->data_file);
  g_clear_pointer (&header->feature_names, g_array_unref);
  g_free (header);
}

static gboolean
invalid (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  g_propagate_error (error, g_error_new_valist (RECHAIN_ERROR,
                                                RECHAIN_ERROR_INVALID_IMAGE,
                                                format, ap));
  va_end (ap);
  return FALSE;
}

static const char *
extension_name (guint32 type)
{
  switch (type)
    {
    case RECHAIN_QCOW2_EXT_BACKING_FORMAT:
      /* TRANSLATORS: the kinds of qcow2 header extension, as in "%s header
       * extension is empty" and "duplicate %s header extension" */
      return _("backing format");
    case RECHAIN_QCOW2_EXT_FEATURE_TABLE:
      return _("feature name table");
    case RECHAIN_QCOW2_EXT_BITMAPS:
      return _("bitmaps");
    case RECHAIN_QCOW2_EXT_CRYPTO:
      return _("full disk encryption header pointer");
    case RECHAIN_QCOW2_EXT_DATA_FILE:
      return _("external data file name");
    default:
      return _("unknown");
    }
}

/* A string extension (backing format, data file name): not NUL-terminated on
 * disk; an embedded NUL would silently truncate the name, so it is refused. */
static char *
parse_string_ext (guint32 type, const guint8 *data, gsize len, GError **error)
{
  if (len == 0)
    {
      invalid (error, _("%s header extension is empty"), extension_name (type));
      return NULL;
    }
  if (len > MAX_EXT_STRING)
    {
      invalid (error, _("%s header extension length %zu exceeds the maximum of %u"),
               extension_name (type), len, MAX_EXT_STRING);
      return NULL;
    }
  if (memchr (data, '\0', len) != NULL)
    {
      invalid (error, _("%s header extension (length %zu) contains a NUL byte"),
               extension_name (type), len);
      return NULL;
    }
  return g_strndup ((const char *) data, len);
}

static gboolean
parse_feature_table (RechainQcow2Header *h, const guint8 *data, gsize len,
                     GError **error)
{
  if (len % FEATURE_NAME_ENTRY_SIZE != 0)
    return invalid (error, _("feature name table header extension length %zu "
                    "is not a multiple of %u"), len, FEATURE_NAME_ENTRY_SIZE);

  h->feature_names = g_array_sized_new (FALSE, TRUE,
                                        sizeof (RechainQcow2FeatureName),
                                        (guint) (len / FEATURE_NAME_ENTRY_SIZE));
  for (gsize pos = 0; pos < len; pos += FEATURE_NAME_ENTRY_SIZE)
    {
      RechainQcow2FeatureName fn = { 0 };

      fn.type = data[pos];
      fn.bit = data[pos + 1];
      memcpy (fn.name, data + pos + 2, sizeof fn.name - 1);
      fn.name[sizeof fn.name - 1] = '\0';
      /* The names end up in error messages: keep them printable ASCII so a
       * crafted table cannot inject control characters or invalid UTF-8. */
      for (char *c = fn.name; *c != '\0'; c++)
        if (!g_ascii_isprint (*c))
          *c = '?';
      g_array_append_val (h->feature_names, fn);
    }
  return TRUE;
}

static gboolean
parse_bitmaps_ext (RechainQcow2Header *h, const guint8 *data, gsize len,
                   guint64 file_size, GError **error)
{
  guint64 cluster_size = rechain_qcow2_cluster_size (h);
  guint32 reserved;

  if (len < BITMAPS_EXT_MIN_SIZE)
    return invalid (error, _("bitmaps header extension length %zu is too short "
                    "(needs at least %u)"), len, BITMAPS_EXT_MIN_SIZE);

  h->nb_bitmaps = rd32 (data);
  reserved = rd32 (data + 4);
  h->bitmap_directory_size = rd64 (data + 8);
  h->bitmap_directory_offset = rd64 (data + 16);

  if (h->nb_bitmaps == 0)
    return invalid (error, _("nb_bitmaps is 0 in the bitmaps header extension"));
  if (h->nb_bitmaps > RECHAIN_QCOW2_MAX_BITMAPS)
    return invalid (error, _("nb_bitmaps %u exceeds the maximum of %u"),
                    h->nb_bitmaps, RECHAIN_QCOW2_MAX_BITMAPS);
  if (reserved != 0)
    return invalid (error, _("reserved field of the bitmaps header extension "
                    "is 0x%x, not 0"), reserved);
  if (h->bitmap_directory_size == 0)
    return invalid (error, _("bitmap_directory_size is 0 with nb_bitmaps %u"),
                    h->nb_bitmaps);
  if (h->bitmap_directory_size > MAX_BITMAP_DIRECTORY_SIZE)
    return invalid (error, _("bitmap_directory_size %" PRIu64
                    " exceeds the maximum of %u"),
                    h->bitmap_directory_size, MAX_BITMAP_DIRECTORY_SIZE);
  if (h->bitmap_directory_offset == 0 ||
      h->bitmap_directory_offset % cluster_size != 0)
    return invalid (error, _("bitmap_directory_offset 0x%" PRIx64
                    " is not a nonzero multiple of the cluster size (%"
                    PRIu64 ")"),
                    h->bitmap_directory_offset, cluster_size);
  /* The size is bounded above, so the sum cannot overflow once the offset is
   * known to be inside the file. */
  if (h->bitmap_directory_offset > file_size ||
      h->bitmap_directory_size > file_size - h->bitmap_directory_offset)
    return invalid (error, _("bitmap directory at bitmap_directory_offset 0x%"
                    PRIx64 " (bitmap_directory_size %"
                    PRIu64 ") extends past the end of the file "
                    "(size %" PRIu64 ")"),
                    h->bitmap_directory_offset, h->bitmap_directory_size,
                    file_size);
  h->has_bitmaps_ext = TRUE;
  return TRUE;
}

static gboolean
parse_crypto_ext (RechainQcow2Header *h, const guint8 *data, gsize len,
                  guint64 file_size, GError **error)
{
  guint64 cluster_size = rechain_qcow2_cluster_size (h);

  if (len != CRYPTO_EXT_SIZE)
    return invalid (error, _("full disk encryption header pointer extension "
                    "length %zu is not %u"), len, CRYPTO_EXT_SIZE);
  /* Only LUKS keeps its metadata outside the header. */
  if (h->crypt_method != RECHAIN_QCOW2_CRYPT_LUKS)
    return invalid (error, _("full disk encryption header pointer extension "
                    "present with crypt_method %u (only valid with LUKS)"),
                    h->crypt_method);
  h->crypto_header_offset = rd64 (data);
  h->crypto_header_length = rd64 (data + 8);
  if (h->crypto_header_offset == 0 || h->crypto_header_offset % cluster_size != 0)
    return invalid (error, _("crypto_header_offset 0x%" PRIx64
                    " is not a nonzero multiple of the cluster size"),
                    h->crypto_header_offset);
  if (h->crypto_header_offset > file_size ||
      h->crypto_header_length > file_size - h->crypto_header_offset)
    return invalid (error, _("encryption header at crypto_header_offset 0x%"
                    PRIx64 " (crypto_header_length %"
                    PRIu64 ") extends past the end of the file "
                    "(size %" PRIu64 ")"), h->crypto_header_offset,
                    h->crypto_header_length, file_size);
  h->has_crypto_ext = TRUE;
  return TRUE;
}

/* Walks the extension area [start, end) and decodes the known extensions.
 * Every extension is also kept raw, in order, so that serialization can
 * reproduce the ones rechain does not understand. */
static gboolean
parse_extensions (RechainQcow2Header *h, const guint8 *buf, gsize start,
                  gsize end, guint64 file_size, GError **error)
{
  gsize pos = start;
  gboolean seen_backing_format = FALSE, seen_feature_table = FALSE;
  gboolean seen_bitmaps = FALSE, seen_crypto = FALSE, seen_data_file = FALSE;

  while (pos < end)
    {
      guint32 type, ext_len;
      const guint8 *data;

      if (end - pos < 8)
        return invalid (error, _("header extension at offset 0x%zx is truncated "
                        "(%zu bytes left before offset 0x%zx)"), pos,
                        end - pos, end);
      type = rd32 (buf + pos);
      ext_len = rd32 (buf + pos + 4);
      if (type == RECHAIN_QCOW2_EXT_END)
        return TRUE;
      if (h->extensions->len >= RECHAIN_QCOW2_MAX_EXTENSIONS)
        return invalid (error, _("more than %u header extensions (extension at "
                        "offset 0x%zx)"), RECHAIN_QCOW2_MAX_EXTENSIONS, pos);
      if (ext_len > end - pos - 8)
        return invalid (error, _("header extension 0x%08x at offset 0x%zx: "
                        "length %u extends past the end of the header area "
                        "(offset 0x%zx)"), type, pos, ext_len, end);
      data = buf + pos + 8;

      switch (type)
        {
        case RECHAIN_QCOW2_EXT_BACKING_FORMAT:
          if (seen_backing_format)
            goto duplicate;
          seen_backing_format = TRUE;
          h->backing_format = parse_string_ext (type, data, ext_len, error);
          if (h->backing_format == NULL)
            return FALSE;
          break;
        case RECHAIN_QCOW2_EXT_DATA_FILE:
          if (seen_data_file)
            goto duplicate;
          seen_data_file = TRUE;
          h->data_file = parse_string_ext (type, data, ext_len, error);
          if (h->data_file == NULL)
            return FALSE;
          break;
        case RECHAIN_QCOW2_EXT_FEATURE_TABLE:
          if (seen_feature_table)
            goto duplicate;
          seen_feature_table = TRUE;
          if (!parse_feature_table (h, data, ext_len, error))
            return FALSE;
          break;
        case RECHAIN_QCOW2_EXT_BITMAPS:
          if (seen_bitmaps)
            goto duplicate;
          seen_bitmaps = TRUE;
          if (!parse_bitmaps_ext (h, data, ext_len, file_size, error))
            return FALSE;
          break;
        case RECHAIN_QCOW2_EXT_CRYPTO:
          if (seen_crypto)
            goto duplicate;
          seen_crypto = TRUE;
          if (!parse_crypto_ext (h, data, ext_len, file_size, error))
            return FALSE;
          break;
        default:
          /* Unknown extensions "can be safely ignored", and may repeat. */
          break;
        }

      g_ptr_array_add (h->extensions, extension_new (type, data, ext_len));
      /* The padding may run past @end only when @end is the (unaligned)
       * backing file offset; then this was the last extension. */
      pos = pos + 8 + (gsize) round_up8 (ext_len);
      continue;

    duplicate:
      return invalid (error, _("duplicate %s header extension (type 0x%08x) at "
                      "offset 0x%zx"), extension_name (type), type, pos);
    }
  return TRUE;
}

/* The largest file offset QEMU accepts for the end of a metadata table. */
#define MAX_TABLE_END G_GUINT64_CONSTANT (0x7fffffffffffffff)

/* Whether the table at @offset, @bytes long (an estimate for the snapshot
 * table: QEMU counts 40 bytes an entry), ends no later than INT64_MAX. */
static gboolean
check_offset_limit (const char *offset_field, guint64 offset, const char *count_field,
                    guint32 count, guint64 bytes, GError **error)
{
  if (bytes > MAX_TABLE_END || offset > MAX_TABLE_END - bytes)
    return invalid (error, _("%s 0x%" PRIx64 " (%s %u) is beyond the largest "
                    "offset a qcow2 table may end at (0x%" PRIx64 ")"),
                    offset_field, offset, count_field, count, MAX_TABLE_END);
  return TRUE;
}

static gboolean
check_table (const char *what, const char *offset_field, guint64 offset,
             const char *count_field, guint32 count, guint64 bytes,
             guint64 cluster_size, guint64 file_size, GError **error)
{
  if (offset % cluster_size != 0)
    return invalid (error, _("%s 0x%" PRIx64 " is not aligned to "
                    "the cluster size (%" PRIu64 ")"), offset_field,
                    offset, cluster_size);
  /* QEMU (qcow2_validate_table) refuses a table that would end beyond
   * INT64_MAX even when it is empty: so does rechain, or it would accept an
   * image QEMU cannot open. */
  if (!check_offset_limit (offset_field, offset, count_field, count, bytes, error))
    return FALSE;
  if (bytes == 0)
    return TRUE;
  /* Offset 0 is the header itself. */
  if (offset == 0)
    return invalid (error, _("%s is 0 but %s is %u"), offset_field, count_field,
                    count);
  if (offset > file_size || bytes > file_size - offset)
    return invalid (error, _("%s at offset 0x%" PRIx64 " (%s %u) "
                    "extends past the end of the file (size %"
                    PRIu64 ")"), what, offset, count_field, count,
                    file_size);
  return TRUE;
}

static char *
describe_unknown_bits (const RechainQcow2Header *h, guint8 type, guint64 bits)
{
  GString *s = g_string_new (NULL);

  for (guint bit = 0; bit < 64; bit++)
    {
      const char *name;

      if (!(bits & (G_GUINT64_CONSTANT (1) << bit)))
        continue;
      if (s->len > 0)
        g_string_append (s, ", ");
      name = rechain_qcow2_header_feature_name (h, type, bit);
      if (name != NULL)
        g_string_append_printf (s, _("bit %u (%s)"), bit, name);
      else
        g_string_append_printf (s, _("bit %u"), bit);
    }
  return g_string_free (s, FALSE);
}

RechainQcow2Header *
rechain_qcow2_header_parse (const guint8 *buf,
                            gsize len,
                            guint64 file_size,
                            GError **error)
{
  g_autoptr (RechainQcow2Header) h = NULL;
  guint32 magic;
  guint64 cluster_size;
  gsize area, ext_end;
  guint32 l2_bits;
  guint64 needed_l1;

  g_return_val_if_fail (buf != NULL || len == 0, NULL);

  if (len < RECHAIN_QCOW2_V2_HEADER_LENGTH)
    {
      invalid (error, _("file is too short for a qcow2 header (%zu bytes, "
               "needs at least %u)"), len, RECHAIN_QCOW2_V2_HEADER_LENGTH);
      return NULL;
    }
  magic = rd32 (buf);
  if (magic != RECHAIN_QCOW2_MAGIC)
    {
      invalid (error, _("magic 0x%08x is not the qcow2 magic 0x%08x"), magic,
               RECHAIN_QCOW2_MAGIC);
      return NULL;
    }

  h = g_new0 (RechainQcow2Header, 1);
  h->extensions = g_ptr_array_new_with_free_func (extension_free);
  h->version = rd32 (buf + 4);
  h->backing_file_offset = rd64 (buf + 8);
  h->backing_file_size = rd32 (buf + 16);
  h->cluster_bits = rd32 (buf + 20);
  h->size = rd64 (buf + 24);
  h->crypt_method = rd32 (buf + 32);
  h->l1_size = rd32 (buf + 36);
  h->l1_table_offset = rd64 (buf + 40);
  h->refcount_table_offset = rd64 (buf + 48);
  h->refcount_table_clusters = rd32 (buf + 56);
  h->nb_snapshots = rd32 (buf + 60);
  h->snapshots_offset = rd64 (buf + 64);

  if (h->version != 2 && h->version != 3)
    {
      /* Version 1 is the older qcow format with the same magic; higher
       * versions do not exist yet. Neither is corrupt qcow2. */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("qcow2 version %u is not supported (only 2 and 3)"),
                   h->version);
      return NULL;
    }

  if (h->cluster_bits < RECHAIN_QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > RECHAIN_QCOW2_MAX_CLUSTER_BITS)
    {
      invalid (error, _("cluster_bits %u is out of range (%u..%u)"),
               h->cluster_bits, RECHAIN_QCOW2_MIN_CLUSTER_BITS,
               RECHAIN_QCOW2_MAX_CLUSTER_BITS);
      return NULL;
    }
  cluster_size = rechain_qcow2_cluster_size (h);

  if (h->version == 2)
    {
      h->header_length = RECHAIN_QCOW2_V2_HEADER_LENGTH;
      h->refcount_order = 4;
    }
  else
    {
      if (len < RECHAIN_QCOW2_V3_HEADER_LENGTH)
        {
          invalid (error, _("file is too short for a version 3 header (%zu "
                   "bytes, needs at least %u)"), len,
                   RECHAIN_QCOW2_V3_HEADER_LENGTH);
          return NULL;
        }
      h->incompatible_features = rd64 (buf + 72);
      h->compatible_features = rd64 (buf + 80);
      h->autoclear_features = rd64 (buf + 88);
      h->refcount_order = rd32 (buf + 96);
      h->header_length = rd32 (buf + 100);

      if (h->header_length < RECHAIN_QCOW2_V3_HEADER_LENGTH ||
          h->header_length > cluster_size)
        {
          invalid (error, _("header_length %u is out of range (%u..%"
                   PRIu64 ")"), h->header_length,
                   RECHAIN_QCOW2_V3_HEADER_LENGTH, cluster_size);
          return NULL;
        }
      if (h->header_length % 8 != 0)
        {
          invalid (error, _("header_length %u is not a multiple of 8"),
                   h->header_length);
          return NULL;
        }
      if (h->header_length > len)
        {
          invalid (error, _("header_length %u extends past the end of the file "
                   "(size %zu)"), h->header_length, len);
          return NULL;
        }
      if (h->header_length > RECHAIN_QCOW2_V3_HEADER_LENGTH)
        h->compression_type = buf[104];
      if (h->header_length > RECHAIN_QCOW2_V3_HEADER_LENGTH + 1)
        h->extra_header = g_bytes_new (buf + RECHAIN_QCOW2_V3_HEADER_LENGTH + 1,
                                       h->header_length -
                                       RECHAIN_QCOW2_V3_HEADER_LENGTH - 1);
      if (h->refcount_order > 6)
        {
          invalid (error, _("refcount_order %u is out of range (0..6)"),
                   h->refcount_order);
          return NULL;
        }
    }

  if (rechain_qcow2_has_extl2 (h) && h->cluster_bits < 14)
    {
      invalid (error, _("cluster_bits %u is too small for extended L2 entries "
               "(needs at least 14)"), h->cluster_bits);
      return NULL;
    }

  if (h->crypt_method > RECHAIN_QCOW2_CRYPT_LUKS)
    {
      invalid (error, _("crypt_method %u is not a known encryption method "
               "(0..2)"), h->crypt_method);
      return NULL;
    }

  /* Compression type: the field and the incompatible bit must agree, so an
   * old reader that ignores the field cannot misread zstd data as zlib. */
  if (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_COMPRESSION)
    {
      if (h->header_length <= RECHAIN_QCOW2_V3_HEADER_LENGTH)
        {
          invalid (error, _("compression type bit is set but header_length %u "
                   "has no compression_type field"), h->header_length);
          return NULL;
        }
      if (h->compression_type == RECHAIN_QCOW2_COMPRESSION_ZLIB)
        {
          invalid (error, _("compression type bit is set but compression_type "
                   "is 0 (zlib)"));
          return NULL;
        }
    }
  else if (h->compression_type != RECHAIN_QCOW2_COMPRESSION_ZLIB)
    {
      invalid (error, _("compression_type %u is set but the compression type "
               "bit is not"), h->compression_type);
      return NULL;
    }
  if (h->compression_type > RECHAIN_QCOW2_COMPRESSION_ZSTD)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("compression_type %u is not supported (0 zlib, 1 zstd)"),
                   h->compression_type);
      return NULL;
    }

  if (h->size > MAX_VIRTUAL_SIZE)
    {
      invalid (error, _("virtual size %" PRIu64 " exceeds the maximum "
               "of 2^62 bytes"), h->size);
      return NULL;
    }

  /* L1 table: bounded in size, inside the file, and big enough for the
   * virtual size (as QEMU requires), so that mapping code can index it with
   * any guest offset below the size. */
  if ((guint64) h->l1_size * 8 > RECHAIN_QCOW2_MAX_L1_BYTES)
    {
      invalid (error, _("l1_size %u (%" PRIu64 " bytes) exceeds the "
               "maximum L1 table size (%u bytes)"), h->l1_size,
               (guint64) h->l1_size * 8, RECHAIN_QCOW2_MAX_L1_BYTES);
      return NULL;
    }
  l2_bits = h->cluster_bits - (rechain_qcow2_has_extl2 (h) ? 4 : 3);
  /* size <= 2^62 and the shift is at most 21 + 18, so no overflow. */
  needed_l1 = (h->size + (G_GUINT64_CONSTANT (1) << (h->cluster_bits + l2_bits))
               - 1) >> (h->cluster_bits + l2_bits);
  if (h->l1_size < needed_l1)
    {
      invalid (error, _("l1_size %u is too small for the virtual size %"
               PRIu64 " (needs %" PRIu64 " entries)"),
               h->l1_size, h->size, needed_l1);
      return NULL;
    }
  /* TRANSLATORS: "%s at offset 0x%x (%s %u) extends past the end of the file" */
  if (!check_table (_("L1 table"), "l1_table_offset", h->l1_table_offset,
                    "l1_size", h->l1_size, (guint64) h->l1_size * 8,
                    cluster_size, file_size, error))
    return NULL;

  /* Refcount table: every image has one (it covers at least the header). */
  if (h->refcount_table_clusters == 0)
    {
      invalid (error, _("refcount_table_clusters is 0"));
      return NULL;
    }
  if ((guint64) h->refcount_table_clusters * cluster_size >
      RECHAIN_QCOW2_MAX_REFTABLE_BYTES)
    {
      invalid (error, _("refcount_table_clusters %u (%" PRIu64
               " bytes) exceeds the maximum refcount table size (%u bytes)"),
               h->refcount_table_clusters,
               (guint64) h->refcount_table_clusters * cluster_size,
               RECHAIN_QCOW2_MAX_REFTABLE_BYTES);
      return NULL;
    }
  if (!check_table (_("refcount table"), "refcount_table_offset",
                    h->refcount_table_offset, "refcount_table_clusters",
                    h->refcount_table_clusters,
                    (guint64) h->refcount_table_clusters * cluster_size,
                    cluster_size, file_size, error))
    return NULL;

  /* Snapshot table: entries have variable length, so only the start can be
   * checked here; rechain_qcow2_snapshots_parse bounds the rest. */
  if (h->nb_snapshots > RECHAIN_QCOW2_MAX_SNAPSHOTS)
    {
      invalid (error, _("nb_snapshots %u exceeds the maximum of %u"),
               h->nb_snapshots, RECHAIN_QCOW2_MAX_SNAPSHOTS);
      return NULL;
    }
  /* QEMU checks the offset even when there is no snapshot: aligned to the
   * cluster size, and the table (40 bytes an entry at least) ending no later
   * than INT64_MAX. */
  if (h->snapshots_offset % cluster_size != 0)
    {
      invalid (error, _("snapshots_offset 0x%" PRIx64 " is not "
               "aligned to the cluster size (%" PRIu64 ")"),
               h->snapshots_offset, cluster_size);
      return NULL;
    }
  if (!check_offset_limit ("snapshots_offset", h->snapshots_offset, "nb_snapshots",
                           h->nb_snapshots,
                           (guint64) h->nb_snapshots * RECHAIN_QCOW2_SNAPSHOT_HEADER_SIZE,
                           error))
    return NULL;
  if (h->nb_snapshots > 0)
    {
      if (h->snapshots_offset == 0)
        {
          invalid (error, _("snapshots_offset is 0 but nb_snapshots is %u"),
                   h->nb_snapshots);
          return NULL;
        }
      if (h->snapshots_offset >= file_size)
        {
          invalid (error, _("snapshots_offset 0x%" PRIx64 " "
                   "(nb_snapshots %u) is past the end of the file (size %"
                   PRIu64 ")"), h->snapshots_offset, h->nb_snapshots,
                   file_size);
          return NULL;
        }
    }

  /* The header, its extensions and the backing name all live in the first
   * cluster; never look past it or past what the caller gave us. */
  area = (gsize) MIN ((guint64) len, cluster_size);

  /* Backing file name. Its size is "undefined" without a backing file, so it
   * is only checked (and normalised to 0) when the offset is set. */
  if (h->backing_file_offset == 0)
    h->backing_file_size = 0;
  else
    {
      if (h->backing_file_offset < h->header_length)
        {
          invalid (error, _("backing_file_offset 0x%" PRIx64 " "
                   "overlaps the header (header_length %u)"),
                   h->backing_file_offset, h->header_length);
          return NULL;
        }
      if (h->backing_file_size > RECHAIN_QCOW2_MAX_BACKING_NAME)
        {
          invalid (error, _("backing_file_size %u exceeds the maximum of %u"),
                   h->backing_file_size, RECHAIN_QCOW2_MAX_BACKING_NAME);
          return NULL;
        }
      if (h->backing_file_offset > cluster_size ||
          h->backing_file_size > cluster_size - h->backing_file_offset)
        {
          invalid (error, _("backing file name at backing_file_offset 0x%"
                   PRIx64 " (backing_file_size %u) extends past "
                   "the first cluster (cluster size %" PRIu64 ")"),
                   h->backing_file_offset, h->backing_file_size, cluster_size);
          return NULL;
        }
      if (h->backing_file_offset > area ||
          h->backing_file_size > area - h->backing_file_offset)
        {
          invalid (error, _("backing file name at backing_file_offset 0x%"
                   PRIx64 " (backing_file_size %u) extends past "
                   "the end of the file (size %zu)"), h->backing_file_offset,
                   h->backing_file_size, area);
          return NULL;
        }
      if (h->backing_file_size > 0)
        {
          const guint8 *name = buf + h->backing_file_offset;

          if (memchr (name, '\0', h->backing_file_size) != NULL)
            {
              invalid (error, _("backing file name (backing_file_size %u) "
                       "contains a NUL byte"), h->backing_file_size);
              return NULL;
            }
          h->backing_file = g_strndup ((const char *) name,
                                       h->backing_file_size);
        }
    }

  /* Extensions end where the backing name starts, as in QEMU. */
  ext_end = h->backing_file_offset != 0 ? (gsize) h->backing_file_offset : area;
  if (h->header_length > ext_end)
    {
      /* Only possible when the file is shorter than header_length. */
      invalid (error, _("header_length %u extends past the end of the file "
               "(size %zu)"), h->header_length, area);
      return NULL;
    }
  if (!parse_extensions (h, buf, h->header_length, ext_end, file_size, error))
    return NULL;
  /* As QEMU: a LUKS image without the pointer to its LUKS header cannot
   * be unlocked by anyone, so it is malformed, not merely encrypted. */
  if (h->crypt_method == RECHAIN_QCOW2_CRYPT_LUKS && !h->has_crypto_ext)
    {
      invalid (error, _("crypt_method is 2 (LUKS) but the full disk encryption header "
               "pointer extension is missing"));
      return NULL;
    }

  if ((h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
      !(h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DATA_FILE))
    {
      invalid (error, _("autoclear data-file-raw bit is set without the "
               "external data file bit"));
      return NULL;
    }
  if ((h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
      h->backing_file != NULL)
    {
      invalid (error, _("autoclear data-file-raw bit is set together with a "
               "backing file (%s)"), h->backing_file);
      return NULL;
    }

  if (h->incompatible_features & ~RECHAIN_QCOW2_INCOMPAT_KNOWN)
    {
      guint64 unknown = h->incompatible_features & ~RECHAIN_QCOW2_INCOMPAT_KNOWN;
      g_autofree char *desc = describe_unknown_bits (h, 0, unknown);

      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("unsupported incompatible_features 0x%" PRIx64
                   ": %s"), unknown, desc);
      return NULL;
    }

  /* An encrypted image parses like any other: its header, the crypto
   * header pointer extension and the LUKS clusters are metadata that an
   * unsafe rebase keeps byte for byte, and info and map need no key. What
   * needs the data decrypted is refused where the data would be read or
   * written (rechain_layer_check_data_access). */
  return g_steal_pointer (&h);
}

guint8 *
rechain_qcow2_header_serialize (RechainQcow2Header *header,
                                GError **error)
{
  g_autofree guint8 *out = NULL;
  guint64 cluster_size;
  gsize pos, name_len;

  g_return_val_if_fail (header != NULL, NULL);
  g_return_val_if_fail (header->cluster_bits >= RECHAIN_QCOW2_MIN_CLUSTER_BITS &&
                        header->cluster_bits <= RECHAIN_QCOW2_MAX_CLUSTER_BITS,
                        NULL);
  g_return_val_if_fail (header->version == 2 || header->version == 3, NULL);

  cluster_size = rechain_qcow2_cluster_size (header);
  if (header->version == 2)
    header->header_length = RECHAIN_QCOW2_V2_HEADER_LENGTH;
  if (header->header_length > cluster_size ||
      (header->version == 3 &&
       (header->header_length < RECHAIN_QCOW2_V3_HEADER_LENGTH ||
        header->header_length % 8 != 0)))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("header_length %u is invalid for a version %u header with "
                   "cluster size %" PRIu64), header->header_length,
                   header->version, cluster_size);
      return NULL;
    }
  if (header->version == 3 && header->extra_header != NULL &&
      g_bytes_get_size (header->extra_header) >
      header->header_length - RECHAIN_QCOW2_V3_HEADER_LENGTH - 1)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("%zu extra header bytes do not fit in header_length %u"),
                   g_bytes_get_size (header->extra_header),
                   header->header_length);
      return NULL;
    }

  out = g_malloc0 (cluster_size);
  wr32 (out, RECHAIN_QCOW2_MAGIC);
  wr32 (out + 4, header->version);
  /* 8..19: backing file offset and size, written at the end */
  wr32 (out + 20, header->cluster_bits);
  wr64 (out + 24, header->size);
  wr32 (out + 32, header->crypt_method);
  wr32 (out + 36, header->l1_size);
  wr64 (out + 40, header->l1_table_offset);
  wr64 (out + 48, header->refcount_table_offset);
  wr32 (out + 56, header->refcount_table_clusters);
  wr32 (out + 60, header->nb_snapshots);
  wr64 (out + 64, header->snapshots_offset);
  if (header->version == 3)
    {
      wr64 (out + 72, header->incompatible_features);
      wr64 (out + 80, header->compatible_features);
      wr64 (out + 88, header->autoclear_features);
      wr32 (out + 96, header->refcount_order);
      wr32 (out + 100, header->header_length);
      if (header->header_length > RECHAIN_QCOW2_V3_HEADER_LENGTH)
        out[104] = header->compression_type;
      if (header->extra_header != NULL)
        memcpy (out + RECHAIN_QCOW2_V3_HEADER_LENGTH + 1,
                g_bytes_get_data (header->extra_header, NULL),
                g_bytes_get_size (header->extra_header));
    }
  pos = header->header_length;

  for (guint i = 0; header->extensions != NULL && i < header->extensions->len; i++)
    {
      const RechainQcow2Extension *ext = g_ptr_array_index (header->extensions, i);
      gsize ext_len = ext->data != NULL ? g_bytes_get_size (ext->data) : 0;

      /* 8 for this extension's header, 8 for the end marker. */
      if (ext_len > G_MAXUINT32 || ext_len > cluster_size ||
          round_up8 (ext_len) + 16 > cluster_size - pos)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                       _("header extension 0x%08x (length %zu) does not fit in "
                       "the first cluster (%" PRIu64 " bytes)"),
                       ext->type, ext_len, cluster_size);
          return NULL;
        }
      wr32 (out + pos, ext->type);
      wr32 (out + pos + 4, (guint32) ext_len);
      if (ext_len > 0)
        memcpy (out + pos + 8, g_bytes_get_data (ext->data, NULL), ext_len);
      pos += 8 + (gsize) round_up8 (ext_len);
    }
  if (cluster_size - pos < 8)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                   _("header extensions do not fit in the first cluster (%"
                   PRIu64 " bytes)"), cluster_size);
      return NULL;
    }
  /* End marker: type 0, length 0 (already zero). */
  pos += 8;

  name_len = header->backing_file != NULL ? strlen (header->backing_file) : 0;
  if (name_len == 0)
    {
      header->backing_file_offset = 0;
      header->backing_file_size = 0;
    }
  else
    {
      if (name_len > RECHAIN_QCOW2_MAX_BACKING_NAME || name_len > cluster_size - pos)
        {
          /* Too long for any image is the caller's mistake; too long for
           * this image's header cluster is a lack of room, as qemu-img
           * reports it. */
          g_set_error (error, RECHAIN_ERROR,
                       name_len > RECHAIN_QCOW2_MAX_BACKING_NAME
                         ? RECHAIN_ERROR_INVALID_ARGUMENT : RECHAIN_ERROR_NO_SPACE,
                       _("backing file name of %zu bytes does not fit in the "
                       "first cluster (%zu bytes left, at most %u allowed)"),
                       name_len, (gsize) (cluster_size - pos),
                       RECHAIN_QCOW2_MAX_BACKING_NAME);
          return NULL;
        }
      memcpy (out + pos, header->backing_file, name_len);
      header->backing_file_offset = pos;
      header->backing_file_size = (guint32) name_len;
    }
  wr64 (out + 8, header->backing_file_offset);
  wr32 (out + 16, header->backing_file_size);

  return g_steal_pointer (&out);
}

void
rechain_qcow2_header_set_backing (RechainQcow2Header *header,
                                  const char *backing_file,
                                  const char *backing_format)
{
  gint found = -1;
  /* The arguments may be the header's own strings (a rewrite that keeps
   * the backing file): copy them before the fields are freed. */
  g_autofree char *file_copy = g_strdup (backing_file);
  g_autofree char *format_copy = g_strdup (backing_format);

  g_return_if_fail (header != NULL);

  backing_file = file_copy;
  backing_format = format_copy;
  if (backing_file != NULL && backing_file[0] == '\0')
    backing_file = NULL;
  if (backing_format != NULL && backing_format[0] == '\0')
    backing_format = NULL;
  /* A format with no backing file would describe nothing: drop it. */
  if (backing_file == NULL)
    backing_format = NULL;

  g_free (header->backing_file);
  header->backing_file = g_strdup (backing_file);
  header->backing_file_size = backing_file != NULL ? (guint32) strlen (backing_file) : 0;
  if (backing_file == NULL)
    header->backing_file_offset = 0;
  g_free (header->backing_format);
  header->backing_format = g_strdup (backing_format);

  if (header->extensions == NULL)
    header->extensions = g_ptr_array_new_with_free_func (extension_free);
  for (guint i = 0; i < header->extensions->len; i++)
    {
      const RechainQcow2Extension *ext = g_ptr_array_index (header->extensions, i);

      if (ext->type == RECHAIN_QCOW2_EXT_BACKING_FORMAT)
        {
          found = (gint) i;
          break;
        }
    }

  if (backing_format == NULL)
    {
      if (found >= 0)
        g_ptr_array_remove_index (header->extensions, (guint) found);
    }
  else if (found >= 0)
    {
      RechainQcow2Extension *ext = g_ptr_array_index (header->extensions, found);

      g_bytes_unref (ext->data);
      ext->data = g_bytes_new (backing_format, strlen (backing_format));
    }
  else
    g_ptr_array_insert (header->extensions, 0,
                        extension_new (RECHAIN_QCOW2_EXT_BACKING_FORMAT,
                                       backing_format, strlen (backing_format)));
}

const char *
rechain_qcow2_header_feature_name (const RechainQcow2Header *header,
                                   guint8 type,
                                   guint bit)
{
  g_return_val_if_fail (header != NULL, NULL);

  if (header->feature_names == NULL)
    return NULL;
  for (guint i = 0; i < header->feature_names->len; i++)
    {
      const RechainQcow2FeatureName *fn =
        &g_array_index (header->feature_names, RechainQcow2FeatureName, i);

      if (fn->type == type && fn->bit == bit && fn->name[0] != '\0')
        return fn->name;
    }
  return NULL;
}

void
rechain_qcow2_geometry_init (RechainQcow2Geometry *geom,
                             const RechainQcow2Header *header)
{
  g_return_if_fail (geom != NULL);
  g_return_if_fail (header != NULL);
  g_return_if_fail (header->cluster_bits >= RECHAIN_QCOW2_MIN_CLUSTER_BITS &&
                    header->cluster_bits <= RECHAIN_QCOW2_MAX_CLUSTER_BITS);

  memset (geom, 0, sizeof *geom);
  geom->cluster_bits = header->cluster_bits;
  geom->cluster_size = G_GUINT64_CONSTANT (1) << header->cluster_bits;
  geom->extended_l2 = rechain_qcow2_has_extl2 (header);
  /* 8-byte entries, or 16 with extended L2 */
  geom->l2_bits = header->cluster_bits - (geom->extended_l2 ? 4 : 3);
  geom->l2_entries = G_GUINT64_CONSTANT (1) << geom->l2_bits;
  geom->subclusters = geom->extended_l2 ? 32 : 1;
  geom->subcluster_bits = header->cluster_bits - (geom->extended_l2 ? 5 : 0);
  geom->subcluster_size = G_GUINT64_CONSTANT (1) << geom->subcluster_bits;
  geom->compressed_offset_bits = 62 - (header->cluster_bits - 8);
  geom->external_data =
    (header->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DATA_FILE) != 0;
  geom->zero_flag_allowed = header->version >= 3 && !geom->extended_l2;
}
