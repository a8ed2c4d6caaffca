/* rechain-enums.h: enumerations of the public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

/**
 * RechainCacheMode:
 * @RECHAIN_CACHE_WRITEBACK: page cache; flushes where durability requires.
 * @RECHAIN_CACHE_WRITETHROUGH: page cache; every write is durable (O_DSYNC).
 * @RECHAIN_CACHE_NONE: bypass the page cache (O_DIRECT); flushes where
 *   durability requires.
 * @RECHAIN_CACHE_DIRECTSYNC: O_DIRECT and O_DSYNC.
 * @RECHAIN_CACHE_UNSAFE: page cache and no flushes at all (not crash-safe).
 *
 * How an image file is accessed: the cache modes of qemu-img, with the same
 * names (`-t` and `-T` of the command line).
 */
typedef enum {
  RECHAIN_CACHE_WRITEBACK,
  RECHAIN_CACHE_WRITETHROUGH,
  RECHAIN_CACHE_NONE,
  RECHAIN_CACHE_DIRECTSYNC,
  RECHAIN_CACHE_UNSAFE,
} RechainCacheMode;

/**
 * RechainImageOpenFlags:
 * @RECHAIN_IMAGE_OPEN_NONE: open the image and its whole backing chain
 *   read-only, with QEMU-compatible shared locks.
 * @RECHAIN_IMAGE_OPEN_FORCE_SHARE: take no locks (`-U`): open even images
 *   another process is writing.
 * @RECHAIN_IMAGE_OPEN_NO_BACKING: open the image alone, not its backing
 *   files.
 * @RECHAIN_IMAGE_OPEN_TRUST_CHAIN: follow every name recorded in the
 *   headers of the chain. Without it, a file named by an image owned by
 *   another user (a backing file, an external data file) is opened only if
 *   that user could open it, and never when it is a device, FIFO or socket
 *   (%RECHAIN_ERROR_NOT_PERMITTED). Since: 0.2
 *
 * Flags for rechain_image_open().
 */
typedef enum /*< flags >*/ {
  RECHAIN_IMAGE_OPEN_NONE = 0,
  RECHAIN_IMAGE_OPEN_FORCE_SHARE = 1 << 0,
  RECHAIN_IMAGE_OPEN_NO_BACKING = 1 << 1,
  RECHAIN_IMAGE_OPEN_TRUST_CHAIN = 1 << 2,
} RechainImageOpenFlags;

/**
 * RechainExtentKind:
 * @RECHAIN_EXTENT_UNALLOCATED: no image of the chain describes the region:
 *   it reads as zeros.
 * @RECHAIN_EXTENT_ZERO: an image of the chain says the region reads as zeros.
 * @RECHAIN_EXTENT_DATA: an image of the chain holds data for the region.
 *
 * What one #RechainExtent of an allocation map is.
 */
typedef enum {
  RECHAIN_EXTENT_UNALLOCATED,
  RECHAIN_EXTENT_ZERO,
  RECHAIN_EXTENT_DATA,
} RechainExtentKind;

/**
 * RechainJobState:
 * @RECHAIN_JOB_STATE_CREATED: not started yet.
 * @RECHAIN_JOB_STATE_RUNNING: running.
 * @RECHAIN_JOB_STATE_COMPLETED: finished successfully.
 * @RECHAIN_JOB_STATE_FAILED: finished with an error.
 * @RECHAIN_JOB_STATE_CANCELLED: stopped by its #GCancellable.
 *
 * The life of a #RechainBlockJob; a job runs once.
 */
typedef enum {
  RECHAIN_JOB_STATE_CREATED,
  RECHAIN_JOB_STATE_RUNNING,
  RECHAIN_JOB_STATE_COMPLETED,
  RECHAIN_JOB_STATE_FAILED,
  RECHAIN_JOB_STATE_CANCELLED,
} RechainJobState;

/**
 * RechainRebaseMode:
 * @RECHAIN_REBASE_MODE_SAFE: keep the guest-visible content: copy into the
 *   image what differs between the old and new backing chains, then switch.
 * @RECHAIN_REBASE_MODE_UNSAFE: only rewrite the backing file name and format
 *   (`qemu-img rebase -u`).
 *
 * How a #RechainRebaseJob changes the backing file.
 */
typedef enum {
  RECHAIN_REBASE_MODE_SAFE,
  RECHAIN_REBASE_MODE_UNSAFE,
} RechainRebaseMode;

/**
 * RechainCopyMode:
 * @RECHAIN_COPY_MODE_AUTO: share blocks with the backing file where the file
 *   system can (reflink), else copy inside the kernel (copy_file_range),
 *   else through buffers, range by range.
 * @RECHAIN_COPY_MODE_REFLINK: share blocks for every copied range, or refuse
 *   before writing anything (like `cp --reflink=always`).
 * @RECHAIN_COPY_MODE_COPY: always read and write through buffers.
 *
 * How a safe rebase copies data from the old backing chain into the image.
 */
typedef enum {
  RECHAIN_COPY_MODE_AUTO,
  RECHAIN_COPY_MODE_REFLINK,
  RECHAIN_COPY_MODE_COPY,
} RechainCopyMode;

G_END_DECLS
