/* rechain.c: the rechain command line: dispatch and common handling.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>

#include <rechain/rechain.h>
#include "tool.h"

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} Command;

static const Command commands[] = {
  { "info", rechain_cmd_info, N_("Show an image and its backing chain") },
  { "map", rechain_cmd_map, N_("Show where the guest-visible data of an image comes from") },
  { "rebase", rechain_cmd_rebase, N_("Change the backing file of an image") },
};

int
rechain_tool_fail (const GError *error)
{
  g_printerr ("rechain: %s\n", error->message);

  if (error->domain == G_IO_ERROR && error->code == G_IO_ERROR_CANCELLED)
    return RECHAIN_EXIT_CANCELLED;
  if (error->domain == G_OPTION_ERROR)
    return RECHAIN_EXIT_USAGE;
  if (error->domain != RECHAIN_ERROR)
    return RECHAIN_EXIT_FAILURE;
  switch ((RechainError) error->code)
    {
    case RECHAIN_ERROR_INVALID_ARGUMENT:
      return RECHAIN_EXIT_USAGE;
    case RECHAIN_ERROR_INVALID_IMAGE:
    case RECHAIN_ERROR_UNSUPPORTED:
    case RECHAIN_ERROR_BACKING_NOT_FOUND:
    case RECHAIN_ERROR_READ_ONLY:
      return RECHAIN_EXIT_INVALID_IMAGE;
    case RECHAIN_ERROR_IN_USE:
      return RECHAIN_EXIT_IN_USE;
    case RECHAIN_ERROR_IO:
    case RECHAIN_ERROR_NO_SPACE:
      return RECHAIN_EXIT_IO;
    case RECHAIN_ERROR_FAILED:
    default:
      return RECHAIN_EXIT_FAILURE;
    }
}

int
rechain_tool_usage_error (GOptionContext *context, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("rechain: %s\n", message);
  g_printerr (_("Try '%s --help' for more information.\n"), g_get_prgname ());
  (void) context;
  return RECHAIN_EXIT_USAGE;
}

gboolean
rechain_tool_parse_output (const char *value, RechainOutputFormat *format, GError **error)
{
  if (!value || g_str_equal (value, "human"))
    *format = RECHAIN_OUTPUT_HUMAN;
  else if (g_str_equal (value, "json"))
    *format = RECHAIN_OUTPUT_JSON;
  else
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("--output must be 'human' or 'json', not '%s'"), value);
      return FALSE;
    }
  return TRUE;
}

void
rechain_tool_print_warnings (const char * const *warnings)
{
  for (; warnings && *warnings; warnings++)
    g_printerr (_("rechain: warning: %s\n"), *warnings);
}

static void
print_help (FILE *out)
{
  fprintf (out, _("Usage: rechain COMMAND [OPTION…] IMAGE\n\n"
                  "Change the backing file of qcow2 images offline, keeping what the guest sees.\n\n"
                  "Commands:\n"));
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-8s %s\n", commands[i].name, _(commands[i].summary));
  fprintf (out, _("\nOptions:\n"
                  "  -h, --help     Show this help\n"
                  "  -V, --version  Show the version\n\n"
                  "Run 'rechain COMMAND --help' for the options of a command.\n"));
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  if (argc < 2)
    {
      print_help (stderr);
      return RECHAIN_EXIT_USAGE;
    }
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") ||
      g_str_equal (argv[1], "help"))
    {
      print_help (stdout);
      return RECHAIN_EXIT_OK;
    }
  if (g_str_equal (argv[1], "--version") || g_str_equal (argv[1], "-V"))
    {
      printf ("rechain %s\n", PACKAGE_VERSION);
      return RECHAIN_EXIT_OK;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      {
        g_autofree char *prgname = g_strdup_printf ("rechain %s", commands[i].name);
        g_set_prgname (prgname);
        return commands[i].run (argc - 1, argv + 1);
      }

  g_printerr (_("rechain: unknown command '%s'\n"), argv[1]);
  g_printerr (_("Try 'rechain --help' for more information.\n"));
  return RECHAIN_EXIT_USAGE;
}
