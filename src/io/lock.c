/* lock.c: image locks compatible with QEMU's (block/file-posix.c).
 *
 * THE PROTOCOL
 *
 * QEMU describes what an opener of an image does with "permissions":
 *   bit 0 consistent read, bit 1 write, bit 2 write unchanged, bit 3 resize
 * (QEMU 7.2 has exactly these four; the fifth, "graph-mod", was dropped
 * before 7.2 and no 7.2 tool touches bytes 104 or 204 -- checked with
 * strace). For every open it holds shared (F_RDLCK) open-file-description
 * (OFD) locks of one byte each:
 *   byte 100 + i   "I hold permission i"
 *   byte 200 + i   "I do not let others hold permission i"
 * Read locks never conflict with each other, so holding is always possible;
 * a conflict is detected by asking the kernel (F_OFD_GETLK for an F_WRLCK,
 * which reports any lock of another open file description) whether someone
 * else holds a byte:
 *   for each permission i we take:          someone holds 200 + i -> conflict
 *   for each permission i we do not share:  someone holds 100 + i -> conflict
 * QEMU first takes its bytes and then checks (strace of qemu-io shows
 * SETLK 100.. then GETLK ..), and so do we: two openers racing then both
 * see each other and both fail, while check-then-take could let both pass.
 * OFD locks belong to the open file description, not the process, so two
 * RechainFiles of one process conflict just like two processes do.
 *
 * WHAT QEMU 7.2 HOLDS (observed in /proc/locks and with strace,
 * qemu-io/qemu-img 7.2.22 on Debian 12, overlay ov.qcow2 on base.qcow2):
 *   qemu-io ov.qcow2 (read-write qcow2):
 *       ov:   100 101 103 (CR, W, RESIZE held), 201 203 (W, RESIZE unshared)
 *       base: 100 201 203 (CR held, W and RESIZE unshared) -- a running
 *             VM protects its backing files from writers this way
 *   qemu-io -r ov.qcow2:       ov and base: 100 201 203
 *   qemu-io -r base.qcow2:     100 201 203
 *   qemu-io -f raw base.qcow2: 100 101 (a raw writer shares everything)
 *   qemu-io -r -f raw:         100
 *   qemu-io -U -r ov.qcow2:    ov and base: 100 only (force-share unshares
 *                              nothing but still holds consistent read)
 *   qemu-img info ov.qcow2:    201 203 only (no permission held; it opens
 *                              no backing file)
 *   qemu-img info -U:          no lock at all
 * Byte 202 (write unchanged) is never unshared, and 200 (consistent read)
 * never either: readers never exclude each other.
 *
 * QEMU's messages on a conflict, which ours imitate:
 *   Failed to get "write" lock            (someone unshares what we take)
 *   Failed to get shared "write" lock     (someone holds what we unshare)
 *   Is another process using the image [ov.qcow2]?
 *
 * So rechain as a writer of an image (perm CR|W|RESIZE, shared
 * CR|WRITE_UNCHANGED) conflicts with every QEMU opener of that image,
 * including a VM using it as a backing file; as a reader (perm CR, shared
 * CR|WRITE_UNCHANGED) it conflicts with QEMU writers only, like
 * "qemu-img info".
 *
 * File systems without OFD lock support answer F_OFD_GETLK with EINVAL or
 * EOPNOTSUPP; QEMU then runs without locks, and so do we.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "io/file-private.h"
#include "rechain/rechain-i18n-private.h"

#define PERM_BITS 4
#define LOCK_BYTE_PERM_BASE 100
#define LOCK_BYTE_SHARED_BASE 200

/* The bit in RechainFile.lock_bytes for byte 100 + i is i, for byte
 * 200 + i it is 8 + i. */
#define HOLD_BIT(i) (1u << (i))
#define UNSHARE_BIT(i) (1u << (8 + (i)))

/* QEMU's names of the permissions, so that our messages name them the way
 * a QEMU user knows them. */
static const char *const perm_names[PERM_BITS] = {
  "consistent read",
  "write",
  "write unchanged",
  "resize",
};

static off_t
lock_byte_of_bit (guint bit)
{
  return bit < 8 ? LOCK_BYTE_PERM_BASE + bit : LOCK_BYTE_SHARED_BASE + (bit - 8);
}

static gboolean
errno_means_no_ofd_locks (int err)
{
  return err == EINVAL || err == EOPNOTSUPP || err == ENOTSUP;
}

/* Sets (F_RDLCK) or releases (F_UNLCK) one lock byte. -1 with errno on
 * failure. */
static int
set_lock_byte (int fd, off_t byte, short type)
{
  struct flock fl = {
    .l_type = type,
    .l_whence = SEEK_SET,
    .l_start = byte,
    .l_len = 1,
  };
  int ret;

  do
    ret = fcntl (fd, F_OFD_SETLK, &fl);
  while (ret < 0 && errno == EINTR);
  return ret;
}

/* Whether another open file description holds any lock on @byte: 1 yes,
 * 0 no, -1 with errno on failure. */
static int
lock_byte_taken (int fd, off_t byte)
{
  struct flock fl = {
    .l_type = F_WRLCK,
    .l_whence = SEEK_SET,
    .l_start = byte,
    .l_len = 1,
  };

  if (fcntl (fd, F_OFD_GETLK, &fl) < 0)
    return -1;
  return fl.l_type != F_UNLCK;
}

/* Releases the bytes in @bits (errors ignored: releasing cannot fail for
 * a lock we hold, and there is nothing a caller could do about it). */
static void
release_bytes (RechainFile *file, guint bits)
{
  for (guint bit = 0; bit < 16; bit++)
    {
      if ((bits & (1u << bit)) == 0)
        continue;
      (void) set_lock_byte (file->fd, lock_byte_of_bit (bit), F_UNLCK);
      file->lock_bytes &= ~(1u << bit);
    }
}

static void
set_in_use_error (RechainFile *file, gboolean shared, guint perm_bit,
                  GError **error)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE,
               _("Failed to get %s\"%s\" lock on %s: is another process "
               "(a running VM, qemu-img or rechain) using the image?"),
               shared ? _("shared ") : "", perm_names[perm_bit], file->path);
}

static void
set_lock_io_error (RechainFile *file, off_t byte, int err, GError **error)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
               _("Failed to lock byte %ld of %s: %s"),
               (long) byte, file->path, g_strerror (err));
}

gboolean
rechain_file_lock (RechainFile *file,
                   RechainPerm perm,
                   RechainPerm shared,
                   GError **error)
{
  guint old_bytes, new_bytes = 0, added;

  g_return_val_if_fail (file != NULL, FALSE);

  if (file->lock_unsupported)
    return TRUE;

  for (guint i = 0; i < PERM_BITS; i++)
    {
      if (perm & (1u << i))
        new_bytes |= HOLD_BIT (i);
      if (!(shared & (1u << i)))
        new_bytes |= UNSHARE_BIT (i);
    }

  /* Probe once per file: on a file system without OFD locks every later
   * call would fail the same way. */
  if (file->lock_bytes == 0)
    {
      int ret = lock_byte_taken (file->fd, LOCK_BYTE_PERM_BASE);

      if (ret < 0)
        {
          int err = errno;

          if (errno_means_no_ofd_locks (err))
            {
              g_debug ("%s: no OFD lock support, not locking", file->path);
              file->lock_unsupported = TRUE;
              return TRUE;
            }
          set_lock_io_error (file, LOCK_BYTE_PERM_BASE, err, error);
          return FALSE;
        }
    }

  old_bytes = file->lock_bytes;
  added = new_bytes & ~old_bytes;

  /* 1. Take the bytes we do not hold yet. A failure with EAGAIN/EACCES
   *    means someone holds an exclusive lock on the byte, which no QEMU
   *    opener does for a permission it shares: report it as in use. */
  for (guint bit = 0; bit < 16; bit++)
    {
      off_t byte;

      if ((added & (1u << bit)) == 0)
        continue;
      byte = lock_byte_of_bit (bit);
      if (set_lock_byte (file->fd, byte, F_RDLCK) < 0)
        {
          int err = errno;

          release_bytes (file, added & file->lock_bytes);
          if (err == EAGAIN || err == EACCES)
            set_in_use_error (file, bit >= 8, bit % 8, error);
          else
            set_lock_io_error (file, byte, err, error);
          return FALSE;
        }
      file->lock_bytes |= 1u << bit;
    }

  /* 2. Look for holders that conflict, with all our bytes in place. */
  for (guint i = 0; i < PERM_BITS; i++)
    {
      gboolean want = (perm & (1u << i)) != 0;
      gboolean unshare = (shared & (1u << i)) == 0;
      int ret;

      /* We take permission i: nobody may refuse to share it. */
      if (want)
        {
          ret = lock_byte_taken (file->fd, LOCK_BYTE_SHARED_BASE + i);
          if (ret != 0)
            {
              int err = errno;

              release_bytes (file, added);
              if (ret > 0)
                set_in_use_error (file, FALSE, i, error);
              else
                set_lock_io_error (file, LOCK_BYTE_SHARED_BASE + i, err, error);
              return FALSE;
            }
        }
      /* We do not share permission i: nobody may hold it. */
      if (unshare)
        {
          ret = lock_byte_taken (file->fd, LOCK_BYTE_PERM_BASE + i);
          if (ret != 0)
            {
              int err = errno;

              release_bytes (file, added);
              if (ret > 0)
                set_in_use_error (file, TRUE, i, error);
              else
                set_lock_io_error (file, LOCK_BYTE_PERM_BASE + i, err, error);
              return FALSE;
            }
        }
    }

  /* 3. Drop what the old permissions needed and the new ones do not
   *    (a narrowing never creates a conflict, so this comes last). */
  release_bytes (file, old_bytes & ~new_bytes);
  return TRUE;
}

void
rechain_file_unlock (RechainFile *file)
{
  g_return_if_fail (file != NULL);

  release_bytes (file, file->lock_bytes);
}
