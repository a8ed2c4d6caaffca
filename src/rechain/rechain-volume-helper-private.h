/* rechain-volume-helper-private.h: the built-in volume helper, and what
 * rechain-volume.c asks of the helpers beyond their public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "rechain/rechain-volume-helper.h"
#include "rechain/rechain-rebase-job.h"
#include "chain/chain.h"

G_BEGIN_DECLS

GType rechain_path_volume_helper_get_type (void);

/* The confinement of @helper's volumes: @dirs set to its storage
 * directories and @name to whose they are, or both NULL when it confines
 * nothing. FALSE with @error set when asking failed. */
gboolean rechain_volume_helper_storage_confinement (RechainVolumeHelper *helper,
                                                    char ***dirs,
                                                    char **name,
                                                    GCancellable *cancellable,
                                                    GError **error);

/* rechain-volume.c: the storage manager's keys for every encrypted image
 * a safe rebase @job reads or writes, added to the job's keyring */
gboolean rechain_volume_add_job_keys (RechainVolume *volume,
                                      RechainRebaseJob *job,
                                      gboolean trust_chain,
                                      const RechainChainConfinement *confine,
                                      GCancellable *cancellable,
                                      GError **error);

G_END_DECLS
