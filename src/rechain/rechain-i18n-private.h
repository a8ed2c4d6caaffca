/* rechain-i18n-private.h: translation of the library's messages (private,
 * not installed).
 *
 * The library's messages are in the GETTEXT_PACKAGE text domain, the same
 * as the command line's, looked up with g_dgettext() as <glib/gi18n-lib.h>
 * does. _() also binds that domain, once, before the first lookup: a
 * program that never heard of it (a Python or Vala application) gets the
 * translations too, and a message translated while the arguments of
 * g_set_error() are evaluated, possibly before RECHAIN_ERROR's, is already
 * bound. The library never calls textdomain(): the default domain is the
 * application's.
 *
 * 64-bit numbers in translatable formats use the <inttypes.h> PRI*
 * macros, which xgettext understands (G_GUINT64_FORMAT would cut the
 * message short).
 *
 * Plain GLib, so that src/format stays free of GObject.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <inttypes.h>
#include <glib.h>
#include <glib/gi18n-lib.h>

G_BEGIN_DECLS

/* Binds GETTEXT_PACKAGE to $RECHAIN_LOCALEDIR (a build tree, for tests) or
 * LOCALEDIR, in UTF-8; once per process. */
G_GNUC_INTERNAL void rechain_i18n_init (void); /* = rechain_init_translations() */

G_GNUC_INTERNAL const char *rechain_i18n_gettext (const char *msgid) G_GNUC_FORMAT (1);

G_END_DECLS

#undef _
#define _(String) ((char *) rechain_i18n_gettext (String))
