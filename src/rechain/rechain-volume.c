/* rechain-volume.c: RechainVolume, an image as a storage manager knows it,
 * and rebasing a volume with its helper's in-use check, confinement and
 * the storage manager's keys of its encrypted images before and its change
 * notification after.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <sys/stat.h>

#include "rechain/rechain-image-private.h"
#include "rechain/rechain-rebase-job-private.h"
#include "rechain/rechain-volume-helper-private.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-util.h"
#include "rechain/rechain-volume-helper.h"
#include "rechain/rechain-i18n-private.h"

/* ---- RechainVolume ---- */

/**
 * RechainVolume:
 *
 * A resolved volume reference: the helper that knows it, its pool and
 * name, the path and format of its image, and the name to record in an
 * image header that uses it as a backing file.
 */
struct _RechainVolume {
  GObject parent_instance;
  RechainVolumeHelper *helper;
  char *pool;
  char *name;
  char *path;
  char *format;
  char *backing_name;
};

enum {
  VOL_PROP_0,
  VOL_PROP_HELPER,
  VOL_PROP_POOL,
  VOL_PROP_NAME,
  VOL_PROP_PATH,
  VOL_PROP_FORMAT,
  VOL_PROP_BACKING_NAME,
  VOL_N_PROPS
};
static GParamSpec *vol_props[VOL_N_PROPS];

G_DEFINE_FINAL_TYPE (RechainVolume, rechain_volume, G_TYPE_OBJECT)

static void
rechain_volume_finalize (GObject *object)
{
  RechainVolume *self = RECHAIN_VOLUME (object);
  g_clear_object (&self->helper);
  g_free (self->pool);
  g_free (self->name);
  g_free (self->path);
  g_free (self->format);
  g_free (self->backing_name);
  G_OBJECT_CLASS (rechain_volume_parent_class)->finalize (object);
}

static void
rechain_volume_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  RechainVolume *self = RECHAIN_VOLUME (object);
  switch (id)
    {
    case VOL_PROP_HELPER: self->helper = g_value_dup_object (value); break;
    case VOL_PROP_POOL: self->pool = g_value_dup_string (value); break;
    case VOL_PROP_NAME: self->name = g_value_dup_string (value); break;
    case VOL_PROP_PATH: self->path = g_value_dup_string (value); break;
    case VOL_PROP_FORMAT: self->format = g_value_dup_string (value); break;
    case VOL_PROP_BACKING_NAME: self->backing_name = g_value_dup_string (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
rechain_volume_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  RechainVolume *self = RECHAIN_VOLUME (object);
  switch (id)
    {
    case VOL_PROP_HELPER: g_value_set_object (value, self->helper); break;
    case VOL_PROP_POOL: g_value_set_string (value, self->pool); break;
    case VOL_PROP_NAME: g_value_set_string (value, self->name); break;
    case VOL_PROP_PATH: g_value_set_string (value, self->path); break;
    case VOL_PROP_FORMAT: g_value_set_string (value, self->format); break;
    case VOL_PROP_BACKING_NAME: g_value_set_string (value, rechain_volume_get_backing_name (self)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
    }
}

static void
rechain_volume_class_init (RechainVolumeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = rechain_volume_finalize;
  object_class->set_property = rechain_volume_set_property;
  object_class->get_property = rechain_volume_get_property;

  /**
   * RechainVolume:helper:
   *
   * The helper that resolved the volume.
   */
  vol_props[VOL_PROP_HELPER] = g_param_spec_object ("helper", NULL, NULL,
                                                    RECHAIN_TYPE_VOLUME_HELPER, flags);
  /**
   * RechainVolume:pool:
   *
   * The pool that holds the volume, or %NULL (a file outside the pools).
   */
  vol_props[VOL_PROP_POOL] = g_param_spec_string ("pool", NULL, NULL, NULL, flags);
  /**
   * RechainVolume:name:
   *
   * The volume's name in its pool (for a plain file, its path).
   */
  vol_props[VOL_PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL, flags);
  /**
   * RechainVolume:path:
   *
   * The absolute path of the volume's image.
   */
  vol_props[VOL_PROP_PATH] = g_param_spec_string ("path", NULL, NULL, NULL, flags);
  /**
   * RechainVolume:format:
   *
   * The format of the image ("qcow2", "raw"), or %NULL if unknown.
   */
  vol_props[VOL_PROP_FORMAT] = g_param_spec_string ("format", NULL, NULL, NULL, flags);
  /**
   * RechainVolume:backing-name:
   *
   * The name to record in an image header that has this volume as its
   * backing file: what the storage manager itself records (for libvirt
   * pools of local storage, the absolute path). Defaults to the path.
   */
  vol_props[VOL_PROP_BACKING_NAME] = g_param_spec_string ("backing-name", NULL, NULL, NULL, flags);
  g_object_class_install_properties (object_class, VOL_N_PROPS, vol_props);
}

static void
rechain_volume_init (RechainVolume *self)
{
}

/**
 * rechain_volume_new:
 * @helper: the helper that resolved the volume
 * @pool: (nullable): its pool, or %NULL
 * @name: (nullable): its name in @pool, or %NULL for @path
 * @path: the absolute path of its image
 * @format: (nullable): the image format, or %NULL if unknown
 * @backing_name: (nullable): the name to record as a backing file, or
 *   %NULL for @path
 *
 * Makes a volume; for implementations of #RechainVolumeHelper.
 *
 * Returns: (transfer full): a new #RechainVolume
 */
RechainVolume *
rechain_volume_new (RechainVolumeHelper *helper, const char *pool, const char *name,
                    const char *path, const char *format, const char *backing_name)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  return g_object_new (RECHAIN_TYPE_VOLUME, "helper", helper, "pool", pool,
                       "name", name ? name : path, "path", path, "format", format,
                       "backing-name", backing_name, NULL);
}

/**
 * rechain_volume_resolve:
 * @helper_name: the helper: "libvirt", "path", ...
 * @uri: (nullable): the helper's connection URI, or %NULL for its default
 * @pool: (nullable): the pool, or %NULL where @name is a path
 * @name: the volume's name in @pool, or a path
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * rechain_volume_helper_lookup() then rechain_volume_helper_resolve(): the
 * volume keeps the helper (rechain_volume_get_helper()), for resolving
 * more names of the same pool (a new backing volume) with the same
 * connection.
 *
 * Returns: (transfer full): the volume, or %NULL on error
 */
RechainVolume *
rechain_volume_resolve (const char *helper_name, const char *uri, const char *pool,
                        const char *name, GCancellable *cancellable, GError **error)
{
  g_autoptr (RechainVolumeHelper) helper = rechain_volume_helper_lookup (helper_name, uri,
                                                                         cancellable, error);
  if (helper == NULL)
    return NULL;
  return rechain_volume_helper_resolve (helper, pool, name, cancellable, error);
}

/**
 * rechain_volume_get_helper:
 * @volume: a volume
 *
 * Returns: (transfer none): the helper that resolved @volume
 */
RechainVolumeHelper *
rechain_volume_get_helper (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->helper;
}

/**
 * rechain_volume_get_pool:
 * @volume: a volume
 *
 * Returns: (nullable): the pool of @volume, or %NULL
 */
const char *
rechain_volume_get_pool (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->pool;
}

/**
 * rechain_volume_get_name:
 * @volume: a volume
 *
 * Returns: the name of @volume in its pool (its path if it has none)
 */
const char *
rechain_volume_get_name (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->name;
}

/**
 * rechain_volume_get_path:
 * @volume: a volume
 *
 * Returns: the absolute path of the image of @volume
 */
const char *
rechain_volume_get_path (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->path;
}

/**
 * rechain_volume_get_format:
 * @volume: a volume
 *
 * Returns: (nullable): the format of the image of @volume, or %NULL
 */
const char *
rechain_volume_get_format (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->format;
}

/**
 * rechain_volume_get_backing_name:
 * @volume: a volume
 *
 * Returns: the name to record in a header that has @volume as its backing
 *   file (see #RechainVolume:backing-name)
 */
const char *
rechain_volume_get_backing_name (RechainVolume *volume)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  return volume->backing_name ? volume->backing_name : volume->path;
}

/* Names the volume in a refusal (RECHAIN_ERROR_NOT_PERMITTED) of a file
 * that its chain names: "volume 'VOL' of pool 'POOL': ...". */
static void
prefix_volume_error (RechainVolume *volume, GError **error)
{
  if (error != NULL && *error != NULL && volume->pool != NULL && volume->name != NULL
      && g_error_matches (*error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED))
    g_prefix_error (error, _("volume '%s' of pool '%s': "), volume->name, volume->pool);
}

/* ---- the storage manager's keys ---- */

/* For every LUKS-encrypted image of the chain of @path (its headers only,
 * read without locks, the chain confined by @confine as the real open
 * confines it) that @keyring has no passphrase for (of its own or a
 * default: the caller's keys win), adds the one @helper's storage manager
 * keeps. With @open_errors FALSE a chain that cannot be opened gets no
 * keys and no error: the open or the job that follows reports why, once. */
static gboolean
add_chain_keys (RechainVolumeHelper *helper, const char *path, const char *format,
                RechainImageOpenFlags flags, const RechainChainConfinement *confine,
                RechainKeyring *keyring, gboolean open_errors, GCancellable *cancellable,
                GError **error)
{
  GError *local = NULL;
  flags = (flags & (RECHAIN_IMAGE_OPEN_TRUST_CHAIN | RECHAIN_IMAGE_OPEN_NO_BACKING))
          | RECHAIN_IMAGE_OPEN_FORCE_SHARE;
  g_autoptr (RechainImage) top = rechain_image_open_confined (path, format, flags, confine,
                                                              cancellable, &local);
  if (top == NULL)
    {
      if (open_errors || g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_propagate_error (error, local);
          return FALSE;
        }
      g_debug ("no keys looked up for the chain of %s: %s", path, local->message);
      g_error_free (local);
      return TRUE;
    }
  for (RechainImage *i = top; i != NULL; i = rechain_image_get_backing_image (i))
    {
      const char *p = rechain_image_get_path (i);
      /* Legacy AES images are refused for their data whatever the key:
       * their message (convert to LUKS) is the useful one. */
      if (g_strcmp0 (rechain_image_get_encryption_format (i), "luks") != 0
          || rechain_keyring_has_passphrase (keyring, p))
        continue;
      if (!rechain_volume_helper_add_keys (helper, p, keyring, cancellable, error))
        return FALSE;
    }
  return TRUE;
}

/**
 * rechain_volume_add_keys:
 * @volume: a volume
 * @keyring: the keyring to add the passphrases to
 * @flags: how the chain is opened to find its images: with
 *   %RECHAIN_IMAGE_OPEN_TRUST_CHAIN not confined to the storage
 *   manager's directories, with %RECHAIN_IMAGE_OPEN_NO_BACKING the
 *   volume's image only; other flags are ignored (the headers are read
 *   without locks)
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Adds to @keyring the passphrases that the storage manager of @volume
 * keeps for the LUKS-encrypted images of its chain: the volume's image and
 * each backing file that is one of its volumes
 * (rechain_volume_helper_add_keys(); for "libvirt", from its secret
 * driver). An image for which @keyring already has a passphrase, its own
 * or the default one, is left as it is, so keys the caller gave take
 * precedence.
 *
 * Returns: %TRUE, or %FALSE with @error set: the chain cannot be opened,
 *   or a key the storage manager should have cannot be had (see
 *   rechain_volume_helper_add_keys())
 *
 * Since: 0.2
 */
gboolean
rechain_volume_add_keys (RechainVolume *volume, RechainKeyring *keyring,
                         RechainImageOpenFlags flags, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), FALSE);
  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), FALSE);
  g_auto (GStrv) dirs = NULL;
  g_autofree char *name = NULL;
  if (!(flags & RECHAIN_IMAGE_OPEN_TRUST_CHAIN)
      && !rechain_volume_helper_storage_confinement (volume->helper, &dirs, &name, cancellable, error))
    return FALSE;
  RechainChainConfinement confine = {
    .storage_dirs = (const char * const *) dirs,
    .storage_name = name,
  };
  GError *local = NULL;
  if (!add_chain_keys (volume->helper, volume->path, volume->format, flags, &confine, keyring, TRUE,
                       cancellable, &local))
    {
      prefix_volume_error (volume, &local);
      g_propagate_error (error, local);
      return FALSE;
    }
  return TRUE;
}

/**
 * rechain_volume_open_image:
 * @volume: a volume
 * @format: (nullable): the format of its image, or %NULL for the volume's
 *   (probed if the volume has none)
 * @flags: how to open it
 * @backing_root: (nullable): a directory every backing file must lie in as
 *   well (see rechain_image_open_full()), or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * rechain_volume_open_image_with_keyring() with no keyring of the
 * caller's: the image keeps a new one, with the storage manager's keys.
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 *
 * Since: 0.2
 */
RechainImage *
rechain_volume_open_image (RechainVolume *volume, const char *format, RechainImageOpenFlags flags,
                           const char *backing_root, GCancellable *cancellable, GError **error)
{
  return rechain_volume_open_image_with_keyring (volume, format, flags, backing_root, NULL,
                                                 cancellable, error);
}

/**
 * rechain_volume_open_image_with_keyring:
 * @volume: a volume
 * @format: (nullable): the format of its image, or %NULL for the volume's
 *   (probed if the volume has none)
 * @flags: how to open it
 * @backing_root: (nullable): a directory every backing file must lie in as
 *   well (see rechain_image_open_full()), or %NULL
 * @keyring: (nullable): the caller's passphrases (they take precedence),
 *   to which the storage manager's are added; %NULL: a new keyring
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Opens the image of @volume as rechain_image_open_with_keyring() does,
 * with its backing chain confined to the directories where the volume's
 * storage manager keeps its volumes (rechain_volume_helper_get_storage_dirs()),
 * unless @flags has %RECHAIN_IMAGE_OPEN_TRUST_CHAIN: a backing file that
 * resolves outside them is refused with %RECHAIN_ERROR_NOT_PERMITTED, the
 * message naming the volume, its pool and the path.
 *
 * The image keeps @keyring, with the storage manager's passphrases of the
 * LUKS-encrypted images of the chain added for those it had none for (as
 * rechain_volume_add_keys() adds them). Opening, describing and mapping an
 * image need no key, so a key the storage manager cannot give (an unknown
 * secret, one without a value) does not fail the open: it is left out, and
 * only what would need it would report it.
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 *
 * Since: 0.2
 */
RechainImage *
rechain_volume_open_image_with_keyring (RechainVolume *volume, const char *format,
                                        RechainImageOpenFlags flags, const char *backing_root,
                                        RechainKeyring *keyring, GCancellable *cancellable,
                                        GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  g_return_val_if_fail (keyring == NULL || RECHAIN_IS_KEYRING (keyring), NULL);
  g_auto (GStrv) dirs = NULL;
  g_autofree char *name = NULL;
  if (!(flags & RECHAIN_IMAGE_OPEN_TRUST_CHAIN)
      && !rechain_volume_helper_storage_confinement (volume->helper, &dirs, &name, cancellable, error))
    return NULL;
  RechainChainConfinement confine = {
    .backing_root = backing_root,
    .storage_dirs = (const char * const *) dirs,
    .storage_name = name,
  };
  g_autoptr (RechainKeyring) keys = keyring ? g_object_ref (keyring) : rechain_keyring_new ();
  g_autoptr (GError) key_error = NULL;
  if (!add_chain_keys (volume->helper, volume->path, format ? format : volume->format, flags,
                       &confine, keys, FALSE, cancellable, &key_error))
    {
      if (g_error_matches (key_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_propagate_error (error, g_steal_pointer (&key_error));
          return NULL;
        }
      g_debug ("%s: %s", volume->path, key_error->message);
    }
  GError *local = NULL;
  RechainImage *image = rechain_image_open_confined (volume->path, format ? format : volume->format,
                                                     flags, &confine, cancellable, &local);
  if (image == NULL)
    {
      prefix_volume_error (volume, &local);
      g_propagate_error (error, local);
      return NULL;
    }
  rechain_image_set_keyring (image, keys);
  return image;
}

/**
 * rechain_volume_new_rebase_job:
 * @volume: the volume to rebase
 * @backing: (nullable): the new backing volume, or %NULL for none
 * @backing_name: (nullable): the name to record instead of the backing
 *   name of @backing (`--backing-name`), or %NULL
 * @mode: safe or unsafe
 *
 * Makes a job that moves @volume onto @backing, recording the backing name
 * and format of @backing. The job has an empty keyring
 * (#RechainRebaseJob:keyring), which rechain_volume_rebase_sync() fills
 * with the storage manager's keys. Jobs with more options are made with
 * g_object_new() from rechain_volume_get_path(),
 * rechain_volume_get_format(), and the backing's
 * rechain_volume_get_backing_name() and rechain_volume_get_format(); give
 * them a keyring (rechain_keyring_new(), or one holding your own keys) for
 * the storage manager's keys to be added to.
 *
 * Returns: (transfer full): a new job, to run with rechain_volume_rebase_sync()
 *   or rechain_volume_rebase_async()
 */
RechainRebaseJob *
rechain_volume_new_rebase_job (RechainVolume *volume, RechainVolume *backing,
                               const char *backing_name, RechainRebaseMode mode)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), NULL);
  g_return_val_if_fail (backing == NULL || RECHAIN_IS_VOLUME (backing), NULL);
  const char *name = backing_name ? backing_name
                     : backing ? rechain_volume_get_backing_name (backing) : "";
  g_autoptr (RechainKeyring) keyring = rechain_keyring_new ();
  return g_object_new (RECHAIN_TYPE_REBASE_JOB,
                       "image", volume->path,
                       "format", volume->format,
                       "backing-file", name,
                       "backing-format", backing ? backing->format : NULL,
                       "keyring", keyring,
                       "mode", mode, NULL);
}

/* ---- rebasing a volume ---- */

static gboolean
same_file (const char *a, const char *b)
{
  struct stat sa, sb;
  if (g_strcmp0 (a, b) == 0)
    return TRUE;
  return stat (a, &sa) == 0 && stat (b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static char *
absolute_path (const char *path)
{
  return g_canonicalize_filename (path, NULL);
}

/* The images the job writes: its image, then its linked images. */
static GPtrArray *
job_images (RechainRebaseJob *job)
{
  GPtrArray *images = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (images, absolute_path (rechain_block_job_get_image (RECHAIN_BLOCK_JOB (job))));
  const char * const *linked = rechain_rebase_job_get_linked_images (job);
  for (; linked != NULL && *linked != NULL; linked++)
    g_ptr_array_add (images, absolute_path (*linked));
  return images;
}

static gboolean
job_is_dry_run (RechainRebaseJob *job)
{
  gboolean dry_run = FALSE;
  g_object_get (job, "dry-run", &dry_run, NULL);
  return dry_run;
}

/* The storage manager's keys of the encrypted images a safe rebase reads
 * or writes: each image of the job with its (old) chain, and the new
 * backing chain; before anything is written, so that a key it cannot give
 * fails the rebase with the image untouched. An unsafe rebase needs no
 * key (it rewrites the header only) and asks for none. RechainFleet
 * calls it too, with the helper of its first volume. */
gboolean
rechain_volume_add_job_keys (RechainVolume *volume, RechainRebaseJob *job, gboolean trust_chain,
                             const RechainChainConfinement *confine, GCancellable *cancellable,
                             GError **error)
{
  RechainKeyring *keyring = rechain_rebase_job_get_keyring (job);
  RechainRebaseMode mode = RECHAIN_REBASE_MODE_SAFE;
  g_autofree char *format = NULL;
  g_autofree char *backing_root = NULL;
  g_object_get (job, "mode", &mode, "format", &format, "backing-root", &backing_root, NULL);
  if (keyring == NULL || mode != RECHAIN_REBASE_MODE_SAFE)
    return TRUE;
  /* no header read where the job would not read one */
  RechainChainConfinement c = *confine;
  c.backing_root = backing_root;
  confine = &c;
  RechainImageOpenFlags flags = trust_chain ? RECHAIN_IMAGE_OPEN_TRUST_CHAIN : 0;
  g_autoptr (GPtrArray) images = job_images (job);
  for (guint i = 0; i < images->len; i++)
    if (!add_chain_keys (volume->helper, g_ptr_array_index (images, i), i == 0 ? format : NULL,
                         flags, confine, keyring, FALSE, cancellable, error))
      return FALSE;
  const char *backing = rechain_rebase_job_get_backing_file (job);
  if (backing == NULL || *backing == '\0')
    return TRUE;
  /* The new backing file as the job opens it: its name in the header,
   * relative to the image. A name that does not resolve to a local file
   * gets no keys; the job refuses it. */
  g_autoptr (GError) local = NULL;
  g_autofree char *path = rechain_resolve_backing_name (g_ptr_array_index (images, 0), backing, &local);
  if (path == NULL)
    return TRUE;
  return add_chain_keys (volume->helper, path, rechain_rebase_job_get_backing_format (job), flags,
                         confine, keyring, FALSE, cancellable, error);
}

static gboolean
check_before (RechainVolume *volume, RechainRebaseJob *job, RechainVolumeRebaseFlags flags,
              GPtrArray *warnings, GCancellable *cancellable, GError **error)
{
  const char *image = rechain_block_job_get_image (RECHAIN_BLOCK_JOB (job));
  if (image == NULL || !same_file (image, volume->path))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("the job's image %s is not the volume's image %s"), image ? image : _("(none)"),
                   volume->path);
      return FALSE;
    }
  if (!rechain_rebase_job_use_local_lockspace (job, error))
    return FALSE;
  /* The chains stay in the storage manager's pools, unless trusted. */
  gboolean trust_chain = FALSE;
  g_object_get (job, "trust-chain", &trust_chain, NULL);
  g_auto (GStrv) dirs = NULL;
  g_autofree char *name = NULL;
  if (!trust_chain)
    {
      if (!rechain_volume_helper_storage_confinement (volume->helper, &dirs, &name, cancellable, error))
        return FALSE;
      if (dirs != NULL)
        rechain_rebase_job_set_storage_dirs (job, (const char * const *) dirs, name);
    }
  RechainChainConfinement confine = {
    .storage_dirs = (const char * const *) dirs,
    .storage_name = name,
  };
  g_autoptr (GPtrArray) images = job_images (job);
  for (guint i = 0; !(flags & RECHAIN_VOLUME_REBASE_NO_CHECK) && i < images->len; i++)
    {
      g_auto (GStrv) w = NULL;
      if (!rechain_volume_helper_check_in_use (volume->helper, g_ptr_array_index (images, i),
                                               (flags & RECHAIN_VOLUME_REBASE_STRICT) != 0, &w,
                                               cancellable, error))
        return FALSE;
      for (char **s = w; s && *s; s++)
        g_ptr_array_add (warnings, g_strdup (*s));
    }
  /* Last: no secret is fetched for a rebase refused anyway. */
  return rechain_volume_add_job_keys (volume, job, trust_chain, &confine, cancellable, error);
}

static void
notify_after (RechainVolume *volume, RechainRebaseJob *job, GPtrArray *warnings,
              GCancellable *cancellable)
{
  if (job_is_dry_run (job))
    return;
  g_autoptr (GPtrArray) images = job_images (job);
  for (guint i = 0; i < images->len; i++)
    {
      g_autoptr (GError) error = NULL;
      const char *path = g_ptr_array_index (images, i);
      g_autoptr (RechainVolume) v = i == 0 ? g_object_ref (volume)
                                    : rechain_volume_new (volume->helper, NULL, NULL, path, NULL, NULL);
      if (!rechain_volume_helper_changed (volume->helper, v, NULL, &error))
        g_ptr_array_add (warnings, g_strdup_printf (_("%s was changed, but telling %s failed: %s"),
                                                    path, rechain_volume_helper_get_name (volume->helper),
                                                    error->message));
    }
}

static char **
take_strv (GPtrArray *array)
{
  g_ptr_array_add (array, NULL);
  return (char **) g_ptr_array_free (array, FALSE);
}

/**
 * rechain_volume_rebase_sync:
 * @volume: the volume to rebase
 * @job: a job whose image is the image of @volume (made with
 *   rechain_volume_new_rebase_job(), or g_object_new() for more options)
 * @flags: how strict the in-use check is
 * @warnings: (out) (optional) (transfer full) (array zero-terminated=1):
 *   where to store the warnings (inactive domains that reference an image,
 *   a failed change notification), or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Rebases a volume as a good citizen of its storage manager: refuses with
 * %RECHAIN_ERROR_IN_USE, before writing anything, when an active domain
 * uses the job's image or one of its linked images (directly or through a
 * backing chain) — with %RECHAIN_VOLUME_REBASE_STRICT also when an
 * inactive domain references one; runs @job on the calling thread; then
 * tells the helper the images changed (unless the job is a dry run).
 *
 * Unless the job's #RechainRebaseJob:trust-chain is set, the backing
 * chains the job opens (old and new) are confined to the directories of
 * the storage manager's pools (rechain_volume_helper_get_storage_dirs()):
 * a backing file outside them is refused, before anything is written,
 * with %RECHAIN_ERROR_NOT_PERMITTED naming the volume and the path. This
 * holds with %RECHAIN_VOLUME_REBASE_NO_CHECK too.
 *
 * For a safe rebase, when the job has a keyring (#RechainRebaseJob:keyring;
 * the jobs of rechain_volume_new_rebase_job() have one), the storage
 * manager's keys of the LUKS-encrypted images the job reads or writes (its
 * image and linked images with their chains, and the new backing chain)
 * are added to it, after the in-use check and before anything is written,
 * for each image the keyring has no passphrase for (its own or a default:
 * keys the caller gave win). A key the storage manager should give but
 * cannot fails the rebase (see rechain_volume_helper_add_keys()). An
 * unsafe rebase needs no key: none is asked for.
 *
 * Returns: %TRUE on success
 */
gboolean
rechain_volume_rebase_sync (RechainVolume *volume, RechainRebaseJob *job,
                            RechainVolumeRebaseFlags flags, char ***warnings,
                            GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), FALSE);
  g_return_val_if_fail (RECHAIN_IS_REBASE_JOB (job), FALSE);

  g_autoptr (GPtrArray) w = g_ptr_array_new_with_free_func (g_free);
  GError *local = NULL;
  gboolean ok = check_before (volume, job, flags, w, cancellable, &local)
                && rechain_block_job_run_sync (RECHAIN_BLOCK_JOB (job), cancellable, &local);
  if (!ok)
    {
      prefix_volume_error (volume, &local);
      g_propagate_error (error, local);
    }
  if (ok)
    notify_after (volume, job, w, cancellable);
  if (warnings != NULL)
    *warnings = take_strv (g_steal_pointer (&w));
  return ok;
}

typedef struct {
  RechainRebaseJob *job;
  RechainVolumeRebaseFlags flags;
  int io_priority;
  GPtrArray *warnings;
} RebaseData;

static void
rebase_data_free (gpointer p)
{
  RebaseData *d = p;
  g_clear_object (&d->job);
  g_clear_pointer (&d->warnings, g_ptr_array_unref);
  g_free (d);
}

static void
check_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RebaseData *d = task_data;
  GError *error = NULL;
  if (check_before (source, d->job, d->flags, d->warnings, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
notify_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RebaseData *d = task_data;
  notify_after (source, d->job, d->warnings, cancellable);
  g_task_return_boolean (task, TRUE);
}

static void
notified (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_task_return_boolean (task, TRUE);
}

static void
job_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  if (!rechain_block_job_run_finish (RECHAIN_BLOCK_JOB (source), result, &error))
    {
      prefix_volume_error (g_task_get_source_object (task), &error);
      g_task_return_error (task, error);
      return;
    }
  /* Notifications may talk to a daemon: off the caller's thread. */
  GTask *sub = g_task_new (g_task_get_source_object (task), NULL, notified, g_object_ref (task));
  g_task_set_task_data (sub, g_task_get_task_data (task), NULL);
  g_task_run_in_thread (sub, notify_thread);
  g_object_unref (sub);
}

static void
checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_task_return_error (task, error);
      return;
    }
  RebaseData *d = g_task_get_task_data (task);
  rechain_block_job_run_async (RECHAIN_BLOCK_JOB (d->job), d->io_priority,
                               g_task_get_cancellable (task), job_done, g_object_ref (task));
}

/**
 * rechain_volume_rebase_async:
 * @volume: the volume to rebase
 * @job: a job whose image is the image of @volume
 * @flags: how strict the in-use check is
 * @io_priority: the I/O priority of the job
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when done
 * @user_data: data for @callback
 *
 * rechain_volume_rebase_sync() without blocking: the in-use check and the
 * notification run on worker threads, the job with
 * rechain_block_job_run_async() (so its progress is notified in the
 * thread-default main context of the caller).
 */
void
rechain_volume_rebase_async (RechainVolume *volume, RechainRebaseJob *job,
                             RechainVolumeRebaseFlags flags, int io_priority,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_return_if_fail (RECHAIN_IS_VOLUME (volume));
  g_return_if_fail (RECHAIN_IS_REBASE_JOB (job));

  GTask *task = g_task_new (volume, cancellable, callback, user_data);
  g_task_set_source_tag (task, rechain_volume_rebase_async);
  RebaseData *d = g_new0 (RebaseData, 1);
  d->job = g_object_ref (job);
  d->flags = flags;
  d->io_priority = io_priority;
  d->warnings = g_ptr_array_new_with_free_func (g_free);
  g_task_set_task_data (task, d, rebase_data_free);

  GTask *sub = g_task_new (volume, cancellable, checked, task);
  g_task_set_task_data (sub, d, NULL);
  g_task_set_priority (sub, io_priority);
  g_task_run_in_thread (sub, check_thread);
  g_object_unref (sub);
}

/**
 * rechain_volume_rebase_finish:
 * @volume: the volume
 * @result: the result given to the callback
 * @warnings: (out) (optional) (transfer full) (array zero-terminated=1):
 *   where to store the warnings, or %NULL
 * @error: return location for an error
 *
 * Returns: %TRUE on success
 */
gboolean
rechain_volume_rebase_finish (RechainVolume *volume, GAsyncResult *result, char ***warnings,
                              GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, volume), FALSE);
  RebaseData *d = g_task_get_task_data (G_TASK (result));
  if (warnings != NULL)
    {
      g_ptr_array_add (d->warnings, NULL);
      *warnings = g_strdupv ((char **) d->warnings->pdata);
      g_ptr_array_remove_index (d->warnings, d->warnings->len - 1);
    }
  return g_task_propagate_boolean (G_TASK (result), error);
}
