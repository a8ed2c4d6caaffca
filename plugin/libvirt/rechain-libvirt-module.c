/* rechain-libvirt-module.c: the entry points of the GIO module that adds
 * the "libvirt" volume helper to the rechain-volume-helper extension point.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <glib/gi18n-lib.h>
#include <rechain/rechain.h>

#include "rechain-libvirt-helper.h"

G_MODULE_EXPORT void g_io_module_load (GIOModule *module);
G_MODULE_EXPORT void g_io_module_unload (GIOModule *module);
G_MODULE_EXPORT char **g_io_module_query (void);

void
g_io_module_load (GIOModule *module)
{
  /* Stay loaded once loaded: libvirt keeps threads and global state. */
  g_type_module_use (G_TYPE_MODULE (module));
  /* The module's messages are in the library's text domain, which the
   * library binds (not textdomain(): the default domain is the
   * application's). */
  rechain_init_translations ();
  rechain_libvirt_helper_register (module);
  g_io_extension_point_implement (RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME,
                                  rechain_libvirt_helper_get_type (), "libvirt", 10);
}

void
g_io_module_unload (GIOModule *module)
{
}

char **
g_io_module_query (void)
{
  char *eps[] = { (char *) RECHAIN_VOLUME_HELPER_EXTENSION_POINT_NAME, NULL };
  return g_strdupv (eps);
}
