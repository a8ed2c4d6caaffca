/* copy.c: copying a byte range from one file into another inside the
 * kernel: FICLONERANGE shares the blocks (XFS with reflink, btrfs), and
 * copy_file_range(2) copies without a trip through user space (and may
 * share blocks itself, or use a server-side copy on NFS 4.2).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "io/file-private.h"
#include "rechain/rechain-i18n-private.h"

gsize
rechain_file_get_block_size (RechainFile *file)
{
  struct statfs st;

  if (fstatfs (file->fd, &st) == 0 && st.f_bsize > 0)
    return (gsize) st.f_bsize;
  return 4096;
}

gboolean
rechain_file_same_filesystem (RechainFile *a, RechainFile *b)
{
  return a->dev == b->dev;
}

/* Errors that mean "not possible here", as opposed to a failing disk. */
static gboolean
unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOTSUP || err == EXDEV || err == EINVAL ||
         err == ENOSYS || err == ETXTBSY || err == EBADF || err == EPERM;
}

static void
set_copy_error (RechainFile *src, RechainFile *dst, guint64 len, guint64 dst_offset, int err,
                GError **error)
{
  g_set_error (error, RECHAIN_ERROR,
               (err == ENOSPC || err == EDQUOT || err == EFBIG) ? RECHAIN_ERROR_NO_SPACE
                                                                : RECHAIN_ERROR_IO,
               _("Failed to copy %" PRIu64 " bytes from %s to offset %" PRIu64 " of %s: %s"),
               len, src->path, dst_offset, dst->path, g_strerror (err));
}

RechainCopyResult
rechain_file_clone_range (RechainFile *src, guint64 src_offset, RechainFile *dst,
                          guint64 dst_offset, guint64 len, GError **error)
{
  struct file_clone_range range = {
    .src_fd = src->fd, .src_offset = src_offset, .src_length = len, .dest_offset = dst_offset,
  };
  int err;

  if (len == 0)
    return RECHAIN_COPY_DONE;
  if (ioctl (dst->fd, FICLONERANGE, &range) == 0)
    return RECHAIN_COPY_DONE; /* shared blocks: nothing to write back */
  err = errno;
  if (unsupported (err))
    return RECHAIN_COPY_UNSUPPORTED;
  set_copy_error (src, dst, len, dst_offset, err, error);
  return RECHAIN_COPY_FAILED;
}

RechainCopyResult
rechain_file_copy_range (RechainFile *src, guint64 src_offset, RechainFile *dst,
                         guint64 dst_offset, guint64 len, GError **error)
{
  int err;

  if (len == 0)
    return RECHAIN_COPY_DONE;
  while (len > 0)
    {
      loff_t in = (loff_t) src_offset, out = (loff_t) dst_offset;
      ssize_t n = copy_file_range (src->fd, &in, dst->fd, &out, (size_t) MIN (len, (guint64) 1 << 30), 0);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          err = errno;
          /* Nothing copied yet and the kernel cannot: the caller falls back.
           * Part copied: the rest is copied the same way or it is an error. */
          if (unsupported (err))
            return RECHAIN_COPY_UNSUPPORTED;
          goto fail;
        }
      if (n == 0)
        {
          /* the source ends early: what is left of the range reads as zeros,
           * and the destination clusters are new, so zeros already */
          return RECHAIN_COPY_DONE;
        }
      rechain_file_note_written (dst, dst_offset, (guint64) n);
      src_offset += (guint64) n;
      dst_offset += (guint64) n;
      len -= (guint64) n;
    }
  return RECHAIN_COPY_DONE;

fail:
  set_copy_error (src, dst, len, dst_offset, err, error);
  return RECHAIN_COPY_FAILED;
}

gboolean
rechain_file_probe_reflink (RechainFile *dir_of, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (dir_of->path);
  gsize bs = rechain_file_get_block_size (dir_of);
  g_autofree char *block = g_malloc0 (bs);
  int a, b;
  gboolean ok = FALSE;
  struct file_clone_range range = { 0 };

  /* Two anonymous files in the image's directory: clone a block from one
   * to the other. Nothing is left behind. */
  a = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  b = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (a >= 0 && b >= 0 && pwrite (a, block, bs, 0) == (ssize_t) bs)
    {
      range.src_fd = a;
      range.src_length = bs;
      ok = ioctl (b, FICLONERANGE, &range) == 0;
    }
  if (!ok)
    {
      int err = errno; /* before gettext, which may change it */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("the file system of %s cannot share blocks between files (reflink): %s"),
                   dir_of->path, a < 0 || b < 0 ? _("could not create a probe file") : g_strerror (err));
    }
  if (a >= 0)
    close (a);
  if (b >= 0)
    close (b);
  return ok;
}
