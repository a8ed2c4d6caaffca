/* rebase-lease.c: the one place the rebase engine takes libvirt's leases
 * (io/lease.c) on the images it writes. Safe rebases call it for each
 * overlay just before its output is opened (rebase-safe.c), unsafe ones
 * before the header is rewritten (rebase-unsafe.c); the lease lives as
 * long as the overlay, so it is released once the image is switched and
 * closed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "job/rebase.h"

gboolean
rechain_rebase_take_lease (const RechainRebaseOptions *options,
                           RechainLayer *layer,
                           RechainLease **lease,
                           GError **error)
{
  *lease = NULL;
  if (options->no_leases)
    return TRUE;
  /* A dry run checks, so that it reports a leased image as the real run
   * would refuse it, but creates and locks nothing. */
  *lease = rechain_lease_acquire (rechain_layer_get_file (layer), options->lockspace_dir,
                                  options->dry_run ? RECHAIN_LEASE_CHECK_ONLY : RECHAIN_LEASE_TAKE,
                                  error);
  return *lease != NULL;
}
