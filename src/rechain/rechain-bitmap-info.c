/* rechain-bitmap-info.c: RechainBitmapInfo, a persistent dirty bitmap of an
 * image as `rechain info` lists it (an element of
 * rechain_image_info_get_bitmaps()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-image-info-private.h"
#include "rechain/rechain-readonly-props-private.h"

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

/* The properties, in the order of their ids. */
static const RechainReadonlyProp bitmap_props[] = {
  /**
   * RechainBitmapInfo:name:
   *
   * The name of the bitmap.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("name", RechainBitmapInfo, name),
  /**
   * RechainBitmapInfo:granularity:
   *
   * Bytes of guest data one bit of the bitmap stands for.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("granularity", RechainBitmapInfo, granularity),
  /**
   * RechainBitmapInfo:flags:
   *
   * The flags of the bitmap, named as qemu-img names them: "in-use" (the
   * bitmap was not saved consistently) and "auto" (it tracks guest
   * writes), in that order.
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOXED ("flags", g_strv_get_type, RechainBitmapInfo, flags),
};

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
  rechain_readonly_props_get (object, object, bitmap_props, G_N_ELEMENTS (bitmap_props),
                              prop_id, value, pspec);
}

static void
rechain_bitmap_info_class_init (RechainBitmapInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = rechain_bitmap_info_finalize;
  object_class->get_property = rechain_bitmap_info_get_property;
  rechain_readonly_props_install (object_class, bitmap_props, G_N_ELEMENTS (bitmap_props));
}

static void
rechain_bitmap_info_init (RechainBitmapInfo *self)
{
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

RechainBitmapInfo *
rechain_bitmap_info_new (const RechainQcow2Bitmap *bm)
{
  RechainBitmapInfo *self = g_object_new (RECHAIN_TYPE_BITMAP_INFO, NULL);

  self->name = g_strdup (bm->name);
  self->granularity = (guint64) 1 << bm->granularity_bits;
  self->flags = bitmap_flag_names (bm->flags);
  return self;
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
