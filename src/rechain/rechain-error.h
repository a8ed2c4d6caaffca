/* rechain-error.h: the error domain of every rechain operation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

/**
 * RECHAIN_ERROR:
 *
 * Error domain for rechain. Errors in this domain are from the
 * #RechainError enumeration. Cancellation is reported as
 * %G_IO_ERROR_CANCELLED in the %G_IO_ERROR domain instead.
 */
#define RECHAIN_ERROR (rechain_error_quark ())

/**
 * RechainError:
 * @RECHAIN_ERROR_FAILED: a failure that fits no other code.
 * @RECHAIN_ERROR_INVALID_ARGUMENT: the caller asked for something
 *   impossible (bad option combination, unknown format name).
 * @RECHAIN_ERROR_INVALID_IMAGE: an image's metadata is malformed, out of
 *   bounds or inconsistent; the message names the file and the field.
 * @RECHAIN_ERROR_UNSUPPORTED: the image uses a feature rechain does not
 *   implement (encryption, an unknown incompatible feature bit, ...).
 * @RECHAIN_ERROR_IN_USE: another process (a running QEMU, qemu-img, a
 *   second rechain) holds a lock that conflicts with the operation.
 * @RECHAIN_ERROR_BACKING_NOT_FOUND: a file of the backing chain is missing.
 * @RECHAIN_ERROR_IO: reading, writing or flushing a file failed.
 * @RECHAIN_ERROR_NO_SPACE: the file system is full or a file size limit
 *   was reached.
 * @RECHAIN_ERROR_READ_ONLY: the image may not be written (its corrupt
 *   bit is set, or it was opened read-only).
 * @RECHAIN_ERROR_NOT_PERMITTED: an image owned by another user names a
 *   file (backing file, data file) that this user could not open, or one
 *   outside the directories the caller confined the chain to; refused
 *   unless the chain is trusted (%RECHAIN_IMAGE_OPEN_TRUST_CHAIN,
 *   #RechainRebaseJob:trust-chain). Since: 0.2
 *
 * Error codes of the %RECHAIN_ERROR domain.
 */
typedef enum {
  RECHAIN_ERROR_FAILED,
  RECHAIN_ERROR_INVALID_ARGUMENT,
  RECHAIN_ERROR_INVALID_IMAGE,
  RECHAIN_ERROR_UNSUPPORTED,
  RECHAIN_ERROR_IN_USE,
  RECHAIN_ERROR_BACKING_NOT_FOUND,
  RECHAIN_ERROR_IO,
  RECHAIN_ERROR_NO_SPACE,
  RECHAIN_ERROR_READ_ONLY,
  RECHAIN_ERROR_NOT_PERMITTED,
} RechainError;

RECHAIN_AVAILABLE_IN_ALL GQuark rechain_error_quark (void);

G_END_DECLS
