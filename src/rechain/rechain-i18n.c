/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "rechain/rechain-i18n-private.h"

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
