/* qcow2-writer.c: allocating, crash-consistent writes into qcow2 images.
 * The order of durability is explained in qcow2-writer.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>

#include "format/be.h"
#include "format/qcow2-writer.h"
#include "rechain/rechain-i18n-private.h"

/* Data writes to consecutive host offsets are gathered up to this size. */
#define WRITE_GATHER_BYTES (8u * 1024 * 1024)

typedef struct {
  guint64 offset;  /* host offset of the block */
  guint8 *data;
  gboolean dirty;
} RefBlock;

/* A new L2 table is written block by block: only the blocks that hold
 * entries, so a table with a few entries costs a few small writes, and
 * the untouched blocks of its buffer are never read (nor faulted in). */
#define FRESH_BLOCK 4096u
#define MAX_FRESH_BLOCKS ((2u << 20) / FRESH_BLOCK) /* clusters are at most 2 MiB */

typedef struct {
  guint64 offset;  /* host offset the table is (or will be) written at */
  guint8 *data;
  gboolean is_new; /* not referenced by the L1 table on disk yet */
  gboolean dirty;
  gboolean in_arena; /* data lies in one of the writer's arenas */
  /* a new table counted as a quarter cluster plus its used blocks (see
   * get_l2), not as a whole cluster */
  gboolean sparse;
  /* blocks of data that may hold non-zero bytes (bit i: bytes
   * [i * FRESH_BLOCK, (i + 1) * FRESH_BLOCK)) */
  guint64 used_blocks[MAX_FRESH_BLOCKS / 64];
} L2Table;

struct _RechainQcow2Writer {
  RechainQcow2Header *header;
  RechainQcow2Geometry geom;
  RechainQcow2IO io;
  RechainQcow2IO data_io;
  gboolean external;
  guint64 cluster_size;
  guint64 refblock_entries;
  guint64 refcount_max;

  guint64 *reftable;         /* host order */
  guint64 reftable_entries;
  guint8 *reftable_dirty;    /* one flag per table cluster */
  GHashTable *refblocks;     /* table index -> RefBlock* */

  guint64 *l1;               /* host order, raw entries */
  guint32 l1_size;
  guint64 l1_dirty_min, l1_dirty_max; /* dirty range, min > max when clean */
  GHashTable *l2s;           /* L1 index -> L2Table* */
  GPtrArray *spare_l2s;      /* tables written by a commit, for reuse */
  GPtrArray *arenas;         /* of Arena: memory for new L2 tables */
  gsize arena_used;          /* bytes handed out from the last arena */

  guint64 next_free;         /* cluster index where the search for free clusters starts */
  guint64 fresh_from;        /* from here on the file was never written: holes, zeros */
  guint64 file_end;          /* the file is at least this long: its size at the
                              * start, raised by every write made here */
  GArray *deferred_frees;    /* cluster indexes to decrement after the L1 update */

  /* gathered data write */
  gboolean gather_data_file;
  guint64 gather_offset;
  GByteArray *gather;
  gboolean data_written;     /* data file written since the last flush */

  /* current area for compressed clusters */
  guint64 comp_pos, comp_end;

  guint64 pending;      /* metadata bytes held in memory until commit */
  guint64 pending_data; /* data bytes written since the last commit */
  RechainQcow2WriterStats stats;
};

static void
refblock_free (gpointer p)
{
  RefBlock *b = p;
  g_free (b->data);
  g_free (b);
}

static void
l2_free (gpointer p)
{
  L2Table *t = p;
  if (!t->in_arena)
    g_free (t->data);
  g_free (t);
}

/* New L2 tables come from arenas of anonymous memory: pages nobody has
 * touched read as zeros and take no memory, so a table of a sparse image
 * costs the pages its entries are in, not a whole cluster, and no time is
 * spent zeroing it (malloc's reused memory must be cleared, and a cluster
 * of fresh pages faulted in page by page). The arenas live as long as the
 * writer; tables are reused after each commit. */
#define ARENA_BYTES ((gsize) 2 << 20)

typedef struct {
  guint8 *base;
  gsize size;
} Arena;

static void
arena_free (gpointer p)
{
  Arena *a = p;
  munmap (a->base, a->size);
  g_free (a);
}

/* A zeroed cluster from an arena, or NULL when no memory can be mapped. */
static guint8 *
arena_alloc (RechainQcow2Writer *w)
{
  Arena *a = w->arenas->len ? g_ptr_array_index (w->arenas, w->arenas->len - 1) : NULL;

  if (!a || a->size - w->arena_used < w->cluster_size)
    {
      gsize size = MAX (ARENA_BYTES, w->cluster_size);
      void *base = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

      if (base == MAP_FAILED)
        return NULL;
      a = g_new (Arena, 1);
      a->base = base;
      a->size = size;
      g_ptr_array_add (w->arenas, a);
      w->arena_used = 0;
    }
  w->arena_used += w->cluster_size;
  return a->base + w->arena_used - w->cluster_size;
}

/* A zeroed table: a spare one when there is one (zeroing only the blocks
 * it used: a fresh buffer would cost a page fault per page, and a rebase
 * of a sparse image makes thousands of tables with a few entries each). */
static L2Table *
l2_new (RechainQcow2Writer *w)
{
  L2Table *t;

  if (w->spare_l2s->len == 0)
    {
      t = g_new0 (L2Table, 1);
      t->data = w->cluster_size >= 2 * FRESH_BLOCK ? arena_alloc (w) : NULL;
      t->in_arena = t->data != NULL;
      if (!t->data)
        t->data = g_malloc0 (w->cluster_size);
      return t;
    }
  t = g_ptr_array_steal_index_fast (w->spare_l2s, w->spare_l2s->len - 1);
  for (guint64 b = 0; b < w->cluster_size / FRESH_BLOCK; b++)
    if ((t->used_blocks[b / 64] >> (b % 64)) & 1)
      memset (t->data + b * FRESH_BLOCK, 0, FRESH_BLOCK);
  if (w->cluster_size < FRESH_BLOCK)
    memset (t->data, 0, w->cluster_size);
  t->offset = 0;
  t->is_new = t->dirty = t->sparse = FALSE;
  memset (t->used_blocks, 0, sizeof t->used_blocks);
  return t;
}

/* Empties the table of L2 tables after a commit, keeping the tables as
 * spares. */
static void
l2s_recycle (RechainQcow2Writer *w)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, w->l2s);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      L2Table *t = value;
      guint used = 0;

      g_hash_table_iter_steal (&iter);
      g_free (key);
      for (guint i = 0; i < G_N_ELEMENTS (t->used_blocks); i++)
        used += (guint) __builtin_popcountll (t->used_blocks[i]);
      /* A spare keeps the few pages a sparse table used (zeroed when it is
       * reused); a table with more goes back to untouched zero pages, so
       * spares hold little memory. */
      if (t->in_arena && used > 2 &&
          madvise (t->data, w->cluster_size, MADV_DONTNEED) == 0)
        memset (t->used_blocks, 0, sizeof t->used_blocks);
      g_ptr_array_add (w->spare_l2s, t);
    }
}

void
rechain_qcow2_writer_free (RechainQcow2Writer *w)
{
  if (!w)
    return;
  g_free (w->reftable);
  g_free (w->reftable_dirty);
  g_clear_pointer (&w->refblocks, g_hash_table_unref);
  g_free (w->l1);
  g_clear_pointer (&w->l2s, g_hash_table_unref);
  g_clear_pointer (&w->spare_l2s, g_ptr_array_unref);
  g_clear_pointer (&w->arenas, g_ptr_array_unref); /* after the tables in them */
  g_clear_pointer (&w->deferred_frees, g_array_unref);
  g_clear_pointer (&w->gather, g_byte_array_unref);
  g_free (w);
}

static gboolean
image_write (RechainQcow2Writer *w, const void *buf, gsize len, guint64 offset, GError **error)
{
  w->stats.metadata_bytes += len;
  if (!w->io.pwrite (w->io.user, buf, len, offset, error))
    return FALSE;
  w->file_end = MAX (w->file_end, offset + len);
  return TRUE;
}

static gboolean
image_flush (RechainQcow2Writer *w, GError **error)
{
  w->stats.flushes++;
  return w->io.flush (w->io.user, error);
}

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

static gboolean get_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 *value, GError **error);

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
static gboolean
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

RechainQcow2Writer *
rechain_qcow2_writer_new (RechainQcow2Header *header,
                          const RechainQcow2IO *image_io,
                          const RechainQcow2IO *data_io,
                          guint64 file_size,
                          GError **error)
{
  g_autoptr(RechainQcow2Writer) w = g_new0 (RechainQcow2Writer, 1);
  guint64 reftable_bytes;

  w->header = header;
  rechain_qcow2_geometry_init (&w->geom, header);
  w->io = *image_io;
  w->external = w->geom.external_data;
  if (w->external)
    {
      if (!data_io)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                       _("the image has an external data file that was not opened"));
          return NULL;
        }
      w->data_io = *data_io;
    }
  w->cluster_size = w->geom.cluster_size;
  w->refblock_entries = (w->cluster_size * 8) >> header->refcount_order;
  w->refcount_max = header->refcount_order == 6 ? G_MAXUINT64
                    : (G_GUINT64_CONSTANT (1) << (1u << header->refcount_order)) - 1;
  w->refblocks = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, refblock_free);
  w->l2s = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, l2_free);
  w->spare_l2s = g_ptr_array_new_with_free_func (l2_free);
  w->arenas = g_ptr_array_new_with_free_func (arena_free);
  w->deferred_frees = g_array_new (FALSE, FALSE, sizeof (guint64));
  w->gather = g_byte_array_new ();
  w->l1_dirty_min = G_MAXUINT64;
  w->l1_dirty_max = 0;

  /* Refcount table; the header parser bounded its size and position. */
  reftable_bytes = (guint64) header->refcount_table_clusters * w->cluster_size;
  w->reftable_entries = reftable_bytes / 8;
  w->reftable = g_new0 (guint64, MAX (w->reftable_entries, 1));
  w->reftable_dirty = g_new0 (guint8, MAX (header->refcount_table_clusters, 1));
  if (!w->io.pread (w->io.user, w->reftable, reftable_bytes, header->refcount_table_offset, error))
    {
      g_prefix_error (error, _("reading the refcount table: "));
      return NULL;
    }
  for (guint64 i = 0; i < w->reftable_entries; i++)
    {
      guint64 e = GUINT64_FROM_BE (w->reftable[i]);
      guint64 off = e & ~(guint64) 511;
      if ((e & 511) != 0 || (off & (w->cluster_size - 1)) != 0 || off >= file_size)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("refcount table entry %" PRIu64 " (0x%" PRIx64 ") "
                       "is misaligned or beyond the end of the file"), i, e);
          return NULL;
        }
      w->reftable[i] = off;
    }

  /* L1 table (also bounded by the parser) */
  w->l1_size = header->l1_size;
  w->l1 = g_new0 (guint64, MAX (w->l1_size, 1));
  if (w->l1_size > 0 &&
      !w->io.pread (w->io.user, w->l1, (gsize) w->l1_size * 8, header->l1_table_offset, error))
    {
      g_prefix_error (error, _("reading the L1 table: "));
      return NULL;
    }
  for (guint32 i = 0; i < w->l1_size; i++)
    w->l1[i] = GUINT64_FROM_BE (w->l1[i]);

  /* New clusters go past the end of the file and past every cluster the
   * image references: a corrupt image whose refcounts miss a cluster in
   * use (or whose tables point past its end) cannot make us overwrite it. */
  {
    guint64 end = file_size;
    if (!scan_references (w, file_size, &end, error))
      return NULL;
    w->next_free = MAX ((end + w->cluster_size - 1) / w->cluster_size, 1);
    w->fresh_from = w->next_free * w->cluster_size;
    w->file_end = file_size;
  }
  return g_steal_pointer (&w);
}

const RechainQcow2WriterStats *
rechain_qcow2_writer_get_stats (RechainQcow2Writer *w)
{
  return &w->stats;
}

guint64
rechain_qcow2_writer_get_pending (RechainQcow2Writer *w)
{
  return w->pending;
}

guint64
rechain_qcow2_writer_get_pending_data (RechainQcow2Writer *w)
{
  return w->pending_data;
}

/* ---- refcounts ---- */

/* The refcount block of table index @ti, loaded if needed; NULL with no
 * error when it does not exist. */
static RefBlock *
refblock_lookup (RechainQcow2Writer *w, guint64 ti, GError **error)
{
  RefBlock *b;
  guint64 *key;

  if (ti >= w->reftable_entries || w->reftable[ti] == 0)
    return NULL;
  b = g_hash_table_lookup (w->refblocks, &ti);
  if (b)
    return b;
  b = g_new0 (RefBlock, 1);
  b->offset = w->reftable[ti];
  b->data = g_malloc (w->cluster_size);
  if (!w->io.pread (w->io.user, b->data, w->cluster_size, b->offset, error))
    {
      g_prefix_error (error, _("reading the refcount block at 0x%" PRIx64 ": "), b->offset);
      refblock_free (b);
      return NULL;
    }
  key = g_new (guint64, 1);
  *key = ti;
  g_hash_table_insert (w->refblocks, key, b);
  return b;
}

static gboolean
get_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 *value, GError **error)
{
  GError *local = NULL;
  RefBlock *b = refblock_lookup (w, cluster / w->refblock_entries, &local);

  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  *value = b ? rechain_qcow2_refblock_get (b->data, w->header->refcount_order,
                                           cluster % w->refblock_entries)
             : 0;
  return TRUE;
}

static gboolean set_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 value, GError **error);

/* First free cluster at or after next_free. */
static gboolean
find_free (RechainQcow2Writer *w, guint64 count, guint64 *start, GError **error)
{
  guint64 c = w->next_free;

  for (guint64 i = 0; i < count; i++)
    {
      guint64 rc;
      if (!get_refcount (w, c + i, &rc, error))
        return FALSE;
      if (rc != 0)
        {
          /* restart after the used cluster */
          c = c + i + 1;
          i = (guint64) -1;
        }
    }
  *start = c;
  return TRUE;
}

static gboolean grow_reftable (RechainQcow2Writer *w, guint64 min_entries, GError **error);

/* Creates the missing refcount block for table index @ti. */
static RefBlock *
refblock_create (RechainQcow2Writer *w, guint64 ti, GError **error)
{
  RefBlock *b;
  guint64 *key, cluster;

  if (ti >= w->reftable_entries)
    {
      GError *local = NULL;

      if (!grow_reftable (w, ti + 1, error))
        return NULL;
      /* Counting the new table's own clusters may have created this very
       * block already. */
      b = refblock_lookup (w, ti, &local);
      if (local)
        {
          g_propagate_error (error, local);
          return NULL;
        }
      if (b)
        return b;
    }
  if (!find_free (w, 1, &cluster, error))
    return NULL;
  w->next_free = cluster + 1;

  b = g_new0 (RefBlock, 1);
  b->offset = cluster * w->cluster_size;
  b->data = g_malloc0 (w->cluster_size);
  b->dirty = TRUE;
  key = g_new (guint64, 1);
  *key = ti;
  g_hash_table_insert (w->refblocks, key, b);
  w->reftable[ti] = b->offset;
  w->reftable_dirty[ti * 8 / w->cluster_size] = 1;
  w->pending += w->cluster_size;
  w->stats.clusters_allocated++;

  /* The block's own cluster needs a refcount, maybe in itself. */
  if (!set_refcount (w, cluster, 1, error))
    return NULL;
  return b;
}

static gboolean
set_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 value, GError **error)
{
  guint64 ti = cluster / w->refblock_entries;
  GError *local = NULL;
  RefBlock *b = refblock_lookup (w, ti, &local);

  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (!b && value == 0)
    return TRUE;
  if (!b && !(b = refblock_create (w, ti, error)))
    return FALSE;
  if (value > w->refcount_max)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("a refcount would exceed the maximum of %" PRIu64
                   " (refcount_bits %u)"), w->refcount_max, 1u << w->header->refcount_order);
      return FALSE;
    }
  rechain_qcow2_refblock_set (b->data, w->header->refcount_order, cluster % w->refblock_entries, value);
  if (!b->dirty)
    {
      b->dirty = TRUE;
      w->pending += w->cluster_size;
    }
  return TRUE;
}

/* Allocates @count contiguous free clusters and sets their refcount to 1. */
static gboolean
alloc_clusters (RechainQcow2Writer *w, guint64 count, guint64 *offset, GError **error)
{
  guint64 start;

  if (!find_free (w, count, &start, error))
    return FALSE;
  /* Reserve the range first: refcount blocks created below go after it. */
  w->next_free = start + count;
  for (guint64 i = 0; i < count; i++)
    if (!set_refcount (w, start + i, 1, error))
      return FALSE;
  w->stats.clusters_allocated += count;
  *offset = start * w->cluster_size;
  if (*offset > RECHAIN_QCOW2_OFFSET_MASK)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                   _("the image would grow beyond the 64 PiB qcow2 can address"));
      return FALSE;
    }
  return TRUE;
}

static gboolean
write_dirty_refblocks (RechainQcow2Writer *w, GError **error)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, w->refblocks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      RefBlock *b = value;
      if (!b->dirty)
        continue;
      if (!image_write (w, b->data, w->cluster_size, b->offset, error))
        return FALSE;
      b->dirty = FALSE;
    }
  return TRUE;
}

/* Moves the refcount table to a larger place at the end of the image:
 * new refcount blocks and the new table are written and flushed, then the
 * header is pointed at the table and flushed, then the old table's
 * clusters are freed. An interruption before the header write leaves the
 * old table in force and the new clusters leaked. */
static gboolean
grow_reftable (RechainQcow2Writer *w, guint64 min_entries, GError **error)
{
  guint64 per_cluster = w->cluster_size / 8;
  guint64 new_entries = MAX (min_entries, w->reftable_entries * 2);
  guint64 new_clusters, start = 0, old_offset, old_clusters;
  g_autofree guint64 *table_be = NULL;
  guint64 *new_table;
  guint8 fields[12];

  for (;;)
    {
      new_entries = (new_entries + per_cluster - 1) / per_cluster * per_cluster;
      new_clusters = new_entries / per_cluster;
      if (new_clusters > RECHAIN_QCOW2_MAX_REFTABLE_BYTES / w->cluster_size)
        break; /* refused below, before searching for that much space */
      if (!find_free (w, new_clusters, &start, error))
        return FALSE;
      /* The table must also cover the blocks that count its own clusters
       * and those blocks themselves: leave room for a few. */
      if ((start + new_clusters + 8) / w->refblock_entries < new_entries)
        break;
      new_entries *= 2;
    }
  if (new_clusters * w->cluster_size > RECHAIN_QCOW2_MAX_REFTABLE_BYTES)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NO_SPACE,
                   _("the refcount table would exceed %u bytes"), RECHAIN_QCOW2_MAX_REFTABLE_BYTES);
      return FALSE;
    }

  old_offset = w->header->refcount_table_offset;
  old_clusters = w->header->refcount_table_clusters;
  new_table = g_new0 (guint64, new_entries);
  memcpy (new_table, w->reftable, w->reftable_entries * 8);
  g_free (w->reftable);
  w->reftable = new_table;
  w->reftable_entries = new_entries;
  g_free (w->reftable_dirty);
  w->reftable_dirty = g_new0 (guint8, new_clusters);

  w->next_free = start + new_clusters;
  for (guint64 i = 0; i < new_clusters; i++)
    if (!set_refcount (w, start + i, 1, error))
      return FALSE;
  w->stats.clusters_allocated += new_clusters;

  table_be = g_new (guint64, new_entries);
  for (guint64 i = 0; i < new_entries; i++)
    table_be[i] = GUINT64_TO_BE (w->reftable[i]);
  if (!write_dirty_refblocks (w, error) ||
      !image_write (w, table_be, new_entries * 8, start * w->cluster_size, error) ||
      !image_flush (w, error))
    return FALSE;

  wr64 (fields, start * w->cluster_size);
  {
    guint32 n = GUINT32_TO_BE ((guint32) new_clusters);
    memcpy (fields + 8, &n, 4);
  }
  /* refcount_table_offset and refcount_table_clusters are adjacent (48..59) */
  if (!image_write (w, fields, sizeof fields, 48, error) || !image_flush (w, error))
    return FALSE;
  w->header->refcount_table_offset = start * w->cluster_size;
  w->header->refcount_table_clusters = (guint32) new_clusters;

  for (guint64 i = 0; i < old_clusters; i++)
    if (!set_refcount (w, old_offset / w->cluster_size + i, 0, error))
      return FALSE;
  return TRUE;
}

/* ---- L2 tables ---- */

static L2Table *
get_l2 (RechainQcow2Writer *w, guint64 l1_index, GError **error)
{
  L2Table *t;
  guint64 *key;
  guint64 old_offset;

  if (l1_index >= w->l1_size)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("the L1 table (%u entries) does not cover L1 index %" PRIu64),
                   w->l1_size, l1_index);
      return NULL;
    }
  t = g_hash_table_lookup (w->l2s, &l1_index);
  if (t)
    return t;

  t = l2_new (w);
  old_offset = w->l1[l1_index] & RECHAIN_QCOW2_OFFSET_MASK;
  if (old_offset != 0)
    {
      guint64 rc;

      if (!w->io.pread (w->io.user, t->data, w->cluster_size, old_offset, error) ||
          !get_refcount (w, old_offset / w->cluster_size, &rc, error))
        goto fail;
      memset (t->used_blocks, 0xff, sizeof t->used_blocks);
      if (rc == 0)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("the L2 table at 0x%" PRIx64 " has refcount 0; "
                       "repair the image with 'qemu-img check -r all'"), old_offset);
          goto fail;
        }
      t->offset = old_offset;
      if (rc > 1)
        {
          /* Shared with an internal snapshot: write a copy and leave the
           * snapshot's table alone. Its refcount drops once the L1 table
           * names the copy. */
          guint64 freed = old_offset / w->cluster_size;
          if (!alloc_clusters (w, 1, &t->offset, error))
            goto fail;
          t->is_new = TRUE;
          g_array_append_val (w->deferred_frees, freed);
          w->stats.l2_tables_copied++;
        }
    }
  else
    {
      if (!alloc_clusters (w, 1, &t->offset, error))
        goto fail;
      t->is_new = TRUE;
    }
  if (t->is_new)
    {
      w->l1[l1_index] = t->offset | RECHAIN_QCOW2_OFLAG_COPIED;
      w->l1_dirty_min = MIN (w->l1_dirty_min, l1_index);
      w->l1_dirty_max = MAX (w->l1_dirty_max, l1_index);
    }
  key = g_new (guint64, 1);
  *key = l1_index;
  g_hash_table_insert (w->l2s, key, t);
  /* Memory held until the commit. A table read from the file is all in
   * memory; a new one (zero pages, see arena_alloc) holds the blocks its
   * entries are written to, counted by store(), and is counted a quarter
   * cluster besides: the untouched rest is address space, bounded too. */
  t->sparse = old_offset == 0 && t->in_arena;
  w->pending += t->sparse ? w->cluster_size / 4 : w->cluster_size;
  return t;

fail:
  l2_free (t);
  return NULL;
}

/* ---- data ---- */

static gboolean
gather_flush (RechainQcow2Writer *w, GError **error)
{
  gboolean ok;

  if (w->gather->len == 0)
    return TRUE;
  if (w->gather_data_file)
    {
      ok = w->data_io.pwrite (w->data_io.user, w->gather->data, w->gather->len, w->gather_offset, error);
      w->data_written = TRUE;
    }
  else
    {
      ok = w->io.pwrite (w->io.user, w->gather->data, w->gather->len, w->gather_offset, error);
      if (ok)
        w->file_end = MAX (w->file_end, w->gather_offset + w->gather->len);
    }
  g_byte_array_set_size (w->gather, 0);
  return ok;
}

static gboolean
write_data (RechainQcow2Writer *w, gboolean data_file, guint64 offset, const guint8 *buf,
            gsize len, GError **error)
{
  if (w->gather->len > 0 &&
      (w->gather_data_file != data_file || w->gather_offset + w->gather->len != offset ||
       w->gather->len + len > WRITE_GATHER_BYTES))
    if (!gather_flush (w, error))
      return FALSE;
  if (w->gather->len == 0)
    {
      w->gather_data_file = data_file;
      w->gather_offset = offset;
    }
  g_byte_array_append (w->gather, buf, (guint) len);
  w->pending_data += len;
  return TRUE;
}

typedef struct {
  L2Table *table;
  guint8 *slot;        /* the entry in table->data */
  guint64 cluster_start;
  RechainQcow2L2Entry entry;
  guint64 bitmap;
  guint sc_first, sc_count; /* subclusters covered */
} Target;

static gboolean
locate (RechainQcow2Writer *w, guint64 offset, gsize length, Target *t, GError **error)
{
  const RechainQcow2Geometry *g = &w->geom;
  guint64 cluster = offset >> g->cluster_bits;
  guint64 index = cluster & (g->l2_entries - 1);
  guint64 end = offset + length;
  guint64 word;

  t->cluster_start = cluster << g->cluster_bits;
  if (length == 0 || end > w->header->size || end > t->cluster_start + g->cluster_size ||
      (offset & (g->subcluster_size - 1)) != 0 ||
      ((end & (g->subcluster_size - 1)) != 0 && end != w->header->size))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("write of 0x%" PRIx64 "+0x%zx is not made of whole subclusters "
                   "of one cluster"), offset, length);
      return FALSE;
    }
  t->table = get_l2 (w, cluster / g->l2_entries, error);
  if (!t->table)
    return FALSE;
  t->slot = t->table->data + index * (g->extended_l2 ? 16 : 8);
  {
    gsize block = (gsize) (t->slot - t->table->data) / FRESH_BLOCK;
    /* a block of a new table that no entry was written to is zeros: not
     * read, so that its untouched page is faulted in once, by the write */
    gboolean used = !t->table->in_arena ||
                    ((t->table->used_blocks[block / 64] >> (block % 64)) & 1);
    word = used ? rd64 (t->slot) : 0;
    t->bitmap = used && g->extended_l2 ? rd64 (t->slot + 8) : 0;
  }
  if (!rechain_qcow2_l2_entry_decode (g, word, t->bitmap, &t->entry, error))
    return FALSE;
  t->sc_first = (guint) ((offset - t->cluster_start) >> g->subcluster_bits);
  t->sc_count = (guint) ((end - offset + g->subcluster_size - 1) >> g->subcluster_bits);
  for (guint i = t->sc_first; i < t->sc_first + t->sc_count; i++)
    if (t->entry.type[i] != RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED)
      {
        g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                     _("guest offset 0x%" PRIx64 " is already allocated in the image"),
                     t->cluster_start + ((guint64) i << g->subcluster_bits));
        return FALSE;
      }
  return TRUE;
}

static guint64
sc_mask (const Target *t)
{
  return ((t->sc_count == 32) ? 0xffffffffull : ((1ull << t->sc_count) - 1)) << t->sc_first;
}

static void
store (RechainQcow2Writer *w, Target *t, guint64 word, guint64 bitmap)
{
  gsize block = (gsize) (t->slot - t->table->data) / FRESH_BLOCK;

  wr64 (t->slot, word);
  if (w->geom.extended_l2)
    wr64 (t->slot + 8, bitmap);
  t->table->dirty = TRUE;
  if (t->table->sparse && !((t->table->used_blocks[block / 64] >> (block % 64)) & 1))
    w->pending += FRESH_BLOCK;
  t->table->used_blocks[block / 64] |= G_GUINT64_CONSTANT (1) << (block % 64);
}

gboolean
rechain_qcow2_writer_write (RechainQcow2Writer *w, guint64 offset, gsize length,
                            const guint8 *data, GError **error)
{
  Target t;
  guint64 host;
  guint64 word;

  if (!locate (w, offset, length, &t, error))
    return FALSE;

  word = rd64 (t.slot);
  if (t.entry.host_offset != 0 || (w->external && (word & RECHAIN_QCOW2_OFLAG_COPIED)))
    {
      /* Extended L2: the cluster already has a host cluster for some of
       * its subclusters. Write beside them if nobody else shares it. */
      guint64 rc = 1;
      host = t.entry.host_offset;
      if (!w->external && !get_refcount (w, host / w->cluster_size, &rc, error))
        return FALSE;
      if (rc == 0)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("the data cluster at 0x%" PRIx64 " has refcount 0; "
                       "repair the image with 'qemu-img check -r all'"), host);
          return FALSE;
        }
      if (rc > 1)
        {
          /* An internal snapshot shares the host cluster: copy it (its
           * allocated subclusters with it) to a new one and write there;
           * the snapshot keeps the old one, whose refcount drops once the
           * L2 entry names the copy. */
          g_autofree guint8 *copy = g_malloc (w->cluster_size);
          guint64 old_cluster = host / w->cluster_size;

          if (!w->io.pread (w->io.user, copy, w->cluster_size, host, error) ||
              !alloc_clusters (w, 1, &host, error))
            return FALSE;
          memcpy (copy + (offset - t.cluster_start), data, length);
          if (!write_data (w, FALSE, host, copy, w->cluster_size, error))
            return FALSE;
          g_array_append_val (w->deferred_frees, old_cluster);
          store (w, &t, host | RECHAIN_QCOW2_OFLAG_COPIED,
                 (t.bitmap | sc_mask (&t)) & ~(sc_mask (&t) << 32));
          w->stats.data_bytes += length;
          return TRUE;
        }
    }
  else if (w->external)
    host = t.cluster_start; /* external data files map guest = host */
  else if (!alloc_clusters (w, 1, &host, error))
    return FALSE;

  if (!write_data (w, w->external, host + (offset - t.cluster_start), data, length, error))
    return FALSE;

  word = host | RECHAIN_QCOW2_OFLAG_COPIED;
  store (w, &t, word, w->geom.extended_l2 ? ((t.bitmap | sc_mask (&t)) & ~(sc_mask (&t) << 32)) : 0);
  w->stats.data_bytes += length;
  return TRUE;
}

gboolean
rechain_qcow2_writer_place (RechainQcow2Writer *w, guint64 offset, gsize length, guint64 *host,
                            GError **error)
{
  Target t;
  guint64 cluster_host;

  *host = 0;
  if (w->external)
    return TRUE; /* the data file is not fresh space: use write() */
  if (!locate (w, offset, length, &t, error))
    return FALSE;
  if (t.entry.host_offset != 0)
    return TRUE; /* partly allocated cluster (extended L2): use write() */
  if (!alloc_clusters (w, 1, &cluster_host, error))
    return FALSE;
  store (w, &t, cluster_host | RECHAIN_QCOW2_OFLAG_COPIED,
         w->geom.extended_l2 ? ((t.bitmap | sc_mask (&t)) & ~(sc_mask (&t) << 32)) : 0);
  w->stats.data_bytes += length;
  w->pending_data += length;
  *host = cluster_host + (offset - t.cluster_start);
  return TRUE;
}

gboolean
rechain_qcow2_writer_put_data (RechainQcow2Writer *w, guint64 host, const guint8 *data,
                               gsize length, GError **error)
{
  return write_data (w, FALSE, host, data, length, error);
}

gboolean
rechain_qcow2_writer_write_zeroes (RechainQcow2Writer *w, guint64 offset, gsize length,
                                   GError **error)
{
  Target t;

  if (!w->geom.extended_l2 && !w->geom.zero_flag_allowed)
    {
      /* qcow2 v2 has no zero flag: write zeros. */
      g_autofree guint8 *zeros = g_malloc0 (length);
      return rechain_qcow2_writer_write (w, offset, length, zeros, error);
    }
  if (!locate (w, offset, length, &t, error))
    return FALSE;
  if (w->geom.extended_l2)
    store (w, &t, rd64 (t.slot), t.bitmap | (sc_mask (&t) << 32));
  else
    store (w, &t, RECHAIN_QCOW2_OFLAG_ZERO, 0);
  w->stats.zero_bytes += length;
  return TRUE;
}

gboolean
rechain_qcow2_writer_write_compressed (RechainQcow2Writer *w, guint64 offset, gsize length,
                                       const guint8 *data, GError **error)
{
  const RechainQcow2Geometry *g = &w->geom;
  g_autofree guint8 *in = NULL;
  g_autofree guint8 *out = NULL;
  gsize out_len = 0;
  guint64 host, nb_sectors, rc;
  Target t;

  /* Compressed clusters are whole clusters, never in external data files. */
  if (w->external || (offset & (g->cluster_size - 1)) != 0 ||
      (length != g->cluster_size && offset + length != w->header->size) ||
      g->cluster_size <= 1024)
    return rechain_qcow2_writer_write (w, offset, length, data, error);

  in = g_malloc0 (g->cluster_size);
  memcpy (in, data, length);
  out = g_malloc (g->cluster_size);
  /* Worth it only if it saves at least a sector. */
  if (!rechain_qcow2_compress (w->header->compression_type, in, g->cluster_size, out,
                               g->cluster_size - 512, &out_len, error))
    {
      if (error && *error)
        return FALSE;
      return rechain_qcow2_writer_write (w, offset, length, data, error);
    }
  if (!locate (w, offset, length, &t, error))
    return FALSE;
  if (t.entry.host_offset != 0)
    return rechain_qcow2_writer_write (w, offset, length, data, error);

  /* Pack compressed clusters one after another. A cluster that several of
   * them touch has one reference per compressed cluster. */
  if (w->comp_pos != 0 && w->comp_pos + out_len <= w->comp_end)
    {
      guint64 cl = w->comp_pos / w->cluster_size;
      if (!get_refcount (w, cl, &rc, error))
        return FALSE;
      if (rc + 1 > w->refcount_max)
        w->comp_pos = 0;
      else if (!set_refcount (w, cl, rc + 1, error))
        return FALSE;
    }
  else
    w->comp_pos = 0;
  if (w->comp_pos == 0)
    {
      guint64 n = (out_len + w->cluster_size - 1) / w->cluster_size;
      if (!alloc_clusters (w, n, &w->comp_pos, error))
        return FALSE;
      w->comp_end = w->comp_pos + n * w->cluster_size;
    }
  host = w->comp_pos;
  if (!write_data (w, FALSE, host, out, out_len, error))
    return FALSE;
  w->comp_pos += out_len;
  if (w->comp_pos == w->comp_end)
    w->comp_pos = 0;

  nb_sectors = ((host + out_len - 1) >> 9) - (host >> 9);
  store (w, &t, RECHAIN_QCOW2_OFLAG_COMPRESSED | (nb_sectors << g->compressed_offset_bits) | host, 0);
  w->stats.data_bytes += length;
  w->stats.compressed_clusters++;
  return TRUE;
}

/* ---- commit ---- */

/* Writes a new table into its newly allocated cluster. Past the end the
 * file had when the writer started, the cluster is a hole that reads as
 * zeros: only the blocks holding entries are written, and the last one
 * when the file does not reach the table's end yet (the file must cover
 * the whole table). An L2 table of a sparse image is mostly zeros: for a
 * 64 KiB cluster with a few entries this writes 4 KiB instead of 64. */
static gboolean
write_fresh_table (RechainQcow2Writer *w, const L2Table *t, GError **error)
{
  static const guint8 zeros[FRESH_BLOCK];
  const guint64 blocks = w->cluster_size / FRESH_BLOCK;
  const guint64 last = blocks - 1;

  if (t->offset < w->fresh_from || w->cluster_size < 2 * FRESH_BLOCK)
    return image_write (w, t->data, w->cluster_size, t->offset, error);
  for (guint64 b = 0; b < blocks; b++)
    {
      guint64 run = b;
      /* a run of consecutive blocks to write, in one call */
      while (run < blocks && (t->used_blocks[run / 64] >> (run % 64)) & 1)
        run++;
      if (run > b &&
          !image_write (w, t->data + b * FRESH_BLOCK, (run - b) * FRESH_BLOCK,
                        t->offset + b * FRESH_BLOCK, error))
        return FALSE;
      b = run;
    }
  /* from a shared zero block when the table's own was never touched
   * (reading that would fault its page in) */
  if (w->file_end < t->offset + w->cluster_size &&
      !image_write (w, ((t->used_blocks[last / 64] >> (last % 64)) & 1)
                         ? t->data + last * FRESH_BLOCK : zeros,
                    FRESH_BLOCK, t->offset + last * FRESH_BLOCK, error))
    return FALSE;
  return TRUE;
}

static gboolean
write_l2_tables (RechainQcow2Writer *w, gboolean new_ones, GError **error)
{
  GHashTableIter iter;
  gpointer value;

  L2Table *furthest = NULL;

  /* New tables: the one furthest into the file first, so that the file
   * reaches past all the others once it is written (see write_fresh_table) */
  if (new_ones)
    {
      g_hash_table_iter_init (&iter, w->l2s);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        {
          L2Table *t = value;
          if (t->is_new && (!furthest || t->offset > furthest->offset))
            furthest = t;
        }
      if (furthest)
        {
          if (!write_fresh_table (w, furthest, error))
            return FALSE;
          furthest->dirty = FALSE;
        }
    }
  g_hash_table_iter_init (&iter, w->l2s);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      L2Table *t = value;
      if (t->is_new != new_ones || !(t->dirty || t->is_new) || t == furthest)
        continue;
      if (!(t->is_new ? write_fresh_table (w, t, error)
                      : image_write (w, t->data, w->cluster_size, t->offset, error)))
        return FALSE;
      t->dirty = FALSE;
    }
  return TRUE;
}

static gboolean
write_reftable (RechainQcow2Writer *w, GError **error)
{
  guint64 per_cluster = w->cluster_size / 8;
  gboolean any = FALSE;

  for (guint64 c = 0; c < w->header->refcount_table_clusters; c++)
    {
      g_autofree guint64 *be = NULL;
      if (!w->reftable_dirty[c])
        continue;
      be = g_new (guint64, per_cluster);
      for (guint64 i = 0; i < per_cluster; i++)
        be[i] = GUINT64_TO_BE (w->reftable[c * per_cluster + i]);
      if (!image_write (w, be, w->cluster_size,
                        w->header->refcount_table_offset + c * w->cluster_size, error))
        return FALSE;
      w->reftable_dirty[c] = 0;
      any = TRUE;
    }
  return !any || image_flush (w, error);
}

static gboolean
write_l1 (RechainQcow2Writer *w, GError **error)
{
  guint64 n;
  g_autofree guint64 *be = NULL;

  if (w->l1_dirty_min > w->l1_dirty_max)
    return TRUE;
  n = w->l1_dirty_max - w->l1_dirty_min + 1;
  be = g_new (guint64, n);
  for (guint64 i = 0; i < n; i++)
    be[i] = GUINT64_TO_BE (w->l1[w->l1_dirty_min + i]);
  if (!image_write (w, be, n * 8, w->header->l1_table_offset + w->l1_dirty_min * 8, error))
    return FALSE;
  w->l1_dirty_min = G_MAXUINT64;
  w->l1_dirty_max = 0;
  return TRUE;
}

static gboolean
any_dirty_refblock (RechainQcow2Writer *w)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, w->refblocks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (((RefBlock *) value)->dirty)
      return TRUE;
  return FALSE;
}

gboolean
rechain_qcow2_writer_commit (RechainQcow2Writer *w, GError **error)
{
  /* 1. data, refcount blocks, new L2 tables */
  if (!gather_flush (w, error))
    return FALSE;
  if (w->data_written)
    {
      w->stats.flushes++;
      if (!w->data_io.flush (w->data_io.user, error))
        return FALSE;
      w->data_written = FALSE;
    }
  if (!write_dirty_refblocks (w, error) ||
      !write_l2_tables (w, TRUE, error) ||
      !image_flush (w, error))
    return FALSE;

  /* 2. refcount table entries naming new refcount blocks */
  if (!write_reftable (w, error))
    return FALSE;

  /* 3. existing L2 tables and L1 entries that name new clusters/tables */
  if (!write_l2_tables (w, FALSE, error) || !write_l1 (w, error) || !image_flush (w, error))
    return FALSE;

  /* 4. clusters no longer referenced: L2 tables replaced by copies */
  for (guint i = 0; i < w->deferred_frees->len; i++)
    {
      guint64 cluster = g_array_index (w->deferred_frees, guint64, i);
      guint64 rc;
      if (!get_refcount (w, cluster, &rc, error) ||
          !set_refcount (w, cluster, rc > 0 ? rc - 1 : 0, error))
        return FALSE;
    }
  g_array_set_size (w->deferred_frees, 0);
  if (any_dirty_refblock (w) &&
      (!write_dirty_refblocks (w, error) || !image_flush (w, error) || !write_reftable (w, error)))
    return FALSE;

  /* Everything is on disk: drop the caches, so memory stays bounded. */
  l2s_recycle (w);
  g_hash_table_remove_all (w->refblocks);
  w->pending = 0;
  w->pending_data = 0;
  return TRUE;
}

