/* rechain-fleet-result.c: RechainFleetResult, what became of one volume
 * in a fleet-wide rebase.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include "rechain/rechain-fleet-result.h"
#include "rechain/rechain-fleet-private.h"

G_DEFINE_ENUM_TYPE (RechainFleetStatus, rechain_fleet_status,
                    G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_STATUS_MOVED, "moved"),
                    G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_STATUS_SKIPPED, "skipped"),
                    G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_STATUS_FAILED, "failed"),
                    G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_STATUS_WOULD_MOVE, "would-move"))

/**
 * rechain_fleet_status_to_string:
 * @status: a status
 *
 * Returns: the stable name of @status, as the JSON reports write it:
 *   "moved", "skipped", "failed" or "would-move"
 *
 * Since: 0.2
 */
const char *
rechain_fleet_status_to_string (RechainFleetStatus status)
{
  GEnumClass *klass = g_type_class_ref (RECHAIN_TYPE_FLEET_STATUS);
  GEnumValue *v = g_enum_get_value (klass, status);
  g_type_class_unref (klass);
  return v ? v->value_nick : NULL;
}

/**
 * RechainFleetResult:
 *
 * What became of one volume in rechain_fleet_rebase_async(): its status,
 * why (for skipped and failed volumes), the host and domain that use it
 * (for volumes skipped because a domain uses them) and the bytes copied
 * into it (or, in a dry run, to copy).
 *
 * Since: 0.2
 */
struct _RechainFleetResult {
  GObject parent_instance;
  RechainVolume *volume;
  RechainFleetStatus status;
  char *reason;
  char *host;
  char *uri;
  char *domain;
  gint64 bytes;
};

G_DEFINE_FINAL_TYPE (RechainFleetResult, rechain_fleet_result, G_TYPE_OBJECT)

static void
rechain_fleet_result_finalize (GObject *object)
{
  RechainFleetResult *self = RECHAIN_FLEET_RESULT (object);
  g_clear_object (&self->volume);
  g_free (self->reason);
  g_free (self->host);
  g_free (self->uri);
  g_free (self->domain);
  G_OBJECT_CLASS (rechain_fleet_result_parent_class)->finalize (object);
}

static void
rechain_fleet_result_class_init (RechainFleetResultClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = rechain_fleet_result_finalize;
}

static void
rechain_fleet_result_init (RechainFleetResult *self)
{
  self->bytes = -1;
}

RechainFleetResult *
rechain_fleet_result_new (RechainVolume *volume, RechainFleetStatus status)
{
  RechainFleetResult *self = g_object_new (RECHAIN_TYPE_FLEET_RESULT, NULL);
  self->volume = g_object_ref (volume);
  self->status = status;
  return self;
}

void
rechain_fleet_result_set (RechainFleetResult *self, RechainFleetStatus status, const char *reason,
                          const char *host, const char *uri, const char *domain)
{
  self->status = status;
  g_free (self->reason);
  self->reason = g_strdup (reason);
  g_free (self->host);
  self->host = g_strdup (host);
  g_free (self->uri);
  self->uri = g_strdup (uri);
  g_free (self->domain);
  self->domain = g_strdup (domain);
}

void
rechain_fleet_result_set_bytes (RechainFleetResult *self, gint64 bytes)
{
  self->bytes = bytes;
}

/**
 * rechain_fleet_result_get_volume:
 * @result: a result
 *
 * Returns: (transfer none): the volume
 *
 * Since: 0.2
 */
RechainVolume *
rechain_fleet_result_get_volume (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), NULL);
  return result->volume;
}

/**
 * rechain_fleet_result_get_status:
 * @result: a result
 *
 * Returns: what became of the volume
 *
 * Since: 0.2
 */
RechainFleetStatus
rechain_fleet_result_get_status (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), RECHAIN_FLEET_STATUS_FAILED);
  return result->status;
}

/**
 * rechain_fleet_result_get_reason:
 * @result: a result
 *
 * Returns: (nullable): why the volume was skipped or failed (a message
 *   naming the image, and the domain and host that use it), or %NULL
 *
 * Since: 0.2
 */
const char *
rechain_fleet_result_get_reason (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), NULL);
  return result->reason;
}

/**
 * rechain_fleet_result_get_host:
 * @result: a result
 *
 * Returns: (nullable): the host whose domain uses the volume (see
 *   rechain_fleet_get_host_name()), or %NULL
 *
 * Since: 0.2
 */
const char *
rechain_fleet_result_get_host (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), NULL);
  return result->host;
}

/**
 * rechain_fleet_result_get_uri:
 * @result: a result
 *
 * Returns: (nullable): the connection URI of that host, or %NULL
 *
 * Since: 0.2
 */
const char *
rechain_fleet_result_get_uri (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), NULL);
  return result->uri;
}

/**
 * rechain_fleet_result_get_domain:
 * @result: a result
 *
 * Returns: (nullable): the domain that uses the volume, or %NULL
 *
 * Since: 0.2
 */
const char *
rechain_fleet_result_get_domain (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), NULL);
  return result->domain;
}

/**
 * rechain_fleet_result_get_bytes:
 * @result: a result
 *
 * Returns: the bytes copied into the volume (moved) or that would be
 *   copied (a dry run), or -1 when not known (skipped, failed)
 *
 * Since: 0.2
 */
gint64
rechain_fleet_result_get_bytes (RechainFleetResult *result)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET_RESULT (result), -1);
  return result->bytes;
}
