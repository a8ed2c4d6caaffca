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
 * overlays (linked clones of one base). Their common backing files are
 * opened once (rechain_chain_open_shared()). Many overlays are rebased in
 * batches, each a full pass of steps 1-4 over a part of them, so that
 * file descriptors and memory stay bounded at a thousand clones; a batch
 * compares only what no batch before it compared and reuses the
 * differences those found (see "batches" below).
 *
 * This file holds the orchestration: opening the overlays and chains, the
 * checks before writing, step 1 and the windows, the commits and the header
 * switch (step 4), the report. Step 2, the planner, is in rebase-compare.c;
 * step 3, the executor and its copy strategy, in rebase-copy.c. Data flows
 * one way, planner -> executor -> qcow2 writer (rebase-private.h).
 *
 * A dry run runs all of it. It differs in three places only: its overlays
 * are opened read-only (open_overlays()), their output is a planning one
 * (open_output(), rebase-copy.c), and it switches no header
 * (finish_overlays()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "job/chunk-stream.h"
#include "job/window-mapper.h"
#include "job/rebase-private.h"
#include "rechain/rechain-i18n-private.h"

#define WINDOW (G_GUINT64_CONSTANT (256) << 20)

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
  r->warnings = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (r->warnings, NULL);
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
  g_ptr_array_unref (r->warnings);
  g_free (r);
}

/* Closes the overlay's files and releases its leases: what its batch
 * keeps of it after that is its place in the progress. */
static void
overlay_close (Overlay *o)
{
  g_clear_pointer (&o->writer, rechain_qcow2_writer_free);
  g_clear_pointer (&o->chain, rechain_chain_free);
  o->top = NULL;
  /* after the close: the image is switched and flushed by now */
  g_clear_pointer (&o->lease, rechain_lease_release);
}

static void
overlay_free (Overlay *o)
{
  overlay_close (o);
  g_clear_pointer (&o->unallocated, g_array_unref);
  g_free (o);
}

/* Image @k's outcome is final: tells options->image_done, once. On the
 * rebase's own thread only (rb->reported is not shared). */
static void
image_finished (Rebase *rb, guint k)
{
  const RechainRebaseOptions *opts = rb->options;

  if (rb->reported[k])
    return;
  rb->reported[k] = TRUE;
  if (opts->image_done)
    opts->image_done (k, g_ptr_array_index (rb->report->images, k), opts->image_done_data);
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
gboolean
commit_overlay (Rebase *rb, Overlay *o, GError **error)
{
  return check_stamps (rb, error) && rechain_qcow2_writer_commit (o->writer, error);
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

/* ---- the comparison, once across batches ---- */

/* @u less the sorted ranges @minus, into @out */
static void
ranges_subtract (GArray *u, GArray *minus, GArray *out)
{
  const Range *m = (const Range *) (void *) minus->data;
  guint j = 0;

  g_array_set_size (out, 0);
  for (guint i = 0; i < u->len; i++)
    {
      const Range *r = &g_array_index (u, Range, i);
      guint64 pos = r->offset, end = r->offset + r->length;

      while (j < minus->len && m[j].offset + m[j].length <= pos)
        j++;
      for (guint jj = j; jj < minus->len && m[jj].offset < end && pos < end; jj++)
        {
          if (m[jj].offset > pos)
            g_array_append_vals (out, &(Range) { pos, m[jj].offset - pos }, 1);
          pos = MAX (pos, m[jj].offset + m[jj].length);
        }
      if (pos < end)
        g_array_append_vals (out, &(Range) { pos, end - pos }, 1);
    }
}

/* Adds @more to the sorted, coalesced ranges @ranges */
static void
ranges_add (GArray *ranges, GArray *more)
{
  guint n = 0;

  if (more->len == 0)
    return;
  g_array_append_vals (ranges, more->data, more->len);
  g_array_sort (ranges, range_cmp);
  for (guint i = 0; i < ranges->len; i++)
    {
      Range r = g_array_index (ranges, Range, i);
      Range *last = n ? &g_array_index (ranges, Range, n - 1) : NULL;

      if (last && r.offset <= last->offset + last->length)
        last->length = MAX (last->offset + last->length, r.offset + r.length) - last->offset;
      else
        g_array_index (ranges, Range, n++) = r;
    }
  g_array_set_size (ranges, n);
}

static gint
diff_cmp (gconstpointer a, gconstpointer b)
{
  const Diff *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The differences of window [start, end): those earlier batches found
 * there, and @fresh, found now over ranges no batch compared before
 * (disjoint from the others). @fresh is kept for the batches to come. */
static void
window_diffs (Rebase *rb, guint64 start, guint64 end, GArray *fresh, GArray *diffs)
{
  g_array_set_size (diffs, 0);
  for (guint i = 0; i < rb->known_diffs->len; i++)
    {
      Diff d = g_array_index (rb->known_diffs, Diff, i);
      guint64 a = MAX (d.offset, start), b = MIN (d.offset + d.length, end);

      if (a >= b)
        continue;
      d.offset = a;
      d.length = b - a;
      g_array_append_val (diffs, d);
    }
  g_array_append_vals (diffs, fresh->data, fresh->len);
  g_array_sort (diffs, diff_cmp);
  if (fresh->len > 0)
    {
      g_array_append_vals (rb->known_diffs, fresh->data, fresh->len);
      g_array_sort (rb->known_diffs, diff_cmp);
    }
}

/* Batched progress: an overlay is worth what it does not allocate
 * (survey_images()); it is counted window by window, and whatever is left
 * of it when its batch ends (nothing to copy on the new chain, failed). */
static void
credit_overlay (Rebase *rb, Overlay *o, guint64 bytes)
{
  guint64 left = rb->planned[o->index] - MIN (o->credited, rb->planned[o->index]);

  bytes = MIN (bytes, left);
  o->credited += bytes;
  rb->done += bytes;
}

static gboolean
run_windows (Rebase *rb, GError **error)
{
  guint64 size = max_vsize (rb);
  g_autoptr(GArray) u = g_array_new (FALSE, FALSE, sizeof (Range));
  g_autoptr(GArray) diffs = g_array_new (FALSE, FALSE, sizeof (Diff));
  g_autoptr(GArray) todo = g_array_new (FALSE, FALSE, sizeof (Range));
  g_autoptr(GArray) fresh = g_array_new (FALSE, FALSE, sizeof (Diff));
  g_autoptr(RechainWindowMapper) mapper = NULL;

  /* A first pass over the metadata alone sizes the work for progress. */
  for (guint64 start = 0; start < size; start += WINDOW)
    {
      if (g_cancellable_set_error_if_cancelled (rb->cancellable, error))
        return FALSE;
      map_window (rb, start, MIN (size, start + WINDOW), u);
      if (rb->batched)
        {
          /* what no batch before compared; the total is the survey's */
          ranges_subtract (u, rb->compared, todo);
          rb->report->bytes_examined += ranges_total (todo);
        }
      else
        rb->total += ranges_total (u);
      if (rb->options->copy_mode == RECHAIN_COPY_MODE_REFLINK && !reflink_precheck (rb, u, error))
        return FALSE;
    }
  if (!rb->batched)
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
      /* batched: only what no batch before compared is compared */
      if (rb->batched)
        ranges_subtract (u, rb->compared, todo);
      for (guint i = 0; i < (rb->batched ? todo : u)->len; i++)
        if (!diff_range (rb, &g_array_index (rb->batched ? todo : u, Range, i),
                         rb->batched ? fresh : diffs, error))
          {
            rb->new_map = NULL;
            return FALSE;
          }
      /* the copy below uses old_map only */
      rb->new_map = NULL;
      if (rb->batched)
        {
          window_diffs (rb, start, MIN (size, start + WINDOW), fresh, diffs);
          ranges_add (rb->compared, todo);
          g_array_set_size (fresh, 0);
        }

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
          if (rb->batched)
            credit_overlay (rb, o, ranges_total (o->unallocated));
        }
      if (!rb->batched)
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

/* The report entry of image @k, made on first use (entries are in the
 * order of the images). */
static RechainRebaseImageReport *
image_report (Rebase *rb, guint k)
{
  RechainRebaseImageReport *ir;

  while (rb->report->images->len <= k)
    {
      ir = g_new0 (RechainRebaseImageReport, 1);
      ir->image = g_strdup (rb->options->images[rb->report->images->len]);
      g_ptr_array_add (rb->report->images, ir);
    }
  return g_ptr_array_index (rb->report->images, k);
}

static RechainChainOpenFlags
overlay_open_flags (const RechainRebaseOptions *opts)
{
  return (opts->dry_run ? 0 : RECHAIN_CHAIN_OPEN_WRITE) | rechain_rebase_chain_flags (opts);
}

/* Opens overlay @k with its chain. Backing files already open for another
 * overlay are shared, not opened again (linked clones share their old
 * backing chain): an overlay costs its own file descriptors only. */
static Overlay *
open_overlay (Rebase *rb, guint k, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  g_autoptr(RechainChain) chain = NULL;
  RechainChain *tail;
  Overlay *o;

  chain = rechain_chain_open_shared (opts->images[k], opts->format, overlay_open_flags (opts),
                                     opts->cache, opts->source_cache, &opts->confine,
                                     (RechainChain * const *) rb->tails->pdata, rb->tails->len,
                                     error);
  if (!chain)
    return NULL;
  if (rechain_layer_get_format (rechain_chain_get_top (chain)) != RECHAIN_FORMAT_QCOW2)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: a raw image has no backing file to change"), opts->images[k]);
      return NULL;
    }
  /* backing files it opened itself are kept for the overlays after it */
  tail = rechain_chain_detach_backing (chain, 1);
  if (tail)
    g_ptr_array_add (rb->tails, tail);

  o = g_new0 (Overlay, 1);
  o->index = k;
  o->report = image_report (rb, k);
  o->unallocated = g_array_new (FALSE, FALSE, sizeof (Range));
  o->chain = g_steal_pointer (&chain);
  o->top = rechain_chain_get_top (o->chain);
  o->vsize = rechain_layer_get_virtual_size (o->top);
  o->unit = rechain_layer_get_granularity (o->top);
  return o;
}

/* ---- batches ----
 *
 * Every overlay open costs file descriptors (its image, its data file)
 * and memory (its writer's tables, its L2 cache), so a thousand linked
 * clones are not all opened at once: they are rebased in batches that
 * stay under the process's open-file limit and a memory budget. Each
 * batch runs the whole sequence (checks, windows, commits, header
 * switches), so crash consistency is that of one rebase per batch. The old
 * and new chains are compared once all the same: a batch compares only
 * the guest ranges no batch before it compared (Rebase.compared), and
 * reuses what those found (Rebase.known_diffs). */

/* Descriptors kept free for what else the rebase opens (the new chain's
 * files are counted separately before it is open), and the memory the
 * overlays of a batch may take (overlay_memory()). 32 MiB keeps the peak
 * RSS of a thousand-clone rebase under 96 MiB: beside the batch, the
 * process holds about 50 MiB (libraries, the compare's read buffers, the
 * threads' malloc arenas), measured with 2 GiB clones of 64 KiB clusters:
 * 48 MiB gave a 140 MiB peak, as the old estimate (4 clusters an overlay)
 * counted only the layer's L2 cache. */
#define FD_RESERVE 16u
#define BATCH_MEMORY (G_GUINT64_CONSTANT (32) << 20)
/* Fewer overlays than this are opened at once, as always. */
#define BATCHED_FROM 32u

/* What an open overlay holds until its batch ends: its layer's L2 cache
 * (the tables mapped, at most a few), its writer's copies of the L2
 * tables it changes, and a refcount block. Both sets are bounded by the
 * L2 tables the image has (a 2 GiB image of 64 KiB clusters: 4). */
static guint64
overlay_memory (Overlay *o)
{
  const RechainQcow2Geometry *g = rechain_layer_get_qcow2_geometry (o->top);
  guint64 span = g->cluster_size * g->l2_entries;
  guint64 l2_tables = MAX (1, (o->vsize + span - 1) / span);

  return (2 * MIN (l2_tables, 16) + 1) * g->cluster_size + (16u << 10);
}

static guint
count_open_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  if (!dir)
    return 0;
  while (g_dir_read_name (dir))
    n++;
  return n;
}

static guint64
open_file_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
    return G_MAXUINT32;
  return rl.rlim_cur;
}

/* As many tools do: a soft limit below the hard one only costs batches.
 * The batches never rely on it: they are sized from the limit in force. */
static void
raise_open_file_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
}

/* Opens the overlays of a batch from image @start on; *@next is the first
 * image left for the next batch. Unbatched, every image is opened and the
 * first that cannot be is the error of the whole rebase (nothing is
 * written yet). Batched, an image that cannot be opened fails alone. */
static gboolean
open_overlays (Rebase *rb, guint start, guint *next, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  guint64 limit = open_file_limit ();
  guint64 baseline = count_open_fds ();
  guint64 fds = 0, per_fds = 2, mem = 0, per_mem = 0, depth = 1;
  /* a written overlay's leases (rebase-lease.c) hold descriptors of their
   * own until it is freed: a duplicate of the image's and up to two lease
   * files (its absolute and its resolved path) */
  guint lease_fds = opts->no_leases ? 0 : 3;
  guint k;

  for (k = start; opts->images[k]; k++)
    {
      GError *local = NULL;
      Overlay *o;
      /* the new chain, opened after the first batch's overlays */
      guint64 reserve = FD_RESERVE + (rb->new_chain ? 0 : 2 * depth);

      if (rb->batched && rb->overlays->len > 0 &&
          (baseline + fds + per_fds + reserve > limit || mem + per_mem > BATCH_MEMORY))
        break;
      o = open_overlay (rb, k, &local);
      if (!o)
        {
          if (!rb->batched)
            {
              image_report (rb, k);
              g_propagate_error (error, local);
              return FALSE;
            }
          image_report (rb, k)->error = local;
          /* its part of the progress is over */
          rb->done += rb->planned[k];
          image_finished (rb, k);
          continue;
        }
      g_ptr_array_add (rb->overlays, o);
      per_fds = MAX (per_fds, rechain_chain_count_own_files (o->chain) + lease_fds);
      fds += rechain_chain_count_own_files (o->chain) + lease_fds;
      per_mem = MAX (per_mem, overlay_memory (o));
      mem += overlay_memory (o);
      depth = MAX (depth, rechain_chain_get_depth (o->chain));
    }
  *next = k;
  return TRUE;
}

/* Batched: before any batch, every image is opened alone as its batch
 * will open it (its lock, its header, the switch it will get, its
 * tables), then closed. An image refused here refuses the whole rebase
 * before anything is written, as when all are opened at once. What each
 * does not allocate is the progress it is worth. */
static gboolean
survey_images (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  gboolean has_backing = opts->backing_file && *opts->backing_file;

  for (guint k = 0; opts->images[k]; k++)
    {
      g_autoptr(RechainChain) chain = NULL;
      g_autoptr(GArray) map = rechain_extent_list_new ();
      RechainLayer *top;

      image_report (rb, k);
      if (g_cancellable_set_error_if_cancelled (rb->cancellable, error))
        return FALSE;
      chain = rechain_chain_open_full (opts->images[k], opts->format,
                                       overlay_open_flags (opts) | RECHAIN_CHAIN_OPEN_NO_BACKING,
                                       opts->cache, opts->source_cache, &opts->confine, error);
      if (!chain)
        return FALSE;
      top = rechain_chain_get_top (chain);
      if (rechain_layer_get_format (top) != RECHAIN_FORMAT_QCOW2)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                       _("%s: a raw image has no backing file to change"), opts->images[k]);
          return FALSE;
        }
      if (!rechain_layer_check_backing_change (top, has_backing ? opts->backing_file : NULL,
                                               has_backing ? opts->backing_format : NULL, error) ||
          !rechain_layer_check_tables (top, error) ||
          !rechain_layer_map (top, 0, rechain_layer_get_virtual_size (top), map, error))
        return FALSE;
      for (guint i = 0; i < map->len; i++)
        {
          const RechainExtent *e = &g_array_index (map, RechainExtent, i);
          if (e->kind == RECHAIN_EXTENT_UNALLOCATED)
            rb->planned[k] += e->length;
        }
      rb->total += rb->planned[k];
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
/* A LUKS layer of a new chain that lies inside the old one: left locked
 * by setup_encryption(), never read, so it needs no key. (Any other LUKS
 * layer is unlocked by then, or the rebase was refused.) */
static gboolean
left_locked (Rebase *rb, RechainLayer *layer)
{
  return layer_is_locked (layer) && rechain_chain_contains (rb->new_chain, layer);
}

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
          /* A layer whose data cannot be read (legacy AES, or LUKS
           * without its key) is refused before the first write, naming
           * it, rather than when its data is first read. */
          if ((!left_locked (rb, layer) && !rechain_layer_check_data_access (layer, error)) ||
              !rechain_layer_check_tables (layer, error))
            return FALSE;
          g_ptr_array_add (checked, layer);
        }
    }
  return TRUE;
}

/* Takes @message into the report's warnings. */
static void
add_warning (Rebase *rb, char *message)
{
  GPtrArray *w = rb->report->warnings;

  g_ptr_array_insert (w, (gint) w->len - 1, message);
}

static gboolean
chain_has_encryption (RechainChain *chain, guint first)
{
  for (guint d = first; chain && d < rechain_chain_get_depth (chain); d++)
    if (rechain_layer_get_encryption (rechain_chain_get_layer (chain, d)) !=
        RECHAIN_LAYER_ENCRYPTION_NONE)
      return TRUE;
  return FALSE;
}

/* Encrypted images: what cannot be done with them is refused first, from
 * the headers, then every LUKS layer of the chains involved is unlocked
 * with its own key (in parallel, seconds of CPU each), all before the
 * first write. */
/* Whether the new chain is the lower part of the old chain compared, as
 * when base <- mid <- top is rebased onto base: its layers' data is then
 * never copied (where the old view reads them, the new view is the same
 * layer), and it is read only to compare it with the layers removed. */
static gboolean
new_chain_in_old (Rebase *rb)
{
  RechainChain *old;
  guint n_old, n_new;

  if (!rb->reference || !rb->new_chain)
    return FALSE;
  old = rb->reference->chain;
  n_old = rechain_chain_get_depth (old);
  n_new = rechain_chain_get_depth (rb->new_chain);
  if (n_new + 1 > n_old)
    return FALSE;
  for (guint i = 0; i < n_new; i++)
    if (!same_layer (rechain_chain_get_layer (rb->new_chain, i),
                     rechain_chain_get_layer (old, n_old - n_new + i)))
      return FALSE;
  return TRUE;
}

static gboolean
setup_encryption (Rebase *rb, GError **error)
{
  const RechainRebaseOptions *opts = rb->options;
  g_autoptr(GPtrArray) chains = g_ptr_array_new ();
  RechainChain *except = NULL;

  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);
      gboolean old_encrypted = !o->on_new_chain && chain_has_encryption (o->chain, 1);

      o->encrypted = rechain_layer_get_encryption (o->top) != RECHAIN_LAYER_ENCRYPTION_NONE;
      if (o->encrypted && opts->compress)
        {
          /* as qemu-img: compressed clusters of an encrypted image have no
           * sector IVs QEMU could read them with */
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                       _("%s: the image is encrypted, and encrypted images cannot hold "
                         "compressed clusters (-c); nothing was changed"),
                       rechain_layer_get_path (o->top));
          return FALSE;
        }
      if (opts->copy_mode == RECHAIN_COPY_MODE_REFLINK && (o->encrypted || old_encrypted))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                       _("%s: copy mode reflink cannot share encrypted data (it must be "
                         "decrypted and encrypted again for its new place); use --copy-mode=auto "
                         "or copy; nothing was changed"), rechain_layer_get_path (o->top));
          return FALSE;
        }
      g_ptr_array_add (chains, o->chain);
    }
  /* A new chain inside the old one is left locked, and needs no key: where
   * the removed layers hold data over one of its encrypted layers, that
   * data is copied without being compared (diff_range()). Comparing would
   * spare the writes of clusters equal to the base, but costs the base's
   * unlock (seconds of PBKDF2 CPU at QEMU's default iter-time) and the
   * decryption of its data; an overlay's own data seldom equals it. */
  if (new_chain_in_old (rb))
    except = rb->new_chain;
  else if (rb->new_chain)
    g_ptr_array_add (chains, rb->new_chain);
  return rechain_chains_unlock_except ((RechainChain * const *) chains->pdata, chains->len,
                                       except, opts->keys, error);
}

/* Warns of each plain overlay that data of its encrypted backing chain
 * will be written into, decrypted. Only once the rebase goes on: a run
 * refused before its first write (a key missing, say) writes nothing
 * decrypted, and a warning then would tell the opposite. */
static void
warn_decrypted_copies (Rebase *rb)
{
  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);

      if (!o->encrypted && !o->on_new_chain && chain_has_encryption (o->chain, 1))
        add_warning (rb, g_strdup_printf (_("%s is not encrypted, but its backing chain is: "
                                            "data copied into it from the backing files is "
                                            "written unencrypted"),
                                          rechain_layer_get_path (o->top)));
    }
}

/* Whether @o's backing chain is the old chain compared (rb->old_layers). */
static gboolean
on_old_chain (Rebase *rb, Overlay *o)
{
  if (rechain_chain_get_depth (o->chain) - 1 != rb->old_layers->len)
    return FALSE;
  for (guint i = 0; i < rb->old_layers->len; i++)
    if (!same_layer (rechain_chain_get_layer (o->chain, i + 1),
                     g_ptr_array_index (rb->old_layers, i)))
      return FALSE;
  return TRUE;
}

/* Overlays already on the new chain need nothing copied; all the others
 * must share one old chain, which is compared with the new one once (the
 * first such overlay's, whatever the batch). Batched, an overlay on
 * another chain fails alone. */
static gboolean
classify_overlays (Rebase *rb, GError **error)
{
  rb->reference = NULL;
  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);

      o->on_new_chain = same_chain (o->chain, 1, rb->new_chain, 0);
      if (o->on_new_chain)
        continue;
      if (!rb->old_layers)
        {
          /* its backing layers are in rb->tails: they outlive the batch */
          rb->old_layers = g_ptr_array_new ();
          for (guint d = 1; d < rechain_chain_get_depth (o->chain); d++)
            g_ptr_array_add (rb->old_layers, rechain_chain_get_layer (o->chain, d));
          rb->old_from = g_strdup (rechain_layer_get_path (o->top));
        }
      else if (!on_old_chain (rb, o))
        {
          GError *local = g_error_new (RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                                       _("%s: its backing chain differs from that of %s; overlays "
                                         "rebased together must share their old backing chain "
                                         "(rebase them one by one)"),
                                       rechain_layer_get_path (o->top), rb->old_from);
          if (!rb->batched)
            {
              g_propagate_error (error, local);
              return FALSE;
            }
          overlay_fail (o, local);
          continue;
        }
      if (!rb->reference)
        rb->reference = o;
    }
  return TRUE;
}

/* The last commit, then (@switch_header) the header switch. */
static void
finish_overlay (Rebase *rb, Overlay *o, gboolean switch_header)
{
  const RechainRebaseOptions *opts = rb->options;
  gboolean has_backing = opts->backing_file && *opts->backing_file;
  GError *error = NULL;

  if (overlay_failed (o))
    return;
  /* All copied clusters durable first; only then does the header name
   * the new backing file. */
  if (!commit_overlay (rb, o, &error) ||
      (switch_header &&
       !rechain_layer_write_backing (o->top, has_backing ? opts->backing_file : NULL,
                                     has_backing ? opts->backing_format : NULL, &error)))
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

#define FINISH_THREADS 16u

static void
finish_one (gpointer data, gpointer user_data)
{
  Rebase *rb = user_data;
  Overlay *o = data;

  finish_overlay (rb, o, rb->finishing_switch);
  collect_stats (o);
  g_async_queue_push (rb->finished, o);
}

/* Step 4. A dry run commits too (its planning writers count what the
 * real commits write) but switches nothing, so it has no switch to check
 * the backing files for: the one place the end of a dry run differs. */
static gboolean
finish_overlays (Rebase *rb, GError **error)
{
  gboolean switch_headers = !rb->options->dry_run;

  GThreadPool *pool;

  if (switch_headers && !check_stamps (rb, error))
    return FALSE;
  /* Each overlay's sequence (data durable, then its header) is its own;
   * the overlays' flushes wait on the disk, not on each other: run side by
   * side, the file system commits them together (a thousand clones took
   * three serial fdatasyncs each, 9 ms apiece on the disk measured). */
  rb->finishing_switch = switch_headers;
  pool = g_thread_pool_new (finish_one, rb, MIN (FINISH_THREADS, MAX (rb->overlays->len, 1)),
                            FALSE, NULL);
  for (guint k = 0; k < rb->overlays->len; k++)
    g_thread_pool_push (pool, g_ptr_array_index (rb->overlays, k), NULL);
  /* Meanwhile, this thread closes each overlay as it is done (nothing
   * after needs its files) and reports it: a caller watching a thousand
   * clones learns of each as it ends, and may use it at once (its locks
   * and leases are released by then). */
  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_async_queue_pop (rb->finished);

      overlay_close (o);
      image_finished (rb, o->index);
    }
  g_thread_pool_free (pool, FALSE, TRUE);
  return TRUE;
}

/* One batch: the overlays rb->overlays holds, opened. FALSE when the
 * whole run stops (cancelled, the comparison failed, the backing files
 * changed): what is complete is committed, nothing is switched. */
static gboolean
run_batch (Rebase *rb, gboolean first, GError **error)
{
  if (first)
    {
      if (!open_new_chain (rb, error))
        return FALSE;
    }
  else if (rb->new_chain && !check_new_chain (rb, rb->new_chain, error))
    return FALSE;
  if (!classify_overlays (rb, error) ||
      !setup_encryption (rb, error) || !setup_copy_mode (rb, error) ||
      !check_before_writing (rb, error))
    return FALSE;
  warn_decrypted_copies (rb);
  if (first)
    stamp_chain (rb, rb->new_chain, 0);
  if (rb->reference && !rb->stamped)
    {
      stamp_chain (rb, rb->reference->chain, 1);
      rb->stamped = TRUE;
    }

  for (guint k = 0; k < rb->overlays->len; k++)
    {
      Overlay *o = g_ptr_array_index (rb->overlays, k);
      GError *local = NULL;
      /* one overlay that cannot be written (or that libvirt's lock
       * manager leases to a domain) does not stop the others */
      if (!overlay_failed (o) &&
          (!rechain_rebase_take_lease (rb->options, o->top, &o->lease, &local) ||
           !open_output (rb, o, &local)))
        overlay_fail (o, local);
      /* refused before the copy (another old chain, its lease held, not
       * writable): that is final, whatever the others do */
      if (overlay_failed (o))
        image_finished (rb, o->index);
    }

  /* Cancellation is honoured up to the header switches, and so is a
   * backing file changed under the plan. */
  if ((rb->reference && !run_windows (rb, error)) ||
      g_cancellable_set_error_if_cancelled (rb->cancellable, error) ||
      !finish_overlays (rb, error))
    {
      /* Cancelled or the comparison failed: keep what is complete (it is
       * consistent and a rerun skips it), switch nothing. */
      for (guint k = 0; k < rb->overlays->len; k++)
        {
          Overlay *o = g_ptr_array_index (rb->overlays, k);
          if (o->writer)
            commit_overlay (rb, o, NULL);
          collect_stats (o);
        }
      return FALSE;
    }
  if (rb->batched)
    {
      for (guint k = 0; k < rb->overlays->len; k++)
        credit_overlay (rb, g_ptr_array_index (rb->overlays, k), G_MAXUINT64);
      report_progress (rb);
    }
  return TRUE;
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
  guint n_images, next = 0;

  g_return_val_if_fail (options->images && options->images[0], FALSE);
  n_images = g_strv_length ((char **) options->images);
  rb.options = options;
  rb.report = report;
  rb.progress = progress;
  rb.progress_data = progress_data;
  rb.cancellable = cancellable;
  rb.stamps = g_array_new (FALSE, FALSE, sizeof (FileStamp));
  rb.old_map = rechain_extent_list_new ();
  rb.tails = g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_chain_free);
  rb.compared = g_array_new (FALSE, FALSE, sizeof (Range));
  rb.known_diffs = g_array_new (FALSE, FALSE, sizeof (Diff));
  rb.batched = n_images >= BATCHED_FROM;
  rb.planned = g_new0 (guint64, n_images);
  rb.reported = g_new0 (gboolean, n_images);
  rb.finished = g_async_queue_new ();
  report->dry_run = options->dry_run;

  if (!rechain_rebase_check_target (options->backing_file, options->backing_format, error))
    goto out;
  if (rb.batched)
    {
      raise_open_file_limit ();
      if (!survey_images (&rb, error))
        goto out;
      report_progress (&rb);
    }

  /* Two views read in parallel, one chunk ahead. */
  rb.pool = rechain_read_pool_new (MAX (2, MIN (4, g_get_num_processors ())));
  while (options->images[next])
    {
      gboolean first = next == 0;
      gboolean batch_ok;

      rb.batch_start = next;
      rb.overlays = g_ptr_array_new_with_free_func ((GDestroyNotify) overlay_free);
      batch_ok = open_overlays (&rb, next, &next, error) && run_batch (&rb, first, error);
      /* the overlays of the batch are closed before the next is opened */
      g_clear_pointer (&rb.overlays, g_ptr_array_unref);
      if (!batch_ok)
        goto out;
    }
  if (rb.batched)
    rb.batch_start = n_images;

  /* from here on, each overlay's report says how it ended */
  whole_run_failed = FALSE;
  ok = TRUE;
  for (guint k = 0; k < report->images->len && ok; k++)
    {
      RechainRebaseImageReport *ir = g_ptr_array_index (report->images, k);
      if (ir->error)
        {
          g_propagate_error (error, g_error_copy (ir->error));
          ok = FALSE;
        }
    }

out:
  /* When the whole run stopped, an image the rebase did not complete is
   * reported as failed, with the error that stopped it if it had none of
   * its own (clones switched independently keep their own result, and so
   * do those of the batches before). */
  if (!ok && whole_run_failed && error && *error)
    for (guint k = rb.batch_start; k < (rb.batched ? n_images : report->images->len); k++)
      {
        RechainRebaseImageReport *ir = image_report (&rb, k);
        if (!ir->error)
          ir->error = g_error_copy (*error);
      }
  /* every image the report lists, with the outcome it lists: those the
   * batches did not finish (the run stopped, or was refused) now */
  for (guint k = 0; k < report->images->len; k++)
    image_finished (&rb, k);
  report->seconds = (double) (g_get_monotonic_time () - t0) / G_USEC_PER_SEC;
  g_clear_pointer (&rb.overlays, g_ptr_array_unref);
  g_clear_pointer (&rb.pool, rechain_read_pool_free);
  g_clear_pointer (&rb.new_chain, rechain_chain_free);
  /* the shared backing files, after every chain that borrowed them */
  g_ptr_array_unref (rb.tails);
  g_clear_pointer (&rb.old_layers, g_ptr_array_unref);
  g_free (rb.old_from);
  g_array_unref (rb.stamps);
  g_array_unref (rb.old_map);
  g_array_unref (rb.compared);
  g_array_unref (rb.known_diffs);
  g_free (rb.planned);
  g_free (rb.reported);
  g_async_queue_unref (rb.finished);
  return ok;
}
