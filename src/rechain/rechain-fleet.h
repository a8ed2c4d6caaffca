/* rechain-fleet.h: several hosts that share storage pools, as one: who
 * uses an image on any of them, the linked clones of a template in a
 * pool, and rebasing them with every host told.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rechain/rechain-version.h>
#include <rechain/rechain-rebase-job.h>
#include <rechain/rechain-volume-helper.h>
#include <rechain/rechain-fleet-result.h>

G_BEGIN_DECLS

/**
 * RechainFleetRebaseFlags:
 * @RECHAIN_FLEET_REBASE_NONE: refuse the whole rebase, before writing,
 *   when an active domain on any host uses one of the volumes; only warn
 *   about inactive domains that reference them.
 * @RECHAIN_FLEET_REBASE_STRICT: count inactive domains as users too.
 * @RECHAIN_FLEET_REBASE_SKIP_IN_USE: skip the volumes in use (and those
 *   the job finds leased or locked) and move the others; each skipped
 *   volume's result says why.
 *
 * Flags for rechain_fleet_rebase_async().
 *
 * Since: 0.2
 */
typedef enum /*< flags >*/ {
  RECHAIN_FLEET_REBASE_NONE = 0,
  RECHAIN_FLEET_REBASE_STRICT = 1 << 0,
  RECHAIN_FLEET_REBASE_SKIP_IN_USE = 1 << 1,
} RechainFleetRebaseFlags;

#define RECHAIN_TYPE_FLEET_REBASE_FLAGS (rechain_fleet_rebase_flags_get_type ())
RECHAIN_AVAILABLE_IN_0_2 GType rechain_fleet_rebase_flags_get_type (void);

#define RECHAIN_TYPE_FLEET (rechain_fleet_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainFleet, rechain_fleet, RECHAIN, FLEET, GObject)

RECHAIN_AVAILABLE_IN_0_2 RechainFleet *rechain_fleet_new (void);
RECHAIN_AVAILABLE_IN_0_2 void rechain_fleet_set_skip_unreachable (RechainFleet *fleet,
                                                                  gboolean skip);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_fleet_get_skip_unreachable (RechainFleet *fleet);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_fleet_add_host (RechainFleet *fleet,
                                                          const char *uri,
                                                          GCancellable *cancellable,
                                                          GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_fleet_add_helper (RechainFleet *fleet,
                                                            RechainVolumeHelper *helper);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_fleet_get_n_hosts (RechainFleet *fleet);
RECHAIN_AVAILABLE_IN_0_2 RechainVolumeHelper *rechain_fleet_get_helper (RechainFleet *fleet,
                                                                        guint index);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_fleet_get_host_name (RechainFleet *fleet,
                                                                  guint index);
RECHAIN_AVAILABLE_IN_0_2 char **rechain_fleet_get_warnings (RechainFleet *fleet);

RECHAIN_AVAILABLE_IN_0_2 RechainVolume *rechain_fleet_resolve (RechainFleet *fleet,
                                                               const char *pool,
                                                               const char *name,
                                                               GCancellable *cancellable,
                                                               GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_fleet_check_in_use (RechainFleet *fleet,
                                                              const char *path,
                                                              gboolean strict,
                                                              char ***warnings,
                                                              GCancellable *cancellable,
                                                              GError **error);
RECHAIN_AVAILABLE_IN_0_2 GPtrArray *rechain_fleet_select_clones (RechainFleet *fleet,
                                                                 const char *pool,
                                                                 const char *template_,
                                                                 GCancellable *cancellable,
                                                                 GError **error);
RECHAIN_AVAILABLE_IN_0_2 void rechain_fleet_rebase_async (RechainFleet *fleet,
                                                          GPtrArray *volumes,
                                                          RechainRebaseJob *options,
                                                          RechainFleetRebaseFlags flags,
                                                          int io_priority,
                                                          GCancellable *cancellable,
                                                          GAsyncReadyCallback callback,
                                                          gpointer user_data);
RECHAIN_AVAILABLE_IN_0_2 GPtrArray *rechain_fleet_rebase_finish (RechainFleet *fleet,
                                                                 GAsyncResult *result,
                                                                 RechainRebaseJob **job,
                                                                 char ***warnings,
                                                                 GError **error);

G_END_DECLS
