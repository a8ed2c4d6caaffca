/* fault-spec.h: the RECHAIN_FAULT rule language (fault-spec.c), for the
 * fault shim (fault-shim.c). Parsing only: what a rule does when it
 * matches is the shim's business, and CRASH is fault-crash.c's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  FAULT_KIND_READ,
  FAULT_KIND_WRITE,
  FAULT_KIND_FLUSH,
  FAULT_KIND_ANY,
  FAULT_KIND_BACKGROUND_FLUSH,
  FAULT_N_KINDS,
} FaultKind;

/* Actions other than an errno value (all negative). */
#define FAULT_ACTION_KILL (-1)
#define FAULT_ACTION_CRASH (-2)        /* random subset of the unflushed writes survives */
#define FAULT_ACTION_CRASH_REVERT (-3) /* none survives */
#define FAULT_ACTION_CRASH_KEEP (-4)   /* all survive */
#define FAULT_ACTION_CRASH_MASK (-5)   /* those RECHAIN_FAULT_CRASH_MASK names survive */

#define FAULT_IS_CRASH(a) ((a) <= FAULT_ACTION_CRASH && (a) >= FAULT_ACTION_CRASH_MASK)

#define FAULT_CRASH_MAX_DEFAULT (G_GUINT64_CONSTANT (256) << 20)

typedef struct {
  FaultKind kind;
  guint n;
  gboolean and_later; /* "N+" */
  int action;         /* an errno value, or FAULT_ACTION_* */
  char *pattern;      /* glob on the path, or NULL */
  gboolean pattern_has_slash;
  guint count;        /* matching operations so far (the shim's) */
} FaultRule;

/* Everything the environment says. */
typedef struct {
  GArray *rules;      /* of FaultRule; NULL: RECHAIN_FAULT unset or invalid */
  gboolean any_crash; /* a rule has a CRASH action */
  guint64 seed;       /* RECHAIN_FAULT_SEED, default 1 */
  guint64 crash_max;  /* RECHAIN_FAULT_CRASH_MAX, default 256M */
  char *mask;         /* RECHAIN_FAULT_CRASH_MASK, or NULL */
  char *log_path;     /* RECHAIN_FAULT_LOG, or NULL */
} FaultSpec;

/* Reads RECHAIN_FAULT, RECHAIN_FAULT_SEED, RECHAIN_FAULT_CRASH_MAX,
 * RECHAIN_FAULT_CRASH_MASK and RECHAIN_FAULT_LOG into @spec (cleared
 * first). An invalid RECHAIN_FAULT (or seed, or bound, or mask) is warned
 * about and ignored as a whole, so a typo never injects half of what was
 * meant. */
void fault_spec_load (FaultSpec *spec);
void fault_spec_clear (FaultSpec *spec);

/* TRUE if @rule counts operations on @path. */
gboolean fault_rule_matches_path (const FaultRule *rule, const char *path);

G_END_DECLS
