/* fuzz-decompress: the compressed-cluster decoders (raw deflate and zstd)
 * over arbitrary streams, and compress/decompress round trips.
 *
 * Input: byte 0 picks the compression type (bit 0) and the cluster size
 * (512 B << (byte0 >> 1) % 13), the rest is the stream.
 * Properties: a failure is a rechain GError; never more than the cluster
 * is written (the output buffer is exactly the cluster, so ASan catches an
 * overflow); compressing the stream bytes as cluster data and decompressing
 * gives them back.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "format/qcow2.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  RechainQcow2CompressionType type;
  gsize out_len;
  g_autofree guint8 *out = NULL;
  g_autoptr(GError) error = NULL;

  fuzz_init ();
  if (size < 1)
    return 0;
  type = (data[0] & 1) ? RECHAIN_QCOW2_COMPRESSION_ZSTD : RECHAIN_QCOW2_COMPRESSION_ZLIB;
#if !HAVE_ZSTD
  type = RECHAIN_QCOW2_COMPRESSION_ZLIB;
#endif
  out_len = (gsize) 512 << ((data[0] >> 1) % 13);
  data++;
  size--;

  /* exactly out_len bytes: an overflow is a heap-buffer-overflow */
  out = g_malloc (out_len);
  if (!rechain_qcow2_decompress (type, data, size, out, out_len, &error))
    fuzz_check_error (error, "decompress");

  /* round trip of the input as cluster content (zero padded) */
  {
    g_autofree guint8 *plain = g_malloc0 (out_len);
    g_autofree guint8 *packed = g_malloc (out_len);
    g_autofree guint8 *back = g_malloc (out_len);
    g_autoptr(GError) e2 = NULL;
    gsize packed_len = 0;

    memcpy (plain, data, MIN (size, out_len));
    if (rechain_qcow2_compress (type, plain, out_len, packed, out_len - 1, &packed_len, &e2))
      {
        if (packed_len == 0 || packed_len > out_len - 1)
          FUZZ_BUG ("compress returned length %zu for capacity %zu", packed_len, out_len - 1);
        if (!rechain_qcow2_decompress (type, packed, packed_len, back, out_len, &e2))
          FUZZ_BUG ("own compressed cluster does not decompress: %s", e2->message);
        if (memcmp (plain, back, out_len) != 0)
          FUZZ_BUG ("compress/decompress round trip changed the data");
      }
    else if (e2)
      fuzz_check_error (e2, "compress");
  }
  return 0;
}
