/* qcow2-l2.c: decoding of L1 and L2 table entries, standard and extended
 * (QEMU docs/interop/qcow2.txt, "Cluster mapping" and "Extended L2 Entries").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"
#include "rechain/rechain-i18n-private.h"

/* L1 entry: bits 0..8 and 56..62 are reserved. */
#define L1E_RESERVED_MASK G_GUINT64_CONSTANT (0x7f000000000001ff)
/* Standard cluster descriptor: bits 1..8 and 56..61 are reserved (bit 0 is
 * the zero flag, 62 the compressed flag, 63 the copied flag). */
#define L2E_STD_RESERVED_MASK G_GUINT64_CONSTANT (0x3f000000000001fe)

#define SECTOR_SIZE 512u

gboolean
rechain_qcow2_l1_entry_decode (const RechainQcow2Geometry *geom,
                               guint64 entry,
                               guint64 *l2_offset,
                               GError **error)
{
  guint64 offset;

  g_return_val_if_fail (geom != NULL, FALSE);
  g_return_val_if_fail (l2_offset != NULL, FALSE);

  if (entry & L1E_RESERVED_MASK)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("L1 entry 0x%016" PRIx64 " has reserved bits "
                   "set (0x%" PRIx64 ")"), entry,
                   entry & L1E_RESERVED_MASK);
      return FALSE;
    }
  offset = entry & (guint64) RECHAIN_QCOW2_OFFSET_MASK;
  if (offset & (geom->cluster_size - 1))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("L2 table offset 0x%" PRIx64 " in L1 entry "
                   "0x%016" PRIx64 " is not aligned to the "
                   "cluster size (%" PRIu64 ")"), offset, entry,
                   geom->cluster_size);
      return FALSE;
    }
  /* Bit 63 (refcount exactly one) is only a hint for writers; readers must
   * not depend on it, so it is neither required nor reported here. */
  *l2_offset = offset;
  return TRUE;
}

static gboolean
l2_invalid (GError **error, guint64 entry, guint64 bitmap,
            const RechainQcow2Geometry *geom, const char *what)
{
  if (geom->extended_l2)
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("L2 entry 0x%016" PRIx64 " (bitmap 0x%016"
                 PRIx64 "): %s"), entry, bitmap, what);
  else
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("L2 entry 0x%016" PRIx64 ": %s"), entry, what);
  return FALSE;
}

static gboolean
decode_compressed (const RechainQcow2Geometry *geom, guint64 entry,
                   guint64 bitmap, RechainQcow2L2Entry *out, GError **error)
{
  guint32 x = geom->compressed_offset_bits;
  guint64 offset, sectors;

  if (geom->external_data)
    return l2_invalid (error, entry, bitmap, geom,
                       _("compressed cluster in an image with an external data "
                       "file"));
  if (geom->extended_l2 && bitmap != 0)
    return l2_invalid (error, entry, bitmap, geom,
                       _("compressed cluster with a nonzero subcluster bitmap"));

  offset = entry & ((G_GUINT64_CONSTANT (1) << x) - 1);
  sectors = (entry >> x) & ((G_GUINT64_CONSTANT (1) << (62 - x)) - 1);
  /* With small clusters the offset field reaches past bit 55; host offsets
   * are limited to 56 bits like everywhere else. */
  if (offset >> 56)
    return l2_invalid (error, entry, bitmap, geom,
                       _("compressed cluster offset uses bits above 55"));
  /* The first cluster is the header; compressed data there is corrupt. */
  if (offset < geom->cluster_size)
    return l2_invalid (error, entry, bitmap, geom,
                       _("compressed data offset overlaps the header cluster"));

  out->compressed = TRUE;
  out->compressed_offset = offset;
  /* sectors < 2^(62 - x) <= 2^13, so this is small. */
  out->compressed_length = (sectors + 1) * SECTOR_SIZE - (offset & (SECTOR_SIZE - 1));
  for (guint32 i = 0; i < geom->subclusters; i++)
    out->type[i] = RECHAIN_QCOW2_SUBCLUSTER_COMPRESSED;
  return TRUE;
}

gboolean
rechain_qcow2_l2_entry_decode (const RechainQcow2Geometry *geom,
                               guint64 entry,
                               guint64 bitmap,
                               RechainQcow2L2Entry *out,
                               GError **error)
{
  guint64 host;
  gboolean zero_flag;
  gboolean host_valid;

  g_return_val_if_fail (geom != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  memset (out, 0, sizeof *out);
  /* Reported, never required: it is only accurate for the active L1 and
   * only a writer optimisation. */
  out->copied = (entry & RECHAIN_QCOW2_OFLAG_COPIED) != 0;

  if (entry & RECHAIN_QCOW2_OFLAG_COMPRESSED)
    return decode_compressed (geom, entry, bitmap, out, error);

  if (entry & L2E_STD_RESERVED_MASK)
    {
      g_autofree char *what =
        g_strdup_printf (_("reserved bits set (0x%" PRIx64 ")"),
                         entry & L2E_STD_RESERVED_MASK);
      return l2_invalid (error, entry, bitmap, geom, what);
    }

  zero_flag = (entry & RECHAIN_QCOW2_OFLAG_ZERO) != 0;
  if (zero_flag && !geom->zero_flag_allowed)
    return l2_invalid (error, entry, bitmap, geom,
                       geom->extended_l2
                       ? _("zero flag (bit 0) set with extended L2 entries")
                       : _("zero flag (bit 0) set in a version 2 image"));

  host = entry & (guint64) RECHAIN_QCOW2_OFFSET_MASK;
  if (host & (geom->cluster_size - 1))
    {
      g_autofree char *what =
        g_strdup_printf (_("host offset 0x%" PRIx64 " is not "
                         "aligned to the cluster size (%" PRIu64 ")"),
                         host, geom->cluster_size);
      return l2_invalid (error, entry, bitmap, geom, what);
    }
  out->host_offset = host;

  /* Offset 0 normally means "unallocated"; with an external data file 0 is a
   * real offset (guest == host), told apart by the copied bit, which is
   * always set for allocated clusters there. */
  host_valid = host != 0 || (geom->external_data && out->copied);

  if (!geom->extended_l2)
    {
      if (zero_flag)
        out->type[0] = RECHAIN_QCOW2_SUBCLUSTER_ZERO;
      else if (host_valid)
        out->type[0] = RECHAIN_QCOW2_SUBCLUSTER_DATA;
      else
        out->type[0] = RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED;
      return TRUE;
    }
  else
    {
      guint32 alloc = (guint32) (bitmap & 0xffffffffu);
      guint32 zero = (guint32) (bitmap >> 32);

      if (alloc & zero)
        {
          g_autofree char *what =
            g_strdup_printf (_("subclusters both allocated and zero (mask 0x%08x)"),
                             alloc & zero);
          return l2_invalid (error, entry, bitmap, geom, what);
        }
      if (alloc != 0 && !host_valid)
        return l2_invalid (error, entry, bitmap, geom,
                           _("allocated subclusters without a host offset"));
      for (guint32 i = 0; i < 32; i++)
        {
          guint32 bit = 1u << i;

          if (alloc & bit)
            out->type[i] = RECHAIN_QCOW2_SUBCLUSTER_DATA;
          else if (zero & bit)
            out->type[i] = RECHAIN_QCOW2_SUBCLUSTER_ZERO;
          else
            out->type[i] = RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED;
        }
      return TRUE;
    }
}
