/* layer.c: one opened image file, qcow2 or raw.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain/layer.h"
#include "chain/layer-key.h"
#include "format/be.h"
#include "chain/path.h"
#include "rechain/rechain-i18n-private.h"

/* L2 tables are cached per layer up to this many bytes (and at least four
 * tables), so that reading a region cluster by cluster does not re-read the
 * table each time, while a crafted image with huge clusters cannot make the
 * cache grow without bound. rechain walks images in order, window by
 * window, so a few tables per layer are all it reuses; a larger cache only
 * costs fresh memory. Measured on `rechain map` of a 1 TiB base with 1024
 * L2 tables of 64 KiB (a VM, where a page touched for the first time costs
 * ~10 us): 29 ms with 1 MiB, 35 ms with 2 MiB, 44 ms with 4 MiB, 75 ms with
 * 16 MiB. A miss costs one pread of one table. */
#define L2_CACHE_BYTES (1u * 1024 * 1024)

typedef struct {
  guint64 offset; /* 0: empty slot */
  GBytes *table;
  guint64 last_use;
} L2CacheSlot;

struct _RechainLayer {
  char *path;
  RechainFormat format;
  RechainFile *file;
  RechainFile *data_file; /* external data file, or NULL */
  RechainOwner *owner;    /* whose names the header holds, when they are checked */
  guint64 file_size;
  guint64 virtual_size;
  dev_t dev;
  ino_t ino;

  /* qcow2 */
  RechainQcow2Header *header;
  RechainQcow2Geometry geom;
  guint64 *l2_offsets; /* decoded L1 table: L2 table offsets, 0 = none */
  gsize l1_bytes;      /* its share of the process's L1 budget */
  guint32 l1_size;

  GMutex cache_lock;
  L2CacheSlot *cache;
  guint cache_slots;
  guint64 cache_clock;

  /* LUKS: the key once unlocked (NULL before), and the encrypting guest
   * data I/O of the writer made last (it outlives the writer) */
  RechainLayerKey *key;
  RechainCryptIO crypt_io, crypt_data_io;
};

gboolean
rechain_format_from_string (const char *name, RechainFormat *format, GError **error)
{
  if (g_strcmp0 (name, "qcow2") == 0)
    *format = RECHAIN_FORMAT_QCOW2;
  else if (g_strcmp0 (name, "raw") == 0)
    *format = RECHAIN_FORMAT_RAW;
  else
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("Unsupported image format '%s' (rechain handles qcow2 and raw)"), name);
      return FALSE;
    }
  return TRUE;
}

const char *
rechain_format_to_string (RechainFormat format)
{
  return format == RECHAIN_FORMAT_QCOW2 ? "qcow2" : "raw";
}

gboolean
rechain_format_probe (RechainFile *file, RechainFormat *format, GError **error)
{
  guint8 magic[4] = { 0 };
  guint64 size;

  if (!rechain_file_get_size (file, &size, error))
    return FALSE;
  if (size >= sizeof magic &&
      !rechain_file_pread (file, magic, sizeof magic, 0, error))
    return FALSE;
  *format = (GUINT32_FROM_BE (*(guint32 *) magic) == RECHAIN_QCOW2_MAGIC)
              ? RECHAIN_FORMAT_QCOW2 : RECHAIN_FORMAT_RAW;
  return TRUE;
}

static gboolean
file_size_any (RechainFile *file, guint64 *size, GError **error)
{
  struct stat st;
  int fd = rechain_file_get_fd (file);

  if (fstat (fd, &st) == 0 && S_ISBLK (st.st_mode))
    {
      /* Block devices report st_size 0: ask the device. */
      off_t end = lseek (fd, 0, SEEK_END);
      if (end < 0)
        {
          int saved = errno;
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO,
                       _("Could not get the size of '%s': %s"),
                       rechain_file_get_path (file), g_strerror (saved));
          return FALSE;
        }
      *size = (guint64) end;
      return TRUE;
    }
  return rechain_file_get_size (file, size, error);
}

static gboolean
lock_file (RechainFile *file, RechainLayerOpenFlags flags, GError **error)
{
  if (flags & RECHAIN_LAYER_OPEN_NO_LOCK)
    return TRUE;
  if (flags & RECHAIN_LAYER_OPEN_WRITE)
    /* As qemu-img does for an image it writes: take read, write and resize
     * (the file grows), and let others only read. */
    return rechain_file_lock (file,
                              RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE | RECHAIN_PERM_RESIZE,
                              RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE_UNCHANGED,
                              error);
  /* A reader needs the content not to change under it, as qemu-img info
   * and a VM reading a backing file do: it does not share write or resize. */
  return rechain_file_lock (file,
                            RECHAIN_PERM_CONSISTENT_READ,
                            RECHAIN_PERM_CONSISTENT_READ | RECHAIN_PERM_WRITE_UNCHANGED,
                            error);
}

static gboolean
qcow2_load_header (RechainLayer *layer, GError **error)
{
  /* The header and its extensions fill at most the first cluster, whose
   * size the header itself says: read the first 4 KiB, then the rest of
   * the cluster (or of the file, if it is smaller). When cluster_bits is
   * out of range, the largest possible cluster is read and the parser
   * says what is wrong. */
  const gsize max_len = (gsize) MIN (layer->file_size, (guint64) 1 << RECHAIN_QCOW2_MAX_CLUSTER_BITS);
  gsize len = MIN (max_len, 4096);
  g_autofree guint8 *buf = g_malloc (MAX (max_len, 1));

  if (!rechain_file_pread (layer->file, buf, len, 0, error))
    return FALSE;
  if (len < max_len)
    {
      guint32 bits = len >= 24 ? rd32 (buf + 20) : 0;
      gsize want = (bits >= 9 && bits <= RECHAIN_QCOW2_MAX_CLUSTER_BITS)
                   ? MIN (max_len, (gsize) 1 << bits) : max_len;
      if (want > len && !rechain_file_pread (layer->file, buf + len, want - len, len, error))
        return FALSE;
      len = MAX (len, want);
    }
  layer->header = rechain_qcow2_header_parse (buf, len, layer->file_size, error);
  if (!layer->header)
    return FALSE;
  rechain_qcow2_geometry_init (&layer->geom, layer->header);
  layer->virtual_size = layer->header->size;
  return TRUE;
}

static gboolean
qcow2_check_writable (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = layer->header;

  if (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_CORRUPT)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_READ_ONLY,
                   _("the image is marked corrupt and may only be opened read-only; "
                   "check it with 'qemu-img check' and repair it with 'qemu-img check -r all'"));
      return FALSE;
    }
  if (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DIRTY)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("the image is dirty (lazy refcounts were not written back after "
                   "an unclean shutdown) and cannot be written; repair it first with "
                   "'qemu-img check -r all %s'"), layer->path);
      return FALSE;
    }
  return TRUE;
}

static gboolean
qcow2_open_data_file (RechainLayer *layer, RechainLayerOpenFlags flags,
                      RechainCacheMode cache, GError **error)
{
  g_autofree char *path = NULL;

  if (!(layer->header->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DATA_FILE))
    return TRUE;
  if (!layer->header->data_file)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("the image uses an external data file but its header does not name it"));
      return FALSE;
    }
  path = rechain_path_resolve (layer->path, layer->header->data_file, error);
  if (!path)
    return FALSE;
  layer->data_file = rechain_file_open (path,
                                        ((flags & RECHAIN_LAYER_OPEN_WRITE)
                                           ? RECHAIN_FILE_READ_WRITE : RECHAIN_FILE_READ_ONLY) |
                                          (layer->owner ? RECHAIN_FILE_ANY_TYPE : 0),
                                        cache, error);
  if (!layer->data_file)
    return FALSE;
  if (!rechain_owner_check_file (layer->owner, rechain_file_get_fd (layer->data_file),
                                 RECHAIN_TRUST_READ |
                                   ((flags & RECHAIN_LAYER_OPEN_WRITE) ? RECHAIN_TRUST_WRITE : 0),
                                 layer->path, _("the data file"), path, error))
    return FALSE;
  return lock_file (layer->data_file, flags, error);
}

/* The decoded L1 tables of all the images a process has open share one
 * budget: each is bounded (32 MiB, as QEMU bounds it), but a crafted chain
 * of 64 images, or linked clones each opening such a chain, must not make
 * the process hold gigabytes of metadata. Real images need far less: a
 * 64 TiB image with 64 KiB clusters has a 1 MiB L1 table. */
#define L1_BUDGET_BYTES ((gsize) 128 << 20)
static gsize l1_bytes_held; /* atomic */

static gboolean
qcow2_load_l1 (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = layer->header;
  g_autofree guint64 *raw = NULL;
  guint64 needed;
  gsize bytes, held;

  layer->l1_size = 0;
  if (h->l1_size == 0)
    return TRUE;

  /* Only the entries that cover the virtual size are ever used (and
   * kept); entries past it must still be well-formed, but nothing is read
   * through them. */
  needed = (layer->virtual_size + (layer->geom.l2_entries << layer->geom.cluster_bits) - 1)
           / (layer->geom.l2_entries << layer->geom.cluster_bits);
  bytes = (gsize) MIN (needed, (guint64) h->l1_size) * 8;
  held = (gsize) g_atomic_pointer_add (&l1_bytes_held, (gssize) bytes);
  if (held + bytes > L1_BUDGET_BYTES)
    {
      g_atomic_pointer_add (&l1_bytes_held, -(gssize) bytes);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("its L1 table (%zu bytes used) would bring the L1 tables of the images "
                     "open to more than the limit of %zu MiB"), bytes, L1_BUDGET_BYTES >> 20);
      return FALSE;
    }
  layer->l1_bytes = bytes;
  layer->l2_offsets = g_new0 (guint64, MAX (bytes / 8, 1));
  layer->l1_size = (guint32) (bytes / 8);

  raw = g_new (guint64, h->l1_size);
  if (!rechain_file_pread (layer->file, raw, (gsize) h->l1_size * 8, h->l1_table_offset, error))
    {
      g_prefix_error (error, _("reading the L1 table: "));
      return FALSE;
    }

  for (guint32 i = 0; i < h->l1_size; i++)
    {
      guint64 l2_offset;

      if (!rechain_qcow2_l1_entry_decode (&layer->geom, GUINT64_FROM_BE (raw[i]), &l2_offset, error))
        {
          g_prefix_error (error, _("L1 entry %u: "), i);
          return FALSE;
        }
      if (l2_offset != 0 && i < needed &&
          (l2_offset > layer->file_size || layer->file_size - l2_offset < layer->geom.cluster_size))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("L1 entry %u points to an L2 table at offset 0x%" PRIx64 " "
                       "beyond the end of the file (size %" PRIu64 ")"),
                       i, l2_offset, layer->file_size);
          return FALSE;
        }
      if (i < layer->l1_size)
        layer->l2_offsets[i] = l2_offset;
    }
  return TRUE;
}

RechainLayer *
rechain_layer_open (const char *path,
                    const char *format,
                    RechainLayerOpenFlags flags,
                    RechainCacheMode cache,
                    const RechainNameOrigin *origin,
                    GError **error)
{
  g_autoptr(RechainLayer) layer = g_new0 (RechainLayer, 1);
  struct stat st;
  int fd;

  layer->path = g_strdup (path);
  g_mutex_init (&layer->cache_lock);

  /* For a name another user chose, the type is judged with the owner's
   * rights below, so that the refusal names the image that named it. */
  layer->file = rechain_file_open (path,
                                   ((flags & RECHAIN_LAYER_OPEN_WRITE)
                                      ? RECHAIN_FILE_READ_WRITE : RECHAIN_FILE_READ_ONLY) |
                                     (origin && origin->owner ? RECHAIN_FILE_ANY_TYPE : 0),
                                   cache, error);
  if (!layer->file)
    return NULL;
  fd = rechain_file_get_fd (layer->file);
  /* Before anything is locked or read: the file the kernel opened, not
   * whatever the name leads to now (trust.h). The message names the image
   * that named it. */
  if (origin && !rechain_owner_check_file (origin->owner, fd, RECHAIN_TRUST_READ |
                                             ((flags & RECHAIN_LAYER_OPEN_WRITE)
                                                ? RECHAIN_TRUST_WRITE : 0),
                                           origin->named_by, origin->field, path, error))
    return NULL;
  if (fstat (fd, &st) == 0)
    {
      layer->dev = st.st_dev;
      layer->ino = st.st_ino;
    }
  if (!(flags & RECHAIN_LAYER_OPEN_TRUST_NAMES))
    {
      GError *local = NULL;

      layer->owner = rechain_owner_new_for_fd (fd, &local);
      if (local)
        {
          g_propagate_error (error, local);
          goto fail;
        }
    }
  if (!lock_file (layer->file, flags, error) ||
      !file_size_any (layer->file, &layer->file_size, error))
    goto fail;

  if (format)
    {
      if (!rechain_format_from_string (format, &layer->format, error))
        goto fail;
    }
  else if (!rechain_format_probe (layer->file, &layer->format, error))
    goto fail;

  if (layer->format == RECHAIN_FORMAT_RAW)
    {
      layer->virtual_size = layer->file_size;
      return g_steal_pointer (&layer);
    }

  if (!qcow2_load_header (layer, error) ||
      ((flags & RECHAIN_LAYER_OPEN_WRITE) && !qcow2_check_writable (layer, error)) ||
      !qcow2_open_data_file (layer, flags, cache, error) ||
      !qcow2_load_l1 (layer, error))
    goto fail;

  layer->cache_slots = MAX (4, L2_CACHE_BYTES / layer->geom.cluster_size);
  layer->cache = g_new0 (L2CacheSlot, layer->cache_slots);
  return g_steal_pointer (&layer);

fail:
  /* a refused data file's message already starts with this image */
  if (!error || !g_error_matches (*error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED))
    g_prefix_error (error, "%s: ", path);
  return NULL;
}

void
rechain_layer_free (RechainLayer *layer)
{
  if (!layer)
    return;
  for (guint i = 0; i < layer->cache_slots; i++)
    g_clear_pointer (&layer->cache[i].table, g_bytes_unref);
  g_free (layer->cache);
  g_mutex_clear (&layer->cache_lock);
  g_free (layer->l2_offsets);
  rechain_crypt_io_clear (&layer->crypt_io);
  rechain_crypt_io_clear (&layer->crypt_data_io);
  g_clear_pointer (&layer->key, rechain_layer_key_unref);
  if (layer->l1_bytes > 0)
    g_atomic_pointer_add (&l1_bytes_held, -(gssize) layer->l1_bytes);
  g_clear_pointer (&layer->header, rechain_qcow2_header_free);
  g_clear_pointer (&layer->data_file, rechain_file_close);
  g_clear_pointer (&layer->file, rechain_file_close);
  g_clear_pointer (&layer->owner, rechain_owner_free);
  g_free (layer->path);
  g_free (layer);
}

const char *rechain_layer_get_path (RechainLayer *layer) { return layer->path; }
const RechainOwner *rechain_layer_get_owner (RechainLayer *layer) { return layer->owner; }
RechainFormat rechain_layer_get_format (RechainLayer *layer) { return layer->format; }
RechainFile *rechain_layer_get_file (RechainLayer *layer) { return layer->file; }
guint64 rechain_layer_get_virtual_size (RechainLayer *layer) { return layer->virtual_size; }

RechainFile *
rechain_layer_get_data_file (RechainLayer *layer)
{
  return layer->data_file ? layer->data_file : layer->file;
}

const RechainQcow2Header *
rechain_layer_get_qcow2_header (RechainLayer *layer)
{
  return layer->header;
}

const RechainQcow2Geometry *
rechain_layer_get_qcow2_geometry (RechainLayer *layer)
{
  return layer->header ? &layer->geom : NULL;
}

guint64
rechain_layer_get_granularity (RechainLayer *layer)
{
  return layer->header ? layer->geom.subcluster_size : 512;
}

const char *
rechain_layer_get_backing_name (RechainLayer *layer)
{
  return layer->header ? layer->header->backing_file : NULL;
}

const char *
rechain_layer_get_backing_format (RechainLayer *layer)
{
  return layer->header ? layer->header->backing_format : NULL;
}

gboolean
rechain_layer_same_file (RechainLayer *layer, dev_t dev, ino_t ino)
{
  return layer->dev == dev && layer->ino == ino;
}

/* ---- qcow2 L2 tables ---- */

static GBytes *
qcow2_get_l2 (RechainLayer *layer, guint64 l2_offset, GError **error)
{
  L2CacheSlot *victim = NULL;
  GBytes *table = NULL;
  GBytes *recycled = NULL;
  g_autofree guint8 *buf = NULL;

  g_mutex_lock (&layer->cache_lock);
  for (guint i = 0; i < layer->cache_slots; i++)
    {
      L2CacheSlot *slot = &layer->cache[i];
      if (slot->offset == l2_offset && slot->table)
        {
          slot->last_use = ++layer->cache_clock;
          table = g_bytes_ref (slot->table);
          break;
        }
    }
  /* A miss with the cache full: the least recently used table leaves now,
   * and its buffer takes the new table. A walk through a large image reads
   * each table once; fresh buffers would cost a page fault per page. */
  if (!table && layer->cache_slots > 0 && layer->cache[layer->cache_slots - 1].table)
    {
      L2CacheSlot *lru = &layer->cache[0];
      for (guint i = 1; i < layer->cache_slots; i++)
        if (layer->cache[i].last_use < lru->last_use)
          lru = &layer->cache[i];
      recycled = g_steal_pointer (&lru->table);
    }
  g_mutex_unlock (&layer->cache_lock);
  if (table)
    return table;

  if (recycled)
    {
      gsize size;
      /* the buffer itself when the cache held the last reference */
      buf = g_bytes_unref_to_data (g_steal_pointer (&recycled), &size);
      if (size != layer->geom.cluster_size)
        g_clear_pointer (&buf, g_free);
    }
  if (!buf)
    {
      /* page-aligned (freed with g_free: it is free()) and faulted in at once */
      buf = rechain_io_buffer_alloc (layer->geom.cluster_size);
      rechain_io_buffer_prefault (buf, layer->geom.cluster_size);
    }
  if (!rechain_file_pread (layer->file, buf, layer->geom.cluster_size, l2_offset, error))
    {
      g_prefix_error (error, _("reading the L2 table at offset 0x%" PRIx64 ": "), l2_offset);
      return NULL;
    }
  table = g_bytes_new_take (g_steal_pointer (&buf), layer->geom.cluster_size);

  g_mutex_lock (&layer->cache_lock);
  for (guint i = 0; i < layer->cache_slots; i++)
    {
      L2CacheSlot *slot = &layer->cache[i];
      if (!victim || !slot->table || slot->last_use < victim->last_use)
        victim = slot;
      if (!slot->table)
        break;
    }
  g_clear_pointer (&victim->table, g_bytes_unref);
  victim->offset = l2_offset;
  victim->table = g_bytes_ref (table);
  victim->last_use = ++layer->cache_clock;
  g_mutex_unlock (&layer->cache_lock);
  return table;
}

/* Decodes the L2 entry of guest cluster @cluster from @table. */
static gboolean
qcow2_decode_entry (RechainLayer *layer, GBytes *table, guint64 cluster,
                    RechainQcow2L2Entry *entry, GError **error)
{
  const guint8 *data = g_bytes_get_data (table, NULL);
  guint64 index = cluster & (layer->geom.l2_entries - 1);
  const gsize entry_size = layer->geom.extended_l2 ? 16 : 8;
  guint64 word = rd64 (data + index * entry_size);
  guint64 bitmap = layer->geom.extended_l2 ? rd64 (data + index * entry_size + 8) : 0;

  if (!rechain_qcow2_l2_entry_decode (&layer->geom, word, bitmap, entry, error))
    {
      g_prefix_error (error, _("L2 entry for guest offset 0x%" PRIx64 ": "),
                      cluster << layer->geom.cluster_bits);
      return FALSE;
    }
  return TRUE;
}

/* How many of the @count L2 entries at @p (entries of @entry_size bytes)
 * are all zero bytes (unallocated clusters, and with extended L2 all their
 * subclusters), up to the first that is not. Compared a block at a time
 * against zeros, since most of a sparse table is zeros. */
static guint64
zero_entries (const guint8 *p, gsize entry_size, guint64 count)
{
  static const guint8 zeros[4096];
  guint64 n = 0;

  while (n < count)
    {
      gsize bytes = (gsize) MIN (count - n, (guint64) (sizeof zeros / entry_size)) * entry_size;
      if (memcmp (p + n * entry_size, zeros, bytes) != 0)
        break;
      n += bytes / entry_size;
    }
  while (n < count && memcmp (p + n * entry_size, zeros, entry_size) == 0)
    n++;
  return n;
}

/* zero_entries() of the @count entries of @table from guest cluster @cluster on */
static guint64
l2_zero_entries (RechainLayer *layer, GBytes *table, guint64 cluster, guint64 count)
{
  const gsize entry_size = layer->geom.extended_l2 ? 16 : 8;
  const guint8 *p = (const guint8 *) g_bytes_get_data (table, NULL) +
                    (cluster & (layer->geom.l2_entries - 1)) * entry_size;

  return zero_entries (p, entry_size, count);
}

static gboolean
check_range (RechainLayer *layer, guint64 offset, guint64 length, GError **error)
{
  if (offset > layer->virtual_size || layer->virtual_size - offset < length)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("%s: range 0x%" PRIx64 "+0x%" PRIx64 " is "
                   "beyond the virtual size %" PRIu64),
                   layer->path, offset, length, layer->virtual_size);
      return FALSE;
    }
  return TRUE;
}

static gboolean
qcow2_map (RechainLayer *layer, guint64 offset, guint64 length, GArray *extents, GError **error)
{
  const RechainQcow2Geometry *g = &layer->geom;
  const guint64 l2_span = g->l2_entries << g->cluster_bits;
  const guint64 end = offset + length;
  guint64 pos = offset;

  while (pos < end)
    {
      guint64 l1_index = pos / l2_span;
      guint64 span_end = MIN (end, (l1_index + 1) * l2_span);
      guint64 l2_offset = l1_index < layer->l1_size ? layer->l2_offsets[l1_index] : 0;
      g_autoptr(GBytes) table = NULL;

      if (l2_offset == 0)
        {
          /* A whole L2 table's span in one step: this is what keeps the map
           * of a sparse 1 TiB image cheap. */
          RechainExtent e = { pos, span_end - pos, RECHAIN_EXTENT_UNALLOCATED, 0,
                              RECHAIN_NO_HOST_OFFSET, FALSE };
          rechain_extent_append (extents, &e);
          pos = span_end;
          continue;
        }

      table = qcow2_get_l2 (layer, l2_offset, error);
      if (!table)
        return FALSE;

      while (pos < span_end)
        {
          guint64 cluster = pos >> g->cluster_bits;
          guint64 cluster_start = cluster << g->cluster_bits;
          guint64 cluster_end = MIN (span_end, cluster_start + g->cluster_size);
          RechainQcow2L2Entry entry;
          guint64 next = cluster +
            l2_zero_entries (layer, table, cluster,
                             ((span_end - 1) >> g->cluster_bits) - cluster + 1);

          /* A run of all-zero entries (unallocated clusters) in one step:
           * most of a sparse table, and nothing to decode. */
          if (next > cluster)
            {
              RechainExtent e = { pos, MIN (span_end, next << g->cluster_bits) - pos,
                                  RECHAIN_EXTENT_UNALLOCATED, 0, RECHAIN_NO_HOST_OFFSET, FALSE };
              rechain_extent_append (extents, &e);
              pos += e.length;
              continue;
            }

          if (!qcow2_decode_entry (layer, table, cluster, &entry, error))
            return FALSE;

          if (entry.compressed)
            {
              RechainExtent e = { pos, cluster_end - pos, RECHAIN_EXTENT_DATA, 0,
                                  RECHAIN_NO_HOST_OFFSET, TRUE };
              rechain_extent_append (extents, &e);
              pos = cluster_end;
              continue;
            }

          while (pos < cluster_end)
            {
              guint sc = (guint) ((pos - cluster_start) >> g->subcluster_bits);
              guint64 sc_start = cluster_start + ((guint64) sc << g->subcluster_bits);
              guint64 piece_end = MIN (cluster_end, sc_start + g->subcluster_size);
              RechainExtent e = { pos, 0, RECHAIN_EXTENT_UNALLOCATED, 0,
                                  RECHAIN_NO_HOST_OFFSET, FALSE };

              /* Without subclusters, one step covers the whole cluster. */
              if (g->subclusters == 1)
                piece_end = cluster_end;
              e.length = piece_end - pos;
              switch (entry.type[sc])
                {
                case RECHAIN_QCOW2_SUBCLUSTER_ZERO:
                  e.kind = RECHAIN_EXTENT_ZERO;
                  break;
                case RECHAIN_QCOW2_SUBCLUSTER_DATA:
                  e.kind = RECHAIN_EXTENT_DATA;
                  e.host_offset = entry.host_offset + (pos - cluster_start);
                  break;
                default:
                  break;
                }
              rechain_extent_append (extents, &e);
              pos = piece_end;
            }
        }
    }
  return TRUE;
}

static gboolean
raw_map (RechainLayer *layer, guint64 offset, guint64 length, GArray *extents, GError **error)
{
  int fd = rechain_file_get_fd (layer->file);
  guint64 end = offset + length;
  guint64 pos = offset;

  /* Holes of a sparse raw file read as zeros: report them as such so that
   * cost follows the data. Where SEEK_DATA is not supported, everything is
   * data. */
  while (pos < end)
    {
      off_t data = lseek (fd, (off_t) pos, SEEK_DATA);
      off_t hole;
      RechainExtent e = { pos, 0, RECHAIN_EXTENT_DATA, 0, pos, FALSE };

      if (data < 0)
        {
          if (errno == ENXIO)
            {
              /* No data from pos to the end of the file. */
              e.kind = RECHAIN_EXTENT_ZERO;
              e.length = end - pos;
              rechain_extent_append (extents, &e);
              break;
            }
          e.length = end - pos;
          rechain_extent_append (extents, &e);
          break;
        }
      if ((guint64) data > pos)
        {
          e.kind = RECHAIN_EXTENT_ZERO;
          e.length = MIN ((guint64) data, end) - pos;
          rechain_extent_append (extents, &e);
          pos += e.length;
          continue;
        }
      hole = lseek (fd, (off_t) pos, SEEK_HOLE);
      if (hole < 0 || (guint64) hole <= pos)
        hole = (off_t) end;
      e.length = MIN ((guint64) hole, end) - pos;
      rechain_extent_append (extents, &e);
      pos += e.length;
    }
  (void) error;
  return TRUE;
}

gboolean
rechain_layer_map (RechainLayer *layer, guint64 offset, guint64 length,
                   GArray *extents, GError **error)
{
  if (!check_range (layer, offset, length, error))
    return FALSE;
  if (layer->format == RECHAIN_FORMAT_RAW)
    return raw_map (layer, offset, length, extents, error);
  if (!qcow2_map (layer, offset, length, extents, error))
    {
      g_prefix_error (error, "%s: ", layer->path);
      return FALSE;
    }
  return TRUE;
}

/* ---- reading ---- */

static gboolean
qcow2_read_compressed (RechainLayer *layer, guint64 offset, guint8 *buf, gsize length,
                       GError **error)
{
  const RechainQcow2Geometry *g = &layer->geom;
  g_autofree guint8 *cluster_buf = g_malloc (g->cluster_size);
  g_autofree guint8 *compressed = NULL;
  guint64 pos = offset, end = offset + length;

  while (pos < end)
    {
      guint64 cluster = pos >> g->cluster_bits;
      guint64 cluster_start = cluster << g->cluster_bits;
      guint64 piece_end = MIN (end, cluster_start + g->cluster_size);
      guint64 l1_index = cluster / g->l2_entries;
      g_autoptr(GBytes) table = NULL;
      RechainQcow2L2Entry entry;

      table = qcow2_get_l2 (layer, layer->l2_offsets[l1_index], error);
      if (!table || !qcow2_decode_entry (layer, table, cluster, &entry, error))
        return FALSE;
      g_assert (entry.compressed); /* the map said so, and tables are immutable here */

      compressed = g_realloc (compressed, entry.compressed_length);
      if (!rechain_file_pread_zero_fill (layer->file, compressed, entry.compressed_length,
                                         entry.compressed_offset, error) ||
          !rechain_qcow2_decompress (layer->header->compression_type, compressed,
                                     entry.compressed_length, cluster_buf,
                                     g->cluster_size, error))
        {
          g_prefix_error (error, _("compressed cluster at guest offset 0x%" PRIx64 ": "),
                          cluster_start);
          return FALSE;
        }
      memcpy (buf + (pos - offset), cluster_buf + (pos - cluster_start), piece_end - pos);
      pos = piece_end;
    }
  return TRUE;
}

RechainLayerEncryption
rechain_layer_get_encryption (RechainLayer *layer)
{
  if (!layer->header)
    return RECHAIN_LAYER_ENCRYPTION_NONE;
  switch (layer->header->crypt_method)
    {
    case RECHAIN_QCOW2_CRYPT_AES:
      return RECHAIN_LAYER_ENCRYPTION_AES;
    case RECHAIN_QCOW2_CRYPT_LUKS:
      return RECHAIN_LAYER_ENCRYPTION_LUKS;
    default:
      return RECHAIN_LAYER_ENCRYPTION_NONE;
    }
}

const char *
rechain_layer_get_encryption_name (RechainLayer *layer)
{
  switch (rechain_layer_get_encryption (layer))
    {
    case RECHAIN_LAYER_ENCRYPTION_LUKS:
      return "luks";
    case RECHAIN_LAYER_ENCRYPTION_AES:
      return "aes";
    case RECHAIN_LAYER_ENCRYPTION_NONE:
    default:
      return NULL;
    }
}

gboolean
rechain_layer_read_luks_header (RechainLayer *layer, RechainLuksHeader *out, GError **error)
{
  const RechainQcow2Header *h = layer->header;
  guint8 buf[RECHAIN_LUKS_HEADER_SIZE];
  /* the header alone: the key material is bounded against the area's
   * length, not read */
  gsize len = (gsize) MIN (h->crypto_header_length, sizeof buf);

  g_return_val_if_fail (rechain_layer_get_encryption (layer) == RECHAIN_LAYER_ENCRYPTION_LUKS, FALSE);
  if (!rechain_file_pread (layer->file, buf, len, h->crypto_header_offset, error))
    {
      g_prefix_error (error, _("%s: reading the LUKS header: "), layer->path);
      return FALSE;
    }
  if (!rechain_luks_header_parse (buf, len, h->crypto_header_length, out, error))
    {
      g_prefix_error (error, "%s: ", layer->path);
      return FALSE;
    }
  return TRUE;
}

gboolean
rechain_layer_check_data_access (RechainLayer *layer, GError **error)
{
  switch (rechain_layer_get_encryption (layer))
    {
    case RECHAIN_LAYER_ENCRYPTION_NONE:
      return TRUE;
    case RECHAIN_LAYER_ENCRYPTION_AES:
      /* QEMU's system emulators refuse legacy AES too, so the way out is
       * the one QEMU documents, not support for a broken cipher mode. */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: the image uses legacy AES encryption (crypt_method 1), whose data "
                     "rechain does not read or write; only an unsafe rebase (-u) works on it. "
                     "Convert it to "
                     "LUKS first: qemu-img convert -O qcow2 --object secret,id=sec0,file=KEYFILE "
                     "--image-opts driver=qcow2,encrypt.key-secret=sec0,file.filename=%s "
                     "-o encrypt.format=luks,encrypt.key-secret=sec0 NEW.qcow2"),
                   layer->path, layer->path);
      return FALSE;
    case RECHAIN_LAYER_ENCRYPTION_LUKS:
    default:
      if (layer->key)
        return TRUE;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                   _("%s is LUKS-encrypted and no key was given for it: use --object "
                     "secret,id=ID,file=FILE with --image-opts encrypt.key-secret=ID (or "
                     "backing.encrypt.key-secret=ID for a backing file), or --key-file; an "
                     "unsafe rebase (-u), info and map need no key"), layer->path);
      return FALSE;
    }
}

/* The LUKS area the crypto header extension points to is read whole to
 * unlock: header and key material. The key material of 8 slots of 64-byte
 * keys with 4000 stripes is 2 MB; a crafted length cannot make us read
 * more than this (rechain_luks_unlock refuses material past what was
 * read). */
#define MAX_LUKS_AREA (G_GUINT64_CONSTANT (16) << 20)

gboolean
rechain_layer_unlock (RechainLayer *layer, const guint8 *passphrase, gsize passphrase_len,
                      GError **error)
{
  const RechainQcow2Header *h = layer->header;
  gsize len;
  g_autofree guint8 *area = NULL;
  RechainLuksUnlockResult result;
  GError *local = NULL;

  if (rechain_layer_get_encryption (layer) != RECHAIN_LAYER_ENCRYPTION_LUKS || layer->key)
    return TRUE;
  len = (gsize) MIN (h->crypto_header_length, MAX_LUKS_AREA);
  area = g_malloc (MAX (len, 1));
  if (!rechain_file_pread (layer->file, area, len, h->crypto_header_offset, error))
    {
      g_prefix_error (error, _("%s: reading the LUKS header: "), layer->path);
      return FALSE;
    }
  layer->key = rechain_layer_key_unlock (area, len, h->crypto_header_length, passphrase,
                                         passphrase_len, &result, &local);
  if (layer->key)
    return TRUE;
  if (result == RECHAIN_LUKS_WRONG_KEY)
    {
      /* the library's message names no image; this one does */
      g_clear_error (&local);
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                   _("the key given for %s does not open any of its key slots; nothing was "
                     "changed"), layer->path);
      return FALSE;
    }
  g_propagate_prefixed_error (error, local, "%s: ", layer->path);
  return FALSE;
}

gboolean
rechain_layer_is_unlocked (RechainLayer *layer)
{
  return layer->key != NULL;
}

void
rechain_layer_share_key (RechainLayer *layer, RechainLayer *unlocked)
{
  if (!layer->key && unlocked->key)
    layer->key = rechain_layer_key_ref (unlocked->key);
}

gboolean
rechain_layer_lookup_key (RechainLayer *layer, const RechainKeyLookup *keys,
                          const guint8 **data, gsize *len)
{
  struct stat st;

  if (!keys || !keys->lookup ||
      fstat (rechain_file_get_fd (layer->file), &st) < 0)
    return FALSE;
  return keys->lookup (keys->user_data, layer->path, st.st_dev, st.st_ino, data, len);
}

gboolean
rechain_layer_read (RechainLayer *layer, guint64 offset, void *buf, gsize length,
                    GError **error)
{
  g_autoptr(GArray) extents = rechain_extent_list_new ();
  guint8 *out = buf;

  if (!rechain_layer_check_data_access (layer, error) ||
      !rechain_layer_map (layer, offset, length, extents, error))
    return FALSE;

  for (guint i = 0; i < extents->len; i++)
    {
      const RechainExtent *e = &g_array_index (extents, RechainExtent, i);
      guint8 *dst = out + (e->offset - offset);

      switch (e->kind)
        {
        case RECHAIN_EXTENT_UNALLOCATED:
          break;
        case RECHAIN_EXTENT_ZERO:
          memset (dst, 0, e->length);
          break;
        case RECHAIN_EXTENT_DATA:
          if (e->compressed && layer->key)
            {
              /* QEMU refuses to compress into an encrypted image, and
               * compressed clusters have no sector-aligned host offset to
               * make an IV from */
              g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                           _("compressed cluster at guest offset 0x%" PRIx64 " in an encrypted "
                             "image"), e->offset);
              goto fail;
            }
          if (e->compressed)
            {
              if (!qcow2_read_compressed (layer, e->offset, dst, e->length, error))
                goto fail;
            }
          else if (layer->key)
            {
              if (!rechain_layer_key_pread (layer->key, rechain_layer_get_data_file (layer), dst,
                                            e->length, e->host_offset, error))
                goto fail;
            }
          else if (!rechain_file_pread_zero_fill (rechain_layer_get_data_file (layer), dst,
                                                  e->length, e->host_offset, error))
            goto fail;
          break;
        }
    }
  return TRUE;

fail:
  g_prefix_error (error, "%s: ", layer->path);
  return FALSE;
}

/* ---- snapshot table and bitmap directory ---- */

/* Reads @size bytes at @offset that a header field points to, refusing
 * sizes beyond @limit so a crafted header cannot make us allocate much. */
static guint8 *
read_table (RechainLayer *layer, guint64 offset, guint64 size, guint64 limit,
            const char *what, GError **error)
{
  g_autofree guint8 *buf = NULL;

  if (size > limit)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("%s: the %s (%" PRIu64 " bytes) exceeds the limit of %"
                   PRIu64 " bytes"), layer->path, what, size, limit);
      return NULL;
    }
  buf = g_malloc (MAX (size, 1));
  if (!rechain_file_pread (layer->file, buf, size, offset, error))
    {
      g_prefix_error (error, _("%s: reading the %s: "), layer->path, what);
      return NULL;
    }
  return g_steal_pointer (&buf);
}

GArray *
rechain_layer_read_snapshots (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = layer->header;
  g_autofree guint8 *buf = NULL;
  guint64 size;
  GArray *snapshots;

  if (!h || h->nb_snapshots == 0)
    return g_array_new (FALSE, TRUE, sizeof (RechainQcow2Snapshot));
  /* Entries are variable-length: read what the table can occupy at most
   * (or up to the end of the file), the parser bounds each entry. */
  size = MIN (layer->file_size - h->snapshots_offset, RECHAIN_LAYER_MAX_SNAPSHOT_TABLE);
  buf = read_table (layer, h->snapshots_offset, size, RECHAIN_LAYER_MAX_SNAPSHOT_TABLE,
                    /* TRANSLATORS: as in "%s: the %s (%lu bytes) exceeds the
                     * limit of %lu bytes" and "%s: reading the %s: " */
                    _("snapshot table"), error);
  if (!buf)
    return NULL;
  snapshots = rechain_qcow2_snapshots_parse (buf, size, h->nb_snapshots, &layer->geom,
                                             layer->file_size, error);
  if (!snapshots)
    g_prefix_error (error, _("%s: snapshot table: "), layer->path);
  return snapshots;
}

GArray *
rechain_layer_read_bitmaps (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = layer->header;
  g_autofree guint8 *buf = NULL;
  GArray *bitmaps;

  if (!h || !h->has_bitmaps_ext)
    return g_array_new (FALSE, TRUE, sizeof (RechainQcow2Bitmap));
  buf = read_table (layer, h->bitmap_directory_offset, h->bitmap_directory_size,
                    RECHAIN_LAYER_MAX_BITMAP_DIRECTORY,
                    /* TRANSLATORS: see "snapshot table" */
                    _("bitmap directory"), error);
  if (!buf)
    return NULL;
  bitmaps = rechain_qcow2_bitmaps_parse (buf, h->bitmap_directory_size, h->nb_bitmaps,
                                         &layer->geom, layer->file_size, error);
  if (!bitmaps)
    g_prefix_error (error, _("%s: bitmap directory: "), layer->path);
  return bitmaps;
}

guint64
rechain_layer_get_allocated (RechainLayer *layer)
{
  return rechain_file_get_allocated (layer->file);
}

/* ---- rewriting the backing file name ---- */

/* The checks of a new backing name that need neither the header cluster
 * nor a write. */
static gboolean
check_backing_fields (RechainLayer *layer, const char *backing_file, GError **error)
{
  if (layer->format != RECHAIN_FORMAT_QCOW2)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: a raw image has no backing file to change"), layer->path);
      return FALSE;
    }
  if (backing_file && (layer->header->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: the image keeps its data in a raw external data file "
                   "(data_file_raw), which cannot be combined with a backing file"), layer->path);
      return FALSE;
    }
  if (backing_file && strlen (backing_file) > RECHAIN_QCOW2_MAX_BACKING_NAME)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("%s: the backing file name is %zu bytes long; qcow2 allows at most %u"),
                   layer->path, strlen (backing_file), RECHAIN_QCOW2_MAX_BACKING_NAME);
      return FALSE;
    }
  return TRUE;
}

/* The header cluster with @backing_file and @backing_format, serialized
 * before anything is written: NULL with @error if the name does not fit.
 * The in-memory header keeps the new name only with @keep and success;
 * otherwise it is put back. The arguments may be the header's own strings:
 * they are copied first. */
static guint8 *
serialize_with_backing (RechainLayer *layer, const char *backing_file,
                        const char *backing_format, gboolean keep, GError **error)
{
  g_autofree char *file_arg = g_strdup (backing_file);
  g_autofree char *format_arg = g_strdup (backing_format);
  g_autofree char *old_file = g_strdup (layer->header->backing_file);
  g_autofree char *old_format = g_strdup (layer->header->backing_format);
  guint8 *header_cluster;

  rechain_qcow2_header_set_backing (layer->header, file_arg, format_arg);
  header_cluster = rechain_qcow2_header_serialize (layer->header, error);
  if (!header_cluster || !keep)
    rechain_qcow2_header_set_backing (layer->header, old_file, old_format);
  if (!header_cluster)
    g_prefix_error (error, "%s: ", layer->path);
  return header_cluster;
}

gboolean
rechain_layer_check_backing_change (RechainLayer *layer, const char *backing_file,
                                    const char *backing_format, GError **error)
{
  g_autofree guint8 *header_cluster = NULL;

  if (!check_backing_fields (layer, backing_file, error))
    return FALSE;
  header_cluster = serialize_with_backing (layer, backing_file, backing_format, FALSE, error);
  return header_cluster != NULL;
}

gboolean
rechain_layer_write_backing (RechainLayer *layer, const char *backing_file,
                             const char *backing_format, GError **error)
{
  RechainFile *file = layer->file;
  gsize align = rechain_file_get_alignment (file);
  gsize cluster = (gsize) layer->geom.cluster_size;
  gsize len = (cluster + align - 1) / align * align;
  g_autofree guint8 *header_cluster = NULL;
  void *buf;
  gboolean ok;

  if (!check_backing_fields (layer, backing_file, error))
    return FALSE;
  if (!rechain_file_is_writable (file))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_READ_ONLY,
                   _("%s: the image was opened read-only"), layer->path);
      return FALSE;
    }

  /* "An implementation may only write to an image with unknown auto-clear
   * features if it clears the respective bits from this field first." */
  layer->header->autoclear_features &= RECHAIN_QCOW2_AUTOCLEAR_KNOWN;

  /* Serialize before writing anything: if the new name does not fit, the
   * file is untouched and the in-memory header is put back. */
  header_cluster = serialize_with_backing (layer, backing_file, backing_format, TRUE, error);
  if (!header_cluster)
    return FALSE;

  /* One write of the whole header cluster (with O_DIRECT, of the aligned
   * blocks that hold it: the bytes after the cluster are read back first
   * and written unchanged), then a flush: the header either names the old
   * backing file or the new one. */
  buf = rechain_io_buffer_alloc (len);
  ok = rechain_file_pread_zero_fill (file, buf, len, 0, error);
  if (ok)
    {
      memcpy (buf, header_cluster, cluster);
      ok = rechain_file_pwrite (file, buf, len, 0, error) &&
           rechain_file_flush (file, error);
    }
  rechain_io_buffer_free (buf);
  return ok;
}

/* ---- writing ---- */

static gboolean
io_pread (gpointer user, void *buf, gsize len, guint64 offset, GError **error)
{
  return rechain_file_pread (user, buf, len, offset, error);
}

static gboolean
io_pwrite (gpointer user, const void *buf, gsize len, guint64 offset, GError **error)
{
  return rechain_file_pwrite (user, buf, len, offset, error);
}

static gboolean
io_flush (gpointer user, GError **error)
{
  return rechain_file_flush (user, error);
}

RechainQcow2Writer *
rechain_layer_new_writer (RechainLayer *layer, RechainQcow2WriterFlags flags, GError **error)
{
  RechainQcow2IO image_io = { io_pread, io_pwrite, io_flush, layer->file };
  RechainQcow2IO data_io = { io_pread, io_pwrite, io_flush, layer->data_file };
  gboolean plan = (flags & RECHAIN_QCOW2_WRITER_PLAN) != 0;
  RechainQcow2Writer *writer;

  if (!rechain_layer_check_data_access (layer, error))
    return NULL;
  if (layer->format != RECHAIN_FORMAT_QCOW2 || (!plan && !rechain_file_is_writable (layer->file)))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_READ_ONLY,
                   _("%s: the image is not a qcow2 image opened for writing"), layer->path);
      return NULL;
    }

  /* The writer validates the metadata it will update (refcount table and
   * blocks, L1 and L2 tables) without writing: an image refused for its
   * own metadata stays byte for byte as it was. */
  writer = rechain_qcow2_writer_new (layer->header, &image_io,
                                     layer->data_file ? &data_io : NULL,
                                     layer->file_size, flags, error);
  if (!writer)
    {
      g_prefix_error (error, "%s: ", layer->path);
      return NULL;
    }
  /* Guest data of an encrypted image is encrypted at its host offset on
   * its way to the file; metadata is not, and a planning writer drops the
   * data anyway. */
  if (layer->key && !plan)
    {
      RechainQcow2IO crypt_io, crypt_data_io;

      rechain_crypt_io_init (&layer->crypt_io, layer->key, layer->file, &crypt_io);
      if (layer->data_file)
        rechain_crypt_io_init (&layer->crypt_data_io, layer->key, layer->data_file,
                               &crypt_data_io);
      rechain_qcow2_writer_set_data_io (writer, &crypt_io,
                                        layer->data_file ? &crypt_data_io : NULL);
    }
  /* Unknown autoclear bits must be cleared before any other write, but
   * only once the image is known to be writable; a planning writer writes
   * nothing, so nothing is cleared for it. */
  if (!plan && (layer->header->autoclear_features & ~RECHAIN_QCOW2_AUTOCLEAR_KNOWN) &&
      !rechain_layer_write_backing (layer, layer->header->backing_file,
                                    layer->header->backing_format, error))
    {
      rechain_qcow2_writer_free (writer);
      return NULL;
    }
  return writer;
}

/* rechain_layer_check_tables() of the L2 tables of L1 entries
 * [@first, @end). */
static gboolean
check_tables_range (RechainLayer *layer, guint32 first_l1, guint32 end_l1, GError **error)
{
  const RechainQcow2Geometry *g = &layer->geom;
  const gsize entry_size = g->extended_l2 ? 16 : 8;
  g_autofree guint8 *buf = NULL;
  guint64 clusters;

  clusters = (layer->virtual_size + g->cluster_size - 1) >> g->cluster_bits;
  for (guint32 i = first_l1; i < end_l1; i++)
    {
      guint64 first = (guint64) i * g->l2_entries;
      guint64 count, index = 0;

      if (layer->l2_offsets[i] == 0 || first >= clusters)
        continue;
      if (!buf)
        buf = rechain_io_buffer_alloc (g->cluster_size);
      if (!rechain_file_pread (layer->file, buf, g->cluster_size, layer->l2_offsets[i], error))
        {
          g_prefix_error (error, _("%s: reading the L2 table at offset 0x%" PRIx64 ": "),
                          layer->path, layer->l2_offsets[i]);
          return FALSE;
        }
      /* Only the entries the map can reach: those below the virtual size. */
      count = MIN ((guint64) g->l2_entries, clusters - first);
      for (;;)
        {
          RechainQcow2L2Entry entry;
          const guint8 *p;

          index += zero_entries (buf + index * entry_size, entry_size, count - index);
          if (index >= count)
            break;
          p = buf + index * entry_size;
          if (!rechain_qcow2_l2_entry_decode (g, rd64 (p), g->extended_l2 ? rd64 (p + 8) : 0,
                                              &entry, error))
            {
              g_prefix_error (error, _("%s: L2 entry for guest offset 0x%" PRIx64 ": "),
                              layer->path, (first + index) << g->cluster_bits);
              return FALSE;
            }
          index++;
        }
    }
  return TRUE;
}

typedef struct {
  RechainLayer *layer;
  guint32 first, end;
  GError *error;
} CheckPart;

static gpointer
check_part_thread (gpointer data)
{
  CheckPart *part = data;

  check_tables_range (part->layer, part->first, part->end, &part->error);
  return NULL;
}

gboolean
rechain_layer_check_tables (RechainLayer *layer, GError **error)
{
  CheckPart second;
  GThread *thread = NULL;
  gboolean ok;

  if (layer->format != RECHAIN_FORMAT_QCOW2)
    return TRUE;
  /* A large layer is checked in two halves, the second on a thread of its
   * own (the tables are read from the page cache: the copy and the scan
   * are CPU work). Without a thread, all on this one. */
  second = (CheckPart) { layer, layer->l1_size / 2, layer->l1_size, NULL };
  if (layer->l1_size >= 64)
    thread = g_thread_try_new ("rechain-check", check_part_thread, &second, NULL);
  if (!thread)
    second.first = layer->l1_size;
  ok = check_tables_range (layer, 0, second.first, error);
  if (thread)
    g_thread_join (thread);
  if (second.error)
    {
      /* the first bad entry in guest order is the one reported */
      if (ok)
        g_propagate_error (error, second.error);
      else
        g_error_free (second.error);
      return FALSE;
    }
  return ok;
}
