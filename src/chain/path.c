/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <string.h>
#include "chain/path.h"

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
                     ? "'%s' is a json: pseudo-filename (%s options); rechain only opens local files"
                     : "'%s' names the QEMU protocol '%s:'; rechain only opens local files",
                   name, proto);
      return NULL;
    }

  if (*name == '\0')
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE, "empty file name");
      return NULL;
    }
  if (g_path_is_absolute (name))
    return g_strdup (name);
  dir = g_path_get_dirname (from_path);
  if (g_str_equal (dir, "."))
    return g_strdup (name);
  return g_build_filename (dir, name, NULL);
}
