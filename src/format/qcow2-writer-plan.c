/* qcow2-writer-plan.c: what makes a qcow2 writer a planning one
 * (RECHAIN_QCOW2_WRITER_PLAN, qcow2-writer.h): the I/O it is given is
 * wrapped so that nothing reaches the files, while the writer itself runs
 * unchanged -- the only way a dry run and a real run cannot disagree.
 *   metadata  goes to a shadow of the image file, in pages: the writer
 *             reads its L2 tables and refcount blocks back after each
 *             commit, and must find what it wrote;
 *   data      guest data (of the image file or of an external data file)
 *             is dropped: the writer counts it, never reads it back, and a
 *             shadow of it would cost the size of the whole copy;
 *   flushes   do nothing (the writer counts them).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2-writer-private.h"

#define SHADOW_PAGE 4096u

typedef struct {
  guint64 index; /* the hash key: page index in the file */
  guint8 data[SHADOW_PAGE];
} ShadowPage;

struct _PlanShadow {
  RechainQcow2IO under;
  guint64 under_size;  /* the file's size: past it, the real writer's file
                        * holds only what it wrote (in the shadow or data) */
  GHashTable *pages;   /* page index -> ShadowPage* */
};

void
plan_shadow_free (PlanShadow *s)
{
  if (!s)
    return;
  g_hash_table_unref (s->pages);
  g_free (s);
}

/* [@offset, +@len) of the file as it is, zeros past its end. */
static gboolean
under_read (PlanShadow *s, guint8 *buf, guint64 len, guint64 offset, GError **error)
{
  guint64 have = offset >= s->under_size ? 0 : MIN (len, s->under_size - offset);

  memset (buf + have, 0, len - have);
  return have == 0 || s->under.pread (s->under.user, buf, have, offset, error);
}

static gboolean
shadow_pread (gpointer user, void *buf, gsize len, guint64 offset, GError **error)
{
  PlanShadow *s = user;
  guint8 *out = buf;
  guint64 end = offset + len;
  guint64 run = offset; /* start of the bytes left to read from the file */

  /* one read of the file for each run of pages the shadow does not hold:
   * most reads (the tables the writer loads first) are one read */
  for (guint64 pos = offset; pos < end; )
    {
      guint64 index = pos / SHADOW_PAGE;
      guint64 page_end = MIN (end, (index + 1) * SHADOW_PAGE);
      const ShadowPage *page = g_hash_table_lookup (s->pages, &index);

      if (page)
        {
          if (run < pos && !under_read (s, out + (run - offset), pos - run, run, error))
            return FALSE;
          memcpy (out + (pos - offset), page->data + pos % SHADOW_PAGE, page_end - pos);
          run = page_end;
        }
      pos = page_end;
    }
  return run == end || under_read (s, out + (run - offset), end - run, run, error);
}

static gboolean
shadow_pwrite (gpointer user, const void *buf, gsize len, guint64 offset, GError **error)
{
  PlanShadow *s = user;
  const guint8 *in = buf;
  guint64 end = offset + len;

  for (guint64 pos = offset; pos < end; )
    {
      guint64 index = pos / SHADOW_PAGE;
      guint64 page_end = MIN (end, (index + 1) * SHADOW_PAGE);
      ShadowPage *page = g_hash_table_lookup (s->pages, &index);

      if (!page)
        {
          page = g_new (ShadowPage, 1);
          page->index = index;
          /* a partly written page keeps the rest of the file's bytes */
          if (page_end - pos < SHADOW_PAGE &&
              !under_read (s, page->data, SHADOW_PAGE, index * SHADOW_PAGE, error))
            {
              g_free (page);
              return FALSE;
            }
          g_hash_table_insert (s->pages, &page->index, page);
        }
      memcpy (page->data + pos % SHADOW_PAGE, in + (pos - offset), page_end - pos);
      pos = page_end;
    }
  return TRUE;
}

static gboolean
drop_write (gpointer user, const void *buf, gsize len, guint64 offset, GError **error)
{
  return TRUE;
}

static gboolean
no_flush (gpointer user, GError **error)
{
  return TRUE;
}

void
plan_io_init (RechainQcow2Writer *w, const RechainQcow2IO *image_io,
              const RechainQcow2IO *data_io, guint64 file_size)
{
  PlanShadow *s = g_new0 (PlanShadow, 1);

  s->under = *image_io;
  s->under_size = file_size;
  s->pages = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, g_free);
  w->shadow = s;
  w->io = (RechainQcow2IO) { shadow_pread, shadow_pwrite, no_flush, s };
  w->image_data_io = (RechainQcow2IO) { shadow_pread, drop_write, no_flush, s };
  if (data_io)
    w->data_io = (RechainQcow2IO) { data_io->pread, drop_write, no_flush, data_io->user };
}
