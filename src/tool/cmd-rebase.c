/* cmd-rebase.c: rechain rebase — qemu-img rebase's options and meaning.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <stdio.h>

#include "job/rebase.h"
#include "tool/tool.h"

int
rechain_cmd_rebase (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *cache = NULL;
  g_autofree char *src_cache = NULL;
  g_autofree char *backing = NULL;
  g_autofree char *backing_format = NULL;
  gboolean progress = FALSE, quiet = FALSE, unsafe = FALSE, compress = FALSE;
  gboolean force_share = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Format of IMAGE (qcow2; probed if not given)"), N_("FMT") },
    { "cache", 't', 0, G_OPTION_ARG_STRING, &cache, N_("Cache mode for IMAGE: writeback (default), writethrough, none, directsync, unsafe"), N_("CACHE") },
    { "source-cache", 'T', 0, G_OPTION_ARG_STRING, &src_cache, N_("Cache mode for the backing files read (safe mode)"), N_("CACHE") },
    { "progress", 'p', 0, G_OPTION_ARG_NONE, &progress, N_("Show progress (safe mode)"), NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("Print nothing but errors"), NULL },
    { "unsafe", 'u', 0, G_OPTION_ARG_NONE, &unsafe, N_("Only change the backing file name and format; copy nothing"), NULL },
    { "compress", 'c', 0, G_OPTION_ARG_NONE, &compress, N_("Compress the clusters copied into IMAGE (safe mode)"), NULL },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Take no image locks (dangerous when writing)"), NULL },
    { "backing", 'b', 0, G_OPTION_ARG_STRING, &backing, N_("New backing file (\"\" for none)"), N_("BACKING") },
    { "backing-format", 'F', 0, G_OPTION_ARG_STRING, &backing_format, N_("Format of the new backing file"), N_("FMT") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE"));
  g_autoptr(GError) error = NULL;
  RechainRebaseOptions options = { 0 };

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Change the backing file of IMAGE to BACKING (\"\" for none).\n\n"
      "Safe mode (the default) keeps the guest-visible content unchanged by first copying\n"
      "into IMAGE every region where the old and the new backing chains differ.\n"
      "Unsafe mode (-u) only rewrites the backing file name and format."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rechain_tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return rechain_tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!backing)
    return rechain_tool_usage_error (context, _("the new backing file must be given with -b (use -b \"\" for none)"));
  if (progress && quiet)
    return rechain_tool_usage_error (context, _("-p and -q exclude each other"));

  options.image = argv[1];
  options.format = format;
  options.backing_file = backing;
  options.backing_format = backing_format;
  options.force_share = force_share;
  if (cache && !rechain_cache_mode_from_string (cache, &options.cache, &error))
    return rechain_tool_fail (error);
  if (src_cache)
    {
      RechainCacheMode ignored;
      if (!rechain_cache_mode_from_string (src_cache, &ignored, &error))
        return rechain_tool_fail (error);
    }

  if (!unsafe)
    {
      /* Refuse rather than quietly do something else: a safe rebase that
       * only rewrote the header would change what the guest sees. */
      g_printerr (_("rechain: safe rebase (without -u) is not implemented yet in this version; "
                    "IMAGE was not changed. Use 'qemu-img rebase' for a safe rebase, or -u if the "
                    "old and new backing files have the same content.\n"));
      return RECHAIN_EXIT_FAILURE;
    }
  if (compress)
    return rechain_tool_usage_error (context, _("-c only applies to a safe rebase, not with -u"));

  if (!rechain_rebase_unsafe (&options, &error))
    return rechain_tool_fail (error);
  return RECHAIN_EXIT_OK;
}
