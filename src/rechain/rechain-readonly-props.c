/* rechain-readonly-props.c: read-only GObject properties from a table
 * (see rechain-readonly-props-private.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-readonly-props-private.h"

#define RO_FLAGS (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)

static GParamSpec *
param_spec_for (const RechainReadonlyProp *p)
{
  switch (p->fundamental)
    {
    case G_TYPE_STRING:
      return g_param_spec_string (p->name, NULL, NULL, NULL, RO_FLAGS);
    case G_TYPE_BOOLEAN:
      return g_param_spec_boolean (p->name, NULL, NULL, FALSE, RO_FLAGS);
    case G_TYPE_UINT:
      return g_param_spec_uint (p->name, NULL, NULL, 0, G_MAXUINT, 0, RO_FLAGS);
    case G_TYPE_UINT64:
      return g_param_spec_uint64 (p->name, NULL, NULL, 0, G_MAXUINT64, 0, RO_FLAGS);
    case G_TYPE_INT64:
      return g_param_spec_int64 (p->name, NULL, NULL, p->minimum, G_MAXINT64, p->minimum,
                                 RO_FLAGS);
    case G_TYPE_BOXED:
      return g_param_spec_boxed (p->name, NULL, NULL, p->value_type (), RO_FLAGS);
    case G_TYPE_OBJECT:
      return g_param_spec_object (p->name, NULL, NULL, p->value_type (), RO_FLAGS);
    default:
      g_assert_not_reached ();
    }
}

void
rechain_readonly_props_install (GObjectClass *object_class,
                                const RechainReadonlyProp *props,
                                guint n_props)
{
  for (guint i = 0; i < n_props; i++)
    g_object_class_install_property (object_class, i + 1, param_spec_for (&props[i]));
}

void
rechain_readonly_props_get (GObject *object,
                            gconstpointer fields,
                            const RechainReadonlyProp *props,
                            guint n_props,
                            guint prop_id,
                            GValue *value,
                            GParamSpec *pspec)
{
  const RechainReadonlyProp *p;
  gconstpointer field;

  if (prop_id == 0 || prop_id > n_props)
    {
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
  p = &props[prop_id - 1];
  g_return_if_fail (p->offset != RECHAIN_RO_COMPUTED);
  field = (const guint8 *) fields + p->offset;
  switch (p->fundamental)
    {
    case G_TYPE_STRING:
      g_value_set_string (value, *(char * const *) field);
      break;
    case G_TYPE_BOOLEAN:
      g_value_set_boolean (value, *(const gboolean *) field);
      break;
    case G_TYPE_UINT:
      g_value_set_uint (value, *(const guint *) field);
      break;
    case G_TYPE_UINT64:
      g_value_set_uint64 (value, *(const guint64 *) field);
      break;
    case G_TYPE_INT64:
      g_value_set_int64 (value, *(const gint64 *) field);
      break;
    case G_TYPE_BOXED:
      g_value_set_boxed (value, *(const gpointer *) field);
      break;
    case G_TYPE_OBJECT:
      g_value_set_object (value, *(const gpointer *) field);
      break;
    default:
      g_assert_not_reached ();
    }
}
