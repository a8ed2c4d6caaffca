/* rechain-image-info.c: RechainImageInfo, RechainSnapshotInfo and
 * RechainBitmapInfo, what `rechain info` shows about one image, typed.
 * Their JSON form is in rechain-image-info-json.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"

#define RO_PROP (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)

/* ---- RechainSnapshotInfo ---- */

/**
 * RechainSnapshotInfo:
 *
 * An internal snapshot of a qcow2 image, as `qemu-img info` lists it
 * (`qemu-img snapshot -c` makes one). The properties are named after the
 * keys of qemu-img's JSON.
 *
 * Since: 0.2
 */
struct _RechainSnapshotInfo {
  GObject parent_instance;
  char *name;
  char *id;
  guint64 vm_state_size;
  gint64 date_sec;
  gint64 date_nsec;
  gint64 vm_clock_sec;
  gint64 vm_clock_nsec;
  gint64 icount;
};

enum {
  SNAP_PROP_0,
  SNAP_PROP_NAME,
  SNAP_PROP_ID,
  SNAP_PROP_VM_STATE_SIZE,
  SNAP_PROP_DATE_SEC,
  SNAP_PROP_DATE_NSEC,
  SNAP_PROP_VM_CLOCK_SEC,
  SNAP_PROP_VM_CLOCK_NSEC,
  SNAP_PROP_ICOUNT,
  SNAP_N_PROPS
};
static GParamSpec *snap_props[SNAP_N_PROPS];

G_DEFINE_FINAL_TYPE (RechainSnapshotInfo, rechain_snapshot_info, G_TYPE_OBJECT)

static void
rechain_snapshot_info_finalize (GObject *object)
{
  RechainSnapshotInfo *self = RECHAIN_SNAPSHOT_INFO (object);

  g_free (self->name);
  g_free (self->id);
  G_OBJECT_CLASS (rechain_snapshot_info_parent_class)->finalize (object);
}

static void
rechain_snapshot_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainSnapshotInfo *self = RECHAIN_SNAPSHOT_INFO (object);

  switch (prop_id)
    {
    case SNAP_PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case SNAP_PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case SNAP_PROP_VM_STATE_SIZE:
      g_value_set_uint64 (value, self->vm_state_size);
      break;
    case SNAP_PROP_DATE_SEC:
      g_value_set_int64 (value, self->date_sec);
      break;
    case SNAP_PROP_DATE_NSEC:
      g_value_set_int64 (value, self->date_nsec);
      break;
    case SNAP_PROP_VM_CLOCK_SEC:
      g_value_set_int64 (value, self->vm_clock_sec);
      break;
    case SNAP_PROP_VM_CLOCK_NSEC:
      g_value_set_int64 (value, self->vm_clock_nsec);
      break;
    case SNAP_PROP_ICOUNT:
      g_value_set_int64 (value, self->icount);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_snapshot_info_class_init (RechainSnapshotInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_snapshot_info_finalize;
  object_class->get_property = rechain_snapshot_info_get_property;

  /**
   * RechainSnapshotInfo:name:
   *
   * The name (tag) of the snapshot.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainSnapshotInfo:id:
   *
   * The ID of the snapshot, as the image records it.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_ID] = g_param_spec_string ("id", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainSnapshotInfo:vm-state-size:
   *
   * Bytes of saved VM state (memory, devices) the snapshot holds; 0 for a
   * snapshot of the disk only.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_VM_STATE_SIZE] = g_param_spec_uint64 ("vm-state-size", NULL, NULL,
                                                             0, G_MAXUINT64, 0, RO_PROP);
  /**
   * RechainSnapshotInfo:date-sec:
   *
   * When the snapshot was taken, in seconds since the Unix epoch.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_DATE_SEC] = g_param_spec_int64 ("date-sec", NULL, NULL,
                                                       0, G_MAXINT64, 0, RO_PROP);
  /**
   * RechainSnapshotInfo:date-nsec:
   *
   * When the snapshot was taken: the nanoseconds after
   * #RechainSnapshotInfo:date-sec.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_DATE_NSEC] = g_param_spec_int64 ("date-nsec", NULL, NULL,
                                                        0, G_MAXINT64, 0, RO_PROP);
  /**
   * RechainSnapshotInfo:vm-clock-sec:
   *
   * The guest clock when the snapshot was taken, whole seconds.
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_VM_CLOCK_SEC] = g_param_spec_int64 ("vm-clock-sec", NULL, NULL,
                                                           0, G_MAXINT64, 0, RO_PROP);
  /**
   * RechainSnapshotInfo:vm-clock-nsec:
   *
   * The guest clock when the snapshot was taken: the nanoseconds after
   * #RechainSnapshotInfo:vm-clock-sec (below 10⁹, as in qemu-img's JSON).
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_VM_CLOCK_NSEC] = g_param_spec_int64 ("vm-clock-nsec", NULL, NULL,
                                                            0, G_MAXINT64, 0, RO_PROP);
  /**
   * RechainSnapshotInfo:icount:
   *
   * The instruction count of record/replay when the snapshot was taken,
   * or -1 when the image records none (qemu-img then omits the key).
   *
   * Since: 0.2
   */
  snap_props[SNAP_PROP_ICOUNT] = g_param_spec_int64 ("icount", NULL, NULL,
                                                     -1, G_MAXINT64, -1, RO_PROP);
  g_object_class_install_properties (object_class, SNAP_N_PROPS, snap_props);
}

static void
rechain_snapshot_info_init (RechainSnapshotInfo *self)
{
  self->icount = -1;
}

/**
 * rechain_snapshot_info_get_name:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:name]
 *
 * Since: 0.2
 */
const char *
rechain_snapshot_info_get_name (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), NULL);
  return snapshot->name;
}

/**
 * rechain_snapshot_info_get_id:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:id]
 *
 * Since: 0.2
 */
const char *
rechain_snapshot_info_get_id (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), NULL);
  return snapshot->id;
}

/**
 * rechain_snapshot_info_get_vm_state_size:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:vm-state-size]
 *
 * Since: 0.2
 */
guint64
rechain_snapshot_info_get_vm_state_size (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), 0);
  return snapshot->vm_state_size;
}

/**
 * rechain_snapshot_info_get_date_sec:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:date-sec]
 *
 * Since: 0.2
 */
gint64
rechain_snapshot_info_get_date_sec (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), 0);
  return snapshot->date_sec;
}

/**
 * rechain_snapshot_info_get_date_nsec:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:date-nsec]
 *
 * Since: 0.2
 */
gint64
rechain_snapshot_info_get_date_nsec (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), 0);
  return snapshot->date_nsec;
}

/**
 * rechain_snapshot_info_get_vm_clock_sec:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:vm-clock-sec]
 *
 * Since: 0.2
 */
gint64
rechain_snapshot_info_get_vm_clock_sec (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), 0);
  return snapshot->vm_clock_sec;
}

/**
 * rechain_snapshot_info_get_vm_clock_nsec:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:vm-clock-nsec]
 *
 * Since: 0.2
 */
gint64
rechain_snapshot_info_get_vm_clock_nsec (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), 0);
  return snapshot->vm_clock_nsec;
}

/**
 * rechain_snapshot_info_get_icount:
 * @snapshot: a snapshot
 *
 * Returns: the value of [property@Rechain.SnapshotInfo:icount]: -1 when
 *   the image records none
 *
 * Since: 0.2
 */
gint64
rechain_snapshot_info_get_icount (RechainSnapshotInfo *snapshot)
{
  g_return_val_if_fail (RECHAIN_IS_SNAPSHOT_INFO (snapshot), -1);
  return snapshot->icount;
}

/* ---- RechainBitmapInfo ---- */

/**
 * RechainBitmapInfo:
 *
 * A persistent dirty bitmap of a qcow2 image, as `qemu-img info` lists it
 * (`qemu-img bitmap --add` makes one).
 *
 * Since: 0.2
 */
struct _RechainBitmapInfo {
  GObject parent_instance;
  char *name;
  guint64 granularity;
  char **flags;
};

enum {
  BITMAP_PROP_0,
  BITMAP_PROP_NAME,
  BITMAP_PROP_GRANULARITY,
  BITMAP_PROP_FLAGS,
  BITMAP_N_PROPS
};
static GParamSpec *bitmap_props[BITMAP_N_PROPS];

G_DEFINE_FINAL_TYPE (RechainBitmapInfo, rechain_bitmap_info, G_TYPE_OBJECT)

static void
rechain_bitmap_info_finalize (GObject *object)
{
  RechainBitmapInfo *self = RECHAIN_BITMAP_INFO (object);

  g_free (self->name);
  g_strfreev (self->flags);
  G_OBJECT_CLASS (rechain_bitmap_info_parent_class)->finalize (object);
}

static void
rechain_bitmap_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainBitmapInfo *self = RECHAIN_BITMAP_INFO (object);

  switch (prop_id)
    {
    case BITMAP_PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case BITMAP_PROP_GRANULARITY:
      g_value_set_uint64 (value, self->granularity);
      break;
    case BITMAP_PROP_FLAGS:
      g_value_set_boxed (value, self->flags);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_bitmap_info_class_init (RechainBitmapInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_bitmap_info_finalize;
  object_class->get_property = rechain_bitmap_info_get_property;

  /**
   * RechainBitmapInfo:name:
   *
   * The name of the bitmap.
   *
   * Since: 0.2
   */
  bitmap_props[BITMAP_PROP_NAME] = g_param_spec_string ("name", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainBitmapInfo:granularity:
   *
   * Bytes of guest data one bit of the bitmap stands for.
   *
   * Since: 0.2
   */
  bitmap_props[BITMAP_PROP_GRANULARITY] = g_param_spec_uint64 ("granularity", NULL, NULL,
                                                               0, G_MAXUINT64, 0, RO_PROP);
  /**
   * RechainBitmapInfo:flags:
   *
   * The flags of the bitmap, named as qemu-img names them: "in-use" (the
   * bitmap was not saved consistently) and "auto" (it tracks guest
   * writes), in that order.
   *
   * Since: 0.2
   */
  bitmap_props[BITMAP_PROP_FLAGS] = g_param_spec_boxed ("flags", NULL, NULL, G_TYPE_STRV, RO_PROP);
  g_object_class_install_properties (object_class, BITMAP_N_PROPS, bitmap_props);
}

static void
rechain_bitmap_info_init (RechainBitmapInfo *self)
{
}

/**
 * rechain_bitmap_info_get_name:
 * @bitmap: a bitmap
 *
 * Returns: the value of [property@Rechain.BitmapInfo:name]
 *
 * Since: 0.2
 */
const char *
rechain_bitmap_info_get_name (RechainBitmapInfo *bitmap)
{
  g_return_val_if_fail (RECHAIN_IS_BITMAP_INFO (bitmap), NULL);
  return bitmap->name;
}

/**
 * rechain_bitmap_info_get_granularity:
 * @bitmap: a bitmap
 *
 * Returns: the value of [property@Rechain.BitmapInfo:granularity]
 *
 * Since: 0.2
 */
guint64
rechain_bitmap_info_get_granularity (RechainBitmapInfo *bitmap)
{
  g_return_val_if_fail (RECHAIN_IS_BITMAP_INFO (bitmap), 0);
  return bitmap->granularity;
}

/**
 * rechain_bitmap_info_get_flags:
 * @bitmap: a bitmap
 *
 * Returns: (array zero-terminated=1) (transfer none): the value of
 *   [property@Rechain.BitmapInfo:flags]
 *
 * Since: 0.2
 */
const char * const *
rechain_bitmap_info_get_flags (RechainBitmapInfo *bitmap)
{
  g_return_val_if_fail (RECHAIN_IS_BITMAP_INFO (bitmap), NULL);
  return (const char * const *) bitmap->flags;
}

/* ---- RechainImageInfo ---- */

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
};

enum {
  PROP_0,
  PROP_FILENAME,
  PROP_FORMAT,
  PROP_VIRTUAL_SIZE,
  PROP_ACTUAL_SIZE,
  PROP_CLUSTER_SIZE,
  PROP_BACKING_FILENAME,
  PROP_FULL_BACKING_FILENAME,
  PROP_BACKING_FORMAT,
  PROP_ENCRYPTED,
  PROP_ENCRYPTION_FORMAT,
  PROP_DIRTY_FLAG,
  PROP_CORRUPT,
  PROP_COMPAT,
  PROP_COMPRESSION_TYPE,
  PROP_EXTENDED_L2,
  PROP_REFCOUNT_BITS,
  PROP_LAZY_REFCOUNTS,
  PROP_HAS_DATA_FILE,
  PROP_DATA_FILE,
  PROP_DATA_FILE_RAW,
  PROP_SNAPSHOTS,
  PROP_BITMAPS,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

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
  G_OBJECT_CLASS (rechain_image_info_parent_class)->finalize (object);
}

static void
rechain_image_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  RechainImageInfo *self = RECHAIN_IMAGE_INFO (object);

  switch (prop_id)
    {
    case PROP_FILENAME:
      g_value_set_string (value, self->filename);
      break;
    case PROP_FORMAT:
      g_value_set_string (value, self->format);
      break;
    case PROP_VIRTUAL_SIZE:
      g_value_set_uint64 (value, self->virtual_size);
      break;
    case PROP_ACTUAL_SIZE:
      g_value_set_uint64 (value, self->actual_size);
      break;
    case PROP_CLUSTER_SIZE:
      g_value_set_uint64 (value, self->cluster_size);
      break;
    case PROP_BACKING_FILENAME:
      g_value_set_string (value, self->backing_filename);
      break;
    case PROP_FULL_BACKING_FILENAME:
      g_value_set_string (value, self->full_backing_filename);
      break;
    case PROP_BACKING_FORMAT:
      g_value_set_string (value, self->backing_format);
      break;
    case PROP_ENCRYPTED:
      g_value_set_boolean (value, self->encrypted);
      break;
    case PROP_ENCRYPTION_FORMAT:
      g_value_set_string (value, self->encryption_format);
      break;
    case PROP_DIRTY_FLAG:
      g_value_set_boolean (value, self->dirty_flag);
      break;
    case PROP_CORRUPT:
      g_value_set_boolean (value, self->corrupt);
      break;
    case PROP_COMPAT:
      g_value_set_string (value, self->compat);
      break;
    case PROP_COMPRESSION_TYPE:
      g_value_set_string (value, self->compression_type);
      break;
    case PROP_EXTENDED_L2:
      g_value_set_boolean (value, self->extended_l2);
      break;
    case PROP_REFCOUNT_BITS:
      g_value_set_uint (value, self->refcount_bits);
      break;
    case PROP_LAZY_REFCOUNTS:
      g_value_set_boolean (value, self->lazy_refcounts);
      break;
    case PROP_HAS_DATA_FILE:
      g_value_set_boolean (value, self->has_data_file);
      break;
    case PROP_DATA_FILE:
      g_value_set_string (value, self->data_file);
      break;
    case PROP_DATA_FILE_RAW:
      g_value_set_boolean (value, self->data_file_raw);
      break;
    case PROP_SNAPSHOTS:
      g_value_set_object (value, self->snapshots);
      break;
    case PROP_BITMAPS:
      g_value_set_object (value, self->bitmaps);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rechain_image_info_class_init (RechainImageInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_image_info_finalize;
  object_class->get_property = rechain_image_info_get_property;

  /**
   * RechainImageInfo:filename:
   *
   * The path of the image, as it was opened (for a backing file, as it was
   * resolved from the name in its overlay).
   *
   * Since: 0.2
   */
  props[PROP_FILENAME] = g_param_spec_string ("filename", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:format:
   *
   * The format of the image: "qcow2" or "raw".
   *
   * Since: 0.2
   */
  props[PROP_FORMAT] = g_param_spec_string ("format", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:virtual-size:
   *
   * The size of the disk the guest sees, in bytes.
   *
   * Since: 0.2
   */
  props[PROP_VIRTUAL_SIZE] = g_param_spec_uint64 ("virtual-size", NULL, NULL,
                                                  0, G_MAXUINT64, 0, RO_PROP);
  /**
   * RechainImageInfo:actual-size:
   *
   * The bytes the image file (and its data file) occupy on disk, as
   * `qemu-img info` reports them ("disk size").
   *
   * Since: 0.2
   */
  props[PROP_ACTUAL_SIZE] = g_param_spec_uint64 ("actual-size", NULL, NULL,
                                                 0, G_MAXUINT64, 0, RO_PROP);
  /**
   * RechainImageInfo:cluster-size:
   *
   * The cluster size of a qcow2 image in bytes; 0 for a raw image.
   *
   * Since: 0.2
   */
  props[PROP_CLUSTER_SIZE] = g_param_spec_uint64 ("cluster-size", NULL, NULL,
                                                  0, G_MAXUINT64, 0, RO_PROP);
  /**
   * RechainImageInfo:backing-filename:
   *
   * The backing file name as the header records it, or %NULL for an image
   * without a backing file.
   *
   * Since: 0.2
   */
  props[PROP_BACKING_FILENAME] = g_param_spec_string ("backing-filename", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:full-backing-filename:
   *
   * The backing file name resolved as QEMU resolves it (relative to the
   * directory of the image), or %NULL without a backing file.
   *
   * Since: 0.2
   */
  props[PROP_FULL_BACKING_FILENAME] = g_param_spec_string ("full-backing-filename", NULL, NULL,
                                                           NULL, RO_PROP);
  /**
   * RechainImageInfo:backing-format:
   *
   * The format of the backing file as the header records it (qemu-img's
   * `backing-filename-format`), or %NULL when it records none.
   *
   * Since: 0.2
   */
  props[PROP_BACKING_FORMAT] = g_param_spec_string ("backing-format", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:encrypted:
   *
   * Whether the image is encrypted. Describing an encrypted image needs
   * no key.
   *
   * Since: 0.2
   */
  props[PROP_ENCRYPTED] = g_param_spec_boolean ("encrypted", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:encryption-format:
   *
   * How the image is encrypted, as qemu-img's `encrypt.format`: "luks"
   * or "aes" (legacy, qcow2 crypt_method 1), or %NULL when it is not.
   *
   * Since: 0.2
   */
  props[PROP_ENCRYPTION_FORMAT] = g_param_spec_string ("encryption-format", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:dirty-flag:
   *
   * Whether the qcow2 dirty bit is set (lazy refcounts not yet repaired).
   *
   * Since: 0.2
   */
  props[PROP_DIRTY_FLAG] = g_param_spec_boolean ("dirty-flag", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:corrupt:
   *
   * Whether the qcow2 corrupt bit is set (compat 1.1 only).
   *
   * Since: 0.2
   */
  props[PROP_CORRUPT] = g_param_spec_boolean ("corrupt", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:compat:
   *
   * The qcow2 version as qemu-img names it: "0.10" (version 2) or "1.1"
   * (version 3); %NULL for a raw image.
   *
   * Since: 0.2
   */
  props[PROP_COMPAT] = g_param_spec_string ("compat", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:compression-type:
   *
   * The compression of compressed clusters: "zlib" or "zstd"; %NULL for a
   * raw image.
   *
   * Since: 0.2
   */
  props[PROP_COMPRESSION_TYPE] = g_param_spec_string ("compression-type", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:extended-l2:
   *
   * Whether the image has extended L2 entries (subclusters; compat 1.1 only).
   *
   * Since: 0.2
   */
  props[PROP_EXTENDED_L2] = g_param_spec_boolean ("extended-l2", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:refcount-bits:
   *
   * The width of a qcow2 reference count in bits; 0 for a raw image.
   *
   * Since: 0.2
   */
  props[PROP_REFCOUNT_BITS] = g_param_spec_uint ("refcount-bits", NULL, NULL,
                                                 0, G_MAXUINT, 0, RO_PROP);
  /**
   * RechainImageInfo:lazy-refcounts:
   *
   * Whether the lazy refcounts feature is on (compat 1.1 only).
   *
   * Since: 0.2
   */
  props[PROP_LAZY_REFCOUNTS] = g_param_spec_boolean ("lazy-refcounts", NULL, NULL, FALSE, RO_PROP);
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
  props[PROP_HAS_DATA_FILE] = g_param_spec_boolean ("has-data-file", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:data-file:
   *
   * The name of the external data file as the header records it, or %NULL.
   *
   * Since: 0.2
   */
  props[PROP_DATA_FILE] = g_param_spec_string ("data-file", NULL, NULL, NULL, RO_PROP);
  /**
   * RechainImageInfo:data-file-raw:
   *
   * Whether the external data file is a valid raw image by itself.
   *
   * Since: 0.2
   */
  props[PROP_DATA_FILE_RAW] = g_param_spec_boolean ("data-file-raw", NULL, NULL, FALSE, RO_PROP);
  /**
   * RechainImageInfo:snapshots:
   *
   * The internal snapshots of the image, a #GListModel of
   * #RechainSnapshotInfo in the order of the snapshot table (empty for
   * none).
   *
   * Since: 0.2
   */
  props[PROP_SNAPSHOTS] = g_param_spec_object ("snapshots", NULL, NULL, G_TYPE_LIST_MODEL, RO_PROP);
  /**
   * RechainImageInfo:bitmaps:
   *
   * The persistent dirty bitmaps of the image, a #GListModel of
   * #RechainBitmapInfo in the order of the bitmap directory (empty for
   * none).
   *
   * Since: 0.2
   */
  props[PROP_BITMAPS] = g_param_spec_object ("bitmaps", NULL, NULL, G_TYPE_LIST_MODEL, RO_PROP);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
rechain_image_info_init (RechainImageInfo *self)
{
  self->snapshots = g_list_store_new (RECHAIN_TYPE_SNAPSHOT_INFO);
  self->bitmaps = g_list_store_new (RECHAIN_TYPE_BITMAP_INFO);
}

static char **
bitmap_flag_names (guint32 flags)
{
  GStrvBuilder *b = g_strv_builder_new ();
  char **names;

  if (flags & RECHAIN_QCOW2_BITMAP_IN_USE)
    g_strv_builder_add (b, "in-use");
  if (flags & RECHAIN_QCOW2_BITMAP_AUTO)
    g_strv_builder_add (b, "auto");
  names = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return names;
}

RechainImageInfo *
rechain_image_info_new_for_layer (RechainLayer *layer, GError **error)
{
  const RechainQcow2Header *h = rechain_layer_get_qcow2_header (layer);
  g_autoptr(RechainImageInfo) info = NULL;
  g_autoptr(GArray) snapshots = NULL;
  g_autoptr(GArray) bitmaps = NULL;

  if (h)
    {
      snapshots = rechain_layer_read_snapshots (layer, error);
      bitmaps = snapshots ? rechain_layer_read_bitmaps (layer, error) : NULL;
      if (!bitmaps)
        return NULL;
    }

  info = g_object_new (RECHAIN_TYPE_IMAGE_INFO, NULL);
  info->filename = g_strdup (rechain_layer_get_path (layer));
  info->format = g_strdup (rechain_format_to_string (rechain_layer_get_format (layer)));
  info->virtual_size = rechain_layer_get_virtual_size (layer);
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
      if (h->crypt_method == RECHAIN_QCOW2_CRYPT_LUKS)
        info->encryption_format = g_strdup ("luks");
      else if (h->crypt_method == RECHAIN_QCOW2_CRYPT_AES)
        info->encryption_format = g_strdup ("aes");
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
          const RechainQcow2Snapshot *s = &g_array_index (snapshots, RechainQcow2Snapshot, i);
          g_autoptr(RechainSnapshotInfo) si = g_object_new (RECHAIN_TYPE_SNAPSHOT_INFO, NULL);

          si->name = g_strdup (s->name);
          si->id = g_strdup (s->id);
          si->vm_state_size = s->vm_state_size;
          si->date_sec = s->date_sec;
          si->date_nsec = s->date_nsec;
          si->vm_clock_sec = (gint64) (s->vm_clock_nsec / 1000000000u);
          si->vm_clock_nsec = (gint64) (s->vm_clock_nsec % 1000000000u);
          si->icount = s->icount >= 0 ? s->icount : -1;
          g_list_store_append (info->snapshots, si);
        }
      for (guint i = 0; i < bitmaps->len; i++)
        {
          const RechainQcow2Bitmap *bm = &g_array_index (bitmaps, RechainQcow2Bitmap, i);
          g_autoptr(RechainBitmapInfo) bi = g_object_new (RECHAIN_TYPE_BITMAP_INFO, NULL);

          bi->name = g_strdup (bm->name);
          bi->granularity = (guint64) 1 << bm->granularity_bits;
          bi->flags = bitmap_flag_names (bm->flags);
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
