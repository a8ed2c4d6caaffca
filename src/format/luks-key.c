/* luks-key.c: unlocking a LUKS1 master key (see luks-key.h).
 *
 * The key material of a slot is the master key passed through the
 * anti-forensic splitter (4000 stripes of key_bytes each; every stripe but
 * the last is random, and the last is the master key XORed with the
 * running "diffused" XOR of the others), then encrypted with the slot key.
 * The material is decrypted one sector at a time into secure memory and
 * merged stripe by stripe as it goes, so that the decrypted material
 * (256 KB for a 64-byte key) never has to sit whole in memory: only one
 * sector and two stripes of it do.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>
#include <gcrypt.h>

#include "format/luks-key.h"
#include "format/luks-cipher.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

/* Secrets of one slot attempt, all in secure memory. */
typedef struct {
  guint8 slot_key[RECHAIN_LUKS_MAX_KEY_BYTES];
  guint8 sector[RECHAIN_LUKS_SECTOR_SIZE];
  guint8 stripe[RECHAIN_LUKS_MAX_KEY_BYTES];
  guint8 merged[RECHAIN_LUKS_MAX_KEY_BYTES];
  guint8 digest[RECHAIN_LUKS_DIGEST_LEN];
} Scratch;

void
rechain_luks_key_free (guint8 *key, gsize len)
{
  if (!key)
    return;
  /* libgcrypt wipes secure memory on free, but only if it came from its
   * pool; wiping here does not depend on that */
  explicit_bzero (key, len);
  gcry_free (key);
}

/* The AF "diffusion" of @buf (@len bytes) in place: each digest-sized
 * piece i becomes hash(be32(i) || piece), cut to the piece's length. */
static void
diffuse (gcry_md_hd_t md, guint hash_len, guint8 *buf, gsize len)
{
  for (guint32 i = 0; (gsize) i * hash_len < len; i++)
    {
      gsize off = (gsize) i * hash_len, n = MIN (hash_len, len - off);
      guint32 be = GUINT32_TO_BE (i);

      gcry_md_reset (md);
      gcry_md_write (md, &be, sizeof be);
      gcry_md_write (md, buf + off, n);
      memcpy (buf + off, gcry_md_read (md, 0), n);
    }
}

static void
xor_into (guint8 *dst, const guint8 *src, gsize len)
{
  for (gsize i = 0; i < len; i++)
    dst[i] ^= src[i];
}

/* Decrypts and merges the key material of slot @i with the slot key in
 * @s->slot_key: the candidate master key lands in @key. */
static gboolean
merge_material (const RechainLuksHeader *h, guint i, const guint8 *material,
                gcry_md_hd_t md, Scratch *s, guint8 *key, GError **error)
{
  g_autoptr(RechainLuksCipher) cipher = NULL;
  gsize total = rechain_luks_slot_material_len (h, i);
  gsize kb = h->key_bytes, fill = 0;
  guint32 stripe = 0, stripes = h->slots[i].stripes;

  cipher = rechain_luks_cipher_new (h, s->slot_key, kb, error);
  if (!cipher)
    return FALSE;
  memset (s->merged, 0, kb);
  for (gsize done = 0, sector = 0; done < total;
       done += RECHAIN_LUKS_SECTOR_SIZE, sector++)
    {
      gsize n = MIN ((gsize) RECHAIN_LUKS_SECTOR_SIZE, total - done);

      memcpy (s->sector, material + done, n);
      if (!rechain_luks_cipher_decrypt_tail (cipher, sector, s->sector, n, error))
        return FALSE;
      for (gsize pos = 0; pos < n;)
        {
          gsize take = MIN (kb - fill, n - pos);
          memcpy (s->stripe + fill, s->sector + pos, take);
          fill += take;
          pos += take;
          if (fill < kb)
            continue;
          fill = 0;
          if (++stripe < stripes)
            {
              xor_into (s->merged, s->stripe, kb);
              diffuse (md, h->hash_len, s->merged, kb);
            }
          else
            {
              memcpy (key, s->merged, kb);
              xor_into (key, s->stripe, kb);
            }
        }
    }
  return TRUE;
}

static GMutex mk_digest_lock;

/* PBKDF2 of the passphrase with a key slot's salt and iterations, into
 * @out. libgcrypt runs the HMAC in secure memory when the passphrase or
 * the output is in secure memory, and then allocates and frees secure
 * memory at every iteration, under its one process-wide lock: measured on
 * QEMU's default iter-time, 4.4 s for one unlock where QEMU takes 2.0 s,
 * and two unlocks on two threads took 33 s of CPU (the threads fight for
 * the lock). So the derivation runs on copies in ordinary memory, locked
 * (mlock) where the limit allows and wiped after; what it yields is a
 * slot key, which only decrypts the key material. The master key and its
 * digest stay in secure memory. */
static gcry_error_t
slot_kdf (const RechainLuksHeader *h, const RechainLuksSlot *slot, const guint8 *pass,
          gsize pass_len, guint8 *out)
{
  gsize len = pass_len + h->key_bytes;
  guint8 *buf = g_malloc (len);
  gboolean locked = mlock (buf, len) == 0;
  gcry_error_t err;

  memcpy (buf, pass, pass_len);
  err = gcry_kdf_derive (buf, pass_len, GCRY_KDF_PBKDF2, h->hash_algo,
                         slot->salt, RECHAIN_LUKS_SALT_LEN, slot->iterations,
                         h->key_bytes, buf + pass_len);
  if (!err)
    memcpy (out, buf + pass_len, h->key_bytes);
  explicit_bzero (buf, len);
  if (locked)
    munlock (buf, len);
  g_free (buf);
  return err;
}

/* One slot: TRUE with *@opened set if the passphrase opens it. */
static gboolean
try_slot (const RechainLuksHeader *h, guint i, const guint8 *area, gsize area_len,
          const guint8 *pass, gsize pass_len, gcry_md_hd_t md, Scratch *s,
          guint8 *key, gboolean *opened, GError **error)
{
  const RechainLuksSlot *slot = &h->slots[i];
  guint64 off = (guint64) slot->key_offset * RECHAIN_LUKS_SECTOR_SIZE;
  gsize len = rechain_luks_slot_material_len (h, i);
  gcry_error_t err;

  *opened = FALSE;
  if (off > area_len || len > area_len - off)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("LUKS header: key material of key slot %u lies outside "
                     "the %zu bytes of the encryption header "
                     "area"), i, area_len);
      return FALSE;
    }
  err = slot_kdf (h, slot, pass, pass_len, s->slot_key);
  if (err)
    return rechain_luks_gcrypt_error (error, "PBKDF2", err);
  if (!merge_material (h, i, area + off, md, s, key, error))
    return FALSE;
  /* The candidate master key stays in secure memory, so this PBKDF2 (a
   * quarter of an unlock at QEMU's defaults) takes libgcrypt's secure
   * memory lock at every iteration (see slot_kdf). Layers unlocked on
   * parallel threads reach it at about the same time: one at a time
   * costs less than their fight for that lock. */
  g_mutex_lock (&mk_digest_lock);
  err = gcry_kdf_derive (key, h->key_bytes, GCRY_KDF_PBKDF2, h->hash_algo,
                         h->mk_salt, RECHAIN_LUKS_SALT_LEN, h->mk_iterations,
                         RECHAIN_LUKS_DIGEST_LEN, s->digest);
  g_mutex_unlock (&mk_digest_lock);
  if (err)
    return rechain_luks_gcrypt_error (error, "PBKDF2", err);
  /* not secret-dependent timing that matters (the digest is public), but
   * there is no reason to stop early either */
  {
    guint8 diff = 0;
    for (guint k = 0; k < RECHAIN_LUKS_DIGEST_LEN; k++)
      diff |= s->digest[k] ^ h->mk_digest[k];
    *opened = diff == 0;
  }
  return TRUE;
}

RechainLuksUnlockResult
rechain_luks_unlock (const RechainLuksHeader *h,
                     const guint8 *area,
                     gsize area_len,
                     const guint8 *passphrase,
                     gsize passphrase_len,
                     guint8 **master_key,
                     guint *slot,
                     GError **error)
{
  Scratch *s = NULL;
  guint8 *key = NULL;
  gcry_md_hd_t md = NULL;
  gcry_error_t err;
  RechainLuksUnlockResult result = RECHAIN_LUKS_UNLOCK_FAILED;

  g_return_val_if_fail (h != NULL && area != NULL, RECHAIN_LUKS_UNLOCK_FAILED);
  g_return_val_if_fail (passphrase != NULL || passphrase_len == 0,
                        RECHAIN_LUKS_UNLOCK_FAILED);
  g_return_val_if_fail (master_key != NULL && *master_key == NULL,
                        RECHAIN_LUKS_UNLOCK_FAILED);
  g_return_val_if_fail (h->key_bytes <= RECHAIN_LUKS_MAX_KEY_BYTES,
                        RECHAIN_LUKS_UNLOCK_FAILED);

  if (!rechain_luks_crypto_init (error))
    return RECHAIN_LUKS_UNLOCK_FAILED;
  if (h->n_active == 0)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                   _("no key slot of the LUKS header is active: no passphrase "
                     "can unlock it"));
      return RECHAIN_LUKS_WRONG_KEY;
    }

  s = gcry_calloc_secure (1, sizeof *s);
  key = gcry_malloc_secure (h->key_bytes);
  if (!s || !key)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                   _("libgcrypt: out of secure memory"));
      goto out;
    }
  err = gcry_md_open (&md, h->hash_algo, GCRY_MD_FLAG_SECURE);
  if (err)
    {
      rechain_luks_gcrypt_error (error, h->hash_spec, err);
      goto out;
    }

  for (guint i = 0; i < RECHAIN_LUKS_NUM_SLOTS; i++)
    {
      gboolean opened;

      if (!h->slots[i].active)
        continue;
      if (!try_slot (h, i, area, area_len, passphrase, passphrase_len, md, s,
                     key, &opened, error))
        goto out;
      if (opened)
        {
          *master_key = g_steal_pointer (&key);
          if (slot)
            *slot = i;
          result = RECHAIN_LUKS_UNLOCKED;
          goto out;
        }
    }
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
               _("the passphrase opens no key slot of the LUKS header "
                 "(active key slots tried: %u)"), h->n_active);
  result = RECHAIN_LUKS_WRONG_KEY;

out:
  if (md)
    gcry_md_close (md);
  rechain_luks_key_free (key, h->key_bytes);
  if (s)
    rechain_luks_key_free ((guint8 *) s, sizeof *s);
  return result;
}
