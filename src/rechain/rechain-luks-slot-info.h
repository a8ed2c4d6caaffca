/* rechain-luks-slot-info.h: a key slot of the LUKS header of an encrypted
 * image, as `rechain info` lists it.
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

#define RECHAIN_TYPE_LUKS_SLOT_INFO (rechain_luks_slot_info_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainLuksSlotInfo, rechain_luks_slot_info, RECHAIN, LUKS_SLOT_INFO, GObject)

RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_luks_slot_info_get_active (RechainLuksSlotInfo *slot);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_luks_slot_info_get_iters (RechainLuksSlotInfo *slot);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_luks_slot_info_get_key_offset (RechainLuksSlotInfo *slot);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_luks_slot_info_get_stripes (RechainLuksSlotInfo *slot);

G_END_DECLS
