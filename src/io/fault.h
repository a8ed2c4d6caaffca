/* fault.h: the io layer's fault-injection hooks (fault.c), for file.c and
 * the tests. Nothing above the io layer calls these.
 *
 * The rules (RECHAIN_FAULT) are documented in fault.c and file.h. Besides
 * failing or killing, an operation may "crash": the process models a power
 * loss, see RECHAIN_FAULT_CRASH_STATUS below.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "io/file-private.h"

G_BEGIN_DECLS

/* Exit status of a process that a CRASH, CRASH-REVERT, CRASH-KEEP or
 * CRASH-MASK action stopped, after putting writes not yet made durable by
 * a flush back to what they overwrote (all of them, none, a subset chosen
 * at random with RECHAIN_FAULT_SEED, or the one RECHAIN_FAULT_CRASH_MASK
 * names). */
#define RECHAIN_FAULT_CRASH_STATUS 86

/* Called by file.c after every write or flush that rechain_fault_check()
 * let through (and harmless after one it failed): @err is 0 if the
 * operation succeeded, or its errno value. A successful flush makes the
 * file's earlier writes durable, so that a crash keeps them; a successful
 * write through O_DSYNC (cache modes writethrough, directsync) is durable at
 * once. Costs one atomic load when RECHAIN_FAULT is unset. */
void rechain_fault_done (RechainFile *file, RechainFaultOp op, int err);

/* Bytes of pre-images the crash log holds now (tests). */
guint64 rechain_fault_crash_log_bytes (void);

G_END_DECLS
