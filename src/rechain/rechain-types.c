/* rechain-types.c: small boxed types and helpers of the public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-extent.h"
#include "rechain/rechain-util.h"
#include "chain/chain.h"

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

/**
 * rechain_backing_name_is_pseudo:
 * @name: a backing file name as an image header records it
 *
 * Whether @name is one of QEMU's pseudo-filenames rather than a local
 * file: a `json:` option dictionary or a protocol name (`nbd:`, `http://`,
 * `rbd:`, ...), the way QEMU tells them apart (a colon before any slash,
 * after an alphanumeric prefix). `file:` names are protocol names too;
 * rechain_resolve_backing_name() accepts them as the local file they name.
 *
 * Returns: %TRUE for a pseudo-filename
 *
 * Since: 0.2
 */
gboolean
rechain_backing_name_is_pseudo (const char *name)
{
  g_return_val_if_fail (name != NULL, FALSE);
  return rechain_path_is_pseudo (name);
}

/**
 * rechain_resolve_backing_name:
 * @image_path: the image whose header records @backing_name
 * @backing_name: the name as recorded
 * @error: return location for an error
 *
 * Resolves a backing file name the way QEMU and rechain do: an absolute
 * name stays as it is, a relative one is relative to the directory of
 * @image_path (not to the current directory), a `file:` prefix is
 * dropped. `json:` and protocol names are refused with
 * %RECHAIN_ERROR_UNSUPPORTED, as rechain only opens local files.
 *
 * Returns: (transfer full): the path of the backing file, or %NULL with
 *   @error set
 *
 * Since: 0.2
 */
char *
rechain_resolve_backing_name (const char *image_path, const char *backing_name, GError **error)
{
  g_return_val_if_fail (image_path != NULL, NULL);
  g_return_val_if_fail (backing_name != NULL, NULL);
  return rechain_path_resolve (image_path, backing_name, error);
}

/**
 * rechain_get_max_chain_depth:
 *
 * The deepest backing chain rechain opens: a longer one is refused as
 * malformed (%RECHAIN_ERROR_INVALID_IMAGE). Tools that follow chains
 * themselves use the same bound.
 *
 * Returns: the number of images, the top one included
 *
 * Since: 0.2
 */
guint
rechain_get_max_chain_depth (void)
{
  return RECHAIN_CHAIN_MAX_DEPTH;
}
