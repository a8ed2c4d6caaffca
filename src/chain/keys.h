/* keys.h: how the chain layer is given the passphrases of encrypted
 * layers, without knowing where they come from (a RechainKeyring, a
 * storage manager's secret store). A layer asks by the identity of its
 * file, so a key follows the file whatever name reaches it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Sets *@data and *@len to the passphrase for the file with device @dev
 * and inode @ino (@path is the name it was opened by, for a caller that
 * wants it) and returns TRUE, or returns FALSE when there is none. The
 * bytes belong to the provider and stay valid while it lives: they are
 * not copied out of its locked memory. */
typedef gboolean (*RechainKeyLookupFunc) (gpointer user_data,
                                          const char *path,
                                          dev_t dev,
                                          ino_t ino,
                                          const guint8 **data,
                                          gsize *len);

typedef struct {
  RechainKeyLookupFunc lookup;
  gpointer user_data;
} RechainKeyLookup;

G_END_DECLS
