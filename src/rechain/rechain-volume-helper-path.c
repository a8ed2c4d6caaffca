/* rechain-volume-helper-path.c: the built-in volume helper "path", for
 * plain files: a volume is a path, its users are the processes that have
 * it open (QEMU's image locks remain the guard), and changes need telling
 * nobody.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rechain/rechain-volume-helper-private.h"
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

/* The access mode of descriptor @fd of process @pid, from its fdinfo
 * ("flags:" in octal), or -1. */
static int
fd_access_mode (const char *pid, const char *fd)
{
  g_autofree char *info = g_build_filename ("/proc", pid, "fdinfo", fd, NULL);
  g_autofree char *text = NULL;
  const char *flags;

  if (!g_file_get_contents (info, &text, NULL, NULL) || !(flags = strstr (text, "flags:")))
    return -1;
  return (int) (g_ascii_strtoull (flags + strlen ("flags:"), NULL, 8) & O_ACCMODE);
}

/* Plain files have no registry of users: the processes that have @path
 * open are found as lsof(8) finds them, through /proc/PID/fd. A process
 * that has it open for writing, or a QEMU that has it open at all (a
 * running VM reads its backing files), is an active user; others (a
 * backup reading it, say) are reported as inactive. Processes this one
 * may not inspect are skipped: QEMU's image locks remain the guard. */
static GPtrArray *
path_get_users (RechainVolumeHelper *helper, const char *path, GCancellable *cancellable,
                GError **error)
{
  g_autoptr (GPtrArray) users = g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_volume_user_free);
  g_autoptr (GDir) proc = NULL;
  g_autofree char *self = g_strdup_printf ("%d", (int) getpid ());
  struct stat want;
  const char *pid;

  if (stat (path, &want) < 0 || !(proc = g_dir_open ("/proc", 0, NULL)))
    return g_steal_pointer (&users);
  while ((pid = g_dir_read_name (proc)))
    {
      g_autofree char *fddir = NULL;
      g_autoptr (GDir) fds = NULL;
      const char *fd;
      int mode = -1;

      if (!g_ascii_isdigit (pid[0]) || g_str_equal (pid, self))
        continue;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;
      fddir = g_build_filename ("/proc", pid, "fd", NULL);
      if (!(fds = g_dir_open (fddir, 0, NULL)))
        continue;
      while ((fd = g_dir_read_name (fds)))
        {
          g_autofree char *link = g_build_filename (fddir, fd, NULL);
          struct stat st;

          if (stat (link, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
            mode = MAX (mode, fd_access_mode (pid, fd));
        }
      if (mode >= 0)
        {
          g_autofree char *comm_path = g_build_filename ("/proc", pid, "comm", NULL);
          g_autofree char *comm = NULL;
          g_autofree char *who = NULL;

          if (!g_file_get_contents (comm_path, &comm, NULL, NULL))
            comm = g_strdup ("?");
          g_strstrip (comm);
          who = g_strdup_printf (_("process %s (pid %s)"), comm, pid);
          g_ptr_array_add (users, rechain_volume_user_new (who, NULL, path,
                                                           mode != O_RDONLY ||
                                                           g_str_has_prefix (comm, "qemu")));
        }
    }
  return g_steal_pointer (&users);
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
