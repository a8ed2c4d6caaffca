/* fault-shim.c: fault injection for tests, as an LD_PRELOAD library
 * (RECHAIN_FAULT, RECHAIN_FAULT_LOG). Never installed: built in tests/,
 * loaded into rechain (or a test program) only by the tests.
 *
 * Why a preloaded shim. The installed librechain-1.so and rechain carry no
 * test machinery: nothing in them reads RECHAIN_FAULT, kills the process
 * or _exit()s because of an environment variable. The shim interposes the
 * C library calls through which the io layer (src/io/file.c, copy.c) moves
 * data -- open, close, pread64, pwrite64, fdatasync, copy_file_range and
 * ioctl(FICLONERANGE) -- the way nbdkit keeps its error injection in a
 * filter one loads on purpose. The tests so exercise the very binaries
 * that ship, on the same code paths (the error comes back from the system
 * call, and file.c turns it into a GError as it would a real one). An I/O
 * vtable that only test binaries replace was the other choice; it would
 * have needed a second, test-only build of the tool and of the library
 * for the Python tests, and an indirection in the shipped I/O path.
 *
 * Crash-consistency tests need to stop rechain at every write and flush it
 * does; this makes the Nth such operation of the process fail with a given
 * errno, kill the process, or "crash" it (a power loss, fault-crash.c),
 * and can log every counted operation so that a test first learns how
 * many there are.
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
 * (fault-spec.c parses these; fault-crash.c is the power loss.)
 *
 * What is counted, so that the numbers are those of the io layer's
 * operations (one per rechain_file_pread*, pwrite, clone, copy or flush):
 *   - only descriptors opened with open() (as rechain_file_open() does;
 *     not O_TMPFILE ones, like the reflink probe's), of regular files and
 *     block devices, still on the same file (device and inode) -- their
 *     PATH is the name open() was given, as RechainFile keeps it;
 *   - read: pread64; write: pwrite64, ioctl(FICLONERANGE) and
 *     copy_file_range (the clones and in-kernel copies of copy.c);
 *     flush: fdatasync on any thread but the io layer's flusher, whose
 *     thread is named "rechain-flush" (file.c names it so): its
 *     fdatasync is a background-flush;
 *   - the io layer's loops finish a short transfer, or one interrupted
 *     (EINTR), with a call that carries on where the previous one stopped:
 *     such a continuation belongs to the operation already counted, and
 *     is neither counted nor logged;
 *   - a flush that finds an error a background flush saw reports it
 *     without calling fdatasync: it is not counted.
 * Only the Nth operation fails (unless "N+"); the ones after it go through,
 * as a transient error would. A failing operation is not passed on: the
 * call returns -1 with that errno. The environment is read once, lazily,
 * on the first operation; rechain_fault_reset() reads it again and
 * restarts the counts (tests change the variables between cases).
 * Writes are expected from one thread at a time per byte range (as the
 * io layer requires anyway); a crash waits (up to 10 s) for writes other
 * threads have in flight.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "fault-crash.h"
#include "fault-shim.h"
#include "fault-spec.h"

#define SHIM_EXPORT __attribute__ ((visibility ("default")))

/* the C library's fortified open(), which it does not declare */
SHIM_EXPORT int __open_2 (const char *path, int flags);
SHIM_EXPORT int __open64_2 (const char *path, int flags);

/* ---- the C library's functions ---- */

static gpointer
real (const char *name)
{
  gpointer p = dlsym (RTLD_NEXT, name);

  if (p == NULL)
    {
      static const char msg[] = "rechain fault shim: a C library function is missing\n";

      (void) !write (2, msg, sizeof msg - 1);
      abort ();
    }
  return p;
}

#define REAL(type, name) \
  static type real_##name; \
  if (G_UNLIKELY (real_##name == NULL)) \
    real_##name = (type) real (#name)

typedef int (*OpenFn) (const char *, int, ...);
typedef int (*OpenatFn) (int, const char *, int, ...);
typedef int (*Open2Fn) (const char *, int);
typedef int (*Openat2Fn) (int, const char *, int);
typedef int (*CloseFn) (int);
typedef ssize_t (*PreadFn) (int, void *, size_t, off64_t);
typedef ssize_t (*PwriteFn) (int, const void *, size_t, off64_t);
typedef int (*FdatasyncFn) (int);
typedef ssize_t (*CopyFileRangeFn) (int, off64_t *, int, off64_t *, size_t, unsigned int);
typedef int (*IoctlFn) (int, unsigned long, ...);

/* ---- descriptors and their names ---- */

typedef struct {
  char *path;
  dev_t dev;
  ino_t ino;
} FdInfo;

static GMutex fd_lock;
static FdInfo *fd_table;
static guint fd_table_len;

static void
fd_forget (int fd)
{
  if (fd < 0)
    return;
  g_mutex_lock (&fd_lock);
  if ((guint) fd < fd_table_len)
    g_clear_pointer (&fd_table[fd].path, g_free);
  g_mutex_unlock (&fd_lock);
}

static void
fd_remember (int fd, const char *path, int flags)
{
  struct stat st;
  int saved_errno = errno;

  fd_forget (fd);
  if (fd < 0 || path == NULL || (flags & O_TMPFILE) == O_TMPFILE)
    goto out;
  if (fstat (fd, &st) < 0 || !(S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
    goto out;
  g_mutex_lock (&fd_lock);
  if ((guint) fd >= fd_table_len)
    {
      guint len = MAX ((guint) fd + 1, fd_table_len * 2);

      fd_table = g_renew (FdInfo, fd_table, len);
      memset (fd_table + fd_table_len, 0, (len - fd_table_len) * sizeof *fd_table);
      fd_table_len = len;
    }
  fd_table[fd].path = g_strdup (path);
  fd_table[fd].dev = st.st_dev;
  fd_table[fd].ino = st.st_ino;
  g_mutex_unlock (&fd_lock);
out:
  errno = saved_errno;
}

/* The name @fd was opened by, if it is one of ours (a copy), or NULL. */
static char *
fd_path (int fd)
{
  struct stat st;
  char *path = NULL;
  dev_t dev = 0;
  ino_t ino = 0;

  if (fd < 0)
    return NULL;
  g_mutex_lock (&fd_lock);
  if ((guint) fd < fd_table_len && fd_table[fd].path)
    {
      path = g_strdup (fd_table[fd].path);
      dev = fd_table[fd].dev;
      ino = fd_table[fd].ino;
    }
  g_mutex_unlock (&fd_lock);
  /* a number reused behind our back (dup2, a socket...) is not ours */
  if (path && (fstat (fd, &st) < 0 || st.st_dev != dev || st.st_ino != ino))
    g_clear_pointer (&path, g_free);
  return path;
}

/* ---- configuration and counts ---- */

enum {
  STATE_UNKNOWN = 0, /* environment not read yet */
  STATE_OFF,         /* neither variable set: nothing to do */
  STATE_ON,
};

/* The fast path reads only this. */
static gint fault_state = STATE_UNKNOWN;

/* The configuration, the counts and the crash model, under fault_lock. */
static GMutex fault_lock;
static FaultSpec fault_spec = { .seed = 1, .crash_max = FAULT_CRASH_MAX_DEFAULT };
static int fault_log_fd = -1;
static gboolean crash_active;  /* a crash rule exists: keep pre-images */
static gboolean crashing;
static GCond crash_cond;
static gint crash_in_flight;   /* writes between begin and end */
static guint generation;       /* bumped by each load_config() */

static void
load_config (void)
{
  gboolean on;

  g_mutex_lock (&fault_lock);
  if (fault_log_fd >= 0)
    {
      close (fault_log_fd);
      fault_log_fd = -1;
    }
  fault_spec_load (&fault_spec);
  crash_active = fault_spec.any_crash;
  fault_crash_reset (fault_spec.seed, fault_spec.mask, fault_spec.crash_max);
  crash_in_flight = 0;
  crashing = FALSE;
  generation++;
  on = fault_spec.rules != NULL;
  if (fault_spec.log_path != NULL)
    {
      do
        fault_log_fd = (int) syscall (SYS_openat, AT_FDCWD, fault_spec.log_path,
                                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      while (fault_log_fd < 0 && errno == EINTR);
      if (fault_log_fd < 0)
        g_warning ("Cannot open RECHAIN_FAULT_LOG '%s': %s", fault_spec.log_path,
                   g_strerror (errno));
      else
        on = TRUE;
    }
  g_atomic_int_set (&fault_state, on ? STATE_ON : STATE_OFF);
  g_mutex_unlock (&fault_lock);
}

SHIM_EXPORT void
rechain_fault_reset (void)
{
  load_config ();
}

SHIM_EXPORT guint64
rechain_fault_crash_log_bytes (void)
{
  guint64 n;

  g_mutex_lock (&fault_lock);
  n = fault_crash_log_bytes ();
  g_mutex_unlock (&fault_lock);
  return n;
}

static gboolean
fault_on (void)
{
  gint state = g_atomic_int_get (&fault_state);

  if (G_LIKELY (state == STATE_OFF))
    return FALSE;
  if (state == STATE_UNKNOWN)
    {
      static gsize loaded = 0;

      if (g_once_init_enter (&loaded))
        {
          load_config ();
          g_once_init_leave (&loaded, 1);
        }
      return g_atomic_int_get (&fault_state) == STATE_ON;
    }
  return TRUE;
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

/* ---- operations ---- */

typedef enum {
  OP_READ,
  OP_WRITE,
  OP_COPY,        /* a clone or an in-kernel copy: a write */
  OP_FLUSH,
  OP_BACKGROUND_FLUSH,
} OpType;

typedef struct {
  OpType type;
  int fd;
  char *path;
  guint64 offset, len;
  gboolean pending;   /* a recorded write, in flight */
  guint64 seq;        /* its number in the crash log */
  guint64 flush_seq, flush_size;
  guint generation;
} Op;

/* The call this thread's previous one left unfinished (short, or
 * interrupted): a continuation, which is not an operation of its own. */
static _Thread_local struct {
  gboolean valid;
  OpType type;
  int fd;
  guint64 offset;
  guint64 len;      /* 0: any (copies) */
} tl_cont;

typedef enum {
  PASS,     /* not ours, or nothing to do: just call the C library */
  CONTINUE, /* the rest of an operation already counted */
  COUNT,
} Verdict;

static Verdict
op_prepare (Op *op, OpType type, int fd, guint64 offset, guint64 len)
{
  memset (op, 0, sizeof *op);
  if (!fault_on ())
    return PASS;
  if (tl_cont.valid && tl_cont.type == type && tl_cont.fd == fd && tl_cont.offset == offset &&
      (tl_cont.len == 0 || tl_cont.len == len))
    {
      op->type = type;
      op->fd = fd;
      return CONTINUE;
    }
  op->path = fd_path (fd);
  if (op->path == NULL)
    return PASS;
  op->type = type;
  op->fd = fd;
  op->offset = offset;
  op->len = len;
  return COUNT;
}

/* After the call to the C library: what a continuation would look like. */
static void
op_continuation (Op *op, guint64 offset, guint64 asked, gssize ret, int err)
{
  tl_cont.valid = FALSE;
  if (ret < 0 && err == EINTR)
    {
      tl_cont.valid = TRUE;
      tl_cont.type = op->type;
      tl_cont.fd = op->fd;
      tl_cont.offset = offset;
      tl_cont.len = op->type == OP_COPY ? 0 : asked;
      return;
    }
  if (ret <= 0 || (op->type != OP_READ && op->type != OP_WRITE && op->type != OP_COPY))
    return;
  if ((guint64) ret < asked || (op->type == OP_COPY && asked == (G_GUINT64_CONSTANT (1) << 30)))
    {
      tl_cont.valid = TRUE;
      tl_cont.type = op->type;
      tl_cont.fd = op->fd;
      tl_cont.offset = offset + (guint64) ret;
      tl_cont.len = op->type == OP_COPY ? 0 : asked - (guint64) ret;
    }
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

/* The power loss, with fault_lock held. */
G_GNUC_NORETURN static void
crash (int action)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

  crashing = TRUE;
  /* other threads' writes already issued finish first (new ones wait) */
  while (crash_in_flight > 0)
    if (!g_cond_wait_until (&crash_cond, &fault_lock, deadline))
      {
        g_printerr ("rechain: RECHAIN_FAULT crash: %d write(s) of other threads still in "
                    "flight after 10 s; crashing anyway\n", crash_in_flight);
        break;
      }
  fault_crash_now (action, fault_log_fd >= 0 ? log_line : NULL);
}

/* Before a counted operation: 0 to go on, or the errno it must fail with.
 * Does not return if the action is KILL or a crash. */
static int
op_begin (Op *op)
{
  FaultKind kind;
  int result = 0;

  tl_cont.valid = FALSE;
  kind = op->type == OP_READ ? FAULT_KIND_READ
       : op->type == OP_FLUSH ? FAULT_KIND_FLUSH
       : op->type == OP_BACKGROUND_FLUSH ? FAULT_KIND_BACKGROUND_FLUSH : FAULT_KIND_WRITE;

  g_mutex_lock (&fault_lock);
  if (crashing)
    wait_for_the_end ();
  op->generation = generation;
  if (fault_log_fd >= 0 && kind != FAULT_KIND_BACKGROUND_FLUSH)
    {
      g_autofree char *line = NULL;

      if (kind == FAULT_KIND_FLUSH)
        line = g_strdup_printf ("flush %s\n", op->path);
      else
        line = g_strdup_printf ("%s %s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n",
                                kind == FAULT_KIND_READ ? "read" : "write", op->path,
                                op->offset, op->len);
      log_line (line);
    }
  /* Every rule counts the operations of its kind on its files; the first
   * rule whose count is hit decides. */
  for (guint i = 0; fault_spec.rules != NULL && i < fault_spec.rules->len; i++)
    {
      FaultRule *rule = &g_array_index (fault_spec.rules, FaultRule, i);
      gboolean kind_ok = rule->kind == FAULT_KIND_ANY
                           ? kind == FAULT_KIND_WRITE || kind == FAULT_KIND_FLUSH
                           : rule->kind == kind;

      if (!kind_ok || !fault_rule_matches_path (rule, op->path))
        continue;
      if (rule->count < G_MAXUINT)
        rule->count++;
      if (result == 0 && (rule->count == rule->n || (rule->and_later && rule->count >= rule->n)))
        result = rule->action;
    }

  if (FAULT_IS_CRASH (result))
    crash (result);
  if (result == 0 && crash_active)
    {
      if (kind == FAULT_KIND_WRITE)
        {
          op->seq = fault_crash_record_write (op->fd, op->path, op->offset, op->len);
          op->pending = TRUE;
          crash_in_flight++;
        }
      else if (kind == FAULT_KIND_FLUSH)
        {
          op->flush_seq = fault_crash_seq ();
          op->flush_size = fault_crash_size (op->fd);
        }
    }
  g_mutex_unlock (&fault_lock);

  if (result == FAULT_ACTION_KILL)
    {
      /* SIGKILL cannot be caught: the process stops here as if the
       * machine had lost power (minus the page cache: see fault-crash.c). */
      kill (getpid (), SIGKILL);
      /* Not reached; but never go on with the operation. */
      abort ();
    }
  return result;
}

/* After a counted operation that op_begin() let through: @err is 0 if it
 * succeeded, or its errno value. A successful flush makes the file's
 * earlier writes durable; a successful write through O_DSYNC is durable at
 * once. */
static void
op_end (Op *op, int err)
{
  g_mutex_lock (&fault_lock);
  if (op->pending && op->generation == generation)
    {
      if (err == 0 && op->type == OP_WRITE)
        {
          int flags = fcntl (op->fd, F_GETFL);

          if (flags >= 0 && (flags & O_DSYNC) == O_DSYNC)
            fault_crash_write_durable (op->fd, op->seq);
        }
      if (crash_in_flight > 0)
        crash_in_flight--;
      if (crashing)
        g_cond_broadcast (&crash_cond);
    }
  if (crashing)
    wait_for_the_end ();
  if (op->type == OP_FLUSH && err == 0 && crash_active && op->generation == generation)
    fault_crash_flushed (op->fd, op->flush_seq, op->flush_size);
  g_mutex_unlock (&fault_lock);
}

static void
op_clear (Op *op)
{
  g_clear_pointer (&op->path, g_free);
}

/* ---- the interposed functions ---- */

static int
open_mode_needed (int flags)
{
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

SHIM_EXPORT int
open (const char *path, int flags, ...)
{
  REAL (OpenFn, open);
  mode_t mode = 0;
  int fd;

  if (open_mode_needed (flags))
    {
      va_list ap;

      va_start (ap, flags);
      mode = va_arg (ap, mode_t);
      va_end (ap);
    }
  fd = real_open (path, flags, mode);
  fd_remember (fd, path, flags);
  return fd;
}

SHIM_EXPORT int
open64 (const char *path, int flags, ...)
{
  REAL (OpenFn, open64);
  mode_t mode = 0;
  int fd;

  if (open_mode_needed (flags))
    {
      va_list ap;

      va_start (ap, flags);
      mode = va_arg (ap, mode_t);
      va_end (ap);
    }
  fd = real_open64 (path, flags, mode);
  fd_remember (fd, path, flags);
  return fd;
}

SHIM_EXPORT int
__open_2 (const char *path, int flags)
{
  REAL (Open2Fn, __open_2);
  int fd = real___open_2 (path, flags);

  fd_remember (fd, path, flags);
  return fd;
}

SHIM_EXPORT int
__open64_2 (const char *path, int flags)
{
  REAL (Open2Fn, __open64_2);
  int fd = real___open64_2 (path, flags);

  fd_remember (fd, path, flags);
  return fd;
}

/* openat() is not how rechain_file_open() opens: only forget what the
 * number meant before. */
SHIM_EXPORT int
openat (int dirfd, const char *path, int flags, ...)
{
  REAL (OpenatFn, openat);
  mode_t mode = 0;
  int fd;

  if (open_mode_needed (flags))
    {
      va_list ap;

      va_start (ap, flags);
      mode = va_arg (ap, mode_t);
      va_end (ap);
    }
  fd = real_openat (dirfd, path, flags, mode);
  fd_forget (fd);
  return fd;
}

SHIM_EXPORT int
openat64 (int dirfd, const char *path, int flags, ...)
{
  REAL (OpenatFn, openat64);
  mode_t mode = 0;
  int fd;

  if (open_mode_needed (flags))
    {
      va_list ap;

      va_start (ap, flags);
      mode = va_arg (ap, mode_t);
      va_end (ap);
    }
  fd = real_openat64 (dirfd, path, flags, mode);
  fd_forget (fd);
  return fd;
}

SHIM_EXPORT int
close (int fd)
{
  REAL (CloseFn, close);

  fd_forget (fd);
  return real_close (fd);
}

static ssize_t
shim_pread (int fd, void *buf, size_t len, off64_t offset)
{
  REAL (PreadFn, pread64);
  Verdict v;
  ssize_t ret;
  int err;
  Op op;

  v = op_prepare (&op, OP_READ, fd, (guint64) offset, len);
  if (v == PASS)
    return real_pread64 (fd, buf, len, offset);
  if (v == COUNT && (err = op_begin (&op)) != 0)
    {
      op_clear (&op);
      errno = err;
      return -1;
    }
  ret = real_pread64 (fd, buf, len, offset);
  err = ret < 0 ? errno : 0;
  op_continuation (&op, (guint64) offset, len, ret, err);
  op_clear (&op);
  errno = err;
  return ret;
}

SHIM_EXPORT ssize_t
pread64 (int fd, void *buf, size_t len, off64_t offset)
{
  return shim_pread (fd, buf, len, offset);
}

SHIM_EXPORT ssize_t
pread (int fd, void *buf, size_t len, off_t offset)
{
  return shim_pread (fd, buf, len, offset);
}

static ssize_t
shim_pwrite (int fd, const void *buf, size_t len, off64_t offset)
{
  REAL (PwriteFn, pwrite64);
  Verdict v;
  ssize_t ret;
  int err;
  Op op;

  v = op_prepare (&op, OP_WRITE, fd, (guint64) offset, len);
  if (v == PASS)
    return real_pwrite64 (fd, buf, len, offset);
  if (v == COUNT && (err = op_begin (&op)) != 0)
    {
      op_clear (&op);
      errno = err;
      return -1;
    }
  ret = real_pwrite64 (fd, buf, len, offset);
  err = ret < 0 ? errno : 0;
  if (v == COUNT)
    op_end (&op, err);
  op_continuation (&op, (guint64) offset, len, ret, err);
  op_clear (&op);
  errno = err;
  return ret;
}

SHIM_EXPORT ssize_t
pwrite64 (int fd, const void *buf, size_t len, off64_t offset)
{
  return shim_pwrite (fd, buf, len, offset);
}

SHIM_EXPORT ssize_t
pwrite (int fd, const void *buf, size_t len, off_t offset)
{
  return shim_pwrite (fd, buf, len, offset);
}

static gboolean
on_flusher_thread (void)
{
  char name[17] = { 0 };

  return prctl (PR_GET_NAME, name, 0, 0, 0) == 0 && strcmp (name, "rechain-flush") == 0;
}

SHIM_EXPORT int
fdatasync (int fd)
{
  REAL (FdatasyncFn, fdatasync);
  Verdict v;
  int ret, err;
  Op op;

  v = op_prepare (&op, on_flusher_thread () ? OP_BACKGROUND_FLUSH : OP_FLUSH, fd, 0, 0);
  if (v == PASS)
    return real_fdatasync (fd);
  if (v == COUNT && (err = op_begin (&op)) != 0)
    {
      op_clear (&op);
      errno = err;
      return -1;
    }
  ret = real_fdatasync (fd);
  err = ret < 0 ? errno : 0;
  if (v == COUNT)
    op_end (&op, err);
  op_continuation (&op, 0, 0, ret, err);
  op_clear (&op);
  errno = err;
  return ret;
}

SHIM_EXPORT ssize_t
copy_file_range (int fd_in, off64_t *off_in, int fd_out, off64_t *off_out, size_t len,
                 unsigned int flags)
{
  REAL (CopyFileRangeFn, copy_file_range);
  guint64 offset;
  Verdict v;
  ssize_t ret;
  int err;
  Op op;

  if (off_out)
    offset = (guint64) *off_out;
  else
    {
      off_t pos = lseek (fd_out, 0, SEEK_CUR);

      offset = pos < 0 ? 0 : (guint64) pos;
    }
  v = op_prepare (&op, OP_COPY, fd_out, offset, len);
  if (v == PASS)
    return real_copy_file_range (fd_in, off_in, fd_out, off_out, len, flags);
  if (v == COUNT && (err = op_begin (&op)) != 0)
    {
      op_clear (&op);
      errno = err;
      return -1;
    }
  ret = real_copy_file_range (fd_in, off_in, fd_out, off_out, len, flags);
  err = ret < 0 ? errno : 0;
  if (v == COUNT)
    op_end (&op, err);
  op_continuation (&op, offset, len, ret, err);
  op_clear (&op);
  errno = err;
  return ret;
}

SHIM_EXPORT int
ioctl (int fd, unsigned long request, ...)
{
  REAL (IoctlFn, ioctl);
  struct file_clone_range *range;
  void *arg;
  va_list ap;
  int ret, err;
  Op op;

  va_start (ap, request);
  arg = va_arg (ap, void *);
  va_end (ap);
  if (request != FICLONERANGE || arg == NULL)
    return real_ioctl (fd, request, arg);
  range = arg;
  if (op_prepare (&op, OP_COPY, fd, range->dest_offset, range->src_length) != COUNT)
    {
      op_clear (&op);
      return real_ioctl (fd, request, arg);
    }
  if ((err = op_begin (&op)) != 0)
    {
      op_clear (&op);
      errno = err;
      return -1;
    }
  ret = real_ioctl (fd, request, arg);
  err = ret < 0 ? errno : 0;
  op_end (&op, err);
  op_clear (&op);
  errno = err;
  return ret;
}
