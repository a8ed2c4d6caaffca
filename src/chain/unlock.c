/* unlock.c: unlocking the LUKS layers of the chains a job works on, each
 * with its own key, on threads of their own.
 *
 * An unlock is PBKDF2 over each key slot tried, seconds of CPU at QEMU's
 * default iter-time; the layers of a chain are independent, so they are
 * unlocked at once (qemu-img unlocks them one after another), and a file
 * in several chains (the old and the new chain share their lower layers)
 * is unlocked once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <sys/stat.h>

#include "chain/chain.h"
#include "rechain/rechain-error.h"

typedef struct {
  RechainLayer *layer;
  const guint8 *passphrase;
  gsize len;
  GError *error;
} Unlock;

static void
unlock_one (gpointer data, gpointer user_data)
{
  Unlock *u = data;

  rechain_layer_unlock (u->layer, u->passphrase, u->len, &u->error);
}

/* The first of @unique that is the same file as @layer, or NULL. */
static RechainLayer *
find_same (GPtrArray *unique, RechainLayer *layer)
{
  struct stat st;

  if (fstat (rechain_file_get_fd (rechain_layer_get_file (layer)), &st) < 0)
    return NULL;
  for (guint i = 0; i < unique->len; i++)
    if (rechain_layer_same_file (g_ptr_array_index (unique, i), st.st_dev, st.st_ino))
      return g_ptr_array_index (unique, i);
  return NULL;
}

gboolean
rechain_chains_unlock (RechainChain * const *chains, guint n_chains,
                       const RechainKeyLookup *keys, GError **error)
{
  return rechain_chains_unlock_except (chains, n_chains, NULL, keys, error);
}

gboolean
rechain_chains_unlock_except (RechainChain * const *chains, guint n_chains,
                              RechainChain *except, const RechainKeyLookup *keys,
                              GError **error)
{
  g_autoptr(GPtrArray) unique = g_ptr_array_new ();
  g_autoptr(GArray) jobs = g_array_new (FALSE, TRUE, sizeof (Unlock));
  gboolean ok = TRUE;

  /* Every LUKS file once, in chain order; a missing key is refused before
   * any PBKDF2 is spent, naming the first image without one. */
  for (guint c = 0; c < n_chains; c++)
    for (guint d = 0; chains[c] && d < rechain_chain_get_depth (chains[c]); d++)
      {
        RechainLayer *layer = rechain_chain_get_layer (chains[c], d);
        Unlock u = { layer };

        if (rechain_layer_get_encryption (layer) != RECHAIN_LAYER_ENCRYPTION_LUKS ||
            rechain_layer_is_unlocked (layer) || find_same (unique, layer) ||
            rechain_chain_contains (except, layer))
          continue;
        if (!rechain_layer_lookup_key (layer, keys, &u.passphrase, &u.len))
          return rechain_layer_check_data_access (layer, error);
        g_ptr_array_add (unique, layer);
        g_array_append_val (jobs, u);
      }

  if (jobs->len == 1)
    unlock_one (&g_array_index (jobs, Unlock, 0), NULL);
  else if (jobs->len > 1)
    {
      /* A thread for every layer, even beyond the CPUs: the unlocks are
       * equal lumps of CPU, and with as many threads as CPUs the lumps
       * that do not fit run after the others (3 layers on 2 CPUs: two
       * unlock times), where sharing the CPUs between them all ends them
       * together (1.5 unlock times). */
      GThreadPool *pool = g_thread_pool_new (unlock_one, NULL, (gint) jobs->len, FALSE, NULL);
      for (guint i = 0; i < jobs->len; i++)
        g_thread_pool_push (pool, &g_array_index (jobs, Unlock, i), NULL);
      g_thread_pool_free (pool, FALSE, TRUE);
    }

  /* the first failure in chain order is the one reported */
  for (guint i = 0; i < jobs->len; i++)
    {
      Unlock *u = &g_array_index (jobs, Unlock, i);
      if (u->error && ok)
        {
          g_propagate_error (error, g_steal_pointer (&u->error));
          ok = FALSE;
        }
      g_clear_error (&u->error);
    }
  if (!ok)
    return FALSE;

  for (guint c = 0; c < n_chains; c++)
    for (guint d = 0; chains[c] && d < rechain_chain_get_depth (chains[c]); d++)
      {
        RechainLayer *layer = rechain_chain_get_layer (chains[c], d);
        RechainLayer *same;

        if (rechain_layer_get_encryption (layer) != RECHAIN_LAYER_ENCRYPTION_LUKS ||
            rechain_layer_is_unlocked (layer))
          continue;
        same = find_same (unique, layer);
        if (same)
          rechain_layer_share_key (layer, same);
      }
  return TRUE;
}
