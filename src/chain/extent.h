/* extent.h: allocation maps as sorted lists of extents.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Kind of one extent of a single layer or of a chain. */
typedef enum {
  RECHAIN_EXTENT_UNALLOCATED, /* not described here: falls through to the backing */
  RECHAIN_EXTENT_ZERO,        /* reads as zeros */
  RECHAIN_EXTENT_DATA,        /* data stored in some layer */
} RechainExtentKind;

#define RECHAIN_NO_HOST_OFFSET G_MAXUINT64

/* One extent of guest address space. Maps are GArrays of these, sorted,
 * contiguous and maximal: rechain_extent_append() merges a new extent into
 * the last one when they continue each other. */
typedef struct {
  guint64 offset;       /* guest offset */
  guint64 length;
  RechainExtentKind kind;
  /* Layer maps: always 0. Chain maps: for DATA and ZERO, the index of the
   * layer (0 = top) that holds the extent; for UNALLOCATED, the index of the
   * deepest layer consulted (the bottom of the chain, or the layer whose
   * backing file ends before this offset), as qemu-img map reports it. */
  gint depth;
  /* Offset in the layer's data file of the first byte, for DATA that is not
   * compressed and for ZERO extents of raw files (holes); otherwise
   * RECHAIN_NO_HOST_OFFSET. */
  guint64 host_offset;
  gboolean compressed; /* DATA from compressed clusters */
} RechainExtent;

/* Appends @e to @extents, merging it into the last extent when both have
 * the same kind, depth and compression, they are adjacent in guest space
 * and (where host offsets are set) in host space too. Empty extents are
 * dropped. */
void rechain_extent_append (GArray *extents, const RechainExtent *e);

/* A new GArray of RechainExtent. */
GArray *rechain_extent_list_new (void);

G_END_DECLS
