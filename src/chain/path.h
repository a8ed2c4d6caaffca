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

/* Refuses @path (named by the image @named_by, or by the caller when the
 * two are equal) if it does not lie under @root once symlinks are
 * resolved: a pool script names a directory, and a crafted backing name
 * ("../../etc/...", or a symlink planted beside the image) must not make
 * rechain open a file elsewhere. RECHAIN_ERROR_INVALID_IMAGE. */
gboolean rechain_path_check_root (const char *root, const char *path, const char *named_by,
                                  GError **error);

/* Refuses @path, named in the header of @named_by as @field ("the backing
 * file at depth 1"), unless it lies under one of @dirs once symlinks are
 * resolved. @dirs_name says whose directories they are ("the storage
 * pools of qemu:///system"). RECHAIN_ERROR_NOT_PERMITTED. */
gboolean rechain_path_check_dirs (const char * const *dirs, const char *dirs_name,
                                  const char *path, const char *named_by, const char *field,
                                  GError **error);

G_END_DECLS
