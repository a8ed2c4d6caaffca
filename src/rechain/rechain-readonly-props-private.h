/* rechain-readonly-props-private.h: read-only GObject properties from a
 * table, for the types that only show values (RechainImageInfo and its
 * snapshots and bitmaps, RechainRebaseImageStats).
 *
 * A type lists its properties once, in the order of their ids (the first
 * is id 1): each names the field that holds its value by its offset in a
 * struct. class_init installs them all with
 * rechain_readonly_props_install(), and get_property reads any of them
 * with rechain_readonly_props_get(), so neither repeats the list.
 *
 * Every property is G_PARAM_READABLE | G_PARAM_STATIC_STRINGS, without
 * nick or blurb (the documentation comment above its table entry says
 * what it is); numbers range over their whole type from 0 (an int64 from
 * its minimum), which is also the default.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef struct {
  const char *name;
  /* G_TYPE_STRING, G_TYPE_BOOLEAN, G_TYPE_UINT, G_TYPE_UINT64, G_TYPE_INT64,
   * G_TYPE_BOXED or G_TYPE_OBJECT */
  GType fundamental;
  /* for G_TYPE_BOXED and G_TYPE_OBJECT: the value type (which is no
   * constant, hence a function) */
  GType (*value_type) (void);
  /* of the field that holds the value */
  gsize offset;
  /* for G_TYPE_INT64: the least value, also the default */
  gint64 minimum;
} RechainReadonlyProp;

/* The offset of a property no field holds: the type's get_property
 * computes it, rather than calling rechain_readonly_props_get(). */
#define RECHAIN_RO_COMPUTED G_MAXSIZE

#define RECHAIN_RO_STRING_COMPUTED(name) \
  { name, G_TYPE_STRING, NULL, RECHAIN_RO_COMPUTED, 0 }
#define RECHAIN_RO_STRING(name, Struct, field) \
  { name, G_TYPE_STRING, NULL, G_STRUCT_OFFSET (Struct, field), 0 }
#define RECHAIN_RO_BOOLEAN(name, Struct, field) \
  { name, G_TYPE_BOOLEAN, NULL, G_STRUCT_OFFSET (Struct, field), 0 }
#define RECHAIN_RO_UINT(name, Struct, field) \
  { name, G_TYPE_UINT, NULL, G_STRUCT_OFFSET (Struct, field), 0 }
#define RECHAIN_RO_UINT64(name, Struct, field) \
  { name, G_TYPE_UINT64, NULL, G_STRUCT_OFFSET (Struct, field), 0 }
#define RECHAIN_RO_INT64(name, Struct, field, minimum) \
  { name, G_TYPE_INT64, NULL, G_STRUCT_OFFSET (Struct, field), minimum }
#define RECHAIN_RO_BOXED(name, value_type, Struct, field) \
  { name, G_TYPE_BOXED, value_type, G_STRUCT_OFFSET (Struct, field), 0 }
#define RECHAIN_RO_OBJECT(name, value_type, Struct, field) \
  { name, G_TYPE_OBJECT, value_type, G_STRUCT_OFFSET (Struct, field), 0 }

/* Installs the @n_props properties of @props on @object_class, with ids 1
 * to @n_props in table order. */
G_GNUC_INTERNAL void rechain_readonly_props_install (GObjectClass *object_class,
                                                     const RechainReadonlyProp *props,
                                                     guint n_props);

/* Sets @value to property @prop_id of @object: the field of its table entry,
 * at its offset from @fields (the struct the table's offsets are in: the
 * instance itself, or a struct it points to). Warns as get_property must
 * for an id outside the table; a computed property is a programming error. */
G_GNUC_INTERNAL void rechain_readonly_props_get (GObject *object,
                                                 gconstpointer fields,
                                                 const RechainReadonlyProp *props,
                                                 guint n_props,
                                                 guint prop_id,
                                                 GValue *value,
                                                 GParamSpec *pspec);

G_END_DECLS
