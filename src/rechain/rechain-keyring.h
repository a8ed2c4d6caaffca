/* rechain-keyring.h: the passphrases of encrypted images.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <glib-object.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

#define RECHAIN_TYPE_KEYRING (rechain_keyring_get_type ())
RECHAIN_AVAILABLE_IN_0_2
G_DECLARE_FINAL_TYPE (RechainKeyring, rechain_keyring, RECHAIN, KEYRING, GObject)

RECHAIN_AVAILABLE_IN_0_2 RechainKeyring *rechain_keyring_new (void);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_keyring_add_passphrase (RechainKeyring *keyring,
                                                                  const char *image_path,
                                                                  GBytes *passphrase,
                                                                  GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_keyring_add_default_passphrase (RechainKeyring *keyring,
                                                                          GBytes *passphrase,
                                                                          GError **error);
RECHAIN_AVAILABLE_IN_0_2 gboolean rechain_keyring_has_passphrase (RechainKeyring *keyring,
                                                                  const char *image_path);
RECHAIN_AVAILABLE_IN_0_2 guint rechain_keyring_get_n_passphrases (RechainKeyring *keyring);

G_END_DECLS
