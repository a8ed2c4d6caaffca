/* rechain-image-info-private.h: how the library makes a RechainImageInfo
 * (and the RechainSnapshotInfo and RechainBitmapInfo it lists) and writes
 * it in qemu-img's JSON shape.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <json-glib/json-glib.h>

#include "chain/chain.h"
#include "rechain/rechain-image-info.h"

G_BEGIN_DECLS

/* An entry of the snapshot table, as qemu-img info shows it: the guest
 * clock in seconds and nanoseconds, no icount as -1. */
G_GNUC_INTERNAL RechainSnapshotInfo *rechain_snapshot_info_new (const RechainQcow2Snapshot *s);

/* An entry of the bitmap directory, as qemu-img info shows it: the
 * granularity in bytes, the flags by name. */
G_GNUC_INTERNAL RechainBitmapInfo *rechain_bitmap_info_new (const RechainQcow2Bitmap *bm);

/* A key slot of a LUKS header, as qemu-img info shows it: the key offset
 * in bytes, iterations and stripes only for an active slot. */
G_GNUC_INTERNAL RechainLuksSlotInfo *rechain_luks_slot_info_new (const RechainLuksSlot *slot);

/* Describes one layer of an opened chain: reads its snapshot table and
 * bitmap directory (which may fail on a damaged image). */
RechainImageInfo *rechain_image_info_new_for_layer (RechainLayer *layer, GError **error);

/* Adds the JSON object of @info (qemu-img info's keys and order) to @builder. */
void rechain_image_info_build_json (RechainImageInfo *info, JsonBuilder *builder);

/* Pretty-prints @root as rechain and qemu-img print JSON (indent 4). */
char *rechain_image_info_json_to_data (JsonNode *root);

G_END_DECLS
