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
  TOOL_EXIT_OK = 0,
  TOOL_EXIT_FAILURE = 1,       /* anything not below */
  TOOL_EXIT_USAGE = 2,         /* bad options or arguments */
  TOOL_EXIT_INVALID_IMAGE = 3, /* malformed, unsupported or missing image */
  TOOL_EXIT_IN_USE = 4,        /* another process holds the image */
  TOOL_EXIT_IO = 5,            /* read/write/flush failed, no space */
  TOOL_EXIT_CANCELLED = 6,     /* interrupted by a signal */
} ToolExitCode;

typedef enum {
  TOOL_OUTPUT_HUMAN,
  TOOL_OUTPUT_JSON,
} ToolOutputFormat;

/* Whether errors are also reported as JSON (--output=json anywhere on the
 * command line); set by main() before a command runs. */
extern gboolean tool_json_errors;

/* Prints "rechain: MESSAGE" to stderr (and, with --output=json, a JSON line
 * {"error": {...}} after it) and returns the exit code for @error. */
int tool_fail (const GError *error);
/* The exit code tool_fail() returns for @error. */
int tool_exit_code (const GError *error);
/* Prints a usage error and returns TOOL_EXIT_USAGE. */
int tool_usage_error (GOptionContext *context, const char *format, ...) G_GNUC_PRINTF (2, 3);
gboolean tool_parse_output (const char *value, ToolOutputFormat *format, GError **error);
/* Prints the warnings a chain collected while opening. */
void tool_print_warnings (const char * const *warnings);

/* progress.c: -p, --progress=MODE, --progress-fd=FD */
typedef enum {
  TOOL_PROGRESS_AUTO,  /* BAR on a terminal, PLAIN otherwise */
  TOOL_PROGRESS_BAR,   /* one line redrawn: percent, bar, throughput, ETA */
  TOOL_PROGRESS_PLAIN, /* a line a second */
  TOOL_PROGRESS_JSON,  /* {"bytes-done": N, "bytes-total": N, "progress": F} per line */
} ToolProgressMode;

typedef struct {
  gboolean enabled; /* -p */
  char *mode;       /* --progress=MODE */
  int fd;           /* --progress-fd=FD, -1 if not given */
} ToolProgressOptions;

typedef struct _RechainProgress ToolProgress;

void tool_progress_rewrite_args (int argc, char **argv);
void tool_progress_add_entries (GOptionContext *context, ToolProgressOptions *options);
void tool_progress_options_clear (ToolProgressOptions *options);
gboolean tool_progress_wanted (const ToolProgressOptions *options);
gboolean tool_progress_to_stderr (const ToolProgressOptions *options);
/* NULL without an error when no progress was asked for. */
ToolProgress *tool_progress_new (const ToolProgressOptions *options, GError **error);
void tool_progress_update (ToolProgress *progress, guint64 done, guint64 total);
/* Prints the final 100 % if @complete, else ends a bar's line. */
void tool_progress_end (ToolProgress *progress, gboolean complete);
/* JSON lines only (a no-op otherwise): what became of one image, the
 * moment it is known, in the same stream as the progress lines. */
void tool_progress_image (ToolProgress *progress, const char *image, const char *status,
                          guint64 bytes_written, const char *error);
void tool_progress_free (ToolProgress *progress);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ToolProgress, tool_progress_free)

/* keys.c: passphrases of encrypted images, qemu-img's way (--object
 * secret, --image-opts, -b json:) and the native one (--key-file,
 * --key-secret). */
typedef struct {
  char **objects;     /* --object */
  gboolean image_opts; /* --image-opts: IMAGE arguments are option lists */
  char **key_files;   /* --key-file [IMAGE=]FILE */
  char **key_secrets; /* --key-secret [IMAGE=]ID */
} ToolKeyOptions;

typedef struct _ToolKeys ToolKeys;

void tool_keys_add_entries (GOptionContext *context, ToolKeyOptions *options);
void tool_key_options_clear (ToolKeyOptions *options);
/* Loads every --object secret (RECHAIN_ERROR_INVALID_ARGUMENT for a bad
 * one; no message contains secret data). */
ToolKeys *tool_keys_new (const ToolKeyOptions *options, GError **error);
void tool_keys_free (ToolKeys *keys);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ToolKeys, tool_keys_free)
/* The path an IMAGE argument names: @arg itself, or with --image-opts its
 * file.filename, the keys it names given to the keyring and its driver=
 * to *@format. */
char *tool_keys_image_arg (ToolKeys *keys, const ToolKeyOptions *options, const char *arg,
                           char **format, GError **error);
/* The backing name -b names: @arg itself, or for a json: name its plain
 * file name (written into the header as it is), the keys it names given
 * to the keyring and its driver to *@format. */
char *tool_keys_backing_arg (ToolKeys *keys, const char *image_path, const char *arg,
                             char **format, GError **error);
/* --key-file and --key-secret, after the IMAGE arguments were read. */
gboolean tool_keys_add_native (ToolKeys *keys, const ToolKeyOptions *options, GError **error);
RechainKeyring *tool_keys_get_keyring (ToolKeys *keys);

/* Where info and map find their image: a path, or a libvirt pool volume. */
typedef struct {
  char *connect_uri;
  char *pool;
  char *backing_root;
  gboolean trust_chain;
  ToolKeyOptions keys;
} ToolSource;

void tool_source_add_entries (GOptionContext *context, ToolSource *source);
void tool_source_clear (ToolSource *source);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ToolSource, tool_source_clear)
/* Opens @arg (a path, or with --pool a volume name) with its chain. */
RechainImage *tool_source_open (ToolSource *source, const char *arg,
                                        const char *format, RechainImageOpenFlags flags,
                                        GError **error);

int cmd_info (int argc, char **argv);
int cmd_map (int argc, char **argv);
int cmd_rebase (int argc, char **argv);
