/* rechain-volume-helper.h: volumes of storage managers (libvirt pools, ...)
 * and the helpers that know them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rechain/rechain-image.h>
#include <rechain/rechain-rebase-job.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

/**
 * RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME:
 *
 * The name of the GIO extension point that volume helpers implement
 * (with g_io_extension_point_implement()); the extension name is the
 * helper's name ("path", "libvirt", ...).
 */
#define RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME "rechain-volume-helper"

/**
 * RECHAIN_VOLUME_HELPER_PATH:
 *
 * The name of the built-in helper for plain paths.
 */
#define RECHAIN_VOLUME_HELPER_PATH "path"

/* ---- RechainVolumeUser ---- */

/**
 * RechainVolumeUser:
 * @domain: the name of the virtual machine (or other user)
 * @disk: the disk of @domain that uses the image (a target such as "vda"),
 *   or %NULL
 * @source: the image that @disk opens: the image asked about itself, or an
 *   image whose backing chain contains it
 * @active: whether @domain is running (or paused): it has the image open
 *
 * One user of an image, as a #RechainVolumeHelper knows it.
 */
typedef struct {
  char *domain;
  char *disk;
  char *source;
  gboolean active;
} RechainVolumeUser;

#define RECHAIN_TYPE_VOLUME_USER (rechain_volume_user_get_type ())
RECHAIN_AVAILABLE_IN_ALL GType rechain_volume_user_get_type (void);
RECHAIN_AVAILABLE_IN_ALL RechainVolumeUser *rechain_volume_user_new (const char *domain,
                                                           const char *disk,
                                                           const char *source,
                                                           gboolean active);
RECHAIN_AVAILABLE_IN_ALL RechainVolumeUser *rechain_volume_user_copy (const RechainVolumeUser *user);
RECHAIN_AVAILABLE_IN_ALL void rechain_volume_user_free (RechainVolumeUser *user);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainVolumeUser, rechain_volume_user_free)

/* ---- RechainVolumeHelper ---- */

#define RECHAIN_TYPE_VOLUME_HELPER (rechain_volume_helper_get_type ())
RECHAIN_AVAILABLE_IN_ALL
G_DECLARE_INTERFACE (RechainVolumeHelper, rechain_volume_helper, RECHAIN, VOLUME_HELPER, GObject)

typedef struct _RechainVolume RechainVolume;

/**
 * RechainVolumeHelperInterface:
 * @g_iface: the parent interface
 * @resolve: finds the volume @name of @pool (or the file @name when it is
 *   a path) and returns it with its path, format and backing name; errors
 *   are %G_IO_ERROR_NOT_FOUND for an unknown pool or volume.
 * @get_users: lists who uses the image @path: users that open it directly
 *   and users of images whose backing chain contains it. Returns an empty
 *   array when nobody does.
 * @changed: told after the volume's image was changed (the helper updates
 *   what its storage manager knows about it, e.g. refreshes the pool).
 * @get_storage_dirs: optional: the directories where the storage manager
 *   keeps its volumes (the target paths of its local pools), to which the
 *   backing chains of its volumes are confined; %NULL with no error: no
 *   confinement. An empty array confines chains to nowhere: every backing
 *   file is refused. Since: 0.2
 * @add_keys: optional: adds to @keyring the passphrase the storage manager
 *   keeps for the encrypted image @path (libvirt: the secret of the
 *   volume's `<encryption>`), when @path is one of its volumes and it
 *   keeps one; %TRUE adding nothing otherwise. Errors name the volume
 *   (and the secret's id, never its value): %RECHAIN_ERROR_NOT_PERMITTED
 *   when the secret is unknown, has no value or is not handed out,
 *   %RECHAIN_ERROR_UNSUPPORTED for an encryption the helper cannot give
 *   a key for. Since: 0.2
 * @list_volumes: optional: the volumes of @pool (refreshed first, so
 *   files made behind the storage manager's back are listed), each with
 *   its path and format; %G_IO_ERROR_NOT_FOUND for an unknown or inactive
 *   pool. Since: 0.2
 *
 * The interface of volume helpers. Implementations are found through the
 * %RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME extension point. Instances
 * are made by rechain_volume_helper_lookup() with the construct-only
 * #RechainVolumeHelper:uri property set; a helper that needs a connection
 * implements #GInitable and connects in g_initable_init(). The methods may
 * be called from any thread, one at a time per helper.
 */
struct _RechainVolumeHelperInterface {
  GTypeInterface g_iface;

  RechainVolume *(*resolve) (RechainVolumeHelper *helper,
                             const char *pool,
                             const char *name,
                             GCancellable *cancellable,
                             GError **error);
  GPtrArray *(*get_users) (RechainVolumeHelper *helper,
                           const char *path,
                           GCancellable *cancellable,
                           GError **error);
  gboolean (*changed) (RechainVolumeHelper *helper,
                       RechainVolume *volume,
                       GCancellable *cancellable,
                       GError **error);
  char **(*get_storage_dirs) (RechainVolumeHelper *helper,
                              GCancellable *cancellable,
                              GError **error);
  gboolean (*add_keys) (RechainVolumeHelper *helper,
                        const char *path,
                        RechainKeyring *keyring,
                        GCancellable *cancellable,
                        GError **error);
  GPtrArray *(*list_volumes) (RechainVolumeHelper *helper,
                              const char *pool,
                              GCancellable *cancellable,
                              GError **error);

  /*< private >*/
  gpointer padding[5];
};

RECHAIN_AVAILABLE_IN_ALL char **rechain_volume_helper_list (void);
RECHAIN_AVAILABLE_IN_ALL RechainVolumeHelper *rechain_volume_helper_lookup (const char *name,
                                                                  const char *uri,
                                                                  GCancellable *cancellable,
                                                                  GError **error);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_helper_get_name (RechainVolumeHelper *helper);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_helper_get_uri (RechainVolumeHelper *helper);

RECHAIN_AVAILABLE_IN_ALL RechainVolume *rechain_volume_helper_resolve (RechainVolumeHelper *helper,
                                                             const char *pool,
                                                             const char *name,
                                                             GCancellable *cancellable,
                                                             GError **error);
RECHAIN_AVAILABLE_IN_ALL GPtrArray *rechain_volume_helper_get_users (RechainVolumeHelper *helper,
                                                           const char *path,
                                                           GCancellable *cancellable,
                                                           GError **error);
RECHAIN_AVAILABLE_IN_ALL gboolean rechain_volume_helper_check_in_use (RechainVolumeHelper *helper,
                                                            const char *path,
                                                            gboolean strict,
                                                            char ***warnings,
                                                            GCancellable *cancellable,
                                                            GError **error);
RECHAIN_AVAILABLE_IN_ALL gboolean rechain_volume_helper_changed (RechainVolumeHelper *helper,
                                                       RechainVolume *volume,
                                                       GCancellable *cancellable,
                                                       GError **error);
RECHAIN_AVAILABLE_IN_0_2 char **rechain_volume_helper_get_storage_dirs (RechainVolumeHelper *helper,
                                                              GCancellable *cancellable,
                                                              GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_volume_helper_add_keys (RechainVolumeHelper *helper,
                                                                  const char *path,
                                                                  RechainKeyring *keyring,
                                                                  GCancellable *cancellable,
                                                                  GError **error);
RECHAIN_AVAILABLE_IN_0_2 GPtrArray *rechain_volume_helper_list_volumes (RechainVolumeHelper *helper,
                                                                const char *pool,
                                                                GCancellable *cancellable,
                                                                GError **error);

/* ---- RechainVolume ---- */

#define RECHAIN_TYPE_VOLUME (rechain_volume_get_type ())
RECHAIN_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (RechainVolume, rechain_volume, RECHAIN, VOLUME, GObject)

/**
 * RechainVolumeRebaseFlags:
 * @RECHAIN_VOLUME_REBASE_NONE: refuse images that running domains use;
 *   only warn about inactive domains that reference them.
 * @RECHAIN_VOLUME_REBASE_STRICT: refuse as well images that inactive
 *   domains reference (`--strict`).
 * @RECHAIN_VOLUME_REBASE_NO_CHECK: skip the helper's in-use check (QEMU's
 *   image locks still apply unless the job's force-share is set).
 *
 * Flags for rechain_volume_rebase_sync() and rechain_volume_rebase_async().
 */
typedef enum /*< flags >*/ {
  RECHAIN_VOLUME_REBASE_NONE = 0,
  RECHAIN_VOLUME_REBASE_STRICT = 1 << 0,
  RECHAIN_VOLUME_REBASE_NO_CHECK = 1 << 1,
} RechainVolumeRebaseFlags;

#define RECHAIN_TYPE_VOLUME_REBASE_FLAGS (rechain_volume_rebase_flags_get_type ())
RECHAIN_AVAILABLE_IN_ALL GType rechain_volume_rebase_flags_get_type (void);

RECHAIN_AVAILABLE_IN_ALL RechainVolume *rechain_volume_new (RechainVolumeHelper *helper,
                                                  const char *pool,
                                                  const char *name,
                                                  const char *path,
                                                  const char *format,
                                                  const char *backing_name);
RECHAIN_AVAILABLE_IN_ALL RechainVolume *rechain_volume_resolve (const char *helper_name,
                                                      const char *uri,
                                                      const char *pool,
                                                      const char *name,
                                                      GCancellable *cancellable,
                                                      GError **error);

RECHAIN_AVAILABLE_IN_ALL RechainVolumeHelper *rechain_volume_get_helper (RechainVolume *volume);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_get_pool (RechainVolume *volume);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_get_name (RechainVolume *volume);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_get_path (RechainVolume *volume);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_get_format (RechainVolume *volume);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_volume_get_backing_name (RechainVolume *volume);

RECHAIN_AVAILABLE_IN_0_2 RechainImage *rechain_volume_open_image (RechainVolume *volume,
                                                        const char *format,
                                                        RechainImageOpenFlags flags,
                                                        const char *backing_root,
                                                        GCancellable *cancellable,
                                                        GError **error);
RECHAIN_AVAILABLE_IN_0_2 RechainImage *rechain_volume_open_image_with_keyring (RechainVolume *volume,
                                                                     const char *format,
                                                                     RechainImageOpenFlags flags,
                                                                     const char *backing_root,
                                                                     RechainKeyring *keyring,
                                                                     GCancellable *cancellable,
                                                                     GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_volume_add_keys (RechainVolume *volume,
                                                           RechainKeyring *keyring,
                                                           RechainImageOpenFlags flags,
                                                           GCancellable *cancellable,
                                                           GError **error);

RECHAIN_AVAILABLE_IN_ALL RechainRebaseJob *rechain_volume_new_rebase_job (RechainVolume *volume,
                                                                RechainVolume *backing,
                                                                const char *backing_name,
                                                                RechainRebaseMode mode);

RECHAIN_AVAILABLE_IN_ALL gboolean rechain_volume_rebase_sync (RechainVolume *volume,
                                                    RechainRebaseJob *job,
                                                    RechainVolumeRebaseFlags flags,
                                                    char ***warnings,
                                                    GCancellable *cancellable,
                                                    GError **error);
RECHAIN_AVAILABLE_IN_ALL void rechain_volume_rebase_async (RechainVolume *volume,
                                                 RechainRebaseJob *job,
                                                 RechainVolumeRebaseFlags flags,
                                                 int io_priority,
                                                 GCancellable *cancellable,
                                                 GAsyncReadyCallback callback,
                                                 gpointer user_data);
RECHAIN_AVAILABLE_IN_ALL gboolean rechain_volume_rebase_finish (RechainVolume *volume,
                                                      GAsyncResult *result,
                                                      char ***warnings,
                                                      GError **error);

G_END_DECLS
