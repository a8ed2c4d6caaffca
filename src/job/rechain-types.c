/* rechain-types.c: small boxed types and helpers of the public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-extent.h"
#include "rechain/rechain-util.h"

/**
 * rechain_extent_copy:
 * @extent: an extent
 *
 * Returns: (transfer full): a copy of @extent
 */
RechainExtent *
rechain_extent_copy (const RechainExtent *extent)
{
  return g_memdup2 (extent, sizeof *extent);
}

/**
 * rechain_extent_free:
 * @extent: an extent
 *
 * Frees an extent made by rechain_extent_copy().
 */
void
rechain_extent_free (RechainExtent *extent)
{
  g_free (extent);
}

G_DEFINE_BOXED_TYPE (RechainExtent, rechain_extent, rechain_extent_copy, rechain_extent_free)

/**
 * rechain_get_version:
 *
 * Returns: the version of the library, as "MAJOR.MINOR.MICRO"
 */
const char *
rechain_get_version (void)
{
  return PACKAGE_VERSION;
}
