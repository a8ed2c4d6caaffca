/* lease.h: leases of libvirt's lock manager (virtlockd) on the images
 * rechain writes. See lease.c for the protocol, read from libvirt's
 * sources.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "io/file.h"

G_BEGIN_DECLS

typedef struct _RechainLease RechainLease;

typedef enum {
  /* Take the leases and hold them until rechain_lease_release(). */
  RECHAIN_LEASE_TAKE = 0,
  /* Only check that nobody holds them (a dry run): no lease file is
   * created, nothing is locked, and the lease returned holds nothing. */
  RECHAIN_LEASE_CHECK_ONLY = 1 << 0,
} RechainLeaseFlags;

/* Takes (or checks) virtlockd's leases on the image open as @image, before
 * anything is written to it:
 *   - the direct lease, always: an fcntl write lock on byte 0 of the image
 *     file itself;
 *   - with @lockspace_dir (virtlockd's file_lockspace_dir, NULL: none), the
 *     indirect leases: a write lock on byte 0 of the file of that
 *     directory named by the SHA-256 (lowercase hex) of the image's
 *     absolute path, and of its path with symlinks resolved when that
 *     differs (libvirt hashes the path as the domain's XML spells it).
 * A lease held by anyone else (a running domain of libvirt with
 * lock_manager = "lockd" on this or another host sharing the storage) is
 * RECHAIN_ERROR_IN_USE, naming the image; nothing is then held. A lockspace
 * directory that does not exist is RECHAIN_ERROR_INVALID_ARGUMENT. On a
 * file system without fcntl locks no lease can exist, and none is taken.
 * @image may be open read-only with RECHAIN_LEASE_CHECK_ONLY only. */
RechainLease *rechain_lease_acquire (RechainFile *image,
                                     const char *lockspace_dir,
                                     RechainLeaseFlags flags,
                                     GError **error);

/* Releases the leases (and removes the lease files it holds, as virtlockd
 * does when it releases an indirect lease), and frees @lease. May be
 * called after @image was closed: the lease has file descriptors of its
 * own. */
void rechain_lease_release (RechainLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainLease, rechain_lease_release)

/* The name virtlockd gives the indirect lease of a disk whose path in the
 * domain XML is @path: the SHA-256 of the string, lowercase hex. */
char *rechain_lease_name (const char *path);

G_END_DECLS
