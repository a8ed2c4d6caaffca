/* qcow2-writer.h: allocating writes into a qcow2 image, crash-consistently.
 *
 * The writer fills guest regions that the image does not allocate yet (what
 * a safe rebase copies into an overlay): it allocates clusters from the
 * refcount structures (any refcount width, growing refcount blocks and the
 * refcount table as needed), creates L2 tables, copies L2 tables that
 * internal snapshots share, sets extended L2 subcluster bits, writes zero
 * clusters, compressed clusters, and data in an external data file.
 *
 * It does no I/O of its own: it calls the functions it is given, so it can
 * run against a file, a fault-injecting file, or a buffer in a test.
 *
 * A planning writer (RECHAIN_QCOW2_WRITER_PLAN, what a dry run uses) is the
 * same writer, taking every decision the real one takes, but it never
 * writes the image: guest data is counted and dropped, metadata goes to an
 * in-memory shadow that answers the writer's later reads of it (it drops
 * its caches at commit() and reads tables back), flushes are counted. Its
 * stats are the ones the real writer would report on the same image and
 * calls, by construction: the two differ only in where the bytes go.
 *
 * Durability order, the reason this file exists (see commit()):
 *   1. data, refcount blocks and new L2 tables are written, then flushed;
 *   2. refcount table entries naming new refcount blocks, then flushed;
 *   3. existing L2 tables and L1 entries that name the new clusters and
 *      tables, then flushed;
 *   4. refcount decreases of clusters no longer referenced (L2 tables
 *      replaced by their copies), then flushed.
 * So at every moment the image on disk is consistent: an interruption can
 * leak clusters (refcount without reference), never the reverse.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "format/qcow2.h"

G_BEGIN_DECLS

typedef struct {
  gboolean (*pread) (gpointer user, void *buf, gsize len, guint64 offset, GError **error);
  gboolean (*pwrite) (gpointer user, const void *buf, gsize len, guint64 offset, GError **error);
  gboolean (*flush) (gpointer user, GError **error);
  gpointer user;
} RechainQcow2IO;

typedef struct {
  guint64 clusters_allocated;  /* host clusters newly referenced */
  guint64 data_bytes;          /* guest data bytes written */
  guint64 zero_bytes;          /* guest bytes made zero by metadata alone */
  guint64 compressed_clusters; /* clusters stored compressed */
  guint64 metadata_bytes;      /* L1/L2/refcount/header bytes written */
  guint64 flushes;
  guint64 l2_tables_copied;    /* L2 tables copied away from a snapshot */
} RechainQcow2WriterStats;

typedef struct _RechainQcow2Writer RechainQcow2Writer;

typedef enum {
  RECHAIN_QCOW2_WRITER_NONE = 0,
  /* plan: leave the files as they are (see above); they are only read */
  RECHAIN_QCOW2_WRITER_PLAN = 1 << 0,
} RechainQcow2WriterFlags;

/* Creates a writer for the image whose parsed @header is given (the writer
 * updates its refcount-table fields when it moves the table, so that a later
 * header rewrite keeps them). @data_io is the external data file, or NULL.
 * Loads the L1 and refcount tables. With RECHAIN_QCOW2_WRITER_PLAN the
 * pwrite and flush functions of @image_io and @data_io are never called. */
RechainQcow2Writer *rechain_qcow2_writer_new (RechainQcow2Header *header,
                                              const RechainQcow2IO *image_io,
                                              const RechainQcow2IO *data_io,
                                              guint64 file_size,
                                              RechainQcow2WriterFlags flags,
                                              GError **error);
void rechain_qcow2_writer_free (RechainQcow2Writer *writer);

/* Guest data goes through @image_data_io (data in the image file) and
 * @data_io (the external data file, NULL if none) instead of the I/O given
 * to rechain_qcow2_writer_new(): writes, and the read-back of a cluster an
 * internal snapshot shares. Metadata stays on the image I/O. The wrapping
 * may only transform the bytes (encrypt them at their host offset): the
 * order of writes and flushes is the writer's. A planning writer drops
 * guest data, so this changes nothing for it. */
void rechain_qcow2_writer_set_data_io (RechainQcow2Writer *writer,
                                       const RechainQcow2IO *image_data_io,
                                       const RechainQcow2IO *data_io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainQcow2Writer, rechain_qcow2_writer_free)

/* Writes guest data at [@offset, @offset + @length): a range inside one
 * cluster, made of whole subclusters (whole clusters without extended L2;
 * only the last cluster of the image may be shorter), none of which the
 * image allocates yet. */
gboolean rechain_qcow2_writer_write (RechainQcow2Writer *writer,
                                     guint64 offset,
                                     gsize length,
                                     const guint8 *data,
                                     GError **error);

/* For copies that bypass the writer's buffers (clones, in-kernel copies):
 * allocates a fresh host cluster for a range as write() takes, records the
 * L2 entry, and sets *@host to where the range's first byte goes in the
 * image file. Fresh clusters lie past everything the image used, so they
 * read as zeros where nothing is put. The caller puts the data there
 * (directly, or with put_data()) before commit(), which makes it durable
 * before the L2 entry. *@host is 0 (and nothing changes) where the writer
 * cannot give fresh space: images with an external data file, and clusters
 * that already hold some subclusters; use write() there. A planning writer
 * places the same way: *@host is where the real one would put the range
 * (the caller then predicts its copy instead of making it). */
gboolean rechain_qcow2_writer_place (RechainQcow2Writer *writer,
                                     guint64 offset,
                                     gsize length,
                                     guint64 *host,
                                     GError **error);

/* Writes bytes at a host offset obtained from place(). */
gboolean rechain_qcow2_writer_put_data (RechainQcow2Writer *writer,
                                        guint64 host,
                                        const guint8 *data,
                                        gsize length,
                                        GError **error);

/* Makes the same kind of range read as zeros: the zero flag (v3), zero
 * subcluster bits (extended L2), or a data cluster of zeros (v2). */
gboolean rechain_qcow2_writer_write_zeroes (RechainQcow2Writer *writer,
                                            guint64 offset,
                                            gsize length,
                                            GError **error);

/* Writes a whole cluster compressed with the image's compression type (the
 * last cluster may be shorter: it is padded with zeros). Falls back to an
 * ordinary write when compression does not save a sector, or with extended
 * L2 where the cluster is only partly written. */
gboolean rechain_qcow2_writer_write_compressed (RechainQcow2Writer *writer,
                                                guint64 offset,
                                                gsize length,
                                                const guint8 *data,
                                                GError **error);

/* What a compressing rebase (-c) writes into a cluster with extended L2,
 * as QEMU 8.2+ does: the whole cluster, [@offset, @offset + @length) (the
 * last cluster may be shorter), becomes one compressed cluster made of
 * the image's own subclusters (its data, or zeros) and @data where the
 * image allocates nothing; @data's bytes at the image's own subclusters
 * are ignored. Such a cluster has no subcluster bitmap: the backing file
 * no longer shows through anywhere in it. The cluster's old host cluster
 * is released after the L2 entry names the new one (a snapshot sharing it
 * keeps it). Where compression does not save a sector, an ordinary
 * cluster is written whole (every subcluster allocated), as QEMU falls
 * back to an ordinary write. Where @data is NULL or zeros in every
 * subcluster the image does not allocate, those subclusters get zero
 * bits and nothing else changes. Without extended L2 (or with an external
 * data file) this is write_compressed(), or write_zeroes() for NULL. */
gboolean rechain_qcow2_writer_fill_compressed (RechainQcow2Writer *writer,
                                               guint64 offset,
                                               gsize length,
                                               const guint8 *data,
                                               GError **error);

/* Metadata bytes held in memory until commit() (L2 tables, refcount
 * blocks): callers commit when it grows past their memory budget. */
guint64 rechain_qcow2_writer_get_pending (RechainQcow2Writer *writer);
/* Data bytes written since the last commit(): not held in memory (they
 * are in the file already), but not referenced yet either; callers commit
 * now and then so that an interruption loses little work. */
guint64 rechain_qcow2_writer_get_pending_data (RechainQcow2Writer *writer);

/* Makes everything written so far durable, in the order above. */
gboolean rechain_qcow2_writer_commit (RechainQcow2Writer *writer, GError **error);

const RechainQcow2WriterStats *rechain_qcow2_writer_get_stats (RechainQcow2Writer *writer);

G_END_DECLS
