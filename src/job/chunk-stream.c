/* chunk-stream.c: see chunk-stream.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "job/chunk-stream.h"

struct _RechainReadPool {
  GThreadPool *threads;
};

typedef struct {
  RechainChunkStream *stream;
  RechainChain *chain;
  guint first;
  guint64 offset;
  gsize length;
  guint8 *buf;
  guint64 bytes_read;
  GError *error;
  gboolean busy;
} ReadJob;

typedef struct {
  guint64 offset;
  gsize length;
  ReadJob a, b;
  gboolean submitted;
} Slot;

struct _RechainChunkStream {
  RechainReadPool *pool;
  gboolean b_enabled;
  gsize chunk_size;
  guint64 next, end;
  Slot slots[2];
  guint current;      /* slot handed out last, or to hand out next */
  gboolean started;
  guint64 bytes_read;
  GMutex lock;
  GCond cond;
};

gboolean
rechain_view_read (RechainChain *chain, guint first, guint64 offset, gsize length,
                   guint8 *buf, guint64 *bytes_read, GError **error)
{
  guint64 size = 0, inside;

  if (chain && first < rechain_chain_get_depth (chain))
    size = rechain_layer_get_virtual_size (rechain_chain_get_layer (chain, first));
  inside = offset < size ? MIN (length, size - offset) : 0;
  if (inside > 0 && !rechain_chain_read (chain, first, offset, buf, inside, error))
    return FALSE;
  memset (buf + inside, 0, length - inside);
  *bytes_read = inside;
  return TRUE;
}

static void
run_job (gpointer data, gpointer user_data)
{
  ReadJob *job = data;
  RechainChunkStream *s = job->stream;
  guint64 n = 0;
  GError *error = NULL;

  rechain_view_read (job->chain, job->first, job->offset, job->length, job->buf, &n, &error);
  g_mutex_lock (&s->lock);
  job->bytes_read = n;
  job->error = error;
  job->busy = FALSE;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

RechainReadPool *
rechain_read_pool_new (guint threads)
{
  RechainReadPool *pool = g_new0 (RechainReadPool, 1);
  /* Exclusive threads: the library's own, not GLib's shared pool. */
  pool->threads = g_thread_pool_new (run_job, NULL, (gint) MAX (threads, 1), TRUE, NULL);
  return pool;
}

void
rechain_read_pool_free (RechainReadPool *pool)
{
  if (!pool)
    return;
  g_thread_pool_free (pool->threads, FALSE, TRUE);
  g_free (pool);
}

static void
submit_job (RechainChunkStream *s, ReadJob *job, guint64 offset, gsize length)
{
  job->offset = offset;
  job->length = length;
  job->busy = TRUE;
  g_thread_pool_push (s->pool->threads, job, NULL);
}

static void
submit_slot (RechainChunkStream *s, Slot *slot)
{
  if (s->next >= s->end)
    {
      slot->submitted = FALSE;
      return;
    }
  slot->offset = s->next;
  slot->length = (gsize) MIN ((guint64) s->chunk_size, s->end - s->next);
  s->next += slot->length;
  slot->submitted = TRUE;
  g_mutex_lock (&s->lock);
  submit_job (s, &slot->a, slot->offset, slot->length);
  if (s->b_enabled)
    submit_job (s, &slot->b, slot->offset, slot->length);
  g_mutex_unlock (&s->lock);
}

RechainChunkStream *
rechain_chunk_stream_new (RechainReadPool *pool,
                          RechainChain *a_chain, guint a_first,
                          gboolean b_enabled, RechainChain *b_chain, guint b_first,
                          guint64 start, guint64 end, gsize chunk_size)
{
  RechainChunkStream *s = g_new0 (RechainChunkStream, 1);

  s->pool = pool;
  s->chunk_size = chunk_size;
  s->b_enabled = b_enabled;
  s->next = start;
  s->end = end;
  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  for (guint i = 0; i < 2; i++)
    {
      Slot *slot = &s->slots[i];
      slot->a = (ReadJob) { s, a_chain, a_first, 0, 0, rechain_io_buffer_alloc (chunk_size), 0, NULL, FALSE };
      if (b_enabled)
        slot->b = (ReadJob) { s, b_chain, b_first, 0, 0, rechain_io_buffer_alloc (chunk_size), 0, NULL, FALSE };
    }
  return s;
}

static void
wait_slot (RechainChunkStream *s, Slot *slot)
{
  g_mutex_lock (&s->lock);
  while (slot->a.busy || slot->b.busy)
    g_cond_wait (&s->cond, &s->lock);
  g_mutex_unlock (&s->lock);
}

gboolean
rechain_chunk_stream_next (RechainChunkStream *s, guint64 *offset, gsize *length,
                           const guint8 **a, const guint8 **b, GError **error)
{
  Slot *slot;

  if (!s->started)
    {
      s->started = TRUE;
      submit_slot (s, &s->slots[0]);
      s->current = 0;
    }
  else
    s->current ^= 1; /* the slot handed out last is free again */

  slot = &s->slots[s->current];
  /* read ahead into the other slot while this one is used */
  submit_slot (s, &s->slots[s->current ^ 1]);
  if (!slot->submitted)
    return FALSE;

  wait_slot (s, slot);
  s->bytes_read += slot->a.bytes_read + slot->b.bytes_read;
  if (slot->a.error || slot->b.error)
    {
      g_propagate_error (error, slot->a.error ? slot->a.error : slot->b.error);
      g_clear_error (slot->a.error ? &slot->b.error : &slot->a.error);
      slot->a.error = slot->b.error = NULL;
      return FALSE;
    }
  *offset = slot->offset;
  *length = slot->length;
  *a = slot->a.buf;
  if (b)
    *b = s->b_enabled ? slot->b.buf : NULL;
  return TRUE;
}

guint64
rechain_chunk_stream_get_bytes_read (RechainChunkStream *s)
{
  return s->bytes_read;
}

void
rechain_chunk_stream_free (RechainChunkStream *s)
{
  if (!s)
    return;
  for (guint i = 0; i < 2; i++)
    {
      Slot *slot = &s->slots[i];
      wait_slot (s, slot);
      g_clear_error (&slot->a.error);
      g_clear_error (&slot->b.error);
      rechain_io_buffer_free (slot->a.buf);
      rechain_io_buffer_free (slot->b.buf);
    }
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
  g_free (s);
}
