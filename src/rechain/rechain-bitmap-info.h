/* rechain-bitmap-info.h: a persistent dirty bitmap of an image, as
 * `rechain info` lists it.
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

#define RECHAIN_TYPE_BITMAP_INFO (rechain_bitmap_info_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainBitmapInfo, rechain_bitmap_info, RECHAIN, BITMAP_INFO, GObject)

RECHAIN_AVAILABLE_IN_0_2 const char *rechain_bitmap_info_get_name (RechainBitmapInfo *bitmap);
RECHAIN_AVAILABLE_IN_0_2 guint64 rechain_bitmap_info_get_granularity (RechainBitmapInfo *bitmap);
RECHAIN_AVAILABLE_IN_0_2 const char * const *rechain_bitmap_info_get_flags (RechainBitmapInfo *bitmap);

G_END_DECLS
