/* fuzz-header: the qcow2 header and extension parser, and the tables it
 * leads to (snapshot table, bitmap directory), over arbitrary bytes.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - every failure is a rechain GError with a message;
 *   - a header that parses can be serialized (unless it does not fit in
 *     one cluster) and the result parses again to the same fields, with
 *     the same extensions byte for byte (what `rebase -u` relies on);
 *   - the same after replacing the backing name and format.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "format/qcow2.h"

static void
same_header (const RechainQcow2Header *a, const RechainQcow2Header *b, const char *what)
{
#define SAME(f) if (a->f != b->f) FUZZ_BUG ("%s: field " #f " changed", what)
  SAME (version); SAME (cluster_bits); SAME (size); SAME (crypt_method);
  SAME (l1_size); SAME (l1_table_offset); SAME (refcount_table_offset);
  SAME (refcount_table_clusters); SAME (nb_snapshots); SAME (snapshots_offset);
  SAME (incompatible_features); SAME (compatible_features);
  SAME (autoclear_features); SAME (refcount_order); SAME (header_length);
  SAME (compression_type);
#undef SAME
  if (g_strcmp0 (a->backing_file, b->backing_file) != 0)
    FUZZ_BUG ("%s: backing file changed", what);
  if (g_strcmp0 (a->backing_format, b->backing_format) != 0)
    FUZZ_BUG ("%s: backing format changed", what);
  if (g_strcmp0 (a->data_file, b->data_file) != 0)
    FUZZ_BUG ("%s: data file changed", what);
  if (a->extensions->len != b->extensions->len)
    FUZZ_BUG ("%s: %u extensions became %u", what, a->extensions->len, b->extensions->len);
  for (guint i = 0; i < a->extensions->len; i++)
    {
      const RechainQcow2Extension *x = g_ptr_array_index (a->extensions, i);
      const RechainQcow2Extension *y = g_ptr_array_index (b->extensions, i);
      if (x->type != y->type || !g_bytes_equal (x->data, y->data))
        FUZZ_BUG ("%s: extension %u (type 0x%08x) changed", what, i, x->type);
    }
  if ((a->extra_header == NULL) != (b->extra_header == NULL) ||
      (a->extra_header && !g_bytes_equal (a->extra_header, b->extra_header)))
    FUZZ_BUG ("%s: extra header bytes changed", what);
}

/* Serializes @h and parses the result: it must give the same header. */
static void
roundtrip (RechainQcow2Header *h, guint64 file_size, const char *what)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *buf = NULL;
  g_autoptr(RechainQcow2Header) again = NULL;
  guint64 cs = rechain_qcow2_cluster_size (h);

  buf = rechain_qcow2_header_serialize (h, &error);
  if (!buf)
    {
      fuzz_check_error (error, "serialize");
      return;
    }
  again = rechain_qcow2_header_parse (buf, cs, MAX (file_size, cs), &error);
  if (!again)
    FUZZ_BUG ("%s: the serialized header does not parse: %s", what, error->message);
  same_header (h, again, what);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainQcow2Header) h = NULL;
  RechainQcow2Geometry geom;

  fuzz_init ();

  h = rechain_qcow2_header_parse (data, size, size, &error);
  if (!h)
    {
      fuzz_check_error (error, "header parse");
      return 0;
    }
  if (h->cluster_bits < RECHAIN_QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > RECHAIN_QCOW2_MAX_CLUSTER_BITS)
    FUZZ_BUG ("cluster_bits %u accepted", h->cluster_bits);
  if (h->l1_size * (guint64) 8 > RECHAIN_QCOW2_MAX_L1_BYTES)
    FUZZ_BUG ("L1 of %u entries accepted", h->l1_size);
  if ((guint64) h->refcount_table_clusters << h->cluster_bits > RECHAIN_QCOW2_MAX_REFTABLE_BYTES)
    FUZZ_BUG ("refcount table of %u clusters accepted", h->refcount_table_clusters);
  if (h->extensions->len > RECHAIN_QCOW2_MAX_EXTENSIONS)
    FUZZ_BUG ("%u extensions accepted", h->extensions->len);
  if (h->backing_file && strlen (h->backing_file) > RECHAIN_QCOW2_MAX_BACKING_NAME)
    FUZZ_BUG ("backing name of %zu bytes accepted", strlen (h->backing_file));

  rechain_qcow2_geometry_init (&geom, h);
  for (guint t = 0; t < 3; t++)
    for (guint bit = 0; bit < 64; bit++)
      (void) rechain_qcow2_header_feature_name (h, (guint8) t, bit);

  /* the tables the header points to, as far as they lie in the input */
  if (h->nb_snapshots > 0 && h->nb_snapshots <= RECHAIN_QCOW2_MAX_SNAPSHOTS &&
      h->snapshots_offset < size)
    {
      g_autoptr(GError) e2 = NULL;
      GArray *snaps = rechain_qcow2_snapshots_parse (data + h->snapshots_offset,
                                                     size - h->snapshots_offset,
                                                     h->nb_snapshots, &geom, size, &e2);
      if (snaps)
        g_array_unref (snaps);
      else
        fuzz_check_error (e2, "snapshot table parse");
    }
  if (h->has_bitmaps_ext && h->nb_bitmaps > 0 && h->bitmap_directory_offset < size)
    {
      g_autoptr(GError) e2 = NULL;
      gsize len = (gsize) MIN (h->bitmap_directory_size, size - h->bitmap_directory_offset);
      GArray *bms = rechain_qcow2_bitmaps_parse (data + h->bitmap_directory_offset, len,
                                                 h->nb_bitmaps, &geom, size, &e2);
      if (bms)
        g_array_unref (bms);
      else
        fuzz_check_error (e2, "bitmap directory parse");
    }

  /* what rebase -u does: rewrite the header unchanged, then renamed (a
   * raw external data file cannot have a backing file: the parser refuses
   * it, and so does rebase) */
  roundtrip (h, size, "serialize");
  if (h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW)
    return 0;
  rechain_qcow2_header_set_backing (h, "new.qcow2", "qcow2");
  if (g_strcmp0 (h->backing_file, "new.qcow2") != 0 || g_strcmp0 (h->backing_format, "qcow2") != 0)
    FUZZ_BUG ("set_backing did not set the backing file");
  roundtrip (h, size, "set_backing");
  rechain_qcow2_header_set_backing (h, NULL, NULL);
  if (h->backing_file || h->backing_format)
    FUZZ_BUG ("set_backing(NULL) left a backing file");
  roundtrip (h, size, "remove backing");
  return 0;
}
