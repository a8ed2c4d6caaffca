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

static void
on_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  RebaseRun *run = user_data;

  run->ok = rechain_block_job_run_finish (RECHAIN_BLOCK_JOB (object), result, &run->error);
  run->done = TRUE;
}

/* A pool volume: the in-use check came before, the pool refresh after. */
static void
on_volume_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  RebaseRun *run = user_data;
  g_auto(GStrv) warnings = NULL;

  run->ok = rechain_volume_rebase_finish (RECHAIN_VOLUME (object), result, &warnings, &run->error);
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

int
cmd_rebase (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *cache = NULL;
  g_autofree char *src_cache = NULL;
  g_autofree char *backing = NULL;
  g_autofree char *backing_format = NULL;
  g_autofree char *output = NULL;
  g_autofree char *copy_mode_arg = NULL;
  g_autofree char *backing_root = NULL;
  g_autofree char *connect_uri = NULL;
  g_autofree char *pool = NULL;
  g_autofree char *backing_name = NULL;
  gboolean quiet = FALSE, unsafe = FALSE, compress = FALSE;
  gboolean force_share = FALSE, dry_run = FALSE, strict = FALSE, trust_chain = FALSE;
  RechainCopyMode copy_mode = RECHAIN_COPY_MODE_AUTO;
  g_autoptr(RechainVolume) volume = NULL;
  g_autoptr(GPtrArray) linked = g_ptr_array_new_with_free_func (g_free);
  const char *image_path;
  ToolProgressOptions progress_options = { 0 };
  g_autoptr(ToolProgress) progress_out = NULL;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Format of IMAGE (qcow2; probed if not given)"), N_("FMT") },
    { "cache", 't', 0, G_OPTION_ARG_STRING, &cache, N_("Cache mode for IMAGE: writeback (default), writethrough, none, directsync, unsafe"), N_("CACHE") },
    { "source-cache", 'T', 0, G_OPTION_ARG_STRING, &src_cache, N_("Cache mode for the backing files read (default writeback)"), N_("CACHE") },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("Print nothing but errors"), NULL },
    { "unsafe", 'u', 0, G_OPTION_ARG_NONE, &unsafe, N_("Only change the backing file name and format; copy nothing"), NULL },
    { "compress", 'c', 0, G_OPTION_ARG_NONE, &compress, N_("Compress the clusters copied into IMAGE"), NULL },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Read the backing files even while another process writes them (no locks on them; IMAGE is always locked)"), NULL },
    { "backing", 'b', 0, G_OPTION_ARG_STRING, &backing, N_("New backing file (\"\" for none)"), N_("BACKING") },
    { "backing-format", 'F', 0, G_OPTION_ARG_STRING, &backing_format, N_("Format of the new backing file"), N_("FMT") },
    { "dry-run", 0, 0, G_OPTION_ARG_NONE, &dry_run, N_("Plan the rebase and report it; write nothing"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &output, N_("Report format: human or json (default: no report)"), N_("FORMAT") },
    { "copy-mode", 0, 0, G_OPTION_ARG_STRING, &copy_mode_arg, N_("How copied data gets into IMAGE: auto (share blocks or copy in the kernel where possible), reflink (share blocks or refuse), copy"), N_("MODE") },
    { "backing-root", 0, 0, G_OPTION_ARG_FILENAME, &backing_root, N_("Refuse backing files that resolve outside DIR"), N_("DIR") },
    { "trust-chain", 0, 0, G_OPTION_ARG_NONE, &trust_chain, N_("Follow every file name in the images' headers, even names in images of other users that those users could not open"), NULL },
    { "connect", 0, 0, G_OPTION_ARG_STRING, &connect_uri, N_("libvirt connection URI: IMAGE and -b name volumes of --pool"), N_("URI") },
    { "pool", 0, 0, G_OPTION_ARG_STRING, &pool, N_("libvirt storage pool of the volumes"), N_("POOL") },
    { "backing-name", 0, 0, G_OPTION_ARG_STRING, &backing_name, N_("Backing name to write instead of the one libvirt would (with --pool)"), N_("NAME") },
    { "strict", 0, 0, G_OPTION_ARG_NONE, &strict, N_("Refuse volumes that inactive domains use (with --pool), instead of warning"), NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE [IMAGE…]"));
  g_autoptr(GError) error = NULL;
  ToolOutputFormat out_format = TOOL_OUTPUT_HUMAN;
  RechainCacheMode cache_mode = RECHAIN_CACHE_WRITEBACK, source_cache_mode = RECHAIN_CACHE_WRITEBACK;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Change the backing file of IMAGE to BACKING (\"\" for none).\n\n"
      "Safe mode (the default) keeps the guest-visible content unchanged by first copying\n"
      "into IMAGE every region where the old and the new backing chains differ; several\n"
      "IMAGEs sharing one old backing chain (linked clones) are compared once and moved\n"
      "together. Unsafe mode (-u) only rewrites the backing file name and format."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  tool_progress_add_entries (context, &progress_options);
  tool_progress_rewrite_args (argc, argv);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      tool_progress_options_clear (&progress_options);
      return tool_usage_error (context, "%s", error->message);
    }
  if (quiet && tool_progress_to_stderr (&progress_options))
    {
      tool_progress_options_clear (&progress_options);
      return tool_usage_error (context, _("-p and -q exclude each other"));
    }
  progress_out = tool_progress_new (&progress_options, &error);
  tool_progress_options_clear (&progress_options);
  if (error)
    return tool_usage_error (context, "%s", error->message);
  if (argc < 2)
    return tool_usage_error (context, _("expected an IMAGE"));
  if (!backing)
    return tool_usage_error (context, _("the new backing file must be given with -b (use -b \"\" for none)"));
  if (output && !tool_parse_output (output, &out_format, &error))
    return tool_fail (error);

  if (cache && !rechain_cache_mode_from_string (cache, &cache_mode, &error))
    return tool_fail (error);
  if (src_cache && !rechain_cache_mode_from_string (src_cache, &source_cache_mode, &error))
    return tool_fail (error);
  if (!parse_copy_mode (copy_mode_arg, &copy_mode, &error))
    return tool_fail (error);
  if ((connect_uri || pool) && !(connect_uri && pool))
    return tool_usage_error (context, _("--connect and --pool go together"));
  if ((backing_name || strict) && !pool)
    return tool_usage_error (context, _("--backing-name and --strict apply to pool volumes (--connect, --pool)"));
  if (unsafe)
    {
      if (compress)
        return tool_usage_error (context, _("-c only applies to a safe rebase, not with -u"));
      if (dry_run)
        return tool_usage_error (context, _("--dry-run only applies to a safe rebase"));
      if (argc != 2)
        return tool_usage_error (context, _("-u takes exactly one IMAGE"));
    }

  {
    g_autoptr(RechainRebaseJob) job = NULL;
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();
    RebaseRun run = { 0 };
    guint sigint, sigterm;
    RechainRebaseStats *stats;
    int status = TOOL_EXIT_OK;

    image_path = argv[1];
    for (int i = 2; i < argc; i++)
      g_ptr_array_add (linked, g_strdup (argv[i]));
    if (pool)
      {
        /* Volume names resolved through libvirt; the backing name written
         * is the one libvirt itself would write (absolute for dir pools). */
        g_autoptr(RechainVolume) backing_volume = NULL;

        volume = rechain_volume_resolve ("libvirt", connect_uri, pool, argv[1], NULL, &error);
        if (!volume)
          return tool_fail (error);
        image_path = rechain_volume_get_path (volume);
        if (!format)
          format = g_strdup (rechain_volume_get_format (volume));
        g_ptr_array_set_size (linked, 0);
        for (int i = 2; i < argc; i++)
          {
            g_autoptr(RechainVolume) v = rechain_volume_helper_resolve (rechain_volume_get_helper (volume),
                                                                        pool, argv[i], NULL, &error);
            if (!v)
              return tool_fail (error);
            g_ptr_array_add (linked, g_strdup (rechain_volume_get_path (v)));
          }
        if (*backing)
          {
            backing_volume = rechain_volume_helper_resolve (rechain_volume_get_helper (volume),
                                                            pool, backing, NULL, &error);
            if (!backing_volume)
              return tool_fail (error);
            g_free (backing);
            backing = g_strdup (backing_name ? backing_name : rechain_volume_get_backing_name (backing_volume));
            if (!backing_format)
              backing_format = g_strdup (rechain_volume_get_format (backing_volume));
          }
      }
    g_ptr_array_add (linked, NULL);

    job = g_object_new (RECHAIN_TYPE_REBASE_JOB,
                        "image", image_path,
                        "linked-images", linked->len > 1 ? (char **) linked->pdata : NULL,
                        "format", format,
                        "backing-file", backing,
                        "backing-format", backing_format,
                        "copy-mode", copy_mode,
                        "backing-root", backing_root,
                        "trust-chain", trust_chain,
                        "mode", unsafe ? RECHAIN_REBASE_MODE_UNSAFE : RECHAIN_REBASE_MODE_SAFE,
                        "compress", compress,
                        "cache-mode", cache_mode,
                        "source-cache-mode", source_cache_mode,
                        "force-share", force_share,
                        "dry-run", dry_run,
                        NULL);
    run.job = job;
    run.progress = progress_out;
    g_signal_connect (job, "notify::progress", G_CALLBACK (on_progress), &run);

    /* The job runs on the library's worker thread; this thread waits for
     * signals, so Ctrl-C cancels cleanly (the image stays consistent)
     * instead of killing the process between two writes. */
    sigint = g_unix_signal_add (SIGINT, on_signal, cancellable);
    sigterm = g_unix_signal_add (SIGTERM, on_signal, cancellable);
    if (volume)
      rechain_volume_rebase_async (volume, job, strict ? RECHAIN_VOLUME_REBASE_STRICT : 0,
                                   G_PRIORITY_DEFAULT, cancellable, on_volume_done, &run);
    else
      rechain_block_job_run_async (RECHAIN_BLOCK_JOB (job), G_PRIORITY_DEFAULT, cancellable,
                                   on_done, &run);
    while (!run.done)
      g_main_context_iteration (NULL, TRUE);
    g_source_remove (sigint);
    g_source_remove (sigterm);

    /* A final 100 % always, however small the job. */
    tool_progress_end (progress_out, run.ok);
    stats = rechain_rebase_job_get_stats (job);
    if (output && stats && has_images (stats))
      {
        if (out_format == TOOL_OUTPUT_JSON)
          {
            g_autofree char *json = rechain_rebase_stats_to_json (stats);
            printf ("%s\n", json);
          }
        else
          print_human_report (stats);
      }
    if (!run.ok)
      {
        status = tool_fail (run.error);
        g_error_free (run.error);
      }
    return status;
  }
}
