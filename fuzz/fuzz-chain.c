/* fuzz-chain: the chain opener, map and read over a fuzzed image.
 *
 * The input is written to top.img in a private directory that also holds
 * fixed images (base.qcow2, new.qcow2 -> base.raw), so a fuzzed backing
 * name can lead to a real chain. The image is opened as the CLI opens it
 * (format probed, locks taken), then its whole guest range is mapped and
 * its first MiB, plus the start of every data extent (up to 4 MiB in all),
 * read through the chain; snapshots and bitmaps are listed.
 *
 * Properties: every failure is a rechain GError; the map covers the range
 * exactly, in order, with depths inside the chain; regions the map calls
 * zero or unallocated read as zeros.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "chain/chain.h"

#define READ_BUDGET (4u * 1024 * 1024)
#define READ_CHUNK (256u * 1024)

static gboolean
all_zero (const guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (p[i])
      return FALSE;
  return TRUE;
}

static void
exercise (RechainChain *chain)
{
  RechainLayer *top = rechain_chain_get_top (chain);
  guint depth = rechain_chain_get_depth (chain);
  guint64 vsize = rechain_layer_get_virtual_size (top);
  g_autoptr(GArray) extents = rechain_extent_list_new ();
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *buf = g_malloc (READ_CHUNK);
  guint64 pos = 0, budget = READ_BUDGET;

  if (depth < 1 || depth > RECHAIN_CHAIN_MAX_DEPTH)
    FUZZ_BUG ("chain of depth %u", depth);
  (void) rechain_chain_get_warnings (chain);

  for (guint i = 0; i < depth; i++)
    {
      RechainLayer *l = rechain_chain_get_layer (chain, i);
      g_autoptr(GError) e2 = NULL;
      GArray *a;
      (void) rechain_layer_get_backing_name (l);
      (void) rechain_layer_get_backing_format (l);
      (void) rechain_layer_get_allocated (l);
      if ((a = rechain_layer_read_snapshots (l, &e2)))
        g_array_unref (a);
      else
        fuzz_check_error (e2, "read snapshots");
      g_clear_error (&e2);
      if ((a = rechain_layer_read_bitmaps (l, &e2)))
        g_array_unref (a);
      else
        fuzz_check_error (e2, "read bitmaps");
    }

  if (!rechain_chain_map (chain, 0, 0, vsize, extents, &error))
    {
      fuzz_check_error (error, "chain map");
      g_clear_error (&error);
    }
  else
    {
      for (guint i = 0; i < extents->len; i++)
        {
          const RechainExtent *e = &g_array_index (extents, RechainExtent, i);
          if (e->offset != pos || e->length == 0)
            FUZZ_BUG ("extent %u at %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                      ", expected offset %" G_GUINT64_FORMAT, i, e->offset, e->length, pos);
          if (e->depth < 0 || (guint) e->depth >= depth)
            FUZZ_BUG ("extent %u has depth %d in a chain of %u", i, e->depth, depth);
          pos += e->length;
        }
      if (pos != vsize)
        FUZZ_BUG ("map covers %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes", pos, vsize);

      /* zero and unallocated extents read as zeros; data extents are read */
      for (guint i = 0; i < extents->len && budget > 0; i++)
        {
          const RechainExtent *e = &g_array_index (extents, RechainExtent, i);
          gsize n = (gsize) MIN (MIN (e->length, (guint64) READ_CHUNK), budget);
          budget -= n;
          if (!rechain_chain_read (chain, 0, e->offset, buf, n, &error))
            {
              fuzz_check_error (error, "chain read");
              g_clear_error (&error);
              continue;
            }
          if (e->kind != RECHAIN_EXTENT_DATA && !all_zero (buf, n))
            FUZZ_BUG ("extent %u (kind %d, depth %d) at %" G_GUINT64_FORMAT
                      " is not data but reads non-zero", i, e->kind, e->depth, e->offset);
        }
    }

  /* the first MiB in odd-sized pieces */
  for (pos = 0; pos < MIN (vsize, (guint64) 1024 * 1024); pos += 65537)
    {
      gsize n = (gsize) MIN ((guint64) 65537, vsize - pos);
      if (!rechain_chain_read (chain, 0, pos, buf, n, &error))
        {
          fuzz_check_error (error, "chain read");
          g_clear_error (&error);
          break;
        }
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  g_autoptr(RechainChain) alone = NULL;

  fuzz_init ();
  path = fuzz_write_file ("top.img", data, size);

  chain = rechain_chain_open (path, NULL, RECHAIN_CHAIN_OPEN_DEFAULT,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (chain)
    exercise (chain);
  else
    fuzz_check_error (error, "chain open");
  g_clear_pointer (&chain, rechain_chain_free);
  g_clear_error (&error);

  /* info without --backing-chain: the top image alone, as qcow2 */
  alone = rechain_chain_open (path, "qcow2", RECHAIN_CHAIN_OPEN_NO_BACKING,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (!alone)
    fuzz_check_error (error, "chain open (no backing)");
  return 0;
}
