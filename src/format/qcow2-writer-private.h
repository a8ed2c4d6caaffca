/* qcow2-writer-private.h: what the files of the qcow2 writer share and
 * nothing outside them may see (it is not part of qcow2-writer.h): the
 * writer's structure, its in-memory refcount blocks and L2 tables, and the
 * functions one of its files calls in another, all G_GNUC_INTERNAL.
 *   qcow2-writer.c       the public API, L2 tables, writing data, commit
 *   qcow2-writer-scan.c  the open-time consistency scan
 *   qcow2-alloc.c        the cluster allocator and refcounts
 *   qcow2-writer-plan.c  the planning writer's I/O: a shadow of the metadata
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "format/qcow2-writer.h"

G_BEGIN_DECLS

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

typedef struct _PlanShadow PlanShadow;

struct _RechainQcow2Writer {
  RechainQcow2Header *header;
  RechainQcow2Geometry geom;
  RechainQcow2IO io;            /* the image file: metadata, reads */
  /* where guest data for the image file is written: io, or for a planning
   * writer nowhere (chosen once here: no test of the mode per write) */
  RechainQcow2IO image_data_io;
  RechainQcow2IO data_io;
  PlanShadow *shadow;           /* a planning writer's metadata, or NULL */
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

/* qcow2-writer.c: metadata writes and flushes of the image file, counted
 * in the stats. */
G_GNUC_INTERNAL gboolean image_write (RechainQcow2Writer *w, const void *buf, gsize len,
                                      guint64 offset, GError **error);
G_GNUC_INTERNAL gboolean image_flush (RechainQcow2Writer *w, GError **error);

/* qcow2-writer-scan.c: the end of everything the image references, and
 * the checks that refuse a corrupt image before anything is written. */
G_GNUC_INTERNAL gboolean scan_references (RechainQcow2Writer *w, guint64 file_size,
                                          guint64 *end, GError **error);

/* qcow2-writer-plan.c: a planning writer's I/O, over the files' (which it
 * only reads); the shadow is freed with plan_shadow_free(). */
G_GNUC_INTERNAL void plan_io_init (RechainQcow2Writer *w, const RechainQcow2IO *image_io,
                                   const RechainQcow2IO *data_io, guint64 file_size);
G_GNUC_INTERNAL void plan_shadow_free (PlanShadow *s);

/* qcow2-alloc.c: refcounts and cluster allocation. */
G_GNUC_INTERNAL void refblock_free (gpointer p);
G_GNUC_INTERNAL gboolean get_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 *value,
                                       GError **error);
G_GNUC_INTERNAL gboolean set_refcount (RechainQcow2Writer *w, guint64 cluster, guint64 value,
                                       GError **error);
G_GNUC_INTERNAL gboolean alloc_clusters (RechainQcow2Writer *w, guint64 count, guint64 *offset,
                                         GError **error);
G_GNUC_INTERNAL gboolean write_dirty_refblocks (RechainQcow2Writer *w, GError **error);

G_END_DECLS
