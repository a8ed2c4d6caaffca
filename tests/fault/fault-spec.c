/* fault-spec.c: parsing RECHAIN_FAULT and the variables that go with it.
 *
 *   RECHAIN_FAULT=KIND:N:ACTION[:FILE][,KIND:N:ACTION[:FILE]...]
 *     KIND    write | flush | read | any (writes and flushes together)
 *             | background-flush (only an errno or KILL)
 *     N       1-based, or "N+" for the Nth and every later one
 *     ACTION  EIO | ENOSPC | EDQUOT | EFBIG | KILL
 *             | CRASH | CRASH-REVERT | CRASH-KEEP | CRASH-MASK
 *     FILE    a glob on the path (or, without '/', also on the base name)
 *   RECHAIN_FAULT_SEED, RECHAIN_FAULT_CRASH_MASK, RECHAIN_FAULT_CRASH_MAX,
 *   RECHAIN_FAULT_LOG: see fault-shim.c, which documents what they do.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <string.h>

#include "fault-spec.h"

static const char *const kind_names[FAULT_N_KINDS] = {
  [FAULT_KIND_READ] = "read",
  [FAULT_KIND_WRITE] = "write",
  [FAULT_KIND_FLUSH] = "flush",
  [FAULT_KIND_ANY] = "any",
  [FAULT_KIND_BACKGROUND_FLUSH] = "background-flush",
};

static gboolean
parse_action (const char *s, int *action)
{
  static const struct { const char *name; int value; } actions[] = {
    { "EIO", EIO },
    { "ENOSPC", ENOSPC },
    { "EDQUOT", EDQUOT },
    { "EFBIG", EFBIG },
    { "KILL", FAULT_ACTION_KILL },
    { "CRASH", FAULT_ACTION_CRASH },
    { "CRASH-REVERT", FAULT_ACTION_CRASH_REVERT },
    { "CRASH-KEEP", FAULT_ACTION_CRASH_KEEP },
    { "CRASH-MASK", FAULT_ACTION_CRASH_MASK },
  };

  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    {
      if (strcmp (s, actions[i].name) == 0)
        {
          *action = actions[i].value;
          return TRUE;
        }
    }
  return FALSE;
}

static gboolean
parse_rule (const char *text, FaultRule *rule)
{
  g_auto (GStrv) parts = g_strsplit (text, ":", 4);
  g_autofree char *number = NULL;
  guint64 n;
  guint k;

  memset (rule, 0, sizeof *rule);
  if (g_strv_length (parts) < 3)
    return FALSE;
  for (k = 0; k < FAULT_N_KINDS; k++)
    if (strcmp (parts[0], kind_names[k]) == 0)
      break;
  if (k == FAULT_N_KINDS)
    return FALSE;
  number = g_strdup (parts[1]);
  if (g_str_has_suffix (number, "+"))
    {
      rule->and_later = TRUE;
      number[strlen (number) - 1] = '\0';
    }
  if (!g_ascii_string_to_unsigned (number, 10, 1, G_MAXINT, &n, NULL))
    return FALSE;
  if (!parse_action (parts[2], &rule->action))
    return FALSE;
  /* a power loss in the middle of the writer thread's work, from a
   * thread that knows nothing of it, would model nothing real */
  if (k == FAULT_KIND_BACKGROUND_FLUSH && FAULT_IS_CRASH (rule->action))
    return FALSE;
  if (parts[3] != NULL)
    {
      if (*parts[3] == '\0')
        return FALSE;
      rule->pattern = g_strdup (parts[3]);
      rule->pattern_has_slash = strchr (parts[3], '/') != NULL;
    }
  rule->kind = (FaultKind) k;
  rule->n = (guint) n;
  return TRUE;
}

static void
rule_clear (gpointer p)
{
  g_free (((FaultRule *) p)->pattern);
}

/* "256M" and the like; FALSE if it is not a size. */
static gboolean
parse_size (const char *s, guint64 *out)
{
  char *end = NULL;
  guint64 v;
  guint shift = 0;

  if (!g_ascii_isdigit (*s))
    return FALSE;
  v = g_ascii_strtoull (s, &end, 10);
  switch (*end)
    {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return FALSE;
    }
  if (*end != '\0' || v == 0 || v > (G_MAXUINT64 >> shift))
    return FALSE;
  *out = v << shift;
  return TRUE;
}

void
fault_spec_clear (FaultSpec *spec)
{
  g_clear_pointer (&spec->rules, g_array_unref);
  g_clear_pointer (&spec->mask, g_free);
  g_clear_pointer (&spec->log_path, g_free);
  spec->any_crash = FALSE;
  spec->seed = 1;
  spec->crash_max = FAULT_CRASH_MAX_DEFAULT;
}

void
fault_spec_load (FaultSpec *spec)
{
  const char *text = g_getenv ("RECHAIN_FAULT");
  const char *log_path = g_getenv ("RECHAIN_FAULT_LOG");
  const char *seed = g_getenv ("RECHAIN_FAULT_SEED");
  const char *max = g_getenv ("RECHAIN_FAULT_CRASH_MAX");
  const char *mask = g_getenv ("RECHAIN_FAULT_CRASH_MASK");

  fault_spec_clear (spec);
  if (log_path != NULL && *log_path != '\0')
    spec->log_path = g_strdup (log_path);
  if (text == NULL || *text == '\0')
    return;

  g_auto (GStrv) items = g_strsplit (text, ",", -1);
  GArray *rules = g_array_new (FALSE, FALSE, sizeof (FaultRule));
  gboolean valid = TRUE;
  gboolean any_crash = FALSE;
  const char *why = NULL;

  g_array_set_clear_func (rules, rule_clear);
  for (guint i = 0; items[i] != NULL; i++)
    {
      FaultRule rule;

      if (!parse_rule (g_strstrip (items[i]), &rule))
        {
          rule_clear (&rule);
          valid = FALSE;
          break;
        }
      any_crash = any_crash || FAULT_IS_CRASH (rule.action);
      g_array_append_val (rules, rule);
    }
  if (valid && seed != NULL && *seed != '\0' &&
      !g_ascii_string_to_unsigned (seed, 10, 0, G_MAXUINT64, &spec->seed, NULL))
    {
      valid = FALSE;
      why = "RECHAIN_FAULT_SEED is not a number";
    }
  if (valid && max != NULL && *max != '\0' && !parse_size (max, &spec->crash_max))
    {
      valid = FALSE;
      why = "RECHAIN_FAULT_CRASH_MAX is not a size";
    }
  if (valid && mask != NULL && mask[strspn (mask, "01")] != '\0')
    {
      valid = FALSE;
      why = "RECHAIN_FAULT_CRASH_MASK is not a string of 0 and 1";
    }
  if (valid)
    {
      spec->mask = g_strdup (mask);
      spec->rules = rules;
      spec->any_crash = any_crash;
    }
  else
    {
      g_array_unref (rules);
      spec->seed = 1;
      spec->crash_max = FAULT_CRASH_MAX_DEFAULT;
      g_warning ("Ignoring invalid RECHAIN_FAULT '%s' (%s)", text,
                 why ? why
                     : "expected write|flush|read|any:N[+]:EIO|ENOSPC|EDQUOT|EFBIG|KILL"
                       "|CRASH|CRASH-REVERT|CRASH-KEEP|CRASH-MASK[:FILE]");
    }
}

gboolean
fault_rule_matches_path (const FaultRule *rule, const char *path)
{
  g_autofree char *base = NULL;

  if (rule->pattern == NULL || g_pattern_match_simple (rule->pattern, path))
    return TRUE;
  if (rule->pattern_has_slash)
    return FALSE;
  base = g_path_get_basename (path);
  return g_pattern_match_simple (rule->pattern, base);
}
