/* rechain-image.c: RechainImage, an opened image with its backing chain.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "chain/chain.h"
#include "rechain/rechain-image-private.h"
#include "rechain/rechain-image-info-private.h"
#include "rechain/rechain-keyring-private.h"
#include "rechain/rechain-image.h"

/**
 * RechainImage:
 *
 * An image opened read-only with its backing chain, as `rechain info` and
 * `rechain map` see it: format, sizes, backing file, and the allocation map
 * of the guest-visible content. Images of one chain share the open files:
 * rechain_image_get_backing_image() returns the next one down.
 */

/* The open files of one chain, shared by the RechainImage of each level. */
typedef struct {
  RechainChain *chain;
  RechainKeyring *keyring; /* NULL: no passphrases given */
} SharedChain;

struct _RechainImage {
  GObject parent_instance;
  SharedChain *shared; /* g_rc_box */
  guint index;         /* level of this image in the chain, 0 = top */
  RechainLayer *layer;
  RechainImage *backing; /* created on demand */
};

enum {
  PROP_0,
  PROP_PATH,
  PROP_FORMAT,
  PROP_VIRTUAL_SIZE,
  PROP_BACKING_FILE,
  PROP_BACKING_FORMAT,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_FINAL_TYPE (RechainImage, rechain_image, G_TYPE_OBJECT)

static void
shared_chain_clear (gpointer data)
{
  SharedChain *s = data;
  g_clear_pointer (&s->chain, rechain_chain_free);
  g_clear_object (&s->keyring);
}

static void
rechain_image_finalize (GObject *object)
{
  RechainImage *self = RECHAIN_IMAGE (object);

  g_clear_object (&self->backing);
  if (self->shared)
    g_rc_box_release_full (self->shared, shared_chain_clear);
  G_OBJECT_CLASS (rechain_image_parent_class)->finalize (object);
}

static void
rechain_image_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainImage *self = RECHAIN_IMAGE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, rechain_image_get_path (self));
      break;
    case PROP_FORMAT:
      g_value_set_string (value, rechain_image_get_format (self));
      break;
    case PROP_VIRTUAL_SIZE:
      g_value_set_uint64 (value, rechain_image_get_virtual_size (self));
      break;
    case PROP_BACKING_FILE:
      g_value_set_string (value, rechain_image_get_backing_file (self));
      break;
    case PROP_BACKING_FORMAT:
      g_value_set_string (value, rechain_image_get_backing_format (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_image_class_init (RechainImageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_image_finalize;
  object_class->get_property = rechain_image_get_property;

  /**
   * RechainImage:path:
   *
   * The path of the image file.
   */
  props[PROP_PATH] = g_param_spec_string ("path", NULL, NULL, NULL,
                                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * RechainImage:format:
   *
   * The format of the image: "qcow2" or "raw".
   */
  props[PROP_FORMAT] = g_param_spec_string ("format", NULL, NULL, NULL,
                                            G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * RechainImage:virtual-size:
   *
   * The size of the disk the guest sees, in bytes.
   */
  props[PROP_VIRTUAL_SIZE] = g_param_spec_uint64 ("virtual-size", NULL, NULL, 0, G_MAXUINT64, 0,
                                                  G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * RechainImage:backing-file:
   *
   * The backing file name as the header records it, or %NULL.
   */
  props[PROP_BACKING_FILE] = g_param_spec_string ("backing-file", NULL, NULL, NULL,
                                                  G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * RechainImage:backing-format:
   *
   * The backing file format as the header records it, or %NULL.
   */
  props[PROP_BACKING_FORMAT] = g_param_spec_string ("backing-format", NULL, NULL, NULL,
                                                    G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
rechain_image_init (RechainImage *self)
{
}

static RechainImage *
image_new (SharedChain *shared, guint index)
{
  RechainImage *self = g_object_new (RECHAIN_TYPE_IMAGE, NULL);

  self->shared = g_rc_box_acquire (shared);
  self->index = index;
  self->layer = rechain_chain_get_layer (shared->chain, index);
  return self;
}

/**
 * rechain_image_open:
 * @path: the image file
 * @format: (nullable): its format ("qcow2" or "raw"), or %NULL to probe it
 * @flags: how to open it
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Opens an image read-only with its backing chain (unless
 * %RECHAIN_IMAGE_OPEN_NO_BACKING), validating every header, and taking
 * QEMU-compatible shared locks (unless %RECHAIN_IMAGE_OPEN_FORCE_SHARE), so
 * that an image another process writes is refused with %RECHAIN_ERROR_IN_USE.
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 */
RechainImage *
rechain_image_open (const char *path, const char *format, RechainImageOpenFlags flags,
                    GCancellable *cancellable, GError **error)
{
  return rechain_image_open_full (path, format, flags, NULL, cancellable, error);
}

/**
 * rechain_image_open_full:
 * @path: the image file
 * @format: (nullable): its format, or %NULL to probe it
 * @flags: how to open it
 * @backing_root: (nullable): a directory every backing file must lie in,
 *   once symlinks are resolved, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Like rechain_image_open(), and refuses a backing chain that leads out of
 * @backing_root (%RECHAIN_ERROR_INVALID_IMAGE): for scripts that open images
 * made by untrusted users.
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 */
RechainImage *
rechain_image_open_full (const char *path, const char *format, RechainImageOpenFlags flags,
                         const char *backing_root, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  return rechain_image_open_confined (path, format, flags,
                                      &(RechainChainConfinement) { .backing_root = backing_root },
                                      cancellable, error);
}

/**
 * rechain_image_open_with_keyring:
 * @path: the image file
 * @format: (nullable): its format, or %NULL to probe it
 * @flags: how to open it
 * @backing_root: (nullable): a directory every backing file must lie in,
 *   or %NULL
 * @keyring: (nullable): the passphrases of the encrypted images of the
 *   chain, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Like rechain_image_open_full(), keeping @keyring for the images of the
 * chain that are encrypted. Opening, describing and mapping an encrypted
 * image need no passphrase: only its metadata is read. Reading its data
 * is not supported yet, whatever the keyring holds.
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 *
 * Since: 0.2
 */
RechainImage *
rechain_image_open_with_keyring (const char *path, const char *format, RechainImageOpenFlags flags,
                                 const char *backing_root, RechainKeyring *keyring,
                                 GCancellable *cancellable, GError **error)
{
  RechainImage *image;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (keyring == NULL || RECHAIN_IS_KEYRING (keyring), NULL);
  image = rechain_image_open_full (path, format, flags, backing_root, cancellable, error);
  if (image && keyring)
    image->shared->keyring = g_object_ref (keyring);
  return image;
}

/**
 * rechain_image_get_keyring:
 * @image: an image
 *
 * Returns: (transfer none) (nullable): the keyring the chain was opened
 *   with, or %NULL
 *
 * Since: 0.2
 */
RechainKeyring *
rechain_image_get_keyring (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return image->shared->keyring;
}

/**
 * rechain_image_get_encryption_format:
 * @image: an image
 *
 * How this image (not its backing files) is encrypted, read from its
 * header without any key.
 *
 * Returns: (nullable): "luks", "aes" (legacy qcow2 encryption), or %NULL
 *   when the image is not encrypted
 *
 * Since: 0.2
 */
const char *
rechain_image_get_encryption_format (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_layer_get_encryption_name (image->layer);
}

void
rechain_image_set_keyring (RechainImage *image, RechainKeyring *keyring)
{
  g_return_if_fail (RECHAIN_IS_IMAGE (image));
  g_set_object (&image->shared->keyring, keyring);
}

RechainImage *
rechain_image_open_confined (const char *path, const char *format, RechainImageOpenFlags flags,
                             const RechainChainConfinement *confine, GCancellable *cancellable,
                             GError **error)
{
  RechainChain *chain;
  SharedChain *shared;
  RechainImage *image;
  RechainChainConfinement c = { 0 };

  g_return_val_if_fail (path != NULL, NULL);
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;
  if (confine)
    c = *confine;
  /* A trusted chain is not confined to a storage manager's pools. */
  if (flags & RECHAIN_IMAGE_OPEN_TRUST_CHAIN)
    {
      c.storage_dirs = NULL;
      c.storage_name = NULL;
    }
  chain = rechain_chain_open_full (path, format,
                                   ((flags & RECHAIN_IMAGE_OPEN_FORCE_SHARE) ? RECHAIN_CHAIN_OPEN_FORCE_SHARE : 0) |
                                   ((flags & RECHAIN_IMAGE_OPEN_NO_BACKING) ? RECHAIN_CHAIN_OPEN_NO_BACKING : 0) |
                                   ((flags & RECHAIN_IMAGE_OPEN_TRUST_CHAIN) ? RECHAIN_CHAIN_OPEN_TRUST_NAMES : 0),
                                   RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &c, error);
  if (!chain)
    return NULL;
  shared = g_rc_box_new0 (SharedChain);
  shared->chain = chain;
  image = image_new (shared, 0);
  g_rc_box_release_full (shared, shared_chain_clear);
  return image;
}

typedef struct {
  char *path;
  char *format;
  RechainImageOpenFlags flags;
} OpenData;

static void
open_data_free (OpenData *d)
{
  g_free (d->path);
  g_free (d->format);
  g_free (d);
}

static void
open_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  OpenData *d = task_data;
  GError *error = NULL;
  RechainImage *image = rechain_image_open (d->path, d->format, d->flags, cancellable, &error);

  if (image)
    g_task_return_pointer (task, image, g_object_unref);
  else
    g_task_return_error (task, error);
}

/**
 * rechain_image_open_async:
 * @path: the image file
 * @format: (nullable): its format, or %NULL to probe it
 * @flags: how to open it
 * @io_priority: the I/O priority of the request
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the image is open
 * @user_data: data for @callback
 *
 * Opens an image as rechain_image_open() does, without blocking the caller.
 */
void
rechain_image_open_async (const char *path, const char *format, RechainImageOpenFlags flags,
                          int io_priority, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  OpenData *d = g_new0 (OpenData, 1);

  g_return_if_fail (path != NULL);
  g_task_set_source_tag (task, rechain_image_open_async);
  g_task_set_priority (task, io_priority);
  d->path = g_strdup (path);
  d->format = g_strdup (format);
  d->flags = flags;
  g_task_set_task_data (task, d, (GDestroyNotify) open_data_free);
  /* Opening reads a few headers and tables: short work for GLib's pool. */
  g_task_run_in_thread (task, open_thread);
}

/**
 * rechain_image_open_finish:
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: (transfer full): the image, or %NULL with @error set
 */
RechainImage *
rechain_image_open_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rechain_image_open_async, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rechain_image_get_path:
 * @image: an image
 *
 * Returns: the path of the image file
 */
const char *
rechain_image_get_path (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_layer_get_path (image->layer);
}

/**
 * rechain_image_get_format:
 * @image: an image
 *
 * Returns: "qcow2" or "raw"
 */
const char *
rechain_image_get_format (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_format_to_string (rechain_layer_get_format (image->layer));
}

/**
 * rechain_image_get_virtual_size:
 * @image: an image
 *
 * Returns: the size of the disk the guest sees, in bytes
 */
guint64
rechain_image_get_virtual_size (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), 0);
  return rechain_layer_get_virtual_size (image->layer);
}

/**
 * rechain_image_get_cluster_size:
 * @image: an image
 *
 * Returns: the cluster size of a qcow2 image, 0 for a raw one
 */
guint64
rechain_image_get_cluster_size (RechainImage *image)
{
  const RechainQcow2Header *h;

  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), 0);
  h = rechain_layer_get_qcow2_header (image->layer);
  return h ? rechain_qcow2_cluster_size (h) : 0;
}

/**
 * rechain_image_get_backing_file:
 * @image: an image
 *
 * Returns: (nullable): the backing file name as the header records it
 */
const char *
rechain_image_get_backing_file (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_layer_get_backing_name (image->layer);
}

/**
 * rechain_image_get_backing_format:
 * @image: an image
 *
 * Returns: (nullable): the backing format as the header records it
 */
const char *
rechain_image_get_backing_format (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_layer_get_backing_format (image->layer);
}

/**
 * rechain_image_get_chain_length:
 * @image: an image
 *
 * Returns: the number of images from @image to the bottom of the chain
 *   that is open (1 when opened with %RECHAIN_IMAGE_OPEN_NO_BACKING)
 */
guint
rechain_image_get_chain_length (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), 0);
  return rechain_chain_get_depth (image->shared->chain) - image->index;
}

/**
 * rechain_image_get_backing_image:
 * @image: an image
 *
 * Returns: (transfer none) (nullable): the backing file of @image, opened
 *   with it, or %NULL at the bottom of the chain (or when backing files
 *   were not opened)
 */
RechainImage *
rechain_image_get_backing_image (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  if (image->index + 1 >= rechain_chain_get_depth (image->shared->chain))
    return NULL;
  if (!image->backing)
    image->backing = image_new (image->shared, image->index + 1);
  return image->backing;
}

/**
 * rechain_image_get_warnings:
 * @image: an image
 *
 * Returns: (transfer none) (array zero-terminated=1): warnings of the
 *   opening of the chain, such as a backing format that had to be probed
 */
const char * const *
rechain_image_get_warnings (RechainImage *image)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_chain_get_warnings (image->shared->chain);
}

/**
 * rechain_image_get_extents:
 * @image: an image
 * @offset: guest offset of the first byte
 * @length: bytes to map; @offset + @length must not exceed the virtual size
 * @error: return location for an error
 *
 * Maps a range of the guest-visible content: for each region, whether it
 * holds data, zeros or nothing, and which image of the chain holds it.
 * Cost follows the allocated metadata, not the size of the range.
 *
 * The array owns its elements: g_ptr_array_unref() frees them too.
 *
 * Returns: (transfer container) (element-type RechainExtent): the extents
 */
GPtrArray *
rechain_image_get_extents (RechainImage *image, guint64 offset, guint64 length, GError **error)
{
  g_autoptr(GArray) extents = rechain_extent_list_new ();
  GPtrArray *out;

  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  if (!rechain_chain_map (image->shared->chain, image->index, offset, length, extents, error))
    return NULL;
  out = g_ptr_array_new_full (extents->len, (GDestroyNotify) rechain_extent_free);
  for (guint i = 0; i < extents->len; i++)
    {
      RechainExtent *e = rechain_extent_copy (&g_array_index (extents, RechainExtent, i));
      /* depths relative to this image */
      e->depth -= (gint) image->index;
      g_ptr_array_add (out, e);
    }
  return out;
}

/**
 * rechain_image_get_info:
 * @image: an image
 * @error: return location for an error
 *
 * Describes the image as `rechain info` and `qemu-img info` do: format,
 * sizes, backing file, qcow2 features, internal snapshots and bitmaps.
 * Reads the snapshot table and the bitmap directory, which fails on a
 * damaged image. For the images below, call it on
 * rechain_image_get_backing_image().
 *
 * Returns: (transfer full): the information, or %NULL with @error set
 *
 * Since: 0.2
 */
RechainImageInfo *
rechain_image_get_info (RechainImage *image, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  return rechain_image_info_new_for_layer (image->layer, error);
}

/**
 * rechain_image_get_info_json:
 * @image: an image
 * @backing_chain: describe every image of the chain (a JSON array, this
 *   image first) rather than this one (a JSON object)
 * @error: return location for an error
 *
 * Describes the image as `qemu-img info --output=json` does, with the same
 * keys, so that scripts can switch tools: rechain_image_get_info() then
 * rechain_image_info_to_json() for each image described.
 *
 * Returns: (transfer full): the JSON text, or %NULL with @error set
 */
char *
rechain_image_get_info_json (RechainImage *image, gboolean backing_chain, GError **error)
{
  g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  g_return_val_if_fail (RECHAIN_IS_IMAGE (image), NULL);
  for (RechainImage *i = image; i; i = backing_chain ? rechain_image_get_backing_image (i) : NULL)
    {
      RechainImageInfo *info = rechain_image_get_info (i, error);
      if (!info)
        return NULL;
      g_ptr_array_add (infos, info);
    }
  if (!backing_chain)
    return rechain_image_info_to_json (g_ptr_array_index (infos, 0));

  json_builder_begin_array (builder);
  for (guint i = 0; i < infos->len; i++)
    rechain_image_info_build_json (g_ptr_array_index (infos, i), builder);
  json_builder_end_array (builder);
  root = json_builder_get_root (builder);
  return rechain_image_info_json_to_data (root);
}
