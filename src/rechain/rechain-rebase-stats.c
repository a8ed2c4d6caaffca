/* rechain-rebase-stats.c: RechainRebaseStats and RechainRebaseImageStats,
 * what a rebase job did (or would do), typed, and their JSON report.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <json-glib/json-glib.h>

#include "job/rebase.h"
#include "rechain/rechain-enum-types.h"
#include "rechain/rechain-rebase-job.h"
#include "rechain/rechain-rebase-stats-private.h"
#include "rechain/rechain-readonly-props-private.h"

/* ---- RechainRebaseStats ---- */

/**
 * RechainRebaseStats:
 *
 * What a rebase did, or for a plan what it would do: the comparison of the
 * old and new backing chains (done once for all images), then one entry
 * per image (the job's image first, then its linked images).
 */
struct _RechainRebaseStats {
  RechainRebaseReport *report;
};

RechainRebaseStats *
rechain_rebase_stats_new_for_report (RechainRebaseReport *report)
{
  RechainRebaseStats *stats = g_atomic_rc_box_new0 (RechainRebaseStats);
  stats->report = report;
  return stats;
}

/**
 * rechain_rebase_stats_ref:
 * @stats: statistics
 *
 * Returns: (transfer full): @stats
 */
RechainRebaseStats *
rechain_rebase_stats_ref (RechainRebaseStats *stats)
{
  return g_atomic_rc_box_acquire (stats);
}

static void
stats_clear (gpointer data)
{
  RechainRebaseStats *stats = data;
  rechain_rebase_report_free (stats->report);
}

/**
 * rechain_rebase_stats_unref:
 * @stats: (transfer full): statistics
 */
void
rechain_rebase_stats_unref (RechainRebaseStats *stats)
{
  g_atomic_rc_box_release_full (stats, stats_clear);
}

G_DEFINE_BOXED_TYPE (RechainRebaseStats, rechain_rebase_stats,
                     rechain_rebase_stats_ref, rechain_rebase_stats_unref)

/**
 * rechain_rebase_stats_get_dry_run:
 * @stats: statistics
 *
 * Returns: whether these describe a plan (nothing was written)
 */
gboolean
rechain_rebase_stats_get_dry_run (RechainRebaseStats *stats)
{
  return stats->report->dry_run;
}

/**
 * rechain_rebase_stats_get_warnings:
 * @stats: statistics
 *
 * What the caller should know about a rebase that went on: for instance
 * that data of an encrypted backing chain was copied, decrypted, into an
 * image that is not encrypted.
 *
 * Returns: (transfer none) (array zero-terminated=1): the warnings, an
 *   empty array if none
 *
 * Since: 0.2
 */
const char * const *
rechain_rebase_stats_get_warnings (RechainRebaseStats *stats)
{
  return (const char * const *) stats->report->warnings->pdata;
}

/**
 * rechain_rebase_stats_get_seconds:
 * @stats: statistics
 *
 * Returns: the time the rebase took
 */
double
rechain_rebase_stats_get_seconds (RechainRebaseStats *stats)
{
  return stats->report->seconds;
}

/**
 * rechain_rebase_stats_get_bytes_examined:
 * @stats: statistics
 *
 * Returns: guest bytes that the images do not allocate themselves (only
 *   there can the backing chain matter)
 */
guint64
rechain_rebase_stats_get_bytes_examined (RechainRebaseStats *stats)
{
  return stats->report->bytes_examined;
}

/**
 * rechain_rebase_stats_get_bytes_same_by_metadata:
 * @stats: statistics
 *
 * Returns: bytes known to be the same in both chains from metadata alone,
 *   without reading them
 */
guint64
rechain_rebase_stats_get_bytes_same_by_metadata (RechainRebaseStats *stats)
{
  return stats->report->bytes_same_by_metadata;
}

/**
 * rechain_rebase_stats_get_bytes_compared:
 * @stats: statistics
 *
 * Returns: bytes read from both chains and compared
 */
guint64
rechain_rebase_stats_get_bytes_compared (RechainRebaseStats *stats)
{
  return stats->report->bytes_compared;
}

/**
 * rechain_rebase_stats_get_bytes_read:
 * @stats: statistics
 *
 * Returns: bytes read from backing files in all
 */
guint64
rechain_rebase_stats_get_bytes_read (RechainRebaseStats *stats)
{
  return stats->report->bytes_read;
}

/**
 * rechain_rebase_stats_get_bytes_differing:
 * @stats: statistics
 *
 * Returns: bytes where the old and new chains differ
 */
guint64
rechain_rebase_stats_get_bytes_differing (RechainRebaseStats *stats)
{
  return stats->report->bytes_differing;
}

/**
 * rechain_rebase_stats_get_n_images:
 * @stats: statistics
 *
 * Returns: the number of images rebased
 *
 * Deprecated: 0.2: Use the length of [method@Rechain.RebaseStats.get_images]
 */
guint
rechain_rebase_stats_get_n_images (RechainRebaseStats *stats)
{
  return stats->report->images->len;
}

static RechainRebaseImageReport *
image_report (RechainRebaseStats *stats, guint index)
{
  g_return_val_if_fail (index < stats->report->images->len, NULL);
  return g_ptr_array_index (stats->report->images, index);
}

/**
 * rechain_rebase_stats_get_image:
 * @stats: statistics
 * @index: an image index, below rechain_rebase_stats_get_n_images()
 *
 * Returns: the path of the image
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_image] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
const char *
rechain_rebase_stats_get_image (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->image : NULL;
}

/**
 * rechain_rebase_stats_get_image_error:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: (nullable) (transfer none): why the image could not be rebased,
 *   or %NULL if it was
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_error] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
const GError *
rechain_rebase_stats_get_image_error (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->error : NULL;
}

/**
 * rechain_rebase_stats_get_image_bytes_written:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: guest data bytes copied into the image (for a plan: at most)
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_bytes_written] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_bytes_written (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->bytes_to_write : 0;
}

/**
 * rechain_rebase_stats_get_image_bytes_zeroed:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: guest bytes made zero in the image by metadata alone
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_bytes_zeroed] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_bytes_zeroed (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->bytes_to_zero : 0;
}

/**
 * rechain_rebase_stats_get_image_clusters_allocated:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: host clusters newly allocated in the image
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_clusters_allocated] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_clusters_allocated (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->clusters_allocated : 0;
}

/**
 * rechain_rebase_stats_get_image_bytes_shared:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: bytes of the written data that share blocks with the backing
 *   file they came from (reflink), using no new space
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_bytes_shared] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_bytes_shared (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->bytes_shared : 0;
}

/**
 * rechain_rebase_stats_get_image_bytes_copied_in_kernel:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: bytes of the written data copied inside the kernel
 *   (copy_file_range), which may itself have shared blocks
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_bytes_copied_in_kernel] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_bytes_copied_in_kernel (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->bytes_copied_in_kernel : 0;
}

/**
 * rechain_rebase_stats_get_image_bytes_copied_buffered:
 * @stats: statistics
 * @index: an image index
 *
 * Returns: bytes of the written data read and written through buffers
 *
 * Deprecated: 0.2: Use [method@Rechain.RebaseImageStats.get_bytes_copied_buffered] of the elements of
 *   [method@Rechain.RebaseStats.get_images]
 */
guint64
rechain_rebase_stats_get_image_bytes_copied_buffered (RechainRebaseStats *stats, guint index)
{
  RechainRebaseImageReport *r = image_report (stats, index);
  return r ? r->bytes_copied_buffered : 0;
}

/* ---- RechainRebaseImageStats ---- */

/**
 * RechainRebaseImageStats:
 *
 * What a rebase did (or for a plan would do) to one image: an element of
 * [method@Rechain.RebaseStats.get_images]. The properties are named after
 * the keys of the per-image objects of the JSON report
 * (rechain_rebase_stats_to_json(), `rechain rebase --output=json`).
 *
 * ```python
 * stats = job.get_stats()
 * print(stats.get_images()[0].props.bytes_written)
 * ```
 *
 * Since: 0.2
 */
struct _RechainRebaseImageStats {
  GObject parent_instance;
  RechainRebaseStats *stats;           /* owns the report */
  const RechainRebaseImageReport *r;   /* an image of stats->report */
};

/* The properties, in the order of their ids: fields of the image's report,
 * but for "result", which get_property computes. */
static const RechainReadonlyProp img_props[] = {
  /**
   * RechainRebaseImageStats:image:
   *
   * The path of the image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING ("image", RechainRebaseImageReport, image),
  /**
   * RechainRebaseImageStats:result:
   *
   * "rebased", "planned" (a plan) or "failed" (then
   * #RechainRebaseImageStats:error says why).
   *
   * Since: 0.2
   */
  RECHAIN_RO_STRING_COMPUTED ("result"), /* IMG_PROP_RESULT */
  /**
   * RechainRebaseImageStats:error:
   *
   * Why the image could not be rebased, or %NULL if it was.
   *
   * Since: 0.2
   */
  RECHAIN_RO_BOXED ("error", g_error_get_type, RechainRebaseImageReport, error),
  /**
   * RechainRebaseImageStats:bytes-examined:
   *
   * Guest bytes the image does not allocate itself: those its backing
   * chain provides, which the rebase compares.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-examined", RechainRebaseImageReport, bytes_examined),
  /**
   * RechainRebaseImageStats:bytes-written:
   *
   * Guest data bytes copied into the image (for a plan: at most).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-written", RechainRebaseImageReport, bytes_to_write),
  /**
   * RechainRebaseImageStats:bytes-zeroed:
   *
   * Guest bytes made to read as zeros by metadata.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-zeroed", RechainRebaseImageReport, bytes_to_zero),
  /**
   * RechainRebaseImageStats:bytes-shared:
   *
   * Bytes of the written data whose blocks are shared with the backing
   * files (reflink).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-shared", RechainRebaseImageReport, bytes_shared),
  /**
   * RechainRebaseImageStats:bytes-copied-in-kernel:
   *
   * Bytes of the written data copied inside the kernel (copy_file_range),
   * which may itself have shared blocks.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-copied-in-kernel", RechainRebaseImageReport, bytes_copied_in_kernel),
  /**
   * RechainRebaseImageStats:bytes-copied-buffered:
   *
   * Bytes of the written data read and written through buffers.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("bytes-copied-buffered", RechainRebaseImageReport, bytes_copied_buffered),
  /**
   * RechainRebaseImageStats:clusters-allocated:
   *
   * Clusters allocated in the image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("clusters-allocated", RechainRebaseImageReport, clusters_allocated),
  /**
   * RechainRebaseImageStats:compressed-clusters:
   *
   * Clusters written compressed (`-c`).
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("compressed-clusters", RechainRebaseImageReport, compressed_clusters),
  /**
   * RechainRebaseImageStats:metadata-bytes:
   *
   * Bytes of metadata (tables, header) written to the image.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("metadata-bytes", RechainRebaseImageReport, metadata_bytes),
  /**
   * RechainRebaseImageStats:flushes:
   *
   * Flushes of the image to stable storage.
   *
   * Since: 0.2
   */
  RECHAIN_RO_UINT64 ("flushes", RechainRebaseImageReport, flushes),
};
/* the id of "result": its place in img_props, counted from 1 */
#define IMG_PROP_RESULT 2

G_DEFINE_FINAL_TYPE (RechainRebaseImageStats, rechain_rebase_image_stats, G_TYPE_OBJECT)

static void
rechain_rebase_image_stats_finalize (GObject *object)
{
  RechainRebaseImageStats *self = RECHAIN_REBASE_IMAGE_STATS (object);

  g_clear_pointer (&self->stats, rechain_rebase_stats_unref);
  G_OBJECT_CLASS (rechain_rebase_image_stats_parent_class)->finalize (object);
}

static void
rechain_rebase_image_stats_get_property (GObject *object, guint prop_id, GValue *value,
                                         GParamSpec *pspec)
{
  RechainRebaseImageStats *self = RECHAIN_REBASE_IMAGE_STATS (object);

  if (prop_id == IMG_PROP_RESULT)
    g_value_set_string (value, rechain_rebase_image_stats_get_result (self));
  else
    rechain_readonly_props_get (object, self->r, img_props, G_N_ELEMENTS (img_props),
                                prop_id, value, pspec);
}

static void
rechain_rebase_image_stats_class_init (RechainRebaseImageStatsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  g_assert (g_str_equal (img_props[IMG_PROP_RESULT - 1].name, "result"));
  object_class->finalize = rechain_rebase_image_stats_finalize;
  object_class->get_property = rechain_rebase_image_stats_get_property;
  rechain_readonly_props_install (object_class, img_props, G_N_ELEMENTS (img_props));
}

static void
rechain_rebase_image_stats_init (RechainRebaseImageStats *self)
{
}

static const char *
image_result (const RechainRebaseReport *report, const RechainRebaseImageReport *r)
{
  return r->error ? "failed" : (report->dry_run ? "planned" : "rebased");
}

RechainRebaseImageStats *
rechain_rebase_image_stats_new_copy (gboolean dry_run, const RechainRebaseImageReport *image)
{
  RechainRebaseReport *report = rechain_rebase_report_new ();
  RechainRebaseImageReport *copy = g_new (RechainRebaseImageReport, 1);
  RechainRebaseImageStats *s = g_object_new (RECHAIN_TYPE_REBASE_IMAGE_STATS, NULL);

  *copy = *image;
  copy->image = g_strdup (image->image);
  copy->error = image->error ? g_error_copy (image->error) : NULL;
  report->dry_run = dry_run;
  g_ptr_array_add (report->images, copy);
  s->stats = rechain_rebase_stats_new_for_report (report);
  s->r = copy;
  return s;
}

/**
 * rechain_rebase_image_stats_get_image:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:image]
 *
 * Since: 0.2
 */
const char *
rechain_rebase_image_stats_get_image (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), NULL);
  return stats->r->image;
}

/**
 * rechain_rebase_image_stats_get_result:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:result]
 *
 * Since: 0.2
 */
const char *
rechain_rebase_image_stats_get_result (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), NULL);
  return image_result (stats->stats->report, stats->r);
}

/**
 * rechain_rebase_image_stats_get_error:
 * @stats: the statistics of an image
 *
 * Returns: (nullable) (transfer none): the value of
 *   [property@Rechain.RebaseImageStats:error]
 *
 * Since: 0.2
 */
const GError *
rechain_rebase_image_stats_get_error (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), NULL);
  return stats->r->error;
}

/**
 * rechain_rebase_image_stats_get_bytes_examined:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-examined]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_examined (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_examined;
}

/**
 * rechain_rebase_image_stats_get_bytes_written:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-written]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_written (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_to_write;
}

/**
 * rechain_rebase_image_stats_get_bytes_zeroed:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-zeroed]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_zeroed (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_to_zero;
}

/**
 * rechain_rebase_image_stats_get_bytes_shared:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-shared]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_shared (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_shared;
}

/**
 * rechain_rebase_image_stats_get_bytes_copied_in_kernel:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-copied-in-kernel]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_copied_in_kernel (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_copied_in_kernel;
}

/**
 * rechain_rebase_image_stats_get_bytes_copied_buffered:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:bytes-copied-buffered]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_bytes_copied_buffered (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->bytes_copied_buffered;
}

/**
 * rechain_rebase_image_stats_get_clusters_allocated:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:clusters-allocated]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_clusters_allocated (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->clusters_allocated;
}

/**
 * rechain_rebase_image_stats_get_compressed_clusters:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:compressed-clusters]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_compressed_clusters (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->compressed_clusters;
}

/**
 * rechain_rebase_image_stats_get_metadata_bytes:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:metadata-bytes]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_metadata_bytes (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->metadata_bytes;
}

/**
 * rechain_rebase_image_stats_get_flushes:
 * @stats: the statistics of an image
 *
 * Returns: the value of [property@Rechain.RebaseImageStats:flushes]
 *
 * Since: 0.2
 */
guint64
rechain_rebase_image_stats_get_flushes (RechainRebaseImageStats *stats)
{
  g_return_val_if_fail (RECHAIN_IS_REBASE_IMAGE_STATS (stats), 0);
  return stats->r->flushes;
}

/**
 * rechain_rebase_stats_get_images:
 * @stats: statistics
 *
 * The images rebased (or planned): the job's image first, then its linked
 * images.
 *
 * The array owns its elements: g_ptr_array_unref() releases them too.
 *
 * Returns: (transfer container) (element-type Rechain.RebaseImageStats):
 *   one entry per image
 *
 * Since: 0.2
 */
GPtrArray *
rechain_rebase_stats_get_images (RechainRebaseStats *stats)
{
  GPtrArray *images;

  g_return_val_if_fail (stats != NULL, NULL);
  images = g_ptr_array_new_full (stats->report->images->len, g_object_unref);
  for (guint i = 0; i < stats->report->images->len; i++)
    {
      RechainRebaseImageStats *s = g_object_new (RECHAIN_TYPE_REBASE_IMAGE_STATS, NULL);
      s->stats = rechain_rebase_stats_ref (stats);
      s->r = g_ptr_array_index (stats->report->images, i);
      g_ptr_array_add (images, s);
    }
  return images;
}

static void
add_uint (JsonBuilder *b, const char *name, guint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, (gint64) value);
}

/**
 * rechain_rebase_stats_to_json:
 * @stats: statistics
 *
 * The report `rechain rebase --output=json` prints, with the warnings of
 * rechain_rebase_stats_get_warnings() as its "warnings" array.
 *
 * Returns: (transfer full): JSON text
 */
char *
rechain_rebase_stats_to_json (RechainRebaseStats *stats)
{
  const RechainRebaseReport *r = stats->report;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "dry-run");
  json_builder_add_boolean_value (b, r->dry_run);
  add_uint (b, "bytes-examined", r->bytes_examined);
  add_uint (b, "bytes-same-by-metadata", r->bytes_same_by_metadata);
  add_uint (b, "bytes-compared", r->bytes_compared);
  add_uint (b, "bytes-read", r->bytes_read);
  add_uint (b, "bytes-differing", r->bytes_differing);
  json_builder_set_member_name (b, "seconds");
  json_builder_add_double_value (b, r->seconds);
  /* what stderr says as "warning:" lines, for scripts that read only the
   * report; always there, empty for none */
  json_builder_set_member_name (b, "warnings");
  json_builder_begin_array (b);
  for (guint i = 0; i + 1 < r->warnings->len; i++)
    json_builder_add_string_value (b, g_ptr_array_index (r->warnings, i));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "images");
  json_builder_begin_array (b);
  for (guint i = 0; i < r->images->len; i++)
    {
      const RechainRebaseImageReport *ir = g_ptr_array_index (r->images, i);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "image");
      json_builder_add_string_value (b, ir->image);
      json_builder_set_member_name (b, "result");
      json_builder_add_string_value (b, image_result (r, ir));
      if (ir->error)
        {
          json_builder_set_member_name (b, "error");
          json_builder_add_string_value (b, ir->error->message);
        }
      add_uint (b, "bytes-examined", ir->bytes_examined);
      add_uint (b, "bytes-written", ir->bytes_to_write);
      add_uint (b, "bytes-zeroed", ir->bytes_to_zero);
      add_uint (b, "bytes-shared", ir->bytes_shared);
      add_uint (b, "bytes-copied-in-kernel", ir->bytes_copied_in_kernel);
      add_uint (b, "bytes-copied-buffered", ir->bytes_copied_buffered);
      add_uint (b, "clusters-allocated", ir->clusters_allocated);
      add_uint (b, "compressed-clusters", ir->compressed_clusters);
      add_uint (b, "metadata-bytes", ir->metadata_bytes);
      add_uint (b, "flushes", ir->flushes);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_indent (gen, 4);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

