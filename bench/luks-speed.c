/* luks-speed: how fast rechain's LUKS layer (src/format/luks-*.c, over
 * libgcrypt) runs on this machine.
 *
 *   luks-speed [--mib N]                 sector cipher throughput, 512-byte
 *                                        sectors, each variant LUKS qcow2 uses
 *   luks-speed IMAGE PASSPHRASE          also: parse IMAGE's LUKS header and
 *                                        time unlocking it (PBKDF2 of the slot
 *                                        that opens, AF merge, digest check)
 *
 * Make IMAGE with qemu-img's default iter-time (2 s) to see what an unlock
 * costs in practice:
 *   qemu-img create -f qcow2 --object secret,id=s0,data=PASS \
 *     -o encrypt.format=luks,encrypt.key-secret=s0 img.qcow2 1M
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <gcrypt.h>

#include "format/qcow2.h"
#include "format/luks-header.h"
#include "format/luks-key.h"
#include "format/luks-cipher.h"

/* CPU seconds of this thread: on a shared machine, wall time measures the
 * neighbours too, so the figures are per CPU-second. */
static double
cpu_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
  const char *name, *cipher, *mode, *hash;
  guint key_bytes;
} Variant;

static const Variant variants[] = {
  { "aes-256-xts-plain64", "aes", "xts-plain64", "sha256", 64 },
  { "aes-128-xts-plain64", "aes", "xts-plain64", "sha256", 32 },
  { "aes-256-cbc-essiv:sha256", "aes", "cbc-essiv:sha256", "sha256", 32 },
  { "aes-256-cbc-plain64", "aes", "cbc-plain64", "sha256", 32 },
  { "serpent-256-xts-plain64", "serpent", "xts-plain64", "sha256", 64 },
  { "twofish-256-xts-plain64", "twofish", "xts-plain64", "sha256", 64 },
  { "cast5-128-cbc-plain64", "cast5", "cbc-plain64", "sha256", 16 },
};

static void
put_name (guint8 *buf, gsize off, const char *name)
{
  memset (buf + off, 0, 32);
  memcpy (buf + off, name, strlen (name));
}

static void
put32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_BE (v);
  memcpy (p, &v, 4);
}

/* A header of variant @v (slot material layout as QEMU writes it). */
static void
make_header (const Variant *v, RechainLuksHeader *h)
{
  static const guint8 magic[] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
  guint8 buf[RECHAIN_LUKS_HEADER_SIZE] = { 0 };
  guint per_slot = ((v->key_bytes * 4000 + 511) / 512 + 7) / 8 * 8;
  g_autoptr(GError) error = NULL;

  memcpy (buf, magic, 6);
  buf[7] = 1;
  put_name (buf, 8, v->cipher);
  put_name (buf, 40, v->mode);
  put_name (buf, 72, v->hash);
  put32 (buf + 104, 8 + per_slot * 8);
  put32 (buf + 108, v->key_bytes);
  put32 (buf + 164, 1000);
  for (guint i = 0; i < 8; i++)
    {
      put32 (buf + 208 + 48 * i, RECHAIN_LUKS_SLOT_DISABLED);
      put32 (buf + 208 + 48 * i + 40, 8 + per_slot * i);
      put32 (buf + 208 + 48 * i + 44, 4000);
    }
  if (!rechain_luks_header_parse (buf, sizeof buf, (8 + per_slot * 8) * 512, h, &error))
    g_error ("%s: %s", v->name, error->message);
}

static void
bench_cipher (const Variant *v, gsize mib)
{
  const gsize chunk = 4 << 20;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainLuksCipher) c = NULL;
  g_autofree guint8 *buf = g_malloc (chunk);
  guint8 key[64];
  RechainLuksHeader h;
  double t_enc = 0, t_dec = 0, t0;

  make_header (v, &h);
  gcry_randomize (key, sizeof key, GCRY_STRONG_RANDOM);
  c = rechain_luks_cipher_new (&h, key, h.key_bytes, &error);
  if (!c)
    g_error ("%s: %s", v->name, error->message);
  memset (buf, 0x5a, chunk);
  for (gsize done = 0, sector = 1 << 20; done < mib << 20; done += chunk, sector += chunk / 512)
    {
      t0 = cpu_now ();
      if (!rechain_luks_cipher_encrypt (c, sector, buf, chunk, &error))
        g_error ("%s", error->message);
      t_enc += cpu_now () - t0;
      t0 = cpu_now ();
      if (!rechain_luks_cipher_decrypt (c, sector, buf, chunk, &error))
        g_error ("%s", error->message);
      t_dec += cpu_now () - t0;
    }
  printf ("%-26s encrypt %7.0f MB/s  decrypt %7.0f MB/s  per CPU-second (%zu MiB, 512-byte sectors)\n",
          v->name, (mib << 20) / t_enc / 1e6, (mib << 20) / t_dec / 1e6, mib);
}

static void
bench_unlock (const char *path, const char *pass)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMappedFile) mf = g_mapped_file_new (path, FALSE, &error);
  g_autoptr(RechainQcow2Header) qh = NULL;
  const guint8 *data;
  gsize size;
  RechainLuksHeader h;
  guint8 *key = NULL;
  guint slot = 0;
  gint64 t0;
  double secs, cpu0, cpu;

  if (!mf)
    g_error ("%s", error->message);
  data = (const guint8 *) g_mapped_file_get_contents (mf);
  size = g_mapped_file_get_length (mf);
  qh = rechain_qcow2_header_parse (data, size, size, &error);
  if (!qh)
    g_error ("%s: %s", path, error->message);
  if (!rechain_luks_header_parse (data + qh->crypto_header_offset, qh->crypto_header_length,
                                  qh->crypto_header_length, &h, &error))
    g_error ("%s: %s", path, error->message);
  t0 = g_get_monotonic_time ();
  cpu0 = cpu_now ();
  if (rechain_luks_unlock (&h, data + qh->crypto_header_offset, qh->crypto_header_length,
                           (const guint8 *) pass, strlen (pass), &key, &slot, &error)
      != RECHAIN_LUKS_UNLOCKED)
    g_error ("%s: %s", path, error->message);
  cpu = cpu_now () - cpu0;
  secs = (g_get_monotonic_time () - t0) / 1e6;
  printf ("unlock %s (%s-%s, %s): slot %u, %u + %u PBKDF2 iterations, %.2f s CPU (%.2f s wall)\n",
          path, h.cipher_name, h.cipher_mode, h.hash_spec, slot,
          h.slots[slot].iterations, h.mk_iterations, cpu, secs);
  rechain_luks_key_free (key, h.key_bytes);
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  gsize mib = 256;
  int i = 1;

  if (argc > 2 && strcmp (argv[1], "--mib") == 0)
    {
      mib = MAX (4, (gsize) g_ascii_strtoull (argv[2], NULL, 10) / 4 * 4);
      i = 3;
    }
  if (!rechain_luks_crypto_init (&error))
    g_error ("%s", error->message);
  printf ("libgcrypt %s\n", gcry_check_version (NULL));
  for (gsize v = 0; v < G_N_ELEMENTS (variants); v++)
    bench_cipher (&variants[v], v == 0 ? mib : MAX (4, mib / 4));
  if (argc - i >= 2)
    bench_unlock (argv[i], argv[i + 1]);
  return 0;
}
