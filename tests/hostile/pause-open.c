/* pause-open.c: test-only LD_PRELOAD shim of tests/hostile/test_privilege.py
 * (built, never installed).
 *
 * With RECHAIN_TEST_PAUSE_OPEN=SUBSTRING in the environment, the first
 * open/open64/openat/openat64 (or their _FORTIFY_SOURCE __*_2 forms) of a
 * path containing SUBSTRING stops the whole process with SIGSTOP before the
 * real call is made, so that the test can change the file system (swap a
 * symlink) between the moment rechain decided what to open and the open
 * itself, and then let it go on with SIGCONT. Every other call goes
 * straight to the next definition (dlsym RTLD_NEXT).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/* open must not be redirected to open64 here: both are defined below */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef int (*open_fn) (const char *, int, ...);
typedef int (*openat_fn) (int, const char *, int, ...);

static int paused;

static void
maybe_pause (const char *path)
{
  const char *sub = getenv ("RECHAIN_TEST_PAUSE_OPEN");

  if (sub == NULL || *sub == '\0' || path == NULL || strstr (path, sub) == NULL)
    return;
  if (__atomic_exchange_n (&paused, 1, __ATOMIC_SEQ_CST) == 0)
    raise (SIGSTOP);
}

static int
needs_mode (int flags)
{
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

static void *
next (const char *name)
{
  return dlsym (RTLD_NEXT, name);
}

#define OPEN_WRAPPER(NAME)                                              \
  int NAME (const char *path, int flags, ...);                          \
  int NAME (const char *path, int flags, ...)                           \
  {                                                                     \
    static open_fn real;                                                \
    mode_t mode = 0;                                                    \
    if (needs_mode (flags))                                             \
      {                                                                 \
        va_list ap;                                                     \
        va_start (ap, flags);                                           \
        mode = va_arg (ap, mode_t);                                     \
        va_end (ap);                                                    \
      }                                                                 \
    if (real == NULL)                                                   \
      real = (open_fn) next (#NAME);                                    \
    maybe_pause (path);                                                 \
    return real (path, flags, mode);                                    \
  }

#define OPENAT_WRAPPER(NAME)                                            \
  int NAME (int dirfd, const char *path, int flags, ...);               \
  int NAME (int dirfd, const char *path, int flags, ...)                \
  {                                                                     \
    static openat_fn real;                                              \
    mode_t mode = 0;                                                    \
    if (needs_mode (flags))                                             \
      {                                                                 \
        va_list ap;                                                     \
        va_start (ap, flags);                                           \
        mode = va_arg (ap, mode_t);                                     \
        va_end (ap);                                                    \
      }                                                                 \
    if (real == NULL)                                                   \
      real = (openat_fn) next (#NAME);                                  \
    maybe_pause (path);                                                 \
    return real (dirfd, path, flags, mode);                             \
  }

OPEN_WRAPPER (open)
OPEN_WRAPPER (open64)
OPENAT_WRAPPER (openat)
OPENAT_WRAPPER (openat64)

/* the _FORTIFY_SOURCE entry points (no mode: O_CREAT never gets here) */
#define FORTIFY_OPEN_WRAPPER(NAME)                                      \
  int NAME (const char *path, int flags);                               \
  int NAME (const char *path, int flags)                                \
  {                                                                     \
    static int (*real) (const char *, int);                             \
    if (real == NULL)                                                   \
      real = (int (*) (const char *, int)) next (#NAME);                \
    maybe_pause (path);                                                 \
    return real (path, flags);                                          \
  }

#define FORTIFY_OPENAT_WRAPPER(NAME)                                    \
  int NAME (int dirfd, const char *path, int flags);                    \
  int NAME (int dirfd, const char *path, int flags)                     \
  {                                                                     \
    static int (*real) (int, const char *, int);                        \
    if (real == NULL)                                                   \
      real = (int (*) (int, const char *, int)) next (#NAME);           \
    maybe_pause (path);                                                 \
    return real (dirfd, path, flags);                                   \
  }

FORTIFY_OPEN_WRAPPER (__open_2)
FORTIFY_OPEN_WRAPPER (__open64_2)
FORTIFY_OPENAT_WRAPPER (__openat_2)
FORTIFY_OPENAT_WRAPPER (__openat64_2)
