/* cmd-rebase.c: rechain rebase — qemu-img rebase's options and meaning.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include <glib-unix.h>
#include <json-glib/json-glib.h>

#include "job/rebase.h"
#include "tool/tool.h"

typedef struct {
  const RechainRebaseOptions *options;
  RechainRebaseReport *report;
  GCancellable *cancellable;
  gint finished;
  gboolean show_progress;
  gboolean tty;
  gint64 last_print;
  gboolean ok;
  GError *error;
} RebaseRun;

static void
print_progress (guint64 done, guint64 total, gpointer user_data)
{
  RebaseRun *run = user_data;
  gint64 now = g_get_monotonic_time ();
  double percent = total ? 100.0 * (double) done / (double) total : 100.0;

  if (!run->show_progress)
    return;
  /* A terminal gets a line redrawn at most 10 times a second; a log gets a
   * line per second. */
  if (done < total && now - run->last_print < (run->tty ? G_USEC_PER_SEC / 10 : G_USEC_PER_SEC))
    return;
  run->last_print = now;
  if (run->tty)
    fprintf (stderr, "\r    (%6.2f/100%%)", percent);
  else
    fprintf (stderr, "    (%6.2f/100%%)\n", percent);
  fflush (stderr);
}

static gpointer
rebase_thread (gpointer data)
{
  RebaseRun *run = data;

  run->ok = rechain_rebase_safe (run->options, run->report, print_progress, run,
                                 run->cancellable, &run->error);
  g_atomic_int_set (&run->finished, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
on_signal (gpointer data)
{
  RebaseRun *run = data;
  g_cancellable_cancel (run->cancellable);
  return G_SOURCE_CONTINUE;
}

static void
add_uint (JsonBuilder *b, const char *name, guint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, (gint64) value);
}

static void
print_report (const RechainRebaseReport *r, RechainOutputFormat format)
{
  if (format == RECHAIN_OUTPUT_JSON)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(JsonGenerator) gen = json_generator_new ();
      g_autoptr(JsonNode) root = NULL;
      g_autofree char *text = NULL;

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
      json_builder_set_member_name (b, "images");
      json_builder_begin_array (b);
      for (guint i = 0; i < r->images->len; i++)
        {
          const RechainRebaseImageReport *ir = g_ptr_array_index (r->images, i);
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "image");
          json_builder_add_string_value (b, ir->image);
          json_builder_set_member_name (b, "result");
          json_builder_add_string_value (b, ir->error ? "failed" : (r->dry_run ? "planned" : "rebased"));
          if (ir->error)
            {
              json_builder_set_member_name (b, "error");
              json_builder_add_string_value (b, ir->error->message);
            }
          add_uint (b, "bytes-examined", ir->bytes_examined);
          add_uint (b, "bytes-written", ir->bytes_to_write);
          add_uint (b, "bytes-zeroed", ir->bytes_to_zero);
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
      text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return;
    }

  printf (r->dry_run ? _("Plan (nothing written):\n") : _("Done in %.2f s:\n"), r->seconds);
  printf (_("  %" G_GUINT64_FORMAT " bytes not allocated by the image(s) examined\n"), r->bytes_examined);
  printf (_("  %" G_GUINT64_FORMAT " bytes the same in both chains by metadata alone (not read)\n"),
          r->bytes_same_by_metadata);
  printf (_("  %" G_GUINT64_FORMAT " bytes %s from both chains\n"), r->bytes_compared,
          r->dry_run ? _("to read and compare") : _("read and compared"));
  for (guint i = 0; i < r->images->len; i++)
    {
      const RechainRebaseImageReport *ir = g_ptr_array_index (r->images, i);
      if (ir->error)
        printf (_("  %s: failed: %s\n"), ir->image, ir->error->message);
      else
        printf (_("  %s: %" G_GUINT64_FORMAT " bytes %s, %" G_GUINT64_FORMAT " bytes %s\n"),
                ir->image, ir->bytes_to_write, r->dry_run ? _("to copy (at most)") : _("copied"),
                ir->bytes_to_zero, r->dry_run ? _("to zero") : _("zeroed"));
    }
}

int
rechain_cmd_rebase (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *cache = NULL;
  g_autofree char *src_cache = NULL;
  g_autofree char *backing = NULL;
  g_autofree char *backing_format = NULL;
  g_autofree char *output = NULL;
  gboolean progress = FALSE, quiet = FALSE, unsafe = FALSE, compress = FALSE;
  gboolean force_share = FALSE, dry_run = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Format of IMAGE (qcow2; probed if not given)"), N_("FMT") },
    { "cache", 't', 0, G_OPTION_ARG_STRING, &cache, N_("Cache mode for IMAGE: writeback (default), writethrough, none, directsync, unsafe"), N_("CACHE") },
    { "source-cache", 'T', 0, G_OPTION_ARG_STRING, &src_cache, N_("Cache mode for the backing files read (default writeback)"), N_("CACHE") },
    { "progress", 'p', 0, G_OPTION_ARG_NONE, &progress, N_("Show progress"), NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, N_("Print nothing but errors"), NULL },
    { "unsafe", 'u', 0, G_OPTION_ARG_NONE, &unsafe, N_("Only change the backing file name and format; copy nothing"), NULL },
    { "compress", 'c', 0, G_OPTION_ARG_NONE, &compress, N_("Compress the clusters copied into IMAGE"), NULL },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Read the backing files even while another process writes them (no locks on them; IMAGE is always locked)"), NULL },
    { "backing", 'b', 0, G_OPTION_ARG_STRING, &backing, N_("New backing file (\"\" for none)"), N_("BACKING") },
    { "backing-format", 'F', 0, G_OPTION_ARG_STRING, &backing_format, N_("Format of the new backing file"), N_("FMT") },
    { "dry-run", 0, 0, G_OPTION_ARG_NONE, &dry_run, N_("Plan the rebase and report it; write nothing"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &output, N_("Report format: human or json (default: no report)"), N_("FORMAT") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE [IMAGE…]"));
  g_autoptr(GError) error = NULL;
  RechainRebaseOptions options = { 0 };
  RechainOutputFormat out_format = RECHAIN_OUTPUT_HUMAN;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Change the backing file of IMAGE to BACKING (\"\" for none).\n\n"
      "Safe mode (the default) keeps the guest-visible content unchanged by first copying\n"
      "into IMAGE every region where the old and the new backing chains differ; several\n"
      "IMAGEs sharing one old backing chain (linked clones) are compared once and moved\n"
      "together. Unsafe mode (-u) only rewrites the backing file name and format."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return rechain_tool_usage_error (context, "%s", error->message);
  if (argc < 2)
    return rechain_tool_usage_error (context, _("expected an IMAGE"));
  if (!backing)
    return rechain_tool_usage_error (context, _("the new backing file must be given with -b (use -b \"\" for none)"));
  if (progress && quiet)
    return rechain_tool_usage_error (context, _("-p and -q exclude each other"));
  if (output && !rechain_tool_parse_output (output, &out_format, &error))
    return rechain_tool_fail (error);

  options.images = (const char * const *) argv + 1;
  options.format = format;
  options.backing_file = backing;
  options.backing_format = backing_format;
  options.force_share = force_share;
  options.compress = compress;
  options.dry_run = dry_run;
  if (cache && !rechain_cache_mode_from_string (cache, &options.cache, &error))
    return rechain_tool_fail (error);
  if (src_cache && !rechain_cache_mode_from_string (src_cache, &options.source_cache, &error))
    return rechain_tool_fail (error);

  if (unsafe)
    {
      if (compress)
        return rechain_tool_usage_error (context, _("-c only applies to a safe rebase, not with -u"));
      if (dry_run)
        return rechain_tool_usage_error (context, _("--dry-run only applies to a safe rebase"));
      if (argc != 2)
        return rechain_tool_usage_error (context, _("-u takes exactly one IMAGE"));
      options.image = argv[1];
      if (!rechain_rebase_unsafe (&options, &error))
        return rechain_tool_fail (error);
      return RECHAIN_EXIT_OK;
    }

  {
    g_autoptr(RechainRebaseReport) report = rechain_rebase_report_new ();
    g_autoptr(GCancellable) cancellable = g_cancellable_new ();
    RebaseRun run = { &options, report, cancellable, 0, progress, isatty (2), 0, FALSE, NULL };
    guint sigint = g_unix_signal_add (SIGINT, on_signal, &run);
    guint sigterm = g_unix_signal_add (SIGTERM, on_signal, &run);
    GThread *thread = g_thread_new ("rebase", rebase_thread, &run);
    int status = RECHAIN_EXIT_OK;

    /* The rebase runs on its own thread; this one waits for signals, so
     * Ctrl-C cancels cleanly (the image stays consistent) instead of
     * killing the process between two writes. */
    while (!g_atomic_int_get (&run.finished))
      g_main_context_iteration (NULL, TRUE);
    g_thread_join (thread);
    g_source_remove (sigint);
    g_source_remove (sigterm);

    if (progress)
      {
        if (run.ok)
          print_progress (1, 1, &run);
        if (run.tty)
          fputc ('\n', stderr);
      }
    if (output && report->images->len > 0)
      print_report (report, out_format);
    if (!run.ok)
      {
        status = rechain_tool_fail (run.error);
        g_error_free (run.error);
      }
    return status;
  }
}
