/* fault-shim.h: what C tests that load the fault shim (fault-shim.c) may
 * call in it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Exit status of a process that a CRASH, CRASH-REVERT, CRASH-KEEP or
 * CRASH-MASK action stopped (see fault-crash.c). */
#define RECHAIN_FAULT_CRASH_STATUS 86

/* Re-reads the environment and restarts the counts (tests change the
 * variables between cases). */
void rechain_fault_reset (void);

/* Bytes of pre-images the crash log holds now. */
guint64 rechain_fault_crash_log_bytes (void);

G_END_DECLS
