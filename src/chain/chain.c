/* chain.c: an image and its backing files.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chain/chain.h"
#include "chain/trust.h"
#include "rechain/rechain-i18n-private.h"

struct _RechainChain {
  GPtrArray *layers;   /* of RechainLayer*, top first */
  /* layers[0..n_owned) are this chain's own; the others are borrowed from
   * a chain given to rechain_chain_open_shared(), which outlives it */
  guint n_owned;
  GPtrArray *warnings; /* of char*, NULL-terminated */
};

void
rechain_chain_free (RechainChain *chain)
{
  if (!chain)
    return;
  for (guint i = 0; i < chain->layers->len && i < chain->n_owned; i++)
    rechain_layer_free (g_ptr_array_index (chain->layers, i));
  g_ptr_array_unref (chain->layers);
  g_ptr_array_unref (chain->warnings);
  g_free (chain);
}

guint
rechain_chain_get_depth (RechainChain *chain)
{
  return chain->layers->len;
}

RechainLayer *
rechain_chain_get_layer (RechainChain *chain, guint index)
{
  g_return_val_if_fail (index < chain->layers->len, NULL);
  return g_ptr_array_index (chain->layers, index);
}

gboolean
rechain_chain_contains (RechainChain *chain, RechainLayer *layer)
{
  struct stat st;

  if (!chain || fstat (rechain_file_get_fd (rechain_layer_get_file (layer)), &st) < 0)
    return FALSE;
  for (guint d = 0; d < chain->layers->len; d++)
    if (rechain_layer_same_file (g_ptr_array_index (chain->layers, d), st.st_dev, st.st_ino))
      return TRUE;
  return FALSE;
}

RechainLayer *
rechain_chain_get_top (RechainChain *chain)
{
  return rechain_chain_get_layer (chain, 0);
}

const char * const *
rechain_chain_get_warnings (RechainChain *chain)
{
  return (const char * const *) chain->warnings->pdata;
}

static void
add_warning (RechainChain *chain, char *message)
{
  /* keep the array NULL-terminated */
  g_ptr_array_remove_index (chain->warnings, chain->warnings->len - 1);
  g_ptr_array_add (chain->warnings, message);
  g_ptr_array_add (chain->warnings, NULL);
}

/* Refuses @path if it is a file the chain already holds: a backing chain
 * that loops back onto itself would otherwise be followed forever. */
static gboolean
check_loop (RechainChain *chain, const char *path, const char *named_by, GError **error)
{
  struct stat st;

  if (stat (path, &st) != 0)
    {
      int saved = errno;
      g_set_error (error, RECHAIN_ERROR,
                   saved == ENOENT ? RECHAIN_ERROR_BACKING_NOT_FOUND : RECHAIN_ERROR_IO,
                   _("%s: could not open backing file '%s': %s"),
                   named_by, path, g_strerror (saved));
      return FALSE;
    }
  for (guint i = 0; i < chain->layers->len; i++)
    {
      RechainLayer *layer = g_ptr_array_index (chain->layers, i);
      if (rechain_layer_same_file (layer, st.st_dev, st.st_ino))
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("%s: the backing chain loops: backing file '%s' is '%s' again"),
                       named_by, path, rechain_layer_get_path (layer));
          return FALSE;
        }
    }
  return TRUE;
}

RechainChain *
rechain_chain_open (const char *path,
                    const char *format,
                    RechainChainOpenFlags flags,
                    RechainCacheMode cache,
                    RechainCacheMode backing_cache,
                    GError **error)
{
  return rechain_chain_open_full (path, format, flags, cache, backing_cache, NULL, error);
}

/* Refuses @backing_path, named by @named_by as @field, outside the
 * directories the chain is confined to. */
static gboolean
check_confinement (const RechainChainConfinement *confine, const char *backing_path,
                   const char *named_by, const char *field, GError **error)
{
  if (!confine)
    return TRUE;
  if (confine->backing_root &&
      !rechain_path_check_root (confine->backing_root, backing_path, named_by, error))
    return FALSE;
  if (confine->storage_dirs &&
      !rechain_path_check_dirs (confine->storage_dirs, confine->storage_name, backing_path,
                                named_by, field, error))
    return FALSE;
  return TRUE;
}

/* The layer of @shared (chains opened with the same flags) that is the
 * file @backing_path as the header names it (@backing_format, NULL:
 * probed), or NULL. */
static gboolean
find_shared (RechainChain * const *shared, guint n_shared, const char *backing_path,
             const char *backing_format, RechainChain **chain_out, guint *index_out)
{
  struct stat st;

  if (n_shared == 0 || stat (backing_path, &st) != 0)
    return FALSE;
  for (guint c = 0; c < n_shared; c++)
    for (guint i = 0; shared[c] && i < shared[c]->layers->len; i++)
      {
        RechainLayer *l = g_ptr_array_index (shared[c]->layers, i);
        RechainFormat want;

        if (!rechain_layer_same_file (l, st.st_dev, st.st_ino))
          continue;
        if (backing_format ? !rechain_format_from_string (backing_format, &want, NULL)
                           : !rechain_format_probe (rechain_layer_get_file (l), &want, NULL))
          return FALSE;
        if (want != rechain_layer_get_format (l))
          return FALSE;
        *chain_out = shared[c];
        *index_out = i;
        return TRUE;
      }
  return FALSE;
}

/* Appends layers @first.. of @from to @chain, borrowed, after the checks
 * an open of them would make for this chain: the owner of the image that
 * names the first one (checked on the file already open: the same inode),
 * no loop through the chain's own layers, the depth limit. */
static gboolean
borrow_tail (RechainChain *chain, const char *path, RechainChain *from, guint first,
             const RechainNameOrigin *origin, const char *backing_path, GError **error)
{
  RechainLayer *head = g_ptr_array_index (from->layers, first);

  if (origin->owner &&
      !rechain_owner_check_file (origin->owner, rechain_file_get_fd (rechain_layer_get_file (head)),
                                 RECHAIN_TRUST_READ, origin->named_by, origin->field,
                                 backing_path, error))
    return FALSE;
  if (chain->layers->len + from->layers->len - first > RECHAIN_CHAIN_MAX_DEPTH)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                   _("%s: the backing chain is deeper than %u images"),
                   path, RECHAIN_CHAIN_MAX_DEPTH);
      return FALSE;
    }
  for (guint i = first; i < from->layers->len; i++)
    {
      RechainLayer *l = g_ptr_array_index (from->layers, i);

      for (guint j = 0; j < chain->layers->len; j++)
        {
          RechainLayer *own = g_ptr_array_index (chain->layers, j);
          struct stat st;

          if (fstat (rechain_file_get_fd (rechain_layer_get_file (l)), &st) == 0 &&
              rechain_layer_same_file (own, st.st_dev, st.st_ino))
            {
              g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                           _("%s: the backing chain loops: backing file '%s' is '%s' again"),
                           rechain_layer_get_path (g_ptr_array_index (chain->layers,
                                                                      chain->layers->len - 1)),
                           rechain_layer_get_path (l), rechain_layer_get_path (own));
              return FALSE;
            }
        }
    }
  chain->n_owned = chain->layers->len;
  for (guint i = first; i < from->layers->len; i++)
    g_ptr_array_add (chain->layers, g_ptr_array_index (from->layers, i));
  return TRUE;
}

static RechainChain *
open_chain (const char *path,
            const char *format,
            RechainChainOpenFlags flags,
            RechainCacheMode cache,
            RechainCacheMode backing_cache,
            const RechainChainConfinement *confine,
            RechainChain * const *shared,
            guint n_shared,
            GError **error)
{
  g_autoptr(RechainChain) chain = g_new0 (RechainChain, 1);
  RechainLayerOpenFlags layer_flags = 0;
  RechainLayerOpenFlags top_flags;
  RechainLayer *layer;

  chain->layers = g_ptr_array_new ();
  chain->n_owned = G_MAXUINT; /* set to the depth on success */
  chain->warnings = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (chain->warnings, NULL);
  if (confine && confine->backing_root &&
      !rechain_path_check_root (confine->backing_root, path, path, error))
    return NULL;

  if (flags & RECHAIN_CHAIN_OPEN_FORCE_SHARE)
    layer_flags |= RECHAIN_LAYER_OPEN_NO_LOCK;
  if (flags & RECHAIN_CHAIN_OPEN_TRUST_NAMES)
    layer_flags |= RECHAIN_LAYER_OPEN_TRUST_NAMES;
  /* As in QEMU, force-share applies to images opened read-only: an image
   * rechain writes is always locked, so -U can never let it write under a
   * running VM. */
  top_flags = (flags & RECHAIN_CHAIN_OPEN_WRITE)
                ? RECHAIN_LAYER_OPEN_WRITE | (layer_flags & RECHAIN_LAYER_OPEN_TRUST_NAMES)
                : layer_flags;
  layer = rechain_layer_open (path, format, top_flags, cache, NULL, error);
  if (!layer)
    return NULL;
  g_ptr_array_add (chain->layers, layer);

  while (!(flags & RECHAIN_CHAIN_OPEN_NO_BACKING))
    {
      const char *name = rechain_layer_get_backing_name (layer);
      const char *backing_format = rechain_layer_get_backing_format (layer);
      const char *named_by = rechain_layer_get_path (layer);
      g_autofree char *backing_path = NULL;
      g_autofree char *field = NULL;
      RechainNameOrigin origin;
      RechainLayer *backing;

      if (!name)
        break;
      if (chain->layers->len >= RECHAIN_CHAIN_MAX_DEPTH)
        {
          g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_IMAGE,
                       _("%s: the backing chain is deeper than %u images"),
                       path, RECHAIN_CHAIN_MAX_DEPTH);
          return NULL;
        }
      backing_path = rechain_path_resolve (named_by, name, error);
      if (!backing_path)
        {
          g_prefix_error (error, _("%s: backing file: "), named_by);
          return NULL;
        }
      field = g_strdup_printf (_("the backing file at depth %u"), chain->layers->len);
      if (!check_confinement (confine, backing_path, named_by, field, error) ||
          !check_loop (chain, backing_path, named_by, error))
        return NULL;

      /* The file is checked against the owner of the image that names it
       * once it is open, before anything of it is read (trust.h). Where
       * no format is recorded, QEMU still opens such chains, probing the
       * backing file's format (and only refuses to create new ones): do
       * the same, but say so, since a probed raw file whose content starts
       * like a qcow2 header would be misread, and the fix is one command. */
      origin = (RechainNameOrigin) { rechain_layer_get_owner (layer), named_by, field };
      {
        RechainChain *from;
        guint first;

        if (find_shared (shared, n_shared, backing_path, backing_format, &from, &first))
          {
            if (!borrow_tail (chain, path, from, first, &origin, backing_path, error))
              return NULL;
            if (!backing_format)
              add_warning (chain,
                           g_strdup_printf (_("%s: the backing file '%s' has no recorded format; "
                                              "probed as %s (record it with: rechain rebase -u -b '%s' -F %s '%s')"),
                                            named_by, name,
                                            rechain_format_to_string (rechain_layer_get_format (
                                              g_ptr_array_index (from->layers, first))),
                                            name,
                                            rechain_format_to_string (rechain_layer_get_format (
                                              g_ptr_array_index (from->layers, first))),
                                            named_by));
            return g_steal_pointer (&chain);
          }
      }
      backing = rechain_layer_open (backing_path, backing_format, layer_flags,
                                    backing_cache, &origin, error);
      if (!backing)
        {
          if (g_error_matches (*error, RECHAIN_ERROR, RECHAIN_ERROR_BACKING_NOT_FOUND))
            g_prefix_error (error, _("%s: backing file: "), named_by);
          return NULL;
        }
      g_ptr_array_add (chain->layers, backing);
      if (!backing_format)
        {
          const char *probed = rechain_format_to_string (rechain_layer_get_format (backing));

          add_warning (chain,
                       g_strdup_printf (_("%s: the backing file '%s' has no recorded format; "
                                          "probed as %s (record it with: rechain rebase -u -b '%s' -F %s '%s')"),
                                        named_by, name, probed, name, probed, named_by));
        }
      layer = backing;
    }

  chain->n_owned = chain->layers->len;
  return g_steal_pointer (&chain);
}

RechainChain *
rechain_chain_open_full (const char *path,
                         const char *format,
                         RechainChainOpenFlags flags,
                         RechainCacheMode cache,
                         RechainCacheMode backing_cache,
                         const RechainChainConfinement *confine,
                         GError **error)
{
  return open_chain (path, format, flags, cache, backing_cache, confine, NULL, 0, error);
}

RechainChain *
rechain_chain_open_shared (const char *path,
                           const char *format,
                           RechainChainOpenFlags flags,
                           RechainCacheMode cache,
                           RechainCacheMode backing_cache,
                           const RechainChainConfinement *confine,
                           RechainChain * const *shared,
                           guint n_shared,
                           GError **error)
{
  return open_chain (path, format, flags, cache, backing_cache, confine, shared, n_shared, error);
}

RechainChain *
rechain_chain_detach_backing (RechainChain *chain, guint first)
{
  RechainChain *tail;

  if (first >= chain->layers->len || first >= chain->n_owned)
    return NULL;
  tail = g_new0 (RechainChain, 1);
  tail->layers = g_ptr_array_new ();
  tail->warnings = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (tail->warnings, NULL);
  for (guint i = first; i < chain->layers->len; i++)
    g_ptr_array_add (tail->layers, g_ptr_array_index (chain->layers, i));
  tail->n_owned = chain->n_owned - first;
  chain->n_owned = first;
  return tail;
}

guint
rechain_chain_count_own_files (RechainChain *chain)
{
  guint n = 0;

  for (guint i = 0; i < chain->layers->len && i < chain->n_owned; i++)
    {
      RechainLayer *l = g_ptr_array_index (chain->layers, i);
      n += 1 + (rechain_layer_get_data_file (l) != rechain_layer_get_file (l));
    }
  return n;
}

/* Maps [offset, offset + length) as seen through layers index..end,
 * appending to @out. */
static gboolean
map_from (RechainChain *chain, guint index, guint64 offset, guint64 length,
          GArray *out, GError **error)
{
  RechainLayer *layer = g_ptr_array_index (chain->layers, index);
  g_autoptr(GArray) own = rechain_extent_list_new ();

  if (!rechain_layer_map (layer, offset, length, own, error))
    return FALSE;

  for (guint i = 0; i < own->len; i++)
    {
      RechainExtent e = g_array_index (own, RechainExtent, i);

      if (e.kind != RECHAIN_EXTENT_UNALLOCATED || index + 1 == chain->layers->len)
        {
          e.depth = (gint) index;
          rechain_extent_append (out, &e);
          continue;
        }

      /* Unallocated here: whatever the backing file has, up to its end;
       * zeros beyond it. */
      {
        RechainLayer *backing = g_ptr_array_index (chain->layers, index + 1);
        guint64 backing_size = rechain_layer_get_virtual_size (backing);
        guint64 inside = e.offset < backing_size ? MIN (e.length, backing_size - e.offset) : 0;

        if (inside > 0 && !map_from (chain, index + 1, e.offset, inside, out, error))
          return FALSE;
        if (inside < e.length)
          {
            RechainExtent beyond = { e.offset + inside, e.length - inside,
                                     RECHAIN_EXTENT_UNALLOCATED, (gint) index,
                                     RECHAIN_NO_HOST_OFFSET, FALSE };
            rechain_extent_append (out, &beyond);
          }
      }
    }
  return TRUE;
}

gboolean
rechain_chain_map (RechainChain *chain, guint first, guint64 offset, guint64 length,
                   GArray *extents, GError **error)
{
  g_return_val_if_fail (first < chain->layers->len, FALSE);
  return map_from (chain, first, offset, length, extents, error);
}

gboolean
rechain_chain_read (RechainChain *chain, guint first, guint64 offset, void *buf,
                    gsize length, GError **error)
{
  g_autoptr(GArray) extents = rechain_extent_list_new ();
  guint8 *out = buf;

  if (!rechain_chain_map (chain, first, offset, length, extents, error))
    return FALSE;

  for (guint i = 0; i < extents->len; i++)
    {
      const RechainExtent *e = &g_array_index (extents, RechainExtent, i);
      guint8 *dst = out + (e->offset - offset);

      if (e->kind != RECHAIN_EXTENT_DATA)
        memset (dst, 0, e->length);
      else if (!rechain_layer_read (g_ptr_array_index (chain->layers, e->depth),
                                    e->offset, dst, e->length, error))
        return FALSE;
    }
  return TRUE;
}
