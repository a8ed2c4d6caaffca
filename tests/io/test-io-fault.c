/* test-io-fault.c: RECHAIN_FAULT and RECHAIN_FAULT_LOG: failing, killing
 * and crashing (power loss: unflushed writes lost, all, none or a random
 * subset) at the Nth operation, per-file filters.
 *
 * The fault injection is the shim of tests/fault, linked into this program
 * (it comes before the C library, so it interposes the io layer's calls
 * as it does in a rechain it is preloaded into); the io layer itself has
 * none.
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
#include "fault-shim.h"
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
    "write:1:EIO,", "write:1:EIO:", "write:1x+:EIO", "write:0+:EIO", "write:+:EIO",
    "write:1:CRASH-SOME", "any:1:crash",
    "background-flush:1:CRASH", "background-flush:1:CRASH-KEEP", "background-flush:0:EIO",
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

/* Writes @mib MiB at offset 0, in 1 MiB pieces. */
static void
write_mib (Fixture *f, guint mib)
{
  g_autofree guint8 *buf = g_malloc (1 << 20);
  GError *error = NULL;

  memset (buf, 0xa5, 1 << 20);
  for (guint i = 0; i < mib; i++)
    {
      g_assert_true (rechain_file_pwrite (f->file, buf, 1 << 20, (guint64) i << 20, &error));
      g_assert_no_error (error);
    }
}

/* After 4 MiB written, the io layer flushes on a thread of its own; the
 * kernel reports a writeback error to one fdatasync() only, so an error
 * that background flush saw must make the next flush of the file fail,
 * and every later one (the data it lost is not written again). */
static void
test_background_flush (Fixture *f, gconstpointer data)
{
  g_autofree char *expected = g_strdup_printf ("Failed to flush %s: %s", f->path, g_strerror (EIO));
  GError *error = NULL;

  set_fault ("background-flush:1:EIO");
  write_mib (f, 5);
  g_assert_false (rechain_file_flush (f->file, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  g_assert_false (rechain_file_flush (f->file, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
}

/* Background flushes happen when timing says: "any" does not count them
 * and the log does not list them, so that both stay reproducible. */
static void
test_background_flush_uncounted (Fixture *f, gconstpointer data)
{
  g_autofree char *log_path = g_build_filename (f->dir, "fault.log", NULL);
  g_autofree char *contents = NULL;
  GError *error = NULL;

  g_setenv ("RECHAIN_FAULT_LOG", log_path, TRUE);
  set_fault ("any:7:EIO");
  write_mib (f, 5);                                       /* 1..5 */
  g_assert_true (rechain_file_flush (f->file, &error));   /* 6 */
  g_assert_no_error (error);
  g_assert_false (do_write (f, 0, &error));               /* 7 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (g_file_get_contents (log_path, &contents, NULL, NULL));
  g_assert_null (strstr (contents, "background"));
  {
    g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);

    g_assert_cmpuint (g_strv_length (lines), ==, 8); /* seven lines and "" */
  }
}

/* None in cache mode unsafe (nothing is ever flushed there). */
static void
test_background_flush_unsafe (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  set_fault ("background-flush:1+:EIO");
  write_mib (f, 9);
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);
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

/* ---- per-file filters and "N+" ---- */

static RechainFile *
open_other (Fixture *f, const char *name, gsize size, guint seed, RechainCacheMode cache)
{
  g_autofree char *path = g_build_filename (f->dir, name, NULL);
  GError *error = NULL;
  RechainFile *file;

  if (size > 0)
    io_test_write_file (path, size, seed);
  file = rechain_file_open (path, RECHAIN_FILE_READ_WRITE, cache, &error);
  g_assert_no_error (error);
  return file;
}

static gboolean
write_byte_pattern (RechainFile *file, guint8 value, gsize len, guint64 offset, GError **error)
{
  g_autofree guint8 *buf = g_malloc (len);

  memset (buf, value, len);
  return rechain_file_pwrite (file, buf, len, offset, error);
}

/* A FILE pattern: only that file's operations count and fail. */
static void
test_filter (Fixture *f, gconstpointer data)
{
  g_autoptr (RechainFile) other = open_other (f, "other.img", 65536, 2, RECHAIN_CACHE_WRITEBACK);
  g_autoptr (RechainFile) third = open_other (f, "third.img", 65536, 3, RECHAIN_CACHE_WRITEBACK);
  g_autofree char *other_glob = g_build_filename (f->dir, "o*.img", NULL);
  g_autofree char *other_spec = NULL;
  GError *error = NULL;

  /* the second write to other.img, whatever is written elsewhere */
  set_fault ("write:2:EIO:other.img");
  for (guint i = 0; i < 4; i++)
    {
      g_assert_true (do_write (f, 0, &error));
      g_assert_no_error (error);
    }
  g_assert_true (write_byte_pattern (other, 1, 512, 0, &error));
  g_assert_true (do_write (f, 0, &error));
  g_assert_false (write_byte_pattern (other, 1, 512, 0, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (write_byte_pattern (other, 1, 512, 0, &error));
  g_assert_no_error (error);

  /* "N+": that one and every later one; flushes of other files unaffected */
  set_fault ("any:2+:ENOSPC:*her.img");
  g_assert_true (write_byte_pattern (other, 1, 512, 0, &error));
  for (guint i = 0; i < 3; i++)
    {
      g_assert_false (rechain_file_flush (other, &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
      g_clear_error (&error);
      g_assert_false (write_byte_pattern (other, 1, 512, 0, &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
      g_clear_error (&error);
      g_assert_true (rechain_file_flush (f->file, &error));
      g_assert_true (write_byte_pattern (third, 1, 512, 0, &error));
      g_assert_no_error (error);
    }

  /* a pattern with '/' is matched against the whole path only */
  set_fault ("write:1+:EIO:/nonexistent/*");
  g_assert_true (write_byte_pattern (other, 1, 512, 0, &error));
  g_assert_no_error (error);
  other_spec = g_strdup_printf ("write:1+:EIO:%s", other_glob);
  set_fault (other_spec);
  g_assert_false (write_byte_pattern (other, 1, 512, 0, &error));
  g_clear_error (&error);
  g_assert_true (write_byte_pattern (third, 1, 512, 0, &error));
  g_assert_true (do_write (f, 0, &error));
  g_assert_no_error (error);

  /* several rules, each with its own count */
  set_fault ("write:1:EDQUOT:third.img,write:3:EIO");
  g_assert_true (do_write (f, 0, &error));                          /* write 1 */
  g_assert_false (write_byte_pattern (third, 1, 512, 0, &error));   /* third 1, write 2 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
  g_clear_error (&error);
  g_assert_false (write_byte_pattern (third, 1, 512, 0, &error));   /* write 3 */
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_clear_error (&error);
  g_assert_true (write_byte_pattern (third, 1, 512, 0, &error));
  g_assert_no_error (error);
}

#define SUBSET_BASE_SIZE 65536

/* ---- crash ---- */

/* A fresh file content (g_file_set_contents makes a new inode: reopen). */
static void
refill (Fixture *f, guint seed)
{
  GError *error = NULL;

  rechain_file_close (f->file);
  io_test_write_file (f->path, SUBSET_BASE_SIZE, seed);
  f->file = rechain_file_open (f->path, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
}

static char *
read_all (const char *path, gsize *len)
{
  char *contents = NULL;
  GError *error = NULL;

  g_file_get_contents (path, &contents, len, &error);
  g_assert_no_error (error);
  return contents;
}

typedef void (*ChildFn) (Fixture *f, gconstpointer data);

/* Runs @fn in a child process with RECHAIN_FAULT=@spec (and the seed);
 * returns its wait status. */
static int
run_child (Fixture *f, const char *spec, guint64 seed, ChildFn fn, gconstpointer data)
{
  int status;
  pid_t pid;

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      g_autofree char *seed_text = g_strdup_printf ("%" G_GUINT64_FORMAT, seed);

      g_setenv ("RECHAIN_FAULT_SEED", seed_text, TRUE);
      set_fault (spec);
      fn (f, data);
      _exit (10); /* the crash did not happen */
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return status;
}

static void
assert_crashed (int status)
{
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, RECHAIN_FAULT_CRASH_STATUS);
}

#define ASSERT_PWRITE(file, val, len, off) \
  G_STMT_START { \
    GError *err_ = NULL; \
    if (!write_byte_pattern ((file), (val), (len), (off), &err_)) \
      { \
        g_printerr ("%s\n", err_->message); \
        _exit (11); \
      } \
  } G_STMT_END
#define ASSERT_FLUSH(file) \
  G_STMT_START { \
    if (!rechain_file_flush ((file), NULL)) \
      _exit (12); \
  } G_STMT_END

static void
child_basic (Fixture *f, gconstpointer data)
{
  ASSERT_PWRITE (f->file, 0xa1, 512, 0);
  ASSERT_FLUSH (f->file);
  ASSERT_PWRITE (f->file, 0xa2, 512, 1024);
  ASSERT_PWRITE (f->file, 0xa3, 512, 1024 + 256);
  ASSERT_PWRITE (f->file, 0xa4, 512, 8192); /* the 4th write: the crash, not done */
}

/* A write made durable by a flush survives; later ones are lost (REVERT)
 * or kept (KEEP); the crashing write itself is never done. */
static void
test_crash_revert_keep (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *orig = g_malloc (65536);
  g_autofree char *contents = NULL;
  gsize len;

  io_test_fill_pattern (orig, 65536, 1);

  assert_crashed (run_child (f, "write:4:CRASH-REVERT", 0, child_basic, NULL));
  contents = read_all (f->path, &len);
  g_assert_cmpuint (len, ==, 65536);
  for (guint i = 0; i < 512; i++)
    g_assert_cmpuint ((guint8) contents[i], ==, 0xa1);
  g_assert_cmpmem (contents + 512, 65536 - 512, orig + 512, 65536 - 512);
  g_clear_pointer (&contents, g_free);

  assert_crashed (run_child (f, "write:4:CRASH-KEEP", 0, child_basic, NULL));
  contents = read_all (f->path, &len);
  g_assert_cmpuint (len, ==, 65536);
  for (guint i = 1024; i < 1280; i++)
    g_assert_cmpuint ((guint8) contents[i], ==, 0xa2);
  for (guint i = 1280; i < 1792; i++)
    g_assert_cmpuint ((guint8) contents[i], ==, 0xa3);
  g_assert_cmpmem (contents + 1792, 8192 - 1792, orig + 1792, 8192 - 1792);
  g_assert_cmpmem (contents + 8192, 512, orig + 8192, 512);
}

static void
child_flush_point (Fixture *f, gconstpointer data)
{
  ASSERT_PWRITE (f->file, 0xb1, 4096, 0);
  ASSERT_FLUSH (f->file);
  ASSERT_PWRITE (f->file, 0xb2, 4096, 4096);
  ASSERT_PWRITE (f->file, 0xb3, 4096, 65536); /* extends the file */
  ASSERT_FLUSH (f->file);                     /* flush 2: the crash, not done */
}

/* At a flush: the flush itself does not happen, so the writes it would
 * have made durable are lost, and the file is cut back to its size at the
 * last flush. */
static void
test_crash_at_flush (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *orig = g_malloc (65536);
  g_autofree char *contents = NULL;
  gsize len;

  io_test_fill_pattern (orig, 65536, 1);
  assert_crashed (run_child (f, "flush:2:CRASH-REVERT", 0, child_flush_point, NULL));
  contents = read_all (f->path, &len);
  g_assert_cmpuint (len, ==, 65536);
  for (guint i = 0; i < 4096; i++)
    g_assert_cmpuint ((guint8) contents[i], ==, 0xb1);
  g_assert_cmpmem (contents + 4096, 65536 - 4096, orig + 4096, 65536 - 4096);
  g_clear_pointer (&contents, g_free);

  /* "any" counts the same way: write 1, flush 2, write 3, write 4, flush 5 */
  refill (f, 1);
  assert_crashed (run_child (f, "any:5:CRASH-KEEP", 0, child_flush_point, NULL));
  contents = read_all (f->path, &len);
  g_assert_cmpuint (len, ==, 65536 + 4096);
  for (guint i = 65536; i < 65536 + 4096; i++)
    g_assert_cmpuint ((guint8) contents[i], ==, 0xb3);
}

/* The writes of child_subsets, after a flush (offset, length, value). */
static const struct { guint64 offset; gsize len; guint8 value; } subset_writes[] = {
  { 2048, 8192, 0xc1 },
  { 6144, 4096, 0xc2 },   /* over the end of the one before */
  { 61440, 16384, 0xc3 }, /* extends the file to 77824 */
  { 98304, 4096, 0xc4 },  /* extends it to 102400, leaving a hole */
  { 3072, 1024, 0xc5 },   /* inside the first */
  { 71680, 2048, 0xc6 },  /* inside the extension */
  { 0, 512, 0xc7 },
};
#define N_SUBSET_WRITES G_N_ELEMENTS (subset_writes)
#define SUBSET_BASE 65536

static void
child_subsets (Fixture *f, gconstpointer data)
{
  ASSERT_PWRITE (f->file, 0xc0, 4096, 0);
  ASSERT_FLUSH (f->file);
  for (guint i = 0; i < N_SUBSET_WRITES; i++)
    ASSERT_PWRITE (f->file, subset_writes[i].value, subset_writes[i].len, subset_writes[i].offset);
  ASSERT_PWRITE (f->file, 0xff, 512, 0); /* the crash */
}

/* What the file holds if exactly the writes in @mask survived. */
static GByteArray *
subset_model (guint mask)
{
  GByteArray *a = g_byte_array_sized_new (SUBSET_BASE);
  guint64 size = SUBSET_BASE;

  g_byte_array_set_size (a, SUBSET_BASE);
  io_test_fill_pattern (a->data, SUBSET_BASE, 1);
  memset (a->data, 0xc0, 4096);
  for (guint i = 0; i < N_SUBSET_WRITES; i++)
    {
      guint64 end = subset_writes[i].offset + subset_writes[i].len;

      if (!(mask & (1u << i)))
        continue;
      if (end > size)
        {
          g_byte_array_set_size (a, (guint) end);
          memset (a->data + size, 0, end - size);
          size = end;
        }
      memset (a->data + subset_writes[i].offset, subset_writes[i].value, subset_writes[i].len);
    }
  return a;
}

static char *
mask_string (guint mask)
{
  char *m = g_malloc0 (N_SUBSET_WRITES + 1);

  for (guint i = 0; i < N_SUBSET_WRITES; i++)
    m[i] = (mask & (1u << i)) ? '1' : '0';
  return m;
}

/* Crashes child_subsets with @spec (and @seed, or RECHAIN_FAULT_CRASH_MASK
 * @mask_env) and checks the file is exactly what the surviving writes
 * leave; returns those as a bit set. */
static guint
crash_and_check (Fixture *f, const char *spec, guint64 seed, const char *mask_env)
{
  g_autofree char *log_path = g_build_filename (f->dir, "crash.log", NULL);
  g_autofree char *log = NULL;
  g_autofree char *contents = NULL;
  g_autoptr (GByteArray) model = NULL;
  const char *line;
  guint mask = 0;
  gsize len;

  refill (f, 1);
  g_unlink (log_path);
  g_setenv ("RECHAIN_FAULT_LOG", log_path, TRUE);
  if (mask_env)
    g_setenv ("RECHAIN_FAULT_CRASH_MASK", mask_env, TRUE);
  assert_crashed (run_child (f, spec, seed, child_subsets, NULL));
  g_unsetenv ("RECHAIN_FAULT_CRASH_MASK");
  g_unsetenv ("RECHAIN_FAULT_LOG");

  /* the log says which writes survived */
  log = read_all (log_path, NULL);
  line = strstr (log, "crash-mask ");
  g_assert_nonnull (line);
  line += strlen ("crash-mask ");
  g_assert_cmpuint (strcspn (line, "\n"), ==, N_SUBSET_WRITES);
  for (guint i = 0; i < N_SUBSET_WRITES; i++)
    if (line[i] == '1')
      mask |= 1u << i;

  contents = read_all (f->path, &len);
  model = subset_model (mask);
  if (len != model->len || memcmp (contents, model->data, len) != 0)
    g_error ("%s (seed %" G_GUINT64_FORMAT ", mask %s): the file (%" G_GSIZE_FORMAT " bytes) "
             "is not what the surviving writes leave (%u bytes)", spec, seed,
             mask_env ? mask_env : "-", len, model->len);
  return mask;
}

/* Overlapping writes, extensions and holes: after a crash the file is
 * exactly what the surviving unflushed writes leave (each byte from the
 * latest surviving write, else as flushed; the size the largest of the
 * flushed one and the surviving writes' ends) -- for every one of the 128
 * subsets (CRASH-MASK), for REVERT (none), KEEP (all) and for random ones
 * (CRASH: the same seed gives the same subset, different seeds different
 * ones, and the log's crash-mask reproduces it). */
static void
test_crash_subsets (Fixture *f, gconstpointer data)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  guint all = (1u << N_SUBSET_WRITES) - 1;

  for (guint mask = 0; mask <= all; mask++)
    {
      g_autofree char *m = mask_string (mask);

      g_assert_cmpuint (crash_and_check (f, "write:9:CRASH-MASK", 0, m), ==, mask);
    }
  /* a short mask: the writes past its end are lost */
  g_assert_cmpuint (crash_and_check (f, "write:9:CRASH-MASK", 0, "01"), ==, 2);
  g_assert_cmpuint (crash_and_check (f, "write:9:CRASH-REVERT", 0, NULL), ==, 0);
  g_assert_cmpuint (crash_and_check (f, "write:9:CRASH-KEEP", 0, NULL), ==, all);
  for (guint seed = 0; seed < 24; seed++)
    {
      guint mask = crash_and_check (f, "write:9:CRASH", seed, NULL);

      g_hash_table_add (seen, GUINT_TO_POINTER (mask + 1));
      if (seed == 3)
        {
          g_autofree char *m = mask_string (mask);

          g_assert_cmpuint (crash_and_check (f, "write:9:CRASH", seed, NULL), ==, mask);
          g_assert_cmpuint (crash_and_check (f, "write:9:CRASH-MASK", 0, m), ==, mask);
        }
    }
  /* 24 seeds, 128 subsets: random enough to see many */
  g_assert_cmpuint (g_hash_table_size (seen), >=, 12);

  g_setenv ("RECHAIN_FAULT_CRASH_MASK", "01x", TRUE);
  g_test_expect_message ("rechain", G_LOG_LEVEL_WARNING, "*RECHAIN_FAULT_CRASH_MASK*");
  set_fault ("write:1:CRASH-MASK");
  g_test_assert_expected_messages ();
  g_unsetenv ("RECHAIN_FAULT_CRASH_MASK");
}

static void
child_files (Fixture *f, gconstpointer data)
{
  g_autofree char *alias = g_build_filename (f->dir, ".", "second.img", NULL);
  g_autoptr (RechainFile) second = open_other (f, "second.img", 0, 0, RECHAIN_CACHE_WRITEBACK);
  g_autoptr (RechainFile) second_alias = NULL;
  g_autoptr (RechainFile) wt = NULL;
  GError *error = NULL;

  second_alias = rechain_file_open (alias, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITEBACK,
                                    &error);
  wt = rechain_file_open (f->path, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITETHROUGH, &error);
  g_assert_no_error (error);

  ASSERT_PWRITE (f->file, 0xd1, 512, 0);
  ASSERT_PWRITE (second, 0xd2, 512, 0);
  ASSERT_PWRITE (second_alias, 0xd3, 512, 512);
  /* one name's flush makes both names' writes durable, not the other file's */
  ASSERT_FLUSH (second_alias);
  ASSERT_PWRITE (second, 0xd4, 512, 1024);
  /* O_DSYNC: durable at once, even over a lost write */
  ASSERT_PWRITE (f->file, 0xd5, 1024, 4096);
  ASSERT_PWRITE (wt, 0xd6, 512, 4096 + 256);
  ASSERT_PWRITE (f->file, 0xd7, 512, 8192);
  ASSERT_FLUSH (f->file); /* the crash */
}

static void
test_crash_files (Fixture *f, gconstpointer data)
{
  g_autofree char *second_path = g_build_filename (f->dir, "second.img", NULL);
  g_autofree guint8 *orig = g_malloc (65536);
  g_autofree char *a = NULL, *b = NULL;
  gsize alen, blen;

  io_test_fill_pattern (orig, 65536, 1);
  io_test_write_file (second_path, 65536, 2);
  assert_crashed (run_child (f, "flush:2:CRASH-REVERT", 0, child_files, NULL));
  a = read_all (f->path, &alen);
  b = read_all (second_path, &blen);
  g_assert_cmpuint (alen, ==, 65536);
  g_assert_cmpuint (blen, ==, 65536);
  g_assert_cmpmem (a, 4096 + 256, orig, 4096 + 256);
  for (guint i = 4096 + 256; i < 4096 + 768; i++)
    g_assert_cmpuint ((guint8) a[i], ==, 0xd6);
  g_assert_cmpmem (a + 4096 + 768, 65536 - 4096 - 768, orig + 4096 + 768, 65536 - 4096 - 768);
  for (guint i = 0; i < 512; i++)
    g_assert_cmpuint ((guint8) b[i], ==, 0xd2);
  for (guint i = 512; i < 1024; i++)
    g_assert_cmpuint ((guint8) b[i], ==, 0xd3);
  {
    g_autofree guint8 *orig2 = g_malloc (65536);

    io_test_fill_pattern (orig2, 65536, 2);
    g_assert_cmpmem (b + 1024, 65536 - 1024, orig2 + 1024, 65536 - 1024);
  }
}

/* The log of pre-images: only what the file held (not what lies past its
 * end), emptied by a flush, bounded by RECHAIN_FAULT_CRASH_MAX (exceeding
 * it aborts the process: never a silently partial log). */
static void
test_crash_log_bound (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  int status;
  pid_t pid;

  set_fault ("write:1000:CRASH");
  g_assert_cmpuint (rechain_fault_crash_log_bytes (), ==, 0);
  g_assert_true (write_byte_pattern (f->file, 1, 4096, 0, &error));
  g_assert_true (write_byte_pattern (f->file, 1, 4096, 65536 - 1024, &error));
  g_assert_true (write_byte_pattern (f->file, 1, 1 << 20, 1 << 20, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (rechain_fault_crash_log_bytes (), ==, 4096 + 1024);
  g_assert_true (rechain_file_flush (f->file, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (rechain_fault_crash_log_bytes (), ==, 0);
  /* without a crash rule nothing is kept */
  set_fault ("write:1000:KILL");
  g_assert_true (write_byte_pattern (f->file, 1, 4096, 0, &error));
  g_assert_cmpuint (rechain_fault_crash_log_bytes (), ==, 0);

  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      g_setenv ("RECHAIN_FAULT_CRASH_MAX", "8k", TRUE);
      set_fault ("write:1000:CRASH");
      /* about 4 KiB each: the second goes over */
      (void) write_byte_pattern (f->file, 1, 4000, 0, NULL);
      (void) write_byte_pattern (f->file, 1, 4000, 8192, NULL);
      (void) write_byte_pattern (f->file, 1, 4000, 16384, NULL);
      _exit (10);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFSIGNALED (status));
  g_assert_cmpint (WTERMSIG (status), ==, SIGABRT);

  /* invalid bounds and seeds make the whole setting invalid */
  g_setenv ("RECHAIN_FAULT_CRASH_MAX", "lots", TRUE);
  g_test_expect_message ("rechain", G_LOG_LEVEL_WARNING, "*RECHAIN_FAULT_CRASH_MAX*");
  set_fault ("write:1:EIO");
  g_test_assert_expected_messages ();
  g_assert_true (do_write (f, 0, &error));
  g_unsetenv ("RECHAIN_FAULT_CRASH_MAX");
  g_setenv ("RECHAIN_FAULT_SEED", "x", TRUE);
  g_test_expect_message ("rechain", G_LOG_LEVEL_WARNING, "*RECHAIN_FAULT_SEED*");
  set_fault ("write:1:EIO");
  g_test_assert_expected_messages ();
  g_assert_true (do_write (f, 0, &error));
  g_assert_no_error (error);
  g_unsetenv ("RECHAIN_FAULT_SEED");
}

/* The log tells what the crash did. */
static void
test_crash_log_lines (Fixture *f, gconstpointer data)
{
  g_autofree char *log_path = g_build_filename (f->dir, "fault.log", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *expected = NULL;

  g_setenv ("RECHAIN_FAULT_LOG", log_path, TRUE);
  assert_crashed (run_child (f, "write:4:CRASH-REVERT", 0, child_basic, NULL));
  g_unsetenv ("RECHAIN_FAULT_LOG");
  contents = read_all (log_path, NULL);
  expected = g_strdup_printf ("write %s 0 512\nflush %s\nwrite %s 1024 512\nwrite %s 1280 512\n"
                              "write %s 8192 512\ncrash %s kept=0 reverted=2\ncrash-mask 00\n",
                              f->path, f->path, f->path, f->path, f->path, f->path);
  g_assert_cmpstr (contents, ==, expected);
}

/* Many threads writing when one of them crashes: the crash waits for the
 * writes the others have in flight and stops them from issuing more, so
 * losing every write gives back the file exactly as it was (and nothing
 * deadlocks). The race it guards against is rare: a smoke test. */
static void
child_threads (Fixture *f, gconstpointer data)
{
  ThreadData td = { f, 0 };
  GThread *threads[8];

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("writer", writer_thread, &td);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
}

static void
test_crash_threads (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *orig = g_malloc (65536);
  g_autofree char *contents = NULL;
  gsize len;

  io_test_fill_pattern (orig, 65536, 1);
  for (guint round = 0; round < 5; round++)
    {
      g_autofree char *spec = g_strdup_printf ("write:%u:CRASH-REVERT", 300 + 211 * round);

      assert_crashed (run_child (f, spec, 0, child_threads, NULL));
      contents = read_all (f->path, &len);
      g_assert_cmpmem (contents, len, orig, 65536);
      g_clear_pointer (&contents, g_free);
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
  ADD ("background-flush", test_background_flush, NULL);
  /* O_DIRECT writes skip the page cache, not the disk's own cache */
  ADD ("background-flush-direct", test_background_flush, GINT_TO_POINTER (RECHAIN_CACHE_NONE));
  ADD ("background-flush-uncounted", test_background_flush_uncounted, NULL);
  ADD ("background-flush-unsafe", test_background_flush_unsafe, GINT_TO_POINTER (RECHAIN_CACHE_UNSAFE));
  ADD ("threads", test_threads, NULL);
  ADD ("filter", test_filter, NULL);
  ADD ("crash/revert-keep", test_crash_revert_keep, NULL);
  ADD ("crash/at-flush", test_crash_at_flush, NULL);
  ADD ("crash/subsets", test_crash_subsets, NULL);
  ADD ("crash/files", test_crash_files, NULL);
  ADD ("crash/log-bound", test_crash_log_bound, NULL);
  ADD ("crash/log-lines", test_crash_log_lines, NULL);
  ADD ("crash/threads", test_crash_threads, NULL);
#undef ADD

  return g_test_run ();
}
