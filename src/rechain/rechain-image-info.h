/* rechain-image-info.h: what `rechain info` shows about one image, typed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

#define RECHAIN_TYPE_SNAPSHOT_INFO (rechain_snapshot_info_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainSnapshotInfo, rechain_snapshot_info, RECHAIN, SNAPSHOT_INFO, GObject)

RECHAIN_AVAILABLE_IN_0_2 const char *rechain_snapshot_info_get_name (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_snapshot_info_get_id (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_snapshot_info_get_vm_state_size (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_snapshot_info_get_date_sec (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_snapshot_info_get_date_nsec (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_snapshot_info_get_vm_clock_sec (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_snapshot_info_get_vm_clock_nsec (RechainSnapshotInfo *snapshot);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_snapshot_info_get_icount (RechainSnapshotInfo *snapshot);

#define RECHAIN_TYPE_BITMAP_INFO (rechain_bitmap_info_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainBitmapInfo, rechain_bitmap_info, RECHAIN, BITMAP_INFO, GObject)

RECHAIN_AVAILABLE_IN_0_2 const char *rechain_bitmap_info_get_name (RechainBitmapInfo *bitmap);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_bitmap_info_get_granularity (RechainBitmapInfo *bitmap);
RECHAIN_AVAILABLE_IN_0_2 const char * const *rechain_bitmap_info_get_flags (RechainBitmapInfo *bitmap);

#define RECHAIN_TYPE_IMAGE_INFO (rechain_image_info_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainImageInfo, rechain_image_info, RECHAIN, IMAGE_INFO, GObject)

RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_filename (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_format (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_image_info_get_virtual_size (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_image_info_get_actual_size (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_image_info_get_cluster_size (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_backing_filename (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_full_backing_filename (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_backing_format (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_encrypted (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_encryption_format (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_dirty_flag (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_corrupt (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_compat (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_compression_type (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_extended_l2 (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_image_info_get_refcount_bits (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_lazy_refcounts (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_has_data_file (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_data_file (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_image_info_get_data_file_raw (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 GListModel *rechain_image_info_get_snapshots (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 GListModel *rechain_image_info_get_bitmaps (RechainImageInfo *info);

RECHAIN_AVAILABLE_IN_0_2 char *rechain_image_info_to_json (RechainImageInfo *info);

G_END_DECLS
