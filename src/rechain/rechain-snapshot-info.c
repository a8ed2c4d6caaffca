/* rechain-snapshot-info.c: RechainSnapshotInfo, an internal snapshot of an
 * image as `rechain info` lists it (an element of
 * rechain_image_info_get_snapshots()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"
#include "rechain/rechain-readonly-props-private.h"

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

/* The properties, in the order of their ids. */
static const RechainReadonlyProp snap_props[] = {
  /**
   * RechainSnapshotInfo:name:
   *
   * The name (tag) of the snapshot.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("name", RechainSnapshotInfo, name),
  /**
   * RechainSnapshotInfo:id:
   *
   * The ID of the snapshot, as the image records it.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("id", RechainSnapshotInfo, id),
  /**
   * RechainSnapshotInfo:vm-state-size:
   *
   * Bytes of saved VM state (memory, devices) the snapshot holds; 0 for a
   * snapshot of the disk only.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("vm-state-size", RechainSnapshotInfo, vm_state_size),
  /**
   * RechainSnapshotInfo:date-sec:
   *
   * When the snapshot was taken, in seconds since the Unix epoch.
   *
   * Since: 0.2
   */
  RECHAIN_RO_INT64 ("date-sec", RechainSnapshotInfo, date_sec, 0),
  /**
   * RechainSnapshotInfo:date-nsec:
   *
   * When the snapshot was taken: the nanoseconds after
   * #RechainSnapshotInfo:date-sec.
   *
   * Since: 0.2
   */
  RECHAIN_RO_INT64 ("date-nsec", RechainSnapshotInfo, date_nsec, 0),
  /**
   * RechainSnapshotInfo:vm-clock-sec:
   *
   * The guest clock when the snapshot was taken, whole seconds.
   *
   * Since: 0.2
   */
  RECHAIN_RO_INT64 ("vm-clock-sec", RechainSnapshotInfo, vm_clock_sec, 0),
  /**
   * RechainSnapshotInfo:vm-clock-nsec:
   *
   * The guest clock when the snapshot was taken: the nanoseconds after
   * #RechainSnapshotInfo:vm-clock-sec (below 10⁹, as in qemu-img's JSON).
   *
   * Since: 0.2
   */
  RECHAIN_RO_INT64 ("vm-clock-nsec", RechainSnapshotInfo, vm_clock_nsec, 0),
  /**
   * RechainSnapshotInfo:icount:
   *
   * The instruction count of record/replay when the snapshot was taken,
   * or -1 when the image records none (qemu-img then omits the key).
   *
   * Since: 0.2
   */
  RECHAIN_RO_INT64 ("icount", RechainSnapshotInfo, icount, -1),
};

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
  rechain_readonly_props_get (object, object, snap_props, G_N_ELEMENTS (snap_props),
                              prop_id, value, pspec);
}

static void
rechain_snapshot_info_class_init (RechainSnapshotInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_snapshot_info_finalize;
  object_class->get_property = rechain_snapshot_info_get_property;
  rechain_readonly_props_install (object_class, snap_props, G_N_ELEMENTS (snap_props));
}

static void
rechain_snapshot_info_init (RechainSnapshotInfo *self)
{
  self->icount = -1;
}

RechainSnapshotInfo *
rechain_snapshot_info_new (const RechainQcow2Snapshot *s)
{
  RechainSnapshotInfo *self = g_object_new (RECHAIN_TYPE_SNAPSHOT_INFO, NULL);

  self->name = g_strdup (s->name);
  self->id = g_strdup (s->id);
  self->vm_state_size = s->vm_state_size;
  self->date_sec = s->date_sec;
  self->date_nsec = s->date_nsec;
  self->vm_clock_sec = (gint64) (s->vm_clock_nsec / 1000000000u);
  self->vm_clock_nsec = (gint64) (s->vm_clock_nsec % 1000000000u);
  self->icount = s->icount >= 0 ? s->icount : -1;
  return self;
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
