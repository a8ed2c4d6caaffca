/* cmd-map.c: rechain map — where each region of the guest-visible content
 * comes from, in the terms of qemu-img map.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <stdio.h>

#include "chain/chain.h"
#include "tool/tool.h"

/* Maps are built a slice at a time so that memory stays bounded however
 * large and fragmented the image is. */
#define MAP_SLICE (G_GUINT64_CONSTANT (1) << 30)

static void
print_extent (const RechainExtent *e, RechainChain *chain, RechainOutputFormat format, gboolean first)
{
  gboolean data = e->kind == RECHAIN_EXTENT_DATA;
  gboolean present = e->kind != RECHAIN_EXTENT_UNALLOCATED;
  gboolean has_offset = e->host_offset != RECHAIN_NO_HOST_OFFSET && !e->compressed;

  if (format == RECHAIN_OUTPUT_JSON)
    {
      printf ("%s{ \"start\": %" G_GUINT64_FORMAT ", \"length\": %" G_GUINT64_FORMAT ", "
              "\"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
              first ? "" : ",\n", e->offset, e->length, e->depth,
              present ? "true" : "false", data ? "false" : "true", data ? "true" : "false");
      if (e->compressed)
        printf (", \"compressed\": true");
      if (has_offset)
        printf (", \"offset\": %" G_GUINT64_FORMAT, e->host_offset);
      printf ("}");
      return;
    }

  /* Human output lists only what holds data, as qemu-img map does. */
  if (!data)
    return;
  {
    RechainLayer *layer = rechain_chain_get_layer (chain, (guint) e->depth);
    RechainFile *file = rechain_layer_get_data_file (layer);
    if (has_offset)
      printf ("%#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %s\n",
              e->offset, e->length, e->host_offset, rechain_file_get_path (file));
    else
      printf ("%#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %-19s %s\n",
              e->offset, e->length, e->compressed ? _("compressed") : "-",
              rechain_file_get_path (file));
  }
}

int
rechain_cmd_map (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *output = NULL;
  gboolean force_share = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Image format (qcow2 or raw; probed if not given)"), N_("FMT") },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Open even if another process has the image open for writing (takes no locks)"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &output, N_("Output format: human (default) or json"), N_("FORMAT") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE"));
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  RechainOutputFormat out_format;
  RechainExtent pending = { 0 };
  gboolean have_pending = FALSE, first = TRUE;
  guint64 size;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Show, for each region of the guest-visible content, "
                                           "which image of the chain holds it."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rechain_tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return rechain_tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!rechain_tool_parse_output (output, &out_format, &error))
    return rechain_tool_fail (error);

  chain = rechain_chain_open (argv[1], format, force_share ? RECHAIN_CHAIN_OPEN_FORCE_SHARE : 0,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (!chain)
    return rechain_tool_fail (error);
  rechain_tool_print_warnings (rechain_chain_get_warnings (chain));

  if (out_format == RECHAIN_OUTPUT_JSON)
    printf ("[");
  else
    printf ("%-19s %-19s %-19s %s\n", _("Offset"), _("Length"), _("Mapped to"), _("File"));

  size = rechain_layer_get_virtual_size (rechain_chain_get_top (chain));
  for (guint64 pos = 0; pos < size; pos += MAP_SLICE)
    {
      g_autoptr(GArray) extents = rechain_extent_list_new ();
      guint64 len = MIN (MAP_SLICE, size - pos);

      /* Carry the last extent of a slice over, so that extents spanning a
       * slice boundary are printed once. */
      if (have_pending)
        g_array_append_val (extents, pending);
      if (!rechain_chain_map (chain, 0, pos, len, extents, &error))
        {
          if (out_format == RECHAIN_OUTPUT_JSON)
            printf ("]\n");
          fflush (stdout);
          return rechain_tool_fail (error);
        }
      for (guint i = 0; i + 1 < extents->len; i++)
        {
          print_extent (&g_array_index (extents, RechainExtent, i), chain, out_format, first);
          first = FALSE;
        }
      have_pending = extents->len > 0;
      if (have_pending)
        pending = g_array_index (extents, RechainExtent, extents->len - 1);
    }
  if (have_pending)
    print_extent (&pending, chain, out_format, first);
  if (out_format == RECHAIN_OUTPUT_JSON)
    printf ("]\n");
  return fflush (stdout) == 0 ? RECHAIN_EXIT_OK : RECHAIN_EXIT_IO;
}
