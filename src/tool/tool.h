/* tool.h: shared pieces of the rechain command line.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <glib/gi18n.h>
#include <rechain/rechain.h>

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

/* Whether errors are also reported as JSON (--output=json anywhere on the
 * command line); set by main() before a command runs. */
extern gboolean rechain_tool_json_errors;

/* Prints "rechain: MESSAGE" to stderr (and, with --output=json, a JSON line
 * {"error": {...}} after it) and returns the exit code for @error. */
int rechain_tool_fail (const GError *error);
/* The exit code rechain_tool_fail() returns for @error. */
int rechain_tool_exit_code (const GError *error);
/* Prints a usage error and returns RECHAIN_EXIT_USAGE. */
int rechain_tool_usage_error (GOptionContext *context, const char *format, ...) G_GNUC_PRINTF (2, 3);
gboolean rechain_tool_parse_output (const char *value, RechainOutputFormat *format, GError **error);
/* Prints the warnings a chain collected while opening. */
void rechain_tool_print_warnings (const char * const *warnings);

/* progress.c: -p, --progress=MODE, --progress-fd=FD */
typedef enum {
  RECHAIN_PROGRESS_AUTO,  /* BAR on a terminal, PLAIN otherwise */
  RECHAIN_PROGRESS_BAR,   /* one line redrawn: percent, bar, throughput, ETA */
  RECHAIN_PROGRESS_PLAIN, /* a line a second */
  RECHAIN_PROGRESS_JSON,  /* {"bytes-done": N, "bytes-total": N, "progress": F} per line */
} RechainProgressMode;

typedef struct {
  gboolean enabled; /* -p */
  char *mode;       /* --progress=MODE */
  int fd;           /* --progress-fd=FD, -1 if not given */
} RechainProgressOptions;

typedef struct _RechainProgress RechainProgress;

void rechain_tool_progress_rewrite_args (int argc, char **argv);
void rechain_tool_progress_add_entries (GOptionContext *context, RechainProgressOptions *options);
void rechain_tool_progress_options_clear (RechainProgressOptions *options);
gboolean rechain_tool_progress_wanted (const RechainProgressOptions *options);
gboolean rechain_tool_progress_to_stderr (const RechainProgressOptions *options);
/* NULL without an error when no progress was asked for. */
RechainProgress *rechain_progress_new (const RechainProgressOptions *options, GError **error);
void rechain_progress_update (RechainProgress *progress, guint64 done, guint64 total);
/* Prints the final 100 % if @complete, else ends a bar's line. */
void rechain_progress_end (RechainProgress *progress, gboolean complete);
void rechain_progress_free (RechainProgress *progress);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainProgress, rechain_progress_free)

/* Where info and map find their image: a path, or a libvirt pool volume. */
typedef struct {
  char *connect_uri;
  char *pool;
  char *backing_root;
  gboolean trust_chain;
} RechainToolSource;

void rechain_tool_source_add_entries (GOptionContext *context, RechainToolSource *source);
void rechain_tool_source_clear (RechainToolSource *source);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (RechainToolSource, rechain_tool_source_clear)
/* Opens @arg (a path, or with --pool a volume name) with its chain. */
RechainImage *rechain_tool_source_open (RechainToolSource *source, const char *arg,
                                        const char *format, RechainImageOpenFlags flags,
                                        GError **error);

int rechain_cmd_info (int argc, char **argv);
int rechain_cmd_map (int argc, char **argv);
int rechain_cmd_rebase (int argc, char **argv);
