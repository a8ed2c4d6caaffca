/* io-test-util.h: helpers shared by the io tests: scratch directories and
 * QEMU processes that hold image locks.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* A fresh directory for one test; removed with everything in it by
 * io_test_rmdir(). */
char *io_test_mkdtemp (void);
void io_test_rmdir (const char *dir);

/* Writes @len bytes of a pattern depending on @seed into a new file. */
void io_test_write_file (const char *path, gsize len, guint seed);
void io_test_fill_pattern (void *buf, gsize len, guint seed);

/* Whether some open file description holds an OFD lock covering @byte of
 * @path, according to /proc/locks. */
gboolean io_test_ofd_lock_held (const char *path, guint64 byte);

/* A qemu-io process reading commands from a pipe we keep open, so that it
 * keeps its image (and locks) open until io_test_qemu_stop(). */
typedef struct {
  GPid pid;
  int stdin_fd;
} IoTestQemu;

/* Starts qemu-io with @argv (without "qemu-io" itself) and waits until
 * /proc/locks shows a lock on @wait_byte of @wait_path. FALSE (with a
 * failed assertion message logged) if it dies or times out. */
gboolean io_test_qemu_start (IoTestQemu *q, const char *const *argv,
                             const char *wait_path, guint64 wait_byte);
void io_test_qemu_stop (IoTestQemu *q);

/* Runs a program synchronously; returns its exit status (-1 if it could not
 * start) and its standard error. */
int io_test_run (const char *const *argv, char **stderr_text);
