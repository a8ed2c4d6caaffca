/* luks-key.h: unlocking the master key of a LUKS qcow2 image with a
 * passphrase. Pure function over buffers: the caller reads the LUKS area.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "format/luks-header.h"

G_BEGIN_DECLS

typedef enum {
  RECHAIN_LUKS_UNLOCKED,
  /* No active key slot accepts the passphrase (or none is active): the
   * caller says "wrong key" for this image. @error is set as well, with
   * RECHAIN_ERROR_NOT_PERMITTED. */
  RECHAIN_LUKS_WRONG_KEY,
  /* Anything else (libgcrypt failed, bad arguments): @error says what. */
  RECHAIN_LUKS_UNLOCK_FAILED,
} RechainLuksUnlockResult;

/**
 * rechain_luks_unlock:
 * @h: the header, from rechain_luks_header_parse (which bounded the key
 *   material to the area)
 * @area: the LUKS area: header and key material, from its first byte
 * @area_len: bytes in @area; key material beyond it is an error
 *   (RECHAIN_ERROR_INVALID_IMAGE)
 * @passphrase: the passphrase bytes, not NUL-terminated necessarily
 * @passphrase_len: its length
 * @master_key: (out): on success the master key, h->key_bytes long, in
 *   libgcrypt's secure memory: free with rechain_luks_key_free()
 * @slot: (out) (optional): the key slot that opened
 *
 * Tries every active slot in order: PBKDF2 of the passphrase with the
 * slot's salt and iterations and the header's hash gives the slot key,
 * which decrypts the slot's key material (the header's cipher and mode,
 * sector IVs counted from the material's start); the anti-forensic merge
 * of the stripes gives a candidate master key, which is the master key if
 * its PBKDF2 digest (master-key salt and iterations) is the header's.
 * Every intermediate secret lives in secure memory and is wiped. No
 * message ever holds secret bytes.
 */
RechainLuksUnlockResult rechain_luks_unlock (const RechainLuksHeader *h,
                                             const guint8 *area,
                                             gsize area_len,
                                             const guint8 *passphrase,
                                             gsize passphrase_len,
                                             guint8 **master_key,
                                             guint *slot,
                                             GError **error);

/* Wipes and frees a key from rechain_luks_unlock (NULL is fine). */
void rechain_luks_key_free (guint8 *key, gsize len);

G_END_DECLS
