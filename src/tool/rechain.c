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
#include <json-glib/json-glib.h>

#include <rechain/rechain.h>
#include "tool.h"

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} Command;

static const Command commands[] = {
  { "info", cmd_info, N_("Show an image and its backing chain") },
  { "map", cmd_map, N_("Show where the guest-visible data of an image comes from") },
  { "rebase", cmd_rebase, N_("Change the backing file of an image") },
};

gboolean tool_json_errors = FALSE;

int
tool_exit_code (const GError *error)
{
  if (error->domain == G_IO_ERROR && error->code == G_IO_ERROR_CANCELLED)
    return TOOL_EXIT_CANCELLED;
  if (error->domain == G_OPTION_ERROR)
    return TOOL_EXIT_USAGE;
  if (error->domain != RECHAIN_ERROR)
    return TOOL_EXIT_FAILURE;
  switch ((RechainError) error->code)
    {
    case RECHAIN_ERROR_INVALID_ARGUMENT:
      return TOOL_EXIT_USAGE;
    case RECHAIN_ERROR_INVALID_IMAGE:
    case RECHAIN_ERROR_UNSUPPORTED:
    case RECHAIN_ERROR_BACKING_NOT_FOUND:
    case RECHAIN_ERROR_READ_ONLY:
    case RECHAIN_ERROR_NOT_PERMITTED:
      return TOOL_EXIT_INVALID_IMAGE;
    case RECHAIN_ERROR_IN_USE:
      return TOOL_EXIT_IN_USE;
    case RECHAIN_ERROR_IO:
    case RECHAIN_ERROR_NO_SPACE:
      return TOOL_EXIT_IO;
    case RECHAIN_ERROR_FAILED:
    default:
      return TOOL_EXIT_FAILURE;
    }
}

/* The stable name of an exit status, for the JSON error object. */
static const char *
exit_code_name (int code)
{
  switch (code)
    {
    case TOOL_EXIT_USAGE: return "usage";
    case TOOL_EXIT_INVALID_IMAGE: return "invalid-image";
    case TOOL_EXIT_IN_USE: return "in-use";
    case TOOL_EXIT_IO: return "io";
    case TOOL_EXIT_CANCELLED: return "cancelled";
    default: return "failed";
    }
}

/* {"error": {"reason": "in-use", "exit-status": 4, "domain": "rechain-error-quark",
 *            "code": 4, "message": "..."}} on one line of stderr. */
static void
print_json_error (const GError *error, int status)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "reason");
  json_builder_add_string_value (builder, exit_code_name (status));
  json_builder_set_member_name (builder, "exit-status");
  json_builder_add_int_value (builder, status);
  json_builder_set_member_name (builder, "domain");
  json_builder_add_string_value (builder, g_quark_to_string (error->domain));
  json_builder_set_member_name (builder, "code");
  json_builder_add_int_value (builder, error->code);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, error->message);
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  g_printerr ("%s\n", text);
}

int
tool_fail (const GError *error)
{
  int status = tool_exit_code (error);

  fflush (stdout); /* what was printed so far comes before the error */
  g_printerr ("rechain: %s\n", error->message);
  if (tool_json_errors)
    print_json_error (error, status);
  return status;
}

int
tool_usage_error (GOptionContext *context, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("rechain: %s\n", message);
  g_printerr (_("Try '%s --help' for more information.\n"), g_get_prgname ());
  if (tool_json_errors)
    {
      g_autoptr(GError) error = g_error_new_literal (G_OPTION_ERROR, G_OPTION_ERROR_FAILED, message);
      print_json_error (error, TOOL_EXIT_USAGE);
    }
  (void) context;
  return TOOL_EXIT_USAGE;
}

gboolean
tool_parse_output (const char *value, ToolOutputFormat *format, GError **error)
{
  if (!value || g_str_equal (value, "human"))
    *format = TOOL_OUTPUT_HUMAN;
  else if (g_str_equal (value, "json"))
    *format = TOOL_OUTPUT_JSON;
  else
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("--output must be 'human' or 'json', not '%s'"), value);
      return FALSE;
    }
  return TRUE;
}

void
tool_source_add_entries (GOptionContext *context, ToolSource *source)
{
  const GOptionEntry entries[] = {
    { "connect", 0, 0, G_OPTION_ARG_STRING, &source->connect_uri, N_("libvirt connection URI: IMAGE names a volume of --pool"), N_("URI") },
    { "pool", 0, 0, G_OPTION_ARG_STRING, &source->pool, N_("libvirt storage pool of the volume"), N_("POOL") },
    { "backing-root", 0, 0, G_OPTION_ARG_FILENAME, &source->backing_root, N_("Refuse backing files that resolve outside DIR"), N_("DIR") },
    { "trust-chain", 0, 0, G_OPTION_ARG_NONE, &source->trust_chain, N_("Follow every file name in the images' headers, even names in images of other users that those users could not open"), NULL },
    { NULL }
  };
  /* GOption copies the entries */
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  tool_keys_add_entries (context, &source->keys);
}

void
tool_source_clear (ToolSource *source)
{
  g_clear_pointer (&source->connect_uri, g_free);
  g_clear_pointer (&source->pool, g_free);
  g_clear_pointer (&source->backing_root, g_free);
  tool_key_options_clear (&source->keys);
}

RechainImage *
tool_source_open (ToolSource *source, const char *arg, const char *format,
                          RechainImageOpenFlags flags, GError **error)
{
  g_autoptr(RechainVolume) volume = NULL;
  g_autoptr(ToolKeys) keys = NULL;
  g_autofree char *path = NULL;
  g_autofree char *fmt = g_strdup (format);

  if (source->trust_chain)
    flags |= RECHAIN_IMAGE_OPEN_TRUST_CHAIN;
  if ((source->connect_uri || source->pool) && !(source->connect_uri && source->pool))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("--connect and --pool go together"));
      return NULL;
    }
  keys = tool_keys_new (&source->keys, error);
  if (!keys)
    return NULL;
  if (source->pool && source->keys.image_opts)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("--image-opts and --pool exclude each other"));
      return NULL;
    }
  if (!source->pool)
    {
      path = tool_keys_image_arg (keys, &source->keys, arg, &fmt, error);
      if (!path || !tool_keys_add_native (keys, &source->keys, error))
        return NULL;
      return rechain_image_open_with_keyring (path, fmt, flags, source->backing_root,
                                              tool_keys_get_keyring (keys), NULL, error);
    }
  if (!tool_keys_add_native (keys, &source->keys, error))
    return NULL;
  volume = rechain_volume_resolve ("libvirt", source->connect_uri, source->pool, arg, NULL, error);
  if (!volume)
    return NULL;
  /* The chain stays in the pools' directories (unless --trust-chain),
   * and under --backing-root as well. libvirt's keys of the encrypted
   * volumes join the keys given here, which take precedence. */
  return rechain_volume_open_image_with_keyring (volume, format, flags, source->backing_root,
                                                 tool_keys_get_keyring (keys), NULL, error);
}

void
tool_print_warnings (const char * const *warnings)
{
  for (; warnings && *warnings; warnings++)
    g_printerr (_("rechain: warning: %s\n"), *warnings);
}

static void
print_help (FILE *out)
{
  fprintf (out, "%s", _("Usage: rechain COMMAND [OPTION…] IMAGE\n\n"
                        "Change the backing file of qcow2 images offline, keeping what the guest sees.\n\n"
                        "Commands:\n"));
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-8s %s\n", commands[i].name, _(commands[i].summary));
  fprintf (out, "%s", _("\nOptions:\n"
                        "  -h, --help       Show this help\n"
                        "  -V, --version    Show the version (--output=json for JSON)\n\n"
                        "Exit status:\n"
                        "  0  success\n"
                        "  1  failure not covered below\n"
                        "  2  usage error: bad option or argument\n"
                        "  3  invalid or unsupported image\n"
                        "  4  in use: another process holds the image\n"
                        "  5  I/O error or no space left\n"
                        "  6  cancelled\n\n"
                        "Run 'rechain COMMAND --help' for the options of a command, "
                        "and see rechain(1).\n"));
}

static void
print_version (gboolean json)
{
  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonGenerator) generator = json_generator_new ();
      g_autoptr(JsonNode) root = NULL;
      g_autofree char *text = NULL;
      g_auto(GStrv) helpers = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, "rechain");
      json_builder_set_member_name (builder, "version");
      json_builder_add_string_value (builder, PACKAGE_VERSION);
      json_builder_set_member_name (builder, "library-version");
      json_builder_add_string_value (builder, rechain_get_version ());
      json_builder_set_member_name (builder, "commands");
      json_builder_begin_array (builder);
      for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
        json_builder_add_string_value (builder, commands[i].name);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "features");
      json_builder_begin_array (builder);
      json_builder_add_string_value (builder, "safe-rebase");
      json_builder_add_string_value (builder, "unsafe-rebase");
      json_builder_add_string_value (builder, "linked-clones");
      json_builder_add_string_value (builder, "dry-run");
      json_builder_add_string_value (builder, "progress-json");
      json_builder_add_string_value (builder, "json-errors");
      json_builder_add_string_value (builder, "copy-offload");
      json_builder_add_string_value (builder, "backing-root");
      json_builder_add_string_value (builder, "trust-chain");
      if (HAVE_ZSTD)
        json_builder_add_string_value (builder, "zstd");
      json_builder_end_array (builder);
      /* what --connect/--pool can use: the volume helpers found */
      json_builder_set_member_name (builder, "volume-helpers");
      json_builder_begin_array (builder);
      helpers = rechain_volume_helper_list ();
      for (gsize i = 0; helpers && helpers[i]; i++)
        json_builder_add_string_value (builder, helpers[i]);
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      json_generator_set_root (generator, root);
      text = json_generator_to_data (generator, NULL);
      printf ("%s\n", text);
    }
  else
    printf ("rechain %s (librechain-1 %s)\n", PACKAGE_VERSION, rechain_get_version ());
}

/* --output=json anywhere before "--": errors are reported in JSON too, even
 * those found before the command's options are parsed. */
static gboolean
wants_json (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--"))
        break;
      if (g_str_equal (argv[i], "--output=json") ||
          (g_str_equal (argv[i], "--output") && i + 1 < argc && g_str_equal (argv[i + 1], "json")))
        return TRUE;
    }
  return FALSE;
}

static const Command *
find_command (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (name, commands[i].name))
      return &commands[i];
  return NULL;
}

static int
run_command (const Command *command, int argc, char **argv)
{
  g_autofree char *prgname = g_strdup_printf ("rechain %s", command->name);

  g_set_prgname (prgname);
  return command->run (argc, argv);
}

static gboolean
is_c_locale (const char *name)
{
  return name == NULL || g_str_equal (name, "C") || g_str_equal (name, "POSIX");
}

static gboolean
env_is_set (const char *name)
{
  const char *value = g_getenv (name);
  return value != NULL && *value != '\0';
}

/* gettext ignores LANGUAGE while LC_MESSAGES is the "C" locale, which is
 * what a process gets when no LANG or LC_* variable is set at all (env -i,
 * a service, a container): "LANGUAGE=pt_BR rechain --help" would print
 * English. Then messages (and, if it is "C" too, the character set, so that
 * the translations can be printed) switch to C.UTF-8, which still sorts,
 * formats numbers and dates like C. An explicit LC_ALL=C, LC_MESSAGES=C
 * or LANG=C keeps its usual meaning: English, whatever LANGUAGE says. */
static void
use_language_in_c_locale (void)
{
  if (!env_is_set ("LANGUAGE") || env_is_set ("LC_ALL") || env_is_set ("LC_MESSAGES") ||
      env_is_set ("LANG") || !is_c_locale (setlocale (LC_MESSAGES, NULL)))
    return;
  if (setlocale (LC_MESSAGES, "C.UTF-8") == NULL)
    return;
  if (is_c_locale (setlocale (LC_CTYPE, NULL)))
    setlocale (LC_CTYPE, "C.UTF-8");
}

int
main (int argc, char **argv)
{
  const Command *command;

  setlocale (LC_ALL, "");
  use_language_in_c_locale ();
  /* the library binds the domain (and honours RECHAIN_LOCALEDIR, for
   * tests); the tool makes it its default one */
  rechain_init_translations ();
  textdomain (GETTEXT_PACKAGE);
  g_set_prgname ("rechain");
  tool_json_errors = wants_json (argc, argv);

  if (argc < 2)
    {
      print_help (stderr);
      return TOOL_EXIT_USAGE;
    }
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") ||
      (g_str_equal (argv[1], "help") && argc == 2))
    {
      print_help (stdout);
      return TOOL_EXIT_OK;
    }
  if (g_str_equal (argv[1], "--version") || g_str_equal (argv[1], "-V"))
    {
      g_autoptr(GError) error = NULL;
      ToolOutputFormat format = TOOL_OUTPUT_HUMAN;

      for (int i = 2; i < argc; i++)
        {
          const char *value = NULL;
          if (g_str_has_prefix (argv[i], "--output="))
            value = argv[i] + strlen ("--output=");
          else if (g_str_equal (argv[i], "--output") && i + 1 < argc)
            value = argv[++i];
          else
            return tool_usage_error (NULL, _("unexpected argument '%s' after --version"),
                                             argv[i]);
          if (!tool_parse_output (value, &format, &error))
            return tool_fail (error);
        }
      print_version (format == TOOL_OUTPUT_JSON);
      return fflush (stdout) == 0 ? TOOL_EXIT_OK : TOOL_EXIT_IO;
    }
  /* "rechain help COMMAND" is "rechain COMMAND --help" */
  if (g_str_equal (argv[1], "help") && argc == 3 && (command = find_command (argv[2])))
    {
      char *help_argv[] = { argv[2], (char *) "--help", NULL };
      return run_command (command, 2, help_argv);
    }

  command = find_command (argv[1]);
  if (command)
    return run_command (command, argc - 1, argv + 1);

  if (argv[1][0] == '-')
    return tool_usage_error (NULL, _("expected a COMMAND before the option '%s'"), argv[1]);
  return tool_usage_error (NULL, _("unknown command '%s'"), argv[1]);
}
