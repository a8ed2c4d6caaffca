/* rechain-lease.c: libvirt's lock manager configuration, read from
 * libvirt's own files (qemu.conf, qemu-lockd.conf) so that rechain takes
 * the leases the local libvirt daemon takes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "rechain/rechain-lease.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

/* libvirt's configuration syntax (virconf.c): "key = value" entries,
 * values being 'strings', "strings", """multi-line strings""", numbers or
 * [lists] that may span lines; # starts a comment outside strings. Only
 * scalar values are returned; anything this reader does not understand
 * is skipped to the end of its line, the way a hand-edited file with a
 * typo elsewhere should not hide the entries we need. */
typedef struct {
  const char *p, *end;
} Scanner;

static void
skip_line (Scanner *s)
{
  while (s->p < s->end && *s->p != '\n')
    s->p++;
}

static void
skip_blanks (Scanner *s, gboolean newlines)
{
  while (s->p < s->end)
    {
      if (*s->p == '#')
        skip_line (s);
      else if (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || (newlines && *s->p == '\n'))
        s->p++;
      else
        break;
    }
}

/* A string at s->p (its opening quote): its content, or NULL (unterminated). */
static char *
scan_string (Scanner *s)
{
  const char *start;

  if (s->end - s->p >= 6 && strncmp (s->p, "\"\"\"", 3) == 0)
    {
      const char *close = g_strstr_len (s->p + 3, s->end - s->p - 3, "\"\"\"");
      if (!close)
        return NULL;
      start = s->p + 3;
      s->p = close + 3;
      return g_strndup (start, close - start);
    }
  start = s->p + 1;
  for (const char *q = start; q < s->end && *q != '\n'; q++)
    if (*q == *s->p)
      {
        s->p = q + 1;
        return g_strndup (start, q - start);
      }
  return NULL;
}

static void
skip_list (Scanner *s)
{
  int depth = 0;

  while (s->p < s->end)
    {
      char c = *s->p;
      if (c == '#')
        skip_line (s);
      else if (c == '"' || c == '\'')
        {
          g_autofree char *str = scan_string (s);
          if (!str)
            skip_line (s);
        }
      else
        {
          s->p++;
          if (c == '[')
            depth++;
          else if (c == ']' && --depth == 0)
            return;
        }
    }
}

/* The scalar entries of a libvirt configuration file, last one winning. */
static GHashTable *
parse_conf (const char *text, gsize len)
{
  GHashTable *entries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  Scanner s = { text, text + len };

  for (;;)
    {
      const char *key;
      g_autofree char *name = NULL;
      char *value = NULL;

      skip_blanks (&s, TRUE);
      if (s.p >= s.end)
        break;
      key = s.p;
      while (s.p < s.end && (g_ascii_isalnum (*s.p) || *s.p == '_' || *s.p == '.'))
        s.p++;
      if (s.p == key)
        {
          skip_line (&s);
          continue;
        }
      name = g_strndup (key, s.p - key);
      skip_blanks (&s, FALSE);
      if (s.p >= s.end || *s.p != '=')
        {
          skip_line (&s);
          continue;
        }
      s.p++;
      skip_blanks (&s, FALSE);
      if (s.p < s.end && *s.p == '[')
        {
          skip_list (&s);
          continue;
        }
      if (s.p < s.end && (*s.p == '"' || *s.p == '\''))
        value = scan_string (&s);
      else
        {
          const char *v = s.p;
          while (s.p < s.end && !g_ascii_isspace (*s.p) && *s.p != '#' && *s.p != ',' && *s.p != ';')
            s.p++;
          if (s.p > v)
            value = g_strndup (v, s.p - v);
        }
      if (value)
        g_hash_table_replace (entries, g_steal_pointer (&name), value);
      skip_line (&s); /* a trailing comment, or whatever follows */
    }
  return entries;
}

/* The entries of @dir/@file; an empty table when it does not exist. */
static GHashTable *
read_conf (const char *dir, const char *file, GError **error)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autofree char *text = NULL;
  gsize len;
  GError *local = NULL;

  if (!g_file_get_contents (path, &text, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          g_error_free (local);
          return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
        }
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("Could not read libvirt's configuration %s: %s"), path, local->message);
      g_error_free (local);
      return NULL;
    }
  return parse_conf (text, len);
}

static char *
default_confdir (void)
{
  const char *env = g_getenv ("RECHAIN_LIBVIRT_CONFDIR");

  if (env && *env)
    return g_strdup (env);
  /* where the system daemon reads its configuration, or a session
   * daemon its own */
  if (geteuid () == 0)
    return g_strdup ("/etc/libvirt");
  return g_build_filename (g_get_user_config_dir (), "libvirt", NULL);
}

/**
 * rechain_read_libvirt_lock_config:
 * @confdir: (nullable) (type filename): libvirt's configuration directory,
 *   or %NULL for the local daemon's: `$RECHAIN_LIBVIRT_CONFDIR` when set,
 *   else `/etc/libvirt` for root and `$XDG_CONFIG_HOME/libvirt` for other
 *   users (the session daemon's)
 * @lock_manager: (out) (optional) (nullable) (transfer full): the lock
 *   manager libvirt's QEMU driver uses (`lock_manager` of qemu.conf, such
 *   as "lockd" or "sanlock"), or %NULL for none
 * @lockspace_dir: (out) (optional) (nullable) (transfer full) (type filename):
 *   with "lockd", the directory of its indirect leases (`file_lockspace_dir`
 *   of qemu-lockd.conf, unless `auto_disk_leases = 0` turns disk leases
 *   off), or %NULL: virtlockd leases the image files themselves
 * @error: return location for a #GError, or %NULL
 *
 * Reads how libvirt's lock manager protects disk images on this host, so
 * that a rebase takes the same leases (#RechainRebaseJob:lockspace-dir).
 * Files that do not exist mean libvirt's defaults (no lock manager).
 * Entries are read the way libvirt writes them (`key = "value"`, comments
 * with `#`); what cannot be parsed is skipped.
 *
 * Returns: %FALSE with @error (%RECHAIN_ERROR_IO) when a file exists but
 *   cannot be read
 *
 * Since: 0.2
 */
gboolean
rechain_read_libvirt_lock_config (const char *confdir,
                                  char **lock_manager,
                                  char **lockspace_dir,
                                  GError **error)
{
  g_autofree char *dir = confdir ? g_strdup (confdir) : default_confdir ();
  g_autoptr(GHashTable) qemu = NULL;
  g_autoptr(GHashTable) lockd = NULL;
  const char *manager, *lockspace = NULL;

  if (lock_manager)
    *lock_manager = NULL;
  if (lockspace_dir)
    *lockspace_dir = NULL;
  qemu = read_conf (dir, "qemu.conf", error);
  if (!qemu)
    return FALSE;
  manager = g_hash_table_lookup (qemu, "lock_manager");
  if (manager && *manager == '\0')
    manager = NULL;
  if (g_strcmp0 (manager, "lockd") == 0)
    {
      const char *auto_leases;

      lockd = read_conf (dir, "qemu-lockd.conf", error);
      if (!lockd)
        return FALSE;
      auto_leases = g_hash_table_lookup (lockd, "auto_disk_leases");
      lockspace = g_hash_table_lookup (lockd, "file_lockspace_dir");
      if ((auto_leases && strcmp (auto_leases, "0") == 0) || (lockspace && !*lockspace))
        lockspace = NULL;
    }
  if (lock_manager)
    *lock_manager = g_strdup (manager);
  if (lockspace_dir)
    *lockspace_dir = g_strdup (lockspace);
  return TRUE;
}
