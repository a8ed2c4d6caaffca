/* test-compress.c: decompression of compressed clusters (zlib raw deflate and
 * zstd), including the sector-rounded trailing garbage QEMU leaves and
 * corrupt or truncated streams.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <zlib.h>
#if HAVE_ZSTD
#include <zstd.h>
#endif

#include "format/qcow2.h"

#define GUARD 64

/* Compressible but not trivial data. */
static guint8 *
make_data (gsize len, guint32 seed)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  guint8 *d = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    d[i] = (i % 7 == 0) ? (guint8) g_rand_int_range (rand, 0, 256) : (guint8) ("qcow2"[i % 5]);
  return d;
}

/* Raw deflate with QEMU's 4 KiB window; the result is padded to a whole
 * number of sectors with random bytes, as on disk. */
static guint8 *
zlib_compress (const guint8 *in, gsize in_len, gsize *out_len)
{
  z_stream z = { 0 };
  gsize cap = deflateBound (&z, in_len) + 1024;
  guint8 *out = g_malloc (cap + 512);
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  gsize n;

  g_assert_cmpint (deflateInit2 (&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY), ==, Z_OK);
  z.next_in = (Bytef *) in;
  z.avail_in = (uInt) in_len;
  z.next_out = out;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, Z_FINISH), ==, Z_STREAM_END);
  n = cap - z.avail_out;
  deflateEnd (&z);
  *out_len = (n + 511) & ~(gsize) 511;
  for (gsize i = n; i < *out_len; i++)
    out[i] = (guint8) g_rand_int_range (rand, 0, 256);
  return out;
}

static gboolean
decompress_checked (RechainQcow2CompressionType type, const guint8 *in,
                    gsize in_len, gsize out_len, const guint8 *expect,
                    GError **error)
{
  g_autofree guint8 *out = g_malloc (out_len + GUARD);
  gboolean ok;

  memset (out, 0xa5, out_len + GUARD);
  ok = rechain_qcow2_decompress (type, in, in_len, out, out_len, error);
  /* never a byte past out_len */
  for (gsize i = out_len; i < out_len + GUARD; i++)
    g_assert_cmpuint (out[i], ==, 0xa5);
  if (ok && expect != NULL)
    g_assert_cmpmem (out, out_len, expect, out_len);
  return ok;
}

static void
expect_invalid (RechainQcow2CompressionType type, const guint8 *in,
                gsize in_len, gsize out_len, const char *substring)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (decompress_checked (type, in, in_len, out_len, NULL, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE);
  if (strstr (error->message, substring) == NULL)
    g_error ("\"%s\" lacks \"%s\"", error->message, substring);
}

static void
test_zlib (void)
{
  static const gsize sizes[] = { 512, 4096, 65536, 2 * 1024 * 1024 };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree guint8 *data = make_data (sizes[i], (guint32) i);
      g_autofree guint8 *c = NULL;
      g_autoptr (GError) error = NULL;
      gsize clen;

      c = zlib_compress (data, sizes[i], &clen);
      g_assert_true (decompress_checked (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, clen, sizes[i], data, &error));
      g_assert_no_error (error);

      /* A shorter output is fine: decoding stops when the buffer is full. */
      g_assert_true (decompress_checked (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, clen, sizes[i] / 2, data, &error));
      g_assert_no_error (error);

      /* More output than the stream holds */
      expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, clen, sizes[i] + 1, "too short");

      /* Truncated input */
      expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, clen / 4, sizes[i], "too short");
      expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, 0, sizes[i], "too short");

      /* Invalid block type (BTYPE 11) */
      c[0] = 0xff;
      expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZLIB, c, clen, sizes[i], "zlib");
    }
}

#if HAVE_ZSTD
static guint8 *
zstd_compress (const guint8 *in, gsize in_len, gsize *out_len, gsize frames)
{
  gsize cap = ZSTD_compressBound (in_len) * frames + 1024;
  guint8 *out = g_malloc0 (cap);
  gsize pos = 0, chunk = in_len / frames;

  for (gsize f = 0; f < frames; f++)
    {
      gsize len = f == frames - 1 ? in_len - f * chunk : chunk;
      gsize r = ZSTD_compress (out + pos, cap - pos, in + f * chunk, len, 3);

      g_assert_false (ZSTD_isError (r));
      pos += r;
    }
  *out_len = (pos + 511) & ~(gsize) 511;
  g_assert_cmpuint (*out_len, <=, cap);
  memset (out + pos, 0x5a, *out_len - pos);
  return out;
}
#endif

static void
test_zstd (void)
{
#if HAVE_ZSTD
  static const gsize sizes[] = { 512, 4096, 65536, 2 * 1024 * 1024 };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    for (gsize frames = 1; frames <= 3; frames++)
      {
        g_autofree guint8 *data = make_data (sizes[i], (guint32) (i + 100));
        g_autofree guint8 *c = NULL;
        g_autoptr (GError) error = NULL;
        gsize clen;

        c = zstd_compress (data, sizes[i], &clen, frames);
        g_assert_true (decompress_checked (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, clen, sizes[i], data, &error));
        g_assert_no_error (error);

        g_assert_true (decompress_checked (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, clen, sizes[i] / 3, data, &error));
        g_assert_no_error (error);

        /* the trailing padding is not a frame: asking for more fails */
        expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, clen, sizes[i] + 1, "zstd");
        expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, clen / 3, sizes[i], "too short");
        expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, 0, sizes[i], "too short");
        expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, 3, sizes[i], "too short");

        /* bad magic */
        c[0] ^= 0xff;
        expect_invalid (RECHAIN_QCOW2_COMPRESSION_ZSTD, c, clen, sizes[i], "zstd compressed cluster is corrupt");
      }
#else
  g_autoptr (GError) error = NULL;
  guint8 in[16] = { 0 }, out[16];

  g_assert_false (rechain_qcow2_decompress (RECHAIN_QCOW2_COMPRESSION_ZSTD, in, 16, out, 16, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED);
#endif
}

static void
test_unknown_type (void)
{
  g_autoptr (GError) error = NULL;
  guint8 in[16] = { 0 }, out[16];

  g_assert_false (rechain_qcow2_decompress ((RechainQcow2CompressionType) 7, in, 16, out, 16, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED);
}

static void
test_random_input (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (2024);
  guint8 in[1024];

  for (int iter = 0; iter < 5000; iter++)
    {
      g_autoptr (GError) error = NULL;
      RechainQcow2CompressionType type = iter % 2 ? RECHAIN_QCOW2_COMPRESSION_ZSTD
                                                  : RECHAIN_QCOW2_COMPRESSION_ZLIB;
      gsize in_len = (gsize) g_rand_int_range (rand, 0, sizeof in + 1);

      for (gsize i = 0; i < sizeof in; i++)
        in[i] = (guint8) g_rand_int (rand);
      /* a zstd magic now and then, to get past the first check */
      if (type == RECHAIN_QCOW2_COMPRESSION_ZSTD && iter % 4 == 1)
        memcpy (in, "\x28\xb5\x2f\xfd", 4);
      if (!decompress_checked (type, in, in_len, 4096, NULL, &error))
        {
          g_assert_nonnull (error);
          g_assert_true (error->domain == RECHAIN_ERROR);
#if HAVE_ZSTD
          g_assert_cmpint (error->code, ==, RECHAIN_ERROR_INVALID_IMAGE);
#endif
        }
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/format/compress/zlib", test_zlib);
  g_test_add_func ("/format/compress/zstd", test_zstd);
  g_test_add_func ("/format/compress/unknown-type", test_unknown_type);
  g_test_add_func ("/format/compress/random-input", test_random_input);

  return g_test_run ();
}
