/* rebase-private.h: what the parts of the safe rebase engine share.
 *
 * The safe rebase is split along its data flow, one way:
 *   rebase-compare.c  the planner: from the old and the new view's extent
 *                     maps (and reads where both hold data), the ranges
 *                     where the views differ (Diff), and the old view's
 *                     map of the window (Rebase.old_map);
 *   rebase-copy.c     the executor: the old view written into each overlay
 *                     over the differences, by the copy strategy (shared
 *                     blocks, in-kernel copy, buffered), through the
 *                     overlay's output -- a qcow2 writer and a copy target,
 *                     real ones or, for a dry run, planning ones (the one
 *                     place a dry run differs: the same code runs on);
 *   rebase-safe.c     the orchestration: opening the overlays and chains,
 *                     the checks before writing, the windows, commits and
 *                     the header switch, the report.
 * These declarations are internal to the engine (the library is built with
 * hidden visibility; G_GNUC_INTERNAL says so at each of them).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "job/chunk-stream.h"
#include "job/rebase.h"
#include "job/window-mapper.h" /* rechain_view_map() */

G_BEGIN_DECLS

typedef struct {
  guint64 offset, length;
} Range;

typedef struct {
  guint64 offset, length;
  gboolean old_zero; /* the old view reads zeros here */
} Diff;

/* Where an overlay's kernel copies go (rebase-copy.c) */
typedef struct _CopyTarget CopyTarget;

typedef struct {
  RechainChain *chain;
  RechainLayer *top;
  /* the overlay's output, made by open_output(): a real or a planning
   * writer, and the copy target that goes with it */
  RechainQcow2Writer *writer;
  const CopyTarget *target;
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
  /* LUKS: its data is encrypted on the way in, so nothing is copied into
   * it as it is (no clone, no in-kernel copy) */
  gboolean encrypted;
  /* libvirt's leases on it (rebase-lease.c), held until it is freed */
  RechainLease *lease;
  guint index;              /* in options->images and report->images */
  guint64 credited;         /* progress bytes counted for it (batched) */
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

  /* Many overlays are rebased in batches (rebase-safe.c, "Batches"):
   * what persists from one batch to the next. */
  gboolean batched;
  GPtrArray *tails;         /* of RechainChain*: backing files opened once, shared */
  GPtrArray *old_layers;    /* of RechainLayer* (in tails): the old chain compared */
  char *old_from;           /* the image whose backing chain that was */
  GArray *compared;         /* of Range, sorted: guest ranges compared so far */
  GArray *known_diffs;      /* of Diff, sorted: what they found */
  guint64 *planned;         /* per image: progress bytes planned (batched) */
  guint batch_start;        /* index of the first image of the current batch */
  gboolean stamped;         /* the old chain's files are in stamps */
  gboolean finishing_switch; /* finish_overlays(): switch the headers */
  GAsyncQueue *finished;    /* finish_overlays(): of Overlay*, as each is done */
  gboolean *reported;       /* per image: given to options->image_done */
} Rebase;

/* rebase-compare.c: the planner */
G_GNUC_INTERNAL gboolean same_layer (RechainLayer *a, RechainLayer *b);
/* A LUKS layer that was not unlocked (its data cannot be read). */
G_GNUC_INTERNAL gboolean layer_is_locked (RechainLayer *layer);
G_GNUC_INTERNAL gboolean slice_map (GArray *map, guint64 offset, guint64 length, GArray *out);
G_GNUC_INTERNAL gboolean diff_range (Rebase *rb, const Range *r, GArray *diffs, GError **error);

/* rebase-copy.c: the executor */
G_GNUC_INTERNAL gboolean open_output (Rebase *rb, Overlay *o, GError **error);
G_GNUC_INTERNAL gboolean apply_diffs (Rebase *rb, Overlay *o, GArray *diffs, GError **error);
G_GNUC_INTERNAL gboolean setup_copy_mode (Rebase *rb, GError **error);
G_GNUC_INTERNAL gboolean reflink_precheck (Rebase *rb, GArray *u, GError **error);

/* rebase-safe.c: the orchestration */
G_GNUC_INTERNAL gboolean commit_overlay (Rebase *rb, Overlay *o, GError **error);

G_END_DECLS
