/* qemu-fixture.h: test fixtures made by QEMU's own tools.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

/* A fresh temporary directory, removed by qemu_fixture_tmpdir_free(). */
char *qemu_fixture_tmpdir_new (void);
void qemu_fixture_tmpdir_free (char *dir);

/* Runs a shell command line in @dir (printf-style); fails the test if it
 * exits non-zero. Returns its standard output. */
char *qemu_fixture_run (const char *dir, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* Like qemu_fixture_run() but returns the exit status instead of failing. */
int qemu_fixture_try (const char *dir, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Whether qemu-img and qemu-io are available (skips the test if not). */
gboolean qemu_fixture_require_qemu (void);
