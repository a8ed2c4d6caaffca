/* lease.c: leases of libvirt's lock manager, virtlockd, taken the way
 * virtlockd takes them, so that a domain and rechain exclude each other.
 *
 * WHAT VIRTLOCKD DOES (read in libvirt's sources: src/locking/
 * lock_driver_lockd.c, src/locking/domain_lock.c, src/util/virlockspace.c,
 * src/util/virfile.c virFileLock(), src/locking/qemu-lockd.conf; the
 * behaviour has been the same since libvirt 1.0 and in 9.0, Debian 12's)
 *
 * With lock_manager = "lockd" in qemu.conf, libvirtd asks virtlockd for a
 * lease on every disk of a domain when its guest CPUs start (and on disk
 * hotplug), named by the disk's source path exactly as the domain XML
 * gives it (src->path; not canonicalized, symlinks not resolved). Only the
 * top image of each disk is leased: backing files are read-only and get
 * no lease. Disks marked <readonly/> get none either; <shareable/> disks
 * get a shared lease (F_RDLCK), all others an exclusive one (F_WRLCK).
 * What a lease is, by qemu-lockd.conf:
 *   - direct (the default, no file_lockspace_dir): an fcntl lock on the
 *     image file itself, opened O_RDWR: F_SETLK, l_start 0, l_len 1 --
 *     byte 0 only;
 *   - indirect (file_lockspace_dir = "DIR"): the same lock, byte 0, length
 *     1, on DIR/NAME where NAME is the SHA-256 of the path string in
 *     lowercase hex (virCryptoHashString). The file is created empty if
 *     missing (open O_RDWR|O_CREAT, mode 0600 under virtlockd's umask);
 *     after locking, virtlockd checks that the path still names the inode
 *     it locked (stat vs fstat) and starts over if not, because whoever
 *     releases such a lease unlinks the file while still holding the lock.
 *     virtlockd creates DIR with mode 0700 when it starts using it;
 *   - lvm_lockspace_dir / scsi_lockspace_dir: for disks under /dev,
 *     NAME is the LV's UUID (lvs -o uuid) or the SCSI ID instead of a hash
 *     (rechain does not take these; it writes qcow2 files, and a qcow2
 *     image on an LV with such a lockspace is not protected by rechain's
 *     leases -- documented in the README).
 * The locks are ordinary process-associated POSIX locks (F_SETLK), held
 * by virtlockd for as long as the domain runs; across hosts they conflict
 * through the shared file system's lock manager (NFS lockd/NFSv4, GFS2,
 * OCFS2, CephFS), which is the whole point of the indirect lockspace.
 * libvirt's security drivers lock byte 1 of images (METADATA_OFFSET 1,
 * security_manager.c) while relabelling them, and QEMU's image locks are
 * bytes 100 and up (lock.c): byte 0 is virtlockd's alone.
 *
 * WHAT RECHAIN DOES
 *
 * The same locks, exclusive, non-blocking, as open-file-description (OFD)
 * locks: OFD and POSIX locks conflict with each other across processes,
 * so a domain's lease refuses rechain and rechain's lease refuses a domain
 * start ("resource busy"), while an OFD lock cannot be dropped behind
 * rechain's back by the close of another descriptor of the same file, as
 * a POSIX lock would be. The direct lock is on a duplicate of the image's
 * own descriptor (same open file description, so the same inode as the
 * one written); the indirect ones on lease files for the image's absolute
 * path and, when symlinks make it differ, its resolved path -- rechain
 * cannot know how a domain's XML spells the path, and a spelling it does
 * not cover is protected by the direct lease only when the domain uses
 * direct leases. Released files are unlinked as virtlockd does, after
 * checking that the name still is the file locked.
 *
 * File systems without fcntl locks (EINVAL, EOPNOTSUPP, ENOLCK) cannot
 * hold a lease: virtlockd fails to start domains there, and rechain takes
 * none.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/lease.h"
#include "rechain/rechain-i18n-private.h"

/* How often a lease file that vanished or was replaced between its open
 * and its lock is tried again before giving up: each retry means another
 * holder released it meanwhile, so a few are plenty. */
#define LEASE_FILE_ATTEMPTS 16

typedef struct {
  char *path;
  int fd;
} LeaseFile;

struct _RechainLease {
  int direct_fd;      /* a duplicate of the image's descriptor, -1: none */
  GArray *files;      /* of LeaseFile: the indirect leases held */
};

static gboolean
errno_means_no_locks (int err)
{
  return err == EINVAL || err == EOPNOTSUPP || err == ENOTSUP || err == ENOLCK;
}

/* Takes (or, @check_only, tests for) an exclusive lock on byte 0 of @fd:
 * 0 taken or free, 1 held by someone else, -1 with errno. */
static int
lock_byte_zero (int fd, gboolean check_only)
{
  /* l_pid must be 0 for the OFD commands */
  struct flock fl = {
    .l_type = F_WRLCK,
    .l_whence = SEEK_SET,
    .l_start = 0,
    .l_len = 1,
  };
  int ret;

  do
    ret = fcntl (fd, check_only ? F_OFD_GETLK : F_OFD_SETLK, &fl);
  while (ret < 0 && errno == EINTR);
  if (ret < 0)
    return errno == EAGAIN || errno == EACCES ? 1 : -1;
  return check_only && fl.l_type != F_UNLCK ? 1 : 0;
}

static void
unlock_byte_zero (int fd)
{
  struct flock fl = {
    .l_type = F_UNLCK,
    .l_whence = SEEK_SET,
    .l_start = 0,
    .l_len = 1,
  };

  (void) fcntl (fd, F_OFD_SETLK, &fl);
}

static void
set_leased_error (const char *image, const char *lease_file, GError **error)
{
  if (lease_file)
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE,
                 _("%s: leased by libvirt's lock manager (virtlockd) on this or an unknown host "
                   "(lease file %s is locked); a domain using it may be running"),
                 image, lease_file);
  else
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE,
                 _("%s: leased by libvirt's lock manager (virtlockd) on this or an unknown host "
                   "(byte 0 of the image is locked); a domain using it may be running"),
                 image);
}

char *
rechain_lease_name (const char *path)
{
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, path, -1);
}

static void
lease_file_clear (LeaseFile *f)
{
  struct stat now, ours;

  if (f->fd >= 0)
    {
      /* Unlink only the file we hold: another holder may have replaced
       * it, and its lease must stay. Unlinking while still locked is what
       * virtlockd does; a taker that opened the old file sees the name
       * gone after its lock and starts over. */
      if (stat (f->path, &now) == 0 && fstat (f->fd, &ours) == 0 &&
          now.st_dev == ours.st_dev && now.st_ino == ours.st_ino)
        (void) unlink (f->path);
      unlock_byte_zero (f->fd);
      close (f->fd);
    }
  g_free (f->path);
}

void
rechain_lease_release (RechainLease *lease)
{
  if (!lease)
    return;
  g_array_unref (lease->files);
  if (lease->direct_fd >= 0)
    {
      unlock_byte_zero (lease->direct_fd);
      close (lease->direct_fd);
    }
  g_free (lease);
}

/* The direct lease on the image's own open file description. */
static gboolean
take_direct (RechainLease *lease, RechainFile *image, gboolean check_only, GError **error)
{
  const char *path = rechain_file_get_path (image);
  int fd = rechain_file_get_fd (image);
  int held;

  if (!check_only)
    {
      fd = fcntl (fd, F_DUPFD_CLOEXEC, 0);
      if (fd < 0)
        {
          int err = errno;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                       _("Could not take the lease of %s: %s"), path, g_strerror (err));
          return FALSE;
        }
    }
  held = lock_byte_zero (fd, check_only);
  if (held == 0 && !check_only)
    {
      lease->direct_fd = fd;
      return TRUE;
    }
  if (!check_only)
    {
      int err = errno;
      close (fd);
      errno = err;
    }
  if (held == 1)
    {
      set_leased_error (path, NULL, error);
      return FALSE;
    }
  if (held < 0 && !errno_means_no_locks (errno))
    {
      int err = errno;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("Could not take the lease of %s: %s"), path, g_strerror (err));
      return FALSE;
    }
  return TRUE;
}

/* Checks the lease file @lease_path without creating or locking it. */
static gboolean
check_lease_file (const char *image, const char *lease_path, GError **error)
{
  int fd = open (lease_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int held, err;

  if (fd < 0)
    {
      err = errno;
      if (err == ENOENT)
        return TRUE; /* nobody holds a lease file that does not exist */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("Could not open the lease file %s: %s"), lease_path, g_strerror (err));
      return FALSE;
    }
  held = lock_byte_zero (fd, TRUE);
  err = errno;
  close (fd);
  if (held == 1)
    {
      set_leased_error (image, lease_path, error);
      return FALSE;
    }
  if (held < 0 && !errno_means_no_locks (err))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("Could not lock the lease file %s: %s"), lease_path, g_strerror (err));
      return FALSE;
    }
  return TRUE;
}

/* Takes the lease file @lease_path the way virtlockd does; on success its
 * descriptor is in *@fd_out (-1 when the file system has no locks). */
static gboolean
take_lease_file (const char *image, const char *lease_path, int *fd_out, GError **error)
{
  *fd_out = -1;
  for (guint attempt = 0; attempt < LEASE_FILE_ATTEMPTS; attempt++)
    {
      struct stat opened, named;
      int fd = open (lease_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      int held, err;

      if (fd < 0)
        {
          err = errno;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                       _("Could not open the lease file %s: %s"), lease_path, g_strerror (err));
          return FALSE;
        }
      held = lock_byte_zero (fd, FALSE);
      err = errno;
      if (held != 0)
        {
          close (fd);
          if (held == 1)
            {
              set_leased_error (image, lease_path, error);
              return FALSE;
            }
          if (errno_means_no_locks (err))
            return TRUE;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                       _("Could not lock the lease file %s: %s"), lease_path, g_strerror (err));
          return FALSE;
        }
      /* The holder before us unlinks the file when it releases it: the
       * lock counts only if the name still leads to the file locked. */
      if (fstat (fd, &opened) == 0 && stat (lease_path, &named) == 0 &&
          opened.st_dev == named.st_dev && opened.st_ino == named.st_ino)
        {
          *fd_out = fd;
          return TRUE;
        }
      close (fd);
    }
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE,
               _("%s: the lease file %s keeps being replaced; another program is taking and "
                 "releasing it"),
               image, lease_path);
  return FALSE;
}

/* The path spellings whose lease files rechain takes: absolute as given,
 * and with symlinks resolved when that differs. */
static GPtrArray *
lease_paths (const char *path)
{
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  char *absolute = g_canonicalize_filename (path, NULL);
  char *resolved = realpath (path, NULL);

  g_ptr_array_add (paths, absolute);
  if (resolved && strcmp (resolved, absolute) != 0)
    g_ptr_array_add (paths, g_strdup (resolved));
  free (resolved);
  return paths;
}

static gboolean
check_lockspace_dir (const char *dir, GError **error)
{
  struct stat st;

  if (stat (dir, &st) < 0)
    {
      int err = errno;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("lockspace directory %s: %s"), dir, g_strerror (err));
      return FALSE;
    }
  if (!S_ISDIR (st.st_mode))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("lockspace directory %s: not a directory"), dir);
      return FALSE;
    }
  return TRUE;
}

RechainLease *
rechain_lease_acquire (RechainFile *image,
                       const char *lockspace_dir,
                       RechainLeaseFlags flags,
                       GError **error)
{
  gboolean check_only = (flags & RECHAIN_LEASE_CHECK_ONLY) != 0;
  const char *path = rechain_file_get_path (image);
  g_autoptr(RechainLease) lease = g_new0 (RechainLease, 1);

  g_return_val_if_fail (check_only || rechain_file_is_writable (image), NULL);
  lease->direct_fd = -1;
  lease->files = g_array_new (FALSE, FALSE, sizeof (LeaseFile));
  g_array_set_clear_func (lease->files, (GDestroyNotify) lease_file_clear);

  if (lockspace_dir && !check_lockspace_dir (lockspace_dir, error))
    return NULL;
  if (!take_direct (lease, image, check_only, error))
    return NULL;
  if (lockspace_dir)
    {
      g_autoptr(GPtrArray) paths = lease_paths (path);

      for (guint i = 0; i < paths->len; i++)
        {
          g_autofree char *name = rechain_lease_name (g_ptr_array_index (paths, i));
          g_autofree char *lease_path = g_build_filename (lockspace_dir, name, NULL);
          LeaseFile f = { NULL, -1 };

          if (check_only)
            {
              if (!check_lease_file (path, lease_path, error))
                return NULL;
              continue;
            }
          if (!take_lease_file (path, lease_path, &f.fd, error))
            return NULL;
          if (f.fd >= 0)
            {
              f.path = g_steal_pointer (&lease_path);
              g_array_append_val (lease->files, f);
            }
        }
    }
  return g_steal_pointer (&lease);
}
