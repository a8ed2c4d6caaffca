/* qcow2-refcount.c: access to refcount block entries of any width
 * (refcount_bits = 1 << refcount_order, 1..64 bits).
 *
 * Sub-byte entries are packed starting from the least significant bit of
 * each byte ("bit 0 means the least significant bit"); 16/32/64-bit entries
 * are big-endian like every other qcow2 number.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "format/qcow2.h"

guint64
rechain_qcow2_refblock_get (const guint8 *block, guint32 order, guint64 index)
{
  g_return_val_if_fail (block != NULL, 0);
  g_return_val_if_fail (order <= 6, 0);

  switch (order)
    {
    case 0:
    case 1:
    case 2:
      {
        guint32 bits = 1u << order;
        guint32 per_byte = 8u >> order;
        guint32 shift = (guint32) (index % per_byte) * bits;

        return (block[index / per_byte] >> shift) & ((1u << bits) - 1);
      }
    case 3:
      return block[index];
    case 4:
      {
        guint16 v;
        memcpy (&v, block + index * 2, sizeof v);
        return GUINT16_FROM_BE (v);
      }
    case 5:
      {
        guint32 v;
        memcpy (&v, block + index * 4, sizeof v);
        return GUINT32_FROM_BE (v);
      }
    default:
      {
        guint64 v;
        memcpy (&v, block + index * 8, sizeof v);
        return GUINT64_FROM_BE (v);
      }
    }
}

void
rechain_qcow2_refblock_set (guint8 *block, guint32 order, guint64 index, guint64 value)
{
  g_return_if_fail (block != NULL);
  g_return_if_fail (order <= 6);
  /* A value that does not fit would silently wrap to a smaller refcount and
   * let a used cluster be freed: that is a caller bug. */
  g_return_if_fail (order == 6 || value < (G_GUINT64_CONSTANT (1) << (1u << order)));

  switch (order)
    {
    case 0:
    case 1:
    case 2:
      {
        guint32 bits = 1u << order;
        guint32 per_byte = 8u >> order;
        guint32 shift = (guint32) (index % per_byte) * bits;
        guint8 mask = (guint8) (((1u << bits) - 1) << shift);
        guint8 *p = &block[index / per_byte];

        *p = (guint8) ((*p & ~mask) | ((guint8) (value << shift) & mask));
        break;
      }
    case 3:
      block[index] = (guint8) value;
      break;
    case 4:
      {
        guint16 v = GUINT16_TO_BE ((guint16) value);
        memcpy (block + index * 2, &v, sizeof v);
        break;
      }
    case 5:
      {
        guint32 v = GUINT32_TO_BE ((guint32) value);
        memcpy (block + index * 4, &v, sizeof v);
        break;
      }
    default:
      {
        guint64 v = GUINT64_TO_BE (value);
        memcpy (block + index * 8, &v, sizeof v);
        break;
      }
    }
}
