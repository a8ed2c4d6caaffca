/* rechain-fleet-result.h: what became of one volume in a fleet-wide
 * rebase (RechainFleet): moved, skipped (and why), failed, or would move.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib-object.h>
#include <rechain/rechain-version.h>
#include <rechain/rechain-volume-helper.h>

G_BEGIN_DECLS

/**
 * RechainFleetStatus:
 * @RECHAIN_FLEET_STATUS_MOVED: the volume was moved onto the new backing
 *   file
 * @RECHAIN_FLEET_STATUS_SKIPPED: the volume was left alone: in use on a
 *   host (or leased), see rechain_fleet_result_get_reason()
 * @RECHAIN_FLEET_STATUS_FAILED: moving the volume failed; it is unchanged
 * @RECHAIN_FLEET_STATUS_WOULD_MOVE: a dry run: the volume would be moved
 *
 * What became of a volume in rechain_fleet_rebase_async().
 *
 * Since: 0.2
 */
typedef enum {
  RECHAIN_FLEET_STATUS_MOVED,
  RECHAIN_FLEET_STATUS_SKIPPED,
  RECHAIN_FLEET_STATUS_FAILED,
  RECHAIN_FLEET_STATUS_WOULD_MOVE,
} RechainFleetStatus;

#define RECHAIN_TYPE_FLEET_STATUS (rechain_fleet_status_get_type ())
RECHAIN_AVAILABLE_IN_0_2 GType rechain_fleet_status_get_type (void);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_status_to_string (RechainFleetStatus status);

#define RECHAIN_TYPE_FLEET_RESULT (rechain_fleet_result_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainFleetResult, rechain_fleet_result, RECHAIN, FLEET_RESULT, GObject)

RECHAIN_AVAILABLE_IN_0_2 RechainVolume *rechain_fleet_result_get_volume (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 RechainFleetStatus rechain_fleet_result_get_status (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_result_get_reason (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_result_get_host (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_result_get_uri (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_result_get_domain (RechainFleetResult *result);
RECHAIN_AVAILABLE_IN_0_2 gint64 rechain_fleet_result_get_bytes (RechainFleetResult *result);

G_END_DECLS
