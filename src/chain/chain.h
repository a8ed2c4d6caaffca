/* chain.h: an image with its backing chain, opened top to bottom.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/layer.h"
#include "chain/path.h"

G_BEGIN_DECLS

/* A chain deeper than this is refused as malformed (QEMU has no fixed
 * limit; real chains are a handful of levels, and a bound keeps a crafted
 * chain from exhausting file descriptors and memory). */
#define RECHAIN_CHAIN_MAX_DEPTH 64

typedef enum {
  RECHAIN_CHAIN_OPEN_DEFAULT = 0,
  /* Open the top image for writing (backing files stay read-only). */
  RECHAIN_CHAIN_OPEN_WRITE = 1 << 0,
  /* -U: take no locks on the images opened read-only, and open them even
   * while another process writes them. An image opened for writing is
   * always locked. */
  RECHAIN_CHAIN_OPEN_FORCE_SHARE = 1 << 1,
  /* Open only the top image, not its backing files. */
  RECHAIN_CHAIN_OPEN_NO_BACKING = 1 << 2,
} RechainChainOpenFlags;

typedef struct _RechainChain RechainChain;

/* Opens @path (as @format, NULL to probe) and every backing file below it.
 * Where a header records no backing format, the backing file is probed
 * (qcow2 or raw), as QEMU does, and a warning says so through g_warning's
 * log domain "rechain" (the CLI prints it as "rechain: warning: ...").
 * Loops (a file that appears twice, by device and inode) and chains deeper
 * than RECHAIN_CHAIN_MAX_DEPTH are refused. */
RechainChain *rechain_chain_open (const char *path,
                                  const char *format,
                                  RechainChainOpenFlags flags,
                                  RechainCacheMode cache,
                                  RechainCacheMode backing_cache,
                                  GError **error);
/* Like rechain_chain_open(); with @backing_root, every backing file must
 * lie under that directory once symlinks are resolved (the images named
 * by the caller need not): RECHAIN_ERROR_INVALID_IMAGE otherwise. */
RechainChain *rechain_chain_open_full (const char *path,
                                       const char *format,
                                       RechainChainOpenFlags flags,
                                       RechainCacheMode cache,
                                       RechainCacheMode backing_cache,
                                       const char *backing_root,
                                       GError **error);
void rechain_chain_free (RechainChain *chain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainChain, rechain_chain_free)

guint rechain_chain_get_depth (RechainChain *chain);  /* number of layers */
RechainLayer *rechain_chain_get_layer (RechainChain *chain, guint index); /* 0 = top */
RechainLayer *rechain_chain_get_top (RechainChain *chain);
/* Warnings collected while opening (e.g. probed formats), NULL-terminated */
const char * const *rechain_chain_get_warnings (RechainChain *chain);

/* Appends the guest-visible map of [@offset, @offset + @length) of layers
 * @first..end (0 for the whole chain) to @extents: for each region, the
 * topmost layer that allocates it (DATA or ZERO), or UNALLOCATED where no
 * layer does; those read as zeros. A region beyond the end of a backing
 * file reads as zeros whatever lies below that backing file: it is
 * UNALLOCATED too, with the depth of the layer above the short one. The
 * range must lie inside the virtual size of layer @first. */
gboolean rechain_chain_map (RechainChain *chain,
                            guint first,
                            guint64 offset,
                            guint64 length,
                            GArray *extents,
                            GError **error);

/* Reads guest-visible bytes through layers @first..end. */
gboolean rechain_chain_read (RechainChain *chain,
                             guint first,
                             guint64 offset,
                             void *buf,
                             gsize length,
                             GError **error);

G_END_DECLS
