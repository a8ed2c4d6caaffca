/* trust.h: whose file names rechain follows.
 *
 * Every name in an image header (backing files, the external data file)
 * was chosen by whoever could write that header. rechain often runs as
 * root on images other users made, so it follows such a name only as far
 * as the image's owner could have followed it: the named file is used
 * only if that owner (uid, primary and supplementary groups) could open it
 * with the access rechain needs, and could reach it (search permission on
 * every directory of its real path). Device nodes, FIFOs and sockets are
 * never followed for another user. Images owned by the user rechain runs
 * as (its effective uid) are trusted: what they name is opened as before.
 *
 * The check is made on the opened descriptor (fstat, and the path the
 * kernel resolved it to), never on a path before opening, so swapping a
 * symlink between a check and the open gains nothing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "rechain/rechain-error.h"

G_BEGIN_DECLS

/* The user an image belongs to, with the groups that user is in. */
typedef struct _RechainOwner RechainOwner;

/* The owner of the file open as @fd, or NULL when it is the user rechain
 * runs as (nothing to check). On failure (fstat), @error is set and NULL
 * returned: test *error to tell the two apart. */
RechainOwner *rechain_owner_new_for_fd (int fd, GError **error);
void rechain_owner_free (RechainOwner *owner);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainOwner, rechain_owner_free)

/* Access a named file is opened with. */
typedef enum {
  RECHAIN_TRUST_READ = 1 << 0,
  RECHAIN_TRUST_WRITE = 1 << 1,
} RechainTrustAccess;

/* Refuses the file open as @fd unless @owner could open it with @access:
 * it must be a regular file, reachable by @owner and permitted by its
 * mode bits for @owner. @named_by is the image whose header names the
 * file, @field says which field ("the backing file at depth 2", "the data
 * file"), @path the name as resolved; all three go into the message
 * (RECHAIN_ERROR_NOT_PERMITTED). */
gboolean rechain_owner_check_file (const RechainOwner *owner,
                                   int fd,
                                   RechainTrustAccess access,
                                   const char *named_by,
                                   const char *field,
                                   const char *path,
                                   GError **error);

G_END_DECLS
