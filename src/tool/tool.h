/* tool.h: shared pieces of the rechain command line.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <glib/gi18n.h>

/* Exit codes, documented in the README and in rechain(1). */
typedef enum {
  RECHAIN_EXIT_OK = 0,
  RECHAIN_EXIT_FAILURE = 1,       /* anything not below */
  RECHAIN_EXIT_USAGE = 2,         /* bad options or arguments */
  RECHAIN_EXIT_INVALID_IMAGE = 3, /* malformed, unsupported or missing image */
  RECHAIN_EXIT_IN_USE = 4,        /* another process holds the image */
  RECHAIN_EXIT_IO = 5,            /* read/write/flush failed, no space */
  RECHAIN_EXIT_CANCELLED = 6,     /* interrupted by a signal */
} RechainExitCode;

typedef enum {
  RECHAIN_OUTPUT_HUMAN,
  RECHAIN_OUTPUT_JSON,
} RechainOutputFormat;

/* Prints "rechain: MESSAGE" to stderr and returns the exit code for @error. */
int rechain_tool_fail (const GError *error);
/* Prints a usage error and returns RECHAIN_EXIT_USAGE. */
int rechain_tool_usage_error (GOptionContext *context, const char *format, ...) G_GNUC_PRINTF (2, 3);
gboolean rechain_tool_parse_output (const char *value, RechainOutputFormat *format, GError **error);
/* Prints the warnings a chain collected while opening. */
void rechain_tool_print_warnings (const char * const *warnings);

int rechain_cmd_info (int argc, char **argv);
int rechain_cmd_map (int argc, char **argv);
int rechain_cmd_rebase (int argc, char **argv);
