/* fault.c: fault injection for tests (RECHAIN_FAULT, RECHAIN_FAULT_LOG).
 *
 * Crash-consistency tests need to stop rechain at every write and flush it
 * does; this makes the Nth such operation of the process fail with a given
 * errno, kill the process, or "crash" it (a power loss), and can log every
 * counted operation so that a test first learns how many there are.
 *
 *   RECHAIN_FAULT=KIND:N:ACTION[:FILE][,KIND:N:ACTION[:FILE]...]
 *     KIND    write | flush | read | any (any = writes and flushes together)
 *             | background-flush (the io layer's own early flushes, see
 *             file.c; they run on another thread at moments that depend
 *             on timing, so "any" does not count them, they are not
 *             logged, and only an errno or KILL is accepted for them)
 *     N       1-based number of the operation of that kind in the process;
 *             "N+" for the Nth and every later one
 *     ACTION  EIO | ENOSPC | EDQUOT | EFBIG | KILL
 *             | CRASH | CRASH-REVERT | CRASH-KEEP | CRASH-MASK
 *     FILE    only operations on files whose path matches this glob
 *             pattern count (and fail); a pattern without '/' is also
 *             matched against the base name. Without it, every file.
 *   RECHAIN_FAULT_LOG=FILE
 *     appends "write PATH OFFSET LENGTH", "flush PATH" or
 *     "read PATH OFFSET LENGTH" for every operation, before it happens
 *     (and, when crashing, "crash PATH kept=K reverted=R" per file, then
 *     "crash-mask MASK": which writes survived, as for CRASH-MASK).
 *   RECHAIN_FAULT_SEED=S
 *     the seed of CRASH's random choice (default 1).
 *   RECHAIN_FAULT_CRASH_MASK=0110...
 *     for CRASH-MASK: character i is 1 if the i-th unflushed write (all
 *     files, oldest first) survives; writes past its end are lost.
 *   RECHAIN_FAULT_CRASH_MAX=BYTES[k|M|G]
 *     bound of the crash log's pre-images (default 256M).
 *
 * Only the Nth operation fails (unless "N+"); the ones after it go through,
 * as a transient error would. The environment is read once, lazily, on the
 * first operation; rechain_fault_reset() reads it again and restarts the
 * counts (tests change the variables between cases).
 *
 * Crash. A SIGKILL keeps every write already issued, because the page
 * cache survives the process: it cannot show that a missing flush matters.
 * With a CRASH action configured, the shim keeps, for every file the
 * process writes, the pre-image of each write issued since the file's last
 * successful flush (read with pread just before the write is issued; the
 * part past the end of the file is not stored, it reads as zeros) and the
 * file's size at that flush. At the Nth operation (counted as for the other
 * actions; the operation itself is not done), the process models a power
 * loss: each of those writes either survives or is lost -- all lost
 * (CRASH-REVERT), all kept (CRASH-KEEP), each one kept with probability
 * 1/2 (CRASH, seeded by RECHAIN_FAULT_SEED; the choice is made in the order
 * the writes were issued, over all files), or those a mask names
 * (CRASH-MASK, to reproduce a choice or to enumerate them). Working through each file's
 * writes from the last to the first, a lost write gets its pre-image back
 * except on the bytes a later surviving write covers, so each byte ends up
 * as the latest surviving write left it, or as it was at the last flush.
 * Then the file is cut back to the larger of its size at the last flush
 * and the end of the last byte a surviving write put there, and the
 * process leaves with _exit(RECHAIN_FAULT_CRASH_STATUS) (86), flushing
 * nothing. Writes through O_DSYNC (cache modes writethrough and directsync)
 * are durable when they complete and always survive. Exceeding
 * RECHAIN_FAULT_CRASH_MAX aborts the process with a message: a log that
 * silently dropped a pre-image would make the crash lie.
 * Writes are expected from one thread at a time per byte range (as the
 * io layer requires anyway); a crash waits (up to 10 s) for writes other
 * threads have in flight through rechain_file_pwrite().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "io/file.h"
#include "io/file-private.h"
#include "io/fault.h"

typedef enum {
  KIND_READ,
  KIND_WRITE,
  KIND_FLUSH,
  KIND_ANY,
  KIND_BACKGROUND_FLUSH,
  N_KINDS,
} FaultKind;

static const char *const kind_names[N_KINDS] = {
  [KIND_READ] = "read",
  [KIND_WRITE] = "write",
  [KIND_FLUSH] = "flush",
  [KIND_ANY] = "any",
  [KIND_BACKGROUND_FLUSH] = "background-flush",
};

/* Actions other than an errno value (all negative). */
#define ACTION_KILL (-1)
#define ACTION_CRASH (-2)        /* random subset of the unflushed writes survives */
#define ACTION_CRASH_REVERT (-3) /* none survives */
#define ACTION_CRASH_KEEP (-4)   /* all survive */
#define ACTION_CRASH_MASK (-5)   /* those RECHAIN_FAULT_CRASH_MASK names survive */

#define IS_CRASH(a) ((a) <= ACTION_CRASH && (a) >= ACTION_CRASH_MASK)

#define CRASH_MAX_DEFAULT (G_GUINT64_CONSTANT (256) << 20)

typedef struct {
  FaultKind kind;
  guint n;
  gboolean and_later; /* "N+" */
  int action;         /* an errno value, or ACTION_* */
  char *pattern;      /* glob on the path, or NULL */
  gboolean pattern_has_slash;
  guint count;        /* matching operations so far (under fault_lock) */
} FaultRule;

enum {
  STATE_UNKNOWN = 0, /* environment not read yet */
  STATE_OFF,         /* neither variable set: nothing to do */
  STATE_ON,
};

/* The fast path reads only this. */
static gint fault_state = STATE_UNKNOWN;

/* The configuration and the counts, written under fault_lock by
 * load_config() and read under it by the slow path (tests only, so a mutex
 * costs nothing). */
static GMutex fault_lock;
static GArray *fault_rules;  /* of FaultRule */
static int fault_log_fd = -1;

/* ---- the crash log ---- */

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

static gboolean crash_active;      /* a crash rule exists: keep pre-images */
static guint64 crash_seed = 1;
static char *crash_mask;           /* RECHAIN_FAULT_CRASH_MASK */
static guint64 crash_max = CRASH_MAX_DEFAULT;
static guint64 crash_bytes;        /* pre-image bytes held */
static guint64 crash_seq;          /* writes recorded so far */
static GPtrArray *crash_files;     /* of CrashFile*, in order of first write */
static GHashTable *crash_by_path;  /* path -> CrashFile* (borrowed) */
static gboolean crashing;
static GCond crash_cond;
static gint crash_in_flight;       /* writes between check and done */
static guint crash_generation;     /* bumped by each load_config() */

/* This thread's write between rechain_fault_check() and
 * rechain_fault_done() (copy.c calls no done: the thread's next check ends
 * it), and the log position when its flush began. */
static _Thread_local gboolean tl_pending;
static _Thread_local guint tl_pending_generation;
static _Thread_local guint64 tl_pending_seq;
static _Thread_local guint64 tl_flush_seq;
static _Thread_local guint64 tl_flush_size;
static _Thread_local guint tl_flush_generation;

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

static gboolean
fd_size (int fd, gboolean is_block_device, guint64 *size)
{
  struct stat st;

  if (is_block_device)
    {
      off_t end = lseek (fd, 0, SEEK_END);

      if (end < 0)
        return FALSE;
      *size = (guint64) end;
      return TRUE;
    }
  if (fstat (fd, &st) < 0)
    return FALSE;
  *size = (guint64) st.st_size;
  return TRUE;
}

static guint64
crash_file_size (CrashFile *cf)
{
  guint64 size;

  if (!fd_size (cf->fd, cf->is_block_device, &size))
    crash_log_fail ("cannot get the size of %s: %s", cf->path, g_strerror (errno));
  return size;
}

/* The record of the file at @path, opened (read-write, for restoring) on
 * first sight of a name; two names of one file share a record. */
static CrashFile *
crash_file_get (const char *path, gboolean create)
{
  CrashFile *cf = crash_by_path ? g_hash_table_lookup (crash_by_path, path) : NULL;
  struct stat st;
  int fd;

  if (cf || !create)
    return cf;
  if (!crash_files)
    {
      crash_files = g_ptr_array_new_with_free_func (crash_file_free);
      crash_by_path = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    }
  do
    fd = open (path, O_RDWR | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0 || fstat (fd, &st) < 0)
    crash_log_fail ("cannot open %s to keep pre-images: %s", path, g_strerror (errno));
  for (guint i = 0; i < crash_files->len; i++)
    {
      CrashFile *other = g_ptr_array_index (crash_files, i);

      if (other->dev == st.st_dev && other->ino == st.st_ino)
        {
          close (fd);
          g_hash_table_insert (crash_by_path, g_strdup (path), other);
          return other;
        }
    }
  cf = g_new0 (CrashFile, 1);
  cf->path = g_strdup (path);
  cf->fd = fd;
  cf->dev = st.st_dev;
  cf->ino = st.st_ino;
  cf->is_block_device = S_ISBLK (st.st_mode);
  cf->writes = g_ptr_array_new_with_free_func (crash_write_free);
  g_ptr_array_add (crash_files, cf);
  g_hash_table_insert (crash_by_path, g_strdup (path), cf);
  return cf;
}

/* Before a write of [@offset, +@len) to @path is issued: its pre-image. */
static guint64
crash_record_write (const char *path, guint64 offset, guint64 len)
{
  CrashFile *cf = crash_file_get (path, TRUE);
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
      ssize_t ret = pread (cf->fd, w->pre + done, w->saved - done, (off_t) (offset + done));

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

/* A flush of @cf that began when the log was at @seq succeeded: the writes
 * issued before it are durable. */
static void
crash_flushed (CrashFile *cf, guint64 seq, guint64 size_then)
{
  guint keep_from = 0;

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
      ssize_t ret = pwrite (cf->fd, (const guint8 *) buf + done, len - done,
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
        case ACTION_CRASH_KEEP: w->keep = TRUE; break;
        case ACTION_CRASH_REVERT: w->keep = FALSE; break;
        case ACTION_CRASH_MASK: w->keep = i < mask_len && crash_mask[i] == '1'; break;
        default: w->keep = g_rand_boolean (rand); break;
        }
      w->keep = w->keep || w->durable;
      g_string_append_c (decision, w->keep ? '1' : '0');
    }
  return g_string_free (decision, FALSE);
}

static void log_line (const char *line);

/* The power loss, with fault_lock held. */
G_GNUC_NORETURN static void
crash (int action)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  g_autofree char *decision = NULL;

  crashing = TRUE;
  /* other threads' writes already issued finish first (new ones wait) */
  while (crash_in_flight > 0)
    if (!g_cond_wait_until (&crash_cond, &fault_lock, deadline))
      {
        g_printerr ("rechain: RECHAIN_FAULT crash: %d write(s) of other threads still in "
                    "flight after 10 s; crashing anyway\n", crash_in_flight);
        break;
      }
  decision = crash_decide (action);
  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      CrashFile *cf = g_ptr_array_index (crash_files, i);
      guint kept, reverted;

      crash_file (cf, &kept, &reverted);
      if (fault_log_fd >= 0)
        {
          g_autofree char *line = g_strdup_printf ("crash %s kept=%u reverted=%u\n", cf->path,
                                                   kept, reverted);
          log_line (line);
        }
    }
  if (fault_log_fd >= 0)
    {
      g_autofree char *line = g_strdup_printf ("crash-mask %s\n", decision);
      log_line (line);
    }
  _exit (RECHAIN_FAULT_CRASH_STATUS);
}

static void
crash_log_clear (void)
{
  g_clear_pointer (&crash_by_path, g_hash_table_unref);
  g_clear_pointer (&crash_files, g_ptr_array_unref);
  crash_bytes = 0;
  crash_seq = 0;
  crash_in_flight = 0;
  crashing = FALSE;
}

guint64
rechain_fault_crash_log_bytes (void)
{
  guint64 n = 0;

  g_mutex_lock (&fault_lock);
  for (guint i = 0; crash_files && i < crash_files->len; i++)
    {
      CrashFile *cf = g_ptr_array_index (crash_files, i);

      for (guint j = 0; j < cf->writes->len; j++)
        n += ((CrashWrite *) g_ptr_array_index (cf->writes, j))->saved;
    }
  g_mutex_unlock (&fault_lock);
  return n;
}

/* ---- configuration ---- */

static gboolean
parse_action (const char *s, int *action)
{
  static const struct { const char *name; int value; } actions[] = {
    { "EIO", EIO },
    { "ENOSPC", ENOSPC },
    { "EDQUOT", EDQUOT },
    { "EFBIG", EFBIG },
    { "KILL", ACTION_KILL },
    { "CRASH", ACTION_CRASH },
    { "CRASH-REVERT", ACTION_CRASH_REVERT },
    { "CRASH-KEEP", ACTION_CRASH_KEEP },
    { "CRASH-MASK", ACTION_CRASH_MASK },
  };

  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    {
      if (strcmp (s, actions[i].name) == 0)
        {
          *action = actions[i].value;
          return TRUE;
        }
    }
  return FALSE;
}

static gboolean
parse_rule (const char *text, FaultRule *rule)
{
  g_auto (GStrv) parts = g_strsplit (text, ":", 4);
  g_autofree char *number = NULL;
  guint64 n;
  guint k;

  memset (rule, 0, sizeof *rule);
  if (g_strv_length (parts) < 3)
    return FALSE;
  for (k = 0; k < N_KINDS; k++)
    if (strcmp (parts[0], kind_names[k]) == 0)
      break;
  if (k == N_KINDS)
    return FALSE;
  number = g_strdup (parts[1]);
  if (g_str_has_suffix (number, "+"))
    {
      rule->and_later = TRUE;
      number[strlen (number) - 1] = '\0';
    }
  if (!g_ascii_string_to_unsigned (number, 10, 1, G_MAXINT, &n, NULL))
    return FALSE;
  if (!parse_action (parts[2], &rule->action))
    return FALSE;
  /* a power loss in the middle of the writer thread's work, from a
   * thread that knows nothing of it, would model nothing real */
  if (k == KIND_BACKGROUND_FLUSH && IS_CRASH (rule->action))
    return FALSE;
  if (parts[3] != NULL)
    {
      if (*parts[3] == '\0')
        return FALSE;
      rule->pattern = g_strdup (parts[3]);
      rule->pattern_has_slash = strchr (parts[3], '/') != NULL;
    }
  rule->kind = (FaultKind) k;
  rule->n = (guint) n;
  return TRUE;
}

static void
rule_clear (gpointer p)
{
  g_free (((FaultRule *) p)->pattern);
}

/* "256M" and the like; FALSE if it is not a size. */
static gboolean
parse_size (const char *s, guint64 *out)
{
  char *end = NULL;
  guint64 v;
  guint shift = 0;

  if (!g_ascii_isdigit (*s))
    return FALSE;
  v = g_ascii_strtoull (s, &end, 10);
  switch (*end)
    {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return FALSE;
    }
  if (*end != '\0' || v == 0 || v > (G_MAXUINT64 >> shift))
    return FALSE;
  *out = v << shift;
  return TRUE;
}

/* (Re)reads the environment. Invalid RECHAIN_FAULT (or seed, or bound) is
 * warned about (once per reading) and ignored as a whole, so a typo never
 * injects half of what was meant. */
static void
load_config (void)
{
  const char *spec = g_getenv ("RECHAIN_FAULT");
  const char *log_path = g_getenv ("RECHAIN_FAULT_LOG");
  const char *seed = g_getenv ("RECHAIN_FAULT_SEED");
  const char *max = g_getenv ("RECHAIN_FAULT_CRASH_MAX");
  const char *mask = g_getenv ("RECHAIN_FAULT_CRASH_MASK");
  gboolean on = FALSE;

  g_mutex_lock (&fault_lock);

  g_clear_pointer (&fault_rules, g_array_unref);
  if (fault_log_fd >= 0)
    {
      close (fault_log_fd);
      fault_log_fd = -1;
    }
  crash_log_clear ();
  crash_generation++;
  crash_active = FALSE;
  crash_seed = 1;
  crash_max = CRASH_MAX_DEFAULT;
  g_clear_pointer (&crash_mask, g_free);

  if (spec != NULL && *spec != '\0')
    {
      g_auto (GStrv) items = g_strsplit (spec, ",", -1);
      GArray *rules = g_array_new (FALSE, FALSE, sizeof (FaultRule));
      gboolean valid = TRUE;
      gboolean any_crash = FALSE;
      const char *why = NULL;

      g_array_set_clear_func (rules, rule_clear);
      for (guint i = 0; items[i] != NULL; i++)
        {
          FaultRule rule;

          if (!parse_rule (g_strstrip (items[i]), &rule))
            {
              rule_clear (&rule);
              valid = FALSE;
              break;
            }
          any_crash = any_crash || IS_CRASH (rule.action);
          g_array_append_val (rules, rule);
        }
      if (valid && seed != NULL && *seed != '\0' &&
          !g_ascii_string_to_unsigned (seed, 10, 0, G_MAXUINT64, &crash_seed, NULL))
        {
          valid = FALSE;
          why = "RECHAIN_FAULT_SEED is not a number";
        }
      if (valid && max != NULL && *max != '\0' && !parse_size (max, &crash_max))
        {
          valid = FALSE;
          why = "RECHAIN_FAULT_CRASH_MAX is not a size";
        }
      if (valid && mask != NULL && mask[strspn (mask, "01")] != '\0')
        {
          valid = FALSE;
          why = "RECHAIN_FAULT_CRASH_MASK is not a string of 0 and 1";
        }
      if (valid)
        {
          crash_mask = g_strdup (mask);
          fault_rules = rules;
          crash_active = any_crash;
          on = TRUE;
        }
      else
        {
          g_array_unref (rules);
          crash_seed = 1;
          crash_max = CRASH_MAX_DEFAULT;
          g_warning ("Ignoring invalid RECHAIN_FAULT '%s' (%s)", spec,
                     why ? why
                         : "expected write|flush|read|any:N[+]:EIO|ENOSPC|EDQUOT|EFBIG|KILL"
                           "|CRASH|CRASH-REVERT|CRASH-KEEP|CRASH-MASK[:FILE]");
        }
    }

  if (log_path != NULL && *log_path != '\0')
    {
      fault_log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                           0644);
      if (fault_log_fd < 0)
        g_warning ("Cannot open RECHAIN_FAULT_LOG '%s': %s", log_path,
                   g_strerror (errno));
      else
        on = TRUE;
    }

  g_atomic_int_set (&fault_state, on ? STATE_ON : STATE_OFF);
  g_mutex_unlock (&fault_lock);
}

void
rechain_fault_reset (void)
{
  load_config ();
}

static void
log_line (const char *line)
{
  gsize line_len = strlen (line);

  /* One write() per line on an O_APPEND descriptor: lines of concurrent
   * threads or processes never interleave. A failed log write is not worth
   * failing the operation for. */
  if (write (fault_log_fd, line, line_len) != (ssize_t) line_len)
    g_debug ("RECHAIN_FAULT_LOG write failed");
}

static void
log_operation (RechainFaultOp op, const char *path, guint64 offset, gsize len)
{
  g_autofree char *line = NULL;

  if (op == RECHAIN_FAULT_OP_FLUSH)
    line = g_strdup_printf ("flush %s\n", path);
  else
    line = g_strdup_printf ("%s %s %" G_GUINT64_FORMAT " %" G_GSIZE_FORMAT "\n",
                            op == RECHAIN_FAULT_OP_READ ? "read" : "write",
                            path, offset, len);
  log_line (line);
}

static gboolean
rule_matches_path (const FaultRule *rule, const char *path)
{
  g_autofree char *base = NULL;

  if (rule->pattern == NULL || g_pattern_match_simple (rule->pattern, path))
    return TRUE;
  if (rule->pattern_has_slash)
    return FALSE;
  base = g_path_get_basename (path);
  return g_pattern_match_simple (rule->pattern, base);
}

/* With fault_lock held: this thread's earlier write is over. */
static void
end_pending_write (void)
{
  if (!tl_pending)
    return;
  tl_pending = FALSE;
  if (tl_pending_generation == crash_generation && crash_in_flight > 0)
    crash_in_flight--;
  if (crashing)
    g_cond_broadcast (&crash_cond);
}

/* With fault_lock held: another thread is crashing the process. This one
 * issues nothing more. */
G_GNUC_NORETURN static void
wait_for_the_end (void)
{
  g_cond_broadcast (&crash_cond);
  for (;;)
    g_cond_wait (&crash_cond, &fault_lock);
}

int
rechain_fault_check (RechainFaultOp op, const char *path,
                     guint64 offset, gsize len)
{
  gint state = g_atomic_int_get (&fault_state);
  FaultKind kind;
  int result = 0;

  if (G_LIKELY (state == STATE_OFF))
    return 0;
  if (state == STATE_UNKNOWN)
    {
      static gsize loaded = 0;

      if (g_once_init_enter (&loaded))
        {
          load_config ();
          g_once_init_leave (&loaded, 1);
        }
      if (g_atomic_int_get (&fault_state) != STATE_ON)
        return 0;
    }

  kind = op == RECHAIN_FAULT_OP_READ ? KIND_READ
       : op == RECHAIN_FAULT_OP_WRITE ? KIND_WRITE
       : op == RECHAIN_FAULT_OP_FLUSH ? KIND_FLUSH : KIND_BACKGROUND_FLUSH;

  g_mutex_lock (&fault_lock);
  end_pending_write ();
  if (crashing)
    wait_for_the_end ();
  if (fault_log_fd >= 0 && kind != KIND_BACKGROUND_FLUSH)
    log_operation (op, path, offset, len);
  /* Every rule counts the operations of its kind on its files; the first
   * rule whose count is hit decides. */
  for (guint i = 0; fault_rules != NULL && i < fault_rules->len; i++)
    {
      FaultRule *rule = &g_array_index (fault_rules, FaultRule, i);
      gboolean kind_ok = rule->kind == KIND_ANY ? kind == KIND_WRITE || kind == KIND_FLUSH
                                                : rule->kind == kind;

      if (!kind_ok || !rule_matches_path (rule, path))
        continue;
      if (rule->count < G_MAXUINT)
        rule->count++;
      if (result == 0 && (rule->count == rule->n || (rule->and_later && rule->count >= rule->n)))
        result = rule->action;
    }

  if (IS_CRASH (result))
    crash (result);
  if (result == 0 && crash_active)
    {
      if (op == RECHAIN_FAULT_OP_WRITE)
        {
          tl_pending_seq = crash_record_write (path, offset, len);
          tl_pending = TRUE;
          tl_pending_generation = crash_generation;
          crash_in_flight++;
        }
      else if (op == RECHAIN_FAULT_OP_FLUSH)
        {
          CrashFile *cf = crash_file_get (path, FALSE);

          tl_flush_seq = crash_seq;
          tl_flush_generation = crash_generation;
          tl_flush_size = cf ? crash_file_size (cf) : 0;
        }
    }
  g_mutex_unlock (&fault_lock);

  if (result == ACTION_KILL)
    {
      /* SIGKILL cannot be caught: the process stops here as if the
       * machine had lost power (minus the page cache: see CRASH). */
      kill (getpid (), SIGKILL);
      /* Not reached; but never go on with the operation. */
      abort ();
    }
  return result;
}

void
rechain_fault_done (RechainFile *file, RechainFaultOp op, int err)
{
  if (G_LIKELY (g_atomic_int_get (&fault_state) != STATE_ON))
    return;

  g_mutex_lock (&fault_lock);
  if (op == RECHAIN_FAULT_OP_WRITE && tl_pending)
    {
      gboolean dsync = file->cache == RECHAIN_CACHE_WRITETHROUGH ||
                       file->cache == RECHAIN_CACHE_DIRECTSYNC;
      CrashFile *cf = crash_file_get (file->path, FALSE);

      if (cf && (cf->dev != file->dev || cf->ino != file->ino))
        crash_log_fail ("%s is no longer the file it was when first written: the pre-images "
                        "would be put back into another file", file->path);
      if (err == 0 && dsync && cf && tl_pending_generation == crash_generation)
        for (guint i = cf->writes->len; i-- > 0;)
          {
            CrashWrite *w = g_ptr_array_index (cf->writes, i);

            if (w->seq == tl_pending_seq)
              {
                w->durable = TRUE;
                break;
              }
          }
      end_pending_write ();
    }
  if (crashing)
    wait_for_the_end ();
  if (op == RECHAIN_FAULT_OP_FLUSH && err == 0 && crash_active &&
      tl_flush_generation == crash_generation)
    {
      CrashFile *cf = crash_file_get (file->path, FALSE);

      if (cf)
        crash_flushed (cf, tl_flush_seq, tl_flush_size);
    }
  g_mutex_unlock (&fault_lock);
}
