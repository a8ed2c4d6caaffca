/* progress.c: how the rechain command line reports the progress of long
 * operations (rebase, map): a one-line bar on a terminal, a plain line
 * every second in a log, JSON lines for programs that wrap the tool.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "tool.h"

struct _RechainProgress {
  ToolProgressMode mode;
  FILE *out;
  gboolean own_out;
  int fd;
  gint64 start;
  gint64 last_print;
  guint64 done;
  guint64 total;
  gsize last_width; /* bar: columns drawn by the last redraw */
  gboolean drawn;   /* bar: a line is on screen without its newline */
  gboolean ended;
};

/* GOption cannot give -p an optional argument without swallowing the next
 * word (`-p IMAGE` would read IMAGE as the mode), so --progress=MODE is
 * rewritten to the hidden --progress-mode=MODE before parsing. */
void
tool_progress_rewrite_args (int argc, char **argv)
{
  static GPtrArray *keep = NULL;

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--"))
        break;
      if (g_str_has_prefix (argv[i], "--progress="))
        {
          char *arg = g_strconcat ("--progress-mode=", argv[i] + strlen ("--progress="), NULL);
          if (!keep)
            keep = g_ptr_array_new_with_free_func (g_free);
          g_ptr_array_add (keep, arg);
          argv[i] = arg;
        }
    }
}

void
tool_progress_add_entries (GOptionContext *context, ToolProgressOptions *options)
{
  const GOptionEntry entries[] = {
    { "progress", 'p', 0, G_OPTION_ARG_NONE, &options->enabled,
      N_("Show progress: a bar on a terminal, a line a second otherwise; "
         "--progress=MODE chooses the form: bar, plain or json"), NULL },
    { "progress-mode", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &options->mode,
      NULL, N_("MODE") },
    { "progress-fd", 0, 0, G_OPTION_ARG_INT, &options->fd,
      N_("Write progress to file descriptor FD instead of standard error (JSON lines unless "
         "--progress=MODE says otherwise)"), N_("FD") },
    { NULL }
  };

  options->fd = -1;
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
}

void
tool_progress_options_clear (ToolProgressOptions *options)
{
  g_clear_pointer (&options->mode, g_free);
}

gboolean
tool_progress_wanted (const ToolProgressOptions *options)
{
  return options->enabled || options->mode || options->fd >= 0;
}

gboolean
tool_progress_to_stderr (const ToolProgressOptions *options)
{
  return tool_progress_wanted (options) && (options->fd < 0 || options->fd == 2);
}

ToolProgress *
tool_progress_new (const ToolProgressOptions *options, GError **error)
{
  ToolProgress *p;
  ToolProgressMode mode = TOOL_PROGRESS_AUTO;
  int fd = options->fd >= 0 ? options->fd : STDERR_FILENO;

  if (!tool_progress_wanted (options))
    return NULL;

  if (!options->mode || g_str_equal (options->mode, "auto"))
    mode = options->fd >= 0 && options->fd != STDERR_FILENO && !options->mode
             ? TOOL_PROGRESS_JSON : TOOL_PROGRESS_AUTO;
  else if (g_str_equal (options->mode, "bar"))
    mode = TOOL_PROGRESS_BAR;
  else if (g_str_equal (options->mode, "plain"))
    mode = TOOL_PROGRESS_PLAIN;
  else if (g_str_equal (options->mode, "json"))
    mode = TOOL_PROGRESS_JSON;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--progress must be 'auto', 'bar', 'plain' or 'json', not '%s'"), options->mode);
      return NULL;
    }
  if (fcntl (fd, F_GETFD) < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--progress-fd=%d: not an open file descriptor"), fd);
      return NULL;
    }
  if (mode == TOOL_PROGRESS_AUTO)
    mode = isatty (fd) ? TOOL_PROGRESS_BAR : TOOL_PROGRESS_PLAIN;

  p = g_new0 (ToolProgress, 1);
  p->mode = mode;
  p->fd = fd;
  if (fd == STDERR_FILENO)
    p->out = stderr;
  else if (fd == STDOUT_FILENO)
    p->out = stdout;
  else
    {
      int copy = fcntl (fd, F_DUPFD_CLOEXEC, 3);
      p->out = copy >= 0 ? fdopen (copy, "w") : NULL;
      if (!p->out)
        {
          int saved = errno;
          if (copy >= 0)
            close (copy);
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--progress-fd=%d: %s", fd, g_strerror (saved));
          g_free (p);
          return NULL;
        }
      p->own_out = TRUE;
    }
  p->start = g_get_monotonic_time ();
  p->last_print = p->start;
  return p;
}

static double
fraction_of (guint64 done, guint64 total)
{
  if (total == 0)
    return 0.0;
  return MIN (1.0, (double) done / (double) total);
}

/* "1:02:03" or "2:03". */
static char *
format_duration (double seconds)
{
  guint64 s = seconds < 0 ? 0 : (guint64) (seconds + 0.5);

  if (s >= 3600)
    return g_strdup_printf ("%" G_GUINT64_FORMAT ":%02u:%02u", s / 3600,
                            (guint) (s / 60 % 60), (guint) (s % 60));
  return g_strdup_printf ("%u:%02u", (guint) (s / 60), (guint) (s % 60));
}

static char *
format_rate (guint64 bytes, double seconds)
{
  g_autofree char *size = NULL;

  if (seconds <= 0.0 || bytes == 0)
    return g_strdup ("--");
  size = g_format_size_full ((guint64) ((double) bytes / seconds), G_FORMAT_SIZE_IEC_UNITS);
  /* TRANSLATORS: a throughput, e.g. "120.5 MiB/s" */
  return g_strdup_printf (_("%s/s"), size);
}

static int
terminal_columns (int fd)
{
  struct winsize ws;
  const char *env;

  if (ioctl (fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
    return ws.ws_col;
  env = g_getenv ("COLUMNS");
  if (env && atoi (env) >= 20)
    return atoi (env);
  return 80;
}

static void
draw_bar (ToolProgress *p, gboolean final)
{
  double fraction = final ? 1.0 : fraction_of (p->done, p->total);
  double elapsed = (double) (g_get_monotonic_time () - p->start) / G_USEC_PER_SEC;
  g_autofree char *rate = format_rate (p->done, elapsed);
  g_autofree char *suffix = NULL;
  g_autoptr(GString) line = g_string_new (NULL);
  int columns = terminal_columns (p->fd);
  glong bar_width;
  glong filled;
  gsize width;

  if (final)
    {
      g_autofree char *size = g_format_size_full (p->total, G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *took = format_duration (elapsed);
      /* TRANSLATORS: end of the progress bar: "3.0 GiB in 0:04, 740 MiB/s" */
      suffix = g_strdup_printf (_("%s in %s, %s"), size, took, rate);
    }
  else
    {
      g_autofree char *eta = NULL;
      if (p->done > 0 && elapsed >= 0.5 && p->total > p->done)
        eta = format_duration (elapsed * (double) (p->total - p->done) / (double) p->done);
      /* TRANSLATORS: right of the progress bar: throughput and estimated time left */
      suffix = g_strdup_printf (_("%s, ETA %s"), rate, eta ? eta : "--:--");
    }

  /* "100% [#########.........] suffix" within the terminal's width; the
   * bar keeps its width while the suffix changes, unless it cannot fit */
  bar_width = MIN (columns - 1 - 4 - 3 - 34, 50);
  bar_width = MIN (bar_width, columns - 1 - 4 - 3 - g_utf8_strlen (suffix, -1));
  bar_width = MAX (bar_width, 0);
  filled = (glong) (fraction * (double) bar_width);
  g_string_append_printf (line, "%3d%%", (int) (fraction * 100.0));
  if (bar_width >= 5)
    {
      g_string_append (line, " [");
      for (glong i = 0; i < bar_width; i++)
        g_string_append_c (line, i < filled ? '#' : '.');
      g_string_append (line, "]");
    }
  g_string_append_c (line, ' ');
  g_string_append (line, suffix);
  width = (gsize) g_utf8_strlen (line->str, -1);
  /* blank what a longer previous line left */
  for (gsize i = width; i < p->last_width; i++)
    g_string_append_c (line, ' ');
  p->last_width = width;

  fprintf (p->out, "\r%s%s", line->str, final ? "\n" : "");
  p->drawn = !final;
  fflush (p->out);
}

static void
print_plain (ToolProgress *p, gboolean final)
{
  double fraction = final ? 1.0 : fraction_of (p->done, p->total);
  double elapsed = (double) (g_get_monotonic_time () - p->start) / G_USEC_PER_SEC;
  g_autofree char *size = g_format_size_full (p->total, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *rate = format_rate (p->done, elapsed);

  if (final)
    {
      g_autofree char *took = format_duration (elapsed);
      /* TRANSLATORS: the last progress line: "rechain rebase: 100.0% of 3.0 GiB in 0:04, 740 MiB/s" */
      fprintf (p->out, _("%s: %5.1f%% of %s in %s, %s\n"), g_get_prgname (), 100.0 * fraction,
               size, took, rate);
    }
  else
    {
      g_autofree char *eta = NULL;
      if (p->done > 0 && p->total > p->done)
        eta = format_duration (elapsed * (double) (p->total - p->done) / (double) p->done);
      /* TRANSLATORS: a progress line: "rechain rebase: 42.0% of 3.0 GiB, 120 MiB/s, ETA 0:12" */
      fprintf (p->out, _("%s: %5.1f%% of %s, %s, ETA %s\n"), g_get_prgname (), 100.0 * fraction,
               size, rate, eta ? eta : "--:--");
    }
  fflush (p->out);
}

static void
print_json (ToolProgress *p, gboolean final)
{
  char fraction[G_ASCII_DTOSTR_BUF_SIZE];
  guint64 done = final ? p->total : p->done;

  g_ascii_formatd (fraction, sizeof fraction, "%.4f", final ? 1.0 : fraction_of (p->done, p->total));
  fprintf (p->out, "{\"bytes-done\": %" G_GUINT64_FORMAT ", \"bytes-total\": %" G_GUINT64_FORMAT
           ", \"progress\": %s}\n", done, p->total, fraction);
  fflush (p->out);
}

static void
print_now (ToolProgress *p, gboolean final)
{
  p->last_print = g_get_monotonic_time ();
  switch (p->mode)
    {
    case TOOL_PROGRESS_BAR:
      draw_bar (p, final);
      break;
    case TOOL_PROGRESS_PLAIN:
      print_plain (p, final);
      break;
    case TOOL_PROGRESS_JSON:
    default:
      print_json (p, final);
      break;
    }
}

void
tool_progress_update (ToolProgress *p, guint64 done, guint64 total)
{
  gint64 now, interval;

  if (!p || p->ended)
    return;
  p->done = done;
  p->total = total;
  /* The end is printed once, by tool_progress_end(). */
  if (total > 0 && done >= total)
    return;
  /* A bar or JSON at most 10 times a second, a log line a second. */
  interval = p->mode == TOOL_PROGRESS_PLAIN ? G_USEC_PER_SEC : G_USEC_PER_SEC / 10;
  now = g_get_monotonic_time ();
  if (now - p->last_print < interval)
    return;
  print_now (p, FALSE);
}

/* {"image": PATH, "status": "rebased"|"failed"|"planned",
 *  "bytes-written": N, "error": MESSAGE (failed only)}: a program that
 * watches a thousand clones learns of each as it ends. The error is the
 * message the final report gives. Printed at once (one per image, not a
 * rate to bound), and told from the progress lines by its "image" key. */
/* @value as a JSON string, quoted and escaped */
static char *
json_string (const char *value)
{
  g_autoptr(JsonNode) node = json_node_init_string (json_node_alloc (), value);

  return json_to_string (node, FALSE);
}

void
tool_progress_image (ToolProgress *p, const char *image, const char *status,
                     guint64 bytes_written, const char *error)
{
  g_autofree char *image_json = NULL;
  g_autofree char *error_json = NULL;

  if (!p || p->ended || p->mode != TOOL_PROGRESS_JSON)
    return;
  image_json = json_string (image);
  error_json = error ? json_string (error) : NULL;
  /* spaced as the progress lines are */
  fprintf (p->out, "{\"image\": %s, \"status\": \"%s\", \"bytes-written\": %" G_GUINT64_FORMAT
           "%s%s}\n", image_json, status, bytes_written, error ? ", \"error\": " : "",
           error ? error_json : "");
  fflush (p->out);
}

void
tool_progress_end (ToolProgress *p, gboolean complete)
{
  if (!p || p->ended)
    return;
  p->ended = TRUE;
  if (complete)
    print_now (p, TRUE);
  else if (p->drawn)
    {
      /* leave the bar where it stopped; the error goes below it */
      fputc ('\n', p->out);
      fflush (p->out);
    }
}

void
tool_progress_free (ToolProgress *p)
{
  if (!p)
    return;
  if (p->own_out)
    fclose (p->out);
  g_free (p);
}
