/* rechain-volume-helper-path.c: the built-in volume helper "path", for
 * plain files: a volume is a path, nobody is known to use it (QEMU's image
 * locks remain the guard), and changes need telling nobody.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "job/rechain-volume-helper-private.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-image.h"
#include "rechain/rechain-volume-helper.h"
#include "rechain/rechain-i18n-private.h"

typedef struct {
  GObject parent_instance;
  char *uri;
} RechainPathVolumeHelper;

typedef struct {
  GObjectClass parent_class;
} RechainPathVolumeHelperClass;

static void path_helper_iface_init (RechainVolumeHelperInterface *iface);

G_DEFINE_TYPE_WITH_CODE (RechainPathVolumeHelper, rechain_path_volume_helper, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (RECHAIN_TYPE_VOLUME_HELPER, path_helper_iface_init))

enum { PROP_0, PROP_URI };

static RechainVolume *
path_resolve (RechainVolumeHelper *helper, const char *pool, const char *name,
              GCancellable *cancellable, GError **error)
{
  if (pool != NULL && *pool != '\0')
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("the \"path\" volume helper knows no pools (pool \"%s\")"), pool);
      return NULL;
    }
  g_autofree char *path = g_canonicalize_filename (name, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("%s: no such file"), path);
      return NULL;
    }
  g_autoptr (RechainImage) image = rechain_image_open (path, NULL,
                                                       RECHAIN_IMAGE_OPEN_FORCE_SHARE |
                                                       RECHAIN_IMAGE_OPEN_NO_BACKING,
                                                       cancellable, error);
  if (image == NULL)
    return NULL;
  return rechain_volume_new (helper, NULL, path, path, rechain_image_get_format (image), path);
}

static GPtrArray *
path_get_users (RechainVolumeHelper *helper, const char *path, GCancellable *cancellable,
                GError **error)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_volume_user_free);
}

static gboolean
path_changed (RechainVolumeHelper *helper, RechainVolume *volume, GCancellable *cancellable,
              GError **error)
{
  return TRUE;
}

static void
path_helper_iface_init (RechainVolumeHelperInterface *iface)
{
  iface->resolve = path_resolve;
  iface->get_users = path_get_users;
  iface->changed = path_changed;
}

static void
path_helper_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  RechainPathVolumeHelper *self = (RechainPathVolumeHelper *) object;
  if (id == PROP_URI)
    self->uri = g_value_dup_string (value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
path_helper_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  RechainPathVolumeHelper *self = (RechainPathVolumeHelper *) object;
  if (id == PROP_URI)
    g_value_set_string (value, self->uri);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
path_helper_finalize (GObject *object)
{
  g_free (((RechainPathVolumeHelper *) object)->uri);
  G_OBJECT_CLASS (rechain_path_volume_helper_parent_class)->finalize (object);
}

static void
rechain_path_volume_helper_class_init (RechainPathVolumeHelperClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->set_property = path_helper_set_property;
  object_class->get_property = path_helper_get_property;
  object_class->finalize = path_helper_finalize;
  g_object_class_override_property (object_class, PROP_URI, "uri");
}

static void
rechain_path_volume_helper_init (RechainPathVolumeHelper *self)
{
}
