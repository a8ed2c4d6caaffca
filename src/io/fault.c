/* fault.c: fault injection for tests (RECHAIN_FAULT, RECHAIN_FAULT_LOG).
 *
 * Crash-consistency tests need to stop rechain at every write and flush it
 * does; this makes the Nth such operation of the process fail with a given
 * errno or kill the process, and can log every counted operation so that a
 * test first learns how many there are.
 *
 *   RECHAIN_FAULT=KIND:N:ACTION[,KIND:N:ACTION...]
 *     KIND    write | flush | read | any (any = writes and flushes together)
 *     N       1-based number of the operation of that kind in the process
 *     ACTION  EIO | ENOSPC | EDQUOT | EFBIG | KILL
 *   RECHAIN_FAULT_LOG=FILE
 *     appends "write PATH OFFSET LENGTH", "flush PATH" or
 *     "read PATH OFFSET LENGTH" for every operation, before it happens.
 *
 * Only the Nth operation fails; the ones after it go through, as a
 * transient error would. The environment is read once, lazily, on the
 * first operation; rechain_fault_reset() reads it again and restarts the
 * counts (tests change the variables between cases).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "io/file-private.h"

typedef enum {
  KIND_READ,
  KIND_WRITE,
  KIND_FLUSH,
  KIND_ANY,
  N_KINDS,
} FaultKind;

static const char *const kind_names[N_KINDS] = {
  [KIND_READ] = "read",
  [KIND_WRITE] = "write",
  [KIND_FLUSH] = "flush",
  [KIND_ANY] = "any",
};

#define ACTION_KILL (-1)

typedef struct {
  FaultKind kind;
  guint n;
  int action; /* an errno value, or ACTION_KILL */
} FaultRule;

enum {
  STATE_UNKNOWN = 0, /* environment not read yet */
  STATE_OFF,         /* neither variable set: nothing to do */
  STATE_ON,
};

/* The fast path reads only this. */
static gint fault_state = STATE_UNKNOWN;

/* The configuration, written under fault_lock by load_config() and read
 * under it by the slow path (tests only, so a mutex costs nothing). */
static GMutex fault_lock;
static GArray *fault_rules;  /* of FaultRule */
static int fault_log_fd = -1;

/* Operations counted so far, per kind. */
static gint fault_counts[N_KINDS];

static gboolean
parse_action (const char *s, int *action)
{
  static const struct { const char *name; int value; } actions[] = {
    { "EIO", EIO },
    { "ENOSPC", ENOSPC },
    { "EDQUOT", EDQUOT },
    { "EFBIG", EFBIG },
    { "KILL", ACTION_KILL },
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
  g_auto (GStrv) parts = g_strsplit (text, ":", -1);
  guint64 n;
  guint k;

  if (g_strv_length (parts) != 3)
    return FALSE;
  for (k = 0; k < N_KINDS; k++)
    if (strcmp (parts[0], kind_names[k]) == 0)
      break;
  if (k == N_KINDS)
    return FALSE;
  if (!g_ascii_string_to_unsigned (parts[1], 10, 1, G_MAXINT, &n, NULL))
    return FALSE;
  if (!parse_action (parts[2], &rule->action))
    return FALSE;
  rule->kind = (FaultKind) k;
  rule->n = (guint) n;
  return TRUE;
}

/* (Re)reads the environment. Invalid RECHAIN_FAULT is warned about (once
 * per reading) and ignored as a whole, so a typo never injects half of what
 * was meant. */
static void
load_config (void)
{
  const char *spec = g_getenv ("RECHAIN_FAULT");
  const char *log_path = g_getenv ("RECHAIN_FAULT_LOG");
  gboolean on = FALSE;

  g_mutex_lock (&fault_lock);

  g_clear_pointer (&fault_rules, g_array_unref);
  if (fault_log_fd >= 0)
    {
      close (fault_log_fd);
      fault_log_fd = -1;
    }
  for (guint k = 0; k < N_KINDS; k++)
    g_atomic_int_set (&fault_counts[k], 0);

  if (spec != NULL && *spec != '\0')
    {
      g_auto (GStrv) items = g_strsplit (spec, ",", -1);
      GArray *rules = g_array_new (FALSE, FALSE, sizeof (FaultRule));
      gboolean valid = TRUE;

      for (guint i = 0; items[i] != NULL; i++)
        {
          FaultRule rule;

          if (!parse_rule (g_strstrip (items[i]), &rule))
            {
              valid = FALSE;
              break;
            }
          g_array_append_val (rules, rule);
        }
      if (valid)
        {
          fault_rules = rules;
          on = TRUE;
        }
      else
        {
          g_array_unref (rules);
          g_warning ("Ignoring invalid RECHAIN_FAULT '%s' (expected "
                     "write|flush|read|any:N:EIO|ENOSPC|EDQUOT|EFBIG|KILL)",
                     spec);
        }
    }

  if (log_path != NULL && *log_path != '\0')
    {
      fault_log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                           0644);
      if (fault_log_fd < 0)
        g_warning ("Cannot open RECHAIN_FAULT_LOG '%s': %s", log_path,
                   g_strerror (errno));
      else
        on = TRUE;
    }

  g_atomic_int_set (&fault_state, on ? STATE_ON : STATE_OFF);
  g_mutex_unlock (&fault_lock);
}

void
rechain_fault_reset (void)
{
  load_config ();
}

static void
log_operation (RechainFaultOp op, const char *path, guint64 offset, gsize len)
{
  g_autofree char *line = NULL;
  gsize line_len;

  if (op == RECHAIN_FAULT_OP_FLUSH)
    line = g_strdup_printf ("flush %s\n", path);
  else
    line = g_strdup_printf ("%s %s %" G_GUINT64_FORMAT " %" G_GSIZE_FORMAT "\n",
                            op == RECHAIN_FAULT_OP_READ ? "read" : "write",
                            path, offset, len);
  line_len = strlen (line);
  /* One write() per line on an O_APPEND descriptor: lines of concurrent
   * threads or processes never interleave. A failed log write is not worth
   * failing the operation for. */
  if (write (fault_log_fd, line, line_len) != (ssize_t) line_len)
    g_debug ("RECHAIN_FAULT_LOG write failed");
}

int
rechain_fault_check (RechainFaultOp op, const char *path,
                     guint64 offset, gsize len)
{
  gint state = g_atomic_int_get (&fault_state);
  FaultKind kind;
  gint count, any_count = 0;
  int result = 0;

  if (G_LIKELY (state == STATE_OFF))
    return 0;
  if (state == STATE_UNKNOWN)
    {
      static gsize loaded = 0;

      if (g_once_init_enter (&loaded))
        {
          load_config ();
          g_once_init_leave (&loaded, 1);
        }
      if (g_atomic_int_get (&fault_state) != STATE_ON)
        return 0;
    }

  kind = op == RECHAIN_FAULT_OP_READ ? KIND_READ
       : op == RECHAIN_FAULT_OP_WRITE ? KIND_WRITE : KIND_FLUSH;
  /* g_atomic_int_add returns the old value: this operation's number is
   * one more. */
  count = g_atomic_int_add (&fault_counts[kind], 1) + 1;
  if (kind != KIND_READ)
    any_count = g_atomic_int_add (&fault_counts[KIND_ANY], 1) + 1;

  g_mutex_lock (&fault_lock);
  if (fault_log_fd >= 0)
    log_operation (op, path, offset, len);
  for (guint i = 0; fault_rules != NULL && i < fault_rules->len; i++)
    {
      const FaultRule *rule = &g_array_index (fault_rules, FaultRule, i);
      gboolean hit = rule->kind == KIND_ANY
                       ? (kind != KIND_READ && (guint) any_count == rule->n)
                       : (rule->kind == kind && (guint) count == rule->n);

      if (hit)
        {
          result = rule->action;
          break;
        }
    }
  g_mutex_unlock (&fault_lock);

  if (result == ACTION_KILL)
    {
      /* SIGKILL cannot be caught: the process stops here as if the
       * machine had lost power (minus the page cache). */
      kill (getpid (), SIGKILL);
      /* Not reached; but never go on with the operation. */
      abort ();
    }
  return result;
}
