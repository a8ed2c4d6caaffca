/* qcow2-bitmap.c: parsing of the persistent dirty bitmap directory
 * (QEMU docs/interop/qcow2.txt, "Bitmaps").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"
#include "format/be.h"
#include "rechain/rechain-i18n-private.h"

#define BITMAP_ENTRY_FIXED_SIZE 24u
#define BITMAP_MAX_NAME_SIZE 1023u
/* Bits 0 (in_use), 1 (auto) and 2 (extra_data_compatible) are defined. */
#define BITMAP_FLAGS_KNOWN 0x7u
#define BITMAP_TYPE_DIRTY_TRACKING 1u

static void
bitmap_clear (gpointer p)
{
  RechainQcow2Bitmap *bm = p;

  g_clear_pointer (&bm->name, g_free);
}

static gboolean
bitmap_invalid (GError **error, guint32 index, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
bitmap_invalid (GError **error, guint32 index, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
               _("bitmap directory entry %u: %s"), index, msg);
  return FALSE;
}

GArray *
rechain_qcow2_bitmaps_parse (const guint8 *buf,
                             gsize len,
                             guint32 nb,
                             const RechainQcow2Geometry *geom,
                             guint64 file_size,
                             GError **error)
{
  g_autoptr (GArray) bitmaps = NULL;
  g_autoptr (GHashTable) names = NULL;
  gsize pos = 0;

  g_return_val_if_fail (buf != NULL || len == 0, NULL);
  g_return_val_if_fail (geom != NULL, NULL);

  if (nb > RECHAIN_QCOW2_MAX_BITMAPS)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("nb_bitmaps %u exceeds the maximum of %u"), nb,
                   RECHAIN_QCOW2_MAX_BITMAPS);
      return NULL;
    }
  if ((guint64) nb * BITMAP_ENTRY_FIXED_SIZE > len)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("bitmap directory of %zu bytes (bitmap_directory_size) is "
                   "too small for nb_bitmaps %u"), len, nb);
      return NULL;
    }

  bitmaps = g_array_sized_new (FALSE, TRUE, sizeof (RechainQcow2Bitmap), nb);
  g_array_set_clear_func (bitmaps, bitmap_clear);
  /* Names must be unique; compare the raw bytes, before UTF-8 repair could
   * make two different names equal. */
  names = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                 (GDestroyNotify) g_bytes_unref, NULL);

  for (guint32 i = 0; i < nb; i++)
    {
      RechainQcow2Bitmap bm = { 0 };
      const guint8 *e;
      guint16 name_size;
      guint32 extra_size;
      guint64 entry_size, padded;
      GBytes *raw_name;

      if (len - pos < BITMAP_ENTRY_FIXED_SIZE)
        {
          bitmap_invalid (error, i, _("at offset %zu extends past the end of "
                          "the directory (bitmap_directory_size %zu)"), pos, len);
          return NULL;
        }
      e = buf + pos;
      bm.table_offset = rd64 (e);
      bm.table_size = rd32 (e + 8);
      bm.flags = rd32 (e + 12);
      bm.type = e[16];
      bm.granularity_bits = e[17];
      name_size = rd16 (e + 18);
      extra_size = rd32 (e + 20);

      entry_size = (guint64) BITMAP_ENTRY_FIXED_SIZE + extra_size + name_size;
      if (entry_size > len - pos)
        {
          bitmap_invalid (error, i, _("at offset %zu (extra_data_size %u, "
                          "name_size %u) extends past the end of the directory "
                          "(bitmap_directory_size %zu)"), pos, extra_size,
                          name_size, len);
          return NULL;
        }
      if (bm.flags & ~BITMAP_FLAGS_KNOWN)
        {
          bitmap_invalid (error, i, _("flags 0x%x has reserved bits set"), bm.flags);
          return NULL;
        }
      if (bm.type != BITMAP_TYPE_DIRTY_TRACKING)
        {
          bitmap_invalid (error, i, _("type %u is reserved (only 1, dirty "
                          "tracking, is defined)"), bm.type);
          return NULL;
        }
      if (bm.granularity_bits > 63)
        {
          bitmap_invalid (error, i, _("granularity_bits %u is out of range "
                          "(0..63)"), bm.granularity_bits);
          return NULL;
        }
      if (name_size == 0 || name_size > BITMAP_MAX_NAME_SIZE)
        {
          bitmap_invalid (error, i, _("name_size %u is out of range (1..%u)"),
                          name_size, BITMAP_MAX_NAME_SIZE);
          return NULL;
        }
      if (bm.table_offset % geom->cluster_size != 0)
        {
          bitmap_invalid (error, i, _("bitmap_table_offset 0x%" PRIx64
                          " is not aligned to the cluster size (%"
                          PRIu64 ")"), bm.table_offset,
                          geom->cluster_size);
          return NULL;
        }
      if (bm.table_size > 0 &&
          (bm.table_offset == 0 || bm.table_offset > file_size ||
           (guint64) bm.table_size * 8 > file_size - bm.table_offset))
        {
          bitmap_invalid (error, i, _("bitmap table at bitmap_table_offset 0x%"
                          PRIx64 " (bitmap_table_size %u) is "
                          "outside the file (size %" PRIu64 ")"),
                          bm.table_offset, bm.table_size, file_size);
          return NULL;
        }

      padded = (entry_size + 7) & ~G_GUINT64_CONSTANT (7);
      if (padded > len - pos)
        padded = len - pos;
      for (gsize p = (gsize) entry_size; p < padded; p++)
        if (e[p] != 0)
          {
            bitmap_invalid (error, i, _("padding byte at offset %zu is 0x%02x, "
                            "not 0"), pos + p, e[p]);
            return NULL;
          }

      raw_name = g_bytes_new (e + BITMAP_ENTRY_FIXED_SIZE + extra_size, name_size);
      if (g_hash_table_contains (names, raw_name))
        {
          g_bytes_unref (raw_name);
          bitmap_invalid (error, i, _("duplicate bitmap name"));
          return NULL;
        }
      g_hash_table_add (names, raw_name);

      bm.name = g_utf8_make_valid ((const char *) e + BITMAP_ENTRY_FIXED_SIZE
                                   + extra_size, name_size);
      g_array_append_val (bitmaps, bm);
      pos += (gsize) padded;
    }

  return g_steal_pointer (&bitmaps);
}
