/* rechain-image-private.h: opening a RechainImage with its backing chain
 * confined, for the library's volume helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/chain.h"
#include "rechain/rechain-image.h"

G_BEGIN_DECLS

/* rechain_image_open_full() with the backing files confined as @confine
 * says (NULL: anywhere): its backing_root and its storage directories both
 * apply. With RECHAIN_IMAGE_OPEN_TRUST_CHAIN in @flags the storage
 * directories do not (backing_root still does, as for
 * rechain_image_open_full()). */
RechainImage *rechain_image_open_confined (const char *path,
                                           const char *format,
                                           RechainImageOpenFlags flags,
                                           const RechainChainConfinement *confine,
                                           GCancellable *cancellable,
                                           GError **error);

/* Keeps @keyring (a reference) for the encrypted images of @image's
 * chain, as rechain_image_open_with_keyring() does; for a chain opened
 * with rechain_image_open_confined(). */
void rechain_image_set_keyring (RechainImage *image, RechainKeyring *keyring);

G_END_DECLS
