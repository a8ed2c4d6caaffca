/* luks-speed: how fast rechain's LUKS layer (src/format/luks-*.c, over
 * libgcrypt) runs on this machine.
 *
 *   luks-speed [--mib N]                 sector cipher throughput, 512-byte
 *                                        sectors, each variant LUKS qcow2 uses
 *   luks-speed IMAGE PASSPHRASE          also: parse IMAGE's LUKS header and
 *                                        time unlocking it (PBKDF2 of the slot
 *                                        that opens, AF merge, digest check)
 *
 * and, for bench/run-bench (one JSON line on stdout, "seconds" is the time
 * the bench uses):
 *
 *   luks-speed --floor DIR COMPARE COPY [THREADS]
 *        the least an encrypted rebase can cost on this machine: decrypt
 *        COMPARE bytes of guest data as two files hold them (two keys) and
 *        memcmp them, then decrypt COPY bytes with one key, encrypt them
 *        with another at another sector and write them into a new file in
 *        DIR, then fdatasync it. aes-256-xts-plain64, 512-byte sectors,
 *        THREADS threads (default: the CPUs) each taking every THREADS-th
 *        1 MiB chunk; a memcpy from a page-aligned buffer stands for each
 *        read. No file reads, no qcow2 metadata: below any real rebase.
 *   luks-speed --unlock IMAGE KEYFILE [IMAGE KEYFILE...]
 *        unlock each IMAGE with the passphrase in KEYFILE, one after another
 *        (each alone on the machine); "seconds" is the slowest one's wall
 *        time, "cpu-seconds" their summed CPU time.
 *   luks-speed --unlock-parallel IMAGE KEYFILE [IMAGE KEYFILE...]
 *        the same unlocks on one thread each, all at once; "seconds" is the
 *        wall time until the last is done.
 *
 * Make IMAGE with qemu-img's default iter-time (2 s) to see what an unlock
 * costs in practice:
 *   qemu-img create -f qcow2 --object secret,id=s0,data=PASS \
 *     -o encrypt.format=luks,encrypt.key-secret=s0 img.qcow2 1M
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
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

/* Parses IMAGE's LUKS header and unlocks it with @pass (the master key is
 * wiped at once): its CPU and wall time. Aborts on any failure. */
static void
unlock_image (const char *path, const char *pass, gsize pass_len, gboolean print,
              double *cpu_out, double *wall_out)
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
                           (const guint8 *) pass, pass_len, &key, &slot, &error)
      != RECHAIN_LUKS_UNLOCKED)
    g_error ("%s: %s", path, error->message);
  cpu = cpu_now () - cpu0;
  secs = (g_get_monotonic_time () - t0) / 1e6;
  if (print)
    printf ("unlock %s (%s-%s, %s): slot %u, %u + %u PBKDF2 iterations, %.2f s CPU (%.2f s wall)\n",
            path, h.cipher_name, h.cipher_mode, h.hash_spec, slot,
            h.slots[slot].iterations, h.mk_iterations, cpu, secs);
  rechain_luks_key_free (key, h.key_bytes);
  if (cpu_out)
    *cpu_out = cpu;
  if (wall_out)
    *wall_out = secs;
}

static void
bench_unlock (const char *path, const char *pass)
{
  unlock_image (path, pass, strlen (pass), TRUE, NULL, NULL);
}

/* --unlock / --unlock-parallel */
typedef struct {
  const char *path;
  char *pass;
  gsize pass_len;
  double cpu, wall;
} UnlockJob;

static gpointer
unlock_thread (gpointer data)
{
  UnlockJob *j = data;

  unlock_image (j->path, j->pass, j->pass_len, FALSE, &j->cpu, &j->wall);
  return NULL;
}

static int
run_unlocks (int n, char **args, gboolean parallel)
{
  g_autofree UnlockJob *jobs = g_new0 (UnlockJob, n);
  g_autofree GThread **threads = g_new0 (GThread *, n);
  GString *out = g_string_new (NULL);
  double max_wall = 0, sum_cpu = 0, t0;

  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;

      jobs[i].path = args[2 * i];
      if (!g_file_get_contents (args[2 * i + 1], &jobs[i].pass, &jobs[i].pass_len, &error))
        g_error ("%s", error->message);
    }
  t0 = g_get_monotonic_time () / 1e6;
  for (int i = 0; i < n; i++)
    {
      if (parallel)
        threads[i] = g_thread_new ("unlock", unlock_thread, &jobs[i]);
      else
        unlock_thread (&jobs[i]);
    }
  for (int i = 0; parallel && i < n; i++)
    g_thread_join (threads[i]);
  g_string_append (out, "{\"layers\": [");
  for (int i = 0; i < n; i++)
    {
      g_string_append_printf (out, "%s{\"image\": \"%s\", \"cpu-seconds\": %.4f, \"wall-seconds\": %.4f}",
                              i ? ", " : "", jobs[i].path, jobs[i].cpu, jobs[i].wall);
      max_wall = MAX (max_wall, jobs[i].wall);
      sum_cpu += jobs[i].cpu;
      explicit_bzero (jobs[i].pass, jobs[i].pass_len);
      g_free (jobs[i].pass);
    }
  g_string_append_printf (out, "], \"cpu-seconds\": %.4f, \"slowest-layer-seconds\": %.4f, "
                          "\"all-seconds\": %.4f, \"seconds\": %.4f}\n", sum_cpu, max_wall,
                          g_get_monotonic_time () / 1e6 - t0,
                          parallel ? g_get_monotonic_time () / 1e6 - t0 : max_wall);
  fputs (out->str, stdout);
  g_string_free (out, TRUE);
  return 0;
}

/* --floor: see the top of the file. */
#define FLOOR_CHUNK (1 << 20)

typedef struct {
  guint index, n_threads;
  guint64 compare, copy;
  int fd;
  RechainLuksHeader h;
  const guint8 *key_a, *key_b;
  guint64 differing;
} FloorJob;

static gpointer
floor_thread (gpointer data)
{
  FloorJob *j = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainLuksCipher) a = rechain_luks_cipher_new (&j->h, j->key_a, j->h.key_bytes, &error);
  g_autoptr(RechainLuksCipher) b = rechain_luks_cipher_new (&j->h, j->key_b, j->h.key_bytes, &error);
  /* page-aligned, as the page cache's pages are: the ciphertext of one
   * chunk of guest data under each key, and two work buffers */
  guint8 *m = mmap (NULL, 4 * FLOOR_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  guint8 *ca = m, *cb = m + FLOOR_CHUNK, *x = m + 2 * FLOOR_CHUNK, *y = m + 3 * FLOOR_CHUNK;

  if (!a || !b || m == MAP_FAILED)
    g_error ("floor: %s", error ? error->message : g_strerror (errno));
  for (gsize i = 0; i < FLOOR_CHUNK; i++)
    ca[i] = cb[i] = (guint8) (i * 7 + i / 4096);
  if (!rechain_luks_cipher_encrypt (a, 4096, ca, FLOOR_CHUNK, &error) ||
      !rechain_luks_cipher_encrypt (b, 8192, cb, FLOOR_CHUNK, &error))
    g_error ("floor: %s", error->message);
  /* the compare: the same guest data in two files under two keys, equal,
   * so memcmp runs to the end. A memcpy stands for each read (a read from
   * the page cache is at least that copy). */
  for (guint64 off = (guint64) j->index * FLOOR_CHUNK; off < j->compare;
       off += (guint64) j->n_threads * FLOOR_CHUNK)
    {
      gsize n = MIN (FLOOR_CHUNK, j->compare - off);
      memcpy (x, ca, n);
      memcpy (y, cb, n);
      if (!rechain_luks_cipher_decrypt (a, 4096, x, n, &error) ||
          !rechain_luks_cipher_decrypt (b, 8192, y, n, &error))
        g_error ("floor: %s", error->message);
      if (memcmp (x, y, n) != 0)
        j->differing += n;
    }
  /* the copy: read, decrypt with the source's key at its host sector,
   * encrypt with the destination's at another, write */
  for (guint64 off = (guint64) j->index * FLOOR_CHUNK; off < j->copy;
       off += (guint64) j->n_threads * FLOOR_CHUNK)
    {
      gsize n = MIN (FLOOR_CHUNK, j->copy - off);
      memcpy (x, ca, n);
      if (!rechain_luks_cipher_decrypt (a, 4096, x, n, &error) ||
          !rechain_luks_cipher_encrypt (b, 8192 + off / 512, x, n, &error))
        g_error ("floor: %s", error->message);
      for (gsize done = 0; done < n;)
        {
          ssize_t w = pwrite (j->fd, x + done, n - done, off + done);
          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            g_error ("floor: write: %s", g_strerror (errno));
          done += w;
        }
    }
  munmap (m, 4 * FLOOR_CHUNK);
  return NULL;
}

static int
run_floor (const char *dir, guint64 compare, guint64 copy, guint n_threads)
{
  g_autofree char *path = g_build_filename (dir, ".floor-crypt", NULL);
  g_autofree FloorJob *jobs = g_new0 (FloorJob, n_threads);
  g_autofree GThread **threads = g_new0 (GThread *, n_threads);
  guint8 key_a[64], key_b[64];
  guint64 differing = 0;
  RechainLuksHeader h;
  gint64 t0;
  double secs;
  int fd;

  make_header (&variants[0], &h);
  gcry_randomize (key_a, sizeof key_a, GCRY_STRONG_RANDOM);
  gcry_randomize (key_b, sizeof key_b, GCRY_STRONG_RANDOM);
  t0 = g_get_monotonic_time ();
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    g_error ("%s: %s", path, g_strerror (errno));
  for (guint i = 0; i < n_threads; i++)
    {
      jobs[i] = (FloorJob) { i, n_threads, compare, copy, fd, h, key_a, key_b, 0 };
      threads[i] = g_thread_new ("floor", floor_thread, &jobs[i]);
    }
  for (guint i = 0; i < n_threads; i++)
    {
      g_thread_join (threads[i]);
      differing += jobs[i].differing;
    }
  if (fdatasync (fd) < 0)
    g_error ("%s: fdatasync: %s", path, g_strerror (errno));
  close (fd);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  unlink (path);
  printf ("{\"compare-bytes\": %" G_GUINT64_FORMAT ", \"copy-bytes\": %" G_GUINT64_FORMAT
          ", \"threads\": %u, \"differing-bytes\": %" G_GUINT64_FORMAT ", \"seconds\": %.6f}\n",
          compare, copy, n_threads, differing, secs);
  return 0;
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  gsize mib = 256;
  int i = 1;

  if (argc > 1 && (strcmp (argv[1], "--unlock") == 0 || strcmp (argv[1], "--unlock-parallel") == 0) && argc >= 4 && argc % 2 == 0)
    {
      if (!rechain_luks_crypto_init (&error))
        g_error ("%s", error->message);
      return run_unlocks ((argc - 2) / 2, argv + 2, strcmp (argv[1], "--unlock-parallel") == 0);
    }
  if (argc >= 5 && strcmp (argv[1], "--floor") == 0)
    {
      if (!rechain_luks_crypto_init (&error))
        g_error ("%s", error->message);
      return run_floor (argv[2], g_ascii_strtoull (argv[3], NULL, 10),
                        g_ascii_strtoull (argv[4], NULL, 10),
                        argc > 5 ? (guint) g_ascii_strtoull (argv[5], NULL, 10)
                                 : MAX (1u, g_get_num_processors ()));
    }
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
