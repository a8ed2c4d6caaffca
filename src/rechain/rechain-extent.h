/* rechain-extent.h: one region of an allocation map.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib-object.h>
#include <rechain/rechain-enums.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

/**
 * RECHAIN_NO_HOST_OFFSET:
 *
 * The value of #RechainExtent.host_offset when it has none.
 */
#define RECHAIN_NO_HOST_OFFSET G_MAXUINT64

/**
 * RechainExtent:
 * @offset: guest offset of the first byte
 * @length: length in bytes
 * @kind: what the region is
 * @depth: for data and zero regions, the index in the chain (0: the image
 *   itself) of the image that holds it; for unallocated regions, the index
 *   of the deepest image consulted (the bottom of the chain, or the image
 *   whose backing file ends before this offset), as `qemu-img map` reports.
 * @host_offset: where the data starts in the holding image's data file, or
 *   %RECHAIN_NO_HOST_OFFSET (compressed data, zeros, unallocated)
 * @compressed: whether the data is stored in compressed clusters
 *
 * One region of the guest-visible content of an image and where it comes
 * from. Maps are sorted, contiguous lists of maximal extents.
 */
typedef struct {
  guint64 offset;
  guint64 length;
  RechainExtentKind kind;
  gint depth;
  guint64 host_offset;
  gboolean compressed;
} RechainExtent;

#define RECHAIN_TYPE_EXTENT (rechain_extent_get_type ())
RECHAIN_AVAILABLE_IN_ALL GType rechain_extent_get_type (void);
RECHAIN_AVAILABLE_IN_ALL RechainExtent *rechain_extent_copy (const RechainExtent *extent);
RECHAIN_AVAILABLE_IN_ALL void rechain_extent_free (RechainExtent *extent);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainExtent, rechain_extent_free)

G_END_DECLS
