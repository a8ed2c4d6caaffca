/* rechain-image-info.c: RechainImageInfo, what `rechain info` shows about
 * one image, typed. The snapshots and bitmaps it lists are in
 * rechain-snapshot-info.c and rechain-bitmap-info.c, its JSON form is in
 * rechain-image-info-json.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"
#include "rechain/rechain-readonly-props-private.h"


/**
 * RechainImageInfo:
 *
 * What `rechain info` (and `qemu-img info`) shows about one image of a
 * chain, from rechain_image_get_info(). The properties are named after the
 * keys of `qemu-img info --output=json` (the qcow2 ones of its
 * `format-specific` data included), except #RechainImageInfo:backing-format,
 * qemu-img's `backing-filename-format`. A key qemu-img leaves out is %NULL,
 * 0 or %FALSE here: the qcow2 keys for a raw image (then
 * #RechainImageInfo:compat is %NULL), `lazy-refcounts`, `corrupt` and
 * `extended-l2` for a compat 0.10 image.
 *
 * rechain_image_info_to_json() writes it as qemu-img does.
 *
 * ```python
 * info = Rechain.Image.open("vm.qcow2", None, 0, None).get_info()
 * print(info.props.virtual_size, [s.props.name for s in info.props.snapshots])
 * ```
 *
 * Since: 0.2
 */
struct _RechainImageInfo {
  GObject parent_instance;
  char *filename;
  char *format;
  guint64 virtual_size;
  guint64 actual_size;
  guint64 cluster_size;
  char *backing_filename;
  char *full_backing_filename;
  char *backing_format;
  gboolean encrypted;
  char *encryption_format;
  gboolean dirty_flag;
  gboolean corrupt;
  char *compat;
  char *compression_type;
  gboolean extended_l2;
  guint refcount_bits;
  gboolean lazy_refcounts;
  gboolean has_data_file;
  char *data_file;
  gboolean data_file_raw;
  GListStore *snapshots; /* of RechainSnapshotInfo */
  GListStore *bitmaps;   /* of RechainBitmapInfo */
  char *luks_cipher_alg;
  char *luks_cipher_mode;
  char *luks_ivgen_alg;
  char *luks_ivgen_hash_alg;
  char *luks_hash_alg;
  guint64 luks_payload_offset;
  guint luks_master_key_iters;
  char *luks_uuid;
  GListStore *luks_slots; /* of RechainLuksSlotInfo */
};

/* The properties, in the order of their ids. */
static const RechainReadonlyProp props[] = {
  /**
   * RechainImageInfo:filename:
   *
   * The path of the image, as it was opened (for a backing file, as it was
   * resolved from the name in its overlay).
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("filename", RechainImageInfo, filename),
  /**
   * RechainImageInfo:format:
   *
   * The format of the image: "qcow2" or "raw".
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("format", RechainImageInfo, format),
  /**
   * RechainImageInfo:virtual-size:
   *
   * The size of the disk the guest sees, in bytes.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("virtual-size", RechainImageInfo, virtual_size),
  /**
   * RechainImageInfo:actual-size:
   *
   * The bytes the image file (and its data file) occupy on disk, as
   * `qemu-img info` reports them ("disk size").
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("actual-size", RechainImageInfo, actual_size),
  /**
   * RechainImageInfo:cluster-size:
   *
   * The cluster size of a qcow2 image in bytes; 0 for a raw image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("cluster-size", RechainImageInfo, cluster_size),
  /**
   * RechainImageInfo:backing-filename:
   *
   * The backing file name as the header records it, or %NULL for an image
   * without a backing file.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("backing-filename", RechainImageInfo, backing_filename),
  /**
   * RechainImageInfo:full-backing-filename:
   *
   * The backing file name resolved as QEMU resolves it (relative to the
   * directory of the image), or %NULL without a backing file.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("full-backing-filename", RechainImageInfo, full_backing_filename),
  /**
   * RechainImageInfo:backing-format:
   *
   * The format of the backing file as the header records it (qemu-img's
   * `backing-filename-format`), or %NULL when it records none.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("backing-format", RechainImageInfo, backing_format),
  /**
   * RechainImageInfo:encrypted:
   *
   * Whether the image is encrypted. Describing an encrypted image needs
   * no key.
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("encrypted", RechainImageInfo, encrypted),
  /**
   * RechainImageInfo:encryption-format:
   *
   * How the image is encrypted, as qemu-img's `encrypt.format`: "luks"
   * or "aes" (legacy, qcow2 crypt_method 1), or %NULL when it is not.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("encryption-format", RechainImageInfo, encryption_format),
  /**
   * RechainImageInfo:dirty-flag:
   *
   * Whether the qcow2 dirty bit is set (lazy refcounts not yet repaired).
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("dirty-flag", RechainImageInfo, dirty_flag),
  /**
   * RechainImageInfo:corrupt:
   *
   * Whether the qcow2 corrupt bit is set (compat 1.1 only).
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("corrupt", RechainImageInfo, corrupt),
  /**
   * RechainImageInfo:compat:
   *
   * The qcow2 version as qemu-img names it: "0.10" (version 2) or "1.1"
   * (version 3); %NULL for a raw image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("compat", RechainImageInfo, compat),
  /**
   * RechainImageInfo:compression-type:
   *
   * The compression of compressed clusters: "zlib" or "zstd"; %NULL for a
   * raw image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("compression-type", RechainImageInfo, compression_type),
  /**
   * RechainImageInfo:extended-l2:
   *
   * Whether the image has extended L2 entries (subclusters; compat 1.1 only).
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("extended-l2", RechainImageInfo, extended_l2),
  /**
   * RechainImageInfo:refcount-bits:
   *
   * The width of a qcow2 reference count in bits; 0 for a raw image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT ("refcount-bits", RechainImageInfo, refcount_bits),
  /**
   * RechainImageInfo:lazy-refcounts:
   *
   * Whether the lazy refcounts feature is on (compat 1.1 only).
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("lazy-refcounts", RechainImageInfo, lazy_refcounts),
  /**
   * RechainImageInfo:has-data-file:
   *
   * Whether the image keeps its guest data in an external data file (the
   * qcow2 data-file feature). #RechainImageInfo:data-file names it when
   * the header records its name; #RechainImageInfo:data-file-raw is
   * meaningful only for such images (qemu-img shows both keys only then).
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("has-data-file", RechainImageInfo, has_data_file),
  /**
   * RechainImageInfo:data-file:
   *
   * The name of the external data file as the header records it, or %NULL.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("data-file", RechainImageInfo, data_file),
  /**
   * RechainImageInfo:data-file-raw:
   *
   * Whether the external data file is a valid raw image by itself.
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("data-file-raw", RechainImageInfo, data_file_raw),
  /**
   * RechainImageInfo:snapshots:
   *
   * The internal snapshots of the image, a #GListModel of
   * #RechainSnapshotInfo in the order of the snapshot table (empty for
   * none).
   *
   * Since: 0.2
   */
  RECHAIN_RO_OBJECT ("snapshots", g_list_model_get_type, RechainImageInfo, snapshots),
  /**
   * RechainImageInfo:bitmaps:
   *
   * The persistent dirty bitmaps of the image, a #GListModel of
   * #RechainBitmapInfo in the order of the bitmap directory (empty for
   * none).
   *
   * Since: 0.2
   */
  RECHAIN_RO_OBJECT ("bitmaps", g_list_model_get_type, RechainImageInfo, bitmaps),
  /**
   * RechainImageInfo:luks-cipher-alg:
   *
   * The cipher of a LUKS-encrypted image and its key size in bits, as
   * qemu-img's `encrypt.cipher-alg` names it: "aes-256", "serpent-128",
   * "twofish-256", "cast5-128"... (for XTS, the size of one of its two
   * keys). %NULL unless #RechainImageInfo:encryption-format is "luks".
   * Like every luks- property, it is read from the LUKS header, which
   * needs no key.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-cipher-alg", RechainImageInfo, luks_cipher_alg),
  /**
   * RechainImageInfo:luks-cipher-mode:
   *
   * The block cipher mode of a LUKS-encrypted image: "xts", "cbc" or
   * "ecb" (qemu-img's `encrypt.cipher-mode`); %NULL for any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-cipher-mode", RechainImageInfo, luks_cipher_mode),
  /**
   * RechainImageInfo:luks-ivgen-alg:
   *
   * The IV generator of a LUKS-encrypted image: "plain", "plain64" or
   * "essiv" (qemu-img's `encrypt.ivgen-alg`); %NULL for any other image,
   * or when the header names none.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-ivgen-alg", RechainImageInfo, luks_ivgen_alg),
  /**
   * RechainImageInfo:luks-ivgen-hash-alg:
   *
   * The hash of the ESSIV IV generator ("sha256"...), qemu-img's
   * `encrypt.ivgen-hash-alg`; %NULL unless #RechainImageInfo:luks-ivgen-alg
   * is "essiv" (a hash after plain or plain64, as in "xts-plain64:sha256",
   * is not used, and qemu-img does not show it either).
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-ivgen-hash-alg", RechainImageInfo, luks_ivgen_hash_alg),
  /**
   * RechainImageInfo:luks-hash-alg:
   *
   * The hash of the key derivation (PBKDF2) and of the anti-forensic
   * split of a LUKS-encrypted image ("sha256"...), qemu-img's
   * `encrypt.hash-alg`; %NULL for any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-hash-alg", RechainImageInfo, luks_hash_alg),
  /**
   * RechainImageInfo:luks-payload-offset:
   *
   * The end of the key material of a LUKS-encrypted image, in bytes from
   * the start of its LUKS header (qemu-img's `encrypt.payload-offset`;
   * in a qcow2 image the data is not there but in clusters of their own);
   * 0 for any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("luks-payload-offset", RechainImageInfo, luks_payload_offset),
  /**
   * RechainImageInfo:luks-master-key-iters:
   *
   * The PBKDF2 iteration count of the master-key digest of a
   * LUKS-encrypted image (qemu-img's `encrypt.master-key-iters`); 0 for
   * any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT ("luks-master-key-iters", RechainImageInfo, luks_master_key_iters),
  /**
   * RechainImageInfo:luks-uuid:
   *
   * The UUID in the LUKS header of a LUKS-encrypted image (qemu-img's
   * `encrypt.uuid`); %NULL for any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("luks-uuid", RechainImageInfo, luks_uuid),
  /**
   * RechainImageInfo:luks-slots:
   *
   * The 8 key slots of a LUKS-encrypted image, a #GListModel of
   * #RechainLuksSlotInfo in header order (qemu-img's `encrypt.slots`);
   * empty for any other image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_OBJECT ("luks-slots", g_list_model_get_type, RechainImageInfo, luks_slots),
};

G_DEFINE_FINAL_TYPE (RechainImageInfo, rechain_image_info, G_TYPE_OBJECT)

static void
rechain_image_info_finalize (GObject *object)
{
  RechainImageInfo *self = RECHAIN_IMAGE_INFO (object);

  g_free (self->filename);
  g_free (self->format);
  g_free (self->backing_filename);
  g_free (self->full_backing_filename);
  g_free (self->backing_format);
  g_free (self->encryption_format);
  g_free (self->compat);
  g_free (self->compression_type);
  g_free (self->data_file);
  g_clear_object (&self->snapshots);
  g_clear_object (&self->bitmaps);
  g_free (self->luks_cipher_alg);
  g_free (self->luks_cipher_mode);
  g_free (self->luks_ivgen_alg);
  g_free (self->luks_ivgen_hash_alg);
  g_free (self->luks_hash_alg);
  g_free (self->luks_uuid);
  g_clear_object (&self->luks_slots);
  G_OBJECT_CLASS (rechain_image_info_parent_class)->finalize (object);
}

static void
rechain_image_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  rechain_readonly_props_get (object, object, props, G_N_ELEMENTS (props), prop_id, value, pspec);
}

static void
rechain_image_info_class_init (RechainImageInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_image_info_finalize;
  object_class->get_property = rechain_image_info_get_property;
  rechain_readonly_props_install (object_class, props, G_N_ELEMENTS (props));
}

static void
rechain_image_info_init (RechainImageInfo *self)
{
  self->snapshots = g_list_store_new (RECHAIN_TYPE_SNAPSHOT_INFO);
  self->bitmaps = g_list_store_new (RECHAIN_TYPE_BITMAP_INFO);
  self->luks_slots = g_list_store_new (RECHAIN_TYPE_LUKS_SLOT_INFO);
}

/* The LUKS header's own names, split and sized as qemu-img shows them: its
 * cipher_mode string is MODE[-IVGEN[:IVHASH]]. The header was validated,
 * so the names are known ones. */
static void
set_luks (RechainImageInfo *info, const RechainLuksHeader *lh)
{
  g_auto(GStrv) mode = g_strsplit (lh->cipher_mode, "-", 2);
  g_auto(GStrv) ivgen = mode[1] ? g_strsplit (mode[1], ":", 2) : NULL;
  gboolean xts = lh->mode == RECHAIN_LUKS_MODE_XTS;

  info->luks_cipher_alg = g_strdup_printf ("%s-%u", lh->cipher_name,
                                           lh->key_bytes * 8 / (xts ? 2 : 1));
  info->luks_cipher_mode = g_strdup (mode[0]);
  if (ivgen)
    {
      info->luks_ivgen_alg = g_strdup (ivgen[0]);
      /* the hash of essiv only: after plain or plain64 it is unused */
      if (g_str_equal (ivgen[0], "essiv"))
        info->luks_ivgen_hash_alg = g_strdup (ivgen[1]);
    }
  info->luks_hash_alg = g_strdup (lh->hash_spec);
  info->luks_payload_offset = (guint64) lh->payload_offset * RECHAIN_LUKS_SECTOR_SIZE;
  info->luks_master_key_iters = lh->mk_iterations;
  info->luks_uuid = g_strdup (lh->uuid);
  for (guint i = 0; i < RECHAIN_LUKS_NUM_SLOTS; i++)
    {
      g_autoptr(RechainLuksSlotInfo) si = rechain_luks_slot_info_new (&lh->slots[i]);

      g_list_store_append (info->luks_slots, si);
    }
}

RechainImageInfo *
rechain_image_info_new_for_layer (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = rechain_layer_get_qcow2_header (layer);
  g_autoptr(RechainImageInfo) info = NULL;
  g_autoptr(GArray) snapshots = NULL;
  g_autoptr(GArray) bitmaps = NULL;
  RechainLuksHeader luks;

  if (h)
    {
      snapshots = rechain_layer_read_snapshots (layer, error);
      bitmaps = snapshots ? rechain_layer_read_bitmaps (layer, error) : NULL;
      if (!bitmaps)
        return NULL;
    }
  /* as qemu-img info, which cannot open an image whose LUKS header it
   * cannot parse: a hostile header is refused here too */
  if (rechain_layer_get_encryption (layer) == RECHAIN_LAYER_ENCRYPTION_LUKS &&
      !rechain_layer_read_luks_header (layer, &luks, error))
    return NULL;

  info = g_object_new (RECHAIN_TYPE_IMAGE_INFO, NULL);
  info->filename = g_strdup (rechain_layer_get_path (layer));
  info->format = g_strdup (rechain_format_to_string (rechain_layer_get_format (layer)));
  info->virtual_size = rechain_layer_get_virtual_size (layer);
  if (rechain_layer_get_encryption (layer) == RECHAIN_LAYER_ENCRYPTION_LUKS)
    set_luks (info, &luks);
  info->actual_size = rechain_layer_get_allocated (layer);

  if (rechain_layer_get_backing_name (layer))
    {
      const char *name = rechain_layer_get_backing_name (layer);
      char *full = rechain_path_resolve (rechain_layer_get_path (layer), name, NULL);

      /* qemu-img keeps a "file:" prefix in the full name */
      if (full && g_str_has_prefix (name, "file:"))
        {
          char *prefixed = g_strconcat ("file:", full, NULL);
          g_free (full);
          full = prefixed;
        }
      info->backing_filename = g_strdup (name);
      info->full_backing_filename = full;
      info->backing_format = g_strdup (rechain_layer_get_backing_format (layer));
    }

  if (h)
    {
      gboolean v3 = h->version >= 3;

      info->cluster_size = rechain_qcow2_cluster_size (h);
      info->encrypted = h->crypt_method != 0;
      info->encryption_format = g_strdup (rechain_layer_get_encryption_name (layer));
      info->dirty_flag = (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DIRTY) != 0;
      info->compat = g_strdup (v3 ? "1.1" : "0.10");
      info->compression_type = g_strdup (h->compression_type == RECHAIN_QCOW2_COMPRESSION_ZSTD
                                         ? "zstd" : "zlib");
      info->refcount_bits = 1u << h->refcount_order;
      if (v3)
        {
          info->lazy_refcounts = (h->compatible_features & RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
          info->corrupt = (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_CORRUPT) != 0;
          info->extended_l2 = rechain_qcow2_has_extl2 (h);
        }
      if (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_DATA_FILE)
        {
          info->has_data_file = TRUE;
          info->data_file = g_strdup (h->data_file);
          info->data_file_raw = (h->autoclear_features & RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0;
        }

      for (guint i = 0; i < snapshots->len; i++)
        {
          g_autoptr(RechainSnapshotInfo) si =
            rechain_snapshot_info_new (&g_array_index (snapshots, RechainQcow2Snapshot, i));

          g_list_store_append (info->snapshots, si);
        }
      for (guint i = 0; i < bitmaps->len; i++)
        {
          g_autoptr(RechainBitmapInfo) bi =
            rechain_bitmap_info_new (&g_array_index (bitmaps, RechainQcow2Bitmap, i));

          g_list_store_append (info->bitmaps, bi);
        }
    }
  return g_steal_pointer (&info);
}

/**
 * rechain_image_info_get_filename:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:filename]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_filename (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->filename;
}

/**
 * rechain_image_info_get_format:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:format]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_format (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->format;
}

/**
 * rechain_image_info_get_virtual_size:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:virtual-size]
 *
 * Since: 0.2
 */
guint64
rechain_image_info_get_virtual_size (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->virtual_size;
}

/**
 * rechain_image_info_get_actual_size:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:actual-size]
 *
 * Since: 0.2
 */
guint64
rechain_image_info_get_actual_size (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->actual_size;
}

/**
 * rechain_image_info_get_cluster_size:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:cluster-size]
 *
 * Since: 0.2
 */
guint64
rechain_image_info_get_cluster_size (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->cluster_size;
}

/**
 * rechain_image_info_get_backing_filename:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:backing-filename]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_backing_filename (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->backing_filename;
}

/**
 * rechain_image_info_get_full_backing_filename:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:full-backing-filename]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_full_backing_filename (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->full_backing_filename;
}

/**
 * rechain_image_info_get_backing_format:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:backing-format]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_backing_format (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->backing_format;
}

/**
 * rechain_image_info_get_encrypted:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:encrypted]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_encrypted (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->encrypted;
}

/**
 * rechain_image_info_get_encryption_format:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:encryption-format]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_encryption_format (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->encryption_format;
}

/**
 * rechain_image_info_get_dirty_flag:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:dirty-flag]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_dirty_flag (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->dirty_flag;
}

/**
 * rechain_image_info_get_corrupt:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:corrupt]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_corrupt (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->corrupt;
}

/**
 * rechain_image_info_get_compat:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:compat]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_compat (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->compat;
}

/**
 * rechain_image_info_get_compression_type:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:compression-type]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_compression_type (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->compression_type;
}

/**
 * rechain_image_info_get_extended_l2:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:extended-l2]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_extended_l2 (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->extended_l2;
}

/**
 * rechain_image_info_get_refcount_bits:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:refcount-bits]
 *
 * Since: 0.2
 */
guint
rechain_image_info_get_refcount_bits (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->refcount_bits;
}

/**
 * rechain_image_info_get_lazy_refcounts:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:lazy-refcounts]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_lazy_refcounts (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->lazy_refcounts;
}

/**
 * rechain_image_info_get_has_data_file:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:has-data-file]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_has_data_file (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->has_data_file;
}

/**
 * rechain_image_info_get_data_file:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:data-file]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_data_file (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->data_file;
}

/**
 * rechain_image_info_get_data_file_raw:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:data-file-raw]
 *
 * Since: 0.2
 */
gboolean
rechain_image_info_get_data_file_raw (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), FALSE);
  return info->data_file_raw;
}

/**
 * rechain_image_info_get_snapshots:
 * @info: image information
 *
 * Returns: (transfer none): the value of [property@Rechain.ImageInfo:snapshots],
 *   a list of [class@Rechain.SnapshotInfo]
 *
 * Since: 0.2
 */
GListModel *
rechain_image_info_get_snapshots (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return G_LIST_MODEL (info->snapshots);
}

/**
 * rechain_image_info_get_bitmaps:
 * @info: image information
 *
 * Returns: (transfer none): the value of [property@Rechain.ImageInfo:bitmaps],
 *   a list of [class@Rechain.BitmapInfo]
 *
 * Since: 0.2
 */
GListModel *
rechain_image_info_get_bitmaps (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return G_LIST_MODEL (info->bitmaps);
}

/**
 * rechain_image_info_get_luks_cipher_alg:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-cipher-alg]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_cipher_alg (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_cipher_alg;
}

/**
 * rechain_image_info_get_luks_cipher_mode:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-cipher-mode]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_cipher_mode (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_cipher_mode;
}

/**
 * rechain_image_info_get_luks_ivgen_alg:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-ivgen-alg]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_ivgen_alg (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_ivgen_alg;
}

/**
 * rechain_image_info_get_luks_ivgen_hash_alg:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-ivgen-hash-alg]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_ivgen_hash_alg (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_ivgen_hash_alg;
}

/**
 * rechain_image_info_get_luks_hash_alg:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-hash-alg]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_hash_alg (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_hash_alg;
}

/**
 * rechain_image_info_get_luks_payload_offset:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:luks-payload-offset]
 *
 * Since: 0.2
 */
guint64
rechain_image_info_get_luks_payload_offset (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->luks_payload_offset;
}

/**
 * rechain_image_info_get_luks_master_key_iters:
 * @info: image information
 *
 * Returns: the value of [property@Rechain.ImageInfo:luks-master-key-iters]
 *
 * Since: 0.2
 */
guint
rechain_image_info_get_luks_master_key_iters (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), 0);
  return info->luks_master_key_iters;
}

/**
 * rechain_image_info_get_luks_uuid:
 * @info: image information
 *
 * Returns: (nullable): the value of [property@Rechain.ImageInfo:luks-uuid]
 *
 * Since: 0.2
 */
const char *
rechain_image_info_get_luks_uuid (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return info->luks_uuid;
}

/**
 * rechain_image_info_get_luks_slots:
 * @info: image information
 *
 * Returns: (transfer none): the value of [property@Rechain.ImageInfo:luks-slots],
 *   a list of [class@Rechain.LuksSlotInfo]
 *
 * Since: 0.2
 */
GListModel *
rechain_image_info_get_luks_slots (RechainImageInfo *info)
{
  g_return_val_if_fail (RECHAIN_IS_IMAGE_INFO (info), NULL);
  return G_LIST_MODEL (info->luks_slots);
}
