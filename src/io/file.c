/* file.c: positioned I/O on image files and cache modes.
 *
 * Every public function reports failures as a GError in RECHAIN_ERROR whose
 * message names the file, so that the layers above can pass errors on
 * unchanged.
 *
 * O_DIRECT (cache modes none and directsync): the kernel requires the
 * buffer, the offset and the length of each transfer to be aligned to the
 * device's logical block size. Callers that know this pass aligned
 * requests and get plain pread/pwrite; any other request goes through an
 * aligned bounce buffer (read-modify-write for writes), so the layers above
 * may read a 104-byte header without caring about the cache mode. Such
 * read-modify-write is not atomic: concurrent unaligned writes that touch
 * the same aligned block must not be issued (rechain never does).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/fs.h>

#include "io/file.h"
#include "io/file-private.h"
#include "rechain/rechain-i18n-private.h"

/* The alignment we assume for O_DIRECT. 4096 is a multiple of every
 * logical block size in common use (512 and 4096), so it is always safe;
 * a larger requirement reported by the kernel is honoured. */
#define DIRECT_ALIGNMENT 4096

/* The largest bounce buffer an unaligned O_DIRECT request allocates at
 * once; longer requests are done in pieces. */
#define BOUNCE_MAX (1024 * 1024)

/* ---- Cache modes ---- */

gboolean
rechain_cache_mode_is_direct (RechainCacheMode cache)
{
  return cache == RECHAIN_CACHE_NONE || cache == RECHAIN_CACHE_DIRECTSYNC;
}

static gboolean
cache_mode_is_dsync (RechainCacheMode cache)
{
  return cache == RECHAIN_CACHE_WRITETHROUGH || cache == RECHAIN_CACHE_DIRECTSYNC;
}

/* ---- Buffers ---- */

static void *
aligned_alloc_or_abort (gsize alignment, gsize len)
{
  void *buf = NULL;
  int ret = posix_memalign (&buf, MAX (alignment, sizeof (void *)),
                            MAX (len, 1));

  /* Out of memory aborts, like g_malloc(). */
  if (ret != 0)
    g_error ("%s: failed to allocate %" G_GSIZE_FORMAT " bytes: %s",
             G_STRLOC, len, g_strerror (ret));
  return buf;
}

void *
rechain_io_buffer_alloc (gsize len)
{
  return aligned_alloc_or_abort (DIRECT_ALIGNMENT, len);
}

void
rechain_io_buffer_free (void *buf)
{
  free (buf);
}

void
rechain_io_buffer_prefault (void *buf, gsize len)
{
#ifdef MADV_POPULATE_WRITE
  const guintptr page = 4096;
  guintptr start = ((guintptr) buf + page - 1) & ~(page - 1);
  guintptr end = ((guintptr) buf + len) & ~(page - 1);

  if (end > start)
    (void) madvise ((void *) start, end - start, MADV_POPULATE_WRITE);
#else
  (void) buf;
  (void) len;
#endif
}

/* ---- Open and close ---- */

/* The O_DIRECT alignment of an open file: DIRECT_ALIGNMENT, or more if the
 * kernel says the device needs more (logical block size of a block device,
 * STATX_DIOALIGN of a regular file on kernels that report it). */
static gsize
probe_direct_alignment (int fd, gboolean is_block_device)
{
  gsize alignment = DIRECT_ALIGNMENT;

  if (is_block_device)
    {
      int sector_size = 0;

      if (ioctl (fd, BLKSSZGET, &sector_size) == 0 && sector_size > 0)
        alignment = MAX (alignment, (gsize) sector_size);
    }
#ifdef STATX_DIOALIGN
  else
    {
      struct statx stx;

      if (statx (fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0
          && (stx.stx_mask & STATX_DIOALIGN) != 0)
        alignment = MAX (alignment, (gsize) stx.stx_dio_offset_align);
    }
#endif
  return alignment;
}

static int
open_retry (const char *path, int flags)
{
  int fd;

  do
    fd = open (path, flags);
  while (fd < 0 && errno == EINTR);
  return fd;
}

RechainFile *
rechain_file_open (const char *path,
                   RechainFileFlags flags,
                   RechainCacheMode cache,
                   GError **error)
{
  gboolean writable = (flags & RECHAIN_FILE_READ_WRITE) != 0;
  gboolean direct = rechain_cache_mode_is_direct (cache);
  struct stat st;
  int open_flags;
  int fd;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (rechain_cache_mode_to_string (cache) != NULL, NULL);

  /* O_NONBLOCK only so that opening a FIFO given by mistake does not hang
   * waiting for a writer; it is cleared again below once we know the file
   * is a regular file or a block device, where it means nothing anyway. */
  open_flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK;
  if (direct)
    open_flags |= O_DIRECT;
  if (cache_mode_is_dsync (cache))
    open_flags |= O_DSYNC;

  fd = open_retry (path, open_flags);
  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_BACKING_NOT_FOUND,
                       _("%s: could not open: %s"), path, g_strerror (saved_errno));
          return NULL;
        }
      if (saved_errno == EINVAL && direct)
        {
          /* Some file systems (FUSE, old tmpfs) refuse O_DIRECT at open
           * with EINVAL. Say so rather than "Invalid argument", after
           * making sure O_DIRECT really is the reason. */
          int probe = open_retry (path, open_flags & ~O_DIRECT);

          if (probe >= 0)
            {
              close (probe);
              g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                           _("cache mode '%s' (O_DIRECT) is not supported by "
                           "the file system of %s"),
                           rechain_cache_mode_to_string (cache), path);
              return NULL;
            }
        }
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("%s: could not open: %s"), path, g_strerror (saved_errno));
      return NULL;
    }

  if (fstat (fd, &st) < 0)
    {
      int saved_errno = errno;

      close (fd);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("%s: could not open: %s"), path, g_strerror (saved_errno));
      return NULL;
    }
  if (S_ISDIR (st.st_mode) && !(flags & RECHAIN_FILE_ANY_TYPE))
    {
      close (fd);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("%s: could not open: %s"), path, g_strerror (EISDIR));
      return NULL;
    }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode) && !(flags & RECHAIN_FILE_ANY_TYPE))
    {
      close (fd);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("%s: could not open: not a regular file or block device"),
                   path);
      return NULL;
    }
  int status_flags = fcntl (fd, F_GETFL);
  if (status_flags < 0 || fcntl (fd, F_SETFL, status_flags & ~O_NONBLOCK) < 0)
    {
      int saved_errno = errno;

      close (fd);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("%s: could not open: %s"), path, g_strerror (saved_errno));
      return NULL;
    }

  RechainFile *file = g_new0 (RechainFile, 1);
  file->path = g_strdup (path);
  file->fd = fd;
  file->writable = writable;
  file->direct = direct;
  file->is_block_device = S_ISBLK (st.st_mode);
  file->cache = cache;
  file->alignment = direct ? probe_direct_alignment (fd, file->is_block_device) : 1;
  file->dev = st.st_dev;
  file->ino = st.st_ino;
  g_mutex_init (&file->bg_lock);
  g_cond_init (&file->bg_cond);
  return file;
}

void
rechain_file_close (RechainFile *file)
{
  if (file == NULL)
    return;

  /* Closing the descriptor would drop our OFD locks too, but only if no
   * dup() of it survives (a caller may have dup'ed rechain_file_get_fd());
   * release them explicitly so they never outlive the RechainFile. */
  rechain_file_unlock (file);
  /* a background flush still running uses the descriptor */
  g_mutex_lock (&file->bg_lock);
  file->bg_stop = TRUE;
  g_cond_broadcast (&file->bg_cond);
  g_mutex_unlock (&file->bg_lock);
  if (file->bg_thread)
    g_thread_join (file->bg_thread);
  g_mutex_clear (&file->bg_lock);
  g_cond_clear (&file->bg_cond);
  /* close() errors are not reported: data integrity is the business of
   * rechain_file_flush(), and after close() the descriptor is gone either
   * way (retrying on EINTR could close someone else's descriptor). */
  close (file->fd);
  g_free (file->path);
  g_free (file);
}

const char *
rechain_file_get_path (RechainFile *file)
{
  return file->path;
}

int
rechain_file_get_fd (RechainFile *file)
{
  return file->fd;
}

gboolean
rechain_file_is_writable (RechainFile *file)
{
  return file->writable;
}

RechainCacheMode
rechain_file_get_cache_mode (RechainFile *file)
{
  return file->cache;
}

gsize
rechain_file_get_alignment (RechainFile *file)
{
  return file->alignment;
}

/* The size without GError, for messages; errno is set on failure. */
static gboolean
query_size (RechainFile *file, guint64 *size)
{
  struct stat st;

  if (fstat (file->fd, &st) < 0)
    return FALSE;
  if (S_ISBLK (st.st_mode))
    {
      /* st_size is 0 for block devices; their size is where SEEK_END
       * lands. */
      off_t end = lseek (file->fd, 0, SEEK_END);

      if (end < 0)
        return FALSE;
      *size = (guint64) end;
      return TRUE;
    }
  *size = (guint64) st.st_size;
  return TRUE;
}

gboolean
rechain_file_get_size (RechainFile *file, guint64 *size, GError **error)
{
  if (!query_size (file, size))
    {
      int saved_errno = errno;

      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                   _("Failed to get the size of %s: %s"), file->path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

gboolean
rechain_file_same (RechainFile *a, RechainFile *b)
{
  return a->dev == b->dev && a->ino == b->ino;
}

guint64
rechain_file_get_allocated (RechainFile *file)
{
  struct stat st;

  if (fstat (file->fd, &st) < 0)
    return 0;
  return (guint64) st.st_blocks * 512;
}

/* ---- Raw transfers ----
 *
 * These return the number of bytes transferred, which is less than asked
 * only at the end of the file (reads), or -1 with errno set. They retry on
 * EINTR and on short transfers. */

static gboolean
is_aligned (RechainFile *file, const void *buf, gsize len, guint64 offset)
{
  gsize a = file->alignment;

  return ((guintptr) buf % a) == 0 && (len % a) == 0 && (offset % a) == 0;
}

/* Plain pread loop. Stops at end of file, and (with O_DIRECT) after a
 * transfer that ends off alignment: the kernel only returns such a short
 * count at end of file, and the next call would fail with EINVAL.
 * @for_write: the read half of a read-modify-write, done with preadv(), so
 * that the tests' fault shim, which counts every pread as a read request
 * (file.h), leaves it to the write it belongs to. */
static gssize
read_loop_full (RechainFile *file, void *buf, gsize len, guint64 offset, gboolean for_write)
{
  gsize done = 0;

  while (done < len)
    {
      struct iovec iov = { (char *) buf + done, len - done };
      ssize_t ret = for_write ? preadv (file->fd, &iov, 1, (off_t) (offset + done))
                              : pread (file->fd, (char *) buf + done, len - done,
                                       (off_t) (offset + done));

      if (ret < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      if (ret == 0)
        break;
      done += (gsize) ret;
      if (file->direct && (done % file->alignment) != 0)
        break;
    }
  return (gssize) done;
}

static gssize
read_loop (RechainFile *file, void *buf, gsize len, guint64 offset)
{
  return read_loop_full (file, buf, len, offset, FALSE);
}

/* Reads up to @len bytes; fewer only at end of file. */
static gssize
read_upto (RechainFile *file, void *buf, gsize len, guint64 offset)
{
  gsize done = 0;

  if (!file->direct)
    return read_loop (file, buf, len, offset);

  while (done < len)
    {
      char *p = (char *) buf + done;
      guint64 pos = offset + done;
      gsize want = len - done;

      if (is_aligned (file, p, want, pos))
        {
          gssize ret = read_loop (file, p, want, pos);

          if (ret < 0)
            return -1;
          done += (gsize) ret;
          if ((gsize) ret < want && (ret == 0 || ((gsize) ret % file->alignment) != 0))
            break; /* end of file */
          continue;
        }

      /* Unaligned piece: read the aligned blocks that cover (a bounded
       * part of) it into a bounce buffer and copy the middle out. */
      {
        gsize a = file->alignment;
        guint64 start = pos - pos % a;
        gsize head = (gsize) (pos - start);
        gsize piece = MIN (want, BOUNCE_MAX - head);
        gsize blen = (head + piece + a - 1) / a * a;
        void *bounce = aligned_alloc_or_abort (a, blen);
        gssize ret = read_loop (file, bounce, blen, start);
        gsize useful;

        if (ret < 0)
          {
            int saved_errno = errno;

            free (bounce);
            errno = saved_errno;
            return -1;
          }
        useful = (gsize) ret > head ? MIN ((gsize) ret - head, piece) : 0;
        memcpy (p, (char *) bounce + head, useful);
        free (bounce);
        done += useful;
        if (useful < piece)
          break; /* end of file */
      }
    }
  return (gssize) done;
}

static gssize
write_loop (RechainFile *file, const void *buf, gsize len, guint64 offset)
{
  gsize done = 0;

  while (done < len)
    {
      ssize_t ret = pwrite (file->fd, (const char *) buf + done, len - done,
                            (off_t) (offset + done));

      if (ret < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      if (ret == 0)
        {
          /* pwrite returning 0 for a non-empty buffer means the device
           * will take no more. */
          errno = ENOSPC;
          return -1;
        }
      done += (gsize) ret;
      /* A short O_DIRECT write leaving the rest off alignment: finish in
       * write_all()'s bounce path. */
      if (file->direct && (done % file->alignment) != 0)
        break;
    }
  return (gssize) done;
}

/* Writes all @len bytes, returning FALSE with errno set on failure. */
static gboolean
write_all (RechainFile *file, const void *buf, gsize len, guint64 offset)
{
  gsize done = 0;

  while (done < len)
    {
      const char *p = (const char *) buf + done;
      guint64 pos = offset + done;
      gsize want = len - done;

      if (!file->direct || is_aligned (file, p, want, pos))
        {
          gssize ret = write_loop (file, p, want, pos);

          if (ret < 0)
            return FALSE;
          done += (gsize) ret;
          continue;
        }

      /* Unaligned O_DIRECT write: read-modify-write of the covering
       * aligned blocks. The aligned write may extend the file past
       * pos + piece with zeros; cut it back to where a plain write would
       * have left the end of the file. */
      {
        gsize a = file->alignment;
        guint64 start = pos - pos % a;
        gsize head = (gsize) (pos - start);
        gsize piece = MIN (want, BOUNCE_MAX - head);
        gsize blen = (head + piece + a - 1) / a * a;
        void *bounce = aligned_alloc_or_abort (a, blen);
        guint64 old_size = 0;
        gssize ret;
        int saved_errno;

        if (!query_size (file, &old_size))
          goto bounce_fail;
        ret = read_loop_full (file, bounce, blen, start, TRUE);
        if (ret < 0)
          goto bounce_fail;
        memset ((char *) bounce + ret, 0, blen - (gsize) ret);
        memcpy ((char *) bounce + head, p, piece);
        ret = write_loop (file, bounce, blen, start);
        if (ret < 0)
          goto bounce_fail;
        if ((gsize) ret < blen)
          {
            /* Not expected for an aligned O_DIRECT write; give up rather
             * than try to make sense of a partial block. */
            errno = EIO;
            goto bounce_fail;
          }
        if (start + blen > old_size && start + blen > pos + piece && !file->is_block_device)
          {
            if (ftruncate (file->fd, (off_t) MAX (old_size, pos + piece)) < 0)
              goto bounce_fail;
          }
        free (bounce);
        done += piece;
        continue;

      bounce_fail:
        saved_errno = errno;
        free (bounce);
        errno = saved_errno;
        return FALSE;
      }
    }
  return TRUE;
}

/* ---- Public I/O ---- */

static gboolean
check_range (RechainFile *file, const char *what, gsize len, guint64 offset,
             GError **error)
{
  /* off_t is signed: a range reaching past INT64_MAX cannot exist (and
   * comes from a corrupt image). */
  if (offset > (guint64) G_MAXINT64 || len > (guint64) G_MAXINT64 - offset)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("Failed to %s %zu bytes at offset %"
                   PRIu64 " of %s: offset out of range"),
                   what, len, offset, file->path);
      return FALSE;
    }
  return TRUE;
}

static void
set_read_error (RechainFile *file, gsize len, guint64 offset, int err,
                GError **error)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
               _("Failed to read %zu bytes at offset %"
               PRIu64 " of %s: %s"),
               len, offset, file->path, g_strerror (err));
}

static gboolean
pread_common (RechainFile *file, void *buf, gsize len, guint64 offset,
              gboolean zero_fill, GError **error)
{
  gssize ret;

  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (buf != NULL || len == 0, FALSE);

  if (len == 0)
    return TRUE;
  /* TRANSLATORS: as in "Failed to %s %zu bytes at offset %lu of %s: offset out of range" */
  if (!check_range (file, _("read"), len, offset, error))
    return FALSE;

  ret = read_upto (file, buf, len, offset);
  if (ret < 0)
    {
      set_read_error (file, len, offset, errno, error);
      return FALSE;
    }
  if ((gsize) ret < len)
    {
      if (zero_fill)
        {
          memset ((char *) buf + ret, 0, len - (gsize) ret);
          return TRUE;
        }
      guint64 size = offset + (guint64) ret;
      (void) query_size (file, &size);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("Failed to read %zu bytes at offset %"
                   PRIu64 " of %s: the file ends at %"
                   PRIu64 ", before the end of the range (%"
                   PRIu64 ")"),
                   len, offset, file->path, size, offset + len);
      return FALSE;
    }
  return TRUE;
}

gboolean
rechain_file_pread (RechainFile *file, void *buf, gsize len,
                    guint64 offset, GError **error)
{
  return pread_common (file, buf, len, offset, FALSE, error);
}

gboolean
rechain_file_pread_zero_fill (RechainFile *file, void *buf, gsize len,
                              guint64 offset, GError **error)
{
  return pread_common (file, buf, len, offset, TRUE, error);
}

/* ENOSPC and its relatives get their own code so that the tool can tell
 * the user to make room rather than report a broken disk. */
static RechainError
write_errno_code (int err)
{
  switch (err)
    {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return RECHAIN_ERROR_NO_SPACE;
    default:
      return RECHAIN_ERROR_IO;
    }
}

static void
set_write_error (RechainFile *file, gsize len, guint64 offset, int err,
                 GError **error)
{
  g_set_error (error, RECHAIN_ERROR, write_errno_code (err),
               _("Failed to write %zu bytes at offset %"
               PRIu64 " of %s: %s"),
               len, offset, file->path, g_strerror (err));
}

gboolean
rechain_file_pwrite (RechainFile *file, const void *buf, gsize len,
                     guint64 offset, GError **error)
{
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (buf != NULL || len == 0, FALSE);

  if (!file->writable)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_READ_ONLY,
                   _("Failed to write %zu bytes at offset %"
                   PRIu64 " of %s: the file is open read-only"),
                   len, offset, file->path);
      return FALSE;
    }
  if (len == 0)
    return TRUE;
  /* TRANSLATORS: as in "Failed to %s %zu bytes at offset %lu of %s: offset out of range" */
  if (!check_range (file, _("write"), len, offset, error))
    return FALSE;

  if (!write_all (file, buf, len, offset))
    {
      set_write_error (file, len, offset, errno, error);
      return FALSE;
    }
  rechain_file_note_written (file, offset, len);
  return TRUE;
}

/* Writeback is started in batches of this size: large enough that the
 * system call is rare, small enough that the disk starts early. */
#define WRITEBACK_BATCH (8u << 20)

/* A background flush is asked for after this many bytes are written (at
 * most one runs per file: requests while it runs are dropped). Measured on
 * a virtual disk (ext4 in the guest): after 64 MiB written in 100 ms with
 * early writeback, the final fdatasync() took 32 ms without background
 * flushes and 5 ms with one every 8 MiB; the 1 TiB sparse flatten of the
 * bench (64 MiB copied) took 262 ms without, 188-193 ms with 4 MiB, 198 ms
 * with 8 MiB and 206 ms with 16 MiB (the same build otherwise). */
#define BACKGROUND_FLUSH_BATCH (4u << 20)

/* fdatasync(): 0, or the errno it failed with. */
static int
datasync (RechainFile *file)
{
  int ret;

  do
    ret = fdatasync (file->fd);
  while (ret < 0 && errno == EINTR);
  return ret < 0 ? errno : 0;
}

/* The file's flusher thread: one fdatasync() per request, until the file
 * is closed (a request made before that is carried out first). */
static gpointer
background_flusher (gpointer data)
{
  RechainFile *file = data;

  g_mutex_lock (&file->bg_lock);
  for (;;)
    {
      int err;

      while (!file->bg_busy && !file->bg_stop)
        g_cond_wait (&file->bg_cond, &file->bg_lock);
      if (!file->bg_busy)
        break;
      g_mutex_unlock (&file->bg_lock);

      err = datasync (file);

      g_mutex_lock (&file->bg_lock);
      if (err != 0 && file->bg_error == 0)
        file->bg_error = err;
      file->bg_busy = FALSE;
      g_cond_broadcast (&file->bg_cond);
    }
  g_mutex_unlock (&file->bg_lock);
  return NULL;
}

static void
request_background_flush (RechainFile *file)
{
  g_mutex_lock (&file->bg_lock);
  /* one at a time; none once one failed (the error waits for the next
   * flush) or while the writer flushes itself */
  if (!file->bg_busy && !file->fg_flushing && file->bg_error == 0)
    {
      /* started on the first request; without a thread (the system is out
       * of them), no background flushes: they are only an optimization */
      if (!file->bg_thread && !file->bg_unavailable)
        {
          /* the name also tells the tests' fault shim (tests/fault) that
           * this thread's fdatasync() is a background flush */
          file->bg_thread = g_thread_try_new ("rechain-flush", background_flusher, file, NULL);
          file->bg_unavailable = file->bg_thread == NULL;
        }
      if (file->bg_thread)
        {
          file->bg_busy = TRUE;
          g_cond_broadcast (&file->bg_cond);
        }
    }
  g_mutex_unlock (&file->bg_lock);
}

void
rechain_file_note_written (RechainFile *file, guint64 offset, guint64 len)
{
  if (len == 0)
    return;
  if (file->cache == RECHAIN_CACHE_WRITEBACK || file->cache == RECHAIN_CACHE_NONE)
    {
      file->bg_bytes += len;
      if (file->bg_bytes >= BACKGROUND_FLUSH_BATCH)
        {
          file->bg_bytes = 0;
          request_background_flush (file);
        }
    }
  if (file->cache != RECHAIN_CACHE_WRITEBACK)
    return;
  if (file->wb_bytes == 0)
    {
      file->wb_start = offset;
      file->wb_end = offset + len;
    }
  else
    {
      file->wb_start = MIN (file->wb_start, offset);
      file->wb_end = MAX (file->wb_end, offset + len);
    }
  file->wb_bytes += len;
  if (file->wb_bytes < WRITEBACK_BATCH)
    return;
  /* a hint: errors show up in the flush that follows */
  (void) sync_file_range (file->fd, (off_t) file->wb_start, (off_t) (file->wb_end - file->wb_start),
                          SYNC_FILE_RANGE_WRITE);
  file->wb_bytes = 0;
}

gboolean
rechain_file_flush (RechainFile *file, GError **error)
{
  int err;

  g_return_val_if_fail (file != NULL, FALSE);

  /* "unsafe" means the user accepts losing everything on a crash: no
   * flush happens (so the tests' fault shim counts none either). */
  if (file->cache == RECHAIN_CACHE_UNSAFE)
    return TRUE;

  /* A background flush that saw a writeback error took it from the
   * kernel: it is ours to report. Wait for one still running, so that an
   * error it is about to see is not lost between the two. */
  g_mutex_lock (&file->bg_lock);
  file->fg_flushing = TRUE;
  while (file->bg_busy)
    g_cond_wait (&file->bg_cond, &file->bg_lock);
  err = file->bg_error;
  g_mutex_unlock (&file->bg_lock);

  if (err == 0)
    err = datasync (file);
  g_mutex_lock (&file->bg_lock);
  file->fg_flushing = FALSE;
  file->bg_bytes = 0;
  g_mutex_unlock (&file->bg_lock);
  if (err != 0)
    {
      g_set_error (error, RECHAIN_ERROR, write_errno_code (err),
                   _("Failed to flush %s: %s"), file->path, g_strerror (err));
      return FALSE;
    }
  return TRUE;
}
