/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "chain/path.h"
#include "rechain/rechain-i18n-private.h"

gboolean
rechain_path_is_pseudo (const char *name)
{
  /* QEMU treats "PREFIX:rest" as a protocol name when the colon comes
   * before any slash and the prefix is alphanumeric (plus "+-."); "json:"
   * introduces an option dictionary. */
  const char *colon = strchr (name, ':');
  const char *slash = strchr (name, '/');

  if (!colon || colon == name || (slash && slash < colon))
    return FALSE;
  for (const char *p = name; p < colon; p++)
    if (!g_ascii_isalnum (*p) && *p != '+' && *p != '-' && *p != '.')
      return FALSE;
  return TRUE;
}

char *
rechain_path_resolve (const char *from_path, const char *name, GError **error)
{
  g_autofree char *dir = NULL;

  if (g_str_has_prefix (name, "file:"))
    name += strlen ("file:");
  else if (rechain_path_is_pseudo (name))
    {
      g_autofree char *proto = g_strndup (name, strchr (name, ':') - name);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   g_str_equal (proto, "json")
                     ? _("'%s' is a json: pseudo-filename (%s options); rechain only opens local files")
                     : _("'%s' names the QEMU protocol '%s:'; rechain only opens local files"),
                   name, proto);
      return NULL;
    }

  if (*name == '\0')
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE, _("empty file name"));
      return NULL;
    }
  if (g_path_is_absolute (name))
    return g_strdup (name);
  dir = g_path_get_dirname (from_path);
  if (g_str_equal (dir, "."))
    return g_strdup (name);
  return g_build_filename (dir, name, NULL);
}

/* realpath() of @path, or of its directory joined with its name when the
 * file itself does not exist (yet). */
static char *
real_path_or_parent (const char *path)
{
  char *real = realpath (path, NULL);
  g_autofree char *dir = NULL;
  g_autofree char *base = NULL;
  g_autofree char *real_dir = NULL;

  if (real)
    return real;
  dir = g_path_get_dirname (path);
  base = g_path_get_basename (path);
  real_dir = realpath (dir, NULL);
  return real_dir ? g_build_filename (real_dir, base, NULL) : NULL;
}

/* Whether the resolved @real_path lies under the resolved @real_root. */
static gboolean
real_path_is_under (const char *real_root, const char *real_path)
{
  gsize n = strlen (real_root);

  return real_path && (g_str_equal (real_root, "/") ||
                       (strncmp (real_path, real_root, n) == 0 && real_path[n] == '/'));
}

gboolean
rechain_path_check_root (const char *root, const char *path, const char *named_by, GError **error)
{
  g_autofree char *real_root = realpath (root, NULL);
  g_autofree char *real_path = NULL;

  if (!real_root)
    {
      int saved = errno;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("backing root '%s': %s"), root, g_strerror (saved));
      return FALSE;
    }
  real_path = real_path_or_parent (path);
  if (real_path_is_under (real_root, real_path))
    return TRUE;
  if (g_str_equal (path, named_by))
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("%s resolves to '%s', outside the backing root '%s'"),
                 path, real_path ? real_path : path, real_root);
  else
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("%s: backing file '%s' resolves to '%s', outside the backing root '%s'"),
                 named_by, path, real_path ? real_path : path, real_root);
  return FALSE;
}

gboolean
rechain_path_check_dirs (const char * const *dirs, const char *dirs_name, const char *path,
                         const char *named_by, const char *field, GError **error)
{
  g_autofree char *real_path = real_path_or_parent (path);
  g_autofree char *list = NULL;

  for (guint i = 0; dirs[i]; i++)
    {
      g_autofree char *real_dir = realpath (dirs[i], NULL);

      if (real_dir && real_path_is_under (real_dir, real_path))
        return TRUE;
    }
  list = g_strjoinv (", ", (char **) dirs);
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
               _("%s: refusing to open %s '%s': it resolves to '%s', outside the directories "
                 "of %s (%s) (allow it with --trust-chain if you trust this chain)"),
               named_by, field, path, real_path ? real_path : path, dirs_name,
               *list ? list : _("none"));
  return FALSE;
}
