/* rechain-lease.h: what libvirt's configuration says about its lock
 * manager, for the leases rechain takes (RechainRebaseJob:leases).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_read_libvirt_lock_config (const char *confdir,
                                                                  char **lock_manager,
                                                                  char **lockspace_dir,
                                                                  GError **error);

G_END_DECLS
