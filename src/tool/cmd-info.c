/* cmd-info.c: rechain info — an image and its backing chain, in qemu-img
 * info's terms (its JSON uses the same keys, so scripts can switch tools).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <json-glib/json-glib.h>
#include <inttypes.h>
#include <stdio.h>

#include <rechain/rechain.h>
#include "tool.h"

static char *
format_size (guint64 bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double value = (double) bytes;
  guint unit = 0;

  while (value >= 1024 && unit + 1 < G_N_ELEMENTS (units))
    {
      value /= 1024;
      unit++;
    }
  if (unit == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " B", bytes);
  return g_strdup_printf ("%.3g %s", value, units[unit]);
}

static void
print_human (JsonObject *o)
{
  g_autofree char *vsize = format_size ((guint64) json_object_get_int_member (o, "virtual-size"));
  g_autofree char *dsize = format_size ((guint64) json_object_get_int_member (o, "actual-size"));

  printf (_("image: %s\n"), json_object_get_string_member (o, "filename"));
  printf (_("file format: %s\n"), json_object_get_string_member (o, "format"));
  printf (_("virtual size: %s (%" PRId64 " bytes)\n"), vsize,
          json_object_get_int_member (o, "virtual-size"));
  printf (_("disk size: %s\n"), dsize);
  if (json_object_has_member (o, "cluster-size"))
    printf (_("cluster_size: %" PRId64 "\n"), json_object_get_int_member (o, "cluster-size"));
  if (json_object_has_member (o, "backing-filename"))
    {
      const char *name = json_object_get_string_member (o, "backing-filename");
      const char *full = json_object_get_string_member_with_default (o, "full-backing-filename", name);
      if (g_str_equal (name, full))
        printf (_("backing file: %s\n"), name);
      else
        printf (_("backing file: %s (actual path: %s)\n"), name, full);
      if (json_object_has_member (o, "backing-filename-format"))
        printf (_("backing file format: %s\n"),
                json_object_get_string_member (o, "backing-filename-format"));
    }
  if (json_object_has_member (o, "snapshots"))
    {
      JsonArray *snaps = json_object_get_array_member (o, "snapshots");
      printf (_("Snapshot list:\n"));
      printf ("%-10s%-20s%11s%20s%16s\n", _("ID"), _("TAG"), _("VM SIZE"), _("DATE"), _("VM CLOCK"));
      for (guint i = 0; i < json_array_get_length (snaps); i++)
        {
          JsonObject *s = json_array_get_object_element (snaps, i);
          g_autoptr(GDateTime) date = g_date_time_new_from_unix_local (json_object_get_int_member (s, "date-sec"));
          g_autofree char *date_str = date ? g_date_time_format (date, "%Y-%m-%d %H:%M:%S") : g_strdup ("-");
          g_autofree char *vm_size = format_size ((guint64) json_object_get_int_member (s, "vm-state-size"));
          gint64 clock = json_object_get_int_member (s, "vm-clock-sec");
          printf ("%-10s%-20s%11s%20s %02" G_GINT64_FORMAT ":%02" G_GINT64_FORMAT ":%02" G_GINT64_FORMAT ".%03" G_GINT64_FORMAT "\n",
                  json_object_get_string_member (s, "id"), json_object_get_string_member (s, "name"),
                  vm_size, date_str, clock / 3600, (clock / 60) % 60, clock % 60,
                  json_object_get_int_member (s, "vm-clock-nsec") / 1000000);
        }
    }
  if (json_object_has_member (o, "format-specific"))
    {
      JsonObject *data = json_object_get_object_member (json_object_get_object_member (o, "format-specific"), "data");
      g_autoptr(GList) members = json_object_get_members (data);

      printf (_("Format specific information:\n"));
      for (GList *l = members; l; l = l->next)
        {
          const char *key = l->data;
          JsonNode *node = json_object_get_member (data, key);
          g_autofree char *label = g_strdelimit (g_strdup (key), "-", ' ');

          if (JSON_NODE_HOLDS_ARRAY (node))
            {
              JsonArray *arr = json_node_get_array (node);
              printf ("    %s:\n", label);
              for (guint i = 0; i < json_array_get_length (arr); i++)
                {
                  JsonObject *bm = json_array_get_object_element (arr, i);
                  JsonArray *flags = json_object_get_array_member (bm, "flags");
                  printf ("        [%u]:\n            flags:\n", i);
                  for (guint j = 0; j < json_array_get_length (flags); j++)
                    printf ("                [%u]: %s\n", j, json_array_get_string_element (flags, j));
                  printf ("            name: %s\n            granularity: %" G_GINT64_FORMAT "\n",
                          json_object_get_string_member (bm, "name"),
                          json_object_get_int_member (bm, "granularity"));
                }
            }
          else if (json_node_get_value_type (node) == G_TYPE_BOOLEAN)
            printf ("    %s: %s\n", label, json_node_get_boolean (node) ? "true" : "false");
          else if (json_node_get_value_type (node) == G_TYPE_INT64)
            printf ("    %s: %" G_GINT64_FORMAT "\n", label, json_node_get_int (node));
          else
            printf ("    %s: %s\n", label, json_node_get_string (node));
        }
    }
}

int
rechain_cmd_info (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *output = NULL;
  g_auto(RechainToolSource) source = { 0 };
  gboolean force_share = FALSE, backing_chain = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Image format (qcow2 or raw; probed if not given)"), N_("FMT") },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Open even if another process has the image open for writing (takes no locks)"), NULL },
    { "backing-chain", 0, 0, G_OPTION_ARG_NONE, &backing_chain, N_("Show every image of the backing chain"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &output, N_("Output format: human (default) or json"), N_("FORMAT") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE"));
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainImage) image = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *text = NULL;
  JsonNode *root;
  RechainOutputFormat out_format;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Show an image: format, sizes, backing file, features."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  rechain_tool_source_add_entries (context, &source);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rechain_tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return rechain_tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!rechain_tool_parse_output (output, &out_format, &error))
    return rechain_tool_fail (error);

  image = rechain_tool_source_open (&source, argv[1], format,
                                    (force_share ? RECHAIN_IMAGE_OPEN_FORCE_SHARE : 0) |
                                    (backing_chain ? 0 : RECHAIN_IMAGE_OPEN_NO_BACKING),
                                    &error);
  if (!image)
    return rechain_tool_fail (error);
  rechain_tool_print_warnings (rechain_image_get_warnings (image));

  text = rechain_image_get_info_json (image, backing_chain, &error);
  if (!text)
    return rechain_tool_fail (error);
  if (out_format == RECHAIN_OUTPUT_JSON)
    {
      printf ("%s\n", text);
      return fflush (stdout) == 0 ? RECHAIN_EXIT_OK : RECHAIN_EXIT_IO;
    }

  if (!json_parser_load_from_data (parser, text, -1, &error))
    return rechain_tool_fail (error);
  root = json_parser_get_root (parser);
  if (backing_chain)
    {
      JsonArray *arr = json_node_get_array (root);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        {
          if (i > 0)
            printf ("\n");
          print_human (json_array_get_object_element (arr, i));
        }
    }
  else
    print_human (json_node_get_object (root));
  return fflush (stdout) == 0 ? RECHAIN_EXIT_OK : RECHAIN_EXIT_IO;
}
