/* cmd-info.c: rechain info — an image and its backing chain, in qemu-img
 * info's terms (its JSON uses the same keys, so scripts can switch tools).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "chain/chain.h"
#include "tool/tool.h"

static const char *
compression_name (guint8 type)
{
  return type == RECHAIN_QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
}

static void
add_bitmap_flags (JsonBuilder *b, guint32 flags)
{
  json_builder_set_member_name (b, "flags");
  json_builder_begin_array (b);
  if (flags & RECHAIN_QCOW2_BITMAP_IN_USE)
    json_builder_add_string_value (b, "in-use");
  if (flags & RECHAIN_QCOW2_BITMAP_AUTO)
    json_builder_add_string_value (b, "auto");
  json_builder_end_array (b);
}

/* Fills the JSON object of one layer. */
static gboolean
build_layer (JsonBuilder *b, RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = rechain_layer_get_qcow2_header (layer);
  g_autoptr(GArray) snapshots = NULL;
  g_autoptr(GArray) bitmaps = NULL;

  if (h)
    {
      snapshots = rechain_layer_read_snapshots (layer, error);
      bitmaps = snapshots ? rechain_layer_read_bitmaps (layer, error) : NULL;
      if (!bitmaps)
        return FALSE;
    }

  json_builder_begin_object (b);
  if (snapshots && snapshots->len > 0)
    {
      json_builder_set_member_name (b, "snapshots");
      json_builder_begin_array (b);
      for (guint i = 0; i < snapshots->len; i++)
        {
          const RechainQcow2Snapshot *s = &g_array_index (snapshots, RechainQcow2Snapshot, i);
          json_builder_begin_object (b);
          if (s->icount >= 0)
            {
              json_builder_set_member_name (b, "icount");
              json_builder_add_int_value (b, s->icount);
            }
          json_builder_set_member_name (b, "vm-clock-nsec");
          json_builder_add_int_value (b, (gint64) (s->vm_clock_nsec % 1000000000u));
          json_builder_set_member_name (b, "name");
          json_builder_add_string_value (b, s->name);
          json_builder_set_member_name (b, "date-sec");
          json_builder_add_int_value (b, s->date_sec);
          json_builder_set_member_name (b, "date-nsec");
          json_builder_add_int_value (b, s->date_nsec);
          json_builder_set_member_name (b, "vm-clock-sec");
          json_builder_add_int_value (b, (gint64) (s->vm_clock_nsec / 1000000000u));
          json_builder_set_member_name (b, "id");
          json_builder_add_string_value (b, s->id);
          json_builder_set_member_name (b, "vm-state-size");
          json_builder_add_int_value (b, (gint64) s->vm_state_size);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
    }

  json_builder_set_member_name (b, "virtual-size");
  json_builder_add_int_value (b, (gint64) rechain_layer_get_virtual_size (layer));
  json_builder_set_member_name (b, "filename");
  json_builder_add_string_value (b, rechain_layer_get_path (layer));
  if (h)
    {
      json_builder_set_member_name (b, "cluster-size");
      json_builder_add_int_value (b, (gint64) rechain_qcow2_cluster_size (h));
    }
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, rechain_format_to_string (rechain_layer_get_format (layer)));
  json_builder_set_member_name (b, "actual-size");
  json_builder_add_int_value (b, (gint64) rechain_layer_get_allocated (layer));

  if (h)
    {
      gboolean v3 = h->version >= 3;

      json_builder_set_member_name (b, "format-specific");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "type");
      json_builder_add_string_value (b, "qcow2");
      json_builder_set_member_name (b, "data");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "compat");
      json_builder_add_string_value (b, v3 ? "1.1" : "0.10");
      json_builder_set_member_name (b, "compression-type");
      json_builder_add_string_value (b, compression_name (h->compression_type));
      if (v3)
        {
          json_builder_set_member_name (b, "lazy-refcounts");
          json_builder_add_boolean_value (b, (h->compatible_features & RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS) != 0);
        }
      if (bitmaps->len > 0)
        {
          json_builder_set_member_name (b, "bitmaps");
          json_builder_begin_array (b);
          for (guint i = 0; i < bitmaps->len; i++)
            {
              const RechainQcow2Bitmap *bm = &g_array_index (bitmaps, RechainQcow2Bitmap, i);
              json_builder_begin_object (b);
              add_bitmap_flags (b, bm->flags);
              json_builder_set_member_name (b, "name");
              json_builder_add_string_value (b, bm->name);
              json_builder_set_member_name (b, "granularity");
              json_builder_add_int_value (b, (gint64) 1 << bm->granularity_bits);
              json_builder_end_object (b);
            }
          json_builder_end_array (b);
        }
      json_builder_set_member_name (b, "refcount-bits");
      json_builder_add_int_value (b, (gint64) 1 << h->refcount_order);
      if (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DATA_FILE)
        {
          if (h->data_file)
            {
              json_builder_set_member_name (b, "data-file");
              json_builder_add_string_value (b, h->data_file);
            }
          json_builder_set_member_name (b, "data-file-raw");
          json_builder_add_boolean_value (b, (h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0);
        }
      if (v3)
        {
          json_builder_set_member_name (b, "corrupt");
          json_builder_add_boolean_value (b, (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_CORRUPT) != 0);
          json_builder_set_member_name (b, "extended-l2");
          json_builder_add_boolean_value (b, rechain_qcow2_has_extl2 (h));
        }
      json_builder_end_object (b);
      json_builder_end_object (b);
    }

  if (rechain_layer_get_backing_name (layer))
    {
      const char *name = rechain_layer_get_backing_name (layer);
      g_autofree char *full = rechain_path_resolve (rechain_layer_get_path (layer), name, NULL);

      /* qemu-img keeps a "file:" prefix in the full name */
      if (full && g_str_has_prefix (name, "file:"))
        {
          char *prefixed = g_strconcat ("file:", full, NULL);
          g_free (full);
          full = prefixed;
        }

      if (full)
        {
          json_builder_set_member_name (b, "full-backing-filename");
          json_builder_add_string_value (b, full);
        }
      json_builder_set_member_name (b, "backing-filename");
      json_builder_add_string_value (b, name);
      if (rechain_layer_get_backing_format (layer))
        {
          json_builder_set_member_name (b, "backing-filename-format");
          json_builder_add_string_value (b, rechain_layer_get_backing_format (layer));
        }
    }
  json_builder_set_member_name (b, "dirty-flag");
  json_builder_add_boolean_value (b, h && (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DIRTY));
  json_builder_end_object (b);
  return TRUE;
}

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
  printf (_("virtual size: %s (%" G_GINT64_FORMAT " bytes)\n"), vsize,
          json_object_get_int_member (o, "virtual-size"));
  printf (_("disk size: %s\n"), dsize);
  if (json_object_has_member (o, "cluster-size"))
    printf (_("cluster_size: %" G_GINT64_FORMAT "\n"), json_object_get_int_member (o, "cluster-size"));
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
  g_autoptr(RechainChain) chain = NULL;
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  RechainOutputFormat out_format;
  guint layers;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Show an image: format, sizes, backing file, features."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rechain_tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return rechain_tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!rechain_tool_parse_output (output, &out_format, &error))
    return rechain_tool_fail (error);

  chain = rechain_chain_open (argv[1], format,
                              (force_share ? RECHAIN_CHAIN_OPEN_FORCE_SHARE : 0) |
                              (backing_chain ? 0 : RECHAIN_CHAIN_OPEN_NO_BACKING),
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (!chain)
    return rechain_tool_fail (error);
  rechain_tool_print_warnings (rechain_chain_get_warnings (chain));

  layers = rechain_chain_get_depth (chain);
  if (backing_chain)
    json_builder_begin_array (builder);
  for (guint i = 0; i < layers; i++)
    if (!build_layer (builder, rechain_chain_get_layer (chain, i), &error))
      return rechain_tool_fail (error);
  if (backing_chain)
    json_builder_end_array (builder);
  root = json_builder_get_root (builder);

  if (out_format == RECHAIN_OUTPUT_JSON)
    {
      g_autoptr(JsonGenerator) gen = json_generator_new ();
      g_autofree char *text = NULL;

      json_generator_set_pretty (gen, TRUE);
      json_generator_set_indent (gen, 4);
      json_generator_set_root (gen, root);
      text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
    }
  else if (backing_chain)
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
