/* rechain-fleet.c: RechainFleet, the hosts that share storage pools. An
 * image is in use when a domain of any host uses it (libvirt's domain
 * lists are per daemon), and a pool's refresh is per daemon too, so a
 * fleet asks and tells every host. The pool-wide selection of linked
 * clones reads each volume's backing name from its own header, which is
 * what QEMU opens (libvirt's volume XML is only as fresh as its last pool
 * refresh).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "rechain/rechain-fleet.h"
#include "rechain/rechain-fleet-private.h"
#include "rechain/rechain-rebase-job-private.h"
#include "rechain/rechain-volume-helper-private.h"
#include "rechain/rechain-block-job.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-image.h"
#include "rechain/rechain-rebase-stats.h"
#include "rechain/rechain-util.h"
#include "rechain/rechain-i18n-private.h"

G_DEFINE_FLAGS_TYPE (RechainFleetRebaseFlags, rechain_fleet_rebase_flags,
                     G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_REBASE_NONE, "none"),
                     G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_REBASE_STRICT, "strict"),
                     G_DEFINE_ENUM_VALUE (RECHAIN_FLEET_REBASE_SKIP_IN_USE, "skip-in-use"))

typedef struct {
  RechainVolumeHelper *helper;
  char *name; /* the host, for messages */
  char *uri;
} Host;

static void
host_free (gpointer p)
{
  Host *h = p;
  g_clear_object (&h->helper);
  g_free (h->name);
  g_free (h->uri);
  g_free (h);
}

/**
 * RechainFleet:
 *
 * The hosts that share storage pools (an NFS, CephFS or cluster file
 * system mounted at the same place on each), as connections of volume
 * helpers (one libvirt daemon each): the domains of every host are asked
 * whether they use an image, linked clones of a template are selected
 * pool-wide, and after a rebase the pool is refreshed on every host that
 * has it.
 *
 * A host is named in messages by the host part of its URI
 * ("qemu+ssh://h2/system": "h2"), or, for a URI without one (a daemon of
 * this machine, "qemu:///system"), by this machine's name; the URI
 * follows in parentheses.
 *
 * The methods are not thread-safe: call them from one thread at a time
 * (rechain_fleet_rebase_async() works on a worker thread until it
 * completes; do not add hosts meanwhile).
 *
 * Since: 0.2
 */
struct _RechainFleet {
  GObject parent_instance;
  GPtrArray *hosts; /* of Host */
  GPtrArray *warnings;
  gboolean skip_unreachable;
};

G_DEFINE_FINAL_TYPE (RechainFleet, rechain_fleet, G_TYPE_OBJECT)

static void
rechain_fleet_finalize (GObject *object)
{
  RechainFleet *self = RECHAIN_FLEET (object);
  g_ptr_array_unref (self->hosts);
  g_ptr_array_unref (self->warnings);
  G_OBJECT_CLASS (rechain_fleet_parent_class)->finalize (object);
}

static guint rebase_started_signal;

static void
rechain_fleet_class_init (RechainFleetClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = rechain_fleet_finalize;

  /**
   * RechainFleet::rebase-started:
   * @fleet: the fleet
   * @job: the job that moves the volumes not skipped, about to run
   *
   * Emitted by rechain_fleet_rebase_async(), in the thread-default main
   * context of its caller, once every host was asked and before the job
   * writes anything: connect to the job's #RechainBlockJob:progress and
   * #RechainRebaseJob::image-finished here (their emissions come in that
   * context too). Not emitted when no volume is left to move.
   *
   * Since: 0.2
   */
  rebase_started_signal = g_signal_new ("rebase-started", G_TYPE_FROM_CLASS (klass),
                                        G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                        RECHAIN_TYPE_REBASE_JOB);
}

static void
rechain_fleet_init (RechainFleet *self)
{
  self->hosts = g_ptr_array_new_with_free_func (host_free);
  self->warnings = g_ptr_array_new_with_free_func (g_free);
}

/**
 * rechain_fleet_new:
 *
 * Returns: (transfer full): a fleet with no host yet
 *
 * Since: 0.2
 */
RechainFleet *
rechain_fleet_new (void)
{
  return g_object_new (RECHAIN_TYPE_FLEET, NULL);
}

/**
 * rechain_fleet_set_skip_unreachable:
 * @fleet: a fleet
 * @skip: whether a host that cannot be reached is left out with a warning
 *
 * By default rechain_fleet_add_host() fails for a host that cannot be
 * reached: its domains could be using the images. With @skip, the host is
 * left out and a warning names it (rechain_fleet_get_warnings()).
 *
 * Since: 0.2
 */
void
rechain_fleet_set_skip_unreachable (RechainFleet *fleet, gboolean skip)
{
  g_return_if_fail (RECHAIN_IS_FLEET (fleet));
  fleet->skip_unreachable = skip;
}

/**
 * rechain_fleet_get_skip_unreachable:
 * @fleet: a fleet
 *
 * Returns: whether unreachable hosts are skipped
 *
 * Since: 0.2
 */
gboolean
rechain_fleet_get_skip_unreachable (RechainFleet *fleet)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), FALSE);
  return fleet->skip_unreachable;
}

static char *
host_name_of (const char *uri)
{
  if (uri != NULL)
    {
      g_autoptr (GUri) u = g_uri_parse (uri, G_URI_FLAGS_NON_DNS | G_URI_FLAGS_ENCODED, NULL);
      const char *host = u ? g_uri_get_host (u) : NULL;
      if (host != NULL && *host != '\0')
        return g_strdup (host);
    }
  return g_strdup (g_get_host_name ());
}

static void
add (RechainFleet *fleet, RechainVolumeHelper *helper, const char *asked_uri)
{
  Host *h = g_new0 (Host, 1);
  h->helper = g_object_ref (helper);
  const char *uri = rechain_volume_helper_get_uri (helper);
  /* the URI as the user gave it names the host best; the connected one
   * when none was given */
  h->uri = g_strdup (asked_uri ? asked_uri : uri);
  h->name = host_name_of (h->uri);
  g_ptr_array_add (fleet->hosts, h);
}

/**
 * rechain_fleet_add_host:
 * @fleet: a fleet
 * @uri: a libvirt connection URI ("qemu+ssh://h2/system", "qemu:///system")
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Connects to the libvirt daemon at @uri (with the "libvirt" volume
 * helper) and adds it. A daemon that cannot be reached is
 * %RECHAIN_ERROR_FAILED naming the host and @uri, unless unreachable hosts
 * are skipped (rechain_fleet_set_skip_unreachable()): then it returns
 * %TRUE and adds a warning. A missing "libvirt" helper is
 * %G_IO_ERROR_NOT_FOUND either way.
 *
 * Returns: %TRUE if the host was added or skipped
 *
 * Since: 0.2
 */
gboolean
rechain_fleet_add_host (RechainFleet *fleet, const char *uri, GCancellable *cancellable,
                        GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), FALSE);
  g_return_val_if_fail (uri != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_auto (GStrv) names = rechain_volume_helper_list ();
  if (!g_strv_contains ((const char * const *) names, "libvirt"))
    return rechain_volume_helper_lookup ("libvirt", uri, cancellable, error) != NULL;

  g_autoptr (GError) local = NULL;
  g_autoptr (RechainVolumeHelper) helper = rechain_volume_helper_lookup ("libvirt", uri, cancellable,
                                                                         &local);
  if (helper == NULL)
    {
      g_autofree char *host = host_name_of (uri);
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (fleet->skip_unreachable)
        {
          g_ptr_array_add (fleet->warnings,
                           g_strdup_printf (_("host %s (%s) skipped: it cannot be reached, so its "
                                              "domains were not asked whether they use the images: %s"),
                                            host, uri, local->message));
          return TRUE;
        }
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                   _("host %s (%s) cannot be reached, so nothing was written: %s"), host, uri,
                   local->message);
      return FALSE;
    }
  add (fleet, helper, uri);
  return TRUE;
}

/**
 * rechain_fleet_add_helper:
 * @fleet: a fleet
 * @helper: a connected helper
 *
 * Adds a host by a helper already made (rechain_volume_helper_lookup()),
 * named after its #RechainVolumeHelper:uri.
 *
 * Returns: %TRUE
 *
 * Since: 0.2
 */
gboolean
rechain_fleet_add_helper (RechainFleet *fleet, RechainVolumeHelper *helper)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), FALSE);
  g_return_val_if_fail (RECHAIN_IS_VOLUME_HELPER (helper), FALSE);
  add (fleet, helper, NULL);
  return TRUE;
}

/**
 * rechain_fleet_get_n_hosts:
 * @fleet: a fleet
 *
 * Returns: the number of hosts added (skipped ones not counted)
 *
 * Since: 0.2
 */
guint
rechain_fleet_get_n_hosts (RechainFleet *fleet)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), 0);
  return fleet->hosts->len;
}

/**
 * rechain_fleet_get_helper:
 * @fleet: a fleet
 * @index: a host, counted from 0 in the order they were added
 *
 * Returns: (transfer none): the helper of that host
 *
 * Since: 0.2
 */
RechainVolumeHelper *
rechain_fleet_get_helper (RechainFleet *fleet, guint index)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), NULL);
  g_return_val_if_fail (index < fleet->hosts->len, NULL);
  return ((Host *) g_ptr_array_index (fleet->hosts, index))->helper;
}

/**
 * rechain_fleet_get_host_name:
 * @fleet: a fleet
 * @index: a host, counted from 0 in the order they were added
 *
 * Returns: the name of that host in messages (see #RechainFleet)
 *
 * Since: 0.2
 */
const char *
rechain_fleet_get_host_name (RechainFleet *fleet, guint index)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), NULL);
  g_return_val_if_fail (index < fleet->hosts->len, NULL);
  return ((Host *) g_ptr_array_index (fleet->hosts, index))->name;
}

/**
 * rechain_fleet_get_warnings:
 * @fleet: a fleet
 *
 * Returns: (transfer full) (array zero-terminated=1): the warnings so far
 *   (hosts skipped)
 *
 * Since: 0.2
 */
char **
rechain_fleet_get_warnings (RechainFleet *fleet)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), NULL);
  GStrvBuilder *b = g_strv_builder_new ();
  for (guint i = 0; i < fleet->warnings->len; i++)
    g_strv_builder_add (b, g_ptr_array_index (fleet->warnings, i));
  char **w = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return w;
}

static gboolean
no_host (RechainFleet *fleet, GError **error)
{
  if (fleet->hosts->len > 0)
    return FALSE;
  g_set_error_literal (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                       _("no host could be reached: nothing was written"));
  return TRUE;
}

/**
 * rechain_fleet_resolve:
 * @fleet: a fleet
 * @pool: (nullable): a pool, or %NULL where @name is a path
 * @name: a volume of @pool, or a path
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Resolves @name on the first host (in the order they were added) that
 * has @pool: the pool may be defined on some hosts only.
 *
 * Returns: (transfer full): the volume, or %NULL on error (the first
 *   host's when no host has the pool)
 *
 * Since: 0.2
 */
RechainVolume *
rechain_fleet_resolve (RechainFleet *fleet, const char *pool, const char *name,
                       GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  if (no_host (fleet, error))
    return NULL;
  g_autoptr (GError) first = NULL;
  for (guint i = 0; i < fleet->hosts->len; i++)
    {
      Host *h = g_ptr_array_index (fleet->hosts, i);
      g_autoptr (GError) local = NULL;
      RechainVolume *v = rechain_volume_helper_resolve (h->helper, pool, name, cancellable, &local);
      if (v != NULL)
        return v;
      if (!g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) || pool == NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      if (first == NULL)
        first = g_steal_pointer (&local);
    }
  g_propagate_error (error, g_steal_pointer (&first));
  return NULL;
}

/* ---- who uses an image, on every host ---- */

typedef struct {
  char *reason;
  char *host;
  char *uri;
  char *domain;
} Blocker;

static void
blocker_clear (Blocker *b)
{
  g_clear_pointer (&b->reason, g_free);
  g_clear_pointer (&b->host, g_free);
  g_clear_pointer (&b->uri, g_free);
  g_clear_pointer (&b->domain, g_free);
}

static char *
describe (const char *path, const RechainVolumeUser *u, const Host *h)
{
  const char *state = u->active ? _("active") : _("inactive");
  g_autofree char *disk = u->disk ? g_strdup_printf (_(", disk %s"), u->disk) : g_strdup ("");
  if (u->source == NULL || g_strcmp0 (u->source, path) == 0)
    /* TRANSLATORS: "IMAGE is in use by active domain vm7 on h2 (qemu+ssh://h2/system), disk vda" */
    return g_strdup_printf (_("%s is in use by %s domain %s on %s (%s)%s"), path, state, u->domain,
                            h->name, h->uri, disk);
  return g_strdup_printf (_("%s is in the backing chain of %s, used by %s domain %s on %s (%s)%s"),
                          path, u->source, state, u->domain, h->name, h->uri, disk);
}

/* What the hosts said about one image: its first active user, its first
 * inactive one, and a line for each inactive one. */
typedef struct {
  Blocker active;
  Blocker inactive;
  GPtrArray *inactive_lines;
} Check;

static void
check_init (Check *c)
{
  memset (c, 0, sizeof *c);
  c->inactive_lines = g_ptr_array_new_with_free_func (g_free);
}

static void
check_clear (Check *c)
{
  blocker_clear (&c->active);
  blocker_clear (&c->inactive);
  g_clear_pointer (&c->inactive_lines, g_ptr_array_unref);
}

static void
check_add (Check *c, const char *path, const RechainVolumeUser *u, const Host *h)
{
  g_autofree char *what = describe (path, u, h);
  Blocker *b = u->active ? &c->active : &c->inactive;
  if (b->reason == NULL)
    {
      b->reason = g_strdup (what);
      b->host = g_strdup (h->name);
      b->uri = g_strdup (h->uri);
      b->domain = g_strdup (u->domain);
    }
  if (!u->active)
    g_ptr_array_add (c->inactive_lines, g_steal_pointer (&what));
}

/* The verdict: @blocker set for the first active user (the first inactive
 * one with @strict), or the inactive users as warnings. */
static void
check_finish (Check *c, gboolean strict, Blocker *blocker, GPtrArray *warnings)
{
  if (c->active.reason != NULL)
    {
      *blocker = c->active;
      memset (&c->active, 0, sizeof c->active);
    }
  else if (strict && c->inactive.reason != NULL)
    {
      *blocker = c->inactive;
      memset (&c->inactive, 0, sizeof c->inactive);
      char *r = g_strconcat (blocker->reason, _(" (refused by the strict check)"), NULL);
      g_free (blocker->reason);
      blocker->reason = r;
    }
  else
    for (guint i = 0; i < c->inactive_lines->len; i++)
      g_ptr_array_add (warnings, g_strdup (g_ptr_array_index (c->inactive_lines, i)));
}

/* Asks every host who uses @path: what check_finish() says. FALSE with
 * @error when asking failed. */
static gboolean
find_blocker (RechainFleet *fleet, const char *path, gboolean strict, Blocker *blocker,
              GPtrArray *warnings, GCancellable *cancellable, GError **error)
{
  Check c;
  check_init (&c);
  for (guint i = 0; i < fleet->hosts->len && c.active.reason == NULL; i++)
    {
      Host *h = g_ptr_array_index (fleet->hosts, i);
      g_autoptr (GPtrArray) users = rechain_volume_helper_get_users (h->helper, path, cancellable,
                                                                     error);
      if (users == NULL)
        {
          check_clear (&c);
          return FALSE;
        }
      for (guint k = 0; k < users->len && c.active.reason == NULL; k++)
        check_add (&c, path, g_ptr_array_index (users, k), h);
    }
  check_finish (&c, strict, blocker, warnings);
  check_clear (&c);
  return TRUE;
}

/* ---- many clones of one template: one question per host ---- */

static char *
file_key (const struct stat *st)
{
  return g_strdup_printf ("%ju:%ju", (uintmax_t) st->st_dev, (uintmax_t) st->st_ino);
}

/* The file the header of @path names as its backing file, resolved, or
 * NULL (none, unreadable). */
static char *
backing_path (const char *path, const char *format, GCancellable *cancellable)
{
  g_autoptr (RechainImage) image = rechain_image_open (path, format,
                                                       RECHAIN_IMAGE_OPEN_FORCE_SHARE
                                                       | RECHAIN_IMAGE_OPEN_NO_BACKING,
                                                       cancellable, NULL);
  const char *backing = image ? rechain_image_get_backing_file (image) : NULL;
  if (backing == NULL || *backing == '\0')
    return NULL;
  return rechain_resolve_backing_name (path, backing, NULL);
}

/* Follows the headers from @top down to @t, adding to @hits the index (in
 * @index) of every volume met. FALSE when the chain does not reach @t. */
static gboolean
walk_to (const char *top, GHashTable *index, const struct stat *t, GArray *hits,
         GCancellable *cancellable)
{
  g_autofree char *path = g_strdup (top);
  for (guint depth = 0; path != NULL && depth <= rechain_get_max_chain_depth (); depth++)
    {
      struct stat st;
      if (stat (path, &st) != 0)
        return FALSE;
      if (st.st_dev == t->st_dev && st.st_ino == t->st_ino)
        return TRUE;
      g_autofree char *key = file_key (&st);
      gpointer idx;
      if (g_hash_table_lookup_extended (index, key, NULL, &idx))
        {
          guint i = GPOINTER_TO_UINT (idx);
          g_array_append_val (hits, i);
        }
      char *next = backing_path (path, NULL, cancellable);
      g_free (path);
      path = next;
    }
  return FALSE;
}

/* The users of @volumes (linked clones: the same backing file T in every
 * header) in @checks, from one question per host: who uses T. Every domain
 * that uses a clone has T in its chain, so it is among them; which clones
 * it uses is read from the headers of its disk's chain, down to T. *done
 * FALSE (and nothing asked, or @checks to be asked again one by one) when
 * the volumes share no backing file, or a user's chain does not reach T
 * through the headers (libvirt's <backingStore> alone named it). */
static gboolean
check_linked (RechainFleet *fleet, GPtrArray *volumes, Check *checks, gboolean *done,
              GCancellable *cancellable, GError **error)
{
  *done = FALSE;
  g_autofree char *t = NULL;
  struct stat tst;
  g_autoptr (GHashTable) index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < volumes->len; i++)
    {
      RechainVolume *v = g_ptr_array_index (volumes, i);
      g_autofree char *b = backing_path (rechain_volume_get_path (v), rechain_volume_get_format (v),
                                         cancellable);
      struct stat st, bst;
      if (b == NULL || stat (b, &bst) != 0 || stat (rechain_volume_get_path (v), &st) != 0)
        return TRUE;
      if (t == NULL)
        {
          t = g_steal_pointer (&b);
          tst = bst;
        }
      else if (bst.st_dev != tst.st_dev || bst.st_ino != tst.st_ino)
        return TRUE;
      g_hash_table_insert (index, file_key (&st), GUINT_TO_POINTER (i));
    }
  if (t == NULL)
    return TRUE;
  g_autoptr (GArray) hits = g_array_new (FALSE, FALSE, sizeof (guint));
  for (guint h = 0; h < fleet->hosts->len; h++)
    {
      Host *host = g_ptr_array_index (fleet->hosts, h);
      g_autoptr (GPtrArray) users = rechain_volume_helper_get_users (host->helper, t, cancellable,
                                                                     error);
      if (users == NULL)
        return FALSE;
      for (guint k = 0; k < users->len; k++)
        {
          const RechainVolumeUser *u = g_ptr_array_index (users, k);
          g_array_set_size (hits, 0);
          if (u->source == NULL || !walk_to (u->source, index, &tst, hits, cancellable))
            return TRUE; /* ask about each volume instead */
          for (guint j = 0; j < hits->len; j++)
            {
              guint i = g_array_index (hits, guint, j);
              check_add (&checks[i], rechain_volume_get_path (g_ptr_array_index (volumes, i)), u,
                         host);
            }
        }
    }
  *done = TRUE;
  return TRUE;
}

static char **
take_strv (GPtrArray *array)
{
  g_ptr_array_add (array, NULL);
  return (char **) g_ptr_array_free (array, FALSE);
}

/**
 * rechain_fleet_check_in_use:
 * @fleet: a fleet
 * @path: an image about to be written
 * @strict: refuse as well when inactive domains reference @path
 * @warnings: (out) (optional) (transfer full) (array zero-terminated=1):
 *   the inactive domains that reference @path, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * rechain_volume_helper_check_in_use() on every host: refuses with
 * %RECHAIN_ERROR_IN_USE when an active (running or paused) domain of any
 * host uses @path, directly or through its backing chain (as the live
 * domain XML's `<backingStore>` shows it, read-only backing files
 * included), the message naming the domain and the host: "... domain vm7
 * on h2 (qemu+ssh://h2/system), disk vda".
 *
 * Returns: %TRUE if @path may be written
 *
 * Since: 0.2
 */
gboolean
rechain_fleet_check_in_use (RechainFleet *fleet, const char *path, gboolean strict,
                            char ***warnings, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  if (warnings != NULL)
    *warnings = NULL;
  g_autoptr (GPtrArray) w = g_ptr_array_new_with_free_func (g_free);
  Blocker b = { 0 };
  if (!find_blocker (fleet, path, strict, &b, w, cancellable, error))
    return FALSE;
  if (b.reason != NULL)
    {
      g_set_error_literal (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE, b.reason);
      blocker_clear (&b);
      return FALSE;
    }
  if (warnings != NULL)
    *warnings = take_strv (g_steal_pointer (&w));
  return TRUE;
}

/* ---- pool-wide selection ---- */

static gboolean
stat_id (const char *path, struct stat *st)
{
  return stat (path, st) == 0;
}

static int
by_name (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (rechain_volume_get_name (*(RechainVolume * const *) a),
                    rechain_volume_get_name (*(RechainVolume * const *) b));
}

/**
 * rechain_fleet_select_clones:
 * @fleet: a fleet
 * @pool: a pool
 * @template_: the template: a volume of @pool, or a path
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Selects the linked clones of @template_ in @pool: every volume (listed
 * on the first host that has @pool, after a refresh) whose image header
 * names a backing file that resolves to the same file as @template_ (the
 * same device and inode). Volumes whose header cannot be read are left
 * out with a warning (rechain_fleet_get_warnings()).
 *
 * Returns: (transfer container) (element-type RechainVolume): the clones,
 *   by name (empty when there are none), or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
rechain_fleet_select_clones (RechainFleet *fleet, const char *pool, const char *template_,
                             GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (RECHAIN_IS_FLEET (fleet), NULL);
  g_return_val_if_fail (pool != NULL && template_ != NULL, NULL);

  g_autoptr (RechainVolume) tmpl = rechain_fleet_resolve (fleet, pool, template_, cancellable, error);
  if (tmpl == NULL)
    return NULL;
  struct stat tst;
  if (!stat_id (rechain_volume_get_path (tmpl), &tst))
    {
      int err = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "%s: %s",
                   rechain_volume_get_path (tmpl), g_strerror (err));
      return NULL;
    }
  g_autoptr (GPtrArray) all = NULL;
  g_autoptr (GError) first = NULL;
  for (guint i = 0; i < fleet->hosts->len && all == NULL; i++)
    {
      Host *h = g_ptr_array_index (fleet->hosts, i);
      g_autoptr (GError) local = NULL;
      all = rechain_volume_helper_list_volumes (h->helper, pool, cancellable, &local);
      if (all == NULL && !g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      if (all == NULL && first == NULL)
        first = g_steal_pointer (&local);
    }
  if (all == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&first));
      return NULL;
    }
  GPtrArray *clones = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < all->len; i++)
    {
      RechainVolume *v = g_ptr_array_index (all, i);
      const char *path = rechain_volume_get_path (v);
      const char *format = rechain_volume_get_format (v);
      struct stat st;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          g_ptr_array_unref (clones);
          return NULL;
        }
      /* raw images and directories have no backing file */
      if (!stat_id (path, &st) || !S_ISREG (st.st_mode)
          || (st.st_dev == tst.st_dev && st.st_ino == tst.st_ino)
          || (format != NULL && !g_str_equal (format, "qcow2")))
        continue;
      g_autoptr (GError) local = NULL;
      g_autoptr (RechainImage) image = rechain_image_open (path, format,
                                                           RECHAIN_IMAGE_OPEN_FORCE_SHARE
                                                           | RECHAIN_IMAGE_OPEN_NO_BACKING,
                                                           cancellable, &local);
      if (image == NULL)
        {
          g_ptr_array_add (fleet->warnings,
                           g_strdup_printf (_("volume %s of pool %s left out: %s"),
                                            rechain_volume_get_name (v), pool, local->message));
          continue;
        }
      const char *backing = rechain_image_get_backing_file (image);
      if (backing == NULL || *backing == '\0')
        continue;
      g_autofree char *resolved = rechain_resolve_backing_name (path, backing, NULL);
      struct stat bst;
      if (resolved != NULL && stat_id (resolved, &bst) && bst.st_dev == tst.st_dev
          && bst.st_ino == tst.st_ino)
        g_ptr_array_add (clones, g_object_ref (v));
    }
  g_ptr_array_sort (clones, by_name);
  return clones;
}

/* ---- rebasing ---- */

typedef struct {
  GPtrArray *volumes;   /* of RechainVolume */
  RechainRebaseJob *options;
  RechainFleetRebaseFlags flags;
  int io_priority;
  gboolean dry_run;
  RechainRebaseJob *job; /* the one that runs, if any */
  GPtrArray *results;   /* of RechainFleetResult, one per volume */
  GPtrArray *movable;   /* the results of the volumes in the job */
  GPtrArray *warnings;
} FleetRebase;

static void
fleet_rebase_free (gpointer p)
{
  FleetRebase *d = p;
  g_ptr_array_unref (d->volumes);
  g_clear_object (&d->options);
  g_clear_object (&d->job);
  g_clear_pointer (&d->results, g_ptr_array_unref);
  g_clear_pointer (&d->movable, g_ptr_array_unref);
  g_ptr_array_unref (d->warnings);
  g_free (d);
}

/* A job with the options of @options, for @paths: the job's properties
 * are construct-only, so the caller's choices are carried over one by
 * one (all but the image and the linked images). */
static RechainRebaseJob *
job_for (RechainRebaseJob *options, GPtrArray *paths)
{
  GObjectClass *klass = G_OBJECT_GET_CLASS (options);
  guint n = 0;
  g_autofree GParamSpec **specs = g_object_class_list_properties (klass, &n);
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_autoptr (GArray) values = g_array_new (FALSE, TRUE, sizeof (GValue));
  g_array_set_clear_func (values, (GDestroyNotify) g_value_unset);
  for (guint i = 0; i < n; i++)
    {
      GParamSpec *s = specs[i];
      if (!(s->flags & G_PARAM_READABLE) || !(s->flags & G_PARAM_WRITABLE)
          || !(s->flags & (G_PARAM_CONSTRUCT_ONLY | G_PARAM_CONSTRUCT))
          || g_str_equal (s->name, "image") || g_str_equal (s->name, "linked-images"))
        continue;
      GValue v = G_VALUE_INIT;
      g_value_init (&v, s->value_type);
      g_object_get_property (G_OBJECT (options), s->name, &v);
      g_ptr_array_add (names, (gpointer) s->name);
      g_array_append_val (values, v);
    }
  GValue img = G_VALUE_INIT;
  g_value_init (&img, G_TYPE_STRING);
  g_value_set_string (&img, g_ptr_array_index (paths, 0));
  g_ptr_array_add (names, (gpointer) "image");
  g_array_append_val (values, img);
  GValue linked = G_VALUE_INIT;
  g_value_init (&linked, G_TYPE_STRV);
  if (paths->len > 1)
    {
      g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
      for (guint i = 1; i < paths->len; i++)
        g_strv_builder_add (b, g_ptr_array_index (paths, i));
      g_value_take_boxed (&linked, g_strv_builder_end (b));
    }
  g_ptr_array_add (names, (gpointer) "linked-images");
  g_array_append_val (values, linked);
  return (RechainRebaseJob *) g_object_new_with_properties (RECHAIN_TYPE_REBASE_JOB, names->len,
                                                             (const char **) names->pdata,
                                                             (const GValue *) values->data);
}

static gboolean
same_path (const char *a, const char *b)
{
  struct stat sa, sb;
  if (g_strcmp0 (a, b) == 0)
    return TRUE;
  return stat (a, &sa) == 0 && stat (b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Refreshes the pools of the moved volumes on every host that has them:
 * libvirt's pool refresh is per daemon. A host without the pool is
 * fine; a failure is a warning (the images did change). */
static void
refresh_everywhere (RechainFleet *fleet, GPtrArray *results, GPtrArray *warnings)
{
  g_autoptr (GHashTable) pools = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint r = 0; r < results->len; r++)
    {
      RechainFleetResult *res = g_ptr_array_index (results, r);
      RechainVolume *v = rechain_fleet_result_get_volume (res);
      const char *pool = rechain_volume_get_pool (v);
      if (rechain_fleet_result_get_status (res) != RECHAIN_FLEET_STATUS_MOVED)
        continue;
      if (pool != NULL && !g_hash_table_add (pools, (gpointer) pool))
        continue;
      for (guint i = 0; i < fleet->hosts->len; i++)
        {
          Host *h = g_ptr_array_index (fleet->hosts, i);
          g_autoptr (GError) error = NULL;
          g_autoptr (RechainVolume) here = rechain_volume_new (h->helper, pool,
                                                               rechain_volume_get_name (v),
                                                               rechain_volume_get_path (v),
                                                               rechain_volume_get_format (v), NULL);
          if (!rechain_volume_helper_changed (h->helper, here, NULL, &error)
              && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
            g_ptr_array_add (warnings,
                             g_strdup_printf (_("%s was changed, but refreshing its pool on %s (%s) "
                                                "failed: %s"),
                                              rechain_volume_get_path (v), h->name, h->uri,
                                              error->message));
        }
    }
}

/* Whether the job may open @v: a QEMU that no host told about (on a host
 * not given, or not reachable) holds its lock, so the job would fail as a
 * whole on it; such a volume is skipped, an unreadable one fails on its
 * own, before the pass starts. */
static gboolean
probe (RechainVolume *v, RechainFleetResult *res, GCancellable *cancellable)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainImage) image = rechain_image_open (rechain_volume_get_path (v),
                                                       rechain_volume_get_format (v),
                                                       RECHAIN_IMAGE_OPEN_NO_BACKING, cancellable,
                                                       &error);
  if (image != NULL)
    return TRUE;
  rechain_fleet_result_set (res, g_error_matches (error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE)
                                 ? RECHAIN_FLEET_STATUS_SKIPPED : RECHAIN_FLEET_STATUS_FAILED,
                            error->message, NULL, NULL, NULL);
  return FALSE;
}

/* On a worker thread: every host asked about every volume before anything
 * is written, the held volumes probed, the job made. */
static void
check_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RechainFleet *fleet = source;
  FleetRebase *d = task_data;
  gboolean strict = (d->flags & RECHAIN_FLEET_REBASE_STRICT) != 0;
  gboolean skip = (d->flags & RECHAIN_FLEET_REBASE_SKIP_IN_USE) != 0;
  GError *error = NULL;
  g_autoptr (GPtrArray) paths = g_ptr_array_new ();

  /* Linked clones: one question per host about their template, instead
   * of one per clone (each a scan of every domain). */
  gboolean linked_done = FALSE;
  Check *checks = g_new (Check, MAX (d->volumes->len, 1));
  for (guint i = 0; i < d->volumes->len; i++)
    check_init (&checks[i]);
  gboolean asked = d->volumes->len < 2
                   || check_linked (fleet, d->volumes, checks, &linked_done, cancellable, &error);
  if (asked && !linked_done)
    for (guint i = 0; i < d->volumes->len; i++)
      {
        check_clear (&checks[i]);
        check_init (&checks[i]);
      }
  for (guint i = 0; asked && i < d->volumes->len; i++)
    {
      RechainVolume *v = g_ptr_array_index (d->volumes, i);
      RechainFleetResult *res = rechain_fleet_result_new (v, d->dry_run ? RECHAIN_FLEET_STATUS_WOULD_MOVE
                                                                        : RECHAIN_FLEET_STATUS_MOVED);
      g_ptr_array_add (d->results, res);
      Blocker b = { 0 };
      if (linked_done)
        check_finish (&checks[i], strict, &b, d->warnings);
      else if (!find_blocker (fleet, rechain_volume_get_path (v), strict, &b, d->warnings, cancellable,
                              &error))
        asked = FALSE;
      if (!asked)
        break;
      if (b.reason != NULL && !skip)
        {
          g_set_error_literal (&error, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE, b.reason);
          blocker_clear (&b);
          asked = FALSE;
          break;
        }
      if (b.reason != NULL)
        rechain_fleet_result_set (res, RECHAIN_FLEET_STATUS_SKIPPED, b.reason, b.host, b.uri, b.domain);
      else if (skip && !probe (v, res, cancellable))
        ;
      else
        {
          g_ptr_array_add (paths, (gpointer) rechain_volume_get_path (v));
          g_ptr_array_add (d->movable, res);
        }
      blocker_clear (&b);
    }
  for (guint i = 0; i < d->volumes->len; i++)
    check_clear (&checks[i]);
  g_free (checks);
  if (!asked)
    {
      g_task_return_error (task, error);
      return;
    }
  if (paths->len == 0)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  d->job = job_for (d->options, paths);
  if (!rechain_rebase_job_use_local_lockspace (d->job, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  gboolean trust_chain = FALSE;
  g_object_get (d->job, "trust-chain", &trust_chain, NULL);
  RechainVolume *first = rechain_fleet_result_get_volume (g_ptr_array_index (d->movable, 0));
  g_auto (GStrv) dirs = NULL;
  g_autofree char *name = NULL;
  if (!trust_chain)
    {
      if (!rechain_volume_helper_storage_confinement (rechain_volume_get_helper (first), &dirs,
                                                      &name, cancellable, &error))
        {
          g_task_return_error (task, error);
          return;
        }
      if (dirs != NULL)
        rechain_rebase_job_set_storage_dirs (d->job, (const char * const *) dirs, name);
    }
  /* Last, as for one volume: no secret is fetched for a pass refused
   * anyway. The volumes share one pool, so the first one's host keeps
   * the secrets of all (libvirt's secrets are per daemon). */
  RechainChainConfinement confine = {
    .storage_dirs = (const char * const *) dirs,
    .storage_name = name,
  };
  if (!rechain_volume_add_job_keys (first, d->job, trust_chain, &confine, cancellable, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  g_task_return_boolean (task, TRUE);
}

/* On a worker thread, after the pass: each volume's outcome from the
 * job's per-image report, then the pools refreshed on every host. */
static void
after_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RechainFleet *fleet = source;
  FleetRebase *d = task_data;
  gboolean skip = (d->flags & RECHAIN_FLEET_REBASE_SKIP_IN_USE) != 0;
  RechainRebaseStats *stats = rechain_rebase_job_get_stats (d->job);
  g_autoptr (GPtrArray) images = stats ? rechain_rebase_stats_get_images (stats) : NULL;

  for (guint k = 0; k < d->movable->len; k++)
    {
      RechainFleetResult *res = g_ptr_array_index (d->movable, k);
      const char *path = rechain_volume_get_path (rechain_fleet_result_get_volume (res));
      for (guint j = 0; images != NULL && j < images->len; j++)
        {
          RechainRebaseImageStats *is = g_ptr_array_index (images, j);
          if (!same_path (rechain_rebase_image_stats_get_image (is), path))
            continue;
          const GError *e = rechain_rebase_image_stats_get_error (is);
          if (e != NULL)
            /* in use where no host told (a lease, a lock): skipped too */
            rechain_fleet_result_set (res,
                                      skip && g_error_matches (e, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE)
                                      ? RECHAIN_FLEET_STATUS_SKIPPED : RECHAIN_FLEET_STATUS_FAILED,
                                      e->message, NULL, NULL, NULL);
          else
            rechain_fleet_result_set_bytes (res, rechain_rebase_image_stats_get_bytes_written (is));
          break;
        }
    }
  if (!d->dry_run)
    refresh_everywhere (fleet, d->results, d->warnings);
  g_task_return_boolean (task, TRUE);
}

static void
return_results (GTask *task)
{
  FleetRebase *d = g_task_get_task_data (task);
  g_task_return_pointer (task, g_ptr_array_ref (d->results), (GDestroyNotify) g_ptr_array_unref);
}

static void
after_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  return_results (task);
}

/* Names the volume in a refusal (RECHAIN_ERROR_NOT_PERMITTED) of a file
 * that a chain names, as rechain_volume_rebase_sync() does: the volume
 * whose image the message is about, else the first one of the pass. */
static void
prefix_volume_error (FleetRebase *d, GError **error)
{
  if (!g_error_matches (*error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED) || d->movable->len == 0)
    return;
  const char *msg = (*error)->message;
  RechainVolume *named = rechain_fleet_result_get_volume (g_ptr_array_index (d->movable, 0));
  for (guint i = 0; i < d->movable->len; i++)
    {
      RechainVolume *v = rechain_fleet_result_get_volume (g_ptr_array_index (d->movable, i));
      const char *path = rechain_volume_get_path (v);
      if (g_str_has_prefix (msg, path) && msg[strlen (path)] == ':')
        named = v;
    }
  if (rechain_volume_get_pool (named) != NULL)
    g_prefix_error (error, _("volume '%s' of pool '%s': "), rechain_volume_get_name (named),
                    rechain_volume_get_pool (named));
}

/* Whether a pass that failed as a job is still told volume by volume:
 * with SKIP_IN_USE, when a volume failed on its own while others moved
 * (the job reports the first image error as its own), or when every one
 * was in use where no host told (a lease, a lock). Not when cancelled. */
static gboolean
outcome_per_volume (FleetRebase *d, const GError *error)
{
  RechainRebaseStats *stats = rechain_rebase_job_get_stats (d->job);
  gboolean some_ok = FALSE, all_in_use = TRUE;

  if (!(d->flags & RECHAIN_FLEET_REBASE_SKIP_IN_USE) || stats == NULL ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return FALSE;
  g_autoptr (GPtrArray) images = rechain_rebase_stats_get_images (stats);
  for (guint j = 0; images != NULL && j < images->len; j++)
    {
      const GError *e = rechain_rebase_image_stats_get_error (g_ptr_array_index (images, j));
      if (e == NULL)
        some_ok = TRUE;
      else if (!g_error_matches (e, RECHAIN_ERROR, RECHAIN_ERROR_IN_USE))
        all_in_use = FALSE;
    }
  return images != NULL && images->len > 0 && (some_ok || all_in_use);
}

static void
job_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  if (!rechain_block_job_run_finish (RECHAIN_BLOCK_JOB (source), result, &error) &&
      outcome_per_volume (g_task_get_task_data (task), error))
    g_clear_error (&error);
  if (error != NULL)
    {
      prefix_volume_error (g_task_get_task_data (task), &error);
      g_task_return_error (task, error);
      return;
    }
  /* The refreshes talk to every daemon: off the caller's thread. */
  GTask *sub = g_task_new (g_task_get_source_object (task), NULL, after_done, g_object_ref (task));
  g_task_set_task_data (sub, g_task_get_task_data (task), NULL);
  g_task_run_in_thread (sub, after_thread);
  g_object_unref (sub);
}

static void
checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  FleetRebase *d = g_task_get_task_data (task);
  GError *error = NULL;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (d->job == NULL)
    {
      return_results (task);
      return;
    }
  g_signal_emit (source, rebase_started_signal, 0, d->job);
  /* One linked-clone pass: the templates are compared once. Its progress
   * is notified in the caller's main context. */
  GCancellable *cancellable = g_task_get_cancellable (task);
  rechain_block_job_run_async (RECHAIN_BLOCK_JOB (d->job), d->io_priority, cancellable, job_done,
                               g_steal_pointer (&task));
}

/**
 * rechain_fleet_rebase_async:
 * @fleet: a fleet
 * @volumes: (element-type RechainVolume): the volumes to move (linked
 *   clones: they share their old backing chain)
 * @options: a job that gives the options of the rebase (new backing file
 *   and format, mode, dry run, copy mode, keyring...): its image and
 *   linked images are ignored, the job run is a new one for @volumes
 * @flags: how in-use volumes are handled
 * @io_priority: the I/O priority
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when done
 * @user_data: data for @callback
 *
 * Moves @volumes in one linked-clone pass (old and new backing chains
 * compared once), the checks and the refreshes on worker threads, the job
 * with rechain_block_job_run_async() (see #RechainFleet::rebase-started
 * for its progress). First every host is asked about every
 * volume (rechain_fleet_check_in_use()): a volume in use refuses the whole
 * rebase with %RECHAIN_ERROR_IN_USE before anything is written, or, with
 * %RECHAIN_FLEET_REBASE_SKIP_IN_USE, is skipped; so is, with that flag, a
 * volume the job itself finds in use (a lock, a lease). Then, unless it is
 * a dry run, the pools of the moved volumes are refreshed on every host
 * that has them. The backing chains are confined to the storage
 * directories of the first volume's helper, unless the job trusts them.
 */
void
rechain_fleet_rebase_async (RechainFleet *fleet, GPtrArray *volumes, RechainRebaseJob *options,
                            RechainFleetRebaseFlags flags, int io_priority,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  g_return_if_fail (RECHAIN_IS_FLEET (fleet));
  g_return_if_fail (volumes != NULL);
  g_return_if_fail (RECHAIN_IS_REBASE_JOB (options));

  g_autoptr (GTask) task = g_task_new (fleet, cancellable, callback, user_data);
  g_task_set_source_tag (task, rechain_fleet_rebase_async);
  g_task_set_priority (task, io_priority);
  FleetRebase *d = g_new0 (FleetRebase, 1);
  d->volumes = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < volumes->len; i++)
    g_ptr_array_add (d->volumes, g_object_ref (g_ptr_array_index (volumes, i)));
  d->options = g_object_ref (options);
  d->flags = flags;
  d->io_priority = io_priority;
  g_object_get (options, "dry-run", &d->dry_run, NULL);
  d->results = g_ptr_array_new_with_free_func (g_object_unref);
  d->movable = g_ptr_array_new ();
  d->warnings = g_ptr_array_new_with_free_func (g_free);
  g_task_set_task_data (task, d, fleet_rebase_free);
  GError *error = NULL;
  if (no_host (fleet, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  GTask *sub = g_task_new (fleet, cancellable, checked, g_steal_pointer (&task));
  g_task_set_task_data (sub, d, NULL);
  g_task_set_priority (sub, io_priority);
  g_task_run_in_thread (sub, check_thread);
  g_object_unref (sub);
}

/**
 * rechain_fleet_rebase_finish:
 * @fleet: a fleet
 * @result: the result given to the callback
 * @job: (out) (optional) (nullable) (transfer full): the job that ran, for
 *   its statistics (rechain_rebase_job_get_stats()), or %NULL when there was
 *   nothing to move (also after a failure, when it had started)
 * @warnings: (out) (optional) (transfer full) (array zero-terminated=1):
 *   inactive domains that use moved volumes, failed pool refreshes
 * @error: return location for an error
 *
 * Returns: (transfer container) (element-type RechainFleetResult): one
 *   result per volume, in the order given, or %NULL on error
 *
 * Since: 0.2
 */
GPtrArray *
rechain_fleet_rebase_finish (RechainFleet *fleet, GAsyncResult *result, RechainRebaseJob **job,
                             char ***warnings, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, fleet), NULL);
  FleetRebase *d = g_task_get_task_data (G_TASK (result));
  if (job != NULL)
    *job = d->job ? g_object_ref (d->job) : NULL;
  if (warnings != NULL)
    {
      GStrvBuilder *b = g_strv_builder_new ();
      for (guint i = 0; i < d->warnings->len; i++)
        g_strv_builder_add (b, g_ptr_array_index (d->warnings, i));
      *warnings = g_strv_builder_end (b);
      g_strv_builder_unref (b);
    }
  return g_task_propagate_pointer (G_TASK (result), error);
}
