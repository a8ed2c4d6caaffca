/* luks-header.c: parsing and bounding the LUKS1 header of a LUKS qcow2
 * image (see luks-header.h). Layout (big endian, 592 bytes): magic[6],
 * version u16, cipher_name[32], cipher_mode[32], hash_spec[32],
 * payload_offset u32, key_bytes u32, mk_digest[20], mk_salt[32],
 * mk_iterations u32, uuid[40], then 8 key slots of 48 bytes: active u32,
 * iterations u32, salt[32], key_offset u32, stripes u32.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <gcrypt.h>

#include "format/luks-header.h"
#include "format/be.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

#define OFF_VERSION 6
#define OFF_CIPHER_NAME 8
#define OFF_CIPHER_MODE 40
#define OFF_HASH_SPEC 72
#define OFF_PAYLOAD 104
#define OFF_KEY_BYTES 108
#define OFF_MK_DIGEST 112
#define OFF_MK_SALT 132
#define OFF_MK_ITER 164
#define OFF_UUID 168
#define OFF_SLOTS 208
#define SLOT_SIZE 48

static const guint8 luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

/* Sectors the header itself occupies: key material must start after it. */
#define HEADER_SECTORS \
  ((RECHAIN_LUKS_HEADER_SIZE + RECHAIN_LUKS_SECTOR_SIZE - 1) / RECHAIN_LUKS_SECTOR_SIZE)

typedef struct {
  const char *name;
  int algo;
  guint digest_len;
} HashName;

/* The hashes QEMU can write into a LUKS header. */
static const HashName hashes[] = {
  { "md5", GCRY_MD_MD5, 16 },
  { "sha1", GCRY_MD_SHA1, 20 },
  { "sha224", GCRY_MD_SHA224, 28 },
  { "sha256", GCRY_MD_SHA256, 32 },
  { "sha384", GCRY_MD_SHA384, 48 },
  { "sha512", GCRY_MD_SHA512, 64 },
  { "ripemd160", GCRY_MD_RMD160, 20 },
};

typedef struct {
  const char *name;
  guint block_size;
  /* libgcrypt ids for 16, 24 and 32-byte keys; 0 = no such key size */
  int algo[3];
} CipherName;

/* libgcrypt has no 192-bit Twofish (QEMU only offers it with nettle). */
static const CipherName ciphers[] = {
  { "aes", 16, { GCRY_CIPHER_AES128, GCRY_CIPHER_AES192, GCRY_CIPHER_AES256 } },
  { "serpent", 16, { GCRY_CIPHER_SERPENT128, GCRY_CIPHER_SERPENT192, GCRY_CIPHER_SERPENT256 } },
  { "twofish", 16, { GCRY_CIPHER_TWOFISH128, 0, GCRY_CIPHER_TWOFISH } },
  { "cast5", 8, { GCRY_CIPHER_CAST5, 0, 0 } },
};

static gboolean
fail (GError **error, int code, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
fail (GError **error, int code, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  g_propagate_error (error, g_error_new_valist (RECHAIN_ERROR, code, format, ap));
  va_end (ap);
  return FALSE;
}

static const HashName *
find_hash (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (hashes); i++)
    if (strcmp (hashes[i].name, name) == 0)
      return &hashes[i];
  return NULL;
}

static const CipherName *
find_cipher (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (ciphers); i++)
    if (strcmp (ciphers[i].name, name) == 0)
      return &ciphers[i];
  return NULL;
}

/* Key length in bytes -> index into CipherName.algo, or -1. */
static int
key_index (guint bytes)
{
  return bytes == 16 ? 0 : bytes == 24 ? 1 : bytes == 32 ? 2 : -1;
}

/* Copies a fixed-size name field: it must be NUL-terminated inside the
 * field and printable ASCII, so that messages can quote it as it is. */
static gboolean
copy_name (const guint8 *field, gsize field_len, char *out, const char *what,
           GError **error)
{
  const guint8 *nul = memchr (field, 0, field_len);

  if (!nul)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: the %s field is not NUL-terminated"), what);
  for (const guint8 *p = field; p < nul; p++)
    if (*p < 0x20 || *p > 0x7e)
      return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                   _("LUKS header: the %s field holds a non-printable byte"), what);
  memcpy (out, field, nul - field);
  out[nul - field] = '\0';
  return TRUE;
}

static gboolean
check_iterations (guint32 iterations, const char *what, GError **error)
{
  if (iterations == 0 || iterations > RECHAIN_LUKS_MAX_ITERATIONS)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: %s has %u PBKDF2 iterations "
                   "(allowed: 1 to %u)"), what, iterations,
                 RECHAIN_LUKS_MAX_ITERATIONS);
  return TRUE;
}

/* "MODE-IVGEN[:HASH]", or "ecb" alone (ECB has no IV). */
static gboolean
parse_mode (RechainLuksHeader *h, guint *essiv_key_len, GError **error)
{
  guint ivhash_len = 0;
  g_autofree char *mode = g_strdup (h->cipher_mode);
  char *ivgen = strchr (mode, '-');
  char *ivhash = NULL;

  if (ivgen)
    {
      *ivgen++ = '\0';
      ivhash = strchr (ivgen, ':');
      if (ivhash)
        *ivhash++ = '\0';
    }

  if (strcmp (mode, "ecb") == 0)
    h->mode = RECHAIN_LUKS_MODE_ECB;
  else if (strcmp (mode, "cbc") == 0)
    h->mode = RECHAIN_LUKS_MODE_CBC;
  else if (strcmp (mode, "xts") == 0)
    h->mode = RECHAIN_LUKS_MODE_XTS;
  else
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: cipher mode \"%s\" is not supported "
                   "(ecb, cbc, xts)"), h->cipher_mode);

  if (!ivgen && h->mode != RECHAIN_LUKS_MODE_ECB)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: cipher mode \"%s\" names no IV generator"),
                 h->cipher_mode);

  if (ivhash)
    {
      const HashName *hn = find_hash (ivhash);
      if (!hn)
        return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                     _("LUKS header: IV generator hash \"%s\" is not supported"),
                     ivhash);
      h->ivgen_hash_algo = hn->algo;
      ivhash_len = hn->digest_len;
    }

  if (!ivgen)
    h->ivgen = RECHAIN_LUKS_IVGEN_NONE;
  else if (strcmp (ivgen, "plain") == 0)
    h->ivgen = RECHAIN_LUKS_IVGEN_PLAIN;
  else if (strcmp (ivgen, "plain64") == 0)
    h->ivgen = RECHAIN_LUKS_IVGEN_PLAIN64;
  else if (strcmp (ivgen, "essiv") == 0)
    h->ivgen = RECHAIN_LUKS_IVGEN_ESSIV;
  else
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: IV generator \"%s\" is not supported "
                   "(plain, plain64, essiv)"), ivgen);

  if (h->ivgen == RECHAIN_LUKS_IVGEN_ESSIV && !ivhash)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: cipher mode \"%s\" needs a hash (essiv:HASH)"),
                 h->cipher_mode);
  /* dm-crypt and QEMU accept and ignore a hash after plain and plain64
   * (Nova writes xts-plain64:sha256); ECB uses no IV at all */
  if (h->ivgen != RECHAIN_LUKS_IVGEN_ESSIV)
    h->ivgen_hash_algo = 0;
  if (h->mode == RECHAIN_LUKS_MODE_ECB)
    h->ivgen = RECHAIN_LUKS_IVGEN_NONE;
  *essiv_key_len = h->ivgen == RECHAIN_LUKS_IVGEN_ESSIV ? ivhash_len : 0;
  return TRUE;
}

static gboolean
parse_cipher (RechainLuksHeader *h, guint essiv_key_len, GError **error)
{
  const CipherName *c = find_cipher (h->cipher_name);
  guint bytes = h->key_bytes;
  int ki;

  if (!c)
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: cipher \"%s\" is not supported "
                   "(aes, serpent, twofish, cast5)"), h->cipher_name);
  if (h->mode == RECHAIN_LUKS_MODE_XTS)
    {
      /* XTS keys are two keys of the cipher, and XTS needs 16-byte blocks */
      if (c->block_size != 16)
        return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                     _("LUKS header: cipher \"%s\" cannot be used in XTS mode"),
                     h->cipher_name);
      if (bytes % 2 != 0)
        return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                     _("LUKS header: odd key length %u"
                       " for XTS mode"), bytes);
      bytes /= 2;
    }
  ki = key_index (bytes);
  if (ki < 0 || c->algo[ki] == 0)
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: cipher \"%s\" with a key of %u"
                   " bytes (%s) is not supported"), h->cipher_name,
                 h->key_bytes, h->cipher_mode);
  h->cipher_algo = c->algo[ki];
  h->block_size = c->block_size;

  if (h->ivgen == RECHAIN_LUKS_IVGEN_ESSIV)
    {
      /* dm-crypt keys the ESSIV cipher with the whole digest, so its key
       * size follows the hash (AES-128 with sha256 makes AES-256 IVs) */
      guint dlen = essiv_key_len;
      int ei = key_index (dlen);
      if (ei < 0 || c->algo[ei] == 0)
        return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                     _("LUKS header: no %s cipher with a %u-byte key for the "
                       "ESSIV hash of \"%s\""), h->cipher_name, dlen,
                     h->cipher_mode);
      h->essiv_cipher_algo = c->algo[ei];
    }
  return TRUE;
}

gsize
rechain_luks_slot_material_len (const RechainLuksHeader *h, guint slot)
{
  g_return_val_if_fail (slot < RECHAIN_LUKS_NUM_SLOTS, 0);
  return (gsize) h->key_bytes * h->slots[slot].stripes;
}

/* Sectors of key material of a slot, as laid out on disk. */
static guint64
material_sectors (const RechainLuksHeader *h, guint slot)
{
  return ((guint64) h->key_bytes * h->slots[slot].stripes +
          RECHAIN_LUKS_SECTOR_SIZE - 1) / RECHAIN_LUKS_SECTOR_SIZE;
}

static gboolean
parse_slots (RechainLuksHeader *h, const guint8 *buf, GError **error)
{
  for (guint i = 0; i < RECHAIN_LUKS_NUM_SLOTS; i++)
    {
      const guint8 *p = buf + OFF_SLOTS + i * SLOT_SIZE;
      RechainLuksSlot *s = &h->slots[i];
      guint32 state = rd32 (p);

      s->iterations = rd32 (p + 4);
      memcpy (s->salt, p + 8, RECHAIN_LUKS_SALT_LEN);
      s->key_offset = rd32 (p + 40);
      s->stripes = rd32 (p + 44);

      if (state == RECHAIN_LUKS_SLOT_ACTIVE)
        s->active = TRUE;
      else if (state != RECHAIN_LUKS_SLOT_DISABLED)
        return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                     _("LUKS header: key slot %u has state 0x%08x"
                       " (neither active nor disabled)"), i, state);
      if (s->active)
        {
          g_autofree char *what = g_strdup_printf (_("key slot %u"), i);
          if (!check_iterations (s->iterations, what, error))
            return FALSE;
          h->n_active++;
        }
      /* disabled slots too: QEMU lays out all 8 and checks all 8, and a
       * slot enabled later reuses its area */
      if (s->stripes != RECHAIN_LUKS_STRIPES)
        return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                     _("LUKS header: key slot %u has %u"
                       " anti-forensic stripes (must be %u)"), i, s->stripes,
                     RECHAIN_LUKS_STRIPES);
      if (s->key_offset < HEADER_SECTORS)
        return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                     _("LUKS header: key material of key slot %u (sector %u"
                       ") overlaps the LUKS header"), i,
                     s->key_offset);
      if (s->key_offset + material_sectors (h, i) > h->payload_offset)
        return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                     _("LUKS header: key material of key slot %u (sectors %u"
                       "+%" PRIu64 ") extends past the "
                       "payload offset (sector %u)"), i,
                     s->key_offset, material_sectors (h, i), h->payload_offset);
      for (guint j = 0; j < i; j++)
        {
          guint64 a0 = s->key_offset, a1 = a0 + material_sectors (h, i);
          guint64 b0 = h->slots[j].key_offset, b1 = b0 + material_sectors (h, j);
          if (a0 < b1 && b0 < a1)
            return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                         _("LUKS header: key material of key slots %u and %u "
                           "overlap"), j, i);
        }
    }
  return TRUE;
}

gboolean
rechain_luks_header_parse (const guint8 *buf,
                           gsize len,
                           guint64 area_len,
                           RechainLuksHeader *out,
                           GError **error)
{
  RechainLuksHeader h = { { 0 } };
  const HashName *hn;
  guint16 version;
  guint essiv_key_len = 0;

  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (buf != NULL || len == 0, FALSE);

  if (len < RECHAIN_LUKS_HEADER_SIZE || area_len < RECHAIN_LUKS_HEADER_SIZE)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: the encryption header area is %" PRIu64
                   " bytes, too short for a LUKS header (%u bytes)"),
                 MIN ((guint64) len, area_len), RECHAIN_LUKS_HEADER_SIZE);
  if (memcmp (buf, luks_magic, sizeof luks_magic) != 0)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: bad magic (not a LUKS header)"));
  version = rd16 (buf + OFF_VERSION);
  if (version != 1)
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: version %u is not supported (qcow2 holds LUKS "
                   "version 1)"), version);

  if (!copy_name (buf + OFF_CIPHER_NAME, RECHAIN_LUKS_NAME_LEN, h.cipher_name,
                  "cipher_name", error) ||
      !copy_name (buf + OFF_CIPHER_MODE, RECHAIN_LUKS_NAME_LEN, h.cipher_mode,
                  "cipher_mode", error) ||
      !copy_name (buf + OFF_HASH_SPEC, RECHAIN_LUKS_NAME_LEN, h.hash_spec,
                  "hash_spec", error))
    return FALSE;
  /* the UUID is informative only: kept, not refused, when malformed */
  memcpy (h.uuid, buf + OFF_UUID, RECHAIN_LUKS_UUID_LEN);
  for (guint i = 0; i < RECHAIN_LUKS_UUID_LEN; i++)
    if (h.uuid[i] != '\0' && (h.uuid[i] < 0x20 || h.uuid[i] > 0x7e))
      h.uuid[i] = '?';

  h.payload_offset = rd32 (buf + OFF_PAYLOAD);
  h.key_bytes = rd32 (buf + OFF_KEY_BYTES);
  memcpy (h.mk_digest, buf + OFF_MK_DIGEST, RECHAIN_LUKS_DIGEST_LEN);
  memcpy (h.mk_salt, buf + OFF_MK_SALT, RECHAIN_LUKS_SALT_LEN);
  h.mk_iterations = rd32 (buf + OFF_MK_ITER);

  if (!parse_mode (&h, &essiv_key_len, error) ||
      !parse_cipher (&h, essiv_key_len, error))
    return FALSE;
  hn = find_hash (h.hash_spec);
  if (!hn)
    return fail (error, RECHAIN_ERROR_UNSUPPORTED,
                 _("LUKS header: hash \"%s\" is not supported (sha1, sha224, "
                   "sha256, sha384, sha512, ripemd160, md5)"), h.hash_spec);
  h.hash_algo = hn->algo;
  h.hash_len = hn->digest_len;
  if (!check_iterations (h.mk_iterations, _("the master key digest"), error))
    return FALSE;

  /* the payload offset ends the key material; in qcow2 the data lives in
   * clusters of its own, so the offset only has to stay inside the area */
  if ((guint64) h.payload_offset * RECHAIN_LUKS_SECTOR_SIZE > area_len ||
      h.payload_offset < HEADER_SECTORS)
    return fail (error, RECHAIN_ERROR_INVALID_IMAGE,
                 _("LUKS header: payload offset (sector %u"
                   ") outside the encryption header area (%" PRIu64
                   " bytes)"), h.payload_offset, area_len);
  if (!parse_slots (&h, buf, error))
    return FALSE;

  *out = h;
  return TRUE;
}
