/* rechain-rebase-job.h: changing the backing file of images.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <rechain/rechain-block-job.h>
#include <rechain/rechain-keyring.h>
#include <rechain/rechain-rebase-stats.h>

G_BEGIN_DECLS

#define RECHAIN_TYPE_REBASE_JOB (rechain_rebase_job_get_type ())
RECHAIN_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (RechainRebaseJob, rechain_rebase_job, RECHAIN, REBASE_JOB, RechainBlockJob)

RECHAIN_AVAILABLE_IN_ALL RechainRebaseJob *rechain_rebase_job_new (const char *image,
                                                         const char *backing_file,
                                                         const char *backing_format);

RECHAIN_AVAILABLE_IN_ALL const char *rechain_rebase_job_get_backing_file (RechainRebaseJob *job);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_rebase_job_get_backing_format (RechainRebaseJob *job);
RECHAIN_AVAILABLE_IN_0_2 RechainKeyring *rechain_rebase_job_get_keyring (RechainRebaseJob *job);
RECHAIN_AVAILABLE_IN_ALL RechainRebaseMode rechain_rebase_job_get_mode (RechainRebaseJob *job);
RECHAIN_AVAILABLE_IN_ALL const char * const *rechain_rebase_job_get_linked_images (RechainRebaseJob *job);

RECHAIN_AVAILABLE_IN_ALL RechainRebaseStats *rechain_rebase_job_get_stats (RechainRebaseJob *job);
RECHAIN_AVAILABLE_IN_ALL RechainRebaseStats *rechain_rebase_job_plan (RechainRebaseJob *job,
                                                            GCancellable *cancellable,
                                                            GError **error);

G_END_DECLS
