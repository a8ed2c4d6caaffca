/* qcow2-writer-scan.c: the qcow2 writer's open-time consistency scan, a
 * read-side check. Before anything is written, the L1 table, the
 * snapshots' L1 tables and every L2 table they name are read: to find
 * where everything the image references ends (new clusters go past it),
 * and to refuse an image that qemu-img check calls corrupt in a way that
 * writing would make worse: guest data on the metadata the writer updates
 * (header, L1 and refcount tables, refcount blocks, L2 tables), tables
 * past the end of the file, L2 tables or partly allocated data clusters
 * named more often than their refcounts say.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "format/be.h"
#include "format/qcow2-writer-private.h"
#include "rechain/rechain-i18n-private.h"

/* A table pointing past the end of the file: corrupt (QEMU's check says
 * so too). Writing to it is refused rather than allocating there. */
static gboolean
beyond_eof (GError **error, const char *what, guint64 offset, guint64 file_size)
{
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
               _("%s at offset 0x%" PRIx64 " lies beyond the end of the file "
               "(size %" PRIu64 "); repair the image with 'qemu-img check -r all'"),
               what, offset, file_size);
  return FALSE;
}

/* The clusters this writer may update in place (header, L1 table, refcount
 * table and blocks, L2 tables), cluster index -> what it is. A data cluster
 * among them is a corrupt image (qemu-img check: "refcount=1 reference=2"):
 * updating the metadata would change the guest's bytes too. */
static const char L2_TABLE[] = N_("an L2 table");

static void
mark_metadata (RechainQcow2Writer *w, GHashTable *meta, guint64 offset, guint64 bytes,
               const char *what)
{
  if (bytes == 0)
    return;
  for (guint64 c = offset / w->cluster_size; c <= (offset + bytes - 1) / w->cluster_size; c++)
    g_hash_table_insert (meta, GSIZE_TO_POINTER ((gsize) c), (gpointer) what);
}

/* Refuses a guest mapping (@host, @bytes long) that overlaps the metadata. */
static gboolean
check_not_metadata (RechainQcow2Writer *w, GHashTable *meta, guint64 guest, guint64 host,
                    guint64 bytes, GError **error)
{
  if (bytes == 0)
    return TRUE;
  for (guint64 c = host / w->cluster_size; c <= (host + bytes - 1) / w->cluster_size; c++)
    {
      const char *what = g_hash_table_lookup (meta, GSIZE_TO_POINTER ((gsize) c));
      if (what)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("guest offset 0x%" PRIx64 " is mapped to host cluster 0x%" PRIx64
                       ", which is also %s: the image is corrupt ('qemu-img check' reports it); "
                       "writing to it would change the guest's data"),
                       guest, c * w->cluster_size, _(what));
          return FALSE;
        }
    }
  return TRUE;
}

/* An L2 table to scan, and the L1 index that named it first (for the
 * guest offsets in messages). */
typedef struct {
  guint64 l2_offset;
  guint64 l1_index;
} L2Ref;

/* Marks the L2 tables the L1 table at @l1 (host order, @l1_size entries)
 * names as metadata, and appends to @refs those no L1 table named before
 * (@seen: cluster number -> how many L1 entries name it). Tables shared by
 * snapshots (or, in a crafted image, named many times) are scanned once:
 * the work is bounded by the file's size. */
static gboolean
mark_l2_tables (RechainQcow2Writer *w, const guint64 *l1, guint32 l1_size, guint64 file_size,
                GHashTable *meta, GHashTable *seen, GArray *refs, guint64 *end, GError **error)
{
  for (guint32 i = 0; i < l1_size; i++)
    {
      guint64 l2_offset;
      const char *what;

      if (!rechain_qcow2_l1_entry_decode (&w->geom, l1[i], &l2_offset, error))
        return FALSE;
      if (l2_offset == 0)
        continue;
      if (l2_offset >= file_size || file_size - l2_offset < w->cluster_size)
        return beyond_eof (error, _("an L2 table"), l2_offset, file_size);
      *end = MAX (*end, l2_offset + w->cluster_size);
      what = g_hash_table_lookup (meta, GSIZE_TO_POINTER ((gsize) (l2_offset / w->cluster_size)));
      /* the same L2 table named twice is sharing (snapshots); an L2 table
       * on other metadata is corrupt */
      if (what && what != L2_TABLE)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("the L2 table at 0x%" PRIx64 " is also %s: the image is corrupt "
                       "('qemu-img check' reports it)"), l2_offset, _(what));
          return FALSE;
        }
      mark_metadata (w, meta, l2_offset, w->cluster_size, L2_TABLE);
      {
        gpointer key = GSIZE_TO_POINTER ((gsize) (l2_offset / w->cluster_size));
        guint named = GPOINTER_TO_UINT (g_hash_table_lookup (seen, key));

        if (named == 0)
          {
            L2Ref ref = { l2_offset, i };
            g_array_append_val (refs, ref);
          }
        g_hash_table_insert (seen, key, GUINT_TO_POINTER (named < G_MAXUINT ? named + 1 : named));
      }
    }
  return TRUE;
}

/* An L2 table is updated in place when its refcount is 1: one named by
 * more L1 entries than its refcount says (the same table twice in one L1
 * table, or a snapshot's table with a refcount never raised) would change
 * the guest data behind the other names too. qemu-img check reports such
 * an image ("refcount=1 reference=2"); it is refused. */
static gboolean
check_l2_sharing (RechainQcow2Writer *w, GArray *refs, GHashTable *seen, GError **error)
{
  for (guint k = 0; k < refs->len; k++)
    {
      const L2Ref *ref = &g_array_index (refs, L2Ref, k);
      guint named = GPOINTER_TO_UINT (g_hash_table_lookup (
          seen, GSIZE_TO_POINTER ((gsize) (ref->l2_offset / w->cluster_size))));
      guint64 rc;

      if (named < 2)
        continue;
      if (!get_refcount (w, ref->l2_offset / w->cluster_size, &rc, error))
        return FALSE;
      if (rc < named)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("the L2 table at 0x%" PRIx64 " is named by %u L1 table entries but its "
                       "refcount is %" PRIu64 ": the image is corrupt ('qemu-img check' reports "
                       "it); writing to it would change the guest's data"),
                       ref->l2_offset, named, rc);
          return FALSE;
        }
    }
  return TRUE;
}

/* With extended L2, the writer fills the free subclusters of a cluster the
 * overlay already holds in place when its refcount is 1. A cluster that
 * more L2 entries map than its refcount says (qemu-img check: "refcount=1
 * reference=2") would change the guest data behind the other entry: the
 * partly allocated clusters are collected (up to this many; a larger image
 * is not checked for it) and their references counted in a second pass. */
#define MAX_PARTIAL_CLUSTERS (4u << 20)

static gboolean
cluster_is_partial (RechainQcow2Writer *w, const RechainQcow2L2Entry *e)
{
  for (guint sc = 0; sc < w->geom.subclusters; sc++)
    if (e->type[sc] != RECHAIN_QCOW2_SUBCLUSTER_DATA)
      return TRUE;
  return FALSE;
}

static gint
cmp_u64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : x > y;
}

/* Refuses a partly allocated cluster (@partial: sorted host cluster
 * numbers) that more L2 entries of the tables in @refs map than its
 * refcount allows. */
static gboolean
check_partial_sharing (RechainQcow2Writer *w, GArray *refs, GArray *partial, GError **error)
{
  g_autofree guint8 *table = g_malloc (w->cluster_size);
  g_autofree guint32 *counts = g_new0 (guint32, MAX (partial->len, 1));

  for (guint k = 0; k < refs->len; k++)
    {
      const L2Ref *ref = &g_array_index (refs, L2Ref, k);

      if (!w->io.pread (w->io.user, table, w->cluster_size, ref->l2_offset, error))
        return FALSE;
      for (guint64 j = 0; j < w->geom.l2_entries; j++)
        {
          guint64 word = rd64 (table + j * 16);
          guint64 host = word & RECHAIN_QCOW2_OFFSET_MASK;
          guint lo = 0, hi = partial->len;

          /* compressed entries name byte ranges: not clusters filled in place */
          if (host == 0 || (word & RECHAIN_QCOW2_OFLAG_COMPRESSED))
            continue;
          host /= w->cluster_size;
          while (lo < hi)
            {
              guint mid = lo + (hi - lo) / 2;
              if (g_array_index (partial, guint64, mid) < host)
                lo = mid + 1;
              else
                hi = mid;
            }
          if (lo < partial->len && g_array_index (partial, guint64, lo) == host &&
              counts[lo] < G_MAXUINT32)
            counts[lo]++;
        }
    }
  for (guint i = 0; i < partial->len; i++)
    {
      guint64 cluster = g_array_index (partial, guint64, i);
      guint64 rc;

      if (counts[i] < 2)
        continue;
      if (!get_refcount (w, cluster, &rc, error))
        return FALSE;
      if (rc < counts[i])
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("the data cluster at 0x%" PRIx64 " is mapped by %u L2 entries but its "
                       "refcount is %" PRIu64 ": the image is corrupt ('qemu-img check' reports "
                       "it); writing to it would change the guest's data"),
                       cluster * w->cluster_size, counts[i], rc);
          return FALSE;
        }
    }
  return TRUE;
}

/* Raises *@end to the end of every cluster the L2 tables in @refs
 * reference, and refuses data that overlaps the metadata in @meta. */
static gboolean
scan_l2_tables (RechainQcow2Writer *w, GArray *refs, guint64 file_size, GHashTable *meta,
                guint64 *end, GError **error)
{
  /* the writer's in-place fills need the extended L2 bitmaps, and an
   * external data file is not shared by clusters */
  g_autoptr(GArray) partial = w->geom.extended_l2 && !w->external
                              ? g_array_new (FALSE, FALSE, sizeof (guint64)) : NULL;
  g_autofree guint8 *table = g_malloc (w->cluster_size);
  const gsize entry_size = w->geom.extended_l2 ? 16 : 8;

  for (guint k = 0; k < refs->len; k++)
    {
      const L2Ref *ref = &g_array_index (refs, L2Ref, k);

      if (!w->io.pread (w->io.user, table, w->cluster_size, ref->l2_offset, error))
        return FALSE;
      for (guint64 j = 0; j < w->geom.l2_entries; j++)
        {
          RechainQcow2L2Entry e;
          guint64 word = rd64 (table + j * entry_size);
          guint64 bitmap = w->geom.extended_l2 ? rd64 (table + j * entry_size + 8) : 0;
          guint64 guest = (ref->l1_index * w->geom.l2_entries + j) * w->cluster_size;

          if (word == 0 && bitmap == 0)
            continue;
          if (!rechain_qcow2_l2_entry_decode (&w->geom, word, bitmap, &e, error))
            return FALSE;
          if (e.compressed)
            {
              if (e.compressed_offset >= file_size)
                return beyond_eof (error, _("a compressed cluster"), e.compressed_offset, file_size);
              *end = MAX (*end, e.compressed_offset + e.compressed_length);
              if (!check_not_metadata (w, meta, guest, e.compressed_offset,
                                       MIN (e.compressed_length, file_size - e.compressed_offset),
                                       error))
                return FALSE;
            }
          else if (e.host_offset != 0 && !w->external)
            {
              if (e.host_offset >= file_size)
                return beyond_eof (error, _("a data cluster"), e.host_offset, file_size);
              *end = MAX (*end, e.host_offset + w->cluster_size);
              if (!check_not_metadata (w, meta, guest, e.host_offset, w->cluster_size, error))
                return FALSE;
              if (partial && partial->len < MAX_PARTIAL_CLUSTERS && cluster_is_partial (w, &e))
                {
                  guint64 cluster = e.host_offset / w->cluster_size;
                  g_array_append_val (partial, cluster);
                }
            }
        }
    }
  if (!partial || partial->len == 0)
    return TRUE;
  g_array_sort (partial, cmp_u64);
  {
    guint n = 0;
    for (guint i = 0; i < partial->len; i++)
      if (n == 0 || g_array_index (partial, guint64, i) != g_array_index (partial, guint64, n - 1))
        g_array_index (partial, guint64, n++) = g_array_index (partial, guint64, i);
    g_array_set_size (partial, n);
  }
  return check_partial_sharing (w, refs, partial, error);
}

/* Reads the L1 table of snapshot @sn (host order) into *@raw, or returns
 * FALSE with @error set. */
static gboolean
read_snapshot_l1 (RechainQcow2Writer *w, const RechainQcow2Snapshot *sn, guint64 **raw,
                  GError **error)
{
  guint64 bytes = (guint64) sn->l1_size * 8;

  if (bytes > RECHAIN_QCOW2_MAX_L1_BYTES)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("snapshot %s: its L1 table (%u entries) exceeds the limit"), sn->id, sn->l1_size);
      return FALSE;
    }
  *raw = g_realloc (*raw, MAX (bytes, 8));
  if (bytes > 0 && !w->io.pread (w->io.user, *raw, bytes, sn->l1_table_offset, error))
    return FALSE;
  for (guint32 i = 0; i < sn->l1_size; i++)
    (*raw)[i] = GUINT64_FROM_BE ((*raw)[i]);
  return TRUE;
}

/* The end of everything the active L1 table and the snapshots' L1 tables
 * reference, and the check that no guest data lies on the metadata this
 * writer updates. Costs one read per L2 table: metadata, not data. */
gboolean
scan_references (RechainQcow2Writer *w, guint64 file_size, guint64 *end, GError **error)
{
  const RechainQcow2Header *h = w->header;
  g_autofree guint64 *raw = NULL;
  /* L2 tables to scan, and how many L1 entries name each (by cluster number) */
  g_autoptr(GArray) refs = g_array_new (FALSE, FALSE, sizeof (L2Ref));
  g_autoptr(GHashTable) seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  /* snapshot L1 tables to scan: offset -> largest size in bytes */
  g_autoptr(GHashTable) seen_l1 = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr(GHashTable) meta = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_autoptr(GArray) snapshots = NULL;
  g_autoptr(GPtrArray) snapshot_l1s = g_ptr_array_new ();

  *end = MAX (*end, h->l1_table_offset + (guint64) h->l1_size * 8);
  mark_metadata (w, meta, 0, 1, N_("the image header"));
  mark_metadata (w, meta, h->l1_table_offset, (guint64) h->l1_size * 8, N_("the L1 table"));
  mark_metadata (w, meta, h->refcount_table_offset,
                 (guint64) h->refcount_table_clusters * w->cluster_size, N_("the refcount table"));
  for (guint64 i = 0; i < w->reftable_entries; i++)
    if (w->reftable[i] != 0)
      mark_metadata (w, meta, w->reftable[i], w->cluster_size, N_("a refcount block"));

  if (h->nb_snapshots > 0)
    {
      guint64 size = MIN (file_size - MIN (h->snapshots_offset, file_size), (guint64) 64 << 20);
      g_autofree guint8 *buf = g_malloc (MAX (size, 1));

      if (!w->io.pread (w->io.user, buf, size, h->snapshots_offset, error))
        return FALSE;
      snapshots = rechain_qcow2_snapshots_parse (buf, size, h->nb_snapshots, &w->geom, file_size, error);
      if (!snapshots)
        return FALSE;
      /* an L1 table named by several snapshots is scanned once (with its
       * largest size) */
      for (guint k = 0; k < snapshots->len; k++)
        {
          RechainQcow2Snapshot *sn = &g_array_index (snapshots, RechainQcow2Snapshot, k);
          guint64 *known = g_hash_table_lookup (seen_l1, &sn->l1_table_offset);

          *end = MAX (*end, sn->l1_table_offset + (guint64) sn->l1_size * 8);
          if (known && known[1] >= sn->l1_size)
            continue;
          if (!known)
            {
              known = g_new (guint64, 3);
              known[0] = sn->l1_table_offset;
              g_hash_table_insert (seen_l1, known, known);
              g_ptr_array_add (snapshot_l1s, known);
            }
          known[1] = sn->l1_size;
          known[2] = k;
        }
    }

  /* First every L2 table any L1 table names (each L1 table read once),
   * then the data they map: a data cluster on an L2 table named by a
   * later L1 table is refused too. */
  if (!mark_l2_tables (w, w->l1, w->l1_size, file_size, meta, seen, refs, end, error))
    return FALSE;
  for (guint k = 0; k < snapshot_l1s->len; k++)
    {
      const guint64 *known = g_ptr_array_index (snapshot_l1s, k);
      const RechainQcow2Snapshot *sn = &g_array_index (snapshots, RechainQcow2Snapshot, known[2]);
      if (!read_snapshot_l1 (w, sn, &raw, error) ||
          !mark_l2_tables (w, raw, sn->l1_size, file_size, meta, seen, refs, end, error))
        return FALSE;
    }
  return check_l2_sharing (w, refs, seen, error) &&
         scan_l2_tables (w, refs, file_size, meta, end, error);
}
