/* rechain-block-job-private.h: what the library's jobs use of their base
 * class beyond its public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "rechain/rechain-block-job.h"

G_BEGIN_DECLS

/* From the job's run (any thread): calls @func (@data) where the job's
 * notifications go, then @notify (@data). On the thread of
 * rechain_block_job_run_sync() at once; for rechain_block_job_run_async()
 * on its caller's thread-default main context, in the order of the calls
 * and before the job's completion. Not while the job is not running. */
G_GNUC_INTERNAL void rechain_block_job_invoke (RechainBlockJob *job,
                                               GSourceFunc func,
                                               gpointer data,
                                               GDestroyNotify notify);

G_END_DECLS
