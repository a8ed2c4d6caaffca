/* rebase-compare.c: the safe rebase's planner -- what differs between the
 * old and the new view.
 *
 * For one range of a window's union U (the ranges some overlay does not
 * allocate), the two chains' extent maps say what is the same without
 * reading anything (both zero, or both from one layer file), what differs
 * for sure (zero on one side only), and what must be read on both sides
 * and compared sector by sector. The result is a list of Diff ranges, and
 * the old view's map of U (Rebase.old_map), which the copy reuses.
 *
 * Data flows one way: this planner -> the executor (rebase-copy.c) ->
 * the qcow2 writer. Nothing here writes to an overlay or knows how a
 * range will be copied; rebase-safe.c runs the windows and calls both.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "job/rebase-private.h"

#define SECTOR 512u

/* ---- views ---- */

static RechainLayer *
extent_layer (RechainChain *chain, const RechainExtent *e)
{
  return e->kind == RECHAIN_EXTENT_DATA ? rechain_chain_get_layer (chain, (guint) e->depth) : NULL;
}

gboolean
layer_is_locked (RechainLayer *layer)
{
  return layer && rechain_layer_get_encryption (layer) == RECHAIN_LAYER_ENCRYPTION_LUKS &&
         !rechain_layer_is_unlocked (layer);
}

gboolean
same_layer (RechainLayer *a, RechainLayer *b)
{
  return a && b && rechain_layer_get_format (a) == rechain_layer_get_format (b) &&
         rechain_file_same (rechain_layer_get_file (a), rechain_layer_get_file (b));
}

static void
diff_append (GArray *diffs, guint64 offset, guint64 length, gboolean old_zero)
{
  if (length == 0)
    return;
  if (diffs->len > 0)
    {
      Diff *last = &g_array_index (diffs, Diff, diffs->len - 1);
      if (last->offset + last->length == offset && last->old_zero == old_zero)
        {
          last->length += length;
          return;
        }
    }
  g_array_append_vals (diffs, &(Diff) { offset, length, old_zero }, 1);
}

/* Chunks of the compare, each handled by one worker: it reads both views
 * of a piece and compares them while they are still in its CPU's cache
 * (2 x 256 KiB fits the L2 cache of the machines measured); COMPARE_SLOTS
 * chunks are in flight. 4 MiB chunks: thread hand-offs (futex waits,
 * context switches) cost more than the copy at 256 KiB. With O_DIRECT
 * reads the disk's DMA fills the buffers, no CPU cache is to be kept, and
 * the disk wants large requests: whole chunks (256 KiB pieces took 1.5x
 * the time of dd bs=4M). */
#define COMPARE_CHUNK (4u << 20)
#define COMPARE_PIECE (256u << 10)
#define COMPARE_PIECE_DIRECT COMPARE_CHUNK
#define COMPARE_SLOTS 4u

/* Reads both views of [offset, offset+length) and records where they
 * differ, sector by sector. */
static gboolean
compare_range (Rebase *rb, RechainChain *old_chain, guint64 offset, guint64 length,
               GArray *diffs, GError **error)
{
  g_autoptr(RechainCompareStream) stream =
    rechain_compare_stream_new (rb->pool, old_chain, 1, rb->new_chain, 0,
                                offset, offset + length, COMPARE_CHUNK,
                                rechain_cache_mode_is_direct (rb->options->source_cache)
                                  ? COMPARE_PIECE_DIRECT : COMPARE_PIECE,
                                SECTOR, COMPARE_SLOTS);
  const RechainDiffSpan *spans;
  guint n_spans;
  guint64 pos;
  gsize len;
  GError *local = NULL;

  while (rechain_compare_stream_next (stream, &pos, &len, &spans, &n_spans, &local))
    {
      if (g_cancellable_set_error_if_cancelled (rb->cancellable, error))
        break;
      rb->report->bytes_compared += len;
      for (guint k = 0; k < n_spans; k++)
        {
          diff_append (diffs, spans[k].offset, spans[k].length, FALSE);
          rb->report->bytes_differing += spans[k].length;
        }
    }
  rb->report->bytes_read += rechain_compare_stream_get_bytes_read (stream);
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return !(error && *error);
}

/* Appends to @out the part of @map (sorted extents) covering [offset,
 * offset+length). FALSE when @map does not cover all of it (@out then holds
 * a part). */
gboolean
slice_map (GArray *map, guint64 offset, guint64 length, GArray *out)
{
  const RechainExtent *ex = (const RechainExtent *) (void *) map->data;
  guint lo = 0, hi = map->len;
  guint64 pos = offset, end = offset + length;

  /* the first extent that ends after @offset */
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (ex[mid].offset + ex[mid].length <= offset)
        lo = mid + 1;
      else
        hi = mid;
    }
  for (guint i = lo; i < map->len && pos < end && ex[i].offset <= pos; i++)
    {
      RechainExtent e = ex[i];
      guint64 a = pos, b = MIN (end, e.offset + e.length);
      if (e.host_offset != RECHAIN_NO_HOST_OFFSET)
        e.host_offset += a - e.offset;
      e.offset = a;
      e.length = b - a;
      rechain_extent_append (out, &e);
      pos = b;
    }
  return pos == end;
}

/* Step 2 for one range of U: where the old and new views differ. */
gboolean
diff_range (Rebase *rb, const Range *r, GArray *diffs, GError **error)
{
  RechainChain *old_chain = rb->reference->chain;
  g_autoptr(GArray) old_map = rechain_extent_list_new ();
  g_autoptr(GArray) new_map = rechain_extent_list_new ();
  guint i = 0, j = 0;
  guint64 pos = r->offset;

  if (rb->new_map)
    {
      /* both views were mapped ahead for the whole window */
      if (!slice_map (rb->old_map, r->offset, r->length, old_map) ||
          !slice_map (rb->new_map, r->offset, r->length, new_map))
        g_return_val_if_reached (FALSE);
    }
  else
    {
      if (!rechain_view_map (old_chain, 1, r->offset, r->length, old_map, error) ||
          !rechain_view_map (rb->new_chain, 0, r->offset, r->length, new_map, error))
        return FALSE;
      g_array_append_vals (rb->old_map, old_map->data, old_map->len);
    }

  while (pos < r->offset + r->length)
    {
      const RechainExtent *o = &g_array_index (old_map, RechainExtent, i);
      const RechainExtent *n = &g_array_index (new_map, RechainExtent, j);
      guint64 end = MIN (o->offset + o->length, n->offset + n->length);
      gboolean old_zero = o->kind != RECHAIN_EXTENT_DATA;
      gboolean new_zero = n->kind != RECHAIN_EXTENT_DATA;

      if ((old_zero && new_zero) ||
          same_layer (extent_layer (old_chain, o), extent_layer (rb->new_chain, n)))
        rb->report->bytes_same_by_metadata += end - pos;
      else if (old_zero || new_zero || layer_is_locked (extent_layer (rb->new_chain, n)))
        {
          /* A locked new layer (setup_encryption() unlocks no new chain
           * that lies inside the old one) is not read: its range counts
           * as differing and the old view is copied. */
          diff_append (diffs, pos, end - pos, old_zero);
          rb->report->bytes_differing += end - pos;
        }
      else if (!compare_range (rb, old_chain, pos, end - pos, diffs, error))
        return FALSE;

      pos = end;
      if (pos == o->offset + o->length)
        i++;
      if (pos == n->offset + n->length)
        j++;
    }
  return TRUE;
}
