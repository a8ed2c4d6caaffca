/* fault-crash.c: the power-loss model of the fault shim (RECHAIN_FAULT
 * actions CRASH, CRASH-REVERT, CRASH-KEEP, CRASH-MASK).
 *
 * A SIGKILL keeps every write already issued, because the page cache
 * survives the process: it cannot show that a missing flush matters. With
 * a CRASH action configured, the shim keeps, for every file the process
 * writes, the pre-image of each write issued since the file's last
 * successful flush (read just before the write is issued, through a
 * descriptor of its own; the part past the end of the file is not stored,
 * it reads as zeros) and the file's size at that flush. At the Nth
 * operation (the operation itself is not done), the process models a power
 * loss: each of those writes either survives or is lost -- all lost
 * (CRASH-REVERT), all kept (CRASH-KEEP), each one kept with probability
 * 1/2 (CRASH, seeded by RECHAIN_FAULT_SEED; the choice is made in the
 * order the writes were issued, over all files), or those
 * RECHAIN_FAULT_CRASH_MASK names (CRASH-MASK, to reproduce a choice or to
 * enumerate them). Working through each file's writes from the last to
 * the first, a lost write gets its pre-image back except on the bytes a
 * later surviving write covers, so each byte ends up as the latest
 * surviving write left it, or as it was at the last flush. Then the file
 * is cut back to the larger of its size at the last flush and the end of
 * the last byte a surviving write put there, and the process leaves with
 * _exit(RECHAIN_FAULT_CRASH_STATUS) (86), flushing nothing. Writes through
 * O_DSYNC (cache modes writethrough and directsync) are durable when they
 * complete and always survive. Exceeding RECHAIN_FAULT_CRASH_MAX aborts
 * the process with a message: a log that silently dropped a pre-image
 * would make the crash lie.
 *
 * Its own reads and writes are system calls made directly (syscall(2)),
 * so that the shim never sees them as the program's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "fault-crash.h"
#include "fault-shim.h"
#include "fault-spec.h"

typedef struct {
  guint64 offset;
  guint64 len;       /* bytes written */
  guint64 saved;     /* bytes of pre-image kept: the part inside the file then */
  guint8 *pre;
  guint64 seq;
  gboolean durable;  /* an O_DSYNC write that completed */
  gboolean keep;     /* survives the crash (decided when crashing) */
} CrashWrite;

typedef struct {
  char *path;          /* the first name it was written through */
  int fd;              /* our own descriptor: pre-images and restoring */
  dev_t dev;
  ino_t ino;
  gboolean is_block_device;
  guint64 flushed_size; /* size at the last flush (valid when writes->len > 0) */
  GPtrArray *writes;    /* of CrashWrite*, issued since the last flush, in order */
} CrashFile;

static guint64 crash_seed = 1;
static char *crash_mask;
static guint64 crash_max = FAULT_CRASH_MAX_DEFAULT;
static guint64 crash_bytes;        /* pre-image bytes held */
static guint64 crash_seq;          /* writes recorded so far */
static GPtrArray *crash_files;     /* of CrashFile*, in order of first write */

static ssize_t
sys_pread (int fd, void *buf, size_t len, off_t offset)
{
  return (ssize_t) syscall (SYS_pread64, fd, buf, len, offset);
}

static ssize_t
sys_pwrite (int fd, const void *buf, size_t len, off_t offset)
{
  return (ssize_t) syscall (SYS_pwrite64, fd, buf, len, offset);
}

static void
crash_write_free (gpointer p)
{
  CrashWrite *w = p;

  g_free (w->pre);
  g_free (w);
}

static void
crash_file_free (gpointer p)
{
  CrashFile *cf = p;

  if (cf->fd >= 0)
    close (cf->fd);
  g_ptr_array_unref (cf->writes);
  g_free (cf->path);
  g_free (cf);
}

/* Loud, on purpose: a crash log that cannot be trusted must not be
 * mistaken for a passing test. */
G_GNUC_NORETURN G_GNUC_PRINTF (1, 2) static void
crash_log_fail (const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_printerr ("rechain: RECHAIN_FAULT crash log: %s\n", msg);
  abort ();
}

static guint64
crash_file_size (CrashFile *cf)
{
  struct stat st;

  if (cf->is_block_device)
    {
      off_t end = lseek (cf->fd, 0, SEEK_END);

      if (end < 0)
        crash_log_fail ("cannot get the size of %s: %s", cf->path, g_strerror (errno));
      return (guint64) end;
    }
  if (fstat (cf->fd, &st) < 0)
    crash_log_fail ("cannot get the size of %s: %s", cf->path, g_strerror (errno));
  return (guint64) st.st_size;
}

/* The record of the file @fd is open on (two names or descriptors of one
 * file share one), opened read-write for restoring on first sight when
 * @create. */
static CrashFile *
crash_file_get (int fd, const char *path, gboolean create)
{
  g_autofree char *proc = NULL;
  CrashFile *cf;
  struct stat st;
  int own;

  if (fstat (fd, &st) < 0)
    crash_log_fail ("cannot stat %s: %s", path ? path : "a descriptor", g_strerror (errno));
  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      cf = g_ptr_array_index (crash_files, i);
      if (cf->dev == st.st_dev && cf->ino == st.st_ino)
        return cf;
    }
  if (!create)
    return NULL;
  if (!crash_files)
    crash_files = g_ptr_array_new_with_free_func (crash_file_free);
  /* a descriptor of our own, without the program's O_DIRECT or O_DSYNC */
  proc = g_strdup_printf ("/proc/self/fd/%d", fd);
  do
    own = (int) syscall (SYS_openat, AT_FDCWD, proc, O_RDWR | O_CLOEXEC);
  while (own < 0 && errno == EINTR);
  if (own < 0)
    crash_log_fail ("cannot open %s to keep pre-images: %s", path, g_strerror (errno));
  cf = g_new0 (CrashFile, 1);
  cf->path = g_strdup (path);
  cf->fd = own;
  cf->dev = st.st_dev;
  cf->ino = st.st_ino;
  cf->is_block_device = S_ISBLK (st.st_mode);
  cf->writes = g_ptr_array_new_with_free_func (crash_write_free);
  g_ptr_array_add (crash_files, cf);
  return cf;
}

void
fault_crash_reset (guint64 seed, const char *mask, guint64 max)
{
  g_clear_pointer (&crash_files, g_ptr_array_unref);
  g_clear_pointer (&crash_mask, g_free);
  crash_bytes = 0;
  crash_seq = 0;
  crash_seed = seed;
  crash_mask = g_strdup (mask);
  crash_max = max;
}

guint64
fault_crash_record_write (int fd, const char *path, guint64 offset, guint64 len)
{
  CrashFile *cf = crash_file_get (fd, path, TRUE);
  CrashWrite *w;
  guint64 size = crash_file_size (cf);
  guint64 done = 0;

  if (cf->writes->len == 0)
    cf->flushed_size = size;
  w = g_new0 (CrashWrite, 1);
  w->offset = offset;
  w->len = len;
  w->saved = offset < size ? MIN (len, size - offset) : 0;
  w->seq = ++crash_seq;
  if (crash_bytes + w->saved + sizeof *w > crash_max)
    crash_log_fail ("the pre-image of %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT
                    " of %s would take the log past RECHAIN_FAULT_CRASH_MAX (%" G_GUINT64_FORMAT
                    " bytes held, at most %" G_GUINT64_FORMAT "): raise it, or crash earlier",
                    w->saved, offset, path, crash_bytes, crash_max);
  w->pre = g_malloc (MAX (w->saved, 1));
  while (done < w->saved)
    {
      ssize_t ret = sys_pread (cf->fd, w->pre + done, w->saved - done, (off_t) (offset + done));

      if (ret < 0 && errno == EINTR)
        continue;
      if (ret < 0)
        crash_log_fail ("cannot read the pre-image at offset %" G_GUINT64_FORMAT " of %s: %s",
                        offset + done, path, g_strerror (errno));
      if (ret == 0)
        {
          /* the file is shorter than fstat said a moment ago: zeros */
          memset (w->pre + done, 0, w->saved - done);
          break;
        }
      done += (guint64) ret;
    }
  crash_bytes += w->saved + sizeof *w;
  g_ptr_array_add (cf->writes, w);
  return w->seq;
}

void
fault_crash_write_durable (int fd, guint64 seq)
{
  CrashFile *cf = crash_file_get (fd, NULL, FALSE);

  for (guint i = cf ? cf->writes->len : 0; i-- > 0;)
    {
      CrashWrite *w = g_ptr_array_index (cf->writes, i);

      if (w->seq == seq)
        {
          w->durable = TRUE;
          break;
        }
    }
}

guint64
fault_crash_seq (void)
{
  return crash_seq;
}

guint64
fault_crash_size (int fd)
{
  CrashFile *cf = crash_file_get (fd, NULL, FALSE);

  return cf ? crash_file_size (cf) : 0;
}

void
fault_crash_flushed (int fd, guint64 seq, guint64 size_then)
{
  CrashFile *cf = crash_file_get (fd, NULL, FALSE);
  guint keep_from = 0;

  if (!cf)
    return;
  while (keep_from < cf->writes->len &&
         ((CrashWrite *) g_ptr_array_index (cf->writes, keep_from))->seq <= seq)
    {
      CrashWrite *w = g_ptr_array_index (cf->writes, keep_from);

      crash_bytes -= w->saved + sizeof *w;
      keep_from++;
    }
  g_ptr_array_remove_range (cf->writes, 0, keep_from);
  /* writes another thread issued during the flush stay, against the size
   * the flush made durable */
  if (cf->writes->len > 0)
    cf->flushed_size = size_then;
}

typedef struct {
  guint64 start, end;
} Span;

static int
span_cmp (gconstpointer a, gconstpointer b)
{
  const Span *x = a, *y = b;

  return x->start < y->start ? -1 : x->start > y->start;
}

/* Adds [start, end) to the sorted, disjoint set @set. */
static void
span_set_add (GArray *set, guint64 start, guint64 end)
{
  Span s = { start, end };
  guint out = 0;

  g_array_append_val (set, s);
  g_array_sort (set, span_cmp);
  for (guint i = 1; i < set->len; i++)
    {
      Span *last = &g_array_index (set, Span, out);
      const Span *cur = &g_array_index (set, Span, i);

      if (cur->start <= last->end)
        last->end = MAX (last->end, cur->end);
      else
        g_array_index (set, Span, ++out) = *cur;
    }
  g_array_set_size (set, set->len ? out + 1 : 0);
}

static void
pwrite_all_or_fail (CrashFile *cf, const void *buf, guint64 len, guint64 offset)
{
  guint64 done = 0;

  while (done < len)
    {
      ssize_t ret = sys_pwrite (cf->fd, (const guint8 *) buf + done, len - done,
                                (off_t) (offset + done));

      if (ret < 0 && errno == EINTR)
        continue;
      if (ret <= 0)
        crash_log_fail ("cannot restore %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT
                        " of %s: %s", len - done, offset + done, cf->path,
                        ret < 0 ? g_strerror (errno) : "no progress");
      done += (guint64) ret;
    }
}

/* Puts back the pre-image of @w on [start, end). */
static void
restore_span (CrashFile *cf, const CrashWrite *w, guint64 start, guint64 end)
{
  static const guint8 zeros[65536];
  guint64 saved_end = w->offset + w->saved;

  if (start < saved_end)
    {
      guint64 e = MIN (end, saved_end);

      pwrite_all_or_fail (cf, w->pre + (start - w->offset), e - start, start);
      start = e;
    }
  /* past the end of the file when it was written: a hole, zeros */
  while (start < end)
    {
      guint64 n = MIN (end - start, (guint64) sizeof zeros);

      pwrite_all_or_fail (cf, zeros, n, start);
      start += n;
    }
}

static void
crash_file (CrashFile *cf, guint *kept_out, guint *reverted_out)
{
  guint n = cf->writes->len;
  g_autoptr (GArray) decided = g_array_new (FALSE, FALSE, sizeof (Span));
  guint64 size, final;
  guint kept = 0;

  *kept_out = *reverted_out = 0;
  if (n == 0)
    return;
  size = crash_file_size (cf);
  final = cf->flushed_size;
  for (guint i = 0; i < n; i++)
    {
      const CrashWrite *w = g_ptr_array_index (cf->writes, i);

      if (w->keep)
        {
          final = MAX (final, w->offset + w->len);
          kept++;
        }
    }
  if (cf->is_block_device || final > size)
    final = size;

  /* Last to first: the bytes of a lost write that no later surviving
   * write covers get its pre-image (which is what the writes before it
   * left there, so earlier ones are then handled the same way). */
  for (guint i = n; i-- > 0;)
    {
      const CrashWrite *w = g_ptr_array_index (cf->writes, i);
      guint64 pos = w->offset, end = MIN (w->offset + w->len, final);

      if (w->keep)
        {
          span_set_add (decided, w->offset, w->offset + w->len);
          continue;
        }
      for (guint j = 0; j < decided->len && pos < end; j++)
        {
          const Span *d = &g_array_index (decided, Span, j);

          if (d->end <= pos)
            continue;
          if (d->start >= end)
            break;
          if (d->start > pos)
            restore_span (cf, w, pos, d->start);
          pos = MAX (pos, d->end);
        }
      if (pos < end)
        restore_span (cf, w, pos, end);
    }
  if (size > final && ftruncate (cf->fd, (off_t) final) < 0)
    crash_log_fail ("cannot cut %s back to %" G_GUINT64_FORMAT " bytes: %s", cf->path, final,
                    g_strerror (errno));
  *kept_out = kept;
  *reverted_out = n - kept;
}

static int
write_seq_cmp (gconstpointer a, gconstpointer b)
{
  const CrashWrite *x = *(CrashWrite *const *) a, *y = *(CrashWrite *const *) b;

  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Which unflushed writes survive, decided in the order they were issued
 * (over all files); returns the decision as a string of 0 and 1, the
 * RECHAIN_FAULT_CRASH_MASK that reproduces it. */
static char *
crash_decide (int action)
{
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32) (crash_seed ^ (crash_seed >> 32)));
  gsize mask_len = crash_mask ? strlen (crash_mask) : 0;
  GString *decision = g_string_new (NULL);

  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      CrashFile *cf = g_ptr_array_index (crash_files, i);

      for (guint j = 0; j < cf->writes->len; j++)
        g_ptr_array_add (all, g_ptr_array_index (cf->writes, j));
    }
  g_ptr_array_sort (all, write_seq_cmp);
  for (guint i = 0; i < all->len; i++)
    {
      CrashWrite *w = g_ptr_array_index (all, i);

      switch (action)
        {
        case FAULT_ACTION_CRASH_KEEP: w->keep = TRUE; break;
        case FAULT_ACTION_CRASH_REVERT: w->keep = FALSE; break;
        case FAULT_ACTION_CRASH_MASK: w->keep = i < mask_len && crash_mask[i] == '1'; break;
        default: w->keep = g_rand_boolean (rand); break;
        }
      w->keep = w->keep || w->durable;
      g_string_append_c (decision, w->keep ? '1' : '0');
    }
  return g_string_free (decision, FALSE);
}

void
fault_crash_now (int action, void (*log) (const char *line))
{
  g_autofree char *decision = crash_decide (action);

  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      CrashFile *cf = g_ptr_array_index (crash_files, i);
      guint kept, reverted;

      crash_file (cf, &kept, &reverted);
      if (log)
        {
          g_autofree char *line = g_strdup_printf ("crash %s kept=%u reverted=%u\n", cf->path,
                                                   kept, reverted);
          log (line);
        }
    }
  if (log)
    {
      g_autofree char *line = g_strdup_printf ("crash-mask %s\n", decision);
      log (line);
    }
  _exit (RECHAIN_FAULT_CRASH_STATUS);
}

guint64
fault_crash_log_bytes (void)
{
  guint64 n = 0;

  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      CrashFile *cf = g_ptr_array_index (crash_files, i);

      for (guint j = 0; j < cf->writes->len; j++)
        n += ((CrashWrite *) g_ptr_array_index (cf->writes, j))->saved;
    }
  return n;
}
