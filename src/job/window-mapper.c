/* window-mapper.c: see window-mapper.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "job/window-mapper.h"

gboolean
rechain_view_map (RechainChain *chain, guint first, guint64 offset, guint64 length,
                  GArray *out, GError **error)
{
  guint64 size, inside;
  RechainExtent beyond = { 0, 0, RECHAIN_EXTENT_UNALLOCATED, -1, RECHAIN_NO_HOST_OFFSET, FALSE };

  if (!chain || first >= rechain_chain_get_depth (chain))
    size = 0;
  else
    size = rechain_layer_get_virtual_size (rechain_chain_get_layer (chain, first));
  inside = offset < size ? MIN (length, size - offset) : 0;
  if (inside > 0 && !rechain_chain_map (chain, first, offset, inside, out, error))
    return FALSE;
  beyond.offset = offset + inside;
  beyond.length = length - inside;
  rechain_extent_append (out, &beyond);
  return TRUE;
}

typedef struct {
  guint64 start;
  GArray *old_map, *new_map;
  GError *error;
} MappedWindow;

static void
mapped_window_free (MappedWindow *w)
{
  g_clear_pointer (&w->old_map, g_array_unref);
  g_clear_pointer (&w->new_map, g_array_unref);
  g_clear_error (&w->error);
  g_free (w);
}

struct _RechainWindowMapper {
  RechainChain *old_chain, *new_chain;
  guint old_first, new_first;
  guint64 size, window;
  GThread *thread;

  GMutex lock;
  GCond cond;
  GQueue queue;            /* of MappedWindow*, in order */
  guint64 queued_extents;
  gboolean stop;           /* the consumer is gone */
  gboolean done;           /* the mapper has pushed its last window */
  gboolean mapper_waits, consumer_waits;
};

static gboolean
queue_full (RechainWindowMapper *m)
{
  return m->queue.length >= RECHAIN_WINDOW_MAPPER_MAX_WINDOWS ||
         m->queued_extents >= RECHAIN_WINDOW_MAPPER_MAX_EXTENTS;
}

static gboolean
queue_half_empty (RechainWindowMapper *m)
{
  return m->queue.length <= RECHAIN_WINDOW_MAPPER_MAX_WINDOWS / 2 &&
         m->queued_extents <= RECHAIN_WINDOW_MAPPER_MAX_EXTENTS / 2;
}

static gpointer
mapper_thread (gpointer data)
{
  RechainWindowMapper *m = data;

  for (guint64 start = 0; start < m->size; start += m->window)
    {
      MappedWindow *w;
      guint64 len = MIN (m->window, m->size - start);
      gboolean failed;

      g_mutex_lock (&m->lock);
      while (!m->stop && queue_full (m))
        {
          m->mapper_waits = TRUE;
          g_cond_wait (&m->cond, &m->lock);
        }
      m->mapper_waits = FALSE;
      if (m->stop)
        {
          g_mutex_unlock (&m->lock);
          break;
        }
      g_mutex_unlock (&m->lock);

      w = g_new0 (MappedWindow, 1);
      w->start = start;
      w->old_map = rechain_extent_list_new ();
      w->new_map = rechain_extent_list_new ();
      failed = !rechain_view_map (m->old_chain, m->old_first, start, len, w->old_map, &w->error) ||
               !rechain_view_map (m->new_chain, m->new_first, start, len, w->new_map, &w->error);

      g_mutex_lock (&m->lock);
      g_queue_push_tail (&m->queue, w);
      m->queued_extents += w->old_map->len + w->new_map->len;
      if (failed || start + len >= m->size)
        m->done = TRUE;
      /* the consumer is woken for a batch of windows, not for each one */
      if (m->consumer_waits &&
          (m->done || m->queue.length >= RECHAIN_WINDOW_MAPPER_BATCH ||
           m->queued_extents >= RECHAIN_WINDOW_MAPPER_MAX_EXTENTS / 2))
        g_cond_broadcast (&m->cond);
      g_mutex_unlock (&m->lock);
      if (failed)
        break;
    }
  g_mutex_lock (&m->lock);
  m->done = TRUE;
  if (m->consumer_waits)
    g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);
  return NULL;
}

RechainWindowMapper *
rechain_window_mapper_new (RechainChain *old_chain, guint old_first,
                           RechainChain *new_chain, guint new_first,
                           guint64 size, guint64 window)
{
  RechainWindowMapper *m = g_new0 (RechainWindowMapper, 1);

  m->old_chain = old_chain;
  m->old_first = old_first;
  m->new_chain = new_chain;
  m->new_first = new_first;
  m->size = size;
  m->window = MAX (window, 1);
  g_mutex_init (&m->lock);
  g_cond_init (&m->cond);
  g_queue_init (&m->queue);
  m->thread = g_thread_new ("rechain-map", mapper_thread, m);
  return m;
}

gboolean
rechain_window_mapper_next (RechainWindowMapper *m, guint64 *start,
                            GArray **old_map, GArray **new_map, GError **error)
{
  MappedWindow *w;

  g_mutex_lock (&m->lock);
  while (m->queue.length == 0 && !m->done)
    {
      m->consumer_waits = TRUE;
      g_cond_wait (&m->cond, &m->lock);
    }
  m->consumer_waits = FALSE;
  w = g_queue_pop_head (&m->queue);
  if (w)
    m->queued_extents -= w->old_map->len + w->new_map->len;
  if (m->mapper_waits && queue_half_empty (m))
    g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);

  if (!w)
    return FALSE;
  if (w->error)
    {
      g_propagate_error (error, g_steal_pointer (&w->error));
      mapped_window_free (w);
      return FALSE;
    }
  *start = w->start;
  *old_map = g_steal_pointer (&w->old_map);
  *new_map = g_steal_pointer (&w->new_map);
  mapped_window_free (w);
  return TRUE;
}

void
rechain_window_mapper_free (RechainWindowMapper *m)
{
  if (!m)
    return;
  g_mutex_lock (&m->lock);
  m->stop = TRUE;
  g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);
  g_thread_join (m->thread);
  g_queue_clear_full (&m->queue, (GDestroyNotify) mapped_window_free);
  g_mutex_clear (&m->lock);
  g_cond_clear (&m->cond);
  g_free (m);
}
