/* qcow2-snapshot.c: parsing of the internal snapshot table
 * (QEMU docs/interop/qcow2.txt, "Snapshots").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"
#include "format/be.h"
#include "rechain/rechain-i18n-private.h"

#define SNAPSHOT_FIXED_SIZE RECHAIN_QCOW2_SNAPSHOT_HEADER_SIZE

static void
snapshot_clear (gpointer p)
{
  RechainQcow2Snapshot *sn = p;

  g_clear_pointer (&sn->id, g_free);
  g_clear_pointer (&sn->name, g_free);
}

GArray *
rechain_qcow2_snapshots_parse (const guint8 *buf,
                               gsize len,
                               guint32 nb,
                               const RechainQcow2Geometry *geom,
                               guint64 file_size,
                               GError **error)
{
  g_autoptr (GArray) snapshots = NULL;
  gsize pos = 0;

  g_return_val_if_fail (buf != NULL || len == 0, NULL);
  g_return_val_if_fail (geom != NULL, NULL);

  if (nb > RECHAIN_QCOW2_MAX_SNAPSHOTS)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("nb_snapshots %u exceeds the maximum of %u"), nb,
                   RECHAIN_QCOW2_MAX_SNAPSHOTS);
      return NULL;
    }
  /* Every entry has at least its fixed part: refuse before allocating for a
   * count the buffer cannot possibly hold. */
  if ((guint64) nb * SNAPSHOT_FIXED_SIZE > len)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("snapshot table of %zu bytes is too small for nb_snapshots "
                   "%u"), len, nb);
      return NULL;
    }

  snapshots = g_array_sized_new (FALSE, TRUE, sizeof (RechainQcow2Snapshot), nb);
  g_array_set_clear_func (snapshots, snapshot_clear);

  for (guint32 i = 0; i < nb; i++)
    {
      RechainQcow2Snapshot sn = { 0 };
      const guint8 *e;
      guint16 id_size, name_size;
      guint32 extra_size;
      guint64 entry_size;

      if (len - pos < SNAPSHOT_FIXED_SIZE)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("snapshot table entry %u at offset %zu extends past the "
                       "end of the table (%zu bytes)"), i, pos, len);
          return NULL;
        }
      e = buf + pos;
      sn.l1_table_offset = rd64 (e);
      sn.l1_size = rd32 (e + 8);
      id_size = rd16 (e + 12);
      name_size = rd16 (e + 14);
      sn.date_sec = rd32 (e + 16);
      sn.date_nsec = rd32 (e + 20);
      sn.vm_clock_nsec = rd64 (e + 24);
      sn.vm_state_size = rd32 (e + 32);
      extra_size = rd32 (e + 36);

      /* All three terms are below 2^32, so the sum cannot overflow. */
      entry_size = (guint64) SNAPSHOT_FIXED_SIZE + extra_size + id_size + name_size;
      if (entry_size > len - pos)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("snapshot table entry %u at offset %zu (extra data %u, "
                       "id_str_size %u, name_size %u) extends past the end of "
                       "the table (%zu bytes)"), i, pos, extra_size, id_size,
                       name_size, len);
          return NULL;
        }
      if ((guint64) sn.l1_size * 8 > RECHAIN_QCOW2_MAX_L1_BYTES)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("snapshot %u: l1_size %u exceeds the maximum L1 table "
                       "size (%u bytes)"), i, sn.l1_size,
                       RECHAIN_QCOW2_MAX_L1_BYTES);
          return NULL;
        }
      if (sn.l1_table_offset % geom->cluster_size != 0)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("snapshot %u: l1_table_offset 0x%" PRIx64
                       " is not aligned to the cluster size (%"
                       PRIu64 ")"), i, sn.l1_table_offset,
                       geom->cluster_size);
          return NULL;
        }
      if (sn.l1_size > 0 &&
          (sn.l1_table_offset == 0 || sn.l1_table_offset > file_size ||
           (guint64) sn.l1_size * 8 > file_size - sn.l1_table_offset))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("snapshot %u: L1 table at l1_table_offset 0x%"
                       PRIx64 " (l1_size %u) is outside the file "
                       "(size %" PRIu64 ")"), i, sn.l1_table_offset,
                       sn.l1_size, file_size);
          return NULL;
        }

      /* Extra data: known fields first, anything beyond is ignored. */
      if (extra_size >= 8)
        sn.vm_state_size = rd64 (e + 40);
      if (extra_size >= 16)
        sn.disk_size = rd64 (e + 48);
      /* Bytes 56..63 hold the record/replay instruction counter, -1 when
       * it was not in use. */
      sn.icount = extra_size >= 24 ? (gint64) rd64 (e + 56) : -1;

      sn.id = g_utf8_make_valid ((const char *) e + SNAPSHOT_FIXED_SIZE + extra_size,
                                 id_size);
      sn.name = g_utf8_make_valid ((const char *) e + SNAPSHOT_FIXED_SIZE + extra_size
                                   + id_size, name_size);
      g_array_append_val (snapshots, sn);

      /* Entries are padded to 8 bytes; the padding of the last entry may be
       * missing from a tightly cut buffer. */
      entry_size = (entry_size + 7) & ~G_GUINT64_CONSTANT (7);
      pos = entry_size > len - pos ? len : pos + (gsize) entry_size;
    }

  return g_steal_pointer (&snapshots);
}
