/* rechain-block-job.h: the base class of long operations on offline images.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rechain/rechain-enums.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

#define RECHAIN_TYPE_BLOCK_JOB (rechain_block_job_get_type ())
RECHAIN_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (RechainBlockJob, rechain_block_job, RECHAIN, BLOCK_JOB, GObject)

/**
 * RechainBlockJobClass:
 * @parent_class: the parent class
 * @run: does the work. Called once, on a worker thread of the library for
 *   rechain_block_job_run_async() or on the calling thread for
 *   rechain_block_job_run_sync(). Reports progress with
 *   rechain_block_job_set_progress() and checks @cancellable between steps;
 *   it must leave its image consistent when it stops early.
 *
 * The class of #RechainBlockJob; subclasses implement @run.
 */
struct _RechainBlockJobClass {
  GObjectClass parent_class;

  gboolean (*run) (RechainBlockJob *job, GCancellable *cancellable, GError **error);

  /*< private >*/
  gpointer padding[8];
};

RECHAIN_AVAILABLE_IN_ALL const char *rechain_block_job_get_image (RechainBlockJob *job);
RECHAIN_AVAILABLE_IN_ALL RechainJobState rechain_block_job_get_state (RechainBlockJob *job);
RECHAIN_AVAILABLE_IN_ALL double rechain_block_job_get_progress (RechainBlockJob *job);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_block_job_get_bytes_done (RechainBlockJob *job);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_block_job_get_bytes_total (RechainBlockJob *job);

RECHAIN_AVAILABLE_IN_ALL void rechain_block_job_run_async (RechainBlockJob *job,
                                                 int io_priority,
                                                 GCancellable *cancellable,
                                                 GAsyncReadyCallback callback,
                                                 gpointer user_data);
RECHAIN_AVAILABLE_IN_ALL gboolean rechain_block_job_run_finish (RechainBlockJob *job,
                                                      GAsyncResult *result,
                                                      GError **error);
RECHAIN_AVAILABLE_IN_ALL gboolean rechain_block_job_run_sync (RechainBlockJob *job,
                                                    GCancellable *cancellable,
                                                    GError **error);

RECHAIN_AVAILABLE_IN_ALL void rechain_block_job_set_progress (RechainBlockJob *job,
                                                    guint64 bytes_done,
                                                    guint64 bytes_total);

G_END_DECLS
