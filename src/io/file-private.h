/* file-private.h: what file.c, lock.c and fault.c share and nothing above
 * the io layer may see: the RechainFile structure and the fault-injection
 * hook.
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
};

/* Called after a write of [offset, offset+len) to @file (by the thread
 * that writes it). With cache mode writeback, once some megabytes are
 * written the kernel is asked to start writing them to the disk
 * (sync_file_range SYNC_FILE_RANGE_WRITE), so that the disk works while
 * rechain goes on copying and the flush that makes them durable has less
 * left to wait for. Durability is unchanged: only the flush promises it. */
void rechain_file_note_written (RechainFile *file, guint64 offset, guint64 len);

/* The operations the fault injector counts. */
typedef enum {
  RECHAIN_FAULT_OP_READ,
  RECHAIN_FAULT_OP_WRITE,
  RECHAIN_FAULT_OP_FLUSH,
} RechainFaultOp;

/* Called by file.c once per rechain_file_pread(_zero_fill), pwrite or flush, before any
 * I/O. Returns 0 to go on, or the errno value the operation must fail
 * with. Does not return if the configured action is KILL. Costs one atomic
 * load when RECHAIN_FAULT and RECHAIN_FAULT_LOG are unset. */
int rechain_fault_check (RechainFaultOp op, const char *path,
                         guint64 offset, gsize len);

G_END_DECLS
