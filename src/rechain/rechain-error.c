/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"

GQuark
rechain_error_quark (void)
{
  /* Every message of this domain is translated: bind the text domain
   * before anyone reads one. */
  rechain_i18n_init ();
  return g_quark_from_static_string ("rechain-error-quark");
}
