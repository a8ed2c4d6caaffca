/* rebase-safe.c: the safe rebase engine.
 *
 * A safe rebase keeps what the guest sees. Where an overlay allocates a
 * region itself, the backing chain does not matter; everywhere else the old
 * chain's view and the new chain's view must agree after the switch, so the
 * old view is written into the overlay wherever the two differ.
 *
 * The work is planned from metadata and proceeds window by window through
 * the guest address space, so memory stays bounded at any image size and
 * cost follows what is allocated:
 *   1. map each overlay: the ranges it does not allocate (U_i), and their
 *      union U;
 *   2. over U, map the old and the new chain and classify each piece:
 *      both zero, or both from the same layer file   -> same, nothing read;
 *      old zero, new data                            -> differs (zero it);
 *      old data, new zero                            -> differs (copy it);
 *      data on both sides from different files       -> read both, compare
 *                                                       in 512-byte sectors;
 *   3. for each overlay, write the old view into every unit (cluster, or
 *      subcluster with extended L2) of U_i that meets a difference: zero
 *      flags where the old view is zero, data otherwise;
 *   4. commit each overlay's writes durably, then rewrite its header.
 * The comparison of the two chains is done once, whatever the number of
 * overlays (linked clones of one base).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "job/chunk-stream.h"
#include "job/window-mapper.h"
#include "job/rebase.h"
#include "rechain/rechain-i18n-private.h"

#define WINDOW (G_GUINT64_CONSTANT (256) << 20)
/* Commit (flush, then link the new clusters in) when this much metadata is
 * held in memory, or this much data waits to be linked in: flushes are
 * few, memory is bounded, and an interruption loses at most a GiB of work. */
#define COMMIT_BYTES (32u << 20)
#define COMMIT_DATA_BYTES (G_GUINT64_CONSTANT (1) << 30)
#define SECTOR 512u

typedef struct {
  guint64 offset, length;
} Range;

typedef struct {
  guint64 offset, length;
  gboolean old_zero; /* the old view reads zeros here */
} Diff;

typedef struct {
  RechainChain *chain;
  RechainLayer *top;
  RechainQcow2Writer *writer;
  RechainRebaseImageReport *report;
  guint64 vsize;
  guint64 unit;
  GArray *unallocated; /* of Range, current window */
  /* Its backing chain already is the new one (an earlier run switched it
   * and was interrupted before the others were): nothing to copy. */
  gboolean on_new_chain;
  /* copy offload: the overlay's file system shares blocks (probed), and its
   * block size, which cloned ranges must be aligned to */
  gboolean can_clone;
  gsize block_size;
} Overlay;

typedef struct {
  const RechainRebaseOptions *options;
  RechainRebaseReport *report;
  GPtrArray *overlays;      /* of Overlay* */
  Overlay *reference;       /* first overlay still on the old chain, or NULL */
  RechainChain *new_chain;  /* NULL: no new backing file */
  RechainRebaseProgress progress;
  gpointer progress_data;
  GCancellable *cancellable;
  guint64 done, total;
  RechainReadPool *pool;
  GArray *stamps;           /* of FileStamp: the backing files as planned */
  /* the old view of the current window's ranges, as diff_range() mapped
   * it: what the copy then needs, without mapping the old chain again */
  GArray *old_map;          /* of RechainExtent, sorted, over the union U */
  /* the new view of the current window, when it was mapped ahead (the
   * old one is then in old_map, over the whole window) */
  GArray *new_map;          /* of RechainExtent, or NULL */
} Rebase;

/* A backing file as it was when the rebase planned from it. Nothing may
 * write to it meanwhile (QEMU's locks say so, unless -U), but if something
 * did, the copy may not match what the header switch exposes: the switch
 * is refused. */
typedef struct {
  RechainFile *file;
  struct stat st;
} FileStamp;

RechainRebaseReport *
rechain_rebase_report_new (void)
{
  RechainRebaseReport *r = g_new0 (RechainRebaseReport, 1);
  r->images = g_ptr_array_new ();
  return r;
}

static void
image_report_free (RechainRebaseImageReport *r)
{
  g_free (r->image);
  g_clear_error (&r->error);
  g_free (r);
}

void
rechain_rebase_report_free (RechainRebaseReport *r)
{
  if (!r)
    return;
  g_ptr_array_foreach (r->images, (GFunc) image_report_free, NULL);
  g_ptr_array_unref (r->images);
  g_free (r);
}

static void
overlay_free (Overlay *o)
{
  g_clear_pointer (&o->writer, rechain_qcow2_writer_free);
  g_clear_pointer (&o->chain, rechain_chain_free);
  g_clear_pointer (&o->unallocated, g_array_unref);
  g_free (o);
}

static gboolean
overlay_failed (Overlay *o)
{
  return o->report->error != NULL;
}

/* Records the first error of an overlay; it takes no further part. */
static void
overlay_fail (Overlay *o, GError *error)
{
  if (!o->report->error)
    o->report->error = error;
  else
    g_error_free (error);
  g_clear_pointer (&o->writer, rechain_qcow2_writer_free);
}

static void
stamp_chain (Rebase *rb, RechainChain *chain, guint first)
{
  for (guint i = first; chain && i < rechain_chain_get_depth (chain); i++)
    {
      RechainLayer *layer = rechain_chain_get_layer (chain, i);
      RechainFile *files[2] = { rechain_layer_get_file (layer), rechain_layer_get_data_file (layer) };

      for (guint f = 0; f < 2; f++)
        {
          FileStamp stamp = { files[f] };
          if (f == 1 && files[1] == files[0])
            break;
          if (fstat (rechain_file_get_fd (files[f]), &stamp.st) == 0)
            g_array_append_val (rb->stamps, stamp);
        }
    }
}

/* Before any header switch: the backing files still are what the plan
 * read (size and modification time), or the switch is refused. */
static gboolean
check_stamps (Rebase *rb, GError **error)
{
  for (guint i = 0; i < rb->stamps->len; i++)
    {
      const FileStamp *s = &g_array_index (rb->stamps, FileStamp, i);
      struct stat now;

      if (fstat (rechain_file_get_fd (s->file), &now) < 0)
        {
          int err = errno;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO, "%s: %s",
                       rechain_file_get_path (s->file), g_strerror (err));
          return FALSE;
        }
      if (now.st_size != s->st.st_size ||
          now.st_mtim.tv_sec != s->st.st_mtim.tv_sec ||
          now.st_mtim.tv_nsec != s->st.st_mtim.tv_nsec)
        {
          /* something else wrote it: in use, as far as the caller goes */
          g_autofree char *how = now.st_size != s->st.st_size
            ? g_strdup_printf (_("its size went from %" PRId64 " to %" PRId64 " bytes"),
                               (gint64) s->st.st_size, (gint64) now.st_size)
            : g_strdup (_("it was written to"));
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE,
                       _("%s: the file changed during the rebase (%s); no image was switched "
                         "to the new backing file: check what wrote to it, then run the "
                         "command again"), rechain_file_get_path (s->file), how);
          return FALSE;
        }
    }
  return TRUE;
}

/* Every commit links copied data into the overlay: only while the backing
 * files are what the plan read. A file changed before the copy read it is
 * caught here, so data read from a changed file is never linked in (it
 * stays unreferenced: a leak, as after any interruption). */
static gboolean
commit_overlay (Rebase *rb, Overlay *o, GError **error)
{
  return check_stamps (rb, error) && rechain_qcow2_writer_commit (o->writer, error);
}

/* ---- views ---- */


static RechainLayer *
extent_layer (RechainChain *chain, const RechainExtent *e)
{
  return e->kind == RECHAIN_EXTENT_DATA ? rechain_chain_get_layer (chain, (guint) e->depth) : NULL;
}

static gboolean
same_layer (RechainLayer *a, RechainLayer *b)
{
  return a && b && rechain_layer_get_format (a) == rechain_layer_get_format (b) &&
         rechain_file_same (rechain_layer_get_file (a), rechain_layer_get_file (b));
}

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
static gboolean
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
static gboolean
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
      else if (old_zero || new_zero)
        {
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

static gboolean
old_view_is_zero (Rebase *rb, RechainChain *old_chain, guint64 offset, guint64 length,
                  gboolean *zero, GError **error)
{
  g_autoptr(GArray) map = rechain_extent_list_new ();

  if (!old_view_map (rb, old_chain, offset, length, map, error))
    return FALSE;
  *zero = TRUE;
  for (guint i = 0; i < map->len; i++)
    if (g_array_index (map, RechainExtent, i).kind == RECHAIN_EXTENT_DATA)
      *zero = FALSE;
  return TRUE;
}

/* Writes the old view of [offset, offset+length), a run of whole units
 * the overlay does not allocate, into the overlay: one piece per cluster
 * (a writer call stays inside a cluster), zero flags where the old view
 * is zero. */
static gboolean
write_piece (Rebase *rb, Overlay *o, guint64 p, gsize plen, const guint8 *data,
             gboolean zero, GError **error)
{
  /* data is NULL when nothing was read: metadata says zero, or a dry run */
  zero = zero || (data && is_zero (data, plen));

  if (zero)
    {
      o->report->bytes_to_zero += plen;
      return rb->options->dry_run || rechain_qcow2_writer_write_zeroes (o->writer, p, plen, error);
    }
  o->report->bytes_to_write += plen;
  o->report->bytes_copied_buffered += plen;
  if (rb->options->dry_run)
    return TRUE;
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
  if (!rb->options->dry_run &&
      should_commit (o) &&
      !commit_overlay (rb, o, error))
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
  if (rb->options->dry_run)
    {
      /* the prediction: what the file systems allow */
      if (way == COPY_SHARE)
        o->report->bytes_shared += op->length;
      else if (way == COPY_IN_KERNEL)
        o->report->bytes_copied_in_kernel += op->length;
      else
        o->report->bytes_copied_buffered += op->length;
      return TRUE;
    }
  if (way == COPY_SHARE)
    {
      r = rechain_file_clone_range (op->src, op->src_offset, dst, op->dst_offset, op->length, error);
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
      r = rechain_file_copy_range (op->src, op->src_offset, dst, op->dst_offset, op->length, error);
      if (r == RECHAIN_COPY_DONE)
        {
          o->report->bytes_copied_in_kernel += op->length;
          return TRUE;
        }
      if (r == RECHAIN_COPY_FAILED)
        return FALSE;
    }

  /* the kernel cannot: through a buffer, into the same fresh clusters */
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
    o->report->bytes_copied_buffered += op->length;
  }
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

/* For a dry run: whether rechain_qcow2_writer_place() would give the
 * piece at guest offset @p a fresh cluster -- not in an external data file
 * (no fresh space there), not in a cluster the overlay already holds data
 * subclusters of (extended L2). */
static gboolean
dry_run_placeable (Overlay *o, guint64 p, gboolean *placeable, GError **error)
{
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);
  guint64 start = p >> g->cluster_bits << g->cluster_bits;
  g_autoptr(GArray) map = rechain_extent_list_new ();

  *placeable = rechain_layer_get_data_file (o->top) == rechain_layer_get_file (o->top);
  if (!*placeable || !g->extended_l2)
    return TRUE;
  if (!rechain_layer_map (o->top, start, MIN (g->cluster_size, o->vsize - start), map, error))
    return FALSE;
  for (guint i = 0; i < map->len; i++)
    if (g_array_index (map, RechainExtent, i).kind == RECHAIN_EXTENT_DATA)
      *placeable = FALSE;
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
      if (!has_compressed)
        {
          if (rb->options->dry_run)
            {
              gboolean placeable;
              if (!dry_run_placeable (o, p, &placeable, error))
                return FALSE;
              /* where it would go: the same alignment, and never 0 */
              host = placeable ? p + o->block_size : 0;
            }
          else if (!rechain_qcow2_writer_place (o->writer, p, plen, &host, error))
            return FALSE;
        }
      if (host == 0) /* not placed (host 0 is the header, never data) */
        {
          /* through a buffer, piece by piece */
          guint64 n = 0;
          if (!buf)
            buf = g_malloc (g->cluster_size);
          if (!rb->options->dry_run &&
              !rechain_view_read (o->chain, 1, p, plen, buf, &n, error))
            return FALSE;
          rb->report->bytes_read += n;
          if (!write_piece (rb, o, p, plen, rb->options->dry_run ? NULL : buf, FALSE, error))
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

      if (!rb->options->dry_run &&
          should_commit (o) &&
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
  gboolean zero;
  GError *local = NULL;
  /* chunks of whole clusters: a writer call covers units of one cluster */
  const gsize chunk = (gsize) MAX ((guint64) RECHAIN_CHUNK_SIZE,
                                   rechain_layer_get_qcow2_geometry (o->top)->cluster_size);

  if (!old_view_is_zero (rb, o->chain, offset, length, &zero, error))
    return FALSE;
  if (!zero && !rb->options->compress && rb->options->copy_mode != RECHAIN_COPY_MODE_COPY)
    return offload_run (rb, o, offset, length, error);
  if (zero || rb->options->dry_run)
    {
      /* nothing to read: metadata says zero, or nothing is written */
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
static gboolean
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
           * whole units (only the image's last unit may be short) */
          guint64 ua = a / o->unit * o->unit;
          guint64 ub = MIN ((b + o->unit - 1) / o->unit * o->unit, o->vsize);

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

/* Which overlays can share blocks with their sources. With copy mode
 * reflink, everything that may be copied must be shareable: refused here,
 * before anything is written, otherwise. */
static gboolean
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
static gboolean
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

/* ---- windows ---- */

static gint
range_cmp (gconstpointer a, gconstpointer b)
{
  const Range *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Step 1: each overlay's unallocated ranges in [start, end), and their
 * union. */
static void
map_window (Rebase *rb, guint64 start, guint64 end, GArray *u)
{
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (Range));

  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);
      g_autoptr(GArray) map = rechain_extent_list_new ();
      GError *error = NULL;
      guint64 wend = MIN (end, o->vsize);

      g_array_set_size (o->unallocated, 0);
      if (overlay_failed (o) || o->on_new_chain || start >= wend)
        continue;
      if (!rechain_layer_map (o->top, start, wend - start, map, &error))
        {
          overlay_fail (o, error);
          continue;
        }
      for (guint i = 0; i < map->len; i++)
        {
          const RechainExtent *e = &g_array_index (map, RechainExtent, i);
          Range r = { e->offset, e->length };
          if (e->kind != RECHAIN_EXTENT_UNALLOCATED)
            continue;
          g_array_append_val (o->unallocated, r);
          g_array_append_val (all, r);
        }
    }

  g_array_sort (all, range_cmp);
  g_array_set_size (u, 0);
  for (guint i = 0; i < all->len; i++)
    {
      const Range *r = &g_array_index (all, Range, i);
      Range *last = u->len ? &g_array_index (u, Range, u->len - 1) : NULL;
      if (last && r->offset <= last->offset + last->length)
        last->length = MAX (last->offset + last->length, r->offset + r->length) - last->offset;
      else
        g_array_append_vals (u, r, 1);
    }
}

static guint64
ranges_total (GArray *ranges)
{
  guint64 total = 0;
  for (guint i = 0; i < ranges->len; i++)
    total += g_array_index (ranges, Range, i).length;
  return total;
}

static guint64
max_vsize (Rebase *rb)
{
  guint64 m = 0;
  for (guint k = 0; k < rb->overlays->len; k++)
    m = MAX (m, ((Overlay *) g_ptr_array_index (rb->overlays, k))->vsize);
  return m;
}

static void
report_progress (Rebase *rb)
{
  if (rb->progress)
    rb->progress (rb->done, rb->total, rb->progress_data);
}

static gboolean
run_windows (Rebase *rb, GError **error)
{
  guint64 size = max_vsize (rb);
  g_autoptr(GArray) u = g_array_new (FALSE, FALSE, sizeof (Range));
  g_autoptr(GArray) diffs = g_array_new (FALSE, FALSE, sizeof (Diff));
  g_autoptr(RechainWindowMapper) mapper = NULL;

  /* A first pass over the metadata alone sizes the work for progress. */
  for (guint64 start = 0; start < size; start += WINDOW)
    {
      if (g_cancellable_set_error_if_cancelled (rb->cancellable, error))
        return FALSE;
      map_window (rb, start, MIN (size, start + WINDOW), u);
      rb->total += ranges_total (u);
      if (rb->options->copy_mode == RECHAIN_COPY_MODE_REFLINK && !reflink_precheck (rb, u, error))
        return FALSE;
    }
  rb->report->bytes_examined = rb->total;
  report_progress (rb);

  /* both views of the windows ahead are mapped on a thread of their own */
  if (rb->reference)
    mapper = rechain_window_mapper_new (rb->reference->chain, 1, rb->new_chain, 0, size, WINDOW);

  for (guint64 start = 0; start < size; start += WINDOW)
    {
      g_autoptr(GArray) window_old = NULL;
      g_autoptr(GArray) window_new = NULL;
      guint64 mapped_start;

      if (mapper &&
          (!rechain_window_mapper_next (mapper, &mapped_start, &window_old, &window_new, error) ||
           mapped_start != start))
        {
          if (error && !*error)
            g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                         "window mapper out of step at 0x%" PRIx64, start);
          return FALSE;
        }

      map_window (rb, start, MIN (size, start + WINDOW), u);
      g_array_set_size (diffs, 0);
      /* the mapper's old view of the window becomes old_map (no copy) */
      if (window_old)
        {
          g_array_unref (rb->old_map);
          rb->old_map = g_steal_pointer (&window_old);
        }
      else
        g_array_set_size (rb->old_map, 0);
      rb->new_map = window_new;
      for (guint i = 0; i < u->len; i++)
        if (!diff_range (rb, &g_array_index (u, Range, i), diffs, error))
          {
            rb->new_map = NULL;
            return FALSE;
          }
      /* the copy below uses old_map only */
      rb->new_map = NULL;

      for (guint k = 0; k < rb->overlays->len; k++)
        {
          Overlay *o = g_ptr_array_index (rb->overlays, k);
          GError *local = NULL;

          if (overlay_failed (o))
            continue;
          o->report->bytes_examined += ranges_total (o->unallocated);
          if (!apply_diffs (rb, o, diffs, &local))
            {
              if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                {
                  g_propagate_error (error, local);
                  return FALSE;
                }
              overlay_fail (o, local);
            }
        }
      rb->done += ranges_total (u);
      report_progress (rb);
    }
  return TRUE;
}

/* ---- setup ---- */

/* Whether layers @a_first.. of @a and @b_first.. of @b are the same files
 * in the same formats (a NULL chain is an empty one). */
static gboolean
same_chain (RechainChain *a, guint a_first, RechainChain *b, guint b_first)
{
  guint a_depth = a ? rechain_chain_get_depth (a) : 0;
  guint b_depth = b ? rechain_chain_get_depth (b) : 0;

  if (a_depth - MIN (a_first, a_depth) != b_depth - MIN (b_first, b_depth))
    return FALSE;
  for (guint i = a_first, j = b_first; i < a_depth; i++, j++)
    if (!same_layer (rechain_chain_get_layer (a, i), rechain_chain_get_layer (b, j)))
      return FALSE;
  return TRUE;
}

/* Refuses a new backing chain that contains one of the overlays: the
 * rebase would make it its own backing file. */
static gboolean
check_new_chain (Rebase *rb, RechainChain *new_chain, GError **error)
{
  for (guint i = 0; i < rechain_chain_get_depth (new_chain); i++)
    {
      RechainLayer *layer = rechain_chain_get_layer (new_chain, i);
      for (guint k = 0; k < rb->overlays->len; k++)
        {
          Overlay *o = g_ptr_array_index (rb->overlays, k);
          if (rechain_file_same (rechain_layer_get_file (layer), rechain_layer_get_file (o->top)))
            {
              g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                           _("%s: the new backing chain contains the image itself (as %s); "
                             "nothing was changed"), rechain_layer_get_path (o->top),
                           rechain_layer_get_path (layer));
              return FALSE;
            }
        }
    }
  return TRUE;
}

static gboolean
open_overlays (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;

  for (guint k = 0; opts->images[k]; k++)
    {
      Overlay *o = g_new0 (Overlay, 1);
      RechainRebaseImageReport *ir = g_new0 (RechainRebaseImageReport, 1);

      ir->image = g_strdup (opts->images[k]);
      g_ptr_array_add (rb->report->images, ir);
      o->report = ir;
      o->unallocated = g_array_new (FALSE, FALSE, sizeof (Range));
      g_ptr_array_add (rb->overlays, o);

      o->chain = rechain_chain_open_full (opts->images[k], opts->format,
                                          (opts->dry_run ? 0 : RECHAIN_CHAIN_OPEN_WRITE) |
                                          rechain_rebase_chain_flags (opts),
                                          opts->cache, opts->source_cache, &opts->confine, error);
      if (!o->chain)
        return FALSE;
      o->top = rechain_chain_get_top (o->chain);
      if (rechain_layer_get_format (o->top) != RECHAIN_FORMAT_QCOW2)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                       _("%s: a raw image has no backing file to change"), opts->images[k]);
          return FALSE;
        }
      o->vsize = rechain_layer_get_virtual_size (o->top);
      o->unit = rechain_layer_get_granularity (o->top);
    }
  return TRUE;
}

/* The backing name is written as given into every overlay, and QEMU
 * resolves a relative name from the directory of the image that records
 * it: linked clones in different directories would each find another file
 * (or none) under one relative name. Refused before anything is written
 * unless the name leads every overlay to the same file. */
static gboolean
check_backing_name_per_overlay (Rebase *rb, const char *path, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  struct stat want;

  if (!opts->images[1] || g_path_is_absolute (opts->backing_file))
    return TRUE;
  if (stat (path, &want) < 0)
    return TRUE; /* the open that follows reports it */
  for (guint k = 1; opts->images[k]; k++)
    {
      g_autofree char *other = rechain_path_resolve (opts->images[k], opts->backing_file, error);
      struct stat st;

      if (!other)
        return FALSE;
      if (stat (other, &st) < 0 || st.st_dev != want.st_dev || st.st_ino != want.st_ino)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                       _("%s: the relative backing name '%s' leads to %s from this image's "
                         "directory, not to %s as from %s; nothing was changed (give an "
                         "absolute name, or rebase the images separately)"),
                       opts->images[k], opts->backing_file, other, path, opts->images[0]);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
open_new_chain (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  g_autofree char *path = NULL;
  g_autoptr(RechainChain) unlocked = NULL;

  if (!opts->backing_file || !*opts->backing_file)
    return TRUE;
  /* As qemu-img: a relative new backing name is relative to the image. */
  path = rechain_path_resolve (opts->images[0], opts->backing_file, error);
  if (!path)
    return FALSE;

  /* Look at the new chain without locks first: if it contains an overlay
   * (which this process holds for writing), say so rather than report the
   * lock conflict with ourselves. */
  unlocked = rechain_chain_open_full (path, opts->backing_format,
                                      RECHAIN_CHAIN_OPEN_FORCE_SHARE | rechain_rebase_chain_flags (opts),
                                      opts->source_cache, opts->source_cache, &opts->confine,
                                      error);
  if (!unlocked)
    {
      g_prefix_error (error, _("new backing file: "));
      return FALSE;
    }
  if (!check_new_chain (rb, unlocked, error) ||
      !check_backing_name_per_overlay (rb, path, error))
    return FALSE;
  if (opts->force_share)
    {
      rb->new_chain = g_steal_pointer (&unlocked);
      return TRUE;
    }
  g_clear_pointer (&unlocked, rechain_chain_free);
  rb->new_chain = rechain_chain_open_full (path, opts->backing_format,
                                           rechain_rebase_chain_flags (opts) &
                                             ~RECHAIN_CHAIN_OPEN_FORCE_SHARE,
                                           opts->source_cache, opts->source_cache,
                                           &opts->confine, error);
  if (!rb->new_chain)
    {
      g_prefix_error (error, _("new backing file: "));
      return FALSE;
    }
  return TRUE;
}

/* Everything that can refuse an image, before the first write: the header
 * switch each overlay will get, and the L2 tables of every layer the plan
 * may read, each file once (linked clones share their old backing files).
 * An image refused for its own metadata stays byte for byte as it was,
 * rather than being refused when the map reaches the bad entry, or at the
 * switch, after data was copied. */
static gboolean
check_before_writing (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  gboolean has_backing = opts->backing_file && *opts->backing_file;
  g_autoptr(GPtrArray) checked = g_ptr_array_new ();
  g_autoptr(GPtrArray) chains = g_ptr_array_new ();

  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);

      if (!rechain_layer_check_backing_change (o->top, has_backing ? opts->backing_file : NULL,
                                               has_backing ? opts->backing_format : NULL, error))
        return FALSE;
      g_ptr_array_add (chains, o->chain);
    }
  if (rb->new_chain)
    g_ptr_array_add (chains, rb->new_chain);
  for (guint c = 0; c < chains->len; c++)
    {
      RechainChain *chain = g_ptr_array_index (chains, c);

      for (guint d = 0; d < rechain_chain_get_depth (chain); d++)
        {
          RechainLayer *layer = rechain_chain_get_layer (chain, d);
          gboolean seen = FALSE;
          struct stat st;

          if (fstat (rechain_file_get_fd (rechain_layer_get_file (layer)), &st) == 0)
            for (guint i = 0; i < checked->len && !seen; i++)
              seen = rechain_layer_same_file (g_ptr_array_index (checked, i), st.st_dev, st.st_ino);
          if (seen)
            continue;
          if (!rechain_layer_check_tables (layer, error))
            return FALSE;
          g_ptr_array_add (checked, layer);
        }
    }
  return TRUE;
}

/* Overlays already on the new chain need nothing copied; all the others
 * must share one old chain, which is compared with the new one once. */
static gboolean
classify_overlays (Rebase *rb, GError **error)
{
  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);

      o->on_new_chain = same_chain (o->chain, 1, rb->new_chain, 0);
      if (o->on_new_chain)
        continue;
      if (!rb->reference)
        rb->reference = o;
      else if (!same_chain (rb->reference->chain, 1, o->chain, 1))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                       _("%s: its backing chain differs from that of %s; overlays rebased together "
                         "must share their old backing chain (rebase them one by one)"),
                       rechain_layer_get_path (o->top), rechain_layer_get_path (rb->reference->top));
          return FALSE;
        }
    }
  return TRUE;
}

static void
finish_overlay (Rebase *rb, Overlay *o)
{
  const RechainRebaseOptions *opts = rb->options;
  gboolean has_backing = opts->backing_file && *opts->backing_file;
  GError *error = NULL;

  if (overlay_failed (o) || opts->dry_run)
    return;
  /* All copied clusters durable first; only then does the header name
   * the new backing file. */
  if (!commit_overlay (rb, o, &error) ||
      !rechain_layer_write_backing (o->top, has_backing ? opts->backing_file : NULL,
                                    has_backing ? opts->backing_format : NULL, &error))
    {
      overlay_fail (o, error);
      return;
    }
}

static void
collect_stats (Overlay *o)
{
  const RechainQcow2WriterStats *s;

  if (!o->writer)
    return;
  s = rechain_qcow2_writer_get_stats (o->writer);
  o->report->clusters_allocated = s->clusters_allocated;
  o->report->compressed_clusters = s->compressed_clusters;
  o->report->metadata_bytes = s->metadata_bytes;
  o->report->flushes = s->flushes;
}

gboolean
rechain_rebase_safe (const RechainRebaseOptions *options,
                     RechainRebaseReport *report,
                     RechainRebaseProgress progress,
                     gpointer progress_data,
                     GCancellable *cancellable,
                     GError **error)
{
  Rebase rb = { 0 };
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = FALSE, whole_run_failed = TRUE;

  g_return_val_if_fail (options->images && options->images[0], FALSE);
  rb.options = options;
  rb.report = report;
  rb.progress = progress;
  rb.progress_data = progress_data;
  rb.cancellable = cancellable;
  rb.overlays = g_ptr_array_new_with_free_func ((GDestroyNotify) overlay_free);
  rb.stamps = g_array_new (FALSE, FALSE, sizeof (FileStamp));
  rb.old_map = rechain_extent_list_new ();
  report->dry_run = options->dry_run;

  if (!rechain_rebase_check_target (options->backing_file, options->backing_format, error) ||
      !open_overlays (&rb, error) ||
      !open_new_chain (&rb, error) ||
      !classify_overlays (&rb, error))
    goto out;

  if (!setup_copy_mode (&rb, error) || !check_before_writing (&rb, error))
    goto out;
  if (rb.reference)
    stamp_chain (&rb, rb.reference->chain, 1);
  stamp_chain (&rb, rb.new_chain, 0);

  if (!options->dry_run)
    for (guint k = 0; k < rb.overlays->len; k++)
      {
        Overlay *o = g_ptr_array_index (rb.overlays, k);
        GError *local = NULL;
        /* one overlay that cannot be written does not stop the others */
        o->writer = rechain_layer_new_writer (o->top, &local);
        if (!o->writer)
          overlay_fail (o, local);
      }

  /* Two views read in parallel, one chunk ahead. */
  rb.pool = rechain_read_pool_new (MAX (2, MIN (4, g_get_num_processors ())));
  /* Cancellation is honoured up to the header switches, and so is a
   * backing file changed under the plan. */
  if ((rb.reference && !run_windows (&rb, error)) ||
      g_cancellable_set_error_if_cancelled (cancellable, error) ||
      (!options->dry_run && !check_stamps (&rb, error)))
    {
      /* Cancelled or the comparison failed: keep what is complete (it is
       * consistent and a rerun skips it), switch nothing. */
      for (guint k = 0; k < rb.overlays->len; k++)
        {
          Overlay *o = g_ptr_array_index (rb.overlays, k);
          if (o->writer)
            commit_overlay (&rb, o, NULL);
          collect_stats (o);
        }
      goto out;
    }

  for (guint k = 0; k < rb.overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb.overlays, k);
      finish_overlay (&rb, o);
      collect_stats (o);
    }
  /* from here on, each overlay's report says how it ended */
  whole_run_failed = FALSE;
  ok = TRUE;
  for (guint k = 0; k < rb.overlays->len && ok; k++)
    {
      Overlay *o = g_ptr_array_index (rb.overlays, k);
      if (overlay_failed (o))
        {
          g_propagate_error (error, g_error_copy (o->report->error));
          ok = FALSE;
        }
    }

out:
  /* When the whole run stopped, an image the rebase did not complete is
   * reported as failed, with the error that stopped it if it had none of
   * its own (clones switched independently keep their own result). */
  if (!ok && whole_run_failed && error && *error)
    for (guint k = 0; k < report->images->len; k++)
      {
        RechainRebaseImageReport *ir = g_ptr_array_index (report->images, k);
        if (!ir->error)
          ir->error = g_error_copy (*error);
      }
  report->seconds = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;
  g_clear_pointer (&rb.pool, rechain_read_pool_free);
  g_clear_pointer (&rb.new_chain, rechain_chain_free);
  g_ptr_array_unref (rb.overlays);
  g_array_unref (rb.stamps);
  g_array_unref (rb.old_map);
  return ok;
}
