/* fuzz-common.c: see fuzz-common.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "fuzz-common.h"
#include "rechain/rechain-error.h"
#include "fixtures.h"

static char *tmp_dir;

static void
log_handler (const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  /* Warnings (probed formats, ...) are expected on crafted input; a
   * critical or error is a bug and aborts (always-fatal below). */
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    fprintf (stderr, "%s-%s: %s\n", domain ? domain : "",
             (level & G_LOG_LEVEL_ERROR) ? "ERROR" : "CRITICAL", message);
}

static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    return g_log_writer_standard_streams (level, fields, n_fields, data);
  return G_LOG_WRITER_HANDLED;
}

static void
remove_tmp_dir (void)
{
  GDir *dir;
  const char *name;

  if (!tmp_dir)
    return;
  dir = g_dir_open (tmp_dir, 0, NULL);
  if (dir)
    {
      while ((name = g_dir_read_name (dir)))
        {
          g_autofree char *p = g_build_filename (tmp_dir, name, NULL);
          g_unlink (p);
        }
      g_dir_close (dir);
    }
  g_rmdir (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
}

static void
write_fixed (const char *name, const guint8 *data, gsize size)
{
  g_autofree char *p = g_build_filename (tmp_dir, name, NULL);
  g_autoptr(GError) error = NULL;

  if (!g_file_set_contents (p, (const char *) data, (gssize) size, &error))
    {
      fprintf (stderr, "fuzz: cannot write %s: %s\n", p, error->message);
      abort ();
    }
}

void
fuzz_init (void)
{
  static gboolean done;
  g_autoptr(GError) error = NULL;
  guint8 *raw;

  if (done)
    return;
  done = TRUE;

  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
  g_log_set_default_handler (log_handler, NULL);
  g_log_set_writer_func (log_writer, NULL, NULL);
  /* fault injection must never be active under the fuzzer */
  g_unsetenv ("RECHAIN_FAULT");
  g_unsetenv ("RECHAIN_FAULT_LOG");

  tmp_dir = g_dir_make_tmp ("rechain-fuzz-XXXXXX", &error);
  if (!tmp_dir)
    {
      fprintf (stderr, "fuzz: cannot make a temporary directory: %s\n", error->message);
      abort ();
    }
  atexit (remove_tmp_dir);

  write_fixed ("base.qcow2", fixture_base_qcow2, sizeof fixture_base_qcow2);
  write_fixed ("new.qcow2", fixture_new_qcow2, sizeof fixture_new_qcow2);
  raw = g_malloc (65536);
  for (guint i = 0; i < 65536; i++)
    raw[i] = (guint8) (i * 7 + (i >> 9));
  write_fixed ("base.raw", raw, 65536);
  g_free (raw);
}

const char *
fuzz_fixtures_made_by (void)
{
  return FUZZ_FIXTURES_MADE_BY;
}

const char *
fuzz_dir (void)
{
  return tmp_dir;
}

char *
fuzz_write_file (const char *name, const uint8_t *data, size_t size)
{
  char *p = g_build_filename (tmp_dir, name, NULL);
  g_autoptr(GError) error = NULL;

  /* replace, never write through a name the previous input left behind */
  g_unlink (p);
  if (!g_file_set_contents (p, (const char *) data, (gssize) size, &error))
    {
      fprintf (stderr, "fuzz: cannot write %s: %s\n", p, error->message);
      abort ();
    }
  return p;
}

void
fuzz_check_error (GError *error, const char *what)
{
  if (!error)
    FUZZ_BUG ("%s failed without a GError", what);
  if (error->domain != RECHAIN_ERROR)
    FUZZ_BUG ("%s failed with an error outside the rechain domain (%s %d): %s", what,
              g_quark_to_string (error->domain), error->code, error->message);
  if (!error->message || !*error->message)
    FUZZ_BUG ("%s failed with an empty message", what);
}
