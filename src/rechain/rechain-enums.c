/* rechain-enums.c: names of the public enumerations.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "rechain/rechain-error.h"
#include "rechain/rechain-util.h"
#include "rechain/rechain-i18n-private.h"

static const char *const cache_mode_names[] = {
  [RECHAIN_CACHE_WRITEBACK] = "writeback",
  [RECHAIN_CACHE_WRITETHROUGH] = "writethrough",
  [RECHAIN_CACHE_NONE] = "none",
  [RECHAIN_CACHE_DIRECTSYNC] = "directsync",
  [RECHAIN_CACHE_UNSAFE] = "unsafe",
};

/**
 * rechain_cache_mode_from_string:
 * @name: a cache mode name as qemu-img spells it: writeback, writethrough,
 *   none, directsync or unsafe
 * @mode: (out): where to store the mode
 * @error: return location for an error
 *
 * Returns: %TRUE if @name is a cache mode
 */
gboolean
rechain_cache_mode_from_string (const char *name,
                                RechainCacheMode *mode,
                                GError **error)
{
  g_return_val_if_fail (mode != NULL, FALSE);

  for (guint i = 0; name != NULL && i < G_N_ELEMENTS (cache_mode_names); i++)
    {
      if (strcmp (name, cache_mode_names[i]) == 0)
        {
          *mode = (RechainCacheMode) i;
          return TRUE;
        }
    }
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
               _("Invalid cache mode '%s'"), name ? name : "(null)");
  return FALSE;
}

/**
 * rechain_cache_mode_to_string:
 * @mode: a cache mode
 *
 * Returns: (nullable): the qemu-img name of @mode
 */
const char *
rechain_cache_mode_to_string (RechainCacheMode mode)
{
  if ((guint) mode >= G_N_ELEMENTS (cache_mode_names))
    return NULL;
  return cache_mode_names[mode];
}

