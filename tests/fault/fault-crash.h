/* fault-crash.h: the power-loss model of the fault shim (fault-crash.c).
 * Every function is called with the shim's lock held.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Forgets every pre-image and sets what the next crash does. */
void fault_crash_reset (guint64 seed, const char *mask, guint64 max);

/* Before a write of [@offset, +@len) through the descriptor @fd (named
 * @path) is issued: keeps its pre-image. Returns the write's number. */
guint64 fault_crash_record_write (int fd, const char *path, guint64 offset, guint64 len);

/* The write numbered @seq, through @fd, completed and was durable at once
 * (O_DSYNC): it survives any crash. */
void fault_crash_write_durable (int fd, guint64 seq);

/* Writes recorded so far, and the size of @fd's file (0 if no write to
 * it was recorded): taken when a flush begins. */
guint64 fault_crash_seq (void);
guint64 fault_crash_size (int fd);

/* A flush of @fd that began at @seq, when its file had @size_then bytes,
 * succeeded: the writes issued before it are durable. */
void fault_crash_flushed (int fd, guint64 seq, guint64 size_then);

/* The power loss: decides which unflushed writes survive (@action is a
 * FAULT_ACTION_CRASH*), puts the others' pre-images back, passes each
 * line of its account to @log (may be NULL), and leaves the process with
 * _exit(RECHAIN_FAULT_CRASH_STATUS). */
G_GNUC_NORETURN void fault_crash_now (int action, void (*log) (const char *line));

/* Bytes of pre-images held. */
guint64 fault_crash_log_bytes (void);

G_END_DECLS
