/* test-luks.c: the LUKS header parser, unlock and sector cipher
 * (src/format/luks-*.c).
 *
 * QEMU is the oracle: images are made at test time by qemu-img with each
 * cipher, mode and IV generator, a known pattern is written by qemu-io, and
 * the test must parse, unlock, decrypt the pattern from the file's
 * ciphertext and encrypt it back to the same bytes. Hostile headers are
 * crafted from a valid buffer, one bounded field at a time.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <glib.h>

#include "format/qcow2.h"
#include "format/be.h"
#include "format/luks-header.h"
#include "format/luks-key.h"
#include "format/luks-cipher.h"
#include "rechain/rechain-error.h"
#include "qemu-fixture.h"

#define PASS "rechain-test-pass"
#define PASS2 "second key, with spaces"
#define PASS2_QEMU "second key,, with spaces"  /* QEMU's option quoting */
#define PATTERN 0x5a
#define PATTERN_LEN (64 * 1024)

static char *qemu_img, *qemu_io, *tmpdir;

/* Runs a program in tmpdir, up to @attempts times while it fails: qemu-img
 * times its key derivation and may fail on a loaded machine ("Unable to get
 * accurate CPU usage"). */
static void
run (const char *const *argv, guint attempts)
{
  g_autoptr (GString) cmd = g_string_new (NULL);

  for (guint i = 0; argv[i]; i++)
    {
      g_autofree char *q = g_shell_quote (argv[i]);
      g_string_append_printf (cmd, "%s%s", i ? " " : "", q);
    }
  for (guint i = 1; qemu_fixture_try (tmpdir, "%s", cmd->str) != 0; i++)
    if (i >= attempts)
      g_error ("failed %u times: %s", attempts, cmd->str);
}

/* An encrypted image @name of 1 MiB, with @opts added to the encryption
 * options, key PASS in slot 0, and PATTERN written over its first 64 KiB. */
static void
make_image (const char *name, const char *opts)
{
  g_autofree char *o = g_strdup_printf ("encrypt.format=luks,encrypt.key-secret=s0,"
                                        "encrypt.iter-time=10%s%s",
                                        *opts ? "," : "", opts);
  g_autofree char *img_opts = g_strdup_printf ("driver=qcow2,encrypt.key-secret=s0,"
                                               "file.filename=%s", name);
  g_autofree char *w = g_strdup_printf ("write -P 0x%x 0 %d", PATTERN, PATTERN_LEN);
  const char *create[] = { qemu_img, "create", "-q", "-f", "qcow2", "--object",
                           "secret,id=s0,data=" PASS, "-o", o, name, "1M", NULL };
  const char *io[] = { qemu_io, "--object", "secret,id=s0,data=" PASS,
                       "--image-opts", img_opts, "-c", w, NULL };

  run (create, 60);
  run (io, 1);
}

typedef struct {
  GBytes *file;
  const guint8 *data;
  gsize size;
  RechainQcow2Header *qh;
  RechainLuksHeader lh;
  const guint8 *area;
  gsize area_len;
} Image;

static void
image_clear (Image *img)
{
  g_clear_pointer (&img->qh, rechain_qcow2_header_free);
  g_clear_pointer (&img->file, g_bytes_unref);
}

static void
image_load (Image *img, const char *name)
{
  g_autofree char *path = g_build_filename (tmpdir, name, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GMappedFile) mf = g_mapped_file_new (path, FALSE, &error);

  g_assert_no_error (error);
  memset (img, 0, sizeof *img);
  img->file = g_mapped_file_get_bytes (mf);
  img->data = g_bytes_get_data (img->file, &img->size);

  img->qh = rechain_qcow2_header_parse (img->data, img->size, img->size, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (img->qh->crypt_method, ==, RECHAIN_QCOW2_CRYPT_LUKS);
  g_assert_true (img->qh->has_crypto_ext);

  img->area = img->data + img->qh->crypto_header_offset;
  img->area_len = img->qh->crypto_header_length;
  g_assert_true (rechain_luks_header_parse (img->area, img->area_len, img->area_len,
                                            &img->lh, &error));
  g_assert_no_error (error);
}

/* Host offset of guest cluster 0, through L1[0] and L2[0] (standard
 * entries: these images have no extended L2 and no compression). */
static guint64
host_offset_of_cluster0 (const Image *img)
{
  const guint64 mask = G_GUINT64_CONSTANT (0x00fffffffffffe00);
  guint64 l2 = rd64 (img->data + img->qh->l1_table_offset) & mask;
  guint64 host;

  g_assert_cmpuint (l2, !=, 0);
  host = rd64 (img->data + l2) & mask;
  g_assert_cmpuint (host, !=, 0);
  g_assert_cmpuint (host + PATTERN_LEN, <=, img->size);
  return host;
}

static guint8 *
unlock_ok (const Image *img, const char *pass, guint expect_slot)
{
  g_autoptr (GError) error = NULL;
  guint8 *key = NULL;
  guint slot = 99;

  g_assert_cmpint (rechain_luks_unlock (&img->lh, img->area, img->area_len,
                                        (const guint8 *) pass, strlen (pass),
                                        &key, &slot, &error),
                   ==, RECHAIN_LUKS_UNLOCKED);
  g_assert_no_error (error);
  g_assert_nonnull (key);
  g_assert_cmpuint (slot, ==, expect_slot);
  return key;
}

static void
unlock_wrong (const Image *img, const char *pass)
{
  g_autoptr (GError) error = NULL;
  guint8 *key = NULL;

  g_assert_cmpint (rechain_luks_unlock (&img->lh, img->area, img->area_len,
                                        (const guint8 *) pass, strlen (pass),
                                        &key, NULL, &error),
                   ==, RECHAIN_LUKS_WRONG_KEY);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED);
  g_assert_null (key);
  if (*pass)
    g_assert_null (strstr (error->message, pass));
}

/* Decrypts the pattern cluster, then encrypts it back: the bytes must be
 * the pattern, then the file's ciphertext again. */
static void
check_data (const Image *img, const guint8 *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainLuksCipher) c = NULL;
  guint64 host = host_offset_of_cluster0 (img);
  g_autofree guint8 *buf = g_memdup2 (img->data + host, PATTERN_LEN);
  guint8 expect[PATTERN_LEN];

  c = rechain_luks_cipher_new (&img->lh, key, img->lh.key_bytes, &error);
  g_assert_no_error (error);
  /* the IV counts host sectors (crypt_physical_offset) */
  g_assert_true (rechain_luks_cipher_decrypt (c, host / 512, buf, PATTERN_LEN, &error));
  g_assert_no_error (error);
  memset (expect, PATTERN, sizeof expect);
  g_assert_cmpmem (buf, PATTERN_LEN, expect, PATTERN_LEN);

  g_assert_true (rechain_luks_cipher_encrypt (c, host / 512, buf, PATTERN_LEN, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (buf, PATTERN_LEN, img->data + host, PATTERN_LEN);

  /* the guest offset as IV gives something else (except with no IV) */
  if (img->lh.ivgen != RECHAIN_LUKS_IVGEN_NONE)
    {
      memcpy (buf, img->data + host, PATTERN_LEN);
      g_assert_true (rechain_luks_cipher_decrypt (c, 0, buf, PATTERN_LEN, &error));
      g_assert_true (memcmp (buf, expect, PATTERN_LEN) != 0);
    }

  /* partial sectors are refused */
  g_assert_false (rechain_luks_cipher_decrypt (c, 0, buf, 100, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
}

typedef struct {
  const char *name;
  const char *opts;
  const char *cipher_name;
  const char *cipher_mode;
  const char *hash_spec;
  guint key_bytes;
} Variant;

static const Variant variants[] = {
  { "aes-256-xts-plain64", "", "aes", "xts-plain64", "sha256", 64 },
  { "aes-128-xts", "encrypt.cipher-alg=aes-128", "aes", "xts-plain64", "sha256", 32 },
  /* (not aes-192-cbc: its key material, 96000 bytes, ends mid-sector and
   * qemu-img 7.2 aborts on it) */
  { "aes-192-xts", "encrypt.cipher-alg=aes-192", "aes", "xts-plain64", "sha256", 48 },
  { "aes-256-cbc-essiv-sha256", "encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,"
    "encrypt.ivgen-hash-alg=sha256", "aes", "cbc-essiv:sha256", "sha256", 32 },
  { "aes-128-cbc-essiv-sha256", "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
    "encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256", "aes", "cbc-essiv:sha256",
    "sha256", 16 },
  { "aes-256-cbc-plain", "encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain",
    "aes", "cbc-plain", "sha256", 32 },
  { "aes-128-ecb", "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=ecb",
    "aes", "ecb-plain64", "sha256", 16 },
  { "serpent-256-xts", "encrypt.cipher-alg=serpent-256", "serpent", "xts-plain64", "sha256", 64 },
  { "twofish-256-xts", "encrypt.cipher-alg=twofish-256", "twofish", "xts-plain64", "sha256", 64 },
  { "cast5-128-cbc-plain64", "encrypt.cipher-alg=cast5-128,encrypt.cipher-mode=cbc",
    "cast5", "cbc-plain64", "sha256", 16 },
  /* a hash after plain64, as Nova writes: parsed, then ignored */
  { "xts-plain64-sha256-suffix", "encrypt.ivgen-hash-alg=sha256", "aes",
    "xts-plain64:sha256", "sha256", 64 },
  { "hash-sha1", "encrypt.hash-alg=sha1", "aes", "xts-plain64", "sha1", 64 },
  { "hash-sha512", "encrypt.hash-alg=sha512", "aes", "xts-plain64", "sha512", 64 },
};

static void
test_variant (gconstpointer data)
{
  const Variant *v = data;
  g_autofree char *name = g_strconcat (v->name, ".qcow2", NULL);
  Image img;
  guint8 *key;

  make_image (name, v->opts);
  image_load (&img, name);
  g_assert_cmpstr (img.lh.cipher_name, ==, v->cipher_name);
  g_assert_cmpstr (img.lh.cipher_mode, ==, v->cipher_mode);
  g_assert_cmpstr (img.lh.hash_spec, ==, v->hash_spec);
  g_assert_cmpuint (img.lh.key_bytes, ==, v->key_bytes);
  g_assert_cmpuint (img.lh.n_active, ==, 1);
  g_assert_true (img.lh.slots[0].active);

  key = unlock_ok (&img, PASS, 0);
  check_data (&img, key);
  rechain_luks_key_free (key, img.lh.key_bytes);
  unlock_wrong (&img, "not the passphrase");
  unlock_wrong (&img, "");
  image_clear (&img);
}

/* The same image with its encryption header pointer extension renamed to
 * an unknown type: a LUKS image that says nowhere where its key is. */
static void
check_no_crypto_ext (const Image *img)
{
  g_autoptr (GError) error = NULL;
  gsize len = MIN (img->size, (gsize) 65536);
  g_autofree guint8 *buf = g_memdup2 (img->data, len);
  gsize off = img->qh->header_length;
  gboolean found = FALSE;

  while (off + 8 <= len && rd32 (buf + off) != 0)
    {
      if (rd32 (buf + off) == 0x0537be77)
        {
          buf[off] ^= 0x80;
          found = TRUE;
        }
      off += 8 + ((rd32 (buf + off + 4) + 7) & ~7u);
    }
  g_assert_true (found);
  g_assert_null (rechain_qcow2_header_parse (buf, len, img->size, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_assert_nonnull (strstr (error->message, "full disk encryption header pointer extension is missing"));
}

/* Keys added in slots 3 and 6 with qemu-img amend: each passphrase opens
 * its own slot, and all three give the same master key. */
static void
test_slots (void)
{
  const char *img_opts = "driver=qcow2,encrypt.key-secret=s0,file.filename=slots.qcow2";
  const char *amend3[] = { qemu_img, "amend", "--object", "secret,id=s0,data=" PASS,
                           "--object", "secret,id=s1,data=" PASS2_QEMU, "--image-opts", img_opts,
                           "-o", "encrypt.keyslot=3,encrypt.state=active,encrypt.new-secret=s1,"
                           "encrypt.iter-time=10", NULL };
  const char *amend6[] = { qemu_img, "amend", "--object", "secret,id=s0,data=" PASS,
                           "--object", "secret,id=s2,data=third", "--image-opts", img_opts,
                           "-o", "encrypt.keyslot=6,encrypt.state=active,encrypt.new-secret=s2,"
                           "encrypt.iter-time=10", NULL };
  Image img;
  guint8 *k0, *k3, *k6;

  make_image ("slots.qcow2", "");
  run (amend3, 5);
  run (amend6, 5);
  image_load (&img, "slots.qcow2");
  g_assert_cmpuint (img.lh.n_active, ==, 3);
  k0 = unlock_ok (&img, PASS, 0);
  k3 = unlock_ok (&img, PASS2, 3);
  k6 = unlock_ok (&img, "third", 6);
  g_assert_cmpmem (k0, img.lh.key_bytes, k3, img.lh.key_bytes);
  g_assert_cmpmem (k0, img.lh.key_bytes, k6, img.lh.key_bytes);
  check_data (&img, k6);
  unlock_wrong (&img, "fourth");
  check_no_crypto_ext (&img);
  rechain_luks_key_free (k0, img.lh.key_bytes);
  rechain_luks_key_free (k3, img.lh.key_bytes);
  rechain_luks_key_free (k6, img.lh.key_bytes);
  image_clear (&img);
}

/* ---- hostile headers, crafted ---- */

#define AREA_SECTORS 4040  /* QEMU's layout for 64-byte keys */

static void
put32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_BE (v);
  memcpy (p, &v, 4);
}

static void
put_name (guint8 *buf, gsize off, const char *name)
{
  memset (buf + off, 0, 32);
  memcpy (buf + off, name, strlen (name));
}

/* A valid aes-256 xts-plain64 sha256 header laid out as QEMU does, slot 0
 * active with few iterations, the others disabled. */
static void
valid_header (guint8 *buf)
{
  static const guint8 magic[] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

  memset (buf, 0, RECHAIN_LUKS_HEADER_SIZE);
  memcpy (buf, magic, 6);
  buf[7] = 1;
  put_name (buf, 8, "aes");
  put_name (buf, 40, "xts-plain64");
  put_name (buf, 72, "sha256");
  put32 (buf + 104, AREA_SECTORS);
  put32 (buf + 108, 64);
  memset (buf + 112, 0x11, 20);
  memset (buf + 132, 0x22, 32);
  put32 (buf + 164, 1000);
  memcpy (buf + 168, "01234567-89ab-cdef-0123-456789abcdef", 36);
  for (guint i = 0; i < 8; i++)
    {
      guint8 *s = buf + 208 + 48 * i;
      put32 (s, i == 0 ? RECHAIN_LUKS_SLOT_ACTIVE : RECHAIN_LUKS_SLOT_DISABLED);
      put32 (s + 4, i == 0 ? 1000 : 0);
      memset (s + 8, 0x33 + i, 32);
      put32 (s + 40, 8 + 504 * i);
      put32 (s + 44, 4000);
    }
}

typedef struct {
  const char *name;
  gsize off;                   /* where to write */
  guint32 value;               /* a u32 at @off, unless @text */
  const char *text;            /* a name field at @off */
  int code;
  const char *message;         /* expected in the error message */
} Corruption;

#define SLOT(i, f) (208 + 48 * (i) + (f))

static const Corruption corruptions[] = {
  { "magic", 0, 0x4c554b00, NULL, RECHAIN_ERROR_INVALID_IMAGE, "bad magic" },
  { "version-2", 4, 0xbabe0002, NULL, RECHAIN_ERROR_UNSUPPORTED, "version 2" },
  { "cipher-unknown", 8, 0, "des", RECHAIN_ERROR_UNSUPPORTED, "cipher \"des\"" },
  { "cipher-not-terminated", 8, 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaX", RECHAIN_ERROR_INVALID_IMAGE,
    "cipher_name field is not NUL-terminated" },
  { "cipher-unprintable", 8, 0, "ae\x01", RECHAIN_ERROR_INVALID_IMAGE, "non-printable" },
  { "mode-unknown", 40, 0, "ctr-plain64", RECHAIN_ERROR_UNSUPPORTED, "cipher mode \"ctr-plain64\"" },
  { "mode-no-ivgen", 40, 0, "xts", RECHAIN_ERROR_INVALID_IMAGE, "names no IV generator" },
  { "ivgen-unknown", 40, 0, "xts-benbi", RECHAIN_ERROR_UNSUPPORTED, "IV generator \"benbi\"" },
  { "essiv-no-hash", 40, 0, "xts-essiv", RECHAIN_ERROR_INVALID_IMAGE, "needs a hash" },
  { "ivhash-unknown", 40, 0, "xts-essiv:whirlpool", RECHAIN_ERROR_UNSUPPORTED,
    "IV generator hash \"whirlpool\"" },
  { "hash-unknown", 72, 0, "sha3-256", RECHAIN_ERROR_UNSUPPORTED, "hash \"sha3-256\"" },
  { "key-bytes-odd-xts", 108, 33, NULL, RECHAIN_ERROR_INVALID_IMAGE, "odd key length 33" },
  { "key-bytes-40", 108, 40, NULL, RECHAIN_ERROR_UNSUPPORTED, "key of 40 bytes" },
  { "key-bytes-huge", 108, 0x80000000u, NULL, RECHAIN_ERROR_UNSUPPORTED, "bytes" },
  { "mk-iterations-0", 164, 0, NULL, RECHAIN_ERROR_INVALID_IMAGE, "master key digest has 0" },
  { "mk-iterations-absurd", 164, 0xffffffffu, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "4294967295 PBKDF2 iterations" },
  { "payload-outside-area", 104, AREA_SECTORS + 1, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "payload offset" },
  { "payload-in-header", 104, 1, NULL, RECHAIN_ERROR_INVALID_IMAGE, "payload offset" },
  { "slot-state", SLOT (2, 0), 0x12345678, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slot 2 has state 0x12345678" },
  { "slot-iterations-0", SLOT (0, 4), 0, NULL, RECHAIN_ERROR_INVALID_IMAGE, "key slot 0 has 0" },
  { "slot-iterations-absurd", SLOT (0, 4), (1u << 30) + 1, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slot 0 has 1073741825 PBKDF2 iterations" },
  { "slot-stripes", SLOT (5, 44), 4001, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slot 5 has 4001 anti-forensic stripes" },
  { "slot-stripes-huge", SLOT (0, 44), 0xffffffffu, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "stripes" },
  { "slot-in-header", SLOT (0, 40), 1, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slot 0 (sector 1) overlaps the LUKS header" },
  { "slot-past-payload", SLOT (7, 40), AREA_SECTORS - 100, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slot 7" },
  { "slot-offset-huge", SLOT (7, 40), 0xffffffffu, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "extends past the payload offset" },
  { "slots-overlap", SLOT (4, 40), 8 + 504 * 3 + 100, NULL, RECHAIN_ERROR_INVALID_IMAGE,
    "key slots 3 and 4 overlap" },
};

static void
test_corrupt (gconstpointer data)
{
  const Corruption *c = data;
  guint8 buf[RECHAIN_LUKS_HEADER_SIZE];
  g_autoptr (GError) error = NULL;
  RechainLuksHeader h;

  valid_header (buf);
  if (c->text)
    {
      /* a name of 33 bytes or more overruns into the next field on purpose */
      memset (buf + c->off, 0, 32);
      memcpy (buf + c->off, c->text, MIN (strlen (c->text), 32));
    }
  else
    put32 (buf + c->off, c->value);
  g_assert_false (rechain_luks_header_parse (buf, sizeof buf,
                                             AREA_SECTORS * 512, &h, &error));
  g_assert_error (error, RECHAIN_ERROR, c->code);
  if (!strstr (error->message, c->message))
    g_error ("%s: \"%s\" not in \"%s\"", c->name, c->message, error->message);
}

/* @buf must parse as RECHAIN_ERROR_UNSUPPORTED. */
static void
expect_unsupported (const guint8 *buf)
{
  g_autoptr (GError) error = NULL;
  RechainLuksHeader h;

  g_assert_false (rechain_luks_header_parse (buf, RECHAIN_LUKS_HEADER_SIZE,
                                             AREA_SECTORS * 512, &h, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED);
}

static void
test_crafted_valid (void)
{
  guint8 buf[RECHAIN_LUKS_HEADER_SIZE];
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *area = g_malloc0 (AREA_SECTORS * 512);
  RechainLuksHeader h;
  guint8 *key = NULL;

  valid_header (buf);
  g_assert_true (rechain_luks_header_parse (buf, sizeof buf, AREA_SECTORS * 512, &h, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (h.n_active, ==, 1);
  g_assert_cmpint (h.mode, ==, RECHAIN_LUKS_MODE_XTS);
  g_assert_cmpint (h.ivgen, ==, RECHAIN_LUKS_IVGEN_PLAIN64);

  /* too short a buffer or area */
  g_assert_false (rechain_luks_header_parse (buf, 100, AREA_SECTORS * 512, &h, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_clear_error (&error);
  g_assert_false (rechain_luks_header_parse (buf, sizeof buf, 4000 * 512, &h, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_clear_error (&error);

  /* zero material: the digest does not match, a wrong key */
  g_assert_true (rechain_luks_header_parse (buf, sizeof buf, AREA_SECTORS * 512, &h, &error));
  memcpy (area, buf, sizeof buf);
  g_assert_cmpint (rechain_luks_unlock (&h, area, AREA_SECTORS * 512, (const guint8 *) "x", 1,
                                        &key, NULL, &error), ==, RECHAIN_LUKS_WRONG_KEY);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED);
  g_clear_error (&error);
  /* key material past a short area buffer: an error, not a wrong key */
  g_assert_cmpint (rechain_luks_unlock (&h, area, 4096, (const guint8 *) "x", 1,
                                        &key, NULL, &error), ==, RECHAIN_LUKS_UNLOCK_FAILED);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  g_clear_error (&error);

  /* no active slot: no passphrase can open it */
  put32 (buf + SLOT (0, 0), RECHAIN_LUKS_SLOT_DISABLED);
  g_assert_true (rechain_luks_header_parse (buf, sizeof buf, AREA_SECTORS * 512, &h, &error));
  g_assert_cmpint (rechain_luks_unlock (&h, area, AREA_SECTORS * 512, (const guint8 *) "x", 1,
                                        &key, NULL, &error), ==, RECHAIN_LUKS_WRONG_KEY);
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED);
  g_clear_error (&error);

  /* twofish-192 exists in LUKS, not in libgcrypt; cast5 has no XTS */
  valid_header (buf);
  put_name (buf, 8, "twofish");
  put32 (buf + 108, 48);
  expect_unsupported (buf);
  put_name (buf, 8, "cast5");
  put32 (buf + 108, 32);
  expect_unsupported (buf);
  /* essiv with sha1 (20 bytes): no AES key of that size */
  valid_header (buf);
  put_name (buf, 40, "cbc-essiv:sha1");
  put32 (buf + 108, 32);
  expect_unsupported (buf);
}

/* The program named by environment variable @env, else @name from PATH. */
static char *
find_tool (const char *env, const char *name)
{
  const char *v = g_getenv (env);
  return v ? g_strdup (v) : g_find_program_in_path (name);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  qemu_img = find_tool ("QEMU_IMG", "qemu-img");
  qemu_io = find_tool ("QEMU_IO", "qemu-io");
  if (!qemu_img || !qemu_io)
    {
      /* QEMU is the oracle of these tests: without it they cannot pass. */
      g_printerr ("qemu-img/qemu-io not found (install qemu-utils)\n");
      return 1;
    }
  tmpdir = qemu_fixture_tmpdir_new ();

  g_test_add_func ("/format/luks/crafted-valid", test_crafted_valid);
  for (gsize i = 0; i < G_N_ELEMENTS (corruptions); i++)
    {
      g_autofree char *path = g_strconcat ("/format/luks/hostile/", corruptions[i].name, NULL);
      g_test_add_data_func (path, &corruptions[i], test_corrupt);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree char *path = g_strconcat ("/format/luks/qemu/", variants[i].name, NULL);
      g_test_add_data_func (path, &variants[i], test_variant);
    }
  g_test_add_func ("/format/luks/qemu/key-slots", test_slots);

  ret = g_test_run ();
  qemu_fixture_tmpdir_free (tmpdir);
  return ret;
}
