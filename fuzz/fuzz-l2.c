/* fuzz-l2: the L1/L2 entry decoders and refcount block accessors, for every
 * geometry a valid header can have (chosen by the first two input bytes).
 *
 * Properties: every failure is a rechain GError; a decoded entry is
 * self-consistent (types in range, one kind for a compressed cluster,
 * aligned host offsets, offsets inside the 56-bit host space); refcount
 * entries read back what was written, masked to the refcount width, and
 * writing one entry changes no other.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "format/qcow2.h"

static guint64
get64 (const uint8_t *p)
{
  guint64 v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static void
check_entry (const RechainQcow2Geometry *g, const RechainQcow2L2Entry *e)
{
  gboolean any_data = FALSE;

  for (guint i = 0; i < g->subclusters; i++)
    {
      if (e->type[i] > RECHAIN_QCOW2_SUBCLUSTER_COMPRESSED)
        FUZZ_BUG ("subcluster type %u", e->type[i]);
      if ((e->type[i] == RECHAIN_QCOW2_SUBCLUSTER_COMPRESSED) != (e->compressed != FALSE))
        FUZZ_BUG ("compressed flag and subcluster %u type disagree", i);
      any_data |= e->type[i] == RECHAIN_QCOW2_SUBCLUSTER_DATA;
    }
  if (e->compressed)
    {
      if (e->compressed_offset >= (G_GUINT64_CONSTANT (1) << 56))
        FUZZ_BUG ("compressed offset 0x%" G_GINT64_MODIFIER "x", e->compressed_offset);
      if (e->compressed_length == 0 || e->compressed_length > 2 * g->cluster_size + 512)
        FUZZ_BUG ("compressed length %" G_GUINT64_FORMAT, e->compressed_length);
      if (g->external_data)
        FUZZ_BUG ("compressed cluster accepted with an external data file");
    }
  else if (any_data)
    {
      if (e->host_offset & (g->cluster_size - 1))
        FUZZ_BUG ("unaligned host offset 0x%" G_GINT64_MODIFIER "x", e->host_offset);
      if (e->host_offset >= (G_GUINT64_CONSTANT (1) << 56))
        FUZZ_BUG ("host offset 0x%" G_GINT64_MODIFIER "x", e->host_offset);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  RechainQcow2Header h;
  RechainQcow2Geometry g;
  size_t step, pos;

  fuzz_init ();
  if (size < 2)
    return 0;

  memset (&h, 0, sizeof h);
  h.cluster_bits = RECHAIN_QCOW2_MIN_CLUSTER_BITS + data[0] % 13;
  h.version = (data[1] & 1) ? 3 : 2;
  if (h.version == 3)
    {
      if ((data[1] & 2) && h.cluster_bits >= 14)
        h.incompatible_features |= RECHAIN_QCOW2_INCOMPAT_EXTL2;
      if (data[1] & 4)
        h.incompatible_features |= RECHAIN_QCOW2_INCOMPAT_DATA_FILE;
      h.refcount_order = (data[1] >> 3) % 7;
    }
  else
    h.refcount_order = 4;
  rechain_qcow2_geometry_init (&g, &h);

  if (g.cluster_size != (G_GUINT64_CONSTANT (1) << h.cluster_bits) ||
      g.subclusters * g.subcluster_size != g.cluster_size ||
      (g.l2_entries << (g.extended_l2 ? 4 : 3)) != g.cluster_size)
    FUZZ_BUG ("inconsistent geometry for cluster_bits %u", h.cluster_bits);

  step = g.extended_l2 ? 16 : 8;
  for (pos = 2; pos + step <= size; pos += step)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GError) error1 = NULL;
      RechainQcow2L2Entry e;
      guint64 entry = get64 (data + pos);
      guint64 bitmap = g.extended_l2 ? get64 (data + pos + 8) : 0;
      guint64 l2_offset;

      memset (&e, 0xa5, sizeof e);
      if (rechain_qcow2_l2_entry_decode (&g, entry, bitmap, &e, &error))
        check_entry (&g, &e);
      else
        fuzz_check_error (error, "L2 entry decode");

      if (rechain_qcow2_l1_entry_decode (&g, entry, &l2_offset, &error1))
        {
          if (l2_offset & (g.cluster_size - 1))
            FUZZ_BUG ("unaligned L2 table offset");
        }
      else
        fuzz_check_error (error1, "L1 entry decode");
    }

  /* refcount block accessors on a block of one (small) cluster */
  {
    guint32 order = h.refcount_order;
    gsize block_size = 512;
    guint64 entries = (guint64) block_size * 8 >> order;
    guint64 mask = order == 6 ? G_MAXUINT64 : ((G_GUINT64_CONSTANT (1) << (1u << order)) - 1);
    g_autofree guint8 *block = g_malloc0 (block_size);
    g_autofree guint8 *copy = g_malloc (block_size);

    for (pos = 2; pos + 10 <= size; pos += 10)
      {
        guint64 index = (((guint64) data[pos] << 8) | data[pos + 1]) % entries;
        /* the accessors require a value that fits the width */
        guint64 value = get64 (data + pos + 2) & mask;
        memcpy (copy, block, block_size);
        rechain_qcow2_refblock_set (block, order, index, value);
        if (rechain_qcow2_refblock_get (block, order, index) != value)
          FUZZ_BUG ("refcount entry %" G_GUINT64_FORMAT " (order %u) reads back wrong", index, order);
        rechain_qcow2_refblock_set (block, order, index,
                                    rechain_qcow2_refblock_get (copy, order, index));
        if (memcmp (copy, block, block_size) != 0)
          FUZZ_BUG ("refcount set of entry %" G_GUINT64_FORMAT " touched other entries", index);
        rechain_qcow2_refblock_set (block, order, index, value);
      }
  }
  return 0;
}
