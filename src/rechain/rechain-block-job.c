/* rechain-block-job.c: RechainBlockJob, the base class of long operations.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-block-job.h"
#include "rechain/rechain-block-job-private.h"
#include "rechain/rechain-enum-types.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

/**
 * RechainBlockJob:
 *
 * A long operation on offline images, such as a #RechainRebaseJob.
 *
 * A job runs once, with rechain_block_job_run_async() (on a worker thread
 * of the library, never on GLib's shared task pool, so it cannot starve
 * other GTask users) or rechain_block_job_run_sync(). While it runs,
 * #RechainBlockJob:progress, #RechainBlockJob:bytes-done and
 * #RechainBlockJob:bytes-total change; their `notify` signals are emitted
 * on the thread-default main context of the caller that started the job
 * (never on a worker thread), at most ten times a second, and always end
 * with a progress of 1.0 when the job completes. Cancellation through the
 * #GCancellable is cooperative: the job stops at the next safe point and
 * leaves its images consistent; it never returns while a write is half
 * done. The job then fails with %G_IO_ERROR_CANCELLED and its state is
 * %RECHAIN_JOB_STATE_CANCELLED.
 */

/* Progress notifications are coalesced to this interval. */
#define PROGRESS_INTERVAL_MS 100

typedef struct {
  char *image;
  RechainJobState state;
  gboolean started;

  GMutex lock;            /* guards done/total, written by the worker */
  guint64 done, total;

  /* what the caller's context has been told */
  guint64 shown_done, shown_total;
  GMainContext *context;
  int io_priority;        /* of what is dispatched to it */
  GSource *progress_source;

  /* run_sync: notify directly from the calling thread */
  GThread *sync_thread;
  gint64 last_sync_notify;
} RechainBlockJobPrivate;

enum {
  PROP_0,
  PROP_IMAGE,
  PROP_STATE,
  PROP_PROGRESS,
  PROP_BYTES_DONE,
  PROP_BYTES_TOTAL,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (RechainBlockJob, rechain_block_job, G_TYPE_OBJECT)

static void
rechain_block_job_finalize (GObject *object)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (RECHAIN_BLOCK_JOB (object));

  g_free (priv->image);
  g_mutex_clear (&priv->lock);
  g_clear_pointer (&priv->context, g_main_context_unref);
  G_OBJECT_CLASS (rechain_block_job_parent_class)->finalize (object);
}

static void
rechain_block_job_set_property (GObject *object, guint prop_id, const GValue *value,
                                GParamSpec *pspec)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (RECHAIN_BLOCK_JOB (object));

  switch (prop_id)
    {
    case PROP_IMAGE:
      priv->image = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_block_job_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainBlockJob *job = RECHAIN_BLOCK_JOB (object);
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  switch (prop_id)
    {
    case PROP_IMAGE:
      g_value_set_string (value, priv->image);
      break;
    case PROP_STATE:
      g_value_set_enum (value, priv->state);
      break;
    case PROP_PROGRESS:
      g_value_set_double (value, rechain_block_job_get_progress (job));
      break;
    case PROP_BYTES_DONE:
      g_value_set_uint64 (value, priv->shown_done);
      break;
    case PROP_BYTES_TOTAL:
      g_value_set_uint64 (value, priv->shown_total);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_block_job_class_init (RechainBlockJobClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_block_job_finalize;
  object_class->set_property = rechain_block_job_set_property;
  object_class->get_property = rechain_block_job_get_property;

  /**
   * RechainBlockJob:image:
   *
   * The path of the image the job works on.
   */
  props[PROP_IMAGE] = g_param_spec_string ("image", NULL, NULL, NULL,
                                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                                           G_PARAM_STATIC_STRINGS);
  /**
   * RechainBlockJob:state:
   *
   * Where the job is in its life.
   */
  props[PROP_STATE] = g_param_spec_enum ("state", NULL, NULL, RECHAIN_TYPE_JOB_STATE,
                                         RECHAIN_JOB_STATE_CREATED,
                                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                         G_PARAM_STATIC_STRINGS);
  /**
   * RechainBlockJob:progress:
   *
   * The fraction of the work done, from 0.0 to 1.0.
   */
  props[PROP_PROGRESS] = g_param_spec_double ("progress", NULL, NULL, 0.0, 1.0, 0.0,
                                              G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                              G_PARAM_STATIC_STRINGS);
  /**
   * RechainBlockJob:bytes-done:
   *
   * Bytes of work done.
   */
  props[PROP_BYTES_DONE] = g_param_spec_uint64 ("bytes-done", NULL, NULL, 0, G_MAXUINT64, 0,
                                                G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                                G_PARAM_STATIC_STRINGS);
  /**
   * RechainBlockJob:bytes-total:
   *
   * Bytes of work planned; may grow once planning is done.
   */
  props[PROP_BYTES_TOTAL] = g_param_spec_uint64 ("bytes-total", NULL, NULL, 0, G_MAXUINT64, 0,
                                                 G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
                                                 G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
rechain_block_job_init (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_mutex_init (&priv->lock);
}

/**
 * rechain_block_job_get_image:
 * @job: a job
 *
 * Returns: the path of the image the job works on
 */
const char *
rechain_block_job_get_image (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), NULL);
  return priv->image;
}

/**
 * rechain_block_job_get_state:
 * @job: a job
 *
 * Returns: the state of the job
 */
RechainJobState
rechain_block_job_get_state (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), RECHAIN_JOB_STATE_CREATED);
  return priv->state;
}

/**
 * rechain_block_job_get_progress:
 * @job: a job
 *
 * Returns: the fraction of the work done, as last notified
 */
double
rechain_block_job_get_progress (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), 0.0);
  if (priv->state == RECHAIN_JOB_STATE_COMPLETED)
    return 1.0;
  if (priv->shown_total == 0)
    return 0.0;
  return MIN (1.0, (double) priv->shown_done / (double) priv->shown_total);
}

/**
 * rechain_block_job_get_bytes_done:
 * @job: a job
 *
 * Returns: bytes of work done, as last notified
 */
guint64
rechain_block_job_get_bytes_done (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), 0);
  return priv->shown_done;
}

/**
 * rechain_block_job_get_bytes_total:
 * @job: a job
 *
 * Returns: bytes of work planned, as last notified
 */
guint64
rechain_block_job_get_bytes_total (RechainBlockJob *job)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), 0);
  return priv->shown_total;
}

/* On the caller's thread: tell what the worker reported since last time. */
static void
flush_progress (RechainBlockJob *job, gboolean final)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  guint64 done, total;

  g_mutex_lock (&priv->lock);
  done = priv->done;
  total = priv->total;
  g_mutex_unlock (&priv->lock);
  if (final)
    done = total; /* a completed job ends at 1.0, even with nothing to do */
  if (done == priv->shown_done && total == priv->shown_total && !final)
    return;

  g_object_freeze_notify (G_OBJECT (job));
  if (total != priv->shown_total)
    {
      priv->shown_total = total;
      g_object_notify_by_pspec (G_OBJECT (job), props[PROP_BYTES_TOTAL]);
    }
  if (done != priv->shown_done)
    {
      priv->shown_done = done;
      g_object_notify_by_pspec (G_OBJECT (job), props[PROP_BYTES_DONE]);
    }
  g_object_notify_by_pspec (G_OBJECT (job), props[PROP_PROGRESS]);
  g_object_thaw_notify (G_OBJECT (job));
}

static void
set_state (RechainBlockJob *job, RechainJobState state)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  if (priv->state == state)
    return;
  priv->state = state;
  g_object_notify_by_pspec (G_OBJECT (job), props[PROP_STATE]);
}

/**
 * rechain_block_job_set_progress:
 * @job: a job
 * @bytes_done: bytes of work done
 * @bytes_total: bytes of work planned
 *
 * For implementations of #RechainBlockJobClass.run: reports progress. May
 * be called from any thread, as often as convenient; notifications reach
 * the caller's main context at a bounded rate.
 */
void
rechain_block_job_set_progress (RechainBlockJob *job, guint64 bytes_done, guint64 bytes_total)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  g_return_if_fail (RECHAIN_IS_BLOCK_JOB (job));
  g_mutex_lock (&priv->lock);
  priv->done = bytes_done;
  priv->total = bytes_total;
  g_mutex_unlock (&priv->lock);

  if (priv->sync_thread == g_thread_self ())
    {
      gint64 now = g_get_monotonic_time ();
      if (now - priv->last_sync_notify >= PROGRESS_INTERVAL_MS * 1000)
        {
          priv->last_sync_notify = now;
          flush_progress (job, FALSE);
        }
    }
}

static gboolean
start (RechainBlockJob *job, GError **error)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  if (priv->started)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("%s: this job has already been run; a job runs once"), priv->image);
      return FALSE;
    }
  priv->started = TRUE;
  set_state (job, RECHAIN_JOB_STATE_RUNNING);
  return TRUE;
}

/* On the caller's thread, once the work is over. */
static void
finish (RechainBlockJob *job, const GError *error)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  if (priv->progress_source)
    {
      g_source_destroy (priv->progress_source);
      g_clear_pointer (&priv->progress_source, g_source_unref);
    }
  flush_progress (job, error == NULL);
  if (!error)
    set_state (job, RECHAIN_JOB_STATE_COMPLETED);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    set_state (job, RECHAIN_JOB_STATE_CANCELLED);
  else
    set_state (job, RECHAIN_JOB_STATE_FAILED);
}

static gboolean
run_vfunc (RechainBlockJob *job, GCancellable *cancellable, GError **error)
{
  RechainBlockJobClass *klass = RECHAIN_BLOCK_JOB_GET_CLASS (job);
  gboolean ok;

  g_return_val_if_fail (klass->run != NULL, FALSE);
  ok = klass->run (job, cancellable, error);
  g_return_val_if_fail (ok || !error || *error, FALSE);
  return ok;
}

/**
 * rechain_block_job_run_sync:
 * @job: a job that has not run yet
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Runs the job on the calling thread, which may be any thread; progress is
 * notified on it directly.
 *
 * Returns: %TRUE if the job completed
 */
gboolean
rechain_block_job_run_sync (RechainBlockJob *job, GCancellable *cancellable, GError **error)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  GError *local = NULL;
  gboolean ok;

  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), FALSE);
  if (!start (job, error))
    return FALSE;
  priv->sync_thread = g_thread_self ();
  ok = run_vfunc (job, cancellable, &local);
  priv->sync_thread = NULL;
  finish (job, local);
  if (local)
    g_propagate_error (error, local);
  return ok;
}

/* A source of its own on the job's context, whatever thread calls: never
 * g_main_context_invoke(), which calls at once on a thread that can
 * acquire the context (the worker, when the caller uses the global default
 * context and is between two iterations), out of order with what is
 * already queued there. Sources of one priority run in the order they
 * were attached. */
static void
dispatch (RechainBlockJob *job, GSourceFunc func, gpointer data, GDestroyNotify notify)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  GSource *source = g_idle_source_new ();

  g_source_set_priority (source, priv->io_priority);
  g_source_set_callback (source, func, data, notify);
  g_source_set_static_name (source, "rechain-block-job");
  g_source_attach (source, priv->context);
  g_source_unref (source);
}

void
rechain_block_job_invoke (RechainBlockJob *job, GSourceFunc func, gpointer data,
                          GDestroyNotify notify)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);

  g_return_if_fail (RECHAIN_IS_BLOCK_JOB (job));
  if (priv->sync_thread == g_thread_self () || !priv->context)
    {
      func (data);
      if (notify)
        notify (data);
      return;
    }
  dispatch (job, func, data, notify);
}

static gboolean
progress_tick (gpointer data)
{
  flush_progress (RECHAIN_BLOCK_JOB (data), FALSE);
  return G_SOURCE_CONTINUE;
}

typedef struct {
  GTask *task;
  GError *error;
} Completion;

/* On the caller's context: final notifications, then the task's result. */
static gboolean
complete_in_context (gpointer data)
{
  Completion *c = data;
  RechainBlockJob *job = g_task_get_source_object (c->task);

  finish (job, c->error);
  if (c->error)
    g_task_return_error (c->task, c->error);
  else
    g_task_return_boolean (c->task, TRUE);
  g_object_unref (c->task);
  g_free (c);
  return G_SOURCE_REMOVE;
}

static gpointer
worker (gpointer data)
{
  GTask *task = data;
  RechainBlockJob *job = g_task_get_source_object (task);
  Completion *c = g_new0 (Completion, 1);

  c->task = task;
  run_vfunc (job, g_task_get_cancellable (task), &c->error);
  /* after what the run dispatched (rechain_block_job_invoke()) */
  dispatch (job, complete_in_context, c, NULL);
  return NULL;
}

/**
 * rechain_block_job_run_async:
 * @job: a job that has not run yet
 * @io_priority: the priority of the completion callback
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the job is over
 * @user_data: data for @callback
 *
 * Starts the job on a worker thread of the library and returns at once.
 * Progress and state notifications, and @callback, come on the
 * thread-default main context of the caller.
 */
void
rechain_block_job_run_async (RechainBlockJob *job, int io_priority, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  RechainBlockJobPrivate *priv = rechain_block_job_get_instance_private (job);
  GTask *task;
  GError *error = NULL;

  g_return_if_fail (RECHAIN_IS_BLOCK_JOB (job));
  task = g_task_new (job, cancellable, callback, user_data);
  g_task_set_source_tag (task, rechain_block_job_run_async);
  g_task_set_priority (task, io_priority);
  /* The result is what the job did: a job cancelled too late to stop
   * still completed, and its image was switched. */
  g_task_set_check_cancellable (task, FALSE);
  if (!start (job, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  priv->context = g_main_context_ref_thread_default ();
  priv->io_priority = io_priority;
  priv->progress_source = g_timeout_source_new (PROGRESS_INTERVAL_MS);
  g_source_set_callback (priv->progress_source, progress_tick, job, NULL);
  g_source_set_priority (priv->progress_source, io_priority);
  g_source_attach (priv->progress_source, priv->context);

  /* The task (and through it the job) stays alive until completion. */
  g_thread_unref (g_thread_new ("rechain-job", worker, task));
}

/**
 * rechain_block_job_run_finish:
 * @job: a job
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: %TRUE if the job completed; %FALSE with @error set if it failed
 *   or was cancelled (%G_IO_ERROR_CANCELLED)
 */
gboolean
rechain_block_job_run_finish (RechainBlockJob *job, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_BLOCK_JOB (job), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, job), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rechain_block_job_run_async, FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
