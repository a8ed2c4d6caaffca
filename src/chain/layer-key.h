/* layer-key.h: the unlocked key of a LUKS-encrypted layer, and what the
 * chain layer does with it: decrypt what it reads, encrypt what a writer
 * writes. Internal to src/chain (layer.c and unlock.c).
 *
 * A key is shared (reference counted) by every RechainLayer that opened
 * the same file, so a file in the old and the new chain is unlocked once.
 * The master key lives in libgcrypt's secure memory and is wiped when the
 * last reference goes. The sector ciphers made from it are kept in a small
 * pool: a cipher is not thread-safe, and the read pool reads a layer from
 * several threads at once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include "format/luks-key.h"
#include "format/qcow2-writer.h"
#include "io/file.h"

G_BEGIN_DECLS

typedef struct _RechainLayerKey RechainLayerKey;

/* Unlocks the LUKS area @area (@area_len bytes read from the image;
 * @full_len is the area's length in the header, which bounds the payload
 * offset) with @passphrase. NULL with @result RECHAIN_LUKS_WRONG_KEY when
 * no key slot opens, or RECHAIN_LUKS_UNLOCK_FAILED with @error. */
RechainLayerKey *rechain_layer_key_unlock (const guint8 *area,
                                           gsize area_len,
                                           guint64 full_len,
                                           const guint8 *passphrase,
                                           gsize passphrase_len,
                                           RechainLuksUnlockResult *result,
                                           GError **error);
RechainLayerKey *rechain_layer_key_ref (RechainLayerKey *key);
void rechain_layer_key_unref (RechainLayerKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainLayerKey, rechain_layer_key_unref)

/* Reads [@host, +@len) of @file, which may start and end anywhere, and
 * decrypts it: the IV of each sector is its host offset / 512. */
gboolean rechain_layer_key_pread (RechainLayerKey *key,
                                  RechainFile *file,
                                  void *buf,
                                  gsize len,
                                  guint64 host,
                                  GError **error);

/* A RechainQcow2IO over @file that encrypts what is written and decrypts
 * what is read, at the host offsets given (whole sectors only): the guest
 * data I/O of a writer into an encrypted image. Flushes pass through. */
typedef struct {
  RechainLayerKey *key;
  RechainFile *file;
  guint8 *scratch;  /* the ciphertext of a write: the writer's buffer is const */
  gsize scratch_len;
} RechainCryptIO;

void rechain_crypt_io_init (RechainCryptIO *cio,
                            RechainLayerKey *key,
                            RechainFile *file,
                            RechainQcow2IO *io);
void rechain_crypt_io_clear (RechainCryptIO *cio);

G_END_DECLS
