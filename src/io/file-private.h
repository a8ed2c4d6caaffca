/* file-private.h: what file.c, lock.c and copy.c share and nothing above
 * the io layer may see: the RechainFile structure.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <sys/types.h>
#include "io/file.h"

G_BEGIN_DECLS

struct _RechainFile {
  char *path;
  int fd;
  gboolean writable;
  gboolean direct;          /* opened with O_DIRECT */
  gboolean is_block_device;
  RechainCacheMode cache;
  gsize alignment;          /* 1 without O_DIRECT */
  dev_t dev;                /* identity, for rechain_file_same() */
  ino_t ino;

  /* Lock bytes this open file description holds, as a bit set: bit i for
   * byte 100 + i ("we hold permission i"), bit 8 + i for byte 200 + i ("we
   * do not share permission i"). Owned by lock.c. */
  guint lock_bytes;
  gboolean lock_unsupported; /* the file system has no OFD locks */

  /* Written since writeback was last started (cache mode writeback only):
   * the range and the bytes. See rechain_file_note_written(). */
  guint64 wb_start, wb_end, wb_bytes;

  /* Background flushes (see rechain_file_note_written()). bg_bytes is the
   * writer thread's own; the rest is under bg_lock. */
  guint64 bg_bytes;         /* written since the last background flush was asked for */
  GThread *bg_thread;       /* the file's flusher, started on the first request */
  gboolean bg_unavailable;  /* it could not be started */
  GMutex bg_lock;
  GCond bg_cond;
  gboolean bg_busy;         /* one is asked for or running */
  gboolean bg_stop;         /* the file is being closed */
  gboolean fg_flushing;     /* rechain_file_flush() is running: ask for none */
  int bg_error;             /* errno of a failed one: every later flush fails */
};

/* Called after a write of [offset, offset+len) to @file (by the thread
 * that writes it). With cache mode writeback, once some megabytes are
 * written the kernel is asked to start writing them to the disk
 * (sync_file_range SYNC_FILE_RANGE_WRITE), so that the disk works while
 * rechain goes on copying and the flush that makes them durable has less
 * left to wait for. With cache modes writeback and none, every few tens
 * of megabytes an fdatasync() is also run on a thread of its own: a
 * flush costs the storage below in proportion to what it has not yet
 * made durable (a virtual disk's host flushes its own cache), and the
 * final flush, which the writer waits for, is then left with the last
 * megabytes only. Durability is unchanged: only rechain_file_flush()
 * promises it. A background flush that fails makes every later
 * rechain_file_flush() of the file fail with its error, since the kernel
 * reports a writeback error to one fdatasync() only. */
void rechain_file_note_written (RechainFile *file, guint64 offset, guint64 len);

G_END_DECLS
