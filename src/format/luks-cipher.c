/* luks-cipher.c: sector encryption of LUKS qcow2 data with libgcrypt (see
 * luks-cipher.h), and libgcrypt's initialization.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <gcrypt.h>

#include "format/luks-cipher.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

/* XTS mode arrived in libgcrypt 1.8. */
#define NEED_LIBGCRYPT_VERSION "1.8.0"
/* Secure memory when rechain initializes libgcrypt: the key schedules of a
 * few ciphers per thread (a Twofish XTS handle needs about 9 KiB) and the
 * small buffers of unlocking; libgcrypt grows it past this if needed. */
#define SECMEM_BYTES (256 * 1024)

struct _RechainLuksCipher {
  gcry_cipher_hd_t data;
  gcry_cipher_hd_t essiv;      /* NULL unless ESSIV */
  RechainLuksIvgen ivgen;
  RechainLuksMode mode;
  guint iv_len;                /* 0 for ECB */
  guint block_size;
};

gboolean
rechain_luks_crypto_init (GError **error)
{
  static gsize once;
  static gboolean ok;

  if (g_once_init_enter (&once))
    {
      /* gcry_check_version must come first, and may be called again after
       * the application's own call: it is what sets libgcrypt up */
      ok = gcry_check_version (NEED_LIBGCRYPT_VERSION) != NULL;
      if (ok && !gcry_control (GCRYCTL_INITIALIZATION_FINISHED_P))
        {
          /* a library must not take over an application's setup; this is
           * the application that did not set libgcrypt up. The warning
           * about memory it cannot lock (a low RLIMIT_MEMLOCK) would go to
           * stderr, which is the application's, so it is off. */
          gcry_control (GCRYCTL_DISABLE_SECMEM_WARN);
          gcry_control (GCRYCTL_AUTO_EXPAND_SECMEM, SECMEM_BYTES);
          gcry_control (GCRYCTL_INIT_SECMEM, SECMEM_BYTES, 0);
          gcry_control (GCRYCTL_INITIALIZATION_FINISHED, 0);
        }
      g_once_init_leave (&once, 1);
    }
  if (!ok)
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                 _("libgcrypt %s is too old: rechain needs %s or newer"),
                 gcry_check_version (NULL), NEED_LIBGCRYPT_VERSION);
  return ok;
}

gboolean
rechain_luks_gcrypt_error (GError **error, const char *what, unsigned int err)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
               _("libgcrypt: %s: %s"), what, gcry_strerror (err));
  return FALSE;
}

void
rechain_luks_cipher_free (RechainLuksCipher *cipher)
{
  if (!cipher)
    return;
  /* gcry_cipher_close wipes the key schedules */
  gcry_cipher_close (cipher->data);
  if (cipher->essiv)
    gcry_cipher_close (cipher->essiv);
  g_free (cipher);
}

static int
gcry_mode (RechainLuksMode mode)
{
  switch (mode)
    {
    case RECHAIN_LUKS_MODE_ECB: return GCRY_CIPHER_MODE_ECB;
    case RECHAIN_LUKS_MODE_CBC: return GCRY_CIPHER_MODE_CBC;
    case RECHAIN_LUKS_MODE_XTS: return GCRY_CIPHER_MODE_XTS;
    }
  g_return_val_if_reached (GCRY_CIPHER_MODE_NONE);
}

/* ESSIV: the IV cipher's key is the hash of the whole data key. */
static gboolean
essiv_open (RechainLuksCipher *c, const RechainLuksHeader *h,
            const guint8 *key, gsize key_len, GError **error)
{
  guint dlen = gcry_md_get_algo_dlen (h->ivgen_hash_algo);
  gcry_md_hd_t md = NULL;
  gcry_error_t err;

  err = gcry_md_open (&md, h->ivgen_hash_algo, GCRY_MD_FLAG_SECURE);
  if (err)
    return rechain_luks_gcrypt_error (error, "ESSIV hash", err);
  gcry_md_write (md, key, key_len);
  err = gcry_cipher_open (&c->essiv, h->essiv_cipher_algo, GCRY_CIPHER_MODE_ECB,
                          GCRY_CIPHER_SECURE);
  if (!err)
    err = gcry_cipher_setkey (c->essiv, gcry_md_read (md, 0), dlen);
  gcry_md_close (md);             /* wipes the digest */
  if (err)
    return rechain_luks_gcrypt_error (error, "ESSIV cipher", err);
  return TRUE;
}

RechainLuksCipher *
rechain_luks_cipher_new (const RechainLuksHeader *h,
                         const guint8 *key,
                         gsize key_len,
                         GError **error)
{
  g_autoptr(RechainLuksCipher) c = NULL;
  gcry_error_t err;

  g_return_val_if_fail (h != NULL && key != NULL, NULL);
  if (!rechain_luks_crypto_init (error))
    return NULL;
  if (key_len != h->key_bytes)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("LUKS key of %zu bytes for a header with "
                     "%u-byte keys"), key_len, h->key_bytes);
      return NULL;
    }

  c = g_new0 (RechainLuksCipher, 1);
  c->ivgen = h->ivgen;
  c->mode = h->mode;
  c->block_size = h->block_size;
  c->iv_len = h->mode == RECHAIN_LUKS_MODE_ECB ? 0 : h->block_size;

  err = gcry_cipher_open (&c->data, h->cipher_algo, gcry_mode (h->mode),
                          GCRY_CIPHER_SECURE);
  if (err)
    {
      c->data = NULL;
      rechain_luks_gcrypt_error (error, h->cipher_name, err);
      return NULL;
    }
  err = gcry_cipher_setkey (c->data, key, key_len);
  if (err)
    {
      rechain_luks_gcrypt_error (error, h->cipher_name, err);
      return NULL;
    }
  if (c->ivgen == RECHAIN_LUKS_IVGEN_ESSIV && !essiv_open (c, h, key, key_len, error))
    return NULL;
  return g_steal_pointer (&c);
}

/* The IV of @sector into @iv (c->iv_len bytes). */
static gboolean
make_iv (RechainLuksCipher *c, guint64 sector, guint8 *iv, GError **error)
{
  guint64 le;

  memset (iv, 0, c->iv_len);
  switch (c->ivgen)
    {
    case RECHAIN_LUKS_IVGEN_NONE:
      return TRUE;
    case RECHAIN_LUKS_IVGEN_PLAIN:
      {
        guint32 le32 = GUINT32_TO_LE ((guint32) sector);
        memcpy (iv, &le32, MIN (sizeof le32, c->iv_len));
        return TRUE;
      }
    case RECHAIN_LUKS_IVGEN_PLAIN64:
    case RECHAIN_LUKS_IVGEN_ESSIV:
      le = GUINT64_TO_LE (sector);
      memcpy (iv, &le, MIN (sizeof le, c->iv_len));
      break;
    }
  if (c->ivgen == RECHAIN_LUKS_IVGEN_ESSIV)
    {
      gcry_error_t err = gcry_cipher_encrypt (c->essiv, iv, c->iv_len, NULL, 0);
      if (err)
        return rechain_luks_gcrypt_error (error, "ESSIV", err);
    }
  return TRUE;
}

static gboolean
crypt_sectors (RechainLuksCipher *c, gboolean encrypt, guint64 sector,
               guint8 *buf, gsize len, gboolean allow_tail, GError **error)
{
  guint8 iv[16];

  g_return_val_if_fail (c != NULL && (buf != NULL || len == 0), FALSE);
  if (len % (allow_tail ? c->block_size : RECHAIN_LUKS_SECTOR_SIZE) != 0)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("LUKS: %zu bytes are not a whole number "
                     "of sectors"), len);
      return FALSE;
    }
  for (gsize done = 0; done < len; done += RECHAIN_LUKS_SECTOR_SIZE, sector++)
    {
      gsize n = MIN ((gsize) RECHAIN_LUKS_SECTOR_SIZE, len - done);
      gcry_error_t err;

      if (c->iv_len)
        {
          if (!make_iv (c, sector, iv, error))
            return FALSE;
          err = gcry_cipher_setiv (c->data, iv, c->iv_len);
          if (err)
            return rechain_luks_gcrypt_error (error, "IV", err);
        }
      err = encrypt ? gcry_cipher_encrypt (c->data, buf + done, n, NULL, 0)
                    : gcry_cipher_decrypt (c->data, buf + done, n, NULL, 0);
      if (err)
        return rechain_luks_gcrypt_error (error, encrypt ? "encrypt" : "decrypt", err);
    }
  return TRUE;
}

gboolean
rechain_luks_cipher_decrypt (RechainLuksCipher *cipher, guint64 first_sector,
                             guint8 *buf, gsize len, GError **error)
{
  return crypt_sectors (cipher, FALSE, first_sector, buf, len, FALSE, error);
}

gboolean
rechain_luks_cipher_encrypt (RechainLuksCipher *cipher, guint64 first_sector,
                             guint8 *buf, gsize len, GError **error)
{
  return crypt_sectors (cipher, TRUE, first_sector, buf, len, FALSE, error);
}

gboolean
rechain_luks_cipher_decrypt_tail (RechainLuksCipher *cipher, guint64 first_sector,
                                  guint8 *buf, gsize len, GError **error)
{
  return crypt_sectors (cipher, FALSE, first_sector, buf, len, TRUE, error);
}
