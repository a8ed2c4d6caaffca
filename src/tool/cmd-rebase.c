/* cmd-rebase.c: rechain rebase — qemu-img rebase's options and meaning.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include <glib-unix.h>
#include <json-glib/json-glib.h>

#include <rechain/rechain.h>
#include "tool.h"

typedef struct {
  RechainRebaseJob *job;
  ToolProgress *progress;
  gboolean done;
  gboolean ok;
  GError *error;
} RebaseRun;

static void
on_progress (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  RebaseRun *run = user_data;
  RechainBlockJob *job = RECHAIN_BLOCK_JOB (object);

  tool_progress_update (run->progress, rechain_block_job_get_bytes_done (job),
                           rechain_block_job_get_bytes_total (job));
}

/* --progress=json: one line per image as it ends, its path absolute so
 * that a program watching several runs can tell the images apart. */
static void
print_image_finished (ToolProgress *progress, RechainRebaseImageStats *image)
{
  const char *path = rechain_rebase_image_stats_get_image (image);
  const GError *error = rechain_rebase_image_stats_get_error (image);
  g_autofree char *abs = NULL;

  if (!g_path_is_absolute (path))
    {
      g_autofree char *cwd = g_get_current_dir ();
      abs = g_build_filename (cwd, path, NULL);
    }
  tool_progress_image (progress, abs ? abs : path, rechain_rebase_image_stats_get_result (image),
                       rechain_rebase_image_stats_get_bytes_written (image),
                       error ? error->message : NULL);
}

static void
on_image_finished (RechainRebaseJob *job, RechainRebaseImageStats *image, gpointer user_data)
{
  RebaseRun *run = user_data;

  print_image_finished (run->progress, image);
}

static void
on_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  RebaseRun *run = user_data;

  run->ok = rechain_block_job_run_finish (RECHAIN_BLOCK_JOB (object), result, &run->error);
  run->done = TRUE;
}

/* Pool volumes: the in-use check on every host came before, the pool
 * refreshes after. */
typedef struct {
  gboolean done;
  ToolProgress *progress;
  GPtrArray *results;      /* of RechainFleetResult, NULL on error */
  RechainRebaseJob *job;   /* the job that ran, if any */
  GError *error;
} FleetRun;

static void
on_fleet_progress (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  FleetRun *run = user_data;
  RechainBlockJob *job = RECHAIN_BLOCK_JOB (object);

  tool_progress_update (run->progress, rechain_block_job_get_bytes_done (job),
                        rechain_block_job_get_bytes_total (job));
}

static void
on_fleet_image_finished (RechainRebaseJob *job, RechainRebaseImageStats *image,
                         gpointer user_data)
{
  FleetRun *run = user_data;

  print_image_finished (run->progress, image);
}

/* The pass starts once every host was asked: its progress is the bar's,
 * its images' ends are lines of --progress=json. */
static void
on_fleet_started (RechainFleet *fleet, RechainRebaseJob *job, gpointer user_data)
{
  g_signal_connect (job, "notify::progress", G_CALLBACK (on_fleet_progress), user_data);
  g_signal_connect (job, "image-finished", G_CALLBACK (on_fleet_image_finished), user_data);
}

static void
on_fleet_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  FleetRun *run = user_data;
  g_auto(GStrv) warnings = NULL;

  run->results = rechain_fleet_rebase_finish (RECHAIN_FLEET (object), result, &run->job, &warnings,
                                              &run->error);
  tool_print_warnings ((const char * const *) warnings);
  run->done = TRUE;
}

static gboolean
parse_copy_mode (const char *value, RechainCopyMode *mode, GError **error)
{
  if (!value || g_str_equal (value, "auto"))
    *mode = RECHAIN_COPY_MODE_AUTO;
  else if (g_str_equal (value, "reflink"))
    *mode = RECHAIN_COPY_MODE_REFLINK;
  else if (g_str_equal (value, "copy"))
    *mode = RECHAIN_COPY_MODE_COPY;
  else
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("--copy-mode must be auto, reflink or copy, not '%s'"), value);
      return FALSE;
    }
  return TRUE;
}

static gboolean
on_signal (gpointer data)
{
  g_cancellable_cancel (G_CANCELLABLE (data));
  return G_SOURCE_CONTINUE;
}

static gboolean
has_images (RechainRebaseStats *stats)
{
  g_autoptr(GPtrArray) images = rechain_rebase_stats_get_images (stats);
  return images->len > 0;
}

static void
print_human_report (RechainRebaseStats *stats)
{
  gboolean dry = rechain_rebase_stats_get_dry_run (stats);

  if (dry)
    printf (_("Plan (nothing written):\n"));
  else
    printf (_("Done in %.2f s:\n"), rechain_rebase_stats_get_seconds (stats));
  printf (_("  %" PRIu64 " bytes not allocated by the image(s) examined\n"),
          rechain_rebase_stats_get_bytes_examined (stats));
  printf (_("  %" PRIu64 " bytes the same in both chains by metadata alone (not read)\n"),
          rechain_rebase_stats_get_bytes_same_by_metadata (stats));
  printf (dry ? _("  %" PRIu64 " bytes to read and compare from both chains\n")
              : _("  %" PRIu64 " bytes read and compared from both chains\n"),
          rechain_rebase_stats_get_bytes_compared (stats));
  g_autoptr(GPtrArray) images = rechain_rebase_stats_get_images (stats);

  for (guint i = 0; i < images->len; i++)
    {
      RechainRebaseImageStats *is = g_ptr_array_index (images, i);
      const GError *err = rechain_rebase_image_stats_get_error (is);
      const char *image = rechain_rebase_image_stats_get_image (is);
      guint64 written = rechain_rebase_image_stats_get_bytes_written (is);
      guint64 zeroed = rechain_rebase_image_stats_get_bytes_zeroed (is);
      guint64 shared = rechain_rebase_image_stats_get_bytes_shared (is);
      guint64 in_kernel = rechain_rebase_image_stats_get_bytes_copied_in_kernel (is);
      guint64 buffered = rechain_rebase_image_stats_get_bytes_copied_buffered (is);

      if (err)
        {
          printf (_("  %s: failed: %s\n"), image, err->message);
          continue;
        }
      if (dry)
        printf (_("  %s: %" PRIu64 " bytes to copy (at most), %" PRIu64 " bytes to zero\n"),
                image, written, zeroed);
      else
        printf (_("  %s: %" PRIu64 " bytes copied, %" PRIu64 " bytes zeroed\n"),
                image, written, zeroed);
      /* how the copy is (or would be) made: see --copy-mode */
      if (written > 0)
        printf (dry ? _("    %" PRIu64 " to share with the backing files (reflink), %" PRIu64
                        " to copy in the kernel, %" PRIu64 " to copy through buffers\n")
                    : _("    %" PRIu64 " shared with the backing files (reflink), %" PRIu64
                        " copied in the kernel, %" PRIu64 " copied through buffers\n"),
                shared, in_kernel, buffered);
    }
}

/* The command line of rechain rebase, once parsed and checked. */
typedef struct {
  char *format;
  char *cache;
  char *src_cache;
  char *backing;
  char *backing_format;
  char *output;
  char *copy_mode_arg;
  char *backing_root;
  char **connect_uris;       /* --connect, in the order given */
  char *pool;
  char *backing_name;
  char *clones_of;           /* --clones-of TEMPLATE */
  char *lockspace;
  gboolean quiet, unsafe, compress, force_share, dry_run, strict, trust_chain, no_leases;
  gboolean skip_unreachable;
  RechainCopyMode copy_mode;
  RechainCacheMode cache_mode, source_cache_mode;
  ToolOutputFormat out_format;
  ToolProgress *progress;    /* NULL: no progress asked for */
  char **images;             /* the IMAGE arguments, at least one */
  ToolKeyOptions key_options;
  ToolKeys *keys;            /* the secrets, once loaded */
} RebaseArgs;

static void
rebase_args_clear (RebaseArgs *args)
{
  g_free (args->format);
  g_free (args->cache);
  g_free (args->src_cache);
  g_free (args->backing);
  g_free (args->backing_format);
  g_free (args->output);
  g_free (args->copy_mode_arg);
  g_free (args->backing_root);
  g_strfreev (args->connect_uris);
  g_free (args->pool);
  g_free (args->clones_of);
  g_free (args->backing_name);
  g_free (args->lockspace);
  g_clear_pointer (&args->progress, tool_progress_free);
  g_strfreev (args->images);
  tool_key_options_clear (&args->key_options);
  g_clear_pointer (&args->keys, tool_keys_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (RebaseArgs, rebase_args_clear)

/* Parses and checks the command line into @args: -1 when the command can
 * go on, else the exit status (the error already printed). */
static int
parse_args (int argc, char **argv, RebaseArgs *args)
{
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &args->format, N_("Format of IMAGE (qcow2; probed if not given)"), N_("FMT") },
    { "cache", 't', 0, G_OPTION_ARG_STRING, &args->cache, N_("Cache mode for IMAGE: writeback (default), writethrough, none, directsync, unsafe"), N_("CACHE") },
    { "source-cache", 'T', 0, G_OPTION_ARG_STRING, &args->src_cache, N_("Cache mode for the backing files read (default writeback)"), N_("CACHE") },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &args->quiet, N_("Print nothing but errors"), NULL },
    { "unsafe", 'u', 0, G_OPTION_ARG_NONE, &args->unsafe, N_("Only change the backing file name and format; copy nothing"), NULL },
    { "compress", 'c', 0, G_OPTION_ARG_NONE, &args->compress, N_("Compress the clusters copied into IMAGE"), NULL },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &args->force_share, N_("Read the backing files even while another process writes them (no locks on them; IMAGE is always locked)"), NULL },
    { "backing", 'b', 0, G_OPTION_ARG_STRING, &args->backing, N_("New backing file (\"\" for none)"), N_("BACKING") },
    { "backing-format", 'F', 0, G_OPTION_ARG_STRING, &args->backing_format, N_("Format of the new backing file"), N_("FMT") },
    { "dry-run", 0, 0, G_OPTION_ARG_NONE, &args->dry_run, N_("Plan the rebase and report it; write nothing"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &args->output, N_("Report format: human or json (default: no report)"), N_("FORMAT") },
    { "copy-mode", 0, 0, G_OPTION_ARG_STRING, &args->copy_mode_arg, N_("How copied data gets into IMAGE: auto (share blocks or copy in the kernel where possible), reflink (share blocks or refuse), copy"), N_("MODE") },
    { "backing-root", 0, 0, G_OPTION_ARG_FILENAME, &args->backing_root, N_("Refuse backing files that resolve outside DIR"), N_("DIR") },
    { "trust-chain", 0, 0, G_OPTION_ARG_NONE, &args->trust_chain, N_("Follow every file name in the images' headers, even names in images of other users that those users could not open"), NULL },
    { "connect", 0, 0, G_OPTION_ARG_STRING_ARRAY, &args->connect_uris, N_("libvirt connection URI: IMAGE and -b name volumes of --pool; repeat it for every host that shares the pool (each is asked whether its domains use the images, and refreshes the pool after)"), N_("URI") },
    { "skip-unreachable", 0, 0, G_OPTION_ARG_NONE, &args->skip_unreachable, N_("Go on without a --connect host that cannot be reached (with a warning) instead of failing"), NULL },
    { "clones-of", 0, 0, G_OPTION_ARG_STRING, &args->clones_of, N_("Move every volume of --pool whose backing file is TEMPLATE (a volume or a path); volumes in use are skipped (exit status 4)"), N_("TEMPLATE") },
    { "pool", 0, 0, G_OPTION_ARG_STRING, &args->pool, N_("libvirt storage pool of the volumes"), N_("POOL") },
    { "backing-name", 0, 0, G_OPTION_ARG_STRING, &args->backing_name, N_("Backing name to write instead of the one libvirt would (with --pool)"), N_("NAME") },
    { "strict", 0, 0, G_OPTION_ARG_NONE, &args->strict, N_("Refuse volumes that inactive domains use (with --pool), instead of warning"), NULL },
    { "lockspace", 0, 0, G_OPTION_ARG_FILENAME, &args->lockspace, N_("virtlockd's directory of indirect leases (file_lockspace_dir; default: from libvirt's qemu-lockd.conf)"), N_("DIR") },
    { "no-leases", 0, 0, G_OPTION_ARG_NONE, &args->no_leases, N_("Take no leases of libvirt's lock manager (virtlockd) on the images written"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE [IMAGE…]"));
  g_autoptr(GError) error = NULL;
  ToolProgressOptions progress_options = { 0 };
  gboolean parsed;

  args->out_format = TOOL_OUTPUT_HUMAN;
  args->cache_mode = args->source_cache_mode = RECHAIN_CACHE_WRITEBACK;
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Change the backing file of IMAGE to BACKING (\"\" for none).\n\n"
      "Safe mode (the default) keeps the guest-visible content unchanged by first copying\n"
      "into IMAGE every region where the old and the new backing chains differ; several\n"
      "IMAGEs sharing one old backing chain (linked clones) are compared once and moved\n"
      "together. Unsafe mode (-u) only rewrites the backing file name and format."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  tool_keys_add_entries (context, &args->key_options);
  tool_progress_add_entries (context, &progress_options);
  tool_progress_rewrite_args (argc, argv);
  parsed = g_option_context_parse (context, &argc, &argv, &error);
  if (parsed && args->quiet && tool_progress_to_stderr (&progress_options))
    {
      tool_progress_options_clear (&progress_options);
      return tool_usage_error (context, _("-p and -q exclude each other"));
    }
  if (parsed)
    args->progress = tool_progress_new (&progress_options, &error);
  tool_progress_options_clear (&progress_options);
  if (error)
    return tool_usage_error (context, "%s", error->message);
  if (argc < 2 && !args->clones_of)
    return tool_usage_error (context, _("expected an IMAGE"));
  if (argc >= 2 && args->clones_of)
    return tool_usage_error (context, _("--clones-of selects the images: give no IMAGE"));
  if (args->clones_of && !args->pool)
    return tool_usage_error (context, _("--clones-of needs --connect and --pool"));
  if (args->clones_of && args->unsafe)
    return tool_usage_error (context, _("--clones-of moves clones safely: not with -u"));
  if (args->skip_unreachable && !args->connect_uris)
    return tool_usage_error (context, _("--skip-unreachable applies to --connect hosts"));
  if (!args->backing)
    return tool_usage_error (context, _("the new backing file must be given with -b (use -b \"\" for none)"));
  if (args->output && !tool_parse_output (args->output, &args->out_format, &error))
    return tool_fail (error);
  if (args->cache && !rechain_cache_mode_from_string (args->cache, &args->cache_mode, &error))
    return tool_fail (error);
  if (args->src_cache &&
      !rechain_cache_mode_from_string (args->src_cache, &args->source_cache_mode, &error))
    return tool_fail (error);
  if (!parse_copy_mode (args->copy_mode_arg, &args->copy_mode, &error))
    return tool_fail (error);
  if ((args->connect_uris || args->pool) && !(args->connect_uris && args->pool))
    return tool_usage_error (context, _("--connect and --pool go together"));
  if (args->key_options.image_opts && args->pool)
    return tool_usage_error (context, _("--image-opts and --pool exclude each other"));
  if ((args->backing_name || args->strict) && !args->pool)
    return tool_usage_error (context, _("--backing-name and --strict apply to pool volumes (--connect, --pool)"));
  if (args->lockspace && args->no_leases)
    return tool_usage_error (context, _("--lockspace and --no-leases exclude each other"));
  if (args->unsafe)
    {
      if (args->compress)
        return tool_usage_error (context, _("-c only applies to a safe rebase, not with -u"));
      if (args->dry_run)
        return tool_usage_error (context, _("--dry-run only applies to a safe rebase"));
      if (argc != 2)
        return tool_usage_error (context, _("-u takes exactly one IMAGE"));
    }
  if (args->clones_of)
    {
      args->images = g_new0 (char *, 1);
      return -1;
    }
  args->images = g_strdupv (argv + 1);
  return -1;
}

/* The leases to take: none with --no-leases; else the direct ones, and
 * the indirect ones in --lockspace or, without it, in the lockspace of
 * the local libvirt daemon when it uses virtlockd. */
static gboolean
resolve_lockspace (RebaseArgs *args, GError **error)
{
  g_autofree char *manager = NULL;

  if (args->no_leases || args->lockspace)
    return TRUE;
  if (!rechain_read_libvirt_lock_config (NULL, &manager, &args->lockspace, error))
    return FALSE;
  if (g_strcmp0 (manager, "sanlock") == 0)
    {
      const char *warning[] = {
        _("libvirt uses sanlock here, and rechain takes no sanlock leases: make sure that no "
          "domain on any host uses the images (see README, \"libvirt's lock manager\")"),
        NULL
      };
      tool_print_warnings (warning);
    }
  return TRUE;
}

/* With --pool, turns the volume names of @args (IMAGEs and -b) into
 * paths through libvirt: @volume is the first IMAGE's volume, @paths its
 * path and the linked images'. The backing name written is the one libvirt
 * itself would write (absolute for dir pools), unless --backing-name says
 * otherwise. Without --pool the IMAGEs are paths already. */
static gboolean
resolve_images (RebaseArgs *args, RechainFleet *fleet, GPtrArray *volumes, GPtrArray *paths,
                GError **error)
{
  g_autoptr(RechainVolume) backing_volume = NULL;

  args->keys = tool_keys_new (&args->key_options, error);
  if (!args->keys)
    return FALSE;
  if (!args->pool)
    {
      g_autofree char *backing = NULL;

      for (guint i = 0; args->images[i]; i++)
        {
          char *path = tool_keys_image_arg (args->keys, &args->key_options, args->images[i],
                                            &args->format, error);
          if (!path)
            return FALSE;
          g_ptr_array_add (paths, path);
        }
      backing = tool_keys_backing_arg (args->keys, g_ptr_array_index (paths, 0), args->backing,
                                       &args->backing_format, error);
      if (!backing)
        return FALSE;
      g_free (args->backing);
      args->backing = g_steal_pointer (&backing);
      return tool_keys_add_native (args->keys, &args->key_options, error);
    }
  if (!tool_keys_add_native (args->keys, &args->key_options, error))
    return FALSE;
  if (args->clones_of)
    {
      g_autoptr(GPtrArray) clones = rechain_fleet_select_clones (fleet, args->pool, args->clones_of,
                                                                 NULL, error);
      g_auto(GStrv) warnings = NULL;

      if (!clones)
        return FALSE;
      warnings = rechain_fleet_get_warnings (fleet);
      tool_print_warnings ((const char * const *) warnings);
      for (guint i = 0; i < clones->len; i++)
        g_ptr_array_add (volumes, g_object_ref (g_ptr_array_index (clones, i)));
    }
  for (guint i = 0; args->images[i]; i++)
    {
      RechainVolume *v = rechain_fleet_resolve (fleet, args->pool, args->images[i], NULL, error);

      if (!v)
        return FALSE;
      g_ptr_array_add (volumes, v);
    }
  for (guint i = 0; i < volumes->len; i++)
    g_ptr_array_add (paths, g_strdup (rechain_volume_get_path (g_ptr_array_index (volumes, i))));
  if (!args->format && volumes->len > 0)
    args->format = g_strdup (rechain_volume_get_format (g_ptr_array_index (volumes, 0)));
  if (!*args->backing)
    return TRUE;
  backing_volume = rechain_fleet_resolve (fleet, args->pool, args->backing, NULL, error);
  if (!backing_volume)
    return FALSE;
  g_free (args->backing);
  args->backing = g_strdup (args->backing_name ? args->backing_name
                                               : rechain_volume_get_backing_name (backing_volume));
  if (!args->backing_format)
    args->backing_format = g_strdup (rechain_volume_get_format (backing_volume));
  return TRUE;
}

/* Runs @job on the library's worker thread while this thread waits for
 * signals, so Ctrl-C cancels cleanly (the image stays consistent) instead
 * of killing the process between two writes. */
static gboolean
run_job (RechainRebaseJob *job, const RebaseArgs *args, GError **error)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  RebaseRun run = { job, args->progress, FALSE, FALSE, NULL };
  guint sigint, sigterm;

  g_signal_connect (job, "notify::progress", G_CALLBACK (on_progress), &run);
  g_signal_connect (job, "image-finished", G_CALLBACK (on_image_finished), &run);
  sigint = g_unix_signal_add (SIGINT, on_signal, cancellable);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, cancellable);
  rechain_block_job_run_async (RECHAIN_BLOCK_JOB (job), G_PRIORITY_DEFAULT, cancellable,
                               on_done, &run);
  while (!run.done)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handlers_disconnect_by_data (job, &run);
  /* A final 100 % always, however small the job. */
  tool_progress_end (args->progress, run.ok);
  if (!run.ok)
    g_propagate_error (error, run.error);
  return run.ok;
}

/* The report --output asks for, of what was done (or, after a failure,
 * of what was done before it). */
static void
report (RechainRebaseJob *job, const RebaseArgs *args)
{
  RechainRebaseStats *stats = rechain_rebase_job_get_stats (job);

  if (!args->output || !stats || !has_images (stats))
    return;
  if (args->out_format == TOOL_OUTPUT_JSON)
    {
      g_autofree char *json = rechain_rebase_stats_to_json (stats);
      printf ("%s\n", json);
    }
  else
    print_human_report (stats);
}

/* Connects to every --connect host, in the order given (the first that
 * has the pool resolves the volumes). */
static RechainFleet *
connect_fleet (const RebaseArgs *args, GError **error)
{
  g_autoptr(RechainFleet) fleet = rechain_fleet_new ();
  g_auto(GStrv) warnings = NULL;

  rechain_fleet_set_skip_unreachable (fleet, args->skip_unreachable);
  for (guint i = 0; args->connect_uris[i]; i++)
    if (!rechain_fleet_add_host (fleet, args->connect_uris[i], NULL, error))
      return NULL;
  warnings = rechain_fleet_get_warnings (fleet);
  tool_print_warnings ((const char * const *) warnings);
  return g_steal_pointer (&fleet);
}

/* One line per volume: what became of it and why. */
static void
print_volume_results (GPtrArray *results)
{
  for (guint i = 0; i < results->len; i++)
    {
      RechainFleetResult *r = g_ptr_array_index (results, i);
      RechainVolume *v = rechain_fleet_result_get_volume (r);
      const char *name = rechain_volume_get_name (v);
      gint64 bytes = rechain_fleet_result_get_bytes (r);

      switch (rechain_fleet_result_get_status (r))
        {
        case RECHAIN_FLEET_STATUS_MOVED:
          printf (_("%s: moved, %" PRId64 " bytes copied\n"), name, (int64_t) MAX (bytes, 0));
          break;
        case RECHAIN_FLEET_STATUS_WOULD_MOVE:
          printf (_("%s: would move, %" PRId64 " bytes to copy (at most)\n"), name,
                  (int64_t) MAX (bytes, 0));
          break;
        case RECHAIN_FLEET_STATUS_SKIPPED:
          printf (_("%s: skipped: %s\n"), name, rechain_fleet_result_get_reason (r));
          break;
        case RECHAIN_FLEET_STATUS_FAILED:
        default:
          printf (_("%s: failed: %s\n"), name, rechain_fleet_result_get_reason (r));
          break;
        }
    }
}

static void
add_string_member (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

/* --clones-of --output=json: one entry per volume, and the statistics of
 * the linked-clone pass (null when nothing was to move). */
static void
print_volume_results_json (GPtrArray *results, RechainRebaseJob *job)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  RechainRebaseStats *stats = job ? rechain_rebase_job_get_stats (job) : NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "volumes");
  json_builder_begin_array (b);
  for (guint i = 0; i < results->len; i++)
    {
      RechainFleetResult *r = g_ptr_array_index (results, i);
      RechainVolume *v = rechain_fleet_result_get_volume (r);
      gint64 bytes = rechain_fleet_result_get_bytes (r);

      json_builder_begin_object (b);
      add_string_member (b, "volume", rechain_volume_get_name (v));
      add_string_member (b, "pool", rechain_volume_get_pool (v));
      add_string_member (b, "path", rechain_volume_get_path (v));
      add_string_member (b, "status", rechain_fleet_status_to_string (rechain_fleet_result_get_status (r)));
      add_string_member (b, "reason", rechain_fleet_result_get_reason (r));
      add_string_member (b, "host", rechain_fleet_result_get_host (r));
      add_string_member (b, "uri", rechain_fleet_result_get_uri (r));
      add_string_member (b, "domain", rechain_fleet_result_get_domain (r));
      json_builder_set_member_name (b, "bytes");
      if (bytes >= 0)
        json_builder_add_int_value (b, bytes);
      else
        json_builder_add_null_value (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "rebase");
  if (stats && has_images (stats))
    {
      g_autofree char *json = rechain_rebase_stats_to_json (stats);
      JsonNode *node = json_from_string (json, NULL);

      if (node)
        json_builder_add_value (b, node);
      else
        json_builder_add_null_value (b);
    }
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

/* With --pool: the volumes are moved through the fleet of --connect
 * hosts, in-use volumes refused (named volumes) or skipped (--clones-of). */
static int
run_fleet (RechainFleet *fleet, GPtrArray *volumes, RechainRebaseJob *options,
           const RebaseArgs *args)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  FleetRun run = { 0 };
  RechainFleetRebaseFlags flags = RECHAIN_FLEET_REBASE_NONE;
  gboolean skipped = FALSE, failed = FALSE;
  guint sigint, sigterm;
  int status;

  if (args->strict)
    flags |= RECHAIN_FLEET_REBASE_STRICT;
  if (args->clones_of)
    flags |= RECHAIN_FLEET_REBASE_SKIP_IN_USE;
  sigint = g_unix_signal_add (SIGINT, on_signal, cancellable);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, cancellable);
  run.progress = args->progress;
  g_signal_connect (fleet, "rebase-started", G_CALLBACK (on_fleet_started), &run);
  rechain_fleet_rebase_async (fleet, volumes, options, flags, G_PRIORITY_DEFAULT, cancellable,
                              on_fleet_done, &run);
  while (!run.done)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handlers_disconnect_by_data (fleet, &run);
  if (run.job)
    g_signal_handlers_disconnect_by_data (run.job, &run);
  tool_progress_end (args->progress, run.results != NULL);
  if (run.job && rechain_rebase_job_get_stats (run.job))
    tool_print_warnings (rechain_rebase_stats_get_warnings (rechain_rebase_job_get_stats (run.job)));
  if (!run.results)
    {
      if (run.job)
        report (run.job, args);
      g_clear_object (&run.job);
      status = tool_fail (run.error);
      g_error_free (run.error);
      return status;
    }
  for (guint i = 0; i < run.results->len; i++)
    {
      RechainFleetStatus st = rechain_fleet_result_get_status (g_ptr_array_index (run.results, i));

      skipped |= st == RECHAIN_FLEET_STATUS_SKIPPED;
      failed |= st == RECHAIN_FLEET_STATUS_FAILED;
    }
  if (args->clones_of && args->out_format == TOOL_OUTPUT_JSON && args->output)
    print_volume_results_json (run.results, run.job);
  else
    {
      if (args->clones_of && !args->quiet)
        print_volume_results (run.results);
      else if (failed || skipped)
        for (guint i = 0; i < run.results->len; i++)
          {
            RechainFleetResult *r = g_ptr_array_index (run.results, i);

            if (rechain_fleet_result_get_reason (r))
              g_printerr ("rechain: %s\n", rechain_fleet_result_get_reason (r));
          }
      if (run.job)
        report (run.job, args);
    }
  g_clear_object (&run.job);
  g_ptr_array_unref (run.results);
  /* a failure says more than a skip: exit status 1 (see README) */
  return failed ? TOOL_EXIT_FAILURE : skipped ? TOOL_EXIT_IN_USE : TOOL_EXIT_OK;
}

int
cmd_rebase (int argc, char **argv)
{
  g_auto(RebaseArgs) args = { 0 };
  g_autoptr(RechainFleet) fleet = NULL;
  g_autoptr(GPtrArray) volumes = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(RechainRebaseJob) job = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;
  int status = parse_args (argc, argv, &args);

  if (status >= 0)
    return status;
  if (!resolve_lockspace (&args, &error))
    return tool_fail (error);
  if (args.pool && !(fleet = connect_fleet (&args, &error)))
    return tool_fail (error);
  if (!resolve_images (&args, fleet, volumes, paths, &error))
    return tool_fail (error);
  if (paths->len == 0)
    {
      /* --clones-of found none: nothing to do is not an error */
      if (!args.quiet)
        g_printerr (_("rechain: no volume of pool %s has %s as its backing file\n"), args.pool,
                    args.clones_of);
      return TOOL_EXIT_OK;
    }
  g_ptr_array_add (paths, NULL);
  job = g_object_new (RECHAIN_TYPE_REBASE_JOB,
                      "image", g_ptr_array_index (paths, 0),
                      "linked-images", paths->len > 2 ? (char **) paths->pdata + 1 : NULL,
                      "format", args.format,
                      "backing-file", args.backing,
                      "backing-format", args.backing_format,
                      "copy-mode", args.copy_mode,
                      "backing-root", args.backing_root,
                      "trust-chain", args.trust_chain,
                      "mode", args.unsafe ? RECHAIN_REBASE_MODE_UNSAFE : RECHAIN_REBASE_MODE_SAFE,
                      "compress", args.compress,
                      "cache-mode", args.cache_mode,
                      "source-cache-mode", args.source_cache_mode,
                      "force-share", args.force_share,
                      "dry-run", args.dry_run,
                      "keyring", tool_keys_get_keyring (args.keys),
                      "leases", !args.no_leases,
                      "lockspace-dir", args.lockspace,
                      NULL);
  if (fleet)
    return run_fleet (fleet, volumes, job, &args);
  ok = run_job (job, &args, &error);
  if (rechain_rebase_job_get_stats (job))
    tool_print_warnings (rechain_rebase_stats_get_warnings (rechain_rebase_job_get_stats (job)));
  report (job, &args);
  return ok ? TOOL_EXIT_OK : tool_fail (error);
}
