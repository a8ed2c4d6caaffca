/* window-mapper.h: both views of a rebase's windows, mapped ahead on a
 * thread of their own.
 *
 * The safe rebase handles the guest range window by window: it maps the
 * old and the new chain's view of a window (reading the backing files'
 * L2 tables), compares what differs, and copies. Mapping is metadata work
 * that does not depend on the copy, so a mapper thread does it for the
 * windows ahead while the rebase copies the current one: on two CPUs the
 * 64 MiB of L2 tables of a 1 TiB sparse base are read and decoded beside
 * the copy instead of before it.
 *
 * Memory is bounded: the mapper stops when its queue holds
 * RECHAIN_WINDOW_MAPPER_MAX_WINDOWS windows or RECHAIN_WINDOW_MAPPER_MAX_EXTENTS
 * extents, and goes on when the queue is half empty; a consumer that found
 * the queue empty is woken when RECHAIN_WINDOW_MAPPER_BATCH windows (or
 * half the extents) are ready, so the threads hand over windows in
 * batches, not one by one. The batch is much smaller than the queue: with
 * both at 16, a 1 TiB sparse flatten (4096 windows, a quarter of a cluster
 * of data in each) spent 40 ms of its 120 ms with each thread waiting for
 * the other to fill or drain half the queue.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/chain.h"

G_BEGIN_DECLS

#define RECHAIN_WINDOW_MAPPER_MAX_WINDOWS 64u
#define RECHAIN_WINDOW_MAPPER_BATCH 8u
#define RECHAIN_WINDOW_MAPPER_MAX_EXTENTS (256u * 1024)

/* Map of [offset, offset+length) as seen through layers @first.. of
 * @chain: zeros past the end of layer @first or with no layer at all
 * (@chain NULL). Safe to call from several threads. */
gboolean rechain_view_map (RechainChain *chain, guint first, guint64 offset, guint64 length,
                           GArray *out, GError **error);

typedef struct _RechainWindowMapper RechainWindowMapper;

/* Starts mapping [0, @size) in windows of @window bytes: the view of
 * @old_chain from layer @old_first and that of @new_chain (may be NULL)
 * from @new_first. */
RechainWindowMapper *rechain_window_mapper_new (RechainChain *old_chain, guint old_first,
                                                RechainChain *new_chain, guint new_first,
                                                guint64 size, guint64 window);

/* The next window in order: its start, and both views over the whole
 * window (transfer full). Waits for the mapper if need be. Returns FALSE
 * with @error set when mapping it failed (the mapper stops there), or
 * FALSE without error past the end. */
gboolean rechain_window_mapper_next (RechainWindowMapper *mapper, guint64 *start,
                                     GArray **old_map, GArray **new_map, GError **error);

/* Stops the mapper (waiting for the window it maps) and frees it. */
void rechain_window_mapper_free (RechainWindowMapper *mapper);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainWindowMapper, rechain_window_mapper_free)

G_END_DECLS
