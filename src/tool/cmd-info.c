/* cmd-info.c: rechain info — an image and its backing chain, in qemu-img
 * info's terms (its JSON uses the same keys, so scripts can switch tools).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

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
print_bitmaps (GListModel *bitmaps)
{
  printf ("    %s:\n", "bitmaps");
  for (guint i = 0; i < g_list_model_get_n_items (bitmaps); i++)
    {
      g_autoptr(RechainBitmapInfo) bm = g_list_model_get_item (bitmaps, i);
      const char * const *flags = rechain_bitmap_info_get_flags (bm);

      printf ("        [%u]:\n            flags:\n", i);
      for (guint j = 0; flags && flags[j]; j++)
        printf ("                [%u]: %s\n", j, flags[j]);
      printf ("            name: %s\n            granularity: %" G_GUINT64_FORMAT "\n",
              rechain_bitmap_info_get_name (bm), rechain_bitmap_info_get_granularity (bm));
    }
}

static void
print_optional (const char *indent, const char *name, const char *value)
{
  if (value)
    printf ("%s%s: %s\n", indent, name, value);
}

/* qemu-img's "encrypt" block, in the order of its JSON */
static void
print_encrypt (RechainImageInfo *info)
{
  const char *in = "        ";
  gboolean luks = rechain_image_info_get_luks_cipher_alg (info) != NULL;

  printf ("    encrypt:\n");
  if (luks)
    {
      print_optional (in, "ivgen alg", rechain_image_info_get_luks_ivgen_alg (info));
      print_optional (in, "hash alg", rechain_image_info_get_luks_hash_alg (info));
      print_optional (in, "cipher alg", rechain_image_info_get_luks_cipher_alg (info));
      print_optional (in, "uuid", rechain_image_info_get_luks_uuid (info));
      print_optional (in, "ivgen hash alg", rechain_image_info_get_luks_ivgen_hash_alg (info));
    }
  print_optional (in, "format", rechain_image_info_get_encryption_format (info));
  if (!luks)
    return;
  print_optional (in, "cipher mode", rechain_image_info_get_luks_cipher_mode (info));
  printf ("%sslots:\n", in);
  for (guint i = 0; i < g_list_model_get_n_items (rechain_image_info_get_luks_slots (info)); i++)
    {
      g_autoptr(RechainLuksSlotInfo) s = g_list_model_get_item (rechain_image_info_get_luks_slots (info), i);
      gboolean active = rechain_luks_slot_info_get_active (s);

      printf ("            [%u]:\n                active: %s\n", i, active ? "true" : "false");
      if (active)
        printf ("                iters: %u\n", rechain_luks_slot_info_get_iters (s));
      printf ("                key offset: %" G_GUINT64_FORMAT "\n", rechain_luks_slot_info_get_key_offset (s));
      if (active)
        printf ("                stripes: %u\n", rechain_luks_slot_info_get_stripes (s));
    }
  printf ("%spayload offset: %" G_GUINT64_FORMAT "\n", in, rechain_image_info_get_luks_payload_offset (info));
  printf ("%smaster key iters: %u\n", in, rechain_image_info_get_luks_master_key_iters (info));
}

/* qemu-img's "Format specific information" of a qcow2 image: its JSON keys
 * with spaces for dashes, in the order of the JSON. */
static void
print_format_specific (RechainImageInfo *info)
{
  gboolean v3 = g_strcmp0 (rechain_image_info_get_compat (info), "0.10") != 0;

  printf (_("Format specific information:\n"));
  printf ("    compat: %s\n", rechain_image_info_get_compat (info));
  printf ("    compression type: %s\n", rechain_image_info_get_compression_type (info));
  if (v3)
    printf ("    lazy refcounts: %s\n", rechain_image_info_get_lazy_refcounts (info) ? "true" : "false");
  if (g_list_model_get_n_items (rechain_image_info_get_bitmaps (info)) > 0)
    print_bitmaps (rechain_image_info_get_bitmaps (info));
  printf ("    refcount bits: %u\n", rechain_image_info_get_refcount_bits (info));
  if (rechain_image_info_get_encryption_format (info))
    print_encrypt (info);
  if (rechain_image_info_get_has_data_file (info))
    {
      if (rechain_image_info_get_data_file (info))
        printf ("    data file: %s\n", rechain_image_info_get_data_file (info));
      printf ("    data file raw: %s\n", rechain_image_info_get_data_file_raw (info) ? "true" : "false");
    }
  if (v3)
    {
      printf ("    corrupt: %s\n", rechain_image_info_get_corrupt (info) ? "true" : "false");
      printf ("    extended l2: %s\n", rechain_image_info_get_extended_l2 (info) ? "true" : "false");
    }
}

static void
print_human (RechainImageInfo *info)
{
  g_autofree char *vsize = format_size (rechain_image_info_get_virtual_size (info));
  g_autofree char *dsize = format_size (rechain_image_info_get_actual_size (info));
  const char *name = rechain_image_info_get_backing_filename (info);
  GListModel *snaps = rechain_image_info_get_snapshots (info);

  printf (_("image: %s\n"), rechain_image_info_get_filename (info));
  printf (_("file format: %s\n"), rechain_image_info_get_format (info));
  printf (_("virtual size: %s (%" PRId64 " bytes)\n"), vsize,
          (gint64) rechain_image_info_get_virtual_size (info));
  printf (_("disk size: %s\n"), dsize);
  if (rechain_image_info_get_encrypted (info))
    printf (_("encrypted: yes\n"));
  if (rechain_image_info_get_cluster_size (info) > 0)
    printf (_("cluster_size: %" PRId64 "\n"), (gint64) rechain_image_info_get_cluster_size (info));
  if (name)
    {
      const char *full = rechain_image_info_get_full_backing_filename (info);
      if (!full || g_str_equal (name, full))
        printf (_("backing file: %s\n"), name);
      else
        printf (_("backing file: %s (actual path: %s)\n"), name, full);
      if (rechain_image_info_get_backing_format (info))
        printf (_("backing file format: %s\n"), rechain_image_info_get_backing_format (info));
    }
  if (g_list_model_get_n_items (snaps) > 0)
    {
      printf (_("Snapshot list:\n"));
      printf ("%-10s%-20s%11s%20s%16s\n", _("ID"), _("TAG"), _("VM SIZE"), _("DATE"), _("VM CLOCK"));
      for (guint i = 0; i < g_list_model_get_n_items (snaps); i++)
        {
          g_autoptr(RechainSnapshotInfo) s = g_list_model_get_item (snaps, i);
          g_autoptr(GDateTime) date = g_date_time_new_from_unix_local (rechain_snapshot_info_get_date_sec (s));
          g_autofree char *date_str = date ? g_date_time_format (date, "%Y-%m-%d %H:%M:%S") : g_strdup ("-");
          g_autofree char *vm_size = format_size (rechain_snapshot_info_get_vm_state_size (s));
          gint64 clock = rechain_snapshot_info_get_vm_clock_sec (s);
          printf ("%-10s%-20s%11s%20s %02" G_GINT64_FORMAT ":%02" G_GINT64_FORMAT ":%02" G_GINT64_FORMAT ".%03" G_GINT64_FORMAT "\n",
                  rechain_snapshot_info_get_id (s), rechain_snapshot_info_get_name (s),
                  vm_size, date_str, clock / 3600, (clock / 60) % 60, clock % 60,
                  rechain_snapshot_info_get_vm_clock_nsec (s) / 1000000);
        }
    }
  if (rechain_image_info_get_compat (info))
    print_format_specific (info);
}

int
cmd_info (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *output = NULL;
  g_auto(ToolSource) source = { 0 };
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
  g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func (g_object_unref);
  ToolOutputFormat out_format;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Show an image: format, sizes, backing file, features."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  tool_source_add_entries (context, &source);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!tool_parse_output (output, &out_format, &error))
    return tool_fail (error);

  image = tool_source_open (&source, argv[1], format,
                                    (force_share ? RECHAIN_IMAGE_OPEN_FORCE_SHARE : 0) |
                                    (backing_chain ? 0 : RECHAIN_IMAGE_OPEN_NO_BACKING),
                                    &error);
  if (!image)
    return tool_fail (error);
  tool_print_warnings (rechain_image_get_warnings (image));

  if (out_format == TOOL_OUTPUT_JSON)
    {
      g_autofree char *text = rechain_image_get_info_json (image, backing_chain, &error);
      if (!text)
        return tool_fail (error);
      printf ("%s\n", text);
      return fflush (stdout) == 0 ? TOOL_EXIT_OK : TOOL_EXIT_IO;
    }

  /* every image described before the first line is printed, as for JSON */
  for (RechainImage *i = image; i; i = backing_chain ? rechain_image_get_backing_image (i) : NULL)
    {
      RechainImageInfo *info = rechain_image_get_info (i, &error);
      if (!info)
        return tool_fail (error);
      g_ptr_array_add (infos, info);
    }
  for (guint i = 0; i < infos->len; i++)
    {
      if (i > 0)
        printf ("\n");
      print_human (g_ptr_array_index (infos, i));
    }
  return fflush (stdout) == 0 ? TOOL_EXIT_OK : TOOL_EXIT_IO;
}
