/* file.h: positioned I/O on image files, cache modes, QEMU-compatible image
 * locks. Every failure is a GError in RECHAIN_ERROR
 * naming the file (RECHAIN_ERROR_IO, RECHAIN_ERROR_NO_SPACE for ENOSPC and
 * EFBIG/EDQUOT, RECHAIN_ERROR_IN_USE for lock conflicts,
 * RECHAIN_ERROR_BACKING_NOT_FOUND for ENOENT at open).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>
#include "rechain/rechain-error.h"
#include "rechain/rechain-enums.h"
#include "rechain/rechain-util.h"

G_BEGIN_DECLS

/* RechainCacheMode (public, rechain-enums.h) with qemu-img's names and
 * meaning. */


typedef enum {
  RECHAIN_FILE_READ_ONLY = 0,
  RECHAIN_FILE_READ_WRITE = 1 << 0,
  /* Accept any type of file: the caller judges the opened descriptor
   * itself (chain/trust.h refuses everything but regular files for images
   * of other users, with a message naming the image that named it). */
  RECHAIN_FILE_ANY_TYPE = 1 << 1,
} RechainFileFlags;

/* QEMU block permissions, the bit numbers QEMU uses for its lock bytes
 * (byte 100 + bit: "holds this permission", byte 200 + bit: "does not
 * share this permission"). */
typedef enum {
  RECHAIN_PERM_CONSISTENT_READ = 1 << 0,
  RECHAIN_PERM_WRITE = 1 << 1,
  RECHAIN_PERM_WRITE_UNCHANGED = 1 << 2,
  RECHAIN_PERM_RESIZE = 1 << 3,
  RECHAIN_PERM_ALL = 0x0f,
} RechainPerm;

typedef struct _RechainFile RechainFile;

/* Opens @path (O_RDONLY or O_RDWR; O_DIRECT for cache modes none and
 * directsync, O_DSYNC for writethrough and directsync). Only regular files
 * and block devices are accepted. ENOENT is RECHAIN_ERROR_BACKING_NOT_FOUND
 * ("Could not open 'FILE': No such file or directory"), other failures
 * RECHAIN_ERROR_IO. With O_DIRECT cache modes the file system must support
 * it (refusal is RECHAIN_ERROR_INVALID_ARGUMENT "cache mode 'none' (O_DIRECT)
 * is not supported by the file system of FILE"). Does not lock: see
 * rechain_file_lock(). */
RechainFile *rechain_file_open (const char *path,
                                RechainFileFlags flags,
                                RechainCacheMode cache,
                                GError **error);
void rechain_file_close (RechainFile *file);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainFile, rechain_file_close)

const char *rechain_file_get_path (RechainFile *file);
int rechain_file_get_fd (RechainFile *file);
gboolean rechain_file_is_writable (RechainFile *file);
RechainCacheMode rechain_file_get_cache_mode (RechainFile *file);
/* Alignment O_DIRECT requires for buffers, offsets and lengths (1 without
 * O_DIRECT; at least 4096 with it). Aligned requests go straight to the
 * kernel; unaligned ones still work, through a bounce buffer (reads) or
 * read-modify-write of the covering blocks (writes; not atomic, so
 * concurrent unaligned writes touching one aligned block are not allowed). */
gsize rechain_file_get_alignment (RechainFile *file);

/* Current size of the file (fstat), or FALSE with an error. */
gboolean rechain_file_get_size (RechainFile *file, guint64 *size, GError **error);
/* st_dev/st_ino identity, for loop detection */
gboolean rechain_file_same (RechainFile *a, RechainFile *b);
/* Allocated bytes on the host (st_blocks * 512) */
guint64 rechain_file_get_allocated (RechainFile *file);

/* Reads exactly @len bytes at @offset. A read past the end of the file
 * is an error (RECHAIN_ERROR_INVALID_IMAGE: "Failed to read LEN bytes at
 * offset OFF of FILE: the file ends at N, before the end of the range
 * (END)"), as metadata must lie inside the file. Other failures are
 * RECHAIN_ERROR_IO ("Failed to read LEN bytes at offset OFF of FILE:
 * strerror"). */
gboolean rechain_file_pread (RechainFile *file, void *buf, gsize len,
                             guint64 offset, GError **error);
/* Like rechain_file_pread(), but bytes past the end of the file read as
 * zeros (guest data of raw images and data clusters). */
gboolean rechain_file_pread_zero_fill (RechainFile *file, void *buf, gsize len,
                                       guint64 offset, GError **error);
/* Writes all @len bytes at @offset. Failures: "Failed to write LEN bytes at
 * offset OFF of FILE: strerror", RECHAIN_ERROR_NO_SPACE for ENOSPC, EDQUOT
 * and EFBIG, RECHAIN_ERROR_IO otherwise; RECHAIN_ERROR_READ_ONLY if the
 * file was opened read-only. */
gboolean rechain_file_pwrite (RechainFile *file, const void *buf, gsize len,
                              guint64 offset, GError **error);
/* fdatasync (skipped in cache mode unsafe). Failure: "Failed to flush FILE:
 * strerror", with the codes of rechain_file_pwrite(). */
gboolean rechain_file_flush (RechainFile *file, GError **error);

/* ---- Copying inside the kernel (copy.c) ---- */

typedef enum {
  RECHAIN_COPY_DONE,        /* the whole range was copied */
  RECHAIN_COPY_UNSUPPORTED, /* the kernel or file system cannot: copy it another way */
  RECHAIN_COPY_FAILED,      /* an I/O error (error set) */
} RechainCopyResult;

/* Shares the blocks of [src_offset, +len) of @src at @dst_offset of @dst
 * (FICLONERANGE). Offsets and length must be multiples of the file
 * system block size (or the range must end at the end of @src). The fault
 * shim of the tests counts it as a write. */
RechainCopyResult rechain_file_clone_range (RechainFile *src, guint64 src_offset,
                                            RechainFile *dst, guint64 dst_offset,
                                            guint64 len, GError **error);
/* Copies with copy_file_range(2). A source shorter than the range leaves
 * the rest of the destination as it is (callers copy into new clusters,
 * which read as zeros). */
RechainCopyResult rechain_file_copy_range (RechainFile *src, guint64 src_offset,
                                           RechainFile *dst, guint64 dst_offset,
                                           guint64 len, GError **error);
gsize rechain_file_get_block_size (RechainFile *file);
gboolean rechain_file_same_filesystem (RechainFile *a, RechainFile *b);
/* Whether the file system holding @file can share blocks between files:
 * clones one block between two anonymous files in its directory. */
gboolean rechain_file_probe_reflink (RechainFile *file, GError **error);

/* Whether @cache bypasses the page cache (none, directsync: O_DIRECT). */
gboolean rechain_cache_mode_is_direct (RechainCacheMode cache);

/* Buffers suitable for any file's O_DIRECT I/O (aligned to 4096). */
void *rechain_io_buffer_alloc (gsize len);
void rechain_io_buffer_free (void *buf);
/* Faults in the pages of a fresh buffer that is about to be filled whole,
 * in one system call (MADV_POPULATE_WRITE, Linux 5.14) rather than one trap
 * per page, which costs far more in a virtual machine. A hint: does nothing
 * where it is not supported. */
void rechain_io_buffer_prefault (void *buf, gsize len);

/* ---- QEMU-compatible image locking (OFD locks on bytes 100+ and 200+) ----
 *
 * rechain_file_lock() takes shared locks on the bytes for @perm (100 + bit)
 * and for the permissions NOT in @shared (200 + bit), then checks that no
 * other holder conflicts: nobody else may hold a permission we do not
 * share, nor refuse to share a permission we take. On a conflict it drops
 * what it took (keeping the locks of an earlier call) and fails with
 * RECHAIN_ERROR_IN_USE and a message like QEMU's: "Failed to get \"write\"
 * lock on FILE: is another process (a running VM, qemu-img or rechain) using
 * the image?" ("Failed to get shared \"write\" lock ..." when someone holds
 * a permission we do not share). Calling it again replaces the permissions
 * (e.g. read-only to read-write). Locks belong to the RechainFile (OFD
 * locks): two RechainFiles of one process conflict like two processes.
 * Locks are released by rechain_file_unlock() and at close. On file systems
 * without OFD lock support, locking is skipped with no error, as QEMU does.
 *
 * What QEMU 7.2 takes: a qcow2 writer perm CR|W|RESIZE, shared
 * CR|WRITE_UNCHANGED; a reader (also of backing files of an open overlay)
 * perm CR, shared CR|WRITE_UNCHANGED; -U (force-share) a reader with shared
 * ALL. Use the same to be compatible. */
gboolean rechain_file_lock (RechainFile *file,
                            RechainPerm perm,
                            RechainPerm shared,
                            GError **error);
void rechain_file_unlock (RechainFile *file);

/* Fault injection is not part of the io layer: the tests preload a shim
 * (tests/fault/fault-shim.c: RECHAIN_FAULT, RECHAIN_FAULT_LOG) that
 * interposes the C library calls made here. It counts one operation per
 * rechain_file_pread*, pwrite, clone, copy or flush, as this layer makes
 * them: keep these functions to one pread64/pwrite64/FICLONERANGE/
 * copy_file_range/fdatasync per request, plus continuations of a short
 * or interrupted transfer, and keep the flusher thread's name. */

G_END_DECLS
