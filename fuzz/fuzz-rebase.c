/* fuzz-rebase: a whole safe rebase of a fuzzed overlay onto a fixed
 * backing file, in a private temporary directory.
 *
 * The input is written to top.qcow2 next to base.qcow2, base.raw and
 * new.qcow2 (-> base.raw); seeds are overlays of base.qcow2. rechain then
 * does what `rechain rebase -b new.qcow2 -F qcow2 top.qcow2` does (with -c
 * when the input length is odd), then flattens it (`-b ""`).
 *
 * Properties: every failure is a rechain GError; a failed rebase leaves the
 * overlay (and its data file) byte for byte as it was, since everything
 * that can refuse a crafted image is checked before the first write; when
 * the guest content of the overlay could be read before (virtual size up to
 * 4 MiB), a successful rebase keeps it; the rebased image opens again. FUZZ_REBASE_STRICT=0 turns the content
 * check off (faster, crashes and errors only). The check found crafted
 * images in which a metadata cluster was also mapped as guest data; the
 * writer refuses those now (fuzz/regression/rebase/, the two
 * inputs named ...-is-guest-data).
 *
 * An external data file may only be called top.data (an empty one is
 * provided), so a fuzzed name never makes the rebase write into the fixed
 * images or outside the directory.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "chain/chain.h"
#include "job/rebase.h"

#define MAX_COMPARED (4u * 1024 * 1024)

/* The overlay's guest content through its chain, or NULL. */
static guint8 *
read_content (const char *path, guint64 *vsize)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  guint8 *buf;

  chain = rechain_chain_open (path, "qcow2", RECHAIN_CHAIN_OPEN_DEFAULT,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (!chain)
    return NULL;
  *vsize = rechain_layer_get_virtual_size (rechain_chain_get_top (chain));
  if (*vsize > MAX_COMPARED)
    return NULL;
  buf = g_malloc (MAX (*vsize, 1));
  if (!rechain_chain_read (chain, 0, 0, buf, (gsize) *vsize, &error))
    {
      g_free (buf);
      return NULL;
    }
  return buf;
}

/* The bytes of @path, or NULL if it cannot be read. */
static GBytes *
file_bytes (const char *path)
{
  char *contents = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &contents, &length, NULL))
    return NULL;
  return g_bytes_new_take (contents, length);
}

static void
rebase_to (const char *path, const char *data_path, const char *backing, const char *format,
           gboolean compress)
{
  const char *images[] = { path, NULL };
  RechainRebaseOptions opts = {
    .images = images,
    .backing_file = backing,
    .backing_format = format,
    .cache = RECHAIN_CACHE_WRITEBACK,
    .source_cache = RECHAIN_CACHE_WRITEBACK,
    .compress = compress,
  };
  g_autoptr(RechainRebaseReport) report = rechain_rebase_report_new ();
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *before = NULL;
  g_autofree guint8 *after = NULL;
  g_autoptr(GBytes) image_before = file_bytes (path);
  g_autoptr(GBytes) data_before = file_bytes (data_path);
  guint64 vsize = 0, vsize2 = 0;
  gboolean ok;

  static int strict = -1;

  if (strict < 0)
    strict = g_strcmp0 (g_getenv ("FUZZ_REBASE_STRICT"), "0") != 0;
  if (strict)
    before = read_content (path, &vsize);
  ok = rechain_rebase_safe (&opts, report, NULL, NULL, NULL, &error);
  if (!ok)
    {
      g_autoptr(GBytes) image_after = file_bytes (path);
      g_autoptr(GBytes) data_after = file_bytes (data_path);

      fuzz_check_error (error, "safe rebase");
      if (!image_before || !image_after || !g_bytes_equal (image_before, image_after) ||
          !data_before || !data_after || !g_bytes_equal (data_before, data_after))
        FUZZ_BUG ("failed rebase onto '%s' (%s) changed bytes of the image or its data file",
                  backing, error->message);
    }
  if (before)
    after = read_content (path, &vsize2);
  if (before)
    {
      if (!after)
        FUZZ_BUG ("%s rebase onto '%s': the image no longer opens or reads",
                  ok ? "successful" : "failed", backing);
      if (vsize != vsize2 || memcmp (before, after, (gsize) vsize) != 0)
        FUZZ_BUG ("%s rebase onto '%s' changed the guest content",
                  ok ? "successful" : "failed", backing);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *path = NULL;
  g_autofree char *data_path = NULL;
  g_autoptr(RechainQcow2Header) h = NULL;
  gboolean compress = (size & 1) != 0;

  fuzz_init ();

  h = rechain_qcow2_header_parse (data, size, size, NULL);
  if (h && h->data_file && strcmp (h->data_file, "top.data") != 0)
    return 0;

  path = fuzz_write_file ("top.qcow2", data, size);
  data_path = fuzz_write_file ("top.data", (const uint8_t *) "", 0);

  rebase_to (path, data_path, "new.qcow2", "qcow2", compress);
  rebase_to (path, data_path, "", NULL, FALSE);
  return 0;
}
