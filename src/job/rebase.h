/* rebase.h: the rebase engine.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/chain.h"

G_BEGIN_DECLS

typedef struct {
  const char *image;          /* path of the image to rebase */
  const char *format;         /* its format, NULL to probe */
  const char *backing_file;   /* new backing name as written in the header; "" or NULL: none */
  const char *backing_format; /* format of the new backing file, NULL: none recorded */
  RechainCacheMode cache;     /* cache mode for the image */
  gboolean force_share;       /* -U: take no locks */
} RechainRebaseOptions;

/* Checks the backing name and format a rebase is asked to write, before
 * any image is opened: length, pseudo-filenames, -F given whenever a backing
 * file is named, a known format name. */
gboolean rechain_rebase_check_target (const char *backing_file,
                                      const char *backing_format,
                                      GError **error);

/* Unsafe rebase (qemu-img rebase -u): rewrites the backing name and format
 * in the header and nothing else. The new backing file is not opened and
 * need not exist. */
gboolean rechain_rebase_unsafe (const RechainRebaseOptions *options, GError **error);

G_END_DECLS
