/* rechain-volume-helper.c: the rechain-volume-helper extension point and
 * the modules that implement it, the helpers' interface, and what a helper
 * knows: who uses an image, where its volumes live (RechainVolume, and
 * rebasing one, is rechain-volume.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <sys/stat.h>

#include "rechain-module-dir.h"
#include "rechain/rechain-volume-helper-private.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-volume-helper.h"
#include "rechain/rechain-i18n-private.h"

/* ---- RechainVolumeUser ---- */

/**
 * rechain_volume_user_new:
 * @domain: the name of the user (a domain)
 * @disk: (nullable): the disk, or %NULL
 * @source: the image the disk opens
 * @active: whether @domain is running or paused
 *
 * Returns: (transfer full): a new #RechainVolumeUser
 */
RechainVolumeUser *
rechain_volume_user_new (const char *domain, const char *disk, const char *source, gboolean active)
{
  RechainVolumeUser *user = g_new0 (RechainVolumeUser, 1);
  user->domain = g_strdup (domain);
  user->disk = g_strdup (disk);
  user->source = g_strdup (source);
  user->active = active;
  return user;
}

/**
 * rechain_volume_user_copy:
 * @user: a user
 *
 * Returns: (transfer full): a copy of @user
 */
RechainVolumeUser *
rechain_volume_user_copy (const RechainVolumeUser *user)
{
  return rechain_volume_user_new (user->domain, user->disk, user->source, user->active);
}

/**
 * rechain_volume_user_free:
 * @user: a user
 *
 * Frees @user.
 */
void
rechain_volume_user_free (RechainVolumeUser *user)
{
  if (user == NULL)
    return;
  g_free (user->domain);
  g_free (user->disk);
  g_free (user->source);
  g_free (user);
}

G_DEFINE_BOXED_TYPE (RechainVolumeUser, rechain_volume_user, rechain_volume_user_copy,
                     rechain_volume_user_free)

G_DEFINE_FLAGS_TYPE (RechainVolumeRebaseFlags, rechain_volume_rebase_flags,
                     G_DEFINE_ENUM_VALUE (RECHAIN_VOLUME_REBASE_NONE, "none"),
                     G_DEFINE_ENUM_VALUE (RECHAIN_VOLUME_REBASE_STRICT, "strict"),
                     G_DEFINE_ENUM_VALUE (RECHAIN_VOLUME_REBASE_NO_CHECK, "no-check"))

/* ---- the extension point and its modules ---- */

/**
 * RechainVolumeHelper:
 *
 * Something that knows volumes: resolves a volume reference (a pool and a
 * name) to a path and format, tells who uses an image, and is told when a
 * volume changed. The built-in helper "path" knows plain files; more are
 * loadable modules (GIO modules implementing the
 * %RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME extension point) in the
 * module directory of the library (`$libdir/rechain-1/modules`), or in the
 * directories listed in the environment variable `RECHAIN_MODULE_DIR`
 * (separated by ':') instead. The libvirt module is "libvirt".
 */
G_DEFINE_INTERFACE (RechainVolumeHelper, rechain_volume_helper, G_TYPE_OBJECT)

static void
rechain_volume_helper_default_init (RechainVolumeHelperInterface *iface)
{
  /**
   * RechainVolumeHelper:uri:
   *
   * Where the helper's storage manager is (a libvirt connection URI such
   * as "qemu:///system"), or %NULL for its default.
   */
  g_object_interface_install_property (iface,
      g_param_spec_string ("uri", NULL, NULL, NULL,
                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));
}

static const char *
module_dirs_spec (void)
{
  const char *env = g_getenv ("RECHAIN_MODULE_DIR");
  return env != NULL && *env != '\0' ? env : RECHAIN_MODULE_DIR;
}

static GIOExtensionPoint *
extension_point (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      GIOExtensionPoint *ep = g_io_extension_point_register (RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME);
      g_io_extension_point_set_required_type (ep, RECHAIN_TYPE_VOLUME_HELPER);
      g_io_extension_point_implement (RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME,
                                      rechain_path_volume_helper_get_type (),
                                      RECHAIN_VOLUME_HELPER_PATH, 0);

      /* As GIO loads its own modules (and GIO_EXTRA_MODULES): every
       * lib*.so of each directory, the first module of a name winning.
       * Modules stay loaded: storage libraries do not like unloading. */
      GIOModuleScope *scope = g_io_module_scope_new (G_IO_MODULE_SCOPE_BLOCK_DUPLICATES);
      g_auto (GStrv) dirs = g_strsplit (module_dirs_spec (), G_SEARCHPATH_SEPARATOR_S, -1);
      for (char **d = dirs; *d != NULL; d++)
        if (**d != '\0')
          g_list_free (g_io_modules_load_all_in_directory_with_scope (*d, scope));
      g_io_module_scope_free (scope);
      g_once_init_leave (&once, 1);
    }
  return g_io_extension_point_lookup (RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME);
}

/**
 * rechain_volume_helper_list:
 *
 * Lists the volume helpers available: the built-in "path" helper and those
 * of the modules found in the module directory (loaded on the first call).
 *
 * Returns: (transfer full) (array zero-terminated=1): the names of the
 *   helpers, highest priority first
 */
char **
rechain_volume_helper_list (void)
{
  GStrvBuilder *b = g_strv_builder_new ();
  for (GList *l = g_io_extension_point_get_extensions (extension_point ()); l != NULL; l = l->next)
    g_strv_builder_add (b, g_io_extension_get_name (l->data));
  char **names = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return names;
}

/**
 * rechain_volume_helper_lookup:
 * @name: the name of a helper, as rechain_volume_helper_list() lists it
 *   ("path", "libvirt")
 * @uri: (nullable): where the helper's storage manager is (for "libvirt",
 *   a connection URI such as "qemu:///system"), or %NULL for its default
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Looks up the helper @name and makes a new instance of it for @uri,
 * connected if the helper connects to something. Errors are
 * %G_IO_ERROR_NOT_FOUND when there is no helper @name, and the helper's
 * own (for "libvirt": %G_IO_ERROR_CONNECTION_REFUSED when the daemon cannot
 * be reached, %G_IO_ERROR_PERMISSION_DENIED; messages name @uri).
 *
 * Returns: (transfer full): the helper, or %NULL on error
 */
RechainVolumeHelper *
rechain_volume_helper_lookup (const char *name, const char *uri, GCancellable *cancellable,
                              GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  GIOExtension *ext = g_io_extension_point_get_extension_by_name (extension_point (), name);
  if (ext == NULL)
    {
      g_auto (GStrv) names = rechain_volume_helper_list ();
      g_autofree char *list = g_strjoinv (", ", names);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("no volume helper named \"%s\" (available: %s; modules are loaded from %s)"),
                   name, list, module_dirs_spec ());
      return NULL;
    }
  GType type = g_io_extension_get_type (ext);
  if (g_type_is_a (type, G_TYPE_INITABLE))
    return g_initable_new (type, cancellable, error, "uri", uri, NULL);
  return g_object_new (type, "uri", uri, NULL);
}

/**
 * rechain_volume_helper_get_name:
 * @helper: a helper
 *
 * Returns: the name @helper is registered with ("path", "libvirt")
 */
const char *
rechain_volume_helper_get_name (RechainVolumeHelper *helper)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  for (GList *l = g_io_extension_point_get_extensions (extension_point ()); l != NULL; l = l->next)
    if (g_io_extension_get_type (l->data) == G_OBJECT_TYPE (helper))
      return g_io_extension_get_name (l->data);
  return G_OBJECT_TYPE_NAME (helper);
}

/**
 * rechain_volume_helper_get_uri:
 * @helper: a helper
 *
 * Returns: (nullable): the #RechainVolumeHelper:uri of @helper
 */
const char *
rechain_volume_helper_get_uri (RechainVolumeHelper *helper)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  /* The value lives as long as the construct-only property's owner. */
  GValue v = G_VALUE_INIT;
  g_value_init (&v, G_TYPE_STRING);
  g_object_get_property (G_OBJECT (helper), "uri", &v);
  const char *uri = g_intern_string (g_value_get_string (&v));
  g_value_unset (&v);
  return uri;
}

/**
 * rechain_volume_helper_resolve:
 * @helper: a helper
 * @pool: (nullable): the pool, or %NULL where @name is a path
 * @name: the volume's name in @pool, or a path
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Resolves a volume reference. For "libvirt", @name is a volume of @pool,
 * or an absolute path (of a volume of any pool, or of a file outside the
 * pools). Unknown pools and volumes are %G_IO_ERROR_NOT_FOUND.
 *
 * Returns: (transfer full): the volume, or %NULL on error
 */
RechainVolume *
rechain_volume_helper_resolve (RechainVolumeHelper *helper, const char *pool, const char *name,
                               GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  RechainVolume *volume = iface->resolve (helper, pool, name, cancellable, error);
  g_return_val_if_fail (volume != NULL || error == NULL || *error != NULL, NULL);
  return volume;
}

/**
 * rechain_volume_helper_get_users:
 * @helper: a helper
 * @path: an image
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Lists who uses @path: domains with @path as a disk, and domains with a
 * disk whose backing chain (followed through the images, every level)
 * contains @path.
 *
 * Returns: (transfer container) (element-type RechainVolumeUser): the
 *   users (empty when none), or %NULL on error
 */
GPtrArray *
rechain_volume_helper_get_users (RechainVolumeHelper *helper, const char *path,
                                 GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  if (iface->get_users == NULL)
    return g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_volume_user_free);
  return iface->get_users (helper, path, cancellable, error);
}

static char *
describe_user (const char *path, const RechainVolumeUser *u)
{
  /* TRANSLATORS: the state of a libvirt domain, as in "%s is in use by %s domain \"%s\"%s" */
  const char *state = u->active ? _("active") : _("inactive");
  g_autofree char *disk = u->disk ? g_strdup_printf (_(", disk %s"), u->disk) : g_strdup ("");
  if (u->source == NULL || g_strcmp0 (u->source, path) == 0)
    return g_strdup_printf (_("%s is in use by %s domain \"%s\"%s"), path, state, u->domain, disk);
  return g_strdup_printf (_("%s is in the backing chain of %s, used by %s domain \"%s\"%s"), path,
                          u->source, state, u->domain, disk);
}

/**
 * rechain_volume_helper_check_in_use:
 * @helper: a helper
 * @path: an image about to be written
 * @strict: refuse as well when inactive domains reference @path
 * @warnings: (out) (optional) (transfer full) (array zero-terminated=1):
 *   where to store what is worth a warning (inactive domains that
 *   reference @path), or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Decides whether @path may be written: refuses with %RECHAIN_ERROR_IN_USE
 * (naming the domain and the disk) when an active (running or paused)
 * domain uses it directly or through a backing chain, or, with @strict,
 * when any domain references it.
 *
 * Returns: %TRUE if @path may be written
 */
gboolean
rechain_volume_helper_check_in_use (RechainVolumeHelper *helper, const char *path, gboolean strict,
                                    char ***warnings, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (warnings != NULL)
    *warnings = NULL;
  g_autoptr (GPtrArray) users = rechain_volume_helper_get_users (helper, path, cancellable, error);
  if (users == NULL)
    return FALSE;

  const char *uri = rechain_volume_helper_get_uri (helper);
  g_autofree char *prefix = uri ? g_strdup_printf ("%s: ", uri) : g_strdup ("");
  const RechainVolumeUser *refuse = NULL;
  for (guint i = 0; i < users->len && refuse == NULL; i++)
    {
      const RechainVolumeUser *u = g_ptr_array_index (users, i);
      if (u->active)
        refuse = u;
    }
  if (refuse == NULL && strict && users->len > 0)
    refuse = g_ptr_array_index (users, 0);
  if (refuse != NULL)
    {
      g_autofree char *what = describe_user (path, refuse);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE, "%s%s%s", prefix, what,
                   refuse->active ? "" : _(" (refused by the strict check)"));
      return FALSE;
    }
  if (warnings != NULL)
    {
      GStrvBuilder *b = g_strv_builder_new ();
      for (guint i = 0; i < users->len; i++)
        {
          g_autofree char *what = describe_user (path, g_ptr_array_index (users, i));
          g_autofree char *line = g_strdup_printf ("%s%s", prefix, what);
          g_strv_builder_add (b, line);
        }
      *warnings = g_strv_builder_end (b);
      g_strv_builder_unref (b);
    }
  return TRUE;
}

/**
 * rechain_volume_helper_changed:
 * @helper: a helper
 * @volume: a volume whose image was changed
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Tells @helper that the image of @volume changed (for "libvirt": the
 * pool that holds it is refreshed, so libvirt shows the new backing store).
 *
 * Returns: %TRUE on success
 */
gboolean
rechain_volume_helper_changed (RechainVolumeHelper *helper, RechainVolume *volume,
                               GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), FALSE);
  g_return_val_if_fail (RECHAIN_IS_VOLUME (volume), FALSE);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  if (iface->changed == NULL)
    return TRUE;
  return iface->changed (helper, volume, cancellable, error);
}

/**
 * rechain_volume_helper_get_storage_dirs:
 * @helper: a helper
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * The directories where the storage manager of @helper keeps its volumes:
 * for "libvirt", the target paths of the connection's local storage pools
 * (active and inactive). rechain_volume_rebase_sync(),
 * rechain_volume_rebase_async() and rechain_volume_open_image() confine the
 * backing chains of volumes to them (unless the chain is trusted): a
 * backing file that resolves outside every one of them is refused with
 * %RECHAIN_ERROR_NOT_PERMITTED. An empty array (a storage manager with no
 * local pool) refuses every backing file.
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): the
 *   directories, or %NULL: with @error unset when @helper confines nothing
 *   (the built-in "path" helper), set when asking failed
 *
 * Since: 0.2
 */
char **
rechain_volume_helper_get_storage_dirs (RechainVolumeHelper *helper, GCancellable *cancellable,
                                        GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  if (iface->get_storage_dirs == NULL)
    return NULL;
  return iface->get_storage_dirs (helper, cancellable, error);
}

/**
 * rechain_volume_helper_add_keys:
 * @helper: a helper
 * @path: an image file
 * @keyring: the keyring to add the passphrase to
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Adds to @keyring the passphrase that the storage manager of @helper
 * keeps for the encrypted image @path: for "libvirt", the value of the
 * secret that the `<encryption format='luks'>` element of the volume's
 * XML names, from libvirt's secret driver. Nothing is added when @path is
 * none of its volumes, when the volume has no encryption element, or when
 * the helper keeps no keys (the built-in "path" helper). A passphrase the
 * keyring already held for @path is replaced: callers that want their
 * own keys to win ask only for the images they have no key for
 * (rechain_keyring_has_passphrase()), as rechain_volume_add_keys() does.
 *
 * The passphrase goes to the keyring's locked memory only; the helper
 * wipes its own copy, and no message contains it (the secret's id, a
 * UUID, is not secret and is named in errors).
 *
 * Returns: %TRUE, or %FALSE with @error set: %RECHAIN_ERROR_NOT_PERMITTED
 *   when the volume's secret is unknown to the storage manager, has no
 *   value or is not handed out (a private secret),
 *   %RECHAIN_ERROR_UNSUPPORTED for an encryption format or secret type
 *   the helper gives no key for; the message names the volume, its pool
 *   and the secret
 *
 * Since: 0.2
 */
gboolean
rechain_volume_helper_add_keys (RechainVolumeHelper *helper, const char *path,
                                RechainKeyring *keyring, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  if (iface->add_keys == NULL)
    return TRUE;
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  return iface->add_keys (helper, path, keyring, cancellable, error);
}

/**
 * rechain_volume_helper_list_volumes:
 * @helper: a helper
 * @pool: the name of a pool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Lists the volumes of @pool, each with its path and format (for
 * "libvirt": the pool is refreshed first, so that images made behind
 * libvirt's back are listed too). Errors are %G_IO_ERROR_NOT_FOUND for an
 * unknown or inactive pool, %G_IO_ERROR_NOT_SUPPORTED for a helper that
 * has no pools (the built-in "path" helper).
 *
 * Returns: (transfer container) (element-type RechainVolume): the volumes
 *   (empty for an empty pool), or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
rechain_volume_helper_list_volumes (RechainVolumeHelper *helper, const char *pool,
                                    GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), NULL);
  g_return_val_if_fail (pool != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  RechainVolumeHelperInterface *iface = RECHAIN_VOLUME_HELPER_GET_IFACE (helper);
  if (iface->list_volumes == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("the volume helper \"%s\" has no pools to list"),
                   rechain_volume_helper_get_name (helper));
      return NULL;
    }
  GPtrArray *volumes = iface->list_volumes (helper, pool, cancellable, error);
  g_return_val_if_fail (volumes != NULL || error == NULL || *error != NULL, NULL);
  return volumes;
}

gboolean
rechain_volume_helper_storage_confinement (RechainVolumeHelper *helper, char ***dirs, char **name,
                     GCancellable *cancellable, GError **error)
{
  GError *local = NULL;
  *name = NULL;
  *dirs = rechain_volume_helper_get_storage_dirs (helper, cancellable, &local);
  if (local != NULL)
    {
      g_propagate_prefixed_error (error, local, _("cannot list the storage pools' directories: "));
      return FALSE;
    }
  if (*dirs != NULL)
    {
      const char *uri = rechain_volume_helper_get_uri (helper);
      *name = g_strdup_printf (_("the storage pools of %s"),
                               uri ? uri : rechain_volume_helper_get_name (helper));
    }
  return TRUE;
}

