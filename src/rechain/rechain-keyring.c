/* rechain-keyring.c: RechainKeyring, the passphrases of encrypted images.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <gcrypt.h>

#include "format/luks-cipher.h"
#include "rechain/rechain-error.h"
#include "rechain/rechain-i18n-private.h"
#include "rechain/rechain-keyring-private.h"

/**
 * RechainKeyring:
 *
 * The passphrases of encrypted images (qcow2 with LUKS encryption), given
 * to [func@Rechain.Image.open_with_keyring] and to the `keyring` property of
 * [class@Rechain.RebaseJob].
 *
 * A passphrase is given for an image file, found again by its device and
 * inode wherever a backing chain names it (a relative name, a symlink, a
 * `file:` prefix), or as the default for every encrypted image that has
 * none of its own. The keyring copies each passphrase into libgcrypt's
 * secure memory (locked where the system allows it, so never swapped
 * out) and wipes it when it is freed; the caller may wipe its own copy
 * right after adding it. No function returns a passphrase, and no message
 * contains one.
 *
 * An unsafe rebase needs no passphrase: it changes the header only.
 *
 * Since: 0.2
 */

typedef struct {
  gboolean is_default;
  dev_t dev;
  ino_t ino;
  guint8 *data; /* gcry_malloc_secure */
  gsize len;
} KeyEntry;

struct _RechainKeyring {
  GObject parent_instance;
  GMutex lock;     /* a job reads the keyring on its worker thread */
  GArray *entries; /* of KeyEntry */
};

G_DEFINE_FINAL_TYPE (RechainKeyring, rechain_keyring, G_TYPE_OBJECT)

static void
key_entry_clear (gpointer p)
{
  KeyEntry *e = p;

  if (e->data)
    {
      /* gcry_free wipes secure memory too; this does not depend on it */
      explicit_bzero (e->data, e->len);
      gcry_free (e->data);
      e->data = NULL;
    }
}

static void
rechain_keyring_finalize (GObject *object)
{
  RechainKeyring *self = RECHAIN_KEYRING (object);

  g_array_unref (self->entries);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (rechain_keyring_parent_class)->finalize (object);
}

static void
rechain_keyring_class_init (RechainKeyringClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = rechain_keyring_finalize;
}

static void
rechain_keyring_init (RechainKeyring *self)
{
  g_mutex_init (&self->lock);
  self->entries = g_array_new (FALSE, TRUE, sizeof (KeyEntry));
  g_array_set_clear_func (self->entries, key_entry_clear);
}

/**
 * rechain_keyring_new:
 *
 * Returns: (transfer full): a new, empty keyring
 *
 * Since: 0.2
 */
RechainKeyring *
rechain_keyring_new (void)
{
  /* the secure memory the passphrases go to (format/luks-cipher.c sets
   * libgcrypt up once, unless the application did) */
  rechain_luks_crypto_init (NULL);
  return g_object_new (RECHAIN_TYPE_KEYRING, NULL);
}

/* Stores @passphrase in a new entry, replacing the one for the same file
 * (or the default), so the last one given wins, as for repeated options. */
static gboolean
add_entry (RechainKeyring *self, KeyEntry *entry, GBytes *passphrase, GError **error)
{
  gsize len;
  const guint8 *bytes = g_bytes_get_data (passphrase, &len);

  entry->len = len;
  entry->data = gcry_malloc_secure (MAX (len, 1));
  if (!entry->data)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_FAILED,
                   _("no secure memory left for a passphrase"));
      return FALSE;
    }
  if (len > 0)
    memcpy (entry->data, bytes, len);

  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->entries->len; i++)
    {
      KeyEntry *old = &g_array_index (self->entries, KeyEntry, i);
      if (old->is_default == entry->is_default &&
          (entry->is_default || (old->dev == entry->dev && old->ino == entry->ino)))
        {
          g_array_remove_index_fast (self->entries, i);
          break;
        }
    }
  g_array_append_val (self->entries, *entry);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/**
 * rechain_keyring_add_passphrase:
 * @keyring: a keyring
 * @image_path: the image file the passphrase unlocks
 * @passphrase: the passphrase (the bytes of the LUKS key slot's secret,
 *   as `--object secret` gives them to qemu-img, without a trailing
 *   newline unless it is part of the secret)
 * @error: return location for an error
 *
 * Gives the passphrase of one image file. The file must exist: it is
 * recognised later by its device and inode, whatever name a backing chain
 * reaches it by. A second passphrase for the same file replaces the first.
 *
 * Returns: %TRUE, or %FALSE with @error set (%RECHAIN_ERROR_INVALID_ARGUMENT
 *   when @image_path cannot be found)
 *
 * Since: 0.2
 */
gboolean
rechain_keyring_add_passphrase (RechainKeyring *keyring, const char *image_path,
                                GBytes *passphrase, GError **error)
{
  KeyEntry entry = { 0 };
  struct stat st;

  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), FALSE);
  g_return_val_if_fail (image_path != NULL, FALSE);
  g_return_val_if_fail (passphrase != NULL, FALSE);

  if (stat (image_path, &st) < 0)
    {
      int saved = errno;
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("cannot give a key for %s: %s"), image_path, g_strerror (saved));
      return FALSE;
    }
  entry.dev = st.st_dev;
  entry.ino = st.st_ino;
  return add_entry (keyring, &entry, passphrase, error);
}

/**
 * rechain_keyring_add_default_passphrase:
 * @keyring: a keyring
 * @passphrase: the passphrase
 * @error: return location for an error
 *
 * Gives the passphrase of every encrypted image that has none of its own
 * in @keyring: a chain encrypted with one key throughout. A second default
 * replaces the first.
 *
 * Returns: %TRUE, or %FALSE with @error set
 *
 * Since: 0.2
 */
gboolean
rechain_keyring_add_default_passphrase (RechainKeyring *keyring, GBytes *passphrase,
                                        GError **error)
{
  KeyEntry entry = { .is_default = TRUE };

  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), FALSE);
  g_return_val_if_fail (passphrase != NULL, FALSE);
  return add_entry (keyring, &entry, passphrase, error);
}

/* The entry for (@dev, @ino), else the default, else NULL; under the lock. */
static const KeyEntry *
find_entry (RechainKeyring *self, gboolean have_file, dev_t dev, ino_t ino)
{
  const KeyEntry *fallback = NULL;

  for (guint i = 0; i < self->entries->len; i++)
    {
      const KeyEntry *e = &g_array_index (self->entries, KeyEntry, i);
      if (e->is_default)
        fallback = e;
      else if (have_file && e->dev == dev && e->ino == ino)
        return e;
    }
  return fallback;
}

/**
 * rechain_keyring_has_passphrase:
 * @keyring: a keyring
 * @image_path: an image file
 *
 * Whether @keyring would give a passphrase for @image_path: its own, or
 * the default. The passphrase itself is never returned.
 *
 * Returns: %TRUE if it has one
 *
 * Since: 0.2
 */
gboolean
rechain_keyring_has_passphrase (RechainKeyring *keyring, const char *image_path)
{
  struct stat st = { 0 };
  gboolean have_file, found;

  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), FALSE);
  g_return_val_if_fail (image_path != NULL, FALSE);
  have_file = stat (image_path, &st) == 0;
  g_mutex_lock (&keyring->lock);
  found = find_entry (keyring, have_file, st.st_dev, st.st_ino) != NULL;
  g_mutex_unlock (&keyring->lock);
  return found;
}

/**
 * rechain_keyring_get_n_passphrases:
 * @keyring: a keyring
 *
 * Returns: how many passphrases @keyring holds, the default included
 *
 * Since: 0.2
 */
guint
rechain_keyring_get_n_passphrases (RechainKeyring *keyring)
{
  guint n;

  g_return_val_if_fail (RECHAIN_IS_KEYRING (keyring), 0);
  g_mutex_lock (&keyring->lock);
  n = keyring->entries->len;
  g_mutex_unlock (&keyring->lock);
  return n;
}

/* Entries are only ever replaced, never changed in place, and a job holds
 * a reference to the keyring while it runs; the pointer handed out stays
 * valid until the entry is replaced or the keyring freed. */
static gboolean
keyring_lookup (gpointer user_data, const char *path, dev_t dev, ino_t ino,
                const guint8 **data, gsize *len)
{
  RechainKeyring *self = user_data;
  const KeyEntry *e;

  g_mutex_lock (&self->lock);
  e = find_entry (self, TRUE, dev, ino);
  if (e)
    {
      *data = e->data;
      *len = e->len;
    }
  g_mutex_unlock (&self->lock);
  return e != NULL;
}

void
rechain_keyring_init_lookup (RechainKeyring *keyring, RechainKeyLookup *lookup)
{
  lookup->lookup = keyring ? keyring_lookup : NULL;
  lookup->user_data = keyring;
}
