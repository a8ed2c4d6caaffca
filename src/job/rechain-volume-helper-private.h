/* rechain-volume-helper-private.h: the built-in volume helper.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

GType rechain_path_volume_helper_get_type (void);

G_END_DECLS
