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
  /* Follow every name the headers record, whoever owns the images (see
   * trust.h); without it, names in images of other users are checked. */
  RECHAIN_CHAIN_OPEN_TRUST_NAMES = 1 << 3,
} RechainChainOpenFlags;

/* Directories the backing files of a chain must stay in (the images named
 * by the caller need not). A backing file is resolved (symlinks followed)
 * and refused with RECHAIN_ERROR_NOT_PERMITTED outside them. */
typedef struct {
  /* every backing file under this directory (--backing-root), or NULL */
  const char *backing_root;
  /* every backing file under one of these (the target directories of a
   * storage manager's pools), or NULL; @storage_name says whose they are
   * in messages ("the storage pools of qemu:///system") */
  const char * const *storage_dirs;
  const char *storage_name;
} RechainChainConfinement;

typedef struct _RechainChain RechainChain;

/* Opens @path (as @format, NULL to probe) and every backing file below it.
 * Where a header records no backing format, the backing file is probed
 * (qcow2 or raw), as QEMU does, and a warning says so through g_warning's
 * log domain "rechain" (the CLI prints it as "rechain: warning: ...").
 * Loops (a file that appears twice, by device and inode) and chains deeper
 * than RECHAIN_CHAIN_MAX_DEPTH are refused. Unless @flags has
 * RECHAIN_CHAIN_OPEN_TRUST_NAMES, a file named by an image owned by another
 * user is opened only if that user could open it (trust.h). */
RechainChain *rechain_chain_open (const char *path,
                                  const char *format,
                                  RechainChainOpenFlags flags,
                                  RechainCacheMode cache,
                                  RechainCacheMode backing_cache,
                                  GError **error);
/* Like rechain_chain_open(), with the backing files confined to the
 * directories @confine names (NULL: anywhere). A backing file outside
 * backing_root is RECHAIN_ERROR_INVALID_IMAGE, as it always was; one outside
 * the storage directories is RECHAIN_ERROR_NOT_PERMITTED. */
RechainChain *rechain_chain_open_full (const char *path,
                                       const char *format,
                                       RechainChainOpenFlags flags,
                                       RechainCacheMode cache,
                                       RechainCacheMode backing_cache,
                                       const RechainChainConfinement *confine,
                                       GError **error);
/* Like rechain_chain_open_full(), but a backing file that is a layer of
 * one of @shared (same file, same format; chains opened with the same
 * @flags and @backing_cache) is not opened again: that layer and those
 * below it are borrowed, after the checks an open would make (the owner of
 * the image naming it, loops, depth). Linked clones so open their common
 * backing files once. Every chain of @shared must outlive the result. */
RechainChain *rechain_chain_open_shared (const char *path,
                                         const char *format,
                                         RechainChainOpenFlags flags,
                                         RechainCacheMode cache,
                                         RechainCacheMode backing_cache,
                                         const RechainChainConfinement *confine,
                                         RechainChain * const *shared,
                                         guint n_shared,
                                         GError **error);
/* Moves the ownership of @chain's own layers @first.. to a new chain of
 * those layers (returned), which must then outlive @chain; @chain keeps
 * them, borrowed. NULL when @chain owns no layer from @first on. */
RechainChain *rechain_chain_detach_backing (RechainChain *chain, guint first);
/* The file descriptors @chain's own layers hold (images and data files). */
guint rechain_chain_count_own_files (RechainChain *chain);
void rechain_chain_free (RechainChain *chain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainChain, rechain_chain_free)

guint rechain_chain_get_depth (RechainChain *chain);  /* number of layers */
RechainLayer *rechain_chain_get_layer (RechainChain *chain, guint index); /* 0 = top */
RechainLayer *rechain_chain_get_top (RechainChain *chain);
/* Whether @layer is the same file as a layer of @chain (nullable). */
gboolean rechain_chain_contains (RechainChain *chain, RechainLayer *layer);
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

/* Unlocks every LUKS layer of @chains (NULL entries are skipped) with its
 * key from @keys, each file once, on parallel threads. A layer without a
 * key is refused (rechain_layer_check_data_access's error) before any
 * unlock starts; a wrong key is RECHAIN_ERROR_NOT_PERMITTED naming the
 * image. Legacy AES layers are left to rechain_layer_check_data_access. */
gboolean rechain_chains_unlock (RechainChain * const *chains,
                                guint n_chains,
                                const RechainKeyLookup *keys,
                                GError **error);

/* The same, except for the layers that are the same file as a layer of
 * @except (nullable): those are left locked and need no key. */
gboolean rechain_chains_unlock_except (RechainChain * const *chains,
                                       guint n_chains,
                                       RechainChain *except,
                                       const RechainKeyLookup *keys,
                                       GError **error);

G_END_DECLS
