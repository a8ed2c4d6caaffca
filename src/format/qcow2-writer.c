/* qcow2-writer.c: allocating, crash-consistent writes into qcow2 images.
 * The order of durability is explained in qcow2-writer.h.
 *
 * This file holds the public API of qcow2-writer.h: creating the writer
 * (loading the L1 and refcount tables), the L2 tables held in memory and
 * the arenas their memory comes from, writing guest data and L2 entries,
 * and commit with its flush order. The open-time consistency scan is in
 * qcow2-writer-scan.c, the cluster allocator and refcounts in
 * qcow2-alloc.c, the planning writer's I/O in qcow2-writer-plan.c; what
 * they share is in qcow2-writer-private.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <sys/mman.h>

#include "format/be.h"
#include "format/qcow2-writer-private.h"
#include "rechain/rechain-i18n-private.h"

/* Data writes to consecutive host offsets are gathered up to this size. */
#define WRITE_GATHER_BYTES (8u * 1024 * 1024)

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
  g_clear_pointer (&w->shadow, plan_shadow_free);
  g_free (w);
}

gboolean
image_write (RechainQcow2Writer *w, const void *buf, gsize len, guint64 offset, GError **error)
{
  w->stats.metadata_bytes += len;
  if (!w->io.pwrite (w->io.user, buf, len, offset, error))
    return FALSE;
  w->file_end = MAX (w->file_end, offset + len);
  return TRUE;
}

gboolean
image_flush (RechainQcow2Writer *w, GError **error)
{
  w->stats.flushes++;
  return w->io.flush (w->io.user, error);
}

RechainQcow2Writer *
rechain_qcow2_writer_new (RechainQcow2Header *header,
                          const RechainQcow2IO *image_io,
                          const RechainQcow2IO *data_io,
                          guint64 file_size,
                          RechainQcow2WriterFlags flags,
                          GError **error)
{
  g_autoptr(RechainQcow2Writer) w = g_new0 (RechainQcow2Writer, 1);
  guint64 reftable_bytes;

  w->header = header;
  rechain_qcow2_geometry_init (&w->geom, header);
  w->external = w->geom.external_data;
  if (w->external && !data_io)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("the image has an external data file that was not opened"));
      return NULL;
    }
  if (flags & RECHAIN_QCOW2_WRITER_PLAN)
    plan_io_init (w, image_io, w->external ? data_io : NULL, file_size);
  else
    {
      w->io = w->image_data_io = *image_io;
      if (w->external)
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

void
rechain_qcow2_writer_set_data_io (RechainQcow2Writer *w, const RechainQcow2IO *image_data_io,
                                  const RechainQcow2IO *data_io)
{
  if (w->shadow)
    return;
  w->image_data_io = *image_data_io;
  if (w->external && data_io)
    w->data_io = *data_io;
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
      ok = w->image_data_io.pwrite (w->image_data_io.user, w->gather->data, w->gather->len,
                                    w->gather_offset, error);
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
locate_in (RechainQcow2Writer *w, guint64 offset, gsize length, gboolean allocated_ok, Target *t,
           GError **error)
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
  for (guint i = t->sc_first; i < t->sc_first + t->sc_count && !allocated_ok; i++)
    if (t->entry.type[i] != RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED)
      {
        g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                     _("guest offset 0x%" PRIx64 " is already allocated in the image"),
                     t->cluster_start + ((guint64) i << g->subcluster_bits));
        return FALSE;
      }
  return TRUE;
}

/* A range none of whose subclusters the image allocates. */
static gboolean
locate (RechainQcow2Writer *w, guint64 offset, gsize length, Target *t, GError **error)
{
  return locate_in (w, offset, length, FALSE, t, error);
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

/* The refcount of the data cluster at @host; a data cluster in use with
 * refcount 0 is an error. */
static gboolean
data_refcount (RechainQcow2Writer *w, guint64 host, guint64 *rc, GError **error)
{
  if (!get_refcount (w, host / w->cluster_size, rc, error))
    return FALSE;
  if (*rc == 0)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("the data cluster at 0x%" PRIx64 " has refcount 0; "
                   "repair the image with 'qemu-img check -r all'"), host);
      return FALSE;
    }
  return TRUE;
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
      if (!w->external && !data_refcount (w, host, &rc, error))
        return FALSE;
      if (rc > 1)
        {
          /* An internal snapshot shares the host cluster: copy it (its
           * allocated subclusters with it) to a new one and write there;
           * the snapshot keeps the old one, whose refcount drops once the
           * L2 entry names the copy. */
          g_autofree guint8 *copy = g_malloc (w->cluster_size);
          guint64 old_cluster = host / w->cluster_size;

          /* guest data, read where it is written (see set_data_io) */
          if (!w->image_data_io.pread (w->image_data_io.user, copy, w->cluster_size, host, error) ||
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

/* Compresses a whole cluster @in (cluster_size bytes) into a new buffer
 * *@out; *@out is NULL when that does not save at least a sector. */
static gboolean
compress_cluster (RechainQcow2Writer *w, const guint8 *in, guint8 **out, gsize *out_len,
                  GError **error)
{
  g_autofree guint8 *buf = g_malloc (w->cluster_size);

  *out = NULL;
  if (!rechain_qcow2_compress (w->header->compression_type, in, w->cluster_size, buf,
                               w->cluster_size - 512, out_len, error))
    return !(error && *error);
  *out = g_steal_pointer (&buf);
  return TRUE;
}

/* Writes @out, a compressed cluster, and makes @t's entry name it. */
static gboolean
store_compressed (RechainQcow2Writer *w, Target *t, const guint8 *out, gsize out_len,
                  GError **error)
{
  guint64 host, nb_sectors, rc;

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
  store (w, t, RECHAIN_QCOW2_OFLAG_COMPRESSED | (nb_sectors << w->geom.compressed_offset_bits) | host, 0);
  w->stats.compressed_clusters++;
  return TRUE;
}

/* A whole cluster (the last one may be shorter) of an image whose data
 * is in the image file: what a compressed cluster can hold. */
static gboolean
whole_cluster (RechainQcow2Writer *w, guint64 offset, gsize length)
{
  return !w->external && (offset & (w->cluster_size - 1)) == 0 &&
         (length == w->cluster_size || offset + length == w->header->size);
}

gboolean
rechain_qcow2_writer_write_compressed (RechainQcow2Writer *w, guint64 offset, gsize length,
                                       const guint8 *data, GError **error)
{
  const RechainQcow2Geometry *g = &w->geom;
  g_autofree guint8 *in = NULL;
  g_autofree guint8 *out = NULL;
  gsize out_len = 0;
  Target t;

  /* Compressed clusters are whole clusters, never in external data files. */
  if (!whole_cluster (w, offset, length) || g->cluster_size <= 1024)
    return rechain_qcow2_writer_write (w, offset, length, data, error);

  in = g_malloc0 (g->cluster_size);
  memcpy (in, data, length);
  if (!compress_cluster (w, in, &out, &out_len, error))
    return FALSE;
  if (!out)
    return rechain_qcow2_writer_write (w, offset, length, data, error);
  if (!locate (w, offset, length, &t, error))
    return FALSE;
  if (t.entry.host_offset != 0)
    return rechain_qcow2_writer_write (w, offset, length, data, error);
  if (!store_compressed (w, &t, out, out_len, error))
    return FALSE;
  w->stats.data_bytes += length;
  return TRUE;
}

static gboolean
range_is_zero (const guint8 *p, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (p[i] != 0)
      return FALSE;
  return TRUE;
}

gboolean
rechain_qcow2_writer_fill_compressed (RechainQcow2Writer *w, guint64 offset, gsize length,
                                      const guint8 *data, GError **error)
{
  const RechainQcow2Geometry *g = &w->geom;
  g_autofree guint8 *merged = NULL;
  g_autofree guint8 *out = NULL;
  gsize out_len = 0;
  guint64 own = 0, fill = 0, fill_bytes = 0, host, rc;
  gboolean nonzero = FALSE;
  Target t;

  if (!g->extended_l2 || !whole_cluster (w, offset, length))
    return data ? rechain_qcow2_writer_write_compressed (w, offset, length, data, error)
                : rechain_qcow2_writer_write_zeroes (w, offset, length, error);
  if (!locate_in (w, offset, length, TRUE, &t, error))
    return FALSE;
  if (t.entry.compressed)
    return locate (w, offset, length, &t, error); /* fails: allocated */

  /* the old view where the image allocates nothing, the image's own
   * subclusters (zeros, or its data) elsewhere */
  merged = g_malloc0 (g->cluster_size);
  if (data)
    memcpy (merged, data, length);
  for (guint i = 0; i < t.sc_count; i++)
    {
      guint64 at = (guint64) i << g->subcluster_bits;
      gsize n = (gsize) MIN (g->subcluster_size, length - at);

      switch (t.entry.type[i])
        {
        case RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED:
          fill |= G_GUINT64_CONSTANT (1) << i;
          fill_bytes += n;
          nonzero = nonzero || !range_is_zero (merged + at, n);
          break;
        case RECHAIN_QCOW2_SUBCLUSTER_DATA:
          if (!w->io.pread (w->io.user, merged + at, n, t.entry.host_offset + at, error))
            return FALSE;
          own |= G_GUINT64_CONSTANT (1) << i;
          break;
        default:
          memset (merged + at, 0, n);
          own |= G_GUINT64_CONSTANT (1) << i;
          break;
        }
    }
  if (fill == 0)
    return TRUE;
  if (!nonzero)
    {
      /* nothing but zeros to fill: the zero bits say it, the rest stays */
      store (w, &t, rd64 (t.slot), t.bitmap | (fill << 32));
      w->stats.zero_bytes += fill_bytes;
      return TRUE;
    }
  if (own == 0)
    return rechain_qcow2_writer_write_compressed (w, offset, length, merged, error);

  /* The cluster is rewritten whole, as QEMU does: the new backing file no
   * longer shows through anywhere in it. Its old host cluster, if any, is
   * released once the L2 entry names the new one (deferred_frees). */
  host = t.entry.host_offset;
  if (host != 0 && !data_refcount (w, host, &rc, error))
    return FALSE;
  if (!compress_cluster (w, merged, &out, &out_len, error))
    return FALSE;
  if (out)
    {
      if (!store_compressed (w, &t, out, out_len, error))
        return FALSE;
    }
  else
    {
      /* as QEMU's fallback, an ordinary write of the whole cluster: every
       * subcluster allocated, none zero */
      guint64 fresh;
      if (!alloc_clusters (w, 1, &fresh, error) ||
          !write_data (w, FALSE, fresh, merged, length, error))
        return FALSE;
      store (w, &t, fresh | RECHAIN_QCOW2_OFLAG_COPIED, sc_mask (&t));
    }
  if (host != 0)
    {
      guint64 old_cluster = host / w->cluster_size;
      g_array_append_val (w->deferred_frees, old_cluster);
    }
  w->stats.data_bytes += length;
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

