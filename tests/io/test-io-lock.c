/* test-io-lock.c: QEMU-compatible image locks, between RechainFiles of one
 * process (OFD locks conflict per open file description) and against the
 * real qemu-io / qemu-img.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "io-test-util.h"

/* What QEMU takes (see src/io/lock.c for the observations). */
#define WRITER_PERM (RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE | RECHAIN_PERM_RESIZE)
#define WRITER_SHARED (RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE_UNCHANGED)
#define READER_PERM RECHAIN_PERM_CONSISTENT_READ
#define READER_SHARED (RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE_UNCHANGED)
#define FORCE_SHARED RECHAIN_PERM_ALL

static RechainFile *
open_file (const char *path, RechainFileFlags flags)
{
  GError *error = NULL;
  RechainFile *file = rechain_file_open (path, flags, RECHAIN_CACHE_WRITEBACK, &error);

  g_assert_no_error (error);
  return file;
}

static void
assert_lock_ok (RechainFile *file, RechainPerm perm, RechainPerm shared)
{
  GError *error = NULL;

  gboolean ok = rechain_file_lock (file, perm, shared, &error);

  g_assert_no_error (error);
  g_assert_true (ok);
}

/* The lock must fail as in use, with a message naming the file and the
 * permission ("Failed to get [shared ]\"NAME\" lock on PATH: ..."). */
static void
assert_lock_in_use (RechainFile *file, RechainPerm perm, RechainPerm shared,
                    const char *what)
{
  g_autofree char *expected = g_strdup_printf (
      "Failed to get %s lock on %s: is another process (a running VM, "
      "qemu-img or rechain) using the image?", what, rechain_file_get_path (file));
  GError *error = NULL;

  g_assert_false (rechain_file_lock (file, perm, shared, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
}

static void
test_same_process (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  RechainFile *a, *b, *c;

  io_test_write_file (path, 1024, 1);
  a = open_file (path, RECHAIN_FILE_READ_WRITE);
  b = open_file (path, RECHAIN_FILE_READ_WRITE);
  c = open_file (path, RECHAIN_FILE_READ_ONLY);

  /* A writer excludes other writers and readers that do not share write,
   * but not force-share readers. */
  assert_lock_ok (a, WRITER_PERM, WRITER_SHARED);
  g_assert_true (io_test_ofd_lock_held (path, 101));
  g_assert_true (io_test_ofd_lock_held (path, 201));
  g_assert_false (io_test_ofd_lock_held (path, 202));
  assert_lock_in_use (b, WRITER_PERM, WRITER_SHARED, "\"write\"");
  assert_lock_in_use (c, READER_PERM, READER_SHARED, "shared \"write\"");
  assert_lock_ok (c, READER_PERM, FORCE_SHARED);
  rechain_file_unlock (c);

  /* Failed attempts left nothing behind: once a is gone, b gets it. */
  rechain_file_unlock (a);
  g_assert_false (io_test_ofd_lock_held (path, 100));
  assert_lock_ok (b, WRITER_PERM, WRITER_SHARED);
  rechain_file_close (b);
  g_assert_false (io_test_ofd_lock_held (path, 100));

  /* Readers share. */
  assert_lock_ok (a, READER_PERM, READER_SHARED);
  assert_lock_ok (c, READER_PERM, READER_SHARED);
  b = open_file (path, RECHAIN_FILE_READ_WRITE);
  assert_lock_in_use (b, WRITER_PERM, WRITER_SHARED, "\"write\"");

  /* A failed upgrade keeps the reader's locks: a third opener still
   * cannot write after c is gone. */
  assert_lock_in_use (a, WRITER_PERM, WRITER_SHARED, "\"write\"");
  rechain_file_close (c);
  assert_lock_in_use (b, WRITER_PERM, WRITER_SHARED, "\"write\"");
  /* Now the upgrade succeeds, and the writer excludes b. */
  assert_lock_ok (a, WRITER_PERM, WRITER_SHARED);
  assert_lock_in_use (b, READER_PERM, READER_SHARED, "shared \"write\"");
  /* Downgrade back to reader: b may read again, but not write. */
  assert_lock_ok (a, READER_PERM, READER_SHARED);
  g_assert_false (io_test_ofd_lock_held (path, 101));
  assert_lock_ok (b, READER_PERM, READER_SHARED);
  rechain_file_unlock (b);

  /* Resize alone: someone not sharing resize excludes it. */
  rechain_file_unlock (a);
  assert_lock_ok (a, RECHAIN_PERM_CONSISTENT_READ, RECHAIN_PERM_ALL & ~RECHAIN_PERM_RESIZE);
  assert_lock_in_use (b, RECHAIN_PERM_RESIZE, RECHAIN_PERM_ALL, "\"resize\"");
  assert_lock_in_use (b, 0, RECHAIN_PERM_ALL & ~RECHAIN_PERM_CONSISTENT_READ,
                      "shared \"consistent read\"");

  rechain_file_close (a);
  rechain_file_close (b);
  g_assert_false (io_test_ofd_lock_held (path, 100));
  g_assert_false (io_test_ofd_lock_held (path, 203));
  io_test_rmdir (dir);
}

/* ---- Against QEMU ---- */

typedef struct {
  char *dir;
  char *base;
  char *overlay;
} QemuFixture;

static gboolean
have_qemu (void)
{
  g_autofree char *io = g_find_program_in_path ("qemu-io");
  g_autofree char *img = g_find_program_in_path ("qemu-img");

  if (io == NULL || img == NULL)
    {
      g_test_skip ("qemu-io/qemu-img not found (Debian package qemu-utils)");
      return FALSE;
    }
  return TRUE;
}

static void
qemu_fixture_setup (QemuFixture *f, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");

  f->dir = io_test_mkdtemp ();
  f->base = g_build_filename (f->dir, "base.qcow2", NULL);
  f->overlay = g_build_filename (f->dir, "overlay.qcow2", NULL);
  if (qemu_img == NULL)
    return;
  {
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", f->base, "1M", NULL };

    g_assert_cmpint (io_test_run (argv, &err), ==, 0);
    g_clear_pointer (&err, g_free);
  }
  {
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", f->base,
                           "-F", "qcow2", f->overlay, NULL };

    g_assert_cmpint (io_test_run (argv, &err), ==, 0);
  }
}

static void
qemu_fixture_teardown (QemuFixture *f, gconstpointer data)
{
  io_test_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->base);
  g_free (f->overlay);
}

/* (a) qemu-io has the image open read-write: we can neither write nor
 * read with locks; force-share (no lock, or sharing everything) works. */
static void
test_qemu_writer (QemuFixture *f, gconstpointer data)
{
  const char *argv[] = { f->overlay, NULL };
  IoTestQemu q;
  RechainFile *rw, *ro;
  GError *error = NULL;
  char magic[4];

  if (!have_qemu ())
    return;
  /* Wait for byte 101: QEMU holds "write". */
  g_assert_true (io_test_qemu_start (&q, argv, f->overlay, 101));
  g_assert_true (io_test_ofd_lock_held (f->overlay, 100));
  g_assert_true (io_test_ofd_lock_held (f->overlay, 201));

  rw = open_file (f->overlay, RECHAIN_FILE_READ_WRITE);
  ro = open_file (f->overlay, RECHAIN_FILE_READ_ONLY);
  assert_lock_in_use (rw, WRITER_PERM, WRITER_SHARED, "\"write\"");
  assert_lock_in_use (ro, READER_PERM, READER_SHARED, "shared \"write\"");
  /* Force-share: no lock at all, or holding CR and sharing everything as
   * qemu-io -U does. */
  g_assert_true (rechain_file_pread (ro, magic, sizeof magic, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (magic, 4, "QFI\xfb", 4);
  assert_lock_ok (ro, READER_PERM, FORCE_SHARED);

  io_test_qemu_stop (&q);
  /* Once QEMU is gone, everything is possible again. */
  rechain_file_unlock (ro);
  assert_lock_ok (rw, WRITER_PERM, WRITER_SHARED);
  rechain_file_close (rw);
  rechain_file_close (ro);
}

/* (b) qemu-io has the overlay open (as a VM would): its backing file may
 * not be written, but may be read. */
static void
test_qemu_backing (QemuFixture *f, gconstpointer data)
{
  const char *argv[] = { f->overlay, NULL };
  IoTestQemu q;
  RechainFile *rw, *ro;

  if (!have_qemu ())
    return;
  /* QEMU opens the backing file after the overlay; byte 201 of the base
   * ("write not shared") is what protects it. */
  g_assert_true (io_test_qemu_start (&q, argv, f->base, 201));
  g_assert_true (io_test_ofd_lock_held (f->base, 100));
  g_assert_false (io_test_ofd_lock_held (f->base, 101));

  rw = open_file (f->base, RECHAIN_FILE_READ_WRITE);
  ro = open_file (f->base, RECHAIN_FILE_READ_ONLY);
  assert_lock_in_use (rw, WRITER_PERM, WRITER_SHARED, "\"write\"");
  assert_lock_ok (ro, READER_PERM, READER_SHARED);

  io_test_qemu_stop (&q);
  /* Our own reader does not share write either. */
  assert_lock_in_use (rw, WRITER_PERM, WRITER_SHARED, "\"write\"");
  rechain_file_close (ro);
  assert_lock_ok (rw, WRITER_PERM, WRITER_SHARED);
  rechain_file_close (rw);
}

/* (c) We hold a write lock: qemu-img info fails with QEMU's lock error,
 * qemu-img info -U works, and qemu-io cannot open it at all. */
static void
test_qemu_sees_our_lock (QemuFixture *f, gconstpointer data)
{
  const char *info[] = { "qemu-img", "info", f->overlay, NULL };
  const char *info_u[] = { "qemu-img", "info", "-U", f->overlay, NULL };
  const char *io_rw[] = { "qemu-io", "-c", "read 0 512", f->overlay, NULL };
  RechainFile *rw;
  char *err = NULL;

  if (!have_qemu ())
    return;
  rw = open_file (f->overlay, RECHAIN_FILE_READ_WRITE);
  assert_lock_ok (rw, WRITER_PERM, WRITER_SHARED);

  g_assert_cmpint (io_test_run (info, &err), !=, 0);
  g_assert_nonnull (strstr (err, "Failed to get shared \"write\" lock"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (io_test_run (info_u, &err), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (io_test_run (io_rw, &err), !=, 0);
  g_assert_nonnull (strstr (err, "Failed to get \"write\" lock"));
  g_clear_pointer (&err, g_free);

  /* Released: qemu-img info works again. */
  rechain_file_unlock (rw);
  g_assert_cmpint (io_test_run (info, &err), ==, 0);
  g_clear_pointer (&err, g_free);
  rechain_file_close (rw);
}

/* (d) We hold the backing file as a reader (as rechain does while
 * rebasing an overlay onto it): QEMU may still use an overlay on top of it,
 * but may not write the backing file itself. */
static void
test_qemu_our_reader (QemuFixture *f, gconstpointer data)
{
  const char *write_overlay[] = { "qemu-io", "-c", "write 0 512", f->overlay, NULL };
  const char *write_base[] = { "qemu-io", "-c", "write 0 512", f->base, NULL };
  RechainFile *ro;
  char *err = NULL;

  if (!have_qemu ())
    return;
  ro = open_file (f->base, RECHAIN_FILE_READ_ONLY);
  assert_lock_ok (ro, READER_PERM, READER_SHARED);

  g_assert_cmpint (io_test_run (write_overlay, &err), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (io_test_run (write_base, &err), !=, 0);
  g_assert_nonnull (strstr (err, "Failed to get \"write\" lock"));
  g_clear_pointer (&err, g_free);
  rechain_file_close (ro);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/io/lock/same-process", test_same_process);
#define ADD(name, fn) \
  g_test_add ("/io/lock/qemu/" name, QemuFixture, NULL, qemu_fixture_setup, fn, qemu_fixture_teardown)
  ADD ("qemu-writer", test_qemu_writer);
  ADD ("qemu-backing", test_qemu_backing);
  ADD ("qemu-sees-our-lock", test_qemu_sees_our_lock);
  ADD ("our-reader", test_qemu_our_reader);
#undef ADD

  return g_test_run ();
}
