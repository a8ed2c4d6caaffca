/* keys.c: the passphrases of encrypted images on the command line.
 *
 * qemu-img's syntax, verbatim, so that the command lines of Cinder,
 * libvirt and Nova work unchanged:
 *   --object secret,id=ID,file=PATH|data=STRING[,format=raw|base64][,keyid=ID2,iv=B64]
 *   --image-opts  (IMAGE is then driver=qcow2,file.filename=PATH,encrypt.key-secret=ID,...)
 *   -b 'json:{"driver":"qcow2","encrypt.key-secret":"ID","file":{"filename":"NEW"}}'
 * and a native form that needs neither: --key-file [IMAGE=]FILE and
 * --key-secret [IMAGE=]ID. All of it ends up in one RechainKeyring.
 *
 * No message here contains secret bytes, nor the text of an --object
 * option (it may hold data=): only ids, property names and file names.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gcrypt.h>
#include <json-glib/json-glib.h>

#include "tool.h"

/* A secret file larger than this is certainly not a passphrase. */
#define SECRET_FILE_MAX (1024 * 1024)
/* Chains deeper than this are refused by the library anyway. */
#define MAX_BACKING_DEPTH 64

struct _ToolKeys {
  GHashTable *secrets;     /* id -> GBytes in secure memory */
  RechainKeyring *keyring;
};

static gboolean
fail (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (GError **error, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                                                format, args));
  va_end (args);
  return FALSE;
}

/* Secret bytes live in libgcrypt's secure memory and are wiped when the
 * last reference to their GBytes goes. */
typedef struct {
  guint8 *data;
  gsize size;
} SecureBuffer;

static void
secure_buffer_free (gpointer p)
{
  SecureBuffer *b = p;

  explicit_bzero (b->data, b->size);
  gcry_free (b->data);
  g_free (b);
}

static guint8 *
secure_alloc (gsize size, GError **error)
{
  guint8 *data = gcry_malloc_secure (MAX (size, 1));

  if (!data)
    fail (error, _("no secure memory left for a secret"));
  return data;
}

/* Takes @data (secure memory of @size bytes, @len of them used). */
static GBytes *
secure_bytes_new (guint8 *data, gsize len, gsize size)
{
  SecureBuffer *b = g_new (SecureBuffer, 1);

  b->data = data;
  b->size = size;
  return g_bytes_new_with_free_func (data, len, secure_buffer_free, b);
}

static void
wipe_string (gpointer p)
{
  char *s = p;

  if (s)
    explicit_bzero (s, strlen (s));
  g_free (s);
}

/* QemuOpts syntax: key=value pairs separated by ',', where ',,' is a
 * literal comma. @implied_key names a leading bare word ("secret" in
 * "secret,id=s0"); NULL refuses bare words. Returns key -> value, the
 * last value of a repeated key winning, as in QEMU. @what names the
 * option in messages; the values never appear in them. */
static GHashTable *
parse_opts (const char *text, const char *implied_key, const char *what, GError **error)
{
  g_autoptr(GHashTable) opts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, wipe_string);
  GString *item = g_string_new (NULL);
  gboolean first = TRUE;
  const char *p = text;

  for (;;)
    {
      if (*p == ',' && p[1] == ',')
        {
          g_string_append_c (item, ',');
          p += 2;
          continue;
        }
      if (*p != ',' && *p != '\0')
        {
          g_string_append_c (item, *p++);
          continue;
        }
      /* end of an item */
      {
        char *eq = strchr (item->str, '=');

        if (item->len == 0)
          {
            fail (error, _("%s: empty item in the option list"), what);
            explicit_bzero (item->str, item->len);
            g_string_free (item, TRUE);
            return NULL;
          }
        if (!eq && first && implied_key)
          g_hash_table_replace (opts, g_strdup (implied_key), g_strdup (item->str));
        else if (!eq || eq == item->str)
          {
            fail (error, _("%s: expected KEY=VALUE, not a bare name"), what);
            explicit_bzero (item->str, item->len);
            g_string_free (item, TRUE);
            return NULL;
          }
        else
          g_hash_table_replace (opts, g_strndup (item->str, eq - item->str), g_strdup (eq + 1));
        explicit_bzero (item->str, item->len);
        g_string_truncate (item, 0);
        first = FALSE;
      }
      if (*p == '\0')
        break;
      p++;
    }
  g_string_free (item, TRUE);
  return g_steal_pointer (&opts);
}

/* Reads the whole of @path into secure memory, as QEMU's secret file=
 * does: no newline is stripped. */
static GBytes *
read_secret_file (const char *id, const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  gsize size = 4096, len = 0;
  guint8 *data;

  if (fd < 0)
    {
      int saved = errno;
      fail (error, _("secret '%s': cannot read %s: %s"), id, path, g_strerror (saved));
      return NULL;
    }
  data = secure_alloc (size, error);
  if (!data)
    {
      close (fd);
      return NULL;
    }
  for (;;)
    {
      ssize_t n;

      if (len == size)
        {
          guint8 *bigger;

          if (size >= SECRET_FILE_MAX)
            {
              fail (error, _("secret '%s': %s is larger than %d bytes"), id, path, SECRET_FILE_MAX);
              break;
            }
          bigger = secure_alloc (size * 2, error);
          if (!bigger)
            break;
          memcpy (bigger, data, len);
          explicit_bzero (data, size);
          gcry_free (data);
          data = bigger;
          size *= 2;
        }
      n = read (fd, data + len, size - len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;
          fail (error, _("secret '%s': cannot read %s: %s"), id, path, g_strerror (saved));
          break;
        }
      if (n == 0)
        {
          close (fd);
          return secure_bytes_new (data, len, size);
        }
      len += (gsize) n;
    }
  close (fd);
  explicit_bzero (data, size);
  gcry_free (data);
  return NULL;
}

/* QEMU's check (qbase64_decode): only the base64 alphabet and '=', no
 * NUL. g_base64_decode alone would skip any other byte silently. */
static GBytes *
base64_decode_secure (const guint8 *in, gsize len, const char *id, const char *what,
                      GError **error)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  gsize size = len / 4 * 3 + 3, out_len;
  gint state = 0;
  guint save = 0;
  guint8 *out;

  for (gsize i = 0; i < len; i++)
    if (in[i] == '\0' || !strchr (alphabet, in[i]))
      {
        fail (error, _("secret '%s': %s is not valid base64"), id, what);
        return NULL;
      }
  out = secure_alloc (size, error);
  if (!out)
    return NULL;
  out_len = g_base64_decode_step ((const char *) in, len, out, &state, &save);
  return secure_bytes_new (out, out_len, size);
}

/* The data of a secret wrapped with another one (libvirt's way of passing
 * secrets to QEMU): AES-256-CBC with the 32-byte secret @key and the
 * 16-byte @iv, PKCS#7 padding, as QEMU's qcrypto_secret_decrypt. */
static GBytes *
decrypt_secret (const char *id, GBytes *ciphertext, GBytes *key, GBytes *iv, GError **error)
{
  gcry_cipher_hd_t cipher = NULL;
  gsize len = g_bytes_get_size (ciphertext);
  guint8 *plain;
  guint pad;

  if (g_bytes_get_size (key) != 32)
    {
      fail (error, _("secret '%s': its keyid secret must be 32 bytes long (AES-256)"), id);
      return NULL;
    }
  if (g_bytes_get_size (iv) != 16)
    {
      fail (error, _("secret '%s': iv must be 16 bytes (base64 encoded)"), id);
      return NULL;
    }
  if (len == 0 || len % 16 != 0)
    {
      fail (error, _("secret '%s': the encrypted data is not a whole number of AES blocks"), id);
      return NULL;
    }
  plain = secure_alloc (len, error);
  if (!plain)
    return NULL;
  if (gcry_cipher_open (&cipher, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_CBC, GCRY_CIPHER_SECURE) ||
      gcry_cipher_setkey (cipher, g_bytes_get_data (key, NULL), 32) ||
      gcry_cipher_setiv (cipher, g_bytes_get_data (iv, NULL), 16) ||
      gcry_cipher_decrypt (cipher, plain, len, g_bytes_get_data (ciphertext, NULL), len))
    {
      gcry_cipher_close (cipher);
      explicit_bzero (plain, len);
      gcry_free (plain);
      fail (error, _("secret '%s': AES-256-CBC decryption failed"), id);
      return NULL;
    }
  gcry_cipher_close (cipher);
  /* a wrong key shows as bad padding; the byte itself is not secret
   * enough to matter, but it is not printed either */
  pad = plain[len - 1];
  if (pad > 16 || pad > len)
    {
      explicit_bzero (plain, len);
      gcry_free (plain);
      fail (error, _("secret '%s': wrong padding after decryption (wrong keyid secret or iv?)"),
            id);
      return NULL;
    }
  return secure_bytes_new (plain, len - pad, len);
}

static const char *const secret_props[] = { "qom-type", "id", "file", "data", "format", "keyid", "iv", NULL };

/* One --object: only secrets, the one kind of object qemu-img needs for
 * images. */
static gboolean
add_object (ToolKeys *keys, const char *text, GError **error)
{
  g_autoptr(GHashTable) opts = NULL;
  GHashTableIter iter;
  gpointer k;
  const char *type, *id, *file, *data, *format, *keyid, *iv;
  gboolean base64 = FALSE;
  g_autoptr(GBytes) raw = NULL;
  g_autoptr(GBytes) value = NULL;

  if (text[0] == '{')
    return fail (error, _("--object: the JSON form is not supported; use secret,id=ID,..."));
  opts = parse_opts (text, "qom-type", "--object", error);
  if (!opts)
    return FALSE;
  type = g_hash_table_lookup (opts, "qom-type");
  if (!type)
    return fail (error, _("--object: the object type is missing (expected secret,id=ID,...)"));
  if (!g_str_equal (type, "secret"))
    return fail (error, _("--object: unknown object type '%s'; rechain only takes "
                          "secret objects"), type);
  id = g_hash_table_lookup (opts, "id");
  if (!id || !*id)
    return fail (error, _("--object secret: id=ID is missing"));
  g_hash_table_iter_init (&iter, opts);
  while (g_hash_table_iter_next (&iter, &k, NULL))
    if (!g_strv_contains (secret_props, k))
      return fail (error, _("secret '%s': unknown property '%s'"), id, (const char *) k);
  if (g_hash_table_contains (keys->secrets, id))
    return fail (error, _("secret '%s' is defined twice"), id);
  file = g_hash_table_lookup (opts, "file");
  data = g_hash_table_lookup (opts, "data");
  format = g_hash_table_lookup (opts, "format");
  keyid = g_hash_table_lookup (opts, "keyid");
  iv = g_hash_table_lookup (opts, "iv");
  if (file && data)
    return fail (error, _("secret '%s': file= and data= exclude each other"), id);
  if (!file && !data)
    return fail (error, _("secret '%s': file= or data= is required"), id);
  if (format && g_str_equal (format, "base64"))
    base64 = TRUE;
  else if (format && !g_str_equal (format, "raw"))
    return fail (error, _("secret '%s': format must be raw or base64, not '%s'"), id, format);
  if (iv && !keyid)
    return fail (error, _("secret '%s': iv= only applies with keyid="), id);

  if (file)
    raw = read_secret_file (id, file, error);
  else
    {
      gsize len = strlen (data);
      guint8 *copy = secure_alloc (len, error);
      if (copy)
        {
          memcpy (copy, data, len);
          raw = secure_bytes_new (copy, len, MAX (len, 1));
        }
    }
  if (!raw)
    return FALSE;

  if (keyid)
    {
      GBytes *key = g_hash_table_lookup (keys->secrets, keyid);
      g_autoptr(GBytes) iv_bytes = NULL;
      g_autoptr(GBytes) ciphertext = NULL;

      if (!key)
        return fail (error, _("secret '%s': its keyid '%s' names no secret defined before it"),
                     id, keyid);
      if (!iv)
        return fail (error, _("secret '%s': keyid= needs iv="), id);
      iv_bytes = base64_decode_secure ((const guint8 *) iv, strlen (iv), id, "iv", error);
      if (!iv_bytes)
        return FALSE;
      /* as QEMU: format=base64 says how the ciphertext is encoded, and the
       * plaintext is used as it is */
      ciphertext = base64 ? base64_decode_secure (g_bytes_get_data (raw, NULL),
                                                  g_bytes_get_size (raw), id, "data", error)
                          : g_bytes_ref (raw);
      if (!ciphertext)
        return FALSE;
      value = decrypt_secret (id, ciphertext, key, iv_bytes, error);
    }
  else if (base64)
    value = base64_decode_secure (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw), id,
                                  "data", error);
  else
    value = g_bytes_ref (raw);
  if (!value)
    return FALSE;
  g_hash_table_insert (keys->secrets, g_strdup (id), g_steal_pointer (&value));
  return TRUE;
}

ToolKeys *
tool_keys_new (const ToolKeyOptions *options, GError **error)
{
  g_autoptr(ToolKeys) keys = g_new0 (ToolKeys, 1);

  /* first: it sets libgcrypt up (secure memory) for this process too */
  keys->keyring = rechain_keyring_new ();
  keys->secrets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; options->objects && options->objects[i]; i++)
    if (!add_object (keys, options->objects[i], error))
      return NULL;
  return g_steal_pointer (&keys);
}

void
tool_keys_free (ToolKeys *keys)
{
  g_clear_pointer (&keys->secrets, g_hash_table_unref);
  g_clear_object (&keys->keyring);
  g_free (keys);
}

RechainKeyring *
tool_keys_get_keyring (ToolKeys *keys)
{
  return keys->keyring;
}

static GBytes *
lookup_secret (ToolKeys *keys, const char *id, GError **error)
{
  GBytes *secret = g_hash_table_lookup (keys->secrets, id);

  if (!secret)
    fail (error, _("no secret with id '%s' (define it with --object secret,id=%s,file=FILE)"),
          id, id);
  return secret;
}

/* As QEMU resolves a backing file name: relative to the directory of the
 * image that records it; a "file:" prefix is the file protocol. */
static char *
resolve_name (const char *from, const char *name)
{
  g_autofree char *dir = NULL;

  if (g_str_has_prefix (name, "file:"))
    name += strlen ("file:");
  if (g_path_is_absolute (name))
    return g_strdup (name);
  dir = g_path_get_dirname (from);
  return g_build_filename (dir, name, NULL);
}

/* The file at @depth below @path (0: @path itself), through the backing
 * names in the headers; NULL where the chain cannot be followed (a
 * missing backing file, which an unsafe rebase does not need). */
static char *
file_at_depth (const char *path, guint depth)
{
  g_autofree char *current = g_strdup (path);

  for (guint d = 0; d < depth; d++)
    {
      g_autoptr(RechainImage) image = rechain_image_open (current, NULL,
                                                          RECHAIN_IMAGE_OPEN_NO_BACKING |
                                                          RECHAIN_IMAGE_OPEN_FORCE_SHARE,
                                                          NULL, NULL);
      const char *name = image ? rechain_image_get_backing_file (image) : NULL;
      char *next;

      if (!name || g_str_has_prefix (name, "json:"))
        return NULL;
      next = resolve_name (current, name);
      g_free (current);
      current = next;
    }
  return g_steal_pointer (&current);
}

/* The image options qemu-img takes for a qcow2 image and its chain, as
 * dotted keys (a json: name is flattened to these). */
typedef struct {
  char *filename;   /* file.filename */
  char *driver;     /* driver: qcow2, raw; NULL: probe */
  /* encrypt.key-secret of the image (0), backing. (1), backing.backing. (2)... */
  GPtrArray *key_secrets;
  /* backing.file.filename, backing.backing.file.filename, ... ([0] unused) */
  GPtrArray *filenames;
} ImageOpts;

static void
image_opts_clear (ImageOpts *o)
{
  g_clear_pointer (&o->filename, g_free);
  g_clear_pointer (&o->driver, g_free);
  g_clear_pointer (&o->key_secrets, g_ptr_array_unref);
  g_clear_pointer (&o->filenames, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ImageOpts, image_opts_clear)

static void
set_at (GPtrArray *array, guint index, const char *value)
{
  if (array->len <= index)
    g_ptr_array_set_size (array, index + 1);
  g_free (g_ptr_array_index (array, index));
  g_ptr_array_index (array, index) = g_strdup (value);
}

/* One key of --image-opts or of a json: name. Only what concerns the
 * file, the format and the keys of the chain is taken: anything else
 * would change how QEMU opens the image in ways rechain would ignore. */
static gboolean
image_opt (ImageOpts *o, const char *key, const char *value, const char *what, GError **error)
{
  guint depth = 0;
  const char *rest = key;

  while (g_str_has_prefix (rest, "backing."))
    {
      rest += strlen ("backing.");
      depth++;
    }
  if (depth > MAX_BACKING_DEPTH)
    return fail (error, _("%s: key '%s' goes deeper than any chain rechain opens"), what, key);
  if (g_str_equal (rest, "encrypt.key-secret"))
    {
      set_at (o->key_secrets, depth, value);
      return TRUE;
    }
  if (g_str_equal (rest, "encrypt.format"))
    {
      if (!g_str_equal (value, "luks") && !g_str_equal (value, "aes"))
        return fail (error, _("%s: encrypt.format must be luks or aes, not '%s'"), what, value);
      return TRUE;
    }
  if (g_str_equal (rest, "file.filename"))
    {
      if (depth == 0)
        {
          g_free (o->filename);
          o->filename = g_strdup (value);
        }
      else
        set_at (o->filenames, depth, value);
      return TRUE;
    }
  if (g_str_equal (rest, "file.driver"))
    {
      if (!g_str_equal (value, "file"))
        return fail (error, _("%s: only local files are supported (file.driver=file), not '%s'"),
                     what, value);
      return TRUE;
    }
  if (g_str_equal (rest, "driver"))
    {
      if (!g_str_equal (value, "qcow2") && !g_str_equal (value, "raw"))
        return fail (error, _("%s: driver must be qcow2 or raw, not '%s'"), what, value);
      if (depth == 0)
        {
          g_free (o->driver);
          o->driver = g_strdup (value);
        }
      return TRUE;
    }
  return fail (error, _("%s: unknown key '%s' (rechain takes driver, file.filename, "
                        "encrypt.key-secret and their backing. forms)"), what, key);
}

static void
image_opts_init (ImageOpts *o)
{
  o->key_secrets = g_ptr_array_new_with_free_func (g_free);
  o->filenames = g_ptr_array_new_with_free_func (g_free);
}

/* Gives the keyring the passphrase of each layer @o names a secret for:
 * the image, then the files below it by their depth in the chain. */
static gboolean
apply_image_opts (ToolKeys *keys, const ImageOpts *o, const char *what, GError **error)
{
  for (guint d = 0; d < o->key_secrets->len; d++)
    {
      const char *id = g_ptr_array_index (o->key_secrets, d);
      const char *named = d < o->filenames->len ? g_ptr_array_index (o->filenames, d) : NULL;
      g_autofree char *path = NULL;
      GBytes *secret;

      if (!id)
        continue;
      secret = lookup_secret (keys, id, error);
      if (!secret)
        return FALSE;
      path = d == 0 ? g_strdup (o->filename) : named ? g_strdup (named) : file_at_depth (o->filename, d);
      /* a file that cannot be found needs no key: the open that follows
       * reports a missing image (exit status 3), and an unsafe rebase
       * does not open a missing backing file at all */
      if (!path || access (path, F_OK) < 0)
        continue;
      if (!rechain_keyring_add_passphrase (keys->keyring, path, secret, error))
        {
          g_prefix_error (error, "%s: ", what);
          return FALSE;
        }
    }
  return TRUE;
}

char *
tool_keys_image_arg (ToolKeys *keys, const ToolKeyOptions *options, const char *arg,
                     char **format, GError **error)
{
  g_auto(ImageOpts) o = { 0 };
  g_autoptr(GHashTable) opts = NULL;
  GHashTableIter iter;
  gpointer k, v;

  if (!options->image_opts)
    return g_strdup (arg);
  image_opts_init (&o);
  opts = parse_opts (arg, NULL, "--image-opts", error);
  if (!opts)
    return NULL;
  g_hash_table_iter_init (&iter, opts);
  while (g_hash_table_iter_next (&iter, &k, &v))
    if (!image_opt (&o, k, v, "--image-opts", error))
      return NULL;
  if (!o.filename)
    {
      fail (error, _("--image-opts: file.filename=PATH is missing"));
      return NULL;
    }
  if (!apply_image_opts (keys, &o, o.filename, error))
    return NULL;
  if (o.driver && format)
    {
      if (*format && !g_str_equal (*format, o.driver))
        {
          fail (error, _("--image-opts: driver=%s contradicts -f %s"), o.driver, *format);
          return NULL;
        }
      g_free (*format);
      *format = g_strdup (o.driver);
    }
  return g_steal_pointer (&o.filename);
}

/* "a": {"b": "c"} -> "a.b" = "c", as QEMU flattens json: names; numbers
 * and booleans as their text. */
static gboolean
flatten_json (ImageOpts *o, JsonObject *object, const char *prefix, GError **error)
{
  g_autoptr(GList) members = json_object_get_members (object);

  for (GList *m = members; m; m = m->next)
    {
      JsonNode *node = json_object_get_member (object, m->data);
      g_autofree char *key = prefix ? g_strconcat (prefix, ".", m->data, NULL) : g_strdup (m->data);

      if (JSON_NODE_HOLDS_OBJECT (node))
        {
          if (!flatten_json (o, json_node_get_object (node), key, error))
            return FALSE;
        }
      else if (JSON_NODE_HOLDS_VALUE (node))
        {
          g_autofree char *text = NULL;
          GType type = json_node_get_value_type (node);

          if (type == G_TYPE_STRING)
            text = g_strdup (json_node_get_string (node));
          else if (type == G_TYPE_BOOLEAN)
            text = g_strdup (json_node_get_boolean (node) ? "on" : "off");
          else
            text = g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
          if (!image_opt (o, key, text, "-b json:", error))
            return FALSE;
        }
      else
        return fail (error, _("-b json: the value of '%s' must be a string or an object"), key);
    }
  return TRUE;
}

char *
tool_keys_backing_arg (ToolKeys *keys, const char *image_path, const char *arg, char **format,
                       GError **error)
{
  g_auto(ImageOpts) o = { 0 };
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *resolved = NULL;
  JsonNode *root;

  if (!arg || !g_str_has_prefix (arg, "json:"))
    return g_strdup (arg);
  image_opts_init (&o);
  if (!json_parser_load_from_data (parser, arg + strlen ("json:"), -1, NULL) ||
      !(root = json_parser_get_root (parser)) || !JSON_NODE_HOLDS_OBJECT (root))
    {
      fail (error, _("-b json: is not a JSON object"));
      return NULL;
    }
  if (!flatten_json (&o, json_node_get_object (root), NULL, error))
    return NULL;
  if (!o.filename)
    {
      fail (error, _("-b json: names no file (file.filename)"));
      return NULL;
    }
  /* the keys are found by file, which is relative to the image as the
   * name written into its header is */
  resolved = resolve_name (image_path, o.filename);
  g_free (o.filename);
  o.filename = g_steal_pointer (&resolved);
  if (!apply_image_opts (keys, &o, o.filename, error))
    return NULL;
  if (o.driver)
    {
      if (*format && !g_str_equal (*format, o.driver))
        {
          fail (error, _("-b json: driver %s contradicts -F %s"), o.driver, *format);
          return NULL;
        }
      g_free (*format);
      *format = g_strdup (o.driver);
    }
  /* the plain name goes into the header, not the json: text: see rechain(1) */
  {
    JsonObject *top = json_node_get_object (root);
    JsonNode *file = json_object_get_member (top, "file");
    const char *name = NULL;

    if (file && JSON_NODE_HOLDS_OBJECT (file))
      name = json_object_get_string_member_with_default (json_node_get_object (file),
                                                         "filename", NULL);
    if (!name)
      name = json_object_get_string_member_with_default (top, "file.filename", NULL);
    return g_strdup (name);
  }
}

/* [IMAGE=]VALUE; without IMAGE= (or with an empty one), the default. */
static void
split_image_value (const char *arg, char **image, const char **value)
{
  const char *eq = strchr (arg, '=');

  if (eq && eq != arg)
    {
      *image = g_strndup (arg, eq - arg);
      *value = eq + 1;
    }
  else
    {
      *image = NULL;
      *value = eq ? eq + 1 : arg;
    }
}

static gboolean
add_native (ToolKeys *keys, const char *option, const char *arg, gboolean is_file, GError **error)
{
  g_autofree char *image = NULL;
  g_autoptr(GBytes) owned = NULL;
  const char *value;
  GBytes *secret;

  split_image_value (arg, &image, &value);
  if (!*value)
    return fail (error, _("%s: expected [IMAGE=]%s"), option, is_file ? "FILE" : "ID");
  if (is_file)
    secret = owned = read_secret_file (value, value, error);
  else
    secret = lookup_secret (keys, value, error);
  if (!secret)
    return FALSE;
  if (image)
    return rechain_keyring_add_passphrase (keys->keyring, image, secret, error);
  return rechain_keyring_add_default_passphrase (keys->keyring, secret, error);
}

gboolean
tool_keys_add_native (ToolKeys *keys, const ToolKeyOptions *options, GError **error)
{
  for (guint i = 0; options->key_files && options->key_files[i]; i++)
    if (!add_native (keys, "--key-file", options->key_files[i], TRUE, error))
      return FALSE;
  for (guint i = 0; options->key_secrets && options->key_secrets[i]; i++)
    if (!add_native (keys, "--key-secret", options->key_secrets[i], FALSE, error))
      return FALSE;
  return TRUE;
}

void
tool_keys_add_entries (GOptionContext *context, ToolKeyOptions *options)
{
  const GOptionEntry entries[] = {
    { "object", 0, 0, G_OPTION_ARG_STRING_ARRAY, &options->objects, N_("A secret, as qemu-img takes it: secret,id=ID,file=FILE|data=DATA[,format=raw|base64][,keyid=ID,iv=IV]"), N_("OBJECT") },
    { "image-opts", 0, 0, G_OPTION_ARG_NONE, &options->image_opts, N_("IMAGE is a list of options, as for qemu-img: driver=qcow2,file.filename=PATH,encrypt.key-secret=ID[,backing.encrypt.key-secret=ID…]"), NULL },
    { "key-file", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &options->key_files, N_("The passphrase of IMAGE (without IMAGE=, of every encrypted image) is the whole content of FILE"), N_("[IMAGE=]FILE") },
    { "key-secret", 0, 0, G_OPTION_ARG_STRING_ARRAY, &options->key_secrets, N_("The passphrase of IMAGE (without IMAGE=, of every encrypted image) is the --object secret ID"), N_("[IMAGE=]ID") },
    { NULL }
  };

  /* GOption copies the entries */
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
}

void
tool_key_options_clear (ToolKeyOptions *options)
{
  /* --object data= values: wiped, as far as this copy goes */
  for (guint i = 0; options->objects && options->objects[i]; i++)
    explicit_bzero (options->objects[i], strlen (options->objects[i]));
  g_clear_pointer (&options->objects, g_strfreev);
  g_clear_pointer (&options->key_files, g_strfreev);
  g_clear_pointer (&options->key_secrets, g_strfreev);
}
