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
#include <rechain/rechain-snapshot-info.h>
#include <rechain/rechain-bitmap-info.h>
#include <rechain/rechain-luks-slot-info.h>

G_BEGIN_DECLS

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
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_cipher_alg (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_cipher_mode (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_ivgen_alg (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_ivgen_hash_alg (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_hash_alg (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_image_info_get_luks_payload_offset (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_image_info_get_luks_master_key_iters (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_info_get_luks_uuid (RechainImageInfo *info);
RECHAIN_AVAILABLE_IN_0_2 GListModel *rechain_image_info_get_luks_slots (RechainImageInfo *info);

RECHAIN_AVAILABLE_IN_0_2 char *rechain_image_info_to_json (RechainImageInfo *info);

G_END_DECLS
