/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "rechain/rechain-i18n-private.h"
#include "rechain/rechain-util.h"

void
rechain_i18n_init (void)
{
  static gsize bound = 0;

  if (g_once_init_enter (&bound))
    {
      /* The same override as the command line's: translations from a
       * build tree, for tests. */
      const char *dir = g_getenv ("RECHAIN_LOCALEDIR");

      bindtextdomain (GETTEXT_PACKAGE, dir != NULL && *dir != '\0' ? dir : LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      g_once_init_leave (&bound, 1);
    }
}

const char *
rechain_i18n_gettext (const char *msgid)
{
  rechain_i18n_init ();
  return g_dgettext (GETTEXT_PACKAGE, msgid);
}

/**
 * rechain_init_translations:
 *
 * Binds rechain's text domain ("rechain") to its installed locale
 * directory, or to `$RECHAIN_LOCALEDIR` when set (a build tree, for tests),
 * with UTF-8 output. The library does this itself before it translates its
 * first message; programs and modules that translate their own strings in
 * the same domain (the rechain tool, the libvirt plugin) call it instead of
 * binding the domain again. Safe to call from any thread, any number of
 * times.
 *
 * Since: 0.2
 */
void
rechain_init_translations (void)
{
  rechain_i18n_init ();
}
