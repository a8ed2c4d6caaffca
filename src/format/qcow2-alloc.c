/* qcow2-alloc.c: the qcow2 writer's cluster allocator: the refcount
 * blocks, loaded and updated in memory and written at commit; the search
 * for free clusters (past everything the image references, see
 * qcow2-writer-scan.c); new refcount blocks, and the refcount table moved
 * to a larger place when it is full. The memory of new L2 tables (the
 * arenas) is not here but in qcow2-writer.c, with the tables.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/be.h"
#include "format/qcow2-writer-private.h"
#include "rechain/rechain-i18n-private.h"

void
refblock_free (gpointer p)
{
  RefBlock *b = p;
  g_free (b->data);
  g_free (b);
}

/* ---- refcounts ---- */

/* The refcount block of table index @ti, loaded if needed; NULL with no
 * error when it does not exist. */
static RefBlock *
refblock_lookup (RechainQcow2Writer *w, guint64 ti, GError **error)
{
  RefBlock *b;
  guint64 *key;

  if (ti >= w->reftable_entries || w->reftable[ti] == 0)
    return NULL;
  b = g_hash_table_lookup (w->refblocks, &ti);
  if (b)
    return b;
  b = g_new0 (RefBlock, 1);
  b->offset = w->reftable[ti];
  b->data = g_malloc (w->cluster_size);
  if (!w->io.pread (w->io.user, b->data, w->cluster_size, b->offset, error))
    {
      g_prefix_error (error, _("reading the refcount block at 0x%" PRIx64 ": "), b->offset);
      refblock_free (b);
      return NULL;
    }
  key = g_new (guint64, 1);
  *key = ti;
  g_hash_table_insert (w->refblocks, key, b);
  return b;
}

gboolean
get_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 *value, GError **error)
{
  GError *local = NULL;
  RefBlock *b = refblock_lookup (w, cluster / w->refblock_entries, &local);

  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  *value = b ? rechain_qcow2_refblock_get (b->data, w->header->refcount_order,
                                           cluster % w->refblock_entries)
             : 0;
  return TRUE;
}

/* First free cluster at or after next_free. */
static gboolean
find_free (RechainQcow2Writer *w, guint64 count, guint64 *start, GError **error)
{
  guint64 c = w->next_free;

  for (guint64 i = 0; i < count; i++)
    {
      guint64 rc;
      if (!get_refcount (w, c + i, &rc, error))
        return FALSE;
      if (rc != 0)
        {
          /* restart after the used cluster */
          c = c + i + 1;
          i = (guint64) -1;
        }
    }
  *start = c;
  return TRUE;
}

static gboolean grow_reftable (RechainQcow2Writer *w, guint64 min_entries, GError **error);

/* Creates the missing refcount block for table index @ti. */
static RefBlock *
refblock_create (RechainQcow2Writer *w, guint64 ti, GError **error)
{
  RefBlock *b;
  guint64 *key, cluster;

  if (ti >= w->reftable_entries)
    {
      GError *local = NULL;

      if (!grow_reftable (w, ti + 1, error))
        return NULL;
      /* Counting the new table's own clusters may have created this very
       * block already. */
      b = refblock_lookup (w, ti, &local);
      if (local)
        {
          g_propagate_error (error, local);
          return NULL;
        }
      if (b)
        return b;
    }
  if (!find_free (w, 1, &cluster, error))
    return NULL;
  w->next_free = cluster + 1;

  b = g_new0 (RefBlock, 1);
  b->offset = cluster * w->cluster_size;
  b->data = g_malloc0 (w->cluster_size);
  b->dirty = TRUE;
  key = g_new (guint64, 1);
  *key = ti;
  g_hash_table_insert (w->refblocks, key, b);
  w->reftable[ti] = b->offset;
  w->reftable_dirty[ti * 8 / w->cluster_size] = 1;
  w->pending += w->cluster_size;
  w->stats.clusters_allocated++;

  /* The block's own cluster needs a refcount, maybe in itself. */
  if (!set_refcount (w, cluster, 1, error))
    return NULL;
  return b;
}

gboolean
set_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 value, GError **error)
{
  guint64 ti = cluster / w->refblock_entries;
  GError *local = NULL;
  RefBlock *b = refblock_lookup (w, ti, &local);

  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (!b && value == 0)
    return TRUE;
  if (!b && !(b = refblock_create (w, ti, error)))
    return FALSE;
  if (value > w->refcount_max)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("a refcount would exceed the maximum of %" PRIu64
                   " (refcount_bits %u)"), w->refcount_max, 1u << w->header->refcount_order);
      return FALSE;
    }
  rechain_qcow2_refblock_set (b->data, w->header->refcount_order, cluster % w->refblock_entries, value);
  if (!b->dirty)
    {
      b->dirty = TRUE;
      w->pending += w->cluster_size;
    }
  return TRUE;
}

/* Allocates @count contiguous free clusters and sets their refcount to 1. */
gboolean
alloc_clusters (RechainQcow2Writer *w, guint64 count, guint64 *offset, GError **error)
{
  guint64 start;

  if (!find_free (w, count, &start, error))
    return FALSE;
  /* Reserve the range first: refcount blocks created below go after it. */
  w->next_free = start + count;
  for (guint64 i = 0; i < count; i++)
    if (!set_refcount (w, start + i, 1, error))
      return FALSE;
  w->stats.clusters_allocated += count;
  *offset = start * w->cluster_size;
  if (*offset > RECHAIN_QCOW2_OFFSET_MASK)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                   _("the image would grow beyond the 64 PiB qcow2 can address"));
      return FALSE;
    }
  return TRUE;
}

gboolean
write_dirty_refblocks (RechainQcow2Writer *w, GError **error)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, w->refblocks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      RefBlock *b = value;
      if (!b->dirty)
        continue;
      if (!image_write (w, b->data, w->cluster_size, b->offset, error))
        return FALSE;
      b->dirty = FALSE;
    }
  return TRUE;
}

/* Moves the refcount table to a larger place at the end of the image:
 * new refcount blocks and the new table are written and flushed, then the
 * header is pointed at the table and flushed, then the old table's
 * clusters are freed. An interruption before the header write leaves the
 * old table in force and the new clusters leaked. */
static gboolean
grow_reftable (RechainQcow2Writer *w, guint64 min_entries, GError **error)
{
  guint64 per_cluster = w->cluster_size / 8;
  guint64 new_entries = MAX (min_entries, w->reftable_entries * 2);
  guint64 new_clusters, start = 0, old_offset, old_clusters;
  g_autofree guint64 *table_be = NULL;
  guint64 *new_table;
  guint8 fields[12];

  for (;;)
    {
      new_entries = (new_entries + per_cluster - 1) / per_cluster * per_cluster;
      new_clusters = new_entries / per_cluster;
      if (new_clusters > RECHAIN_QCOW2_MAX_REFTABLE_BYTES / w->cluster_size)
        break; /* refused below, before searching for that much space */
      if (!find_free (w, new_clusters, &start, error))
        return FALSE;
      /* The table must also cover the blocks that count its own clusters
       * and those blocks themselves: leave room for a few. */
      if ((start + new_clusters + 8) / w->refblock_entries < new_entries)
        break;
      new_entries *= 2;
    }
  if (new_clusters * w->cluster_size > RECHAIN_QCOW2_MAX_REFTABLE_BYTES)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                   _("the refcount table would exceed %u bytes"), RECHAIN_QCOW2_MAX_REFTABLE_BYTES);
      return FALSE;
    }

  old_offset = w->header->refcount_table_offset;
  old_clusters = w->header->refcount_table_clusters;
  new_table = g_new0 (guint64, new_entries);
  memcpy (new_table, w->reftable, w->reftable_entries * 8);
  g_free (w->reftable);
  w->reftable = new_table;
  w->reftable_entries = new_entries;
  g_free (w->reftable_dirty);
  w->reftable_dirty = g_new0 (guint8, new_clusters);

  w->next_free = start + new_clusters;
  for (guint64 i = 0; i < new_clusters; i++)
    if (!set_refcount (w, start + i, 1, error))
      return FALSE;
  w->stats.clusters_allocated += new_clusters;

  table_be = g_new (guint64, new_entries);
  for (guint64 i = 0; i < new_entries; i++)
    table_be[i] = GUINT64_TO_BE (w->reftable[i]);
  if (!write_dirty_refblocks (w, error) ||
      !image_write (w, table_be, new_entries * 8, start * w->cluster_size, error) ||
      !image_flush (w, error))
    return FALSE;

  wr64 (fields, start * w->cluster_size);
  {
    guint32 n = GUINT32_TO_BE ((guint32) new_clusters);
    memcpy (fields + 8, &n, 4);
  }
  /* refcount_table_offset and refcount_table_clusters are adjacent (48..59) */
  if (!image_write (w, fields, sizeof fields, 48, error) || !image_flush (w, error))
    return FALSE;
  w->header->refcount_table_offset = start * w->cluster_size;
  w->header->refcount_table_clusters = (guint32) new_clusters;

  for (guint64 i = 0; i < old_clusters; i++)
    if (!set_refcount (w, old_offset / w->cluster_size + i, 0, error))
      return FALSE;
  return TRUE;
}
