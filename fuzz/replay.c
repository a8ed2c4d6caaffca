/* replay: runs a fuzz target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer, so the normal test suite (any compiler, with or without
 * sanitizers) replays the regression corpus fuzz/regression/TARGET/.
 *
 * Usage: replay-TARGET FILE|DIR...   (TAP output: one case per input)
 * Each input must finish within FUZZ_REPLAY_TIMEOUT seconds (default 60):
 * a hang is a failure, like libFuzzer's -timeout.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"

static const char *current;

static void
on_alarm (int sig)
{
  static const char msg[] = "replay: timeout on input ";
  (void) sig;
  (void) !write (2, msg, sizeof msg - 1);
  (void) !write (2, current, strlen (current));
  (void) !write (2, "\n", 1);
  _exit (70);
}

static gint
str_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

int
main (int argc, char **argv)
{
  g_autoptr(GPtrArray) inputs = g_ptr_array_new_with_free_func (g_free);
  const char *t = g_getenv ("FUZZ_REPLAY_TIMEOUT");
  guint timeout = t ? (guint) atoi (t) : 60;

  for (int i = 1; i < argc; i++)
    {
      if (g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          GDir *dir = g_dir_open (argv[i], 0, NULL);
          const char *name;
          g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
          while (dir && (name = g_dir_read_name (dir)))
            if (name[0] != '.' && strcmp (name, "README") != 0)
              g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
          if (dir)
            g_dir_close (dir);
          g_ptr_array_sort (names, str_cmp);
          for (guint k = 0; k < names->len; k++)
            g_ptr_array_add (inputs, g_strdup (g_ptr_array_index (names, k)));
        }
      else
        g_ptr_array_add (inputs, g_strdup (argv[i]));
    }

  signal (SIGALRM, on_alarm);
  printf ("1..%u\n", inputs->len);
  printf ("# fixtures made by %s\n", fuzz_fixtures_made_by ());
  if (inputs->len == 0)
    {
      printf ("# no inputs\n");
      return 0;
    }
  for (guint k = 0; k < inputs->len; k++)
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      g_autoptr(GError) error = NULL;

      current = g_ptr_array_index (inputs, k);
      if (!g_file_get_contents (current, &data, &len, &error))
        {
          printf ("not ok %u - %s: %s\n", k + 1, current, error->message);
          continue;
        }
      fflush (stdout);
      alarm (timeout);
      LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
      alarm (0);
      printf ("ok %u - %s\n", k + 1, current);
    }
  return 0;
}
