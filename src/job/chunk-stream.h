/* chunk-stream.h: reading a guest range in large chunks ahead of their use.
 *
 * A chunk stream walks [start, end) in chunks and reads each from a view
 * (a chain from a given layer down; zeros past its end) on a worker
 * thread, one chunk ahead: while the caller writes chunk i, chunk i+1 is
 * being read. Memory: two chunks. A compare stream (below) reads two views
 * and compares them on the workers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/chain.h"

G_BEGIN_DECLS

#define RECHAIN_CHUNK_SIZE (1u << 20)

typedef struct _RechainReadPool RechainReadPool;

/* Worker threads shared by the streams of one job. */
RechainReadPool *rechain_read_pool_new (guint threads);
void rechain_read_pool_free (RechainReadPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainReadPool, rechain_read_pool_free)

/* Reads the view of @chain from layer @first of [offset, offset+length)
 * into @buf: zeros past the end of that layer, or everywhere if @chain is
 * NULL or @first is past its bottom. Returns the bytes actually read from
 * files in @bytes_read. Safe to call from several threads. */
gboolean rechain_view_read (RechainChain *chain, guint first, guint64 offset, gsize length,
                            guint8 *buf, guint64 *bytes_read, GError **error);

typedef struct _RechainChunkStream RechainChunkStream;

/* A stream over [start, end) reading the view of @chain from layer
 * @first, in chunks of @chunk_size bytes (the last may be shorter):
 * callers that write whole clusters pass a multiple of the cluster size. */
RechainChunkStream *rechain_chunk_stream_new (RechainReadPool *pool,
                                              RechainChain *chain, guint first,
                                              guint64 start, guint64 end,
                                              gsize chunk_size);

/* The next chunk: its offset, length and buffer (valid until the next
 * call). Returns FALSE at the end (no error) or on a read error. */
gboolean rechain_chunk_stream_next (RechainChunkStream *stream,
                                    guint64 *offset, gsize *length,
                                    const guint8 **buf, GError **error);

/* Bytes read from files so far. */
guint64 rechain_chunk_stream_get_bytes_read (RechainChunkStream *stream);

/* Waits for reads in flight and frees the stream. */
void rechain_chunk_stream_free (RechainChunkStream *stream);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainChunkStream, rechain_chunk_stream_free)

/* A compare stream reads two views of [start, end) in chunks and compares
 * them on the pool's threads: each chunk is handled whole by one worker,
 * piece by piece (both views of a piece, then memcmp while the data is
 * still in the CPU's cache), several chunks at once. The caller receives
 * the chunks' results in order. Chunks are large so that handing them
 * between threads costs little; pieces small, to stay in cache. Memory:
 * 2 x @piece_size per pool thread, kept by the thread for the next stream. */
typedef struct _RechainCompareStream RechainCompareStream;

/* A range where the two views differ. */
typedef struct {
  guint64 offset;
  guint64 length;
} RechainDiffSpan;

/* @granularity (a power of two dividing @piece_size, which divides
 * @chunk_size) is the unit in which differences are reported: a span
 * starts and ends on it (or at @end). */
RechainCompareStream *rechain_compare_stream_new (RechainReadPool *pool,
                                                  RechainChain *a_chain, guint a_first,
                                                  RechainChain *b_chain, guint b_first,
                                                  guint64 start, guint64 end,
                                                  gsize chunk_size, gsize piece_size,
                                                  gsize granularity, guint slots);

/* The next chunk in order: its offset, length and the spans (in order,
 * adjacent ones merged) where the views differ, valid until the next call.
 * Returns FALSE at the end (no error) or on a read error. */
gboolean rechain_compare_stream_next (RechainCompareStream *stream,
                                      guint64 *offset, gsize *length,
                                      const RechainDiffSpan **spans, guint *n_spans,
                                      GError **error);

/* Bytes read from files so far (both views). */
guint64 rechain_compare_stream_get_bytes_read (RechainCompareStream *stream);

/* Waits for work in flight and frees the stream. */
void rechain_compare_stream_free (RechainCompareStream *stream);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainCompareStream, rechain_compare_stream_free)

G_END_DECLS
