/* rechain-keyring-private.h: a keyring as the chain layer asks it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "chain/keys.h"
#include "rechain/rechain-keyring.h"

G_BEGIN_DECLS

/* Fills @lookup so that the chain layer finds @keyring's passphrases;
 * @keyring (NULL: none) must outlive every use of @lookup. */
void rechain_keyring_init_lookup (RechainKeyring *keyring, RechainKeyLookup *lookup);

G_END_DECLS
