/* test-io-file.c: positioned I/O, EOF handling, errors and cache modes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include "io/file.h"
#include "io-test-util.h"

static const RechainCacheMode all_modes[] = {
  RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITETHROUGH, RECHAIN_CACHE_NONE,
  RECHAIN_CACHE_DIRECTSYNC, RECHAIN_CACHE_UNSAFE,
};

/* Opens @path, or returns NULL after g_test_skip() if the cache mode needs
 * O_DIRECT and the file system of @path refuses it. */
static RechainFile *
open_or_skip (const char *path, RechainFileFlags flags, RechainCacheMode cache)
{
  GError *error = NULL;
  RechainFile *file = rechain_file_open (path, flags, cache, &error);

  if (file == NULL && g_error_matches (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT)
      && strstr (error->message, "O_DIRECT") != NULL)
    {
      g_test_skip (error->message);
      g_clear_error (&error);
      return NULL;
    }
  g_assert_no_error (error);
  return file;
}

static void
test_cache_mode_names (void)
{
  static const char *const names[] = {
    "writeback", "writethrough", "none", "directsync", "unsafe",
  };
  GError *error = NULL;
  RechainCacheMode mode;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (rechain_cache_mode_from_string (names[i], &mode, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (rechain_cache_mode_to_string (mode), ==, names[i]);
    }
  g_assert_true (rechain_cache_mode_from_string ("none", &mode, NULL));
  g_assert_cmpint (mode, ==, RECHAIN_CACHE_NONE);

  for (guint i = 0; i < 3; i++)
    {
      const char *bad = (const char *[]) { "x", "", "WriteBack" }[i];
      g_autofree char *expected = g_strdup_printf ("Invalid cache mode '%s'", bad);

      g_assert_false (rechain_cache_mode_from_string (bad, &mode, &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);
    }
}

static void
test_open_enoent (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "missing.qcow2", NULL);
  g_autofree char *expected = g_strdup_printf ("%s: could not open: No such file or directory", path);
  GError *error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (all_modes); i++)
    {
      g_assert_null (rechain_file_open (path, RECHAIN_FILE_READ_ONLY, all_modes[i], &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_BACKING_NOT_FOUND);
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);
    }
  io_test_rmdir (dir);
}

static void
test_open_not_regular (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *fifo = g_build_filename (dir, "fifo", NULL);
  GError *error = NULL;

  /* A directory, read-only (open succeeds, fstat refuses) and read-write
   * (open fails with EISDIR). */
  g_assert_null (rechain_file_open (dir, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_nonnull (strstr (error->message, dir));
  g_assert_nonnull (strstr (error->message, "Is a directory"));
  g_clear_error (&error);
  g_assert_null (rechain_file_open (dir, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITEBACK, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "Is a directory"));
  g_clear_error (&error);

  /* A FIFO must be refused without blocking in open(). */
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_null (rechain_file_open (fifo, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "not a regular file or block device"));
  g_clear_error (&error);

  /* A character device. */
  g_assert_null (rechain_file_open ("/dev/null", RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, "/dev/null: "));
  g_clear_error (&error);

  io_test_rmdir (dir);
}

static void
test_open_eacces (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *expected = g_strdup_printf ("%s: could not open: Permission denied", path);
  GError *error = NULL;

  if (geteuid () == 0)
    {
      /* root ignores file modes. */
      g_test_skip ("running as root: permissions are not enforced");
      io_test_rmdir (dir);
      return;
    }
  io_test_write_file (path, 512, 1);
  g_assert_cmpint (g_chmod (path, 0400), ==, 0);
  g_assert_null (rechain_file_open (path, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITEBACK, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  io_test_rmdir (dir);
}

static void
test_open_flags (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);

  io_test_write_file (path, 8192, 1);
  for (guint i = 0; i < G_N_ELEMENTS (all_modes); i++)
    {
      RechainCacheMode mode = all_modes[i];
      gboolean direct = mode == RECHAIN_CACHE_NONE || mode == RECHAIN_CACHE_DIRECTSYNC;
      gboolean dsync = mode == RECHAIN_CACHE_WRITETHROUGH || mode == RECHAIN_CACHE_DIRECTSYNC;
      g_autoptr (RechainFile) file = open_or_skip (path, RECHAIN_FILE_READ_WRITE, mode);
      int fl;

      if (file == NULL)
        continue;
      fl = fcntl (rechain_file_get_fd (file), F_GETFL);
      g_assert_cmpint (fl & O_ACCMODE, ==, O_RDWR);
      g_assert_cmpint (!!(fl & O_DIRECT), ==, direct);
      g_assert_cmpint (!!(fl & O_DSYNC), ==, dsync);
      g_assert_cmpint (fl & O_NONBLOCK, ==, 0);
      g_assert_cmpint (fcntl (rechain_file_get_fd (file), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
      g_assert_true (rechain_file_is_writable (file));
      g_assert_cmpint (rechain_file_get_cache_mode (file), ==, mode);
      g_assert_cmpstr (rechain_file_get_path (file), ==, path);
      if (direct)
        {
          g_assert_cmpuint (rechain_file_get_alignment (file), >=, 4096);
          g_assert_cmpuint (rechain_file_get_alignment (file) % 512, ==, 0);
        }
      else
        g_assert_cmpuint (rechain_file_get_alignment (file), ==, 1);
    }
  {
    g_autoptr (RechainFile) ro = open_or_skip (path, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK);

    g_assert_false (rechain_file_is_writable (ro));
    g_assert_cmpint (fcntl (rechain_file_get_fd (ro), F_GETFL) & O_ACCMODE, ==, O_RDONLY);
  }
  io_test_rmdir (dir);
}

/* Writes and reads back at aligned and unaligned places, in every cache
 * mode, and checks the file against a model kept in memory. */
static void
test_roundtrip (gconstpointer data)
{
  RechainCacheMode mode = GPOINTER_TO_INT (data);
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  static const struct { guint64 offset; gsize len; } ops[] = {
    { 0, 4096 },          /* aligned */
    { 8192, 65536 },      /* aligned, extends the file */
    { 100, 7 },           /* small, unaligned */
    { 4000, 300 },        /* crosses a block boundary */
    { 70000, 5000 },      /* unaligned, past the end: extends */
    { 1, 200000 },        /* long and unaligned */
  };
  gsize model_len = 0;
  g_autofree guint8 *model = g_malloc0 (300000);
  guint8 *buf = rechain_io_buffer_alloc (300000);
  guint8 *check = rechain_io_buffer_alloc (300000);
  GError *error = NULL;
  guint64 size;
  RechainFile *file;

  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  file = open_or_skip (path, RECHAIN_FILE_READ_WRITE, mode);
  if (file == NULL)
    goto out;

  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    {
      io_test_fill_pattern (buf, ops[i].len, i + 1);
      g_assert_true (rechain_file_pwrite (file, buf, ops[i].len, ops[i].offset, &error));
      g_assert_no_error (error);
      memcpy (model + ops[i].offset, buf, ops[i].len);
      model_len = MAX (model_len, ops[i].offset + ops[i].len);

      /* The size is exactly what plain writes would give, even where
       * O_DIRECT had to write whole blocks. */
      g_assert_true (rechain_file_get_size (file, &size, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (size, ==, model_len);

      /* Read back the whole file, then the piece, unaligned. */
      memset (check, 0xaa, model_len);
      g_assert_true (rechain_file_pread (file, check, model_len, 0, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (check, model_len, model, model_len);
      g_assert_true (rechain_file_pread (file, check + 1, ops[i].len, ops[i].offset, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (check + 1, ops[i].len, model + ops[i].offset, ops[i].len);
    }
  g_assert_true (rechain_file_flush (file, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (rechain_file_get_allocated (file), >, 0);
  rechain_file_close (file);

  /* And through the page cache, as another program would see it. */
  {
    g_autofree char *contents = NULL;
    gsize len;

    g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
    g_assert_cmpmem (contents, len, model, model_len);
  }
out:
  rechain_io_buffer_free (buf);
  rechain_io_buffer_free (check);
  io_test_rmdir (dir);
}

/* Reads that reach past the end of the file: an error for pread, zeros for
 * pread_zero_fill, in every cache mode (O_DIRECT returns a short, possibly
 * unaligned count there). */
static void
test_eof (gconstpointer data)
{
  RechainCacheMode mode = GPOINTER_TO_INT (data);
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  const gsize file_len = 5000;
  g_autofree guint8 *model = g_malloc0 (3 * 8192);
  guint8 *buf = rechain_io_buffer_alloc (3 * 8192);
  static const struct { guint64 offset; gsize len; } reads[] = {
    { 0, 8192 },      /* aligned, ends past EOF */
    { 4096, 4096 },   /* aligned, starts before EOF */
    { 8192, 4096 },   /* aligned, entirely past EOF */
    { 4990, 100 },    /* unaligned across EOF */
    { 6000, 10 },     /* unaligned past EOF */
    { 0, 3 * 8192 },
  };
  GError *error = NULL;
  RechainFile *file;

  io_test_write_file (path, file_len, 3);
  io_test_fill_pattern (model, file_len, 3);
  file = open_or_skip (path, RECHAIN_FILE_READ_ONLY, mode);
  if (file == NULL)
    goto out;

  /* Exactly up to EOF is fine. */
  g_assert_true (rechain_file_pread (file, buf, file_len, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (buf, file_len, model, file_len);
  g_assert_true (rechain_file_pread (file, buf, 8, file_len - 8, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (buf, 8, model + file_len - 8, 8);

  for (guint i = 0; i < G_N_ELEMENTS (reads); i++)
    {
      g_autofree char *expected = g_strdup_printf (
          "Failed to read %zu bytes at offset %" G_GUINT64_FORMAT " of %s: "
          "the file ends at %zu, before the end of the range (%" G_GUINT64_FORMAT ")",
          reads[i].len, reads[i].offset, path, file_len,
          reads[i].offset + reads[i].len);

      g_assert_false (rechain_file_pread (file, buf, reads[i].len, reads[i].offset, &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);

      memset (buf, 0xaa, reads[i].len);
      g_assert_true (rechain_file_pread_zero_fill (file, buf, reads[i].len, reads[i].offset, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (buf, reads[i].len, model + reads[i].offset, reads[i].len);
    }

  /* Zero-length reads succeed anywhere. */
  g_assert_true (rechain_file_pread (file, buf, 0, 1 << 20, &error));
  g_assert_no_error (error);

  /* An offset that cannot exist (corrupt metadata) is an error too. */
  g_assert_false (rechain_file_pread (file, buf, 512, G_MAXUINT64 - 10, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);

  rechain_file_close (file);
out:
  rechain_io_buffer_free (buf);
  io_test_rmdir (dir);
}

static void
test_write_read_only (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autoptr (RechainFile) file = NULL;
  GError *error = NULL;
  char buf[16] = { 0 };

  io_test_write_file (path, 512, 1);
  file = rechain_file_open (path, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  g_assert_false (rechain_file_pwrite (file, buf, sizeof buf, 0, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_READ_ONLY);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  /* fdatasync works on a read-only descriptor. */
  g_assert_true (rechain_file_flush (file, &error));
  g_assert_no_error (error);
  io_test_rmdir (dir);
}

/* A real write error: the file size limit makes pwrite fail with EFBIG,
 * which is reported as "no space". */
static void
test_write_efbig (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *expected = g_strdup_printf (
      "Failed to write 512 bytes at offset 65536 of %s: %s", path, g_strerror (EFBIG));
  g_autoptr (RechainFile) file = NULL;
  GError *error = NULL;
  struct rlimit old_limit, limit;
  void (*old_handler) (int);
  char buf[512] = { 0 };

  io_test_write_file (path, 512, 1);
  file = rechain_file_open (path, RECHAIN_FILE_READ_WRITE, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);

  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
  limit = old_limit;
  limit.rlim_cur = 65536;
  /* Without this, exceeding the limit raises SIGXFSZ instead of EFBIG. */
  old_handler = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);

  g_assert_true (rechain_file_pwrite (file, buf, sizeof buf, 65536 - 512, &error));
  g_assert_no_error (error);
  g_assert_false (rechain_file_pwrite (file, buf, sizeof buf, 65536, &error));

  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old_limit), ==, 0);
  signal (SIGXFSZ, old_handler);

  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  io_test_rmdir (dir);
}

static void
test_identity (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *a_path = g_build_filename (dir, "a", NULL);
  g_autofree char *b_path = g_build_filename (dir, "b", NULL);
  g_autofree char *link_path = g_build_filename (dir, "link", NULL);
  g_autoptr (RechainFile) a = NULL;
  g_autoptr (RechainFile) b = NULL;
  g_autoptr (RechainFile) l = NULL;
  GError *error = NULL;
  guint64 size = 0;

  io_test_write_file (a_path, 12345, 1);
  io_test_write_file (b_path, 10, 2);
  g_assert_cmpint (symlink ("a", link_path), ==, 0);
  a = rechain_file_open (a_path, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  b = rechain_file_open (b_path, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  l = rechain_file_open (link_path, RECHAIN_FILE_READ_ONLY, RECHAIN_CACHE_WRITEBACK, &error);
  g_assert_no_error (error);
  g_assert_true (rechain_file_same (a, l));
  g_assert_false (rechain_file_same (a, b));
  g_assert_true (rechain_file_get_size (a, &size, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (size, ==, 12345);
  io_test_rmdir (dir);
}

static void
test_buffer_alloc (void)
{
  for (gsize len = 0; len < 20000; len += 4999)
    {
      void *p = rechain_io_buffer_alloc (len);

      g_assert_nonnull (p);
      g_assert_cmpuint ((guintptr) p % 4096, ==, 0);
      memset (p, 1, len);
      rechain_io_buffer_free (p);
    }
  rechain_io_buffer_free (NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/io/cache-mode/names", test_cache_mode_names);
  g_test_add_func ("/io/file/open-enoent", test_open_enoent);
  g_test_add_func ("/io/file/open-not-regular", test_open_not_regular);
  g_test_add_func ("/io/file/open-eacces", test_open_eacces);
  g_test_add_func ("/io/file/open-flags", test_open_flags);
  for (guint i = 0; i < G_N_ELEMENTS (all_modes); i++)
    {
      const char *name = rechain_cache_mode_to_string (all_modes[i]);
      g_autofree char *rt = g_strdup_printf ("/io/file/roundtrip/%s", name);
      g_autofree char *eof = g_strdup_printf ("/io/file/eof/%s", name);

      g_test_add_data_func (rt, GINT_TO_POINTER (all_modes[i]), test_roundtrip);
      g_test_add_data_func (eof, GINT_TO_POINTER (all_modes[i]), test_eof);
    }
  g_test_add_func ("/io/file/write-read-only", test_write_read_only);
  g_test_add_func ("/io/file/write-efbig", test_write_efbig);
  g_test_add_func ("/io/file/identity", test_identity);
  g_test_add_func ("/io/buffer/alloc", test_buffer_alloc);

  return g_test_run ();
}
