/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <stdarg.h>

#include "qemu-fixture.h"

char *
qemu_fixture_tmpdir_new (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("rechain-test-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

void
qemu_fixture_tmpdir_free (char *dir)
{
  g_autofree char *cmd = NULL;

  if (!dir)
    return;
  cmd = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (cmd), ==, 0);
  g_free (dir);
}

static int
run_va (const char *dir, char **out, const char *format, va_list args)
{
  g_autofree char *cmd = g_strdup_vprintf (format, args);
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  int status;

  g_spawn_sync (dir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_test_message ("command failed: %s\n%s", cmd, err);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

char *
qemu_fixture_run (const char *dir, const char *format, ...)
{
  va_list args;
  char *out = NULL;
  int status;

  va_start (args, format);
  status = run_va (dir, &out, format, args);
  va_end (args);
  g_assert_cmpint (status, ==, 0);
  return out;
}

int
qemu_fixture_try (const char *dir, const char *format, ...)
{
  va_list args;
  g_autofree char *out = NULL;
  int status;

  va_start (args, format);
  status = run_va (dir, &out, format, args);
  va_end (args);
  return status;
}

gboolean
qemu_fixture_require_qemu (void)
{
  g_autofree char *img = g_find_program_in_path ("qemu-img");
  g_autofree char *io = g_find_program_in_path ("qemu-io");

  if (!img || !io)
    {
      g_test_skip ("qemu-img/qemu-io (Debian package qemu-utils) not installed");
      return FALSE;
    }
  return TRUE;
}
