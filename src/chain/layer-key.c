/* layer-key.c: the unlocked key of a LUKS-encrypted layer (layer-key.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "chain/layer-key.h"
#include "format/luks-cipher.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

#define SECTOR RECHAIN_LUKS_SECTOR_SIZE

struct _RechainLayerKey {
  gint ref;
  RechainLuksHeader luks;
  guint8 *master_key;  /* libgcrypt secure memory, luks.key_bytes long */
  GMutex lock;
  GPtrArray *spare;    /* of RechainLuksCipher*: made, not in use */
};

RechainLayerKey *
rechain_layer_key_unlock (const guint8 *area, gsize area_len, guint64 full_len,
                          const guint8 *passphrase, gsize passphrase_len,
                          RechainLuksUnlockResult *result, GError **error)
{
  RechainLayerKey *key;
  RechainLuksHeader h;
  guint8 *master = NULL;

  *result = RECHAIN_LUKS_UNLOCK_FAILED;
  if (!rechain_luks_header_parse (area, area_len, full_len, &h, error))
    return NULL;
  *result = rechain_luks_unlock (&h, area, area_len, passphrase, passphrase_len, &master,
                                 NULL, error);
  if (*result != RECHAIN_LUKS_UNLOCKED)
    return NULL;
  key = g_new0 (RechainLayerKey, 1);
  key->ref = 1;
  key->luks = h;
  key->master_key = master;
  g_mutex_init (&key->lock);
  key->spare = g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_luks_cipher_free);
  return key;
}

RechainLayerKey *
rechain_layer_key_ref (RechainLayerKey *key)
{
  g_atomic_int_inc (&key->ref);
  return key;
}

void
rechain_layer_key_unref (RechainLayerKey *key)
{
  if (!key || !g_atomic_int_dec_and_test (&key->ref))
    return;
  /* freeing a cipher wipes its key schedules; the master key is wiped */
  g_ptr_array_unref (key->spare);
  rechain_luks_key_free (key->master_key, key->luks.key_bytes);
  g_mutex_clear (&key->lock);
  g_free (key);
}

/* A cipher for this thread: a spare one, or a new one. */
static RechainLuksCipher *
cipher_take (RechainLayerKey *key, GError **error)
{
  RechainLuksCipher *c = NULL;

  g_mutex_lock (&key->lock);
  if (key->spare->len > 0)
    c = g_ptr_array_steal_index_fast (key->spare, key->spare->len - 1);
  g_mutex_unlock (&key->lock);
  return c ? c : rechain_luks_cipher_new (&key->luks, key->master_key, key->luks.key_bytes, error);
}

static void
cipher_give_back (RechainLayerKey *key, RechainLuksCipher *c)
{
  g_mutex_lock (&key->lock);
  g_ptr_array_add (key->spare, c);
  g_mutex_unlock (&key->lock);
}

static gboolean
key_crypt (RechainLayerKey *key, gboolean encrypt, guint64 host, guint8 *buf, gsize len,
           GError **error)
{
  RechainLuksCipher *c;
  gboolean ok;

  if (host % SECTOR != 0 || len % SECTOR != 0)
    {
      /* the writer writes whole subclusters at cluster-aligned places, so
       * this is a range no encrypted image can hold */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("encrypted data at host offset %" PRIu64 " (%zu bytes) is not "
                     "made of whole 512-byte sectors"), host, len);
      return FALSE;
    }
  c = cipher_take (key, error);
  if (!c)
    return FALSE;
  ok = encrypt ? rechain_luks_cipher_encrypt (c, host / SECTOR, buf, len, error)
               : rechain_luks_cipher_decrypt (c, host / SECTOR, buf, len, error);
  cipher_give_back (key, c);
  return ok;
}

gboolean
rechain_layer_key_pread (RechainLayerKey *key, RechainFile *file, void *buf, gsize len,
                         guint64 host, GError **error)
{
  guint64 first = host / SECTOR * SECTOR;
  gsize head = (gsize) (host - first);
  gsize whole = (head + len + SECTOR - 1) / SECTOR * SECTOR;
  g_autofree guint8 *tmp = NULL;

  if (head == 0 && whole == len)
    return rechain_file_pread_zero_fill (file, buf, len, host, error) &&
           key_crypt (key, FALSE, host, buf, len, error);
  /* a read that starts or ends inside a sector: the sectors around it */
  tmp = g_malloc (whole);
  if (!rechain_file_pread_zero_fill (file, tmp, whole, first, error) ||
      !key_crypt (key, FALSE, first, tmp, whole, error))
    return FALSE;
  memcpy (buf, tmp + head, len);
  return TRUE;
}

/* ---- the writer's data I/O ---- */

static gboolean
crypt_io_pread (gpointer user, void *buf, gsize len, guint64 offset, GError **error)
{
  RechainCryptIO *cio = user;

  return rechain_file_pread (cio->file, buf, len, offset, error) &&
         key_crypt (cio->key, FALSE, offset, buf, len, error);
}

/* Encrypted writes go out in pieces of this size: the writer hands over up
 * to 8 MiB at a time, and a piece copied, encrypted and written while it
 * is still in the CPU's cache costs less than 8 MiB that is out of the
 * cache again by the time the kernel copies it into the page cache. */
#define CRYPT_PIECE ((gsize) 1 << 20)

static gboolean
crypt_io_pwrite (gpointer user, const void *buf, gsize len, guint64 offset, GError **error)
{
  RechainCryptIO *cio = user;
  gsize piece = MIN (len, CRYPT_PIECE);

  if (cio->scratch_len < piece)
    {
      g_free (cio->scratch);
      cio->scratch = g_malloc (piece);
      cio->scratch_len = piece;
    }
  /* a range that is not whole sectors is refused before any piece is
   * written (key_crypt refuses it without touching the buffer); the
   * pieces are then whole sectors too */
  if (offset % SECTOR != 0 || len % SECTOR != 0)
    return key_crypt (cio->key, TRUE, offset, NULL, len, error);
  for (gsize done = 0; done < len; done += piece)
    {
      gsize n = MIN (piece, len - done);

      memcpy (cio->scratch, (const guint8 *) buf + done, n);
      if (!key_crypt (cio->key, TRUE, offset + done, cio->scratch, n, error) ||
          !rechain_file_pwrite (cio->file, cio->scratch, n, offset + done, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
crypt_io_flush (gpointer user, GError **error)
{
  RechainCryptIO *cio = user;

  return rechain_file_flush (cio->file, error);
}

void
rechain_crypt_io_init (RechainCryptIO *cio, RechainLayerKey *key, RechainFile *file,
                       RechainQcow2IO *io)
{
  rechain_crypt_io_clear (cio);
  cio->key = rechain_layer_key_ref (key);
  cio->file = file;
  *io = (RechainQcow2IO) { crypt_io_pread, crypt_io_pwrite, crypt_io_flush, cio };
}

void
rechain_crypt_io_clear (RechainCryptIO *cio)
{
  g_clear_pointer (&cio->key, rechain_layer_key_unref);
  g_clear_pointer (&cio->scratch, g_free);
  cio->scratch_len = 0;
  cio->file = NULL;
}
