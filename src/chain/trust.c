/* trust.c: follow a header's names only as far as the image's owner could.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain/trust.h"
#include "rechain/rechain-i18n-private.h"

struct _RechainOwner {
  uid_t uid;
  char *name;    /* from the password database, or NULL for a uid without an account */
  gid_t *groups; /* primary and supplementary */
  int n_groups;
};

void
rechain_owner_free (RechainOwner *owner)
{
  if (!owner)
    return;
  g_free (owner->name);
  g_free (owner->groups);
  g_free (owner);
}

/* Fills in the name and groups of owner->uid. A uid without an account
 * (an image copied from another machine, a container's uid) belongs to no
 * group as far as we can tell: only its own and the "other" bits count. */
static void
lookup_groups (RechainOwner *owner)
{
  struct passwd pw, *found = NULL;
  long size = sysconf (_SC_GETPW_R_SIZE_MAX);
  g_autofree char *buf = NULL;
  int n = 32;

  if (size <= 0)
    size = 16384;
  for (;;)
    {
      int rc;

      buf = g_malloc ((gsize) size);
      rc = getpwuid_r (owner->uid, &pw, buf, (gsize) size, &found);
      if (rc != ERANGE || size > (1 << 20))
        break;
      g_clear_pointer (&buf, g_free);
      size *= 2;
    }
  if (!found)
    return;
  owner->name = g_strdup (pw.pw_name);
  for (;;)
    {
      int got = n;

      owner->groups = g_renew (gid_t, owner->groups, n);
      if (getgrouplist (pw.pw_name, pw.pw_gid, owner->groups, &got) >= 0)
        {
          owner->n_groups = got;
          return;
        }
      /* too small: glibc says how many there are in @got */
      n = MAX (got, n * 2);
      if (n > 65536)
        {
          /* an absurd group database: keep only the primary group */
          owner->groups[0] = pw.pw_gid;
          owner->n_groups = 1;
          return;
        }
    }
}

RechainOwner *
rechain_owner_new_for_fd (int fd, GError **error)
{
  struct stat st;
  RechainOwner *owner;

  if (fstat (fd, &st) < 0)
    {
      int saved = errno;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_IO, _("could not stat: %s"),
                   g_strerror (saved));
      return NULL;
    }
  if (st.st_uid == geteuid ())
    return NULL;
  owner = g_new0 (RechainOwner, 1);
  owner->uid = st.st_uid;
  lookup_groups (owner);
  return owner;
}

static gboolean
owner_in_group (const RechainOwner *owner, gid_t gid)
{
  for (int i = 0; i < owner->n_groups; i++)
    if (owner->groups[i] == gid)
      return TRUE;
  return FALSE;
}

/* Whether the mode bits of @st grant @owner every bit of @want (a
 * combination of S_IROTH, S_IWOTH, S_IXOTH), the way the kernel decides:
 * the owner class if the uid matches, else the group class if one of the
 * owner's groups matches, else "other". The superuser may read and write
 * anything, and search any directory. */
static gboolean
mode_grants (const RechainOwner *owner, const struct stat *st, mode_t want)
{
  mode_t bits;

  if (owner->uid == 0)
    return TRUE;
  if (st->st_uid == owner->uid)
    bits = (st->st_mode >> 6) & 7;
  else if (owner_in_group (owner, st->st_gid))
    bits = (st->st_mode >> 3) & 7;
  else
    bits = st->st_mode & 7;
  return (bits & want) == want;
}

/* "alice (uid 1001)", or "uid 1001" for a uid without an account */
static char *
describe_owner (const RechainOwner *owner)
{
  if (owner->name)
    return g_strdup_printf (_("%s (uid %u)"), owner->name, (unsigned) owner->uid);
  return g_strdup_printf (_("uid %u"), (unsigned) owner->uid);
}

static const char *
describe_type (mode_t mode)
{
  if (S_ISBLK (mode))
    return _("a block device");
  if (S_ISCHR (mode))
    return _("a character device");
  if (S_ISFIFO (mode))
    return _("a FIFO");
  if (S_ISSOCK (mode))
    return _("a socket");
  if (S_ISDIR (mode))
    return _("a directory");
  return _("not a regular file");
}

/* The path the kernel resolved @fd to (symlinks followed), or NULL. */
static char *
fd_real_path (int fd)
{
  g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", fd);
  char *target = g_file_read_link (link, NULL);

  if (target && (target[0] != '/' || g_str_has_suffix (target, " (deleted)")))
    g_clear_pointer (&target, g_free);
  return target;
}

/* Sets @why when a directory on the way to @real is not searchable by
 * @owner. Directories are checked by path: those @owner does not own it
 * cannot change, and those it owns it could open up anyway. */
static gboolean
owner_can_reach (const RechainOwner *owner, const char *real, char **why)
{
  g_autofree char *dir = g_path_get_dirname (real);

  for (;;)
    {
      struct stat st;
      g_autofree char *parent = NULL;

      if (stat (dir, &st) < 0)
        {
          *why = g_strdup_printf (_("cannot tell whether it may search the directory '%s': %s"),
                                  dir, g_strerror (errno));
          return FALSE;
        }
      if (!mode_grants (owner, &st, S_IXOTH))
        {
          *why = g_strdup_printf (_("it may not search the directory '%s' (mode %04o, owner %u:%u)"),
                                  dir, (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid,
                                  (unsigned) st.st_gid);
          return FALSE;
        }
      if (g_str_equal (dir, "/"))
        return TRUE;
      parent = g_path_get_dirname (dir);
      g_free (dir);
      dir = g_steal_pointer (&parent);
    }
}

gboolean
rechain_owner_check_file (const RechainOwner *owner, int fd, RechainTrustAccess access,
                          const char *named_by, const char *field, const char *path,
                          GError **error)
{
  g_autofree char *who = NULL;
  g_autofree char *why = NULL;
  g_autofree char *real = NULL;
  struct stat st;
  mode_t want = 0;

  if (!owner)
    return TRUE;
  who = describe_owner (owner);
  if (fstat (fd, &st) < 0)
    why = g_strdup_printf (_("could not stat it: %s"), g_strerror (errno));
  else if (!S_ISREG (st.st_mode))
    why = g_strdup_printf (_("it is %s, which is never followed for an image owned by %s"),
                           describe_type (st.st_mode), who);
  else
    {
      if (access & RECHAIN_TRUST_READ)
        want |= S_IROTH;
      if (access & RECHAIN_TRUST_WRITE)
        want |= S_IWOTH;
      if (!mode_grants (owner, &st, want))
        why = g_strdup_printf ((access & RECHAIN_TRUST_WRITE)
                                 ? _("its owner %s may not read and write it (mode %04o, owner %u:%u)")
                                 : _("its owner %s may not read it (mode %04o, owner %u:%u)"),
                               who, (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid,
                               (unsigned) st.st_gid);
      else if (!(real = fd_real_path (fd)))
        why = g_strdup (_("cannot tell which file it is (no /proc/self/fd)"));
      else if (owner_can_reach (owner, real, &why))
        return TRUE;
      else
        {
          g_autofree char *dir_why = g_steal_pointer (&why);
          why = g_strdup_printf (_("its owner %s cannot reach it: %s"), who, dir_why);
        }
    }
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
               _("%s: refusing to open %s '%s': %s. rechain opens a file named in the header "
                 "of an image owned by another user only if that user could open it "
                 "(allow it with --trust-chain if you trust this chain)"),
               named_by, field, path, why);
  return FALSE;
}
