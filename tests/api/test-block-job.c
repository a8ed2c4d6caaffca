/* test-block-job.c: the GObject API as an application uses it: async runs in
 * a main loop, progress on the caller's context, cancellation, a job that
 * runs once, two jobs on one image, run_sync on a worker thread. Results
 * are judged by qemu-img.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <rechain/rechain.h>
#include <string.h>

typedef struct {
  char *dir;
  char *top;
  char *before; /* raw dump of the guest content before the rebase */
} Fixture;

static int
sh (const char *dir, const char *format, ...) G_GNUC_PRINTF (2, 3);

static int
sh (const char *dir, const char *format, ...)
{
  va_list args;
  g_autofree char *cmd = NULL;
  g_autofree char *full = NULL;
  int status;

  va_start (args, format);
  cmd = g_strdup_vprintf (format, args);
  va_end (args);
  full = g_strdup_printf ("cd '%s' && ( %s ) >/dev/null 2>&1", dir, cmd);
  status = system (full);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128;
}

/* base (257 MiB of data in four pieces, one in each 256 MiB window the
 * engine works through, 1 GiB virtual) <- top (a little data). Big enough
 * that a flatten with cache mode writethrough takes a while, and that a
 * job cancelled after its first window has three more to go. */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");

  if (!qemu_img)
    {
      g_test_skip ("qemu-img (Debian qemu-utils) is not installed");
      return;
    }
  f->dir = g_dir_make_tmp ("rechain-api-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_cmpint (sh (f->dir, "qemu-img create -q -f qcow2 base.qcow2 1G && "
                               "qemu-io -f qcow2 -c 'write -P 0x5a 0 64M' -c 'write -P 0x5b 256M 64M' "
                               "-c 'write -P 0x5c 512M 64M' -c 'write -P 0x5d 768M 65M' base.qcow2 && "
                               "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 && "
                               "qemu-io -f qcow2 -c 'write -P 0x77 1M 64k' top.qcow2 && "
                               "qemu-img convert -O raw top.qcow2 before.raw"), ==, 0);
  f->top = g_build_filename (f->dir, "top.qcow2", NULL);
  f->before = g_build_filename (f->dir, "before.raw", NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->dir)
    {
      sh ("/", "rm -rf '%s'", f->dir);
    }
  g_free (f->dir);
  g_free (f->top);
  g_free (f->before);
}

/* qemu-img check finds no corruption (leaks are allowed after an
 * interruption), and the content is what it was. */
static void
assert_consistent_and_unchanged (Fixture *f)
{
  int check = sh (f->dir, "qemu-img check -q top.qcow2");
  g_assert_true (check == 0 || check == 3);
  g_assert_cmpint (sh (f->dir, "qemu-img compare -q -f raw -F qcow2 before.raw top.qcow2"), ==, 0);
}

static gboolean
has_backing (Fixture *f)
{
  return sh (f->dir, "qemu-img info top.qcow2 | grep -q '^backing file:'") == 0;
}

typedef struct {
  GMainLoop *loop;
  GThread *main_thread;
  guint notifies;
  gboolean wrong_thread;
  double last_progress;
  gboolean ok;
  GError *error;
  GCancellable *cancel_at_progress; /* cancel once part of the copy is done */
  guint64 done_at_cancel;
} Run;

static void
on_progress (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  Run *run = user_data;
  double p = rechain_block_job_get_progress (RECHAIN_BLOCK_JOB (object));

  run->notifies++;
  if (g_thread_self () != run->main_thread)
    run->wrong_thread = TRUE;
  g_assert_cmpfloat (p, >=, run->last_progress);
  run->last_progress = p;
  /* once part of the copy is done (the first window), before it ends */
  if (run->cancel_at_progress && !g_cancellable_is_cancelled (run->cancel_at_progress) &&
      rechain_block_job_get_bytes_done (RECHAIN_BLOCK_JOB (object)) > 0 && p < 1.0)
    {
      run->done_at_cancel = rechain_block_job_get_bytes_done (RECHAIN_BLOCK_JOB (object));
      g_cancellable_cancel (run->cancel_at_progress);
    }
}

static void
on_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  g_assert_true (g_thread_self () == run->main_thread);
  run->ok = rechain_block_job_run_finish (RECHAIN_BLOCK_JOB (object), result, &run->error);
  g_main_loop_quit (run->loop);
}

static void
run_async (RechainBlockJob *job, GCancellable *cancellable, Run *run)
{
  run->loop = g_main_loop_new (NULL, FALSE);
  run->main_thread = g_thread_self ();
  g_signal_connect (job, "notify::progress", G_CALLBACK (on_progress), run);
  rechain_block_job_run_async (job, G_PRIORITY_DEFAULT, cancellable, on_done, run);
  g_main_loop_run (run->loop);
  g_main_loop_unref (run->loop);
}

static RechainRebaseJob *
flatten_job (Fixture *f, RechainCacheMode cache)
{
  return g_object_new (RECHAIN_TYPE_REBASE_JOB, "image", f->top, "backing-file", "",
                       "mode", RECHAIN_REBASE_MODE_SAFE, "cache-mode", cache, NULL);
}

static void
test_async_progress (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  RechainRebaseStats *stats;
  Run run = { 0 };

  if (!f->dir)
    return;
  job = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (job)), ==, RECHAIN_JOB_STATE_CREATED);
  run_async (RECHAIN_BLOCK_JOB (job), NULL, &run);
  g_assert_no_error (run.error);
  g_assert_true (run.ok);
  g_assert_false (run.wrong_thread);
  g_assert_cmpuint (run.notifies, >=, 1);
  g_assert_cmpfloat (run.last_progress, ==, 1.0);
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (job)), ==, RECHAIN_JOB_STATE_COMPLETED);
  g_assert_cmpuint (rechain_block_job_get_bytes_done (RECHAIN_BLOCK_JOB (job)), ==,
                    rechain_block_job_get_bytes_total (RECHAIN_BLOCK_JOB (job)));

  stats = rechain_rebase_job_get_stats (job);
  g_assert_nonnull (stats);
  {
    g_autoptr(GPtrArray) images = rechain_rebase_stats_get_images (stats);
    RechainRebaseImageStats *image_stats;

    g_assert_cmpuint (images->len, ==, 1);
    image_stats = g_ptr_array_index (images, 0);
    g_assert_null (rechain_rebase_image_stats_get_error (image_stats));
    g_assert_cmpstr (rechain_rebase_image_stats_get_result (image_stats), ==, "rebased");
    g_assert_cmpuint (rechain_rebase_image_stats_get_bytes_written (image_stats), ==, (257u << 20) - 65536);
    /* the index getters of 0.1 still answer */
    G_GNUC_BEGIN_IGNORE_DEPRECATIONS
    g_assert_cmpuint (rechain_rebase_stats_get_n_images (stats), ==, 1);
    g_assert_null (rechain_rebase_stats_get_image_error (stats, 0));
    g_assert_cmpuint (rechain_rebase_stats_get_image_bytes_written (stats, 0), ==, (257u << 20) - 65536);
    G_GNUC_END_IGNORE_DEPRECATIONS
  }

  g_assert_cmpint (sh (f->dir, "qemu-img check -q top.qcow2"), ==, 0);
  assert_consistent_and_unchanged (f);
  g_assert_false (has_backing (f));
}

/* A job runs once. */
static void
test_runs_once (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(GError) error = NULL;
  Run run = { 0 };

  if (!f->dir)
    return;
  job = rechain_rebase_job_new (f->top, "", NULL);
  g_assert_true (rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (job), NULL, &error));
  g_assert_no_error (error);
  g_assert_false (rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (job), NULL, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  run_async (RECHAIN_BLOCK_JOB (job), NULL, &run);
  g_assert_false (run.ok);
  g_assert_error (run.error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  g_clear_error (&run.error);
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (job)), ==, RECHAIN_JOB_STATE_COMPLETED);
}

static void
assert_cancelled_then_rerun (Fixture *f, RechainRebaseJob *job, Run *run)
{
  g_autoptr(RechainRebaseJob) again = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_false (run->ok);
  g_assert_error (run->error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&run->error);
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (job)), ==, RECHAIN_JOB_STATE_CANCELLED);
  assert_consistent_and_unchanged (f);
  g_assert_true (has_backing (f)); /* not switched */

  again = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  g_assert_true (rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (again), NULL, &error));
  g_assert_no_error (error);
  assert_consistent_and_unchanged (f);
  g_assert_false (has_backing (f));
}

static void
test_cancel_before_start (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Run run = { 0 };

  if (!f->dir)
    return;
  job = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  g_cancellable_cancel (cancellable);
  run_async (RECHAIN_BLOCK_JOB (job), cancellable, &run);
  assert_cancelled_then_rerun (f, job, &run);
}

static void
test_cancel_mid_copy (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Run run = { 0 };

  if (!f->dir)
    return;
  /* writethrough makes every write durable: slow enough to be caught
   * between its first and last progress report */
  job = flatten_job (f, RECHAIN_CACHE_WRITETHROUGH);
  run.cancel_at_progress = cancellable;
  run_async (RECHAIN_BLOCK_JOB (job), cancellable, &run);
  if (run.ok)
    {
      g_test_incomplete ("the copy finished before a progress report could cancel it");
      return;
    }
  /* cancelled mid-copy: part of the data had been copied (and, committed
   * or not, none of it shows: the image is on its old backing file) */
  g_assert_cmpuint (run.done_at_cancel, >, 0);
  g_assert_cmpuint (run.done_at_cancel, <, rechain_block_job_get_bytes_total (RECHAIN_BLOCK_JOB (job)));
  g_assert_cmpint (sh (f->dir, "test $(qemu-img info --output=json top.qcow2 | "
                               "sed -n 's/.*\"actual-size\": \\([0-9]*\\).*/\\1/p') -gt 16777216"), ==, 0);
  assert_cancelled_then_rerun (f, job, &run);
}

/* Cancelling when all data is copied, while the job commits and switches
 * the header: the job either completes or is cancelled, and the image is
 * consistent either way. */
static void
on_total_cancel (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  RechainBlockJob *job = RECHAIN_BLOCK_JOB (object);
  if (rechain_block_job_get_bytes_total (job) > 0 &&
      rechain_block_job_get_bytes_done (job) == rechain_block_job_get_bytes_total (job))
    g_cancellable_cancel (user_data);
}

static void
test_cancel_at_end (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Run run = { 0 };

  if (!f->dir)
    return;
  job = flatten_job (f, RECHAIN_CACHE_WRITETHROUGH);
  g_signal_connect (job, "notify::bytes-done", G_CALLBACK (on_total_cancel), cancellable);
  run_async (RECHAIN_BLOCK_JOB (job), cancellable, &run);
  if (run.ok)
    {
      g_assert_cmpint (sh (f->dir, "qemu-img check -q top.qcow2"), ==, 0);
      assert_consistent_and_unchanged (f);
      g_assert_false (has_backing (f));
    }
  else
    assert_cancelled_then_rerun (f, job, &run);
}

/* A second job on an image another job is rebasing is refused: QEMU's
 * image locks work between two jobs of one process too. */
static void
test_two_jobs_refused (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) first = NULL;
  g_autoptr(RechainRebaseJob) second = NULL;
  g_autoptr(GError) error = NULL;
  Run run = { 0 };

  if (!f->dir)
    return;
  first = flatten_job (f, RECHAIN_CACHE_WRITETHROUGH);
  run.loop = g_main_loop_new (NULL, FALSE);
  run.main_thread = g_thread_self ();
  rechain_block_job_run_async (RECHAIN_BLOCK_JOB (first), G_PRIORITY_DEFAULT, NULL, on_done, &run);
  /* wait until the first job has the image open: its state is running
   * at once, its first progress report comes after opening */
  while (rechain_block_job_get_bytes_total (RECHAIN_BLOCK_JOB (first)) == 0 && !run.ok && !run.error)
    g_main_context_iteration (NULL, TRUE);

  second = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  g_assert_false (rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (second), NULL, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
  g_assert_nonnull (strstr (error->message, "top.qcow2"));
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (second)), ==, RECHAIN_JOB_STATE_FAILED);

  g_main_loop_run (run.loop);
  g_main_loop_unref (run.loop);
  g_assert_no_error (run.error);
  g_assert_true (run.ok);
  assert_consistent_and_unchanged (f);
}

typedef struct {
  RechainBlockJob *job;
  GThread *thread;
  gboolean ok;
  GError *error;
  gboolean wrong_thread;
  guint notifies;
} SyncRun;

static void
on_sync_progress (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  SyncRun *run = user_data;
  run->notifies++;
  if (g_thread_self () != run->thread)
    run->wrong_thread = TRUE;
}

static gpointer
sync_thread (gpointer data)
{
  SyncRun *run = data;
  run->thread = g_thread_self ();
  run->ok = rechain_block_job_run_sync (run->job, NULL, &run->error);
  return NULL;
}

static void
test_run_sync_on_thread (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  SyncRun run = { 0 };
  GThread *thread;

  if (!f->dir)
    return;
  job = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  run.job = RECHAIN_BLOCK_JOB (job);
  g_signal_connect (job, "notify::progress", G_CALLBACK (on_sync_progress), &run);
  thread = g_thread_new ("test-sync", sync_thread, &run);
  g_thread_join (thread);
  g_assert_no_error (run.error);
  g_assert_true (run.ok);
  g_assert_false (run.wrong_thread);
  g_assert_cmpuint (run.notifies, >=, 1);
  g_assert_cmpfloat (rechain_block_job_get_progress (RECHAIN_BLOCK_JOB (job)), ==, 1.0);
  assert_consistent_and_unchanged (f);
  g_assert_false (has_backing (f));
}

/* The dry run writes nothing and says what would be copied. */
static void
test_plan (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(RechainRebaseStats) stats = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *json = NULL;
  g_autofree char *sum_before = NULL;
  g_autofree char *sum_after = NULL;
  g_autofree char *contents = NULL;
  gsize len;

  if (!f->dir)
    return;
  g_assert_true (g_file_get_contents (f->top, &contents, &len, NULL));
  sum_before = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guint8 *) contents, len);
  g_clear_pointer (&contents, g_free);

  job = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
  stats = rechain_rebase_job_plan (job, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (rechain_rebase_stats_get_dry_run (stats));
  {
    g_autoptr(GPtrArray) images = rechain_rebase_stats_get_images (stats);
    g_assert_cmpuint (images->len, ==, 1);
    g_assert_cmpstr (rechain_rebase_image_stats_get_result (g_ptr_array_index (images, 0)), ==, "planned");
    g_assert_cmpuint (rechain_rebase_image_stats_get_bytes_written (g_ptr_array_index (images, 0)), ==,
                      (257u << 20) - 65536);
  }
  json = rechain_rebase_stats_to_json (stats);
  g_assert_nonnull (strstr (json, "\"planned\""));

  g_assert_true (g_file_get_contents (f->top, &contents, &len, NULL));
  sum_after = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guint8 *) contents, len);
  g_assert_cmpstr (sum_before, ==, sum_after);
  g_assert_cmpint (rechain_block_job_get_state (RECHAIN_BLOCK_JOB (job)), ==, RECHAIN_JOB_STATE_CREATED);
}

static void
on_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RechainImage **out = user_data;
  g_autoptr(GError) error = NULL;

  *out = rechain_image_open_finish (result, &error);
  g_assert_no_error (error);
}

static void
test_image (Fixture *f, gconstpointer data)
{
  g_autoptr(RechainImage) image = NULL;
  g_autoptr(GPtrArray) extents = NULL;
  g_autoptr(GError) error = NULL;
  RechainImage *base;
  const RechainExtent *e;

  if (!f->dir)
    return;
  rechain_image_open_async (f->top, NULL, RECHAIN_IMAGE_OPEN_NONE, G_PRIORITY_DEFAULT, NULL,
                            on_opened, &image);
  while (!image)
    g_main_context_iteration (NULL, TRUE);

  g_assert_cmpstr (rechain_image_get_format (image), ==, "qcow2");
  g_assert_cmpuint (rechain_image_get_virtual_size (image), ==, 1u << 30);
  g_assert_cmpuint (rechain_image_get_cluster_size (image), ==, 65536);
  g_assert_cmpstr (rechain_image_get_backing_file (image), ==, "base.qcow2");
  g_assert_cmpstr (rechain_image_get_backing_format (image), ==, "qcow2");
  g_assert_cmpuint (rechain_image_get_chain_length (image), ==, 2);
  base = rechain_image_get_backing_image (image);
  g_assert_nonnull (base);
  g_assert_null (rechain_image_get_backing_image (base));
  g_assert_null (rechain_image_get_backing_file (base));

  extents = rechain_image_get_extents (image, 0, 4u << 20, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (extents->len, ==, 3);
  e = g_ptr_array_index (extents, 1);
  g_assert_cmpuint (e->offset, ==, 1u << 20);
  g_assert_cmpuint (e->length, ==, 65536);
  g_assert_cmpint (e->kind, ==, RECHAIN_EXTENT_DATA);
  g_assert_cmpint (e->depth, ==, 0);

  /* an image held read-only does not block readers, but blocks writers */
  {
    g_autoptr(RechainRebaseJob) job = flatten_job (f, RECHAIN_CACHE_WRITEBACK);
    g_assert_false (rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (job), NULL, &error));
    g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add ("/api/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("image", test_image);
  ADD ("job/async-progress", test_async_progress);
  ADD ("job/runs-once", test_runs_once);
  ADD ("job/plan", test_plan);
  ADD ("job/cancel/before-start", test_cancel_before_start);
  ADD ("job/cancel/mid-copy", test_cancel_mid_copy);
  ADD ("job/cancel/at-end", test_cancel_at_end);
  ADD ("job/two-jobs-refused", test_two_jobs_refused);
  ADD ("job/run-sync-on-thread", test_run_sync_on_thread);
  return g_test_run ();
}
