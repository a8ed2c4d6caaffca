/* rechain-luks-slot-info.c: RechainLuksSlotInfo, a key slot of the LUKS
 * header of an encrypted image as `rechain info` lists it (an element of
 * rechain_image_info_get_luks_slots()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"
#include "rechain/rechain-readonly-props-private.h"

/**
 * RechainLuksSlotInfo:
 *
 * One of the 8 key slots of the LUKS header of a LUKS-encrypted qcow2
 * image, as `qemu-img info` lists it under `encrypt.slots`. An active slot
 * holds the master key wrapped by one passphrase (`qemu-img amend` adds and
 * removes them); reading it needs no key.
 *
 * Since: 0.2
 */
struct _RechainLuksSlotInfo {
  GObject parent_instance;
  gboolean active;
  guint iters;
  guint64 key_offset;
  guint stripes;
};

/* The properties, in the order of their ids. */
static const RechainReadonlyProp slot_props[] = {
  /**
   * RechainLuksSlotInfo:active:
   *
   * Whether the slot holds a key.
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOOLEAN ("active", RechainLuksSlotInfo, active),
  /**
   * RechainLuksSlotInfo:iters:
   *
   * The PBKDF2 iteration count that derives the slot's key from its
   * passphrase; 0 for an inactive slot (qemu-img shows it only for an
   * active one).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT ("iters", RechainLuksSlotInfo, iters),
  /**
   * RechainLuksSlotInfo:key-offset:
   *
   * Where the slot's key material starts, in bytes from the start of the
   * LUKS header (qemu-img's `key-offset`).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("key-offset", RechainLuksSlotInfo, key_offset),
  /**
   * RechainLuksSlotInfo:stripes:
   *
   * The anti-forensic stripes the key material is split into (4000 in
   * every image QEMU accepts); 0 for an inactive slot (qemu-img shows it
   * only for an active one).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT ("stripes", RechainLuksSlotInfo, stripes),
};

G_DEFINE_FINAL_TYPE (RechainLuksSlotInfo, rechain_luks_slot_info, G_TYPE_OBJECT)

static void
rechain_luks_slot_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  rechain_readonly_props_get (object, object, slot_props, G_N_ELEMENTS (slot_props),
                              prop_id, value, pspec);
}

static void
rechain_luks_slot_info_class_init (RechainLuksSlotInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = rechain_luks_slot_info_get_property;
  rechain_readonly_props_install (object_class, slot_props, G_N_ELEMENTS (slot_props));
}

static void
rechain_luks_slot_info_init (RechainLuksSlotInfo *self)
{
}

RechainLuksSlotInfo *
rechain_luks_slot_info_new (const RechainLuksSlot *slot)
{
  RechainLuksSlotInfo *self = g_object_new (RECHAIN_TYPE_LUKS_SLOT_INFO, NULL);

  self->active = slot->active;
  self->key_offset = (guint64) slot->key_offset * RECHAIN_LUKS_SECTOR_SIZE;
  /* the header keeps the numbers of a disabled slot too, but they mean
   * nothing: qemu-img leaves them out */
  if (slot->active)
    {
      self->iters = slot->iterations;
      self->stripes = slot->stripes;
    }
  return self;
}

/**
 * rechain_luks_slot_info_get_active:
 * @slot: a key slot
 *
 * Returns: the value of [property@Rechain.LuksSlotInfo:active]
 *
 * Since: 0.2
 */
gboolean
rechain_luks_slot_info_get_active (RechainLuksSlotInfo *slot)
{
  g_return_val_if_fail (RECHAIN_IS_LUKS_SLOT_INFO (slot), FALSE);
  return slot->active;
}

/**
 * rechain_luks_slot_info_get_iters:
 * @slot: a key slot
 *
 * Returns: the value of [property@Rechain.LuksSlotInfo:iters]
 *
 * Since: 0.2
 */
guint
rechain_luks_slot_info_get_iters (RechainLuksSlotInfo *slot)
{
  g_return_val_if_fail (RECHAIN_IS_LUKS_SLOT_INFO (slot), 0);
  return slot->iters;
}

/**
 * rechain_luks_slot_info_get_key_offset:
 * @slot: a key slot
 *
 * Returns: the value of [property@Rechain.LuksSlotInfo:key-offset]
 *
 * Since: 0.2
 */
guint64
rechain_luks_slot_info_get_key_offset (RechainLuksSlotInfo *slot)
{
  g_return_val_if_fail (RECHAIN_IS_LUKS_SLOT_INFO (slot), 0);
  return slot->key_offset;
}

/**
 * rechain_luks_slot_info_get_stripes:
 * @slot: a key slot
 *
 * Returns: the value of [property@Rechain.LuksSlotInfo:stripes]
 *
 * Since: 0.2
 */
guint
rechain_luks_slot_info_get_stripes (RechainLuksSlotInfo *slot)
{
  g_return_val_if_fail (RECHAIN_IS_LUKS_SLOT_INFO (slot), 0);
  return slot->stripes;
}
