/* rebase-copy.c: the safe rebase's executor -- writing the old view into
 * an overlay wherever the planner found a difference.
 *
 * apply_diffs() widens each difference to whole units (clusters, or
 * subclusters with extended L2) of the ranges the overlay does not
 * allocate, and writes each run: zero flags where the old view is zero;
 * otherwise, by the copy strategy, blocks shared with the backing file
 * (FICLONERANGE, copy mode reflink or auto), copied in the kernel
 * (copy_file_range(2)), or read and written through a buffer (copy mode
 * copy, compression, and whatever the kernel cannot do). setup_copy_mode()
 * and reflink_precheck() decide and check the strategy before anything is
 * written. Writes go through the overlay's qcow2 writer, committed when
 * enough is pending (commit_overlay(), in rebase-safe.c, checks the
 * backing files first).
 *
 * Data flows one way: the planner (rebase-compare.c: the Diff list and the
 * old view's map) -> this executor -> the overlay's output: its qcow2
 * writer and its copy target (the kernel's clones and copies). A dry run
 * runs this same code: open_output() gives it a planning writer, which
 * takes every decision the real one takes and writes nothing, and a copy
 * target that predicts the kernel's part instead of asking the kernel. So
 * the dry run's report is the real run's, by construction.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "job/rebase-private.h"
#include "rechain/rechain-i18n-private.h"

/* Commit (flush, then link the new clusters in) when this much metadata is
 * held in memory, or this much data waits to be linked in: flushes are
 * few, memory is bounded, and an interruption loses at most a GiB of work. */
#define COMMIT_BYTES (32u << 20)
#define COMMIT_DATA_BYTES (G_GUINT64_CONSTANT (1) << 30)

static gboolean
is_zero (const guint8 *p, gsize len)
{
  /* memcmp against itself shifted by one block: fast and branch-free */
  if (len == 0)
    return TRUE;
  if (p[0] != 0)
    return FALSE;
  return memcmp (p, p + 1, len - 1) == 0;
}

/* ---- writing one overlay ---- */

static gboolean
should_commit (Overlay *o)
{
  return rechain_qcow2_writer_get_pending (o->writer) >= COMMIT_BYTES ||
         rechain_qcow2_writer_get_pending_data (o->writer) >= COMMIT_DATA_BYTES;
}

/* The old view of [offset, offset+length), a part of the window's union U:
 * from the map diff_range() made (every overlay rebased together has the
 * same old chain), or mapped again if it is not all there. */
static gboolean
old_view_map (Rebase *rb, RechainChain *old_chain, guint64 offset, guint64 length,
              GArray *out, GError **error)
{
  if (slice_map (rb->old_map, offset, length, out))
    return TRUE;
  g_array_set_size (out, 0);
  return rechain_view_map (old_chain, 1, offset, length, out, error);
}

/* Whether the old view of [offset, offset+length) is all zeros, and
 * whether any of its data comes from an encrypted layer (which only a
 * buffer can carry: decrypted there, encrypted again for the overlay). */
static gboolean
old_view_scan (Rebase *rb, RechainChain *old_chain, guint64 offset, guint64 length,
               gboolean *zero, gboolean *encrypted, GError **error)
{
  g_autoptr(GArray) map = rechain_extent_list_new ();

  if (!old_view_map (rb, old_chain, offset, length, map, error))
    return FALSE;
  *zero = TRUE;
  *encrypted = FALSE;
  for (guint i = 0; i < map->len; i++)
    {
      const RechainExtent *e = &g_array_index (map, RechainExtent, i);
      if (e->kind != RECHAIN_EXTENT_DATA)
        continue;
      *zero = FALSE;
      *encrypted |= rechain_layer_get_encryption (rechain_chain_get_layer (old_chain, (guint) e->depth))
                      != RECHAIN_LAYER_ENCRYPTION_NONE;
    }
  return TRUE;
}

/* Writes the old view of [offset, offset+length), a run of whole units
 * the overlay does not allocate, into the overlay: one piece per cluster
 * (a writer call stays inside a cluster), zero flags where the old view
 * is zero. */
/* -c with subclusters (extended L2): whole clusters are written, as QEMU
 * 8.2+ writes them (see rechain_qcow2_writer_fill_compressed()). */
static gboolean
whole_clusters (Rebase *rb, Overlay *o)
{
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);

  return rb->options->compress && g->subcluster_size < g->cluster_size && !g->external_data;
}

static gboolean
write_piece (Rebase *rb, Overlay *o, guint64 p, gsize plen, const guint8 *data,
             gboolean zero, GError **error)
{
  if (whole_clusters (rb, o))
    {
      if (zero)
        o->report->bytes_to_zero += plen;
      else
        {
          o->report->bytes_to_write += plen;
          o->report->bytes_copied_buffered += plen;
        }
      return rechain_qcow2_writer_fill_compressed (o->writer, p, plen, zero ? NULL : data, error);
    }
  /* data is NULL when nothing was read: metadata says zero */
  zero = zero || is_zero (data, plen);

  if (zero)
    {
      o->report->bytes_to_zero += plen;
      return rechain_qcow2_writer_write_zeroes (o->writer, p, plen, error);
    }
  o->report->bytes_to_write += plen;
  o->report->bytes_copied_buffered += plen;
  return rb->options->compress
           ? rechain_qcow2_writer_write_compressed (o->writer, p, plen, data, error)
           : rechain_qcow2_writer_write (o->writer, p, plen, data, error);
}

static gboolean
write_chunk (Rebase *rb, Overlay *o, guint64 pos, gsize len, const guint8 *buf,
             gboolean zero, GError **error)
{
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);

  for (guint64 p = pos; p < pos + len; )
    {
      guint64 cluster_end = ((p >> g->cluster_bits) + 1) << g->cluster_bits;
      guint64 piece_end = MIN (pos + len, cluster_end);

      if (!write_piece (rb, o, p, (gsize) (piece_end - p), buf ? buf + (p - pos) : NULL,
                        zero, error))
        return FALSE;
      p = piece_end;
    }
  if (should_commit (o) && !commit_overlay (rb, o, error))
    return FALSE;
  return !g_cancellable_set_error_if_cancelled (rb->cancellable, error);
}

/* ---- copy offload: clones and in-kernel copies ---- */

typedef struct {
  RechainFile *src;
  guint64 src_offset, dst_offset, length;
} CopyOp;

/* How a range is copied: the kernel shares or copies whole file system
 * blocks of one file system (FICLONERANGE, copy_file_range(2)); anything
 * else -- misaligned ranges, clusters smaller than a block, another file
 * system -- goes through a buffer. Decided the same way for a dry run and
 * for the real one, so the plan predicts the report. */
typedef enum { COPY_SHARE, COPY_IN_KERNEL, COPY_BUFFERED } CopyWay;

static CopyWay
copy_way (Overlay *o, const CopyOp *op)
{
  guint64 bs = o->block_size;
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);

  if (g->cluster_size % bs != 0 ||
      op->src_offset % bs != 0 || op->dst_offset % bs != 0 || op->length % bs != 0 ||
      !rechain_file_same_filesystem (op->src, rechain_layer_get_file (o->top)))
    return COPY_BUFFERED;
  return o->can_clone ? COPY_SHARE : COPY_IN_KERNEL;
}

static gboolean
reflink_refused (Overlay *o, const CopyOp *op, GError **error)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
               _("%s: could not share the blocks of %s at offset %" PRIu64
                 " (copy mode reflink)"), rechain_layer_get_path (o->top),
               rechain_file_get_path (op->src), op->src_offset);
  return FALSE;
}

/* Through a buffer, into the fresh clusters place() gave: what the
 * kernel cannot do. */
static gboolean
put_buffered (Rebase *rb, Overlay *o, const CopyOp *op, GError **error)
{
  g_autofree guint8 *buf = g_malloc (MIN (op->length, (guint64) RECHAIN_CHUNK_SIZE));

  for (guint64 done = 0; done < op->length; )
    {
      gsize n = (gsize) MIN (op->length - done, (guint64) RECHAIN_CHUNK_SIZE);
      if (!rechain_file_pread_zero_fill (op->src, buf, n, op->src_offset + done, error) ||
          !rechain_qcow2_writer_put_data (o->writer, op->dst_offset + done, buf, n, error))
        return FALSE;
      rb->report->bytes_read += n;
      done += n;
    }
  return TRUE;
}

/* A planning output's copies: the kernel is taken to do what copy_way()
 * says the file systems allow (the prediction), and what goes through a
 * buffer is neither read nor written (the planning writer would drop it). */
static RechainCopyResult
plan_kernel_copy (RechainFile *src, guint64 src_offset, RechainFile *dst, guint64 dst_offset,
                  guint64 length, GError **error)
{
  return RECHAIN_COPY_DONE;
}

static gboolean
plan_put (Rebase *rb, Overlay *o, const CopyOp *op, GError **error)
{
  return TRUE;
}

/* Where an overlay's copies go, chosen once with its writer (open_output):
 * the files, or, for a dry run, nowhere. */
struct _CopyTarget {
  RechainCopyResult (*share) (RechainFile *src, guint64 src_offset, RechainFile *dst,
                              guint64 dst_offset, guint64 length, GError **error);
  RechainCopyResult (*copy) (RechainFile *src, guint64 src_offset, RechainFile *dst,
                             guint64 dst_offset, guint64 length, GError **error);
  gboolean (*put) (Rebase *rb, Overlay *o, const CopyOp *op, GError **error);
};

static const CopyTarget file_target = {
  rechain_file_clone_range, rechain_file_copy_range, put_buffered
};
static const CopyTarget plan_target = { plan_kernel_copy, plan_kernel_copy, plan_put };

/* Copies one coalesced range, sharing blocks where it can, copying in the
 * kernel where it can, through a buffer otherwise. */
static gboolean
copy_op (Rebase *rb, Overlay *o, const CopyOp *op, GError **error)
{
  RechainFile *dst = rechain_layer_get_file (o->top);
  RechainCopyResult r = RECHAIN_COPY_UNSUPPORTED;
  CopyWay way;

  if (op->length == 0)
    return TRUE;
  way = copy_way (o, op);
  /* the pre-check refuses such layouts before anything is written */
  if (rb->options->copy_mode == RECHAIN_COPY_MODE_REFLINK && way != COPY_SHARE)
    return reflink_refused (o, op, error);
  if (way == COPY_SHARE)
    {
      r = o->target->share (op->src, op->src_offset, dst, op->dst_offset, op->length, error);
      if (r == RECHAIN_COPY_DONE)
        {
          o->report->bytes_shared += op->length;
          return TRUE;
        }
      if (r == RECHAIN_COPY_FAILED)
        return FALSE;
      if (rb->options->copy_mode == RECHAIN_COPY_MODE_REFLINK)
        return reflink_refused (o, op, error);
    }
  if (way != COPY_BUFFERED)
    {
      r = o->target->copy (op->src, op->src_offset, dst, op->dst_offset, op->length, error);
      if (r == RECHAIN_COPY_DONE)
        {
          o->report->bytes_copied_in_kernel += op->length;
          return TRUE;
        }
      if (r == RECHAIN_COPY_FAILED)
        return FALSE;
    }
  if (!o->target->put (rb, o, op, error))
    return FALSE;
  o->report->bytes_copied_buffered += op->length;
  return TRUE;
}

/* Queues [src_offset, +length) of @src -> @dst_offset, merging it into the
 * pending operation when both sides continue it. */
static gboolean
queue_copy (Rebase *rb, Overlay *o, CopyOp *pending, RechainFile *src, guint64 src_offset,
            guint64 dst_offset, guint64 length, GError **error)
{
  if (pending->length > 0 && pending->src == src &&
      pending->src_offset + pending->length == src_offset &&
      pending->dst_offset + pending->length == dst_offset &&
      pending->length < (G_GUINT64_CONSTANT (1) << 30))
    {
      pending->length += length;
      return TRUE;
    }
  if (!copy_op (rb, o, pending, error))
    return FALSE;
  *pending = (CopyOp) { src, src_offset, dst_offset, length };
  return TRUE;
}

/* Writes the old view of a run by copying host ranges: for each cluster
 * piece of the overlay, fresh clusters are placed and the data ranges of
 * the old chain are cloned or copied into them; zeros need nothing (fresh
 * clusters read as zeros) or a zero flag; compressed sources and clusters
 * the writer cannot place freshly go through buffers. */
static gboolean
offload_run (Rebase *rb, Overlay *o, guint64 offset, guint64 length, GError **error)
{
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);
  g_autoptr(GArray) map = rechain_extent_list_new ();
  g_autofree guint8 *buf = NULL;
  CopyOp pending = { 0 };
  guint ei = 0;

  if (!old_view_map (rb, o->chain, offset, length, map, error))
    return FALSE;

  for (guint64 p = offset; p < offset + length; )
    {
      guint64 piece_end = MIN (offset + length, ((p >> g->cluster_bits) + 1) << g->cluster_bits);
      gsize plen = (gsize) (piece_end - p);
      gboolean has_data = FALSE, has_compressed = FALSE;
      guint64 host = 0;

      if (g_cancellable_set_error_if_cancelled (rb->cancellable, error))
        return FALSE;
      while (g_array_index (map, RechainExtent, ei).offset + g_array_index (map, RechainExtent, ei).length <= p)
        ei++;
      for (guint i = ei; i < map->len && g_array_index (map, RechainExtent, i).offset < piece_end; i++)
        {
          const RechainExtent *e = &g_array_index (map, RechainExtent, i);
          has_data |= e->kind == RECHAIN_EXTENT_DATA;
          has_compressed |= e->kind == RECHAIN_EXTENT_DATA && e->compressed;
        }

      if (!has_data)
        {
          if (!write_piece (rb, o, p, plen, NULL, TRUE, error))
            return FALSE;
          p = piece_end;
          continue;
        }
      if (!has_compressed && !rechain_qcow2_writer_place (o->writer, p, plen, &host, error))
        return FALSE;
      if (host == 0) /* not placed (host 0 is the header, never data) */
        {
          /* through a buffer, piece by piece */
          guint64 n = 0;
          if (!buf)
            buf = g_malloc (g->cluster_size);
          if (!rechain_view_read (o->chain, 1, p, plen, buf, &n, error))
            return FALSE;
          rb->report->bytes_read += n;
          if (!write_piece (rb, o, p, plen, buf, FALSE, error))
            return FALSE;
          p = piece_end;
          continue;
        }

      for (guint i = ei; i < map->len && g_array_index (map, RechainExtent, i).offset < piece_end; i++)
        {
          const RechainExtent *e = &g_array_index (map, RechainExtent, i);
          guint64 a = MAX (e->offset, p), b = MIN (e->offset + e->length, piece_end);
          RechainLayer *layer;

          /* a fresh cluster reads as zeros where nothing is copied into it:
           * those bytes are zeroed, the others written (and counted below
           * as shared, copied in the kernel or through a buffer) */
          if (e->kind != RECHAIN_EXTENT_DATA)
            {
              o->report->bytes_to_zero += b - a;
              continue;
            }
          o->report->bytes_to_write += b - a;
          layer = rechain_chain_get_layer (o->chain, (guint) e->depth);
          if (!queue_copy (rb, o, &pending, rechain_layer_get_data_file (layer),
                           e->host_offset + (a - e->offset), host + (a - p), b - a, error))
            return FALSE;
        }
      p = piece_end;

      if (should_commit (o) &&
          (!copy_op (rb, o, &pending, error) || (pending.length = 0, FALSE) ||
           !commit_overlay (rb, o, error)))
        return FALSE;
    }
  return copy_op (rb, o, &pending, error);
}

static gboolean
write_run (Rebase *rb, Overlay *o, guint64 offset, guint64 length, GError **error)
{
  g_autoptr(RechainChunkStream) stream = NULL;
  const guint8 *buf;
  guint64 pos;
  gsize len;
  gboolean zero, encrypted;
  GError *local = NULL;
  /* chunks of whole clusters: a writer call covers units of one cluster */
  const gsize chunk = (gsize) MAX ((guint64) RECHAIN_CHUNK_SIZE,
                                   rechain_layer_get_qcow2_geometry (o->top)->cluster_size);

  if (!old_view_scan (rb, o->chain, offset, length, &zero, &encrypted, error))
    return FALSE;
  /* Ciphertext is never copied between files: its IVs are host offsets
   * of the file it is in, and the keys differ. Encrypted data, in either
   * direction, goes through the buffered path (the layer decrypts what it
   * reads, the overlay's writer encrypts what it writes). */
  if (!zero && !rb->options->compress && rb->options->copy_mode != RECHAIN_COPY_MODE_COPY &&
      !encrypted && !o->encrypted)
    return offload_run (rb, o, offset, length, error);
  if (zero)
    {
      /* nothing to read: metadata says zero */
      for (pos = offset; pos < offset + length; pos += len)
        {
          len = (gsize) MIN ((guint64) chunk, offset + length - pos);
          if (!write_chunk (rb, o, pos, len, NULL, zero, error))
            return FALSE;
        }
      return TRUE;
    }

  stream = rechain_chunk_stream_new (rb->pool, o->chain, 1, offset, offset + length,
                                     chunk);
  while (rechain_chunk_stream_next (stream, &pos, &len, &buf, &local))
    if (!write_chunk (rb, o, pos, len, buf, FALSE, error))
      break;
  rb->report->bytes_read += rechain_chunk_stream_get_bytes_read (stream);
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return !(error && *error);
}

/* Step 3 for one overlay and one window: every unit of its unallocated
 * ranges that meets a difference gets the old view. */
gboolean
apply_diffs (Rebase *rb, Overlay *o, GArray *diffs, GError **error)
{
  GArray *u = o->unallocated;
  guint i = 0, j = 0;
  guint64 run_start = 0, run_end = 0;

  while (i < u->len && j < diffs->len)
    {
      const Range *r = &g_array_index (u, Range, i);
      const Diff *d = &g_array_index (diffs, Diff, j);
      guint64 a = MAX (r->offset, d->offset);
      guint64 b = MIN (r->offset + r->length, d->offset + d->length);

      if (a < b)
        {
          /* widen to whole units: they lie inside r, which is made of
           * whole units (only the image's last unit may be short); to
           * whole clusters with whole_clusters(), which may hold
           * subclusters the overlay allocates */
          guint64 unit = whole_clusters (rb, o)
                           ? rechain_layer_get_qcow2_geometry (o->top)->cluster_size : o->unit;
          guint64 ua = a / unit * unit;
          guint64 ub = MIN ((b + unit - 1) / unit * unit, o->vsize);

          if (run_end > 0 && ua <= run_end)
            run_end = MAX (run_end, ub);
          else
            {
              if (run_end > run_start && !write_run (rb, o, run_start, run_end - run_start, error))
                return FALSE;
              run_start = ua;
              run_end = ub;
            }
        }
      if (r->offset + r->length <= d->offset + d->length)
        i++;
      else
        j++;
    }
  if (run_end > run_start && !write_run (rb, o, run_start, run_end - run_start, error))
    return FALSE;
  return TRUE;
}

/* The single place where a dry run differs from a real one in this
 * executor: the overlay's output. A dry run gets a planning writer (the
 * overlay may be open read-only) and the planning copy target; everything
 * after runs the same code. An overlay whose writer cannot be made fails
 * alone (the error is returned), the others go on. */
gboolean
open_output (Rebase *rb, Overlay *o, GError **error)
{
  gboolean plan = rb->options->dry_run;

  o->target = plan ? &plan_target : &file_target;
  o->writer = rechain_layer_new_writer (o->top,
                                        plan ? RECHAIN_QCOW2_WRITER_PLAN : RECHAIN_QCOW2_WRITER_NONE,
                                        error);
  return o->writer != NULL;
}

/* Which overlays can share blocks with their sources. With copy mode
 * reflink, everything that may be copied must be shareable: refused here,
 * before anything is written, otherwise. */
gboolean
setup_copy_mode (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;

  if (opts->copy_mode == RECHAIN_COPY_MODE_REFLINK && opts->compress)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("copy mode reflink shares blocks as they are: it cannot compress them (-c)"));
      return FALSE;
    }
  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);
      RechainFile *file = rechain_layer_get_file (o->top);
      GError *local = NULL;

      o->block_size = rechain_file_get_block_size (file);
      if (opts->copy_mode == RECHAIN_COPY_MODE_COPY || o->on_new_chain)
        continue;
      o->can_clone = rechain_file_probe_reflink (file, &local);
      if (opts->copy_mode != RECHAIN_COPY_MODE_REFLINK)
        {
          g_clear_error (&local);
          continue;
        }
      if (!o->can_clone)
        {
          g_propagate_error (error, local);
          return FALSE;
        }
      if (rechain_layer_get_data_file (o->top) != file ||
          rechain_layer_get_qcow2_geometry (o->top)->cluster_size % o->block_size != 0)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                       _("%s: its clusters (or its external data file) cannot share blocks with "
                         "the backing files (copy mode reflink needs clusters of whole "
                         "%zu-byte file system blocks)"),
                       rechain_layer_get_path (o->top), o->block_size);
          return FALSE;
        }
    }
  return TRUE;
}

/* Why the old chain's data extent @e (of layer @layer) cannot be shared
 * into overlay @o, or NULL. Extents are clipped to whole units the
 * overlay does not allocate; each must start and end on a file system
 * block (FICLONERANGE shares whole blocks only). */
static const char *
reflink_obstacle (Overlay *o, RechainLayer *layer, const RechainExtent *e)
{
  RechainFile *src = rechain_layer_get_data_file (layer);
  guint64 bs = o->block_size;
  guint64 end = MIN (e->offset + e->length, o->vsize);

  if (e->compressed)
    return _("it is stored in compressed clusters");
  if (!rechain_file_same_filesystem (src, rechain_layer_get_file (o->top)))
    return _("it is on another file system");
  if (e->host_offset % bs != 0 || e->offset % bs != 0 || end % bs != 0)
    return _("it does not start and end on file system blocks");
  return NULL;
}

/* Copy mode reflink: every region of @u that may be copied from the old
 * chain must come from uncompressed data, block-aligned, on the file
 * system of each overlay it is copied into. Checked from metadata before
 * anything is written. */
gboolean
reflink_precheck (Rebase *rb, GArray *u, GError **error)
{
  Overlay *ref = rb->reference;

  for (guint i = 0; i < u->len; i++)
    {
      const Range *r = &g_array_index (u, Range, i);
      g_autoptr(GArray) old_map = rechain_extent_list_new ();

      if (!rechain_view_map (ref->chain, 1, r->offset, r->length, old_map, error))
        return FALSE;
      for (guint j = 0; j < old_map->len; j++)
        {
          const RechainExtent *e = &g_array_index (old_map, RechainExtent, j);
          RechainLayer *layer;

          if (e->kind != RECHAIN_EXTENT_DATA)
            continue;
          layer = rechain_chain_get_layer (ref->chain, (guint) e->depth);
          /* the same layer in the new chain: never copied */
          for (guint k = 0; rb->new_chain && k < rechain_chain_get_depth (rb->new_chain); k++)
            if (same_layer (layer, rechain_chain_get_layer (rb->new_chain, k)))
              layer = NULL;
          if (!layer)
            continue;
          for (guint k = 0; k < rb->overlays->len; k++)
            {
              Overlay *o = g_ptr_array_index (rb->overlays, k);
              const char *why;

              if (o->on_new_chain || e->offset >= o->vsize)
                continue;
              why = reflink_obstacle (o, layer, e);
              if (why)
                {
                  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                               _("%s: the data of %s at guest offset %" PRIu64
                                 " cannot be shared (copy mode reflink): %s; nothing was written"),
                               rechain_layer_get_path (o->top), rechain_layer_get_path (layer),
                               e->offset, why);
                  return FALSE;
                }
            }
        }
    }
  return TRUE;
}
