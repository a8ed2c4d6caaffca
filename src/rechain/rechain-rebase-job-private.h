/* rechain-rebase-job-private.h: what the library's volume helpers set on a
 * rebase job beyond its public properties.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "rechain/rechain-rebase-job.h"

G_BEGIN_DECLS

/* Confines the backing files of the job's chains (old and new) to @dirs,
 * the target directories of a storage manager's pools; @name says whose
 * they are in messages ("the storage pools of qemu:///system"). Has no
 * effect when the job's trust-chain property is set. */
void rechain_rebase_job_set_storage_dirs (RechainRebaseJob *job,
                                          const char * const *dirs,
                                          const char *name);

/* A job that takes leases but was given no lockspace gets the one of
 * libvirt's lock manager on this host (qemu-lockd.conf), as `rechain
 * rebase --pool` does: the volume helpers' default (RechainVolume,
 * RechainFleet). A volume's leases are those of the daemon that runs its
 * domains; shared storage has one lockspace, so the local configuration
 * also holds for the other hosts of a fleet. FALSE when the configuration
 * cannot be read. */
gboolean rechain_rebase_job_use_local_lockspace (RechainRebaseJob *job, GError **error);

G_END_DECLS
