/* test-io-fault.c: RECHAIN_FAULT and RECHAIN_FAULT_LOG.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

#include "io/file.h"
#include "io-test-util.h"

typedef struct {
  char *dir;
  char *path;
  RechainFile *file;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  f->dir = io_test_mkdtemp ();
  f->path = g_build_filename (f->dir, "img", NULL);
  io_test_write_file (f->path, 65536, 1);
  g_unsetenv ("RECHAIN_FAULT");
  g_unsetenv ("RECHAIN_FAULT_LOG");
  rechain_fault_reset ();
  f->file = rechain_file_open (f->path, RECHAIN_FILE_READ_WRITE,
                               data ? GPOINTER_TO_INT (data) : RECHAIN_CACHE_WRITEBACK,
                               &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_unsetenv ("RECHAIN_FAULT");
  g_unsetenv ("RECHAIN_FAULT_LOG");
  rechain_fault_reset ();
  rechain_file_close (f->file);
  io_test_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
}

static void
set_fault (const char *spec)
{
  g_setenv ("RECHAIN_FAULT", spec, TRUE);
  rechain_fault_reset ();
}

static gboolean
do_write (Fixture *f, guint64 offset, GError **error)
{
  char buf[512];

  memset (buf, 0x5a, sizeof buf);
  return rechain_file_pwrite (f->file, buf, sizeof buf, offset, error);
}

static gboolean
do_read (Fixture *f, guint64 offset, GError **error)
{
  char buf[512];

  return rechain_file_pread (f->file, buf, sizeof buf, offset, error);
}

/* The Nth write fails with each errno, and only the Nth. */
static void
test_write (Fixture *f, gconstpointer data)
{
  static const struct { const char *name; int err; int code; } cases[] = {
    { "EIO", EIO, RECHAIN_ERROR_IO },
    { "ENOSPC", ENOSPC, RECHAIN_ERROR_NO_SPACE },
    { "EDQUOT", EDQUOT, RECHAIN_ERROR_NO_SPACE },
    { "EFBIG", EFBIG, RECHAIN_ERROR_NO_SPACE },
  };
  GError *error = NULL;

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autofree char *spec = g_strdup_printf ("write:3:%s", cases[c].name);
      g_autofree char *expected = g_strdup_printf (
          "Failed to write 512 bytes at offset 2048 of %s: %s",
          f->path, g_strerror (cases[c].err));

      set_fault (spec);
      for (guint i = 1; i <= 5; i++)
        {
          /* Reads and flushes do not count as writes. */
          g_assert_true (do_read (f, 0, &error));
          g_assert_no_error (error);
          g_assert_true (rechain_file_flush (f->file, &error));
          g_assert_no_error (error);
          if (i == 3)
            {
              g_assert_false (do_write (f, 1024 * (i - 1), &error));
              g_assert_error (error, RECHAIN_ERROR, cases[c].code);
              g_assert_cmpstr (error->message, ==, expected);
              g_clear_error (&error);
            }
          else
            {
              g_assert_true (do_write (f, 1024 * (i - 1), &error));
              g_assert_no_error (error);
            }
        }
    }
}

/* A failed injected write did not touch the file. */
static void
test_write_no_effect (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  char buf[512];

  set_fault ("write:1:EIO");
  g_assert_false (do_write (f, 0, &error));
  g_clear_error (&error);
  g_assert_true (rechain_file_pread (f->file, buf, sizeof buf, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint ((guint8) buf[0], !=, 0x5a);
}

static void
test_flush (Fixture *f, gconstpointer data)
{
  g_autofree char *expected = g_strdup_printf ("Failed to flush %s: %s", f->path, g_strerror (ENOSPC));
  GError *error = NULL;

  set_fault ("flush:2:ENOSPC");
  g_assert_true (do_write (f, 0, &error));
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);
  g_assert_true (do_write (f, 0, &error));
  g_assert_false (rechain_file_flush (f->file, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);

  set_fault ("flush:1:EIO");
  g_assert_false (rechain_file_flush (f->file, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
}

static void
test_read (Fixture *f, gconstpointer data)
{
  g_autofree char *expected = g_strdup_printf (
      "Failed to read 512 bytes at offset 4096 of %s: %s", f->path, g_strerror (EIO));
  GError *error = NULL;
  char buf[512];

  set_fault ("read:2:EIO");
  g_assert_true (do_write (f, 0, &error));
  g_assert_true (do_read (f, 0, &error));
  g_assert_no_error (error);
  /* pread_zero_fill counts as a read too. */
  g_assert_false (rechain_file_pread_zero_fill (f->file, buf, sizeof buf, 4096, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  g_assert_true (do_read (f, 0, &error));
  g_assert_no_error (error);
}

/* "any" counts writes and flushes together, not reads. */
static void
test_any (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  set_fault ("any:4:EIO");
  g_assert_true (do_write (f, 0, &error));                /* 1 */
  g_assert_true (do_read (f, 0, &error));
  g_assert_true (rechain_file_flush (f->file, &error));   /* 2 */
  g_assert_true (do_read (f, 0, &error));
  g_assert_true (do_write (f, 512, &error));              /* 3 */
  g_assert_no_error (error);
  g_assert_false (rechain_file_flush (f->file, &error));  /* 4 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (do_write (f, 0, &error));                /* 5 */
  g_assert_no_error (error);

  /* Several rules at once. */
  set_fault ("write:1:ENOSPC,any:3:EIO");
  g_assert_false (do_write (f, 0, &error));               /* w1, any 1 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
  g_clear_error (&error);
  g_assert_true (rechain_file_flush (f->file, &error));   /* any 2 */
  g_assert_false (do_write (f, 0, &error));               /* any 3 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
}

/* Flushes skipped in cache mode unsafe are not counted. */
static void
test_unsafe_flush (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  set_fault ("flush:1:EIO");
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);
}

static void
test_log (Fixture *f, gconstpointer data)
{
  g_autofree char *log_path = g_build_filename (f->dir, "fault.log", NULL);
  g_autofree char *expected = g_strdup_printf (
      "write %s 0 512\nread %s 4096 512\nflush %s\nwrite %s 1024 512\n",
      f->path, f->path, f->path, f->path);
  g_autofree char *contents = NULL;
  GError *error = NULL;

  g_setenv ("RECHAIN_FAULT_LOG", log_path, TRUE);
  set_fault ("write:2:EIO");
  g_assert_true (do_write (f, 0, &error));
  g_assert_true (do_read (f, 4096, &error));
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);
  /* The failing operation is logged too: the log lists every point. */
  g_assert_false (do_write (f, 1024, &error));
  g_clear_error (&error);
  g_assert_true (g_file_get_contents (log_path, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, expected);

  /* Without RECHAIN_FAULT, the log alone works. */
  g_unsetenv ("RECHAIN_FAULT");
  g_unlink (log_path);
  rechain_fault_reset ();
  g_assert_true (do_write (f, 0, &error));
  g_assert_true (do_write (f, 0, &error));
  g_assert_no_error (error);
  g_clear_pointer (&contents, g_free);
  g_assert_true (g_file_get_contents (log_path, &contents, NULL, NULL));
  g_assert_cmpuint (strlen (contents), >, 0);
  {
    g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);

    g_assert_cmpuint (g_strv_length (lines), ==, 3); /* two lines and "" */
  }
}

static void
test_invalid (Fixture *f, gconstpointer data)
{
  static const char *const specs[] = {
    "write:0:EIO", "write:x:EIO", "write:1:EPERM", "frob:1:EIO", "write:1",
    "write:1:EIO,", "write:1:EIO:extra",
  };
  GError *error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (specs); i++)
    {
      g_test_expect_message ("rechain", G_LOG_LEVEL_WARNING, "*Ignoring invalid RECHAIN_FAULT*");
      set_fault (specs[i]);
      g_test_assert_expected_messages ();
      for (guint n = 0; n < 3; n++)
        {
          g_assert_true (do_write (f, 0, &error));
          g_assert_no_error (error);
        }
    }
}

/* KILL stops the process before the write: checked in a forked child,
 * which must die by SIGKILL having written nothing. */
static void
test_kill (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  char buf[512];
  int status;
  pid_t pid;

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      set_fault ("any:2:KILL");
      if (!do_write (f, 0, NULL))
        _exit (10);
      memset (buf, 0x77, sizeof buf);
      (void) rechain_file_pwrite (f->file, buf, sizeof buf, 4096, NULL);
      _exit (11);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFSIGNALED (status));
  g_assert_cmpint (WTERMSIG (status), ==, SIGKILL);

  /* The first write happened, the second did not. */
  g_assert_true (rechain_file_pread (f->file, buf, sizeof buf, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint ((guint8) buf[0], ==, 0x5a);
  g_assert_true (rechain_file_pread (f->file, buf, sizeof buf, 4096, &error));
  g_assert_no_error (error);
  g_assert_cmpint ((guint8) buf[0], !=, 0x77);
}

/* The counters are shared by all threads: with many threads writing, the
 * Nth write of the process fails exactly once. */
typedef struct {
  Fixture *f;
  gint failures;
} ThreadData;

static gpointer
writer_thread (gpointer p)
{
  ThreadData *td = p;

  for (guint i = 0; i < 200; i++)
    {
      GError *error = NULL;

      if (!do_write (td->f, 512 * (i % 64), &error))
        {
          g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
          g_clear_error (&error);
          g_atomic_int_inc (&td->failures);
        }
    }
  return NULL;
}

static void
test_threads (Fixture *f, gconstpointer data)
{
  ThreadData td = { f, 0 };
  GThread *threads[8];
  g_autofree char *log_path = g_build_filename (f->dir, "fault.log", NULL);
  g_autofree char *contents = NULL;

  g_setenv ("RECHAIN_FAULT_LOG", log_path, TRUE);
  set_fault ("write:777:EIO");
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("writer", writer_thread, &td);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
  g_assert_cmpint (td.failures, ==, 1);

  /* One whole line per operation. */
  g_assert_true (g_file_get_contents (log_path, &contents, NULL, NULL));
  {
    g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);
    g_autofree char *prefix = g_strdup_printf ("write %s ", f->path);

    g_assert_cmpuint (g_strv_length (lines), ==, 8 * 200 + 1);
    for (guint i = 0; i < 8 * 200; i++)
      {
        g_assert_true (g_str_has_prefix (lines[i], prefix));
        g_assert_true (g_str_has_suffix (lines[i], " 512"));
      }
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, fn, data) \
  g_test_add ("/io/fault/" name, Fixture, data, fixture_setup, fn, fixture_teardown)
  ADD ("write", test_write, NULL);
  ADD ("write-no-effect", test_write_no_effect, NULL);
  ADD ("flush", test_flush, NULL);
  ADD ("read", test_read, NULL);
  ADD ("any", test_any, NULL);
  ADD ("unsafe-flush", test_unsafe_flush, GINT_TO_POINTER (RECHAIN_CACHE_UNSAFE));
  ADD ("log", test_log, NULL);
  ADD ("invalid", test_invalid, NULL);
  ADD ("kill", test_kill, NULL);
  ADD ("threads", test_threads, NULL);
#undef ADD

  return g_test_run ();
}
