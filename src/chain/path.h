/* path.h: file names recorded inside images (backing files, external data
 * files), resolved the way QEMU resolves them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "rechain/rechain-error.h"

G_BEGIN_DECLS

/* Resolves @name, recorded in the image at @from_path, to a path: absolute
 * names stay as they are, relative ones are taken relative to the directory
 * of @from_path (not the current directory). "file:" prefixes are stripped;
 * "json:" and other protocol names ("nbd:...", "http://...") are refused
 * with RECHAIN_ERROR_UNSUPPORTED, as rechain only opens local files. */
char *rechain_path_resolve (const char *from_path, const char *name, GError **error);

/* Whether @name looks like a QEMU protocol or json: pseudo-filename. */
gboolean rechain_path_is_pseudo (const char *name);

G_END_DECLS
