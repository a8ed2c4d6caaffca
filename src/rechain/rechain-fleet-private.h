/* rechain-fleet-private.h: what rechain-fleet.c sets in the results it
 * makes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "rechain/rechain-fleet-result.h"

G_BEGIN_DECLS

RechainFleetResult *rechain_fleet_result_new (RechainVolume *volume, RechainFleetStatus status);
void rechain_fleet_result_set (RechainFleetResult *self, RechainFleetStatus status,
                               const char *reason, const char *host, const char *uri,
                               const char *domain);
void rechain_fleet_result_set_bytes (RechainFleetResult *self, gint64 bytes);

G_END_DECLS
