/* extent.h: allocation maps as sorted lists of extents.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "rechain/rechain-extent.h"

G_BEGIN_DECLS

/* RechainExtent and RechainExtentKind are public (rechain-extent.h). */

/* Appends @e to @extents, merging it into the last extent when both have
 * the same kind, depth and compression, they are adjacent in guest space
 * and (where host offsets are set) in host space too. Empty extents are
 * dropped. */
void rechain_extent_append (GArray *extents, const RechainExtent *e);

/* A new GArray of RechainExtent. */
GArray *rechain_extent_list_new (void);

G_END_DECLS
