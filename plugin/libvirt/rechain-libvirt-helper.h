/* rechain-libvirt-helper.h: the libvirt volume helper of the module.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

GType rechain_libvirt_helper_get_type (void);
void rechain_libvirt_helper_register (GIOModule *module);

G_END_DECLS
