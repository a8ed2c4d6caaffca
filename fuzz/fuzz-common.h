/* fuzz-common.h: shared setup of the fuzz targets (libFuzzer entry point
 * LLVMFuzzerTestOneInput; the same sources build a replay driver with any
 * compiler, see replay.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Once per process: GLib log policy (criticals abort, warnings are
 * dropped), and a private temporary directory holding the fixed images
 * base.qcow2, new.qcow2 and base.raw (removed at exit). */
void fuzz_init (void);
/* The `qemu-img --version` line of the QEMU that made base.qcow2 and
 * new.qcow2 at build time (fuzz/make-fixtures.sh). */
const char *fuzz_fixtures_made_by (void);
/* The temporary directory. */
const char *fuzz_dir (void);
/* Writes @data to fuzz_dir()/@name (replacing it); returns the path. */
char *fuzz_write_file (const char *name, const uint8_t *data, size_t size);

/* A fuzzer-found bug: prints and aborts, so libFuzzer records the input. */
#define FUZZ_BUG(...) \
  do { g_printerr ("FUZZ BUG (%s:%d): ", __FILE__, __LINE__); \
       g_printerr (__VA_ARGS__); g_printerr ("\n"); abort (); } while (0)

/* Every failure must be a GError of the rechain domain with a message. */
void fuzz_check_error (GError *error, const char *what);
