/* rechain-rebase-stats.h: what a rebase did, or would do.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib-object.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

typedef struct _RechainRebaseStats RechainRebaseStats;

#define RECHAIN_TYPE_REBASE_IMAGE_STATS (rechain_rebase_image_stats_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainRebaseImageStats, rechain_rebase_image_stats, RECHAIN, REBASE_IMAGE_STATS, GObject)

RECHAIN_AVAILABLE_IN_0_2 const char *rechain_rebase_image_stats_get_image (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_rebase_image_stats_get_result (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 const GError *rechain_rebase_image_stats_get_error (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_examined (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_written (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_zeroed (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_shared (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_copied_in_kernel (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_bytes_copied_buffered (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_clusters_allocated (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_compressed_clusters (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_metadata_bytes (RechainRebaseImageStats *stats);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_rebase_image_stats_get_flushes (RechainRebaseImageStats *stats);

#define RECHAIN_TYPE_REBASE_STATS (rechain_rebase_stats_get_type ())
RECHAIN_AVAILABLE_IN_ALL GType rechain_rebase_stats_get_type (void);
RECHAIN_AVAILABLE_IN_ALL RechainRebaseStats *rechain_rebase_stats_ref (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL void rechain_rebase_stats_unref (RechainRebaseStats *stats);

RECHAIN_AVAILABLE_IN_ALL gboolean rechain_rebase_stats_get_dry_run (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL double rechain_rebase_stats_get_seconds (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_rebase_stats_get_bytes_examined (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_rebase_stats_get_bytes_same_by_metadata (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_rebase_stats_get_bytes_compared (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_rebase_stats_get_bytes_read (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_rebase_stats_get_bytes_differing (RechainRebaseStats *stats);

RECHAIN_AVAILABLE_IN_0_2 GPtrArray *rechain_rebase_stats_get_images (RechainRebaseStats *stats);
RECHAIN_AVAILABLE_IN_0_2 const char * const *rechain_rebase_stats_get_warnings (RechainRebaseStats *stats);

/* the index getters of 0.1 */
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_stats_get_images)
guint rechain_rebase_stats_get_n_images (RechainRebaseStats *stats);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_image)
const char *rechain_rebase_stats_get_image (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_error)
const GError *rechain_rebase_stats_get_image_error (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_bytes_written)
guint64 rechain_rebase_stats_get_image_bytes_written (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_bytes_zeroed)
guint64 rechain_rebase_stats_get_image_bytes_zeroed (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_clusters_allocated)
guint64 rechain_rebase_stats_get_image_clusters_allocated (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_bytes_shared)
guint64 rechain_rebase_stats_get_image_bytes_shared (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_bytes_copied_in_kernel)
guint64 rechain_rebase_stats_get_image_bytes_copied_in_kernel (RechainRebaseStats *stats, guint index);
RECHAIN_DEPRECATED_IN_0_2_FOR (rechain_rebase_image_stats_get_bytes_copied_buffered)
guint64 rechain_rebase_stats_get_image_bytes_copied_buffered (RechainRebaseStats *stats, guint index);

RECHAIN_AVAILABLE_IN_ALL char *rechain_rebase_stats_to_json (RechainRebaseStats *stats);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainRebaseStats, rechain_rebase_stats_unref)

G_END_DECLS
