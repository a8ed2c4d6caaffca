/* rechain-snapshot-info.h: an internal snapshot of an image, as `rechain info`
 * lists it.
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

G_END_DECLS
