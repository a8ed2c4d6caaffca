/* test-io-lease.c: virtlockd-compatible leases (src/io/lease.c) against
 * another process holding the locks the way virtlockd does (a POSIX
 * F_SETLK write lock on byte 0, of the image or of the lease file named by
 * the SHA-256 of its path), and next to rechain's own QEMU-compatible
 * image locks.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/file.h"
#include "io/lease.h"
#include "io-test-util.h"

/* A child process holding a POSIX write lock on byte 0 of a file, as
 * virtlockd holds a lease, until holder_stop(). */
typedef struct {
  pid_t pid;
  int release_fd; /* closing it lets the child exit */
} Holder;

static void
holder_start (Holder *h, const char *path, gboolean create)
{
  int ready[2], release[2];
  char c;

  g_assert_cmpint (pipe (ready), ==, 0);
  g_assert_cmpint (pipe (release), ==, 0);
  h->pid = fork ();
  g_assert_cmpint (h->pid, >=, 0);
  if (h->pid == 0)
    {
      struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
      int fd;

      /* our copy of the write end would keep the read below from ever
       * seeing the end of the pipe */
      close (release[1]);
      close (ready[0]);
      fd = open (path, O_RDWR | (create ? O_CREAT : 0), 0600);
      if (fd < 0 || fcntl (fd, F_SETLK, &fl) < 0)
        _exit (1);
      if (write (ready[1], "x", 1) != 1)
        _exit (1);
      (void) read (release[0], &c, 1);
      _exit (0);
    }
  close (ready[1]);
  close (release[0]);
  g_assert_cmpint (read (ready[0], &c, 1), ==, 1);
  close (ready[0]);
  h->release_fd = release[1];
}

static void
holder_stop (Holder *h)
{
  int status;

  close (h->release_fd);
  g_assert_cmpint (waitpid (h->pid, &status, 0), ==, h->pid);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

/* Whether another process could take a POSIX write lock on byte 0 of
 * @path now (asked from a child, since a process's own POSIX locks never
 * conflict with each other). */
static gboolean
other_process_can_lock (const char *path)
{
  pid_t pid = fork ();
  int status;

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
      int fd = open (path, O_RDWR);
      _exit (fd >= 0 && fcntl (fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

static RechainFile *
open_image (const char *path, RechainFileFlags flags)
{
  GError *error = NULL;
  RechainFile *file = rechain_file_open (path, flags, RECHAIN_CACHE_WRITEBACK, &error);

  g_assert_no_error (error);
  return file;
}

static char *
lease_file_for (const char *dir, const char *path)
{
  g_autofree char *name = rechain_lease_name (path);
  return g_build_filename (dir, name, NULL);
}

static void
test_name (void)
{
  g_autofree char *abc = rechain_lease_name ("abc");
  /* libvirt hashes the path string itself: no trailing NUL, lowercase hex */
  g_assert_cmpstr (abc, ==, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_direct (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autoptr(RechainFile) file = NULL;
  RechainLease *lease;
  GError *error = NULL;

  io_test_write_file (path, 4096, 1);
  file = open_image (path, RECHAIN_FILE_READ_WRITE);
  g_assert_true (other_process_can_lock (path));
  lease = rechain_lease_acquire (file, NULL, RECHAIN_LEASE_TAKE, &error);
  g_assert_no_error (error);
  g_assert_nonnull (lease);
  /* byte 0, and only it: QEMU's bytes stay free for rechain's own locks */
  g_assert_true (io_test_ofd_lock_held (path, 0));
  g_assert_false (io_test_ofd_lock_held (path, 1));
  g_assert_false (other_process_can_lock (path));
  g_assert_true (rechain_file_lock (file, RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE,
                                    RECHAIN_PERM_CONSISTENT_READ, &error));
  g_assert_no_error (error);
  /* held on its own descriptor: closing the image keeps the lease */
  g_clear_pointer (&file, rechain_file_close);
  g_assert_false (other_process_can_lock (path));
  rechain_lease_release (lease);
  g_assert_false (io_test_ofd_lock_held (path, 0));
  g_assert_true (other_process_can_lock (path));
  io_test_rmdir (dir);
}

static void
test_direct_held (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *expected = NULL;
  g_autoptr(RechainFile) file = NULL;
  Holder h;
  GError *error = NULL;

  io_test_write_file (path, 4096, 1);
  file = open_image (path, RECHAIN_FILE_READ_WRITE);
  holder_start (&h, path, FALSE);
  expected = g_strdup_printf ("%s: leased by libvirt's lock manager (virtlockd) on this or an "
                              "unknown host (byte 0 of the image is locked); a domain using it "
                              "may be running", path);
  for (int check = 0; check < 2; check++)
    {
      g_assert_null (rechain_lease_acquire (file, NULL,
                                            check ? RECHAIN_LEASE_CHECK_ONLY : RECHAIN_LEASE_TAKE,
                                            &error));
      g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
      g_assert_cmpstr (error->message, ==, expected);
      g_clear_error (&error);
    }
  g_assert_false (io_test_ofd_lock_held (path, 0));
  holder_stop (&h);
  io_test_rmdir (dir);
}

static void
test_indirect (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *space = g_build_filename (dir, "lockspace", NULL);
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *link = g_build_filename (dir, "link", NULL);
  g_autofree char *by_path = lease_file_for (space, path);
  g_autofree char *by_link = lease_file_for (space, link);
  g_autoptr(RechainFile) file = NULL;
  RechainLease *lease;
  GError *error = NULL;
  struct stat st;
  mode_t old_umask = umask (022);

  g_assert_cmpint (mkdir (space, 0700), ==, 0);
  io_test_write_file (path, 4096, 1);
  g_assert_cmpint (symlink ("img", link), ==, 0);
  /* opened through a symlink: both spellings are leased */
  file = open_image (link, RECHAIN_FILE_READ_WRITE);
  lease = rechain_lease_acquire (file, space, RECHAIN_LEASE_TAKE, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 2; i++)
    {
      const char *lf = i ? by_link : by_path;
      g_assert_cmpint (stat (lf, &st), ==, 0);
      g_assert_cmpint (st.st_mode & 07777, ==, 0600);
      g_assert_cmpint (st.st_size, ==, 0);
      g_assert_true (io_test_ofd_lock_held (lf, 0));
      g_assert_false (other_process_can_lock (lf));
    }
  g_assert_true (io_test_ofd_lock_held (path, 0));
  rechain_lease_release (lease);
  /* released as virtlockd releases: the lease files are gone */
  g_assert_false (g_file_test (by_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (by_link, G_FILE_TEST_EXISTS));
  g_assert_false (io_test_ofd_lock_held (path, 0));
  umask (old_umask);
  io_test_rmdir (dir);
}

static void
test_indirect_held (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *space = g_build_filename (dir, "lockspace", NULL);
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *lf = lease_file_for (space, path);
  g_autofree char *expected = NULL;
  g_autoptr(RechainFile) file = NULL;
  g_autoptr(RechainFile) ro = NULL;
  Holder h;
  GError *error = NULL;

  g_assert_cmpint (mkdir (space, 0700), ==, 0);
  io_test_write_file (path, 4096, 1);
  file = open_image (path, RECHAIN_FILE_READ_WRITE);
  ro = open_image (path, RECHAIN_FILE_READ_ONLY);
  holder_start (&h, lf, TRUE);
  expected = g_strdup_printf ("%s: leased by libvirt's lock manager (virtlockd) on this or an "
                              "unknown host (lease file %s is locked); a domain using it may "
                              "be running", path, lf);
  g_assert_null (rechain_lease_acquire (file, space, RECHAIN_LEASE_TAKE, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  /* the direct lease taken before is not left behind, nor the file removed */
  g_assert_false (io_test_ofd_lock_held (path, 0));
  g_assert_true (g_file_test (lf, G_FILE_TEST_EXISTS));
  /* a dry run's check, on a read-only image, sees it too */
  g_assert_null (rechain_lease_acquire (ro, space, RECHAIN_LEASE_CHECK_ONLY, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE);
  g_clear_error (&error);
  holder_stop (&h);
  io_test_rmdir (dir);
}

static void
test_check_only (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *space = g_build_filename (dir, "lockspace", NULL);
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autofree char *lf = lease_file_for (space, path);
  g_autoptr(RechainFile) ro = NULL;
  RechainLease *lease;
  GError *error = NULL;

  g_assert_cmpint (mkdir (space, 0700), ==, 0);
  io_test_write_file (path, 4096, 1);
  ro = open_image (path, RECHAIN_FILE_READ_ONLY);
  lease = rechain_lease_acquire (ro, space, RECHAIN_LEASE_CHECK_ONLY, &error);
  g_assert_no_error (error);
  /* nothing created, nothing locked */
  g_assert_false (g_file_test (lf, G_FILE_TEST_EXISTS));
  g_assert_false (io_test_ofd_lock_held (path, 0));
  g_assert_true (other_process_can_lock (path));
  rechain_lease_release (lease);
  io_test_rmdir (dir);
}

static void
test_bad_lockspace (void)
{
  g_autofree char *dir = io_test_mkdtemp ();
  g_autofree char *space = g_build_filename (dir, "missing", NULL);
  g_autofree char *path = g_build_filename (dir, "img", NULL);
  g_autoptr(RechainFile) file = NULL;
  GError *error = NULL;

  io_test_write_file (path, 4096, 1);
  file = open_image (path, RECHAIN_FILE_READ_WRITE);
  g_assert_null (rechain_lease_acquire (file, space, RECHAIN_LEASE_TAKE, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, space));
  g_clear_error (&error);
  g_assert_null (rechain_lease_acquire (file, path, RECHAIN_LEASE_TAKE, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (io_test_ofd_lock_held (path, 0));
  io_test_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/io/lease/name", test_name);
  g_test_add_func ("/io/lease/direct", test_direct);
  g_test_add_func ("/io/lease/direct-held", test_direct_held);
  g_test_add_func ("/io/lease/indirect", test_indirect);
  g_test_add_func ("/io/lease/indirect-held", test_indirect_held);
  g_test_add_func ("/io/lease/check-only", test_check_only);
  g_test_add_func ("/io/lease/bad-lockspace", test_bad_lockspace);
  return g_test_run ();
}
