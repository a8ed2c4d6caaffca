/* luks-header.h: the LUKS1 header that a LUKS-encrypted qcow2 image embeds
 * (crypt_method 2; the full disk encryption header pointer extension gives
 * the offset and length of the "LUKS area": this header, then the key
 * material of the 8 key slots). Pure functions over buffers.
 *
 * Everything a hostile image controls is bounded here, before the unlock
 * (luks-key.h) or the sector cipher (luks-cipher.h) uses it. Errors are
 * RECHAIN_ERROR_INVALID_IMAGE (malformed) or RECHAIN_ERROR_UNSUPPORTED (a
 * LUKS version, cipher, mode, IV generator or hash rechain does not know).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define RECHAIN_LUKS_HEADER_SIZE 592
#define RECHAIN_LUKS_NUM_SLOTS 8
#define RECHAIN_LUKS_SECTOR_SIZE 512
#define RECHAIN_LUKS_SALT_LEN 32
#define RECHAIN_LUKS_DIGEST_LEN 20
#define RECHAIN_LUKS_NAME_LEN 32
#define RECHAIN_LUKS_UUID_LEN 40
/* Every LUKS1 writer (cryptsetup, QEMU) uses 4000 stripes, and QEMU refuses
 * any other count: a hostile count would make the key material (stripes x
 * key bytes) and the anti-forensic merge (a hash per stripe) unbounded. */
#define RECHAIN_LUKS_STRIPES 4000
#define RECHAIN_LUKS_SLOT_ACTIVE 0x00AC71F3u
#define RECHAIN_LUKS_SLOT_DISABLED 0x0000DEADu
/* Upper bound of a PBKDF2 iteration count (key slots and master-key
 * digest). QEMU's default iter-time of 2 s gave 7.2 million slot
 * iterations on this project's test machine (docs/reliability.md, "LUKS");
 * 2^30 is 150 times that, so only a deliberately huge iter-time hits it,
 * while an unlock bounded by it still ends in minutes per slot rather than
 * the hours 2^32 - 1 iterations times 8 slots would take. */
#define RECHAIN_LUKS_MAX_ITERATIONS (1u << 30)
/* The biggest key LUKS in qcow2 can hold: AES-256 in XTS mode. */
#define RECHAIN_LUKS_MAX_KEY_BYTES 64

typedef enum {
  RECHAIN_LUKS_MODE_ECB,
  RECHAIN_LUKS_MODE_CBC,
  RECHAIN_LUKS_MODE_XTS,
} RechainLuksMode;

typedef enum {
  RECHAIN_LUKS_IVGEN_NONE,     /* ECB: no IV at all */
  RECHAIN_LUKS_IVGEN_PLAIN,    /* sector number, truncated to 32 bits, LE */
  RECHAIN_LUKS_IVGEN_PLAIN64,  /* sector number, 64 bits, LE */
  RECHAIN_LUKS_IVGEN_ESSIV,    /* plain64 encrypted with hash(key) */
} RechainLuksIvgen;

typedef struct {
  gboolean active;
  guint32 iterations;
  guint8 salt[RECHAIN_LUKS_SALT_LEN];
  guint32 key_offset;          /* in 512-byte sectors from the header */
  guint32 stripes;
} RechainLuksSlot;

/* A parsed and validated header. The names are the header's own strings
 * (NUL-terminated, printable ASCII); the decoded fields say how to use
 * them, as libgcrypt algorithm ids (GCRY_CIPHER_*, GCRY_MD_*). */
typedef struct {
  char cipher_name[RECHAIN_LUKS_NAME_LEN + 1];
  char cipher_mode[RECHAIN_LUKS_NAME_LEN + 1];
  char hash_spec[RECHAIN_LUKS_NAME_LEN + 1];
  char uuid[RECHAIN_LUKS_UUID_LEN + 1];
  guint32 payload_offset;      /* in sectors; the end of the key material */
  guint32 key_bytes;           /* master key length (both halves for XTS) */
  guint8 mk_digest[RECHAIN_LUKS_DIGEST_LEN];
  guint8 mk_salt[RECHAIN_LUKS_SALT_LEN];
  guint32 mk_iterations;
  RechainLuksSlot slots[RECHAIN_LUKS_NUM_SLOTS];
  guint n_active;

  int cipher_algo;             /* GCRY_CIPHER_*, for key_bytes (halved for XTS) */
  guint block_size;            /* of that cipher: 16, or 8 for cast5 */
  RechainLuksMode mode;
  RechainLuksIvgen ivgen;
  int ivgen_hash_algo;         /* GCRY_MD_* of essiv:HASH, else 0 (a hash after
                                * plain or plain64 is validated, then ignored,
                                * as dm-crypt and QEMU do) */
  int essiv_cipher_algo;       /* the ESSIV cipher: same family, keyed by the
                                * hash's digest length; else 0 */
  int hash_algo;               /* GCRY_MD_* for PBKDF2 and the AF merge */
  guint hash_len;              /* its digest length */
} RechainLuksHeader;

/**
 * rechain_luks_header_parse:
 * @buf: the start of the LUKS area
 * @len: bytes in @buf (at least RECHAIN_LUKS_HEADER_SIZE)
 * @area_len: length of the whole LUKS area (qcow2: crypto_header_length),
 *   which bounds the key material and the payload offset
 * @out: (out caller-allocates): the header
 *
 * Checks magic and version 1, the cipher name with key_bytes (aes 128/192/
 * 256, serpent 128/192/256, twofish 128/256, cast5 128; XTS doubles), the
 * mode and IV generator (ecb, cbc, xts; plain, plain64, essiv:HASH; xts
 * needs a 16-byte block), the hash, the master-key iteration count, and for
 * every slot its state, iterations (active slots), stripes, and key
 * material: after the header, before the payload offset, inside @area_len,
 * and not overlapping another slot's.
 */
gboolean rechain_luks_header_parse (const guint8 *buf,
                                    gsize len,
                                    guint64 area_len,
                                    RechainLuksHeader *out,
                                    GError **error);

/* Bytes of key material of a slot (key_bytes x stripes). */
gsize rechain_luks_slot_material_len (const RechainLuksHeader *h,
                                      guint slot);

G_END_DECLS
