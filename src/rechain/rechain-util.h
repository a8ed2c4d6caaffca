/* rechain-util.h: small helpers of the public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib.h>
#include <rechain/rechain-enums.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

RECHAIN_AVAILABLE_IN_ALL gboolean rechain_cache_mode_from_string (const char *name,
                                                        RechainCacheMode *mode,
                                                        GError **error);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_cache_mode_to_string (RechainCacheMode mode);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_get_version (void);
RECHAIN_AVAILABLE_IN_0_2 void rechain_init_translations (void);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_backing_name_is_pseudo (const char *name);
RECHAIN_AVAILABLE_IN_0_2 char *rechain_resolve_backing_name (const char *image_path,
                                                   const char *backing_name,
                                                   GError **error);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_get_max_chain_depth (void);

G_END_DECLS
