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

/* Sets #RechainRebaseJob:lockspace-dir to @dir when the job takes leases
 * and was given none (the volume helpers' default: the local libvirt's). */
void rechain_rebase_job_set_default_lockspace_dir (RechainRebaseJob *job, const char *dir);

G_END_DECLS
