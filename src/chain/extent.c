/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "chain/extent.h"

GArray *
rechain_extent_list_new (void)
{
  return g_array_new (FALSE, FALSE, sizeof (RechainExtent));
}

void
rechain_extent_append (GArray *extents, const RechainExtent *e)
{
  if (e->length == 0)
    return;

  if (extents->len > 0)
    {
      RechainExtent *last = &g_array_index (extents, RechainExtent, extents->len - 1);

      g_assert (last->offset + last->length == e->offset);
      if (last->kind == e->kind && last->depth == e->depth &&
          last->compressed == e->compressed)
        {
          gboolean both_unset = last->host_offset == RECHAIN_NO_HOST_OFFSET &&
                                e->host_offset == RECHAIN_NO_HOST_OFFSET;
          gboolean contiguous = last->host_offset != RECHAIN_NO_HOST_OFFSET &&
                                e->host_offset == last->host_offset + last->length;
          if (both_unset || contiguous)
            {
              last->length += e->length;
              return;
            }
        }
    }
  g_array_append_vals (extents, e, 1);
}
