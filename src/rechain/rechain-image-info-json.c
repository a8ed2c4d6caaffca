/* rechain-image-info-json.c: RechainImageInfo in the JSON shape of
 * `qemu-img info --output=json` (its keys, in its order), kept apart from
 * the typed model as json-glib's json-gobject is.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"

static void
add_int (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static void
add_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

static void
add_boolean (JsonBuilder *b, const char *name, gboolean value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_boolean_value (b, value);
}

static void
build_snapshots (JsonBuilder *b, GListModel *snapshots)
{
  guint n = g_list_model_get_n_items (snapshots);

  if (n == 0)
    return;
  json_builder_set_member_name (b, "snapshots");
  json_builder_begin_array (b);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(RechainSnapshotInfo) s = g_list_model_get_item (snapshots, i);

      json_builder_begin_object (b);
      if (rechain_snapshot_info_get_icount (s) >= 0)
        add_int (b, "icount", rechain_snapshot_info_get_icount (s));
      add_int (b, "vm-clock-nsec", rechain_snapshot_info_get_vm_clock_nsec (s));
      add_string (b, "name", rechain_snapshot_info_get_name (s));
      add_int (b, "date-sec", rechain_snapshot_info_get_date_sec (s));
      add_int (b, "date-nsec", rechain_snapshot_info_get_date_nsec (s));
      add_int (b, "vm-clock-sec", rechain_snapshot_info_get_vm_clock_sec (s));
      add_string (b, "id", rechain_snapshot_info_get_id (s));
      add_int (b, "vm-state-size", (gint64) rechain_snapshot_info_get_vm_state_size (s));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

static void
build_bitmaps (JsonBuilder *b, GListModel *bitmaps)
{
  guint n = g_list_model_get_n_items (bitmaps);

  if (n == 0)
    return;
  json_builder_set_member_name (b, "bitmaps");
  json_builder_begin_array (b);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(RechainBitmapInfo) bm = g_list_model_get_item (bitmaps, i);
      const char * const *flags = rechain_bitmap_info_get_flags (bm);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "flags");
      json_builder_begin_array (b);
      for (guint j = 0; flags && flags[j]; j++)
        json_builder_add_string_value (b, flags[j]);
      json_builder_end_array (b);
      add_string (b, "name", rechain_bitmap_info_get_name (bm));
      add_int (b, "granularity", (gint64) rechain_bitmap_info_get_granularity (bm));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

static void
add_optional_string (JsonBuilder *b, const char *name, const char *value)
{
  if (value)
    add_string (b, name, value);
}

static void
build_luks_slots (JsonBuilder *b, GListModel *slots)
{
  json_builder_set_member_name (b, "slots");
  json_builder_begin_array (b);
  for (guint i = 0; i < g_list_model_get_n_items (slots); i++)
    {
      g_autoptr(RechainLuksSlotInfo) s = g_list_model_get_item (slots, i);
      gboolean active = rechain_luks_slot_info_get_active (s);

      json_builder_begin_object (b);
      add_boolean (b, "active", active);
      if (active)
        add_int (b, "iters", rechain_luks_slot_info_get_iters (s));
      add_int (b, "key-offset", (gint64) rechain_luks_slot_info_get_key_offset (s));
      if (active)
        add_int (b, "stripes", rechain_luks_slot_info_get_stripes (s));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

/* qemu-img's "encrypt" object: the format, and for LUKS what its header
 * says, in the order qemu-img writes the keys (that of its hash table) */
static void
build_encrypt (JsonBuilder *b, RechainImageInfo *info)
{
  gboolean luks = rechain_image_info_get_luks_cipher_alg (info) != NULL;

  json_builder_set_member_name (b, "encrypt");
  json_builder_begin_object (b);
  if (luks)
    {
      add_optional_string (b, "ivgen-alg", rechain_image_info_get_luks_ivgen_alg (info));
      add_string (b, "hash-alg", rechain_image_info_get_luks_hash_alg (info));
      add_string (b, "cipher-alg", rechain_image_info_get_luks_cipher_alg (info));
      add_string (b, "uuid", rechain_image_info_get_luks_uuid (info));
      add_optional_string (b, "ivgen-hash-alg", rechain_image_info_get_luks_ivgen_hash_alg (info));
    }
  add_string (b, "format", rechain_image_info_get_encryption_format (info));
  if (luks)
    {
      add_string (b, "cipher-mode", rechain_image_info_get_luks_cipher_mode (info));
      build_luks_slots (b, rechain_image_info_get_luks_slots (info));
      add_int (b, "payload-offset", (gint64) rechain_image_info_get_luks_payload_offset (info));
      add_int (b, "master-key-iters", rechain_image_info_get_luks_master_key_iters (info));
    }
  json_builder_end_object (b);
}

/* qemu-img's "format-specific" object of a qcow2 image */
static void
build_format_specific (JsonBuilder *b, RechainImageInfo *info)
{
  gboolean v3 = g_strcmp0 (rechain_image_info_get_compat (info), "0.10") != 0;

  json_builder_set_member_name (b, "format-specific");
  json_builder_begin_object (b);
  add_string (b, "type", rechain_image_info_get_format (info));
  json_builder_set_member_name (b, "data");
  json_builder_begin_object (b);
  add_string (b, "compat", rechain_image_info_get_compat (info));
  add_string (b, "compression-type", rechain_image_info_get_compression_type (info));
  if (v3)
    add_boolean (b, "lazy-refcounts", rechain_image_info_get_lazy_refcounts (info));
  build_bitmaps (b, rechain_image_info_get_bitmaps (info));
  add_int (b, "refcount-bits", rechain_image_info_get_refcount_bits (info));
  if (rechain_image_info_get_encryption_format (info))
    build_encrypt (b, info);
  if (rechain_image_info_get_has_data_file (info))
    {
      if (rechain_image_info_get_data_file (info))
        add_string (b, "data-file", rechain_image_info_get_data_file (info));
      add_boolean (b, "data-file-raw", rechain_image_info_get_data_file_raw (info));
    }
  if (v3)
    {
      add_boolean (b, "corrupt", rechain_image_info_get_corrupt (info));
      add_boolean (b, "extended-l2", rechain_image_info_get_extended_l2 (info));
    }
  json_builder_end_object (b);
  json_builder_end_object (b);
}

void
rechain_image_info_build_json (RechainImageInfo *info, JsonBuilder *b)
{
  json_builder_begin_object (b);
  build_snapshots (b, rechain_image_info_get_snapshots (info));
  add_int (b, "virtual-size", (gint64) rechain_image_info_get_virtual_size (info));
  add_string (b, "filename", rechain_image_info_get_filename (info));
  if (rechain_image_info_get_cluster_size (info) > 0)
    add_int (b, "cluster-size", (gint64) rechain_image_info_get_cluster_size (info));
  add_string (b, "format", rechain_image_info_get_format (info));
  add_int (b, "actual-size", (gint64) rechain_image_info_get_actual_size (info));
  if (rechain_image_info_get_compat (info))
    build_format_specific (b, info);
  /* after format-specific, where qemu-img puts it */
  if (rechain_image_info_get_encrypted (info))
    add_boolean (b, "encrypted", TRUE);
  if (rechain_image_info_get_backing_filename (info))
    {
      if (rechain_image_info_get_full_backing_filename (info))
        add_string (b, "full-backing-filename", rechain_image_info_get_full_backing_filename (info));
      add_string (b, "backing-filename", rechain_image_info_get_backing_filename (info));
      if (rechain_image_info_get_backing_format (info))
        add_string (b, "backing-filename-format", rechain_image_info_get_backing_format (info));
    }
  add_boolean (b, "dirty-flag", rechain_image_info_get_dirty_flag (info));
  json_builder_end_object (b);
}

char *
rechain_image_info_json_to_data (JsonNode *root)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 4);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

/**
 * rechain_image_info_to_json:
 * @info: image information
 *
 * Writes @info as `qemu-img info --output=json` describes an image: the
 * same keys in the same order, a key left out where qemu-img leaves it
 * out. rechain_image_get_info_json() is this for an image, or for its
 * whole chain.
 *
 * Returns: (transfer full): the JSON text (an object)
 *
 * Since: 0.2
 */
char *
rechain_image_info_to_json (RechainImageInfo *info)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  rechain_image_info_build_json (info, builder);
  root = json_builder_get_root (builder);
  return rechain_image_info_json_to_data (root);
}
