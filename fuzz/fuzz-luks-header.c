/* fuzz-luks-header: the LUKS1 header parser of LUKS qcow2 images, and the
 * unlock path when it is cheap.
 *
 * Input: a big-endian u32, the length of the LUKS area the qcow2 extension
 * would declare (capped at 4 MiB), then the area's first bytes (the rest
 * of the area reads as zeros). That lets short inputs describe the 2 MiB
 * areas QEMU writes.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - every failure is a rechain GError with a message;
 *   - an accepted header keeps its promises: known cipher, mode and hash,
 *     key_bytes <= 64, iteration counts within the bound, 4000 stripes,
 *     each slot's key material inside the area, after the header, before
 *     the payload offset, and apart from the other slots';
 *   - when every active slot and the master-key digest need at most 64
 *     PBKDF2 iterations, unlocking with a fixed passphrase ends in
 *     "unlocked" or "wrong key", never in another failure: parsing
 *     bounded everything the unlock reads. A key it returns decrypts and
 *     re-encrypts a sector to the same bytes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "format/be.h"
#include "format/luks-header.h"
#include "format/luks-key.h"
#include "format/luks-cipher.h"

#define MAX_AREA (4u << 20)
#define CHEAP_ITERATIONS 64

static void
check_header (const RechainLuksHeader *h, guint64 area_len)
{
  if (h->key_bytes == 0 || h->key_bytes > RECHAIN_LUKS_MAX_KEY_BYTES)
    FUZZ_BUG ("key_bytes %u accepted", h->key_bytes);
  if (h->cipher_algo == 0 || h->hash_algo == 0 || h->hash_len == 0)
    FUZZ_BUG ("header accepted without a cipher or hash");
  if (h->ivgen == RECHAIN_LUKS_IVGEN_ESSIV && (h->essiv_cipher_algo == 0 || h->ivgen_hash_algo == 0))
    FUZZ_BUG ("essiv accepted without its cipher or hash");
  if (h->mk_iterations == 0 || h->mk_iterations > RECHAIN_LUKS_MAX_ITERATIONS)
    FUZZ_BUG ("%u master-key iterations accepted", h->mk_iterations);
  if ((guint64) h->payload_offset * RECHAIN_LUKS_SECTOR_SIZE > area_len)
    FUZZ_BUG ("payload offset %u past an area of %" G_GUINT64_FORMAT, h->payload_offset, area_len);
  for (guint i = 0; i < RECHAIN_LUKS_NUM_SLOTS; i++)
    {
      const RechainLuksSlot *s = &h->slots[i];
      guint64 start = (guint64) s->key_offset * RECHAIN_LUKS_SECTOR_SIZE;
      guint64 end = start + rechain_luks_slot_material_len (h, i);

      if (s->stripes != RECHAIN_LUKS_STRIPES)
        FUZZ_BUG ("slot %u: %u stripes accepted", i, s->stripes);
      if (s->active && (s->iterations == 0 || s->iterations > RECHAIN_LUKS_MAX_ITERATIONS))
        FUZZ_BUG ("slot %u: %u iterations accepted", i, s->iterations);
      if (start < RECHAIN_LUKS_HEADER_SIZE || end > area_len ||
          end > (guint64) h->payload_offset * RECHAIN_LUKS_SECTOR_SIZE)
        FUZZ_BUG ("slot %u: key material %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT
                  " accepted", i, start, end);
      for (guint j = 0; j < i; j++)
        {
          guint64 s2 = (guint64) h->slots[j].key_offset * RECHAIN_LUKS_SECTOR_SIZE;
          guint64 e2 = s2 + rechain_luks_slot_material_len (h, j);
          if (start < e2 && s2 < end)
            FUZZ_BUG ("slots %u and %u overlap", j, i);
        }
    }
}

static gboolean
cheap (const RechainLuksHeader *h)
{
  if (h->mk_iterations > CHEAP_ITERATIONS)
    return FALSE;
  for (guint i = 0; i < RECHAIN_LUKS_NUM_SLOTS; i++)
    if (h->slots[i].active && h->slots[i].iterations > CHEAP_ITERATIONS)
      return FALSE;
  return TRUE;
}

static void
try_unlock (const RechainLuksHeader *h, const uint8_t *data, size_t size, guint64 area_len)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *area = g_malloc0 (area_len);
  guint8 *key = NULL;
  RechainLuksUnlockResult r;

  memcpy (area, data, MIN (size, area_len));
  r = rechain_luks_unlock (h, area, area_len, (const guint8 *) "fuzz", 4, &key, NULL, &error);
  if (r == RECHAIN_LUKS_UNLOCK_FAILED)
    FUZZ_BUG ("unlock failed on a parsed header: %s", error ? error->message : "(no error)");
  if (r == RECHAIN_LUKS_WRONG_KEY)
    {
      fuzz_check_error (error, "unlock");
      return;
    }
  if (error || !key)
    FUZZ_BUG ("unlocked with an error set or without a key");
  {
    g_autoptr(RechainLuksCipher) c = rechain_luks_cipher_new (h, key, h->key_bytes, &error);
    guint8 sector[512], orig[512];

    if (!c)
      FUZZ_BUG ("no cipher for an unlocked key: %s", error->message);
    memset (orig, 0xa5, sizeof orig);
    memcpy (sector, orig, sizeof sector);
    if (!rechain_luks_cipher_encrypt (c, 12345, sector, sizeof sector, &error) ||
        !rechain_luks_cipher_decrypt (c, 12345, sector, sizeof sector, &error))
      FUZZ_BUG ("sector cipher failed: %s", error->message);
    if (memcmp (sector, orig, sizeof sector) != 0)
      FUZZ_BUG ("encrypt then decrypt changed the sector");
  }
  rechain_luks_key_free (key, h->key_bytes);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  RechainLuksHeader h;
  guint64 area_len;

  fuzz_init ();
  if (size < 4)
    return 0;
  area_len = MIN (rd32 (data), MAX_AREA);
  data += 4;
  size -= 4;

  if (!rechain_luks_header_parse (data, size, area_len, &h, &error))
    {
      fuzz_check_error (error, "LUKS header parse");
      return 0;
    }
  check_header (&h, area_len);
  if (cheap (&h))
    try_unlock (&h, data, size, area_len);
  return 0;
}
