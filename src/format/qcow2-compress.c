/* qcow2-compress.c: compressed clusters (zlib raw deflate or zstd):
 * deflating one for writers, inflating one for readers. The stored length of a compressed cluster is rounded up to whole
 * sectors, so the input usually carries trailing bytes after the stream;
 * decoding stops as soon as a full cluster has been produced.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <zlib.h>
#if HAVE_ZSTD
#include <zstd.h>
#include <zstd_errors.h>
#endif

#include "format/qcow2.h"
#include "rechain/rechain-i18n-private.h"

/* QEMU compresses with a 4 KiB window (raw deflate, no zlib header). */
#define ZLIB_WINDOW_BITS (-12)

static gboolean
decompress_zlib (const guint8 *in, gsize in_len, guint8 *out, gsize out_len,
                 GError **error)
{
  z_stream z = { 0 };
  int ret;

  /* zlib counts in uInt; a cluster is at most 2 MiB, and trailing input is
   * ignored anyway, so clamping the input is harmless. */
  if (out_len > G_MAXUINT)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("compressed cluster output of %zu bytes is too large"),
                   out_len);
      return FALSE;
    }
  if (in_len > G_MAXUINT)
    in_len = G_MAXUINT;

  ret = inflateInit2 (&z, ZLIB_WINDOW_BITS);
  if (ret != Z_OK)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                   _("cannot initialise zlib (error %d)"), ret);
      return FALSE;
    }
  z.next_in = (Bytef *) in;
  z.avail_in = (uInt) in_len;
  z.next_out = out;
  z.avail_out = (uInt) out_len;

  /* One call does all the work: Z_FINISH with all input and output given.
   * A full output buffer is success whether or not the stream's end marker
   * was reached (Z_STREAM_END or Z_BUF_ERROR). */
  ret = inflate (&z, Z_FINISH);
  inflateEnd (&z);

  if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0)
    return TRUE;
  if (ret == Z_STREAM_END || ret == Z_BUF_ERROR)
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("zlib compressed cluster is too short: %zu of %zu bytes "
                 "produced from %zu input bytes"), out_len - z.avail_out,
                 out_len, in_len);
  else
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                 _("zlib compressed cluster is corrupt (%s, zlib error %d)"),
                 z.msg != NULL ? z.msg : _("no message"), ret);
  return FALSE;
}

#if HAVE_ZSTD
static gboolean
decompress_zstd (const guint8 *in, gsize in_len, guint8 *out, gsize out_len,
                 GError **error)
{
  ZSTD_DCtx *dctx;
  ZSTD_inBuffer input = { in, in_len, 0 };
  ZSTD_outBuffer output = { out, out_len, 0 };
  gboolean ok = FALSE;

  dctx = ZSTD_createDCtx ();
  if (dctx == NULL)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                   _("cannot allocate a zstd decompression context"));
      return FALSE;
    }

  /* The data may span several frames (QEMU's streaming compressor can emit
   * more than one), so keep feeding input until the cluster is full. The
   * decoder never writes beyond output.size. */
  while (output.pos < output.size)
    {
      gsize in_before = input.pos, out_before = output.pos;
      gsize ret = ZSTD_decompressStream (dctx, &output, &input);

      if (ZSTD_isError (ret))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("zstd compressed cluster is corrupt (%s)"),
                       ZSTD_getErrorName (ret));
          goto out;
        }
      if (output.pos == output.size)
        break;
      /* Out of input with room left in the output, or no progress at all
       * (the decoder needs input we do not have): the stream is too short. */
      if (input.pos == input.size ||
          (input.pos == in_before && output.pos == out_before))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("zstd compressed cluster is too short: %zu of %zu "
                       "bytes produced from %zu input bytes"), output.pos,
                       out_len, in_len);
          goto out;
        }
    }
  ok = TRUE;

out:
  ZSTD_freeDCtx (dctx);
  return ok;
}
#endif

gboolean
rechain_qcow2_decompress (RechainQcow2CompressionType type,
                          const guint8 *in,
                          gsize in_len,
                          guint8 *out,
                          gsize out_len,
                          GError **error)
{
  g_return_val_if_fail (in != NULL || in_len == 0, FALSE);
  g_return_val_if_fail (out != NULL || out_len == 0, FALSE);

  switch (type)
    {
    case RECHAIN_QCOW2_COMPRESSION_ZLIB:
      return decompress_zlib (in, in_len, out, out_len, error);
    case RECHAIN_QCOW2_COMPRESSION_ZSTD:
#if HAVE_ZSTD
      return decompress_zstd (in, in_len, out, out_len, error);
#else
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("zstd compression is not supported by this build"));
      return FALSE;
#endif
    default:
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("compression_type %d is not supported"), (int) type);
      return FALSE;
    }
}

/* ---- compression, for writers ---- */

gboolean
rechain_qcow2_compress (RechainQcow2CompressionType type, const guint8 *in, gsize len,
                        guint8 *out, gsize out_cap, gsize *out_len, GError **error)
{
  if (type == RECHAIN_QCOW2_COMPRESSION_ZLIB)
    {
      z_stream z = { 0 };
      int ret;

      if (deflateInit2 (&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, ZLIB_WINDOW_BITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED, _("zlib initialization failed"));
          return FALSE;
        }
      z.next_in = (Bytef *) in;
      z.avail_in = (uInt) len;
      z.next_out = out;
      z.avail_out = (uInt) out_cap;
      ret = deflate (&z, Z_FINISH);
      *out_len = out_cap - z.avail_out;
      deflateEnd (&z);
      return ret == Z_STREAM_END;
    }
#if HAVE_ZSTD
  if (type == RECHAIN_QCOW2_COMPRESSION_ZSTD)
    {
      size_t n = ZSTD_compress (out, out_cap, in, len, 1);
      if (ZSTD_isError (n))
        {
          if (ZSTD_getErrorCode (n) == ZSTD_error_dstSize_tooSmall)
            return FALSE;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                       _("zstd compression failed: %s"), ZSTD_getErrorName (n));
          return FALSE;
        }
      *out_len = n;
      return TRUE;
    }
#endif
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
               _("compression type %d is not supported"), type);
  return FALSE;
}
