/* luks-cipher.h: the sector cipher of a LUKS qcow2 image, and the one
 * place that initializes libgcrypt for rechain.
 *
 * A LUKS qcow2 data sector is encrypted on its own, with an IV made from
 * its HOST offset in the image file / 512 (QEMU's crypt_physical_offset),
 * not from its guest offset. The key material of a key slot uses the same
 * scheme with sector numbers counted from the start of that material.
 *
 * A RechainLuksCipher is not thread-safe: use one per thread (they are
 * cheap to make from the same key). Its key schedules live in libgcrypt's
 * secure memory.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "format/luks-header.h"

G_BEGIN_DECLS

/* Makes libgcrypt usable, once per process (thread-safe): checks its
 * version and, only if the application has not finished libgcrypt's
 * initialization itself, sets up its secure memory and finishes it. Every
 * function of luks-key.h and luks-cipher.h calls it; call it yourself
 * before other libgcrypt use. Fails (RECHAIN_ERROR_UNSUPPORTED) if the
 * libgcrypt found at run time is older than rechain needs. */
gboolean rechain_luks_crypto_init (GError **error);

/* Sets @error (RECHAIN_ERROR_FAILED) for libgcrypt error @err (a
 * gcry_error_t) in step @what; returns FALSE. */
gboolean rechain_luks_gcrypt_error (GError **error, const char *what, unsigned int err);

typedef struct _RechainLuksCipher RechainLuksCipher;

/* A cipher for the data of an image whose header is @h, keyed with @key
 * (@key_len must be h->key_bytes); for ESSIV the IV cipher is keyed with
 * the hash of @key. @key is not kept: the caller may wipe it. */
RechainLuksCipher *rechain_luks_cipher_new (const RechainLuksHeader *h,
                                            const guint8 *key,
                                            gsize key_len,
                                            GError **error);
void rechain_luks_cipher_free (RechainLuksCipher *cipher);

/* Decrypt / encrypt @buf in place: @len bytes, a whole number of 512-byte
 * sectors, the first of which is sector @first_sector (the IV's sector
 * number; consecutive sectors get consecutive numbers). Fails
 * (RECHAIN_ERROR_INVALID_ARGUMENT) for a partial sector. */
gboolean rechain_luks_cipher_decrypt (RechainLuksCipher *cipher,
                                      guint64 first_sector,
                                      guint8 *buf,
                                      gsize len,
                                      GError **error);
gboolean rechain_luks_cipher_encrypt (RechainLuksCipher *cipher,
                                      guint64 first_sector,
                                      guint8 *buf,
                                      gsize len,
                                      GError **error);

/* As rechain_luks_cipher_decrypt, but the last sector may be shorter than
 * 512 bytes if it is a whole number of cipher blocks: key material is
 * key_bytes x 4000 bytes, which for 24-byte keys ends mid-sector. */
gboolean rechain_luks_cipher_decrypt_tail (RechainLuksCipher *cipher,
                                           guint64 first_sector,
                                           guint8 *buf,
                                           gsize len,
                                           GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainLuksCipher, rechain_luks_cipher_free)

G_END_DECLS
