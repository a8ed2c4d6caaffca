/* rechain-rebase-job.c: RechainRebaseJob, the rebase engine (src/job/) as
 * a block job; what it did is a RechainRebaseStats (rechain-rebase-stats.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "job/rebase.h"
#include "rechain/rechain-block-job-private.h"
#include "rechain/rechain-enum-types.h"
#include "rechain/rechain-rebase-job.h"
#include "rechain/rechain-rebase-job-private.h"
#include "rechain/rechain-keyring-private.h"
#include "rechain/rechain-lease.h"
#include "rechain/rechain-rebase-stats-private.h"

/* ---- RechainRebaseJob ---- */

/**
 * RechainRebaseJob:
 *
 * Changes the backing file of an image, as `qemu-img rebase` does.
 *
 * In %RECHAIN_REBASE_MODE_SAFE (the default) the guest-visible content is
 * kept: what differs between the old and the new backing chains is copied
 * into the image first, durably, and only then is the header switched; an
 * interruption at any point leaves a consistent image with its old content,
 * and running the job again completes the rebase. An empty
 * #RechainRebaseJob:backing-file makes the image standalone.
 *
 * Linked clones (several images sharing one old backing chain) move
 * together with #RechainRebaseJob:linked-images: the chains are compared
 * once, and each image is switched independently.
 *
 * From Python:
 *
 * ```python
 * job = Rechain.RebaseJob(image="vm.qcow2", backing_file="", mode=Rechain.RebaseMode.SAFE)
 * job.connect("notify::progress", lambda j, p: print(j.props.progress))
 * job.connect("image-finished", lambda j, s: print(s.props.image, s.props.result))
 * job.run_async(GLib.PRIORITY_DEFAULT, None, on_done)
 * ```
 */
struct _RechainRebaseJob {
  RechainBlockJob parent_instance;
  char *format;
  char *backing_file;
  char *backing_format;
  RechainRebaseMode mode;
  gboolean compress;
  gboolean force_share;
  gboolean dry_run;
  RechainCacheMode cache_mode;
  RechainCacheMode source_cache_mode;
  RechainCopyMode copy_mode;
  char *backing_root;
  gboolean trust_chain;
  RechainKeyring *keyring;
  gboolean leases;
  char *lockspace_dir;
  char **storage_dirs;  /* set by a volume helper: its pools' directories */
  char *storage_name;   /* whose they are, for messages */
  char **linked_images;
  RechainRebaseStats *stats;
};

enum {
  PROP_0,
  PROP_FORMAT,
  PROP_BACKING_FILE,
  PROP_BACKING_FORMAT,
  PROP_MODE,
  PROP_COMPRESS,
  PROP_CACHE_MODE,
  PROP_SOURCE_CACHE_MODE,
  PROP_FORCE_SHARE,
  PROP_DRY_RUN,
  PROP_LINKED_IMAGES,
  PROP_COPY_MODE,
  PROP_BACKING_ROOT,
  PROP_TRUST_CHAIN,
  PROP_KEYRING,
  PROP_LEASES,
  PROP_LOCKSPACE_DIR,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

static guint image_finished_signal;

G_DEFINE_FINAL_TYPE (RechainRebaseJob, rechain_rebase_job, RECHAIN_TYPE_BLOCK_JOB)

static void
rechain_rebase_job_finalize (GObject *object)
{
  RechainRebaseJob *self = RECHAIN_REBASE_JOB (object);

  g_free (self->format);
  g_free (self->backing_file);
  g_free (self->backing_format);
  g_free (self->backing_root);
  g_free (self->lockspace_dir);
  g_clear_object (&self->keyring);
  g_strfreev (self->storage_dirs);
  g_free (self->storage_name);
  g_strfreev (self->linked_images);
  g_clear_pointer (&self->stats, rechain_rebase_stats_unref);
  G_OBJECT_CLASS (rechain_rebase_job_parent_class)->finalize (object);
}

static void
rechain_rebase_job_set_property (GObject *object, guint prop_id, const GValue *value,
                                 GParamSpec *pspec)
{
  RechainRebaseJob *self = RECHAIN_REBASE_JOB (object);

  switch (prop_id)
    {
    case PROP_FORMAT:
      self->format = g_value_dup_string (value);
      break;
    case PROP_BACKING_FILE:
      self->backing_file = g_value_dup_string (value);
      break;
    case PROP_BACKING_FORMAT:
      self->backing_format = g_value_dup_string (value);
      break;
    case PROP_MODE:
      self->mode = g_value_get_enum (value);
      break;
    case PROP_COMPRESS:
      self->compress = g_value_get_boolean (value);
      break;
    case PROP_CACHE_MODE:
      self->cache_mode = g_value_get_enum (value);
      break;
    case PROP_SOURCE_CACHE_MODE:
      self->source_cache_mode = g_value_get_enum (value);
      break;
    case PROP_FORCE_SHARE:
      self->force_share = g_value_get_boolean (value);
      break;
    case PROP_DRY_RUN:
      self->dry_run = g_value_get_boolean (value);
      break;
    case PROP_LINKED_IMAGES:
      self->linked_images = g_value_dup_boxed (value);
      break;
    case PROP_COPY_MODE:
      self->copy_mode = g_value_get_enum (value);
      break;
    case PROP_TRUST_CHAIN:
      self->trust_chain = g_value_get_boolean (value);
      break;
    case PROP_BACKING_ROOT:
      self->backing_root = g_value_dup_string (value);
      break;
    case PROP_KEYRING:
      g_set_object (&self->keyring, g_value_get_object (value));
      break;
    case PROP_LEASES:
      self->leases = g_value_get_boolean (value);
      break;
    case PROP_LOCKSPACE_DIR:
      self->lockspace_dir = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_rebase_job_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainRebaseJob *self = RECHAIN_REBASE_JOB (object);

  switch (prop_id)
    {
    case PROP_FORMAT:
      g_value_set_string (value, self->format);
      break;
    case PROP_BACKING_FILE:
      g_value_set_string (value, self->backing_file);
      break;
    case PROP_BACKING_FORMAT:
      g_value_set_string (value, self->backing_format);
      break;
    case PROP_MODE:
      g_value_set_enum (value, self->mode);
      break;
    case PROP_COMPRESS:
      g_value_set_boolean (value, self->compress);
      break;
    case PROP_CACHE_MODE:
      g_value_set_enum (value, self->cache_mode);
      break;
    case PROP_SOURCE_CACHE_MODE:
      g_value_set_enum (value, self->source_cache_mode);
      break;
    case PROP_FORCE_SHARE:
      g_value_set_boolean (value, self->force_share);
      break;
    case PROP_DRY_RUN:
      g_value_set_boolean (value, self->dry_run);
      break;
    case PROP_LINKED_IMAGES:
      g_value_set_boxed (value, self->linked_images);
      break;
    case PROP_COPY_MODE:
      g_value_set_enum (value, self->copy_mode);
      break;
    case PROP_TRUST_CHAIN:
      g_value_set_boolean (value, self->trust_chain);
      break;
    case PROP_BACKING_ROOT:
      g_value_set_string (value, self->backing_root);
      break;
    case PROP_KEYRING:
      g_value_set_object (value, self->keyring);
      break;
    case PROP_LEASES:
      g_value_set_boolean (value, self->leases);
      break;
    case PROP_LOCKSPACE_DIR:
      g_value_set_string (value, self->lockspace_dir);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
progress_cb (guint64 done, guint64 total, gpointer user_data)
{
  rechain_block_job_set_progress (RECHAIN_BLOCK_JOB (user_data), done, total);
}

typedef struct {
  RechainRebaseJob *job;
  RechainRebaseImageStats *image;
} ImageFinished;

static gboolean
emit_image_finished (gpointer data)
{
  ImageFinished *f = data;

  g_signal_emit (f->job, image_finished_signal, 0, f->image);
  return G_SOURCE_REMOVE;
}

static void
image_finished_free (gpointer data)
{
  ImageFinished *f = data;

  g_object_unref (f->image);
  g_object_unref (f->job);
  g_free (f);
}

/* On the engine's thread: a copy of the image's outcome goes to the
 * caller's context, where the engine can no longer change it. */
static void
image_done_cb (guint index, const RechainRebaseImageReport *image, gpointer user_data)
{
  RechainRebaseJob *self = user_data;
  ImageFinished *f = g_new (ImageFinished, 1);

  f->job = g_object_ref (self);
  f->image = rechain_rebase_image_stats_new_copy (self->dry_run, image);
  rechain_block_job_invoke (RECHAIN_BLOCK_JOB (self), emit_image_finished, f,
                            image_finished_free);
}

/* Runs the rebase with the job's settings; @dry_run overrides the
 * property for plan(), which emits no ::image-finished (@emit). */
static RechainRebaseStats *
run_rebase (RechainRebaseJob *self, gboolean dry_run, gboolean emit, GCancellable *cancellable,
            gboolean *ok, GError **error)
{
  const char *image = rechain_block_job_get_image (RECHAIN_BLOCK_JOB (self));
  g_autoptr(GPtrArray) images = g_ptr_array_new ();
  RechainRebaseOptions options = { 0 };
  RechainKeyLookup keys;
  RechainRebaseReport *report = rechain_rebase_report_new ();

  g_ptr_array_add (images, (gpointer) image);
  for (guint i = 0; self->linked_images && self->linked_images[i]; i++)
    g_ptr_array_add (images, self->linked_images[i]);
  g_ptr_array_add (images, NULL);

  options.image = image;
  options.images = (const char * const *) images->pdata;
  options.format = self->format;
  options.backing_file = self->backing_file ? self->backing_file : "";
  options.backing_format = self->backing_format;
  options.cache = self->cache_mode;
  options.source_cache = self->source_cache_mode;
  options.force_share = self->force_share;
  options.compress = self->compress;
  options.dry_run = dry_run;
  options.copy_mode = self->copy_mode;
  options.confine.backing_root = self->backing_root;
  options.trust_chain = self->trust_chain;
  options.no_leases = !self->leases;
  options.lockspace_dir = self->lockspace_dir;
  rechain_keyring_init_lookup (self->keyring, &keys);
  options.keys = &keys;
  if (!self->trust_chain)
    {
      options.confine.storage_dirs = (const char * const *) self->storage_dirs;
      options.confine.storage_name = self->storage_name;
    }
  if (emit)
    {
      options.image_done = image_done_cb;
      options.image_done_data = self;
    }

  if (self->mode == RECHAIN_REBASE_MODE_UNSAFE)
    *ok = rechain_rebase_unsafe_images (&options, report, error);
  else
    *ok = rechain_rebase_safe (&options, report, progress_cb, self, cancellable, error);
  return rechain_rebase_stats_new_for_report (report);
}

static gboolean
rechain_rebase_job_run (RechainBlockJob *job, GCancellable *cancellable, GError **error)
{
  RechainRebaseJob *self = RECHAIN_REBASE_JOB (job);
  gboolean ok = FALSE;
  RechainRebaseStats *stats = run_rebase (self, self->dry_run, TRUE, cancellable, &ok, error);

  g_clear_pointer (&self->stats, rechain_rebase_stats_unref);
  self->stats = stats;
  return ok;
}

static void
rechain_rebase_job_class_init (RechainRebaseJobClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  RechainBlockJobClass *job_class = RECHAIN_BLOCK_JOB_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = rechain_rebase_job_finalize;
  object_class->set_property = rechain_rebase_job_set_property;
  object_class->get_property = rechain_rebase_job_get_property;
  job_class->run = rechain_rebase_job_run;

  /**
   * RechainRebaseJob:format:
   *
   * The format of the image ("qcow2"), or %NULL to probe it.
   */
  props[PROP_FORMAT] = g_param_spec_string ("format", NULL, NULL, NULL, flags);
  /**
   * RechainRebaseJob:backing-file:
   *
   * The new backing file name, written into the header as given; a
   * relative name is relative to the image's directory. "" (or %NULL)
   * means no backing file: the image becomes standalone.
   */
  props[PROP_BACKING_FILE] = g_param_spec_string ("backing-file", NULL, NULL, "", flags);
  /**
   * RechainRebaseJob:backing-format:
   *
   * The format of the new backing file; required when it is named.
   */
  props[PROP_BACKING_FORMAT] = g_param_spec_string ("backing-format", NULL, NULL, NULL, flags);
  /**
   * RechainRebaseJob:mode:
   *
   * Safe (keep the content) or unsafe (rewrite the header only).
   */
  props[PROP_MODE] = g_param_spec_enum ("mode", NULL, NULL, RECHAIN_TYPE_REBASE_MODE,
                                        RECHAIN_REBASE_MODE_SAFE, flags);
  /**
   * RechainRebaseJob:compress:
   *
   * Write copied clusters compressed, with the image's compression type.
   */
  props[PROP_COMPRESS] = g_param_spec_boolean ("compress", NULL, NULL, FALSE, flags);
  /**
   * RechainRebaseJob:cache-mode:
   *
   * How the image is written.
   */
  props[PROP_CACHE_MODE] = g_param_spec_enum ("cache-mode", NULL, NULL, RECHAIN_TYPE_CACHE_MODE,
                                              RECHAIN_CACHE_WRITEBACK, flags);
  /**
   * RechainRebaseJob:source-cache-mode:
   *
   * How the backing files are read.
   */
  props[PROP_SOURCE_CACHE_MODE] = g_param_spec_enum ("source-cache-mode", NULL, NULL,
                                                     RECHAIN_TYPE_CACHE_MODE,
                                                     RECHAIN_CACHE_WRITEBACK, flags);
  /**
   * RechainRebaseJob:force-share:
   *
   * Read the backing files even while another process writes them (no
   * locks on them). The image itself is always locked.
   */
  props[PROP_FORCE_SHARE] = g_param_spec_boolean ("force-share", NULL, NULL, FALSE, flags);
  /**
   * RechainRebaseJob:dry-run:
   *
   * Plan only: running the job writes nothing and fills the stats with
   * what would be done.
   */
  props[PROP_DRY_RUN] = g_param_spec_boolean ("dry-run", NULL, NULL, FALSE, flags);
  /**
   * RechainRebaseJob:linked-images:
   *
   * More images that share the old backing chain of the job's image
   * (linked clones), moved to the same new backing file in the same job.
   */
  props[PROP_LINKED_IMAGES] = g_param_spec_boxed ("linked-images", NULL, NULL, G_TYPE_STRV, flags);
  /**
   * RechainRebaseJob:copy-mode:
   *
   * How copied data gets into the image: shared with the backing file's
   * blocks where the file system can (auto, the default), always shared or
   * refused before writing (reflink), or read and written (copy).
   */
  props[PROP_COPY_MODE] = g_param_spec_enum ("copy-mode", NULL, NULL, RECHAIN_TYPE_COPY_MODE,
                                             RECHAIN_COPY_MODE_AUTO, flags);
  /**
   * RechainRebaseJob:backing-root:
   *
   * A directory every backing file (of the old and of the new chain) must
   * lie in once symlinks are resolved; a chain that leads elsewhere is
   * refused with %RECHAIN_ERROR_INVALID_IMAGE. For pool scripts that
   * handle images of untrusted users. %NULL: no restriction.
   */
  props[PROP_BACKING_ROOT] = g_param_spec_string ("backing-root", NULL, NULL, NULL, flags);
  /**
   * RechainRebaseJob:trust-chain:
   *
   * Follow every file name recorded in the headers of the chains. By
   * default a file named by an image owned by another user (a backing
   * file, an external data file) is opened only if that user could open
   * it, and never when it is a device, FIFO or socket
   * (%RECHAIN_ERROR_NOT_PERMITTED, before anything is written), so a job
   * run as root cannot be made to read or write files for a user who could
   * not. A volume helper's confinement to its storage pools is lifted too.
   *
   * Since: 0.2
   */
  props[PROP_TRUST_CHAIN] = g_param_spec_boolean ("trust-chain", NULL, NULL, FALSE, flags);
  /**
   * RechainRebaseJob:keyring:
   *
   * The passphrases of the encrypted images of the old and the new chain
   * (see [class@Rechain.Keyring]), or %NULL. An unsafe rebase needs none:
   * it rewrites the header only, and keeps the encryption header and
   * key material byte for byte. A safe rebase that involves an encrypted
   * image is refused for now (%RECHAIN_ERROR_UNSUPPORTED, naming it),
   * whatever the keyring holds.
   *
   * Since: 0.2
   */
  props[PROP_KEYRING] = g_param_spec_object ("keyring", NULL, NULL, RECHAIN_TYPE_KEYRING, flags);
  /**
   * RechainRebaseJob:leases:
   *
   * Take the leases of libvirt's lock manager, virtlockd
   * (`lock_manager = "lockd"` in qemu.conf), on every image written, from
   * before its first write until it is switched and closed, so that a
   * domain using it cannot start meanwhile, on this host or on any other
   * host sharing the storage. Always the direct lease (a lock on byte 0 of
   * the image file), and the indirect one when
   * #RechainRebaseJob:lockspace-dir is set. An image whose lease is held
   * (by a running domain) fails with %RECHAIN_ERROR_IN_USE, alone: linked
   * images go on. A dry run checks the leases and takes none. %FALSE
   * turns leases off, for storage no libvirt host uses.
   *
   * Since: 0.2
   */
  props[PROP_LEASES] = g_param_spec_boolean ("leases", NULL, NULL, TRUE, flags);
  /**
   * RechainRebaseJob:lockspace-dir:
   *
   * virtlockd's directory of indirect leases (`file_lockspace_dir` of
   * qemu-lockd.conf), as rechain_read_libvirt_lock_config() finds it for
   * the local daemon; it must exist. %NULL: direct leases only, except
   * for a job run through rechain_volume_rebase_async() or
   * rechain_fleet_rebase_async(): those set it, when it is %NULL and
   * #RechainRebaseJob:leases is %TRUE, to the local libvirt's, as
   * `rechain rebase --pool` does.
   *
   * Since: 0.2
   */
  props[PROP_LOCKSPACE_DIR] = g_param_spec_string ("lockspace-dir", NULL, NULL, NULL, flags);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /**
   * RechainRebaseJob::image-finished:
   * @job: the job
   * @image: (transfer none): what became of the image
   *
   * Emitted once for each image of the job (its image and its
   * #RechainRebaseJob:linked-images) as soon as its outcome is final:
   * its header switched to the new backing file and the image closed, so
   * that it can be used at once (#RechainRebaseImageStats:result
   * "rebased"); refused or failed ("failed", with
   * #RechainRebaseImageStats:error); or for a dry run, planned
   * ("planned"). A thousand linked clones are rebased in batches, and a
   * program that watches them learns of each as it ends rather than from
   * the statistics at the end, which list the same outcomes
   * (rechain_rebase_job_get_stats()).
   *
   * The emissions come in the order the images finish, which need not be
   * the order of the images, on the thread-default main context of the
   * caller of rechain_block_job_run_async() (as the `notify` signals of
   * the progress), all of them before the job's completion callback; with
   * rechain_block_job_run_sync(), on its calling thread while it runs.
   * Every image the statistics list gets exactly one emission: also those
   * that failed to open, and those a run that stopped (cancelled, or
   * refused as a whole) did not complete. rechain_rebase_job_plan() emits
   * none. An unsafe rebase stops at its first failure: the images after
   * it are not tried, and get none.
   *
   * Since: 0.2
   */
  image_finished_signal = g_signal_new ("image-finished", G_TYPE_FROM_CLASS (klass),
                                        G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                        RECHAIN_TYPE_REBASE_IMAGE_STATS);
}

static void
rechain_rebase_job_init (RechainRebaseJob *self)
{
}

/**
 * rechain_rebase_job_new:
 * @image: the image to rebase
 * @backing_file: (nullable): the new backing file, "" or %NULL for none
 * @backing_format: (nullable): its format
 *
 * A safe rebase job with default settings; use g_object_new() to set more
 * properties.
 *
 * Returns: (transfer full): a new job
 */
RechainRebaseJob *
rechain_rebase_job_new (const char *image, const char *backing_file, const char *backing_format)
{
  return g_object_new (RECHAIN_TYPE_REBASE_JOB, "image", image,
                       "backing-file", backing_file ? backing_file : "",
                       "backing-format", backing_format, NULL);
}

/**
 * rechain_rebase_job_get_backing_file:
 * @job: a rebase job
 *
 * Returns: the new backing file name ("" for none)
 */
const char *
rechain_rebase_job_get_backing_file (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  return job->backing_file ? job->backing_file : "";
}

/**
 * rechain_rebase_job_get_keyring:
 * @job: a rebase job
 *
 * Returns: (transfer none) (nullable): the value of
 *   [property@Rechain.RebaseJob:keyring]
 *
 * Since: 0.2
 */
RechainKeyring *
rechain_rebase_job_get_keyring (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  return job->keyring;
}

/**
 * rechain_rebase_job_get_backing_format:
 * @job: a rebase job
 *
 * Returns: (nullable): the new backing file's format
 */
const char *
rechain_rebase_job_get_backing_format (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  return job->backing_format;
}

/**
 * rechain_rebase_job_get_mode:
 * @job: a rebase job
 *
 * Returns: the mode
 */
RechainRebaseMode
rechain_rebase_job_get_mode (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), RECHAIN_REBASE_MODE_SAFE);
  return job->mode;
}

/**
 * rechain_rebase_job_get_linked_images:
 * @job: a rebase job
 *
 * Returns: (nullable) (transfer none) (array zero-terminated=1): the linked images
 */
const char * const *
rechain_rebase_job_get_linked_images (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  return (const char * const *) job->linked_images;
}

/**
 * rechain_rebase_job_get_stats:
 * @job: a rebase job
 *
 * What the run did, including per-image failures; available once the job
 * has run (also after a failure or a cancellation).
 *
 * Returns: (nullable) (transfer none): the statistics of the run
 */
RechainRebaseStats *
rechain_rebase_job_get_stats (RechainRebaseJob *job)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  return job->stats;
}

/**
 * rechain_rebase_job_plan:
 * @job: a rebase job
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * The dry run: opens the images and plans the rebase from metadata, without
 * writing anything. Does not run the job; it can still be run afterwards.
 * Blocks: call it from a worker thread in interactive programs.
 *
 * Returns: (transfer full): what the rebase would do, or %NULL with @error
 */
RechainRebaseStats *
rechain_rebase_job_plan (RechainRebaseJob *job, GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  RechainRebaseStats *stats;

  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), NULL);
  stats = run_rebase (job, TRUE, FALSE, cancellable, &ok, error);
  if (!ok)
    g_clear_pointer (&stats, rechain_rebase_stats_unref);
  return stats;
}

/* Confines the backing files of the job's chains to @dirs (the target
 * directories of a storage manager's pools, @name says whose), unless the
 * job trusts the chain. */
void
rechain_rebase_job_set_storage_dirs (RechainRebaseJob *job, const char * const *dirs,
                                     const char *name)
{
  g_return_if_fail (RECHAIN_IS_REBASE_JOB (job));
  g_strfreev (job->storage_dirs);
  job->storage_dirs = g_strdupv ((char **) dirs);
  g_free (job->storage_name);
  job->storage_name = g_strdup (name);
}

gboolean
rechain_rebase_job_use_local_lockspace (RechainRebaseJob *job, GError **error)
{
  g_autofree char *dir = NULL;

  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), FALSE);
  if (!job->leases || job->lockspace_dir != NULL)
    return TRUE;
  if (!rechain_read_libvirt_lock_config (NULL, NULL, &dir, error))
    return FALSE;
  if (dir != NULL)
    {
      job->lockspace_dir = g_steal_pointer (&dir);
      g_object_notify_by_pspec (G_OBJECT (job), props[PROP_LOCKSPACE_DIR]);
    }
  return TRUE;
}
