/* io-test-util.c: see io-test-util.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "io-test-util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

char *
io_test_mkdtemp (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("rechain-io-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

void
io_test_rmdir (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
        io_test_rmdir (path);
      else
        g_unlink (path);
    }
  g_dir_close (d);
  g_rmdir (dir);
}

void
io_test_fill_pattern (void *buf, gsize len, guint seed)
{
  guint8 *p = buf;

  for (gsize i = 0; i < len; i++)
    p[i] = (guint8) ((i * 7 + seed * 13 + (i >> 9)) & 0xff);
}

void
io_test_write_file (const char *path, gsize len, guint seed)
{
  g_autofree guint8 *data = g_malloc (len);
  GError *error = NULL;

  io_test_fill_pattern (data, len, seed);
  g_file_set_contents (path, (const char *) data, (gssize) len, &error);
  g_assert_no_error (error);
}

gboolean
io_test_ofd_lock_held (const char *path, guint64 byte)
{
  g_autofree char *text = NULL;
  g_autofree char *dev_ino = NULL;
  g_auto (GStrv) lines = NULL;
  struct stat st;

  if (stat (path, &st) < 0)
    return FALSE;
  if (!g_file_get_contents ("/proc/locks", &text, NULL, NULL))
    return FALSE;
  /* /proc/locks names the file as MAJOR:MINOR:INODE, major and minor in
   * two-digit hex. */
  dev_ino = g_strdup_printf ("%02x:%02x:%lu", major (st.st_dev),
                             minor (st.st_dev), (unsigned long) st.st_ino);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) tok = g_strsplit_set (lines[i], " \t", -1);
      GPtrArray *words = g_ptr_array_new ();
      gboolean held = FALSE;

      for (guint j = 0; tok[j] != NULL; j++)
        if (*tok[j] != '\0')
          g_ptr_array_add (words, tok[j]);
      /* "N: OFDLCK ADVISORY READ -1 DEV:INO START END"; waiters have a
       * "->" word and are skipped. */
      if (words->len == 8 && strcmp (words->pdata[1], "OFDLCK") == 0
          && strcmp (words->pdata[5], dev_ino) == 0)
        {
          guint64 start = g_ascii_strtoull (words->pdata[6], NULL, 10);
          const char *end_s = words->pdata[7];
          guint64 end = strcmp (end_s, "EOF") == 0 ? G_MAXUINT64
                                                   : g_ascii_strtoull (end_s, NULL, 10);

          held = start <= byte && byte <= end;
        }
      g_ptr_array_unref (words);
      if (held)
        return TRUE;
    }
  return FALSE;
}

gboolean
io_test_qemu_start (IoTestQemu *q, const char *const *argv,
                    const char *wait_path, guint64 wait_byte)
{
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  GError *error = NULL;
  gint64 deadline;

  q->pid = 0;
  q->stdin_fd = -1;
  g_ptr_array_add (args, (gpointer) "qemu-io");
  for (guint i = 0; argv[i] != NULL; i++)
    g_ptr_array_add (args, (gpointer) argv[i]);
  g_ptr_array_add (args, NULL);

  /* qemu-io without -c reads commands from standard input: as long as our
   * end of the pipe stays open, it waits with the image open. */
  if (!g_spawn_async_with_pipes (NULL, (char **) args->pdata, NULL,
                                 G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD
                                 | G_SPAWN_STDOUT_TO_DEV_NULL
                                 | G_SPAWN_STDERR_TO_DEV_NULL,
                                 NULL, NULL, &q->pid, &q->stdin_fd, NULL, NULL,
                                 &error))
    {
      g_test_message ("cannot start qemu-io: %s", error->message);
      g_clear_error (&error);
      return FALSE;
    }

  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline)
    {
      int status;

      if (io_test_ofd_lock_held (wait_path, wait_byte))
        return TRUE;
      if (waitpid (q->pid, &status, WNOHANG) == q->pid)
        {
          g_test_message ("qemu-io exited before locking %s (status %d)",
                          wait_path, status);
          g_spawn_close_pid (q->pid);
          q->pid = 0;
          close (q->stdin_fd);
          q->stdin_fd = -1;
          return FALSE;
        }
      g_usleep (10000);
    }
  g_test_message ("qemu-io did not lock byte %" G_GUINT64_FORMAT " of %s in time",
                  wait_byte, wait_path);
  io_test_qemu_stop (q);
  return FALSE;
}

void
io_test_qemu_stop (IoTestQemu *q)
{
  gint64 deadline;

  if (q->stdin_fd >= 0)
    {
      /* End of input makes qemu-io quit cleanly. */
      close (q->stdin_fd);
      q->stdin_fd = -1;
    }
  if (q->pid <= 0)
    return;
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  for (;;)
    {
      int status;
      pid_t ret = waitpid (q->pid, &status, WNOHANG);

      if (ret == q->pid || (ret < 0 && errno != EINTR))
        break;
      if (g_get_monotonic_time () > deadline)
        {
          kill (q->pid, SIGKILL);
          waitpid (q->pid, &status, 0);
          break;
        }
      g_usleep (10000);
    }
  g_spawn_close_pid (q->pid);
  q->pid = 0;
}

int
io_test_run (const char *const *argv, char **stderr_text)
{
  GError *error = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, stderr_text, &status, &error))
    {
      g_test_message ("cannot run %s: %s", argv[0], error->message);
      g_clear_error (&error);
      return -1;
    }
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return 128 + (WIFSIGNALED (status) ? WTERMSIG (status) : 0);
}
