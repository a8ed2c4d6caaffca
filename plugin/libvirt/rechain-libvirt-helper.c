/* rechain-libvirt-helper.c: the "libvirt" volume helper. Volumes are
 * resolved through storage pools (path and format from the volume XML);
 * the users of an image are the domains with a disk whose image, or any
 * image of whose backing chain (followed through the images themselves),
 * is that image; a change refreshes the pool; the storage directories
 * (to which chains are confined) are the target paths of the local pools;
 * the key of an encrypted volume is the value of the secret its
 * <encryption format='luks'> names, from libvirt's secret driver.
 * libvirt's public API only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gi18n-lib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <rechain/rechain.h>

#include "rechain-libvirt-helper.h"

/* ---- a small XML tree, enough for libvirt's XML descriptions ---- */

typedef struct XNode XNode;
struct XNode {
  char *name;
  char **attr_names;
  char **attr_values;
  GPtrArray *children;
  GString *text;
  XNode *parent;
};

static void
xnode_free (XNode *n)
{
  if (n == NULL)
    return;
  g_free (n->name);
  g_strfreev (n->attr_names);
  g_strfreev (n->attr_values);
  g_ptr_array_unref (n->children);
  g_string_free (n->text, TRUE);
  g_free (n);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (XNode, xnode_free)

typedef struct {
  XNode *root;
  XNode *cur;
} XParse;

static void
x_start (GMarkupParseContext *ctx, const char *name, const char **names, const char **values,
         gpointer user_data, GError **error)
{
  XParse *p = user_data;
  XNode *n = g_new0 (XNode, 1);
  n->name = g_strdup (name);
  n->attr_names = g_strdupv ((char **) names);
  n->attr_values = g_strdupv ((char **) values);
  n->children = g_ptr_array_new_with_free_func ((GDestroyNotify) xnode_free);
  n->text = g_string_new (NULL);
  n->parent = p->cur;
  if (p->cur != NULL)
    g_ptr_array_add (p->cur->children, n);
  else if (p->root == NULL)
    p->root = n;
  else
    {
      xnode_free (n);
      g_set_error_literal (error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT, _("two roots"));
      return;
    }
  p->cur = n;
}

static void
x_end (GMarkupParseContext *ctx, const char *name, gpointer user_data, GError **error)
{
  XParse *p = user_data;
  p->cur = p->cur->parent;
}

static void
x_text (GMarkupParseContext *ctx, const char *text, gsize len, gpointer user_data, GError **error)
{
  XParse *p = user_data;
  if (p->cur != NULL)
    g_string_append_len (p->cur->text, text, len);
}

static XNode *
xml_parse (const char *xml, GError **error)
{
  static const GMarkupParser parser = { x_start, x_end, x_text, NULL, NULL };
  XParse p = { NULL, NULL };
  GMarkupParseContext *ctx = g_markup_parse_context_new (&parser, 0, &p, NULL);
  gboolean ok = g_markup_parse_context_parse (ctx, xml, -1, error)
                && g_markup_parse_context_end_parse (ctx, error);
  g_markup_parse_context_free (ctx);
  if (!ok || p.root == NULL)
    {
      xnode_free (p.root);
      if (ok)
        g_set_error_literal (error, G_MARKUP_ERROR, G_MARKUP_ERROR_EMPTY, _("empty XML document"));
      return NULL;
    }
  return p.root;
}

static XNode *
x_child (XNode *n, const char *name)
{
  for (guint i = 0; n != NULL && i < n->children->len; i++)
    {
      XNode *c = g_ptr_array_index (n->children, i);
      if (strcmp (c->name, name) == 0)
        return c;
    }
  return NULL;
}

static const char *
x_attr (XNode *n, const char *name)
{
  for (guint i = 0; n != NULL && n->attr_names[i] != NULL; i++)
    if (strcmp (n->attr_names[i], name) == 0)
      return n->attr_values[i];
  return NULL;
}

static char *
x_text_of (XNode *n)
{
  return n ? g_strstrip (g_strdup (n->text->str)) : NULL;
}

/* ---- the helper ---- */

typedef struct {
  GObject parent_instance;
  char *uri;       /* as asked for, or NULL for libvirt's default */
  char *conn_uri;  /* as connected */
  virConnectPtr conn;
} RechainLibvirtHelper;

typedef struct {
  GObjectClass parent_class;
} RechainLibvirtHelperClass;

static void helper_iface_init (RechainVolumeHelperInterface *iface);
static void initable_iface_init (GInitableIface *iface);

G_DEFINE_DYNAMIC_TYPE_EXTENDED (RechainLibvirtHelper, rechain_libvirt_helper, G_TYPE_OBJECT, 0,
    G_IMPLEMENT_INTERFACE_DYNAMIC (RECHAIN_TYPE_VOLUME_HELPER, helper_iface_init)
    G_IMPLEMENT_INTERFACE_DYNAMIC (G_TYPE_INITABLE, initable_iface_init))

enum { PROP_0, PROP_URI };

static const char *
helper_uri (RechainLibvirtHelper *self)
{
  return self->conn_uri ? self->conn_uri : self->uri ? self->uri : _("(default URI)");
}

static void
ignore_libvirt_error (void *data, virErrorPtr error)
{
  /* Errors are reported through GError; libvirt would print them too. */
}

/* Sets @error from libvirt's last error: "URI: what: libvirt's message". */
G_GNUC_PRINTF (4, 5) static void
set_virt_error (GError **error, RechainLibvirtHelper *self, int fallback, const char *format, ...)
{
  virErrorPtr e = virGetLastError ();
  int code = fallback;
  if (e != NULL)
    switch (e->code)
      {
      case VIR_ERR_NO_STORAGE_POOL:
      case VIR_ERR_NO_STORAGE_VOL:
      case VIR_ERR_NO_DOMAIN:
        code = G_IO_ERROR_NOT_FOUND;
        break;
      case VIR_ERR_AUTH_FAILED:
      case VIR_ERR_AUTH_CANCELLED:
      case VIR_ERR_AUTH_UNAVAILABLE:
      case VIR_ERR_OPERATION_DENIED:
      case VIR_ERR_ACCESS_DENIED:
        code = G_IO_ERROR_PERMISSION_DENIED;
        break;
      case VIR_ERR_SYSTEM_ERROR:
        if (e->int1 == EACCES || e->int1 == EPERM)
          code = G_IO_ERROR_PERMISSION_DENIED;
        break;
      case VIR_ERR_NO_CONNECT:
        code = G_IO_ERROR_CONNECTION_REFUSED;
        break;
      default:
        break;
      }
  va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, G_IO_ERROR, code, "%s: %s: %s", helper_uri (self), what,
               e != NULL && e->message != NULL ? e->message : _("unknown libvirt error"));
  virResetLastError ();
}

static gboolean
helper_initable_init (GInitable *initable, GCancellable *cancellable, GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) initable;
  if (self->conn != NULL)
    return TRUE;
  self->conn = virConnectOpen (self->uri);
  if (self->conn == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_CONNECTION_REFUSED, _("cannot connect to libvirt"));
      return FALSE;
    }
  char *u = virConnectGetURI (self->conn);
  if (u != NULL)
    {
      self->conn_uri = g_strdup (u);
      free (u);
    }
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = helper_initable_init;
}

static gboolean
ensure_connected (RechainLibvirtHelper *self, GError **error)
{
  if (self->conn != NULL)
    return TRUE;
  return helper_initable_init (G_INITABLE (self), NULL, error);
}

/* Probes the format of a file outside the pools. */
static char *
probe_format (const char *path, GCancellable *cancellable, GError **error)
{
  g_autoptr (RechainImage) image = rechain_image_open (path, NULL,
                                                       RECHAIN_IMAGE_OPEN_FORCE_SHARE |
                                                       RECHAIN_IMAGE_OPEN_NO_BACKING,
                                                       cancellable, error);
  return image ? g_strdup (rechain_image_get_format (image)) : NULL;
}

/* Pool types whose volumes are local files or block devices, for which
 * libvirt records the volume's target path as the backing name. */
static gboolean
pool_type_is_local (const char *type)
{
  static const char *const local[] = { "dir", "fs", "netfs", "logical", "disk", "iscsi", "scsi",
                                       "mpath", "zfs", "vstorage", NULL };
  return type != NULL && g_strv_contains (local, type);
}

static RechainVolume *
volume_from_vol (RechainLibvirtHelper *self, virStoragePoolPtr pool, virStorageVolPtr vol,
                 GError **error)
{
  const char *pool_name = virStoragePoolGetName (pool);
  const char *vol_name = virStorageVolGetName (vol);
  char *pool_xml = virStoragePoolGetXMLDesc (pool, 0);
  if (pool_xml == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("pool \"%s\""), pool_name);
      return NULL;
    }
  g_autoptr (XNode) pool_doc = xml_parse (pool_xml, error);
  free (pool_xml);
  if (pool_doc == NULL)
    return NULL;
  const char *pool_type = x_attr (pool_doc, "type");
  if (!pool_type_is_local (pool_type))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: pool \"%s\" is of type \"%s\": rechain opens local files only"),
                   helper_uri (self), pool_name, pool_type ? pool_type : "?");
      return NULL;
    }

  char *vol_xml = virStorageVolGetXMLDesc (vol, 0);
  if (vol_xml == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("volume \"%s\" of pool \"%s\""), vol_name,
                      pool_name);
      return NULL;
    }
  g_autoptr (XNode) doc = xml_parse (vol_xml, error);
  free (vol_xml);
  if (doc == NULL)
    return NULL;
  XNode *target = x_child (doc, "target");
  g_autofree char *path = x_text_of (x_child (target, "path"));
  const char *format = x_attr (x_child (target, "format"), "type");
  if (path == NULL || *path != '/')
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: volume \"%s\" of pool \"%s\" has no local path"), helper_uri (self),
                   vol_name, pool_name);
      return NULL;
    }
  /* libvirt's "none"/"unknown" formats: let rechain probe. */
  if (format != NULL && (g_str_equal (format, "none") || g_str_equal (format, "unknown")))
    format = NULL;
  /* What libvirt records when it creates a volume on this one (qemu-img
   * create -b TARGET-PATH): the absolute target path, for every local
   * pool type. */
  return rechain_volume_new (RECHAIN_VOLUME_HELPER (self), pool_name, vol_name, path, format, path);
}

static RechainVolume *
helper_resolve (RechainVolumeHelper *helper, const char *pool_name, const char *name,
                GCancellable *cancellable, GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return NULL;

  if (strchr (name, '/') != NULL)
    {
      /* A path: a volume of any pool, or a file outside the pools. */
      g_autofree char *path = g_canonicalize_filename (name, NULL);
      virStorageVolPtr vol = virStorageVolLookupByPath (self->conn, path);
      if (vol != NULL)
        {
          virStoragePoolPtr pool = virStoragePoolLookupByVolume (vol);
          RechainVolume *v = NULL;
          if (pool != NULL)
            {
              v = volume_from_vol (self, pool, vol, error);
              virStoragePoolFree (pool);
            }
          else
            set_virt_error (error, self, G_IO_ERROR_FAILED, _("pool of volume %s"), path);
          virStorageVolFree (vol);
          return v;
        }
      virResetLastError ();
      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                       _("%s: %s is neither a volume of a pool nor an existing file"),
                       helper_uri (self), path);
          return NULL;
        }
      g_autofree char *format = probe_format (path, cancellable, error);
      if (format == NULL)
        return NULL;
      return rechain_volume_new (helper, NULL, path, path, format, path);
    }

  if (pool_name == NULL || *pool_name == '\0')
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("%s: volume \"%s\": a volume name needs a pool (or give a path)"),
                   helper_uri (self), name);
      return NULL;
    }
  virStoragePoolPtr pool = virStoragePoolLookupByName (self->conn, pool_name);
  if (pool == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_NOT_FOUND, _("no storage pool \"%s\""), pool_name);
      return NULL;
    }
  RechainVolume *v = NULL;
  if (virStoragePoolIsActive (pool) != 1)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("%s: storage pool \"%s\" is not active (virsh pool-start %s)"),
                   helper_uri (self), pool_name, pool_name);
      virStoragePoolFree (pool);
      return NULL;
    }
  virStorageVolPtr vol = virStorageVolLookupByName (pool, name);
  if (vol == NULL)
    {
      /* Perhaps made after the pool's last refresh (qemu-img create). */
      virResetLastError ();
      if (virStoragePoolRefresh (pool, 0) == 0)
        vol = virStorageVolLookupByName (pool, name);
    }
  if (vol == NULL)
    set_virt_error (error, self, G_IO_ERROR_NOT_FOUND, _("no volume \"%s\" in storage pool \"%s\""),
                    name, pool_name);
  else
    {
      v = volume_from_vol (self, pool, vol, error);
      virStorageVolFree (vol);
    }
  virStoragePoolFree (pool);
  return v;
}

/* ---- who uses an image ---- */

typedef struct {
  gboolean have_stat;
  dev_t dev;
  ino_t ino;
  char *path;
} FileId;

static void
file_id_init (FileId *id, const char *path)
{
  struct stat st;
  id->path = g_canonicalize_filename (path, NULL);
  id->have_stat = stat (path, &st) == 0;
  if (id->have_stat)
    {
      id->dev = st.st_dev;
      id->ino = st.st_ino;
    }
}

static gboolean
file_id_matches (const FileId *id, const char *path)
{
  struct stat st;
  if (id->have_stat && stat (path, &st) == 0)
    return st.st_dev == id->dev && st.st_ino == id->ino;
  g_autofree char *canon = g_canonicalize_filename (path, NULL);
  return g_str_equal (canon, id->path);
}

/* Whether @top or an image of its backing chain (followed through the
 * images: each header's backing name and format) is @id. */
static gboolean
chain_contains (const char *top, const char *format, const FileId *id, GCancellable *cancellable)
{
  g_autofree char *path = g_strdup (top);
  g_autofree char *fmt = g_strdup (format);
  for (guint depth = 0; path != NULL && depth < rechain_get_max_chain_depth (); depth++)
    {
      if (file_id_matches (id, path))
        return TRUE;
      g_autoptr (GError) error = NULL;
      g_autoptr (RechainImage) image = rechain_image_open (path, fmt,
                                                           RECHAIN_IMAGE_OPEN_FORCE_SHARE |
                                                           RECHAIN_IMAGE_OPEN_NO_BACKING,
                                                           cancellable, &error);
      if (image == NULL)
        {
          g_debug ("%s: %s", path, error->message);
          return FALSE;
        }
      const char *backing = rechain_image_get_backing_file (image);
      if (backing == NULL || *backing == '\0')
        return FALSE;
      /* the library's rule: relative to the image, "file:" dropped, json:
       * and protocol names (not local files) refused */
      char *next = rechain_resolve_backing_name (path, backing, &error);
      if (next == NULL)
        {
          g_debug ("%s: %s", path, error->message);
          return FALSE;
        }
      g_free (fmt);
      fmt = g_strdup (rechain_image_get_backing_format (image));
      g_free (path);
      path = next;
    }
  return FALSE;
}

/* The image a <disk> (or <backingStore>) opens, or NULL. */
static char *
disk_source_path (RechainLibvirtHelper *self, XNode *disk)
{
  const char *type = x_attr (disk, "type");
  XNode *source = x_child (disk, "source");
  if (source == NULL)
    return NULL;
  if (g_strcmp0 (type, "file") == 0 || type == NULL)
    return g_strdup (x_attr (source, "file"));
  if (g_strcmp0 (type, "block") == 0)
    return g_strdup (x_attr (source, "dev"));
  if (g_strcmp0 (type, "dir") == 0)
    return g_strdup (x_attr (source, "dir"));
  if (g_strcmp0 (type, "volume") == 0)
    {
      const char *pool_name = x_attr (source, "pool");
      const char *vol_name = x_attr (source, "volume");
      if (pool_name == NULL || vol_name == NULL)
        return NULL;
      char *path = NULL;
      virStoragePoolPtr pool = virStoragePoolLookupByName (self->conn, pool_name);
      if (pool != NULL)
        {
          virStorageVolPtr vol = virStorageVolLookupByName (pool, vol_name);
          if (vol != NULL)
            {
              char *p = virStorageVolGetPath (vol);
              path = g_strdup (p);
              free (p);
              virStorageVolFree (vol);
            }
          virStoragePoolFree (pool);
        }
      virResetLastError ();
      return path;
    }
  return NULL; /* network disks: not local files */
}

/* Whether the <disk> @disk of a domain uses @id: its image, its backing
 * chain as the images record it, or (for running domains) the chain
 * libvirt reports in <backingStore>. */
static gboolean
disk_uses (RechainLibvirtHelper *self, XNode *disk, const FileId *id, char **source_out,
           GCancellable *cancellable)
{
  g_autofree char *source = disk_source_path (self, disk);
  if (source == NULL)
    return FALSE;
  const char *format = x_attr (x_child (disk, "driver"), "type");
  if (format != NULL && !g_str_equal (format, "qcow2") && !g_str_equal (format, "raw"))
    format = NULL;
  gboolean found = chain_contains (source, format, id, cancellable);
  for (XNode *bs = x_child (disk, "backingStore"); !found && bs != NULL;
       bs = x_child (bs, "backingStore"))
    {
      g_autofree char *p = disk_source_path (self, bs);
      found = p != NULL && file_id_matches (id, p);
    }
  if (found)
    *source_out = g_steal_pointer (&source);
  return found;
}

static gboolean
domain_users (RechainLibvirtHelper *self, virDomainPtr dom, const FileId *id, GPtrArray *users,
              GCancellable *cancellable, GError **error)
{
  const char *name = virDomainGetName (dom);
  int active = virDomainIsActive (dom);
  if (active < 0)
    {
      /* Gone meanwhile. */
      virResetLastError ();
      return TRUE;
    }
  char *xml = virDomainGetXMLDesc (dom, active ? 0 : VIR_DOMAIN_XML_INACTIVE);
  if (xml == NULL)
    {
      if (virGetLastErrorCode () == VIR_ERR_NO_DOMAIN)
        {
          virResetLastError ();
          return TRUE;
        }
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("domain \"%s\""), name);
      return FALSE;
    }
  g_autoptr (XNode) doc = xml_parse (xml, error);
  free (xml);
  if (doc == NULL)
    return FALSE;
  XNode *devices = x_child (doc, "devices");
  for (guint i = 0; devices != NULL && i < devices->children->len; i++)
    {
      XNode *disk = g_ptr_array_index (devices->children, i);
      g_autofree char *source = NULL;
      if (!g_str_equal (disk->name, "disk"))
        continue;
      if (disk_uses (self, disk, id, &source, cancellable))
        g_ptr_array_add (users, rechain_volume_user_new (name, x_attr (x_child (disk, "target"), "dev"),
                                                         source, active == 1));
    }
  return TRUE;
}

static int
active_first (gconstpointer a, gconstpointer b)
{
  const RechainVolumeUser *ua = *(RechainVolumeUser * const *) a;
  const RechainVolumeUser *ub = *(RechainVolumeUser * const *) b;
  return (ub->active != 0) - (ua->active != 0);
}

static GPtrArray *
helper_get_users (RechainVolumeHelper *helper, const char *path, GCancellable *cancellable,
                  GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return NULL;

  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains (self->conn, &doms, 0);
  if (n < 0)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("cannot list domains"));
      return NULL;
    }
  FileId id;
  file_id_init (&id, path);
  g_autoptr (GPtrArray) users = g_ptr_array_new_with_free_func ((GDestroyNotify) rechain_volume_user_free);
  gboolean ok = TRUE;
  for (int i = 0; i < n; i++)
    {
      if (ok)
        ok = !g_cancellable_set_error_if_cancelled (cancellable, error)
             && domain_users (self, doms[i], &id, users, cancellable, error);
      virDomainFree (doms[i]);
    }
  free (doms);
  g_free (id.path);
  if (!ok)
    return NULL;
  g_ptr_array_sort (users, active_first);
  return g_steal_pointer (&users);
}

/* ---- telling libvirt ---- */

static gboolean
helper_changed (RechainVolumeHelper *helper, RechainVolume *volume, GCancellable *cancellable,
                GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return FALSE;
  const char *pool_name = rechain_volume_get_pool (volume);
  virStoragePoolPtr pool = NULL;
  if (pool_name != NULL)
    pool = virStoragePoolLookupByName (self->conn, pool_name);
  else
    {
      virStorageVolPtr vol = virStorageVolLookupByPath (self->conn, rechain_volume_get_path (volume));
      if (vol == NULL)
        {
          /* A file outside the pools: nothing to refresh. */
          virResetLastError ();
          return TRUE;
        }
      pool = virStoragePoolLookupByVolume (vol);
      virStorageVolFree (vol);
    }
  if (pool == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_NOT_FOUND, _("pool of %s"), rechain_volume_get_path (volume));
      return FALSE;
    }
  int r = virStoragePoolRefresh (pool, 0);
  if (r < 0)
    set_virt_error (error, self, G_IO_ERROR_FAILED, _("refreshing storage pool \"%s\""),
                    virStoragePoolGetName (pool));
  virStoragePoolFree (pool);
  return r == 0;
}

/* ---- where the volumes live ---- */

/* The target directory of every local pool (active or inactive): where
 * libvirt keeps the volumes, and where their backing chains must stay. */
static char **
helper_get_storage_dirs (RechainVolumeHelper *helper, GCancellable *cancellable, GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return NULL;

  virStoragePoolPtr *pools = NULL;
  int n = virConnectListAllStoragePools (self->conn, &pools, 0);
  if (n < 0)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("cannot list storage pools"));
      return NULL;
    }
  g_autoptr (GStrvBuilder) dirs = g_strv_builder_new ();
  gboolean ok = TRUE;
  for (int i = 0; i < n; i++)
    {
      if (ok && g_cancellable_set_error_if_cancelled (cancellable, error))
        ok = FALSE;
      if (ok)
        {
          char *xml = virStoragePoolGetXMLDesc (pools[i], 0);
          if (xml == NULL)
            {
              if (virGetLastErrorCode () == VIR_ERR_NO_STORAGE_POOL)
                virResetLastError (); /* undefined meanwhile */
              else
                {
                  set_virt_error (error, self, G_IO_ERROR_FAILED, _("pool \"%s\""),
                                  virStoragePoolGetName (pools[i]));
                  ok = FALSE;
                }
            }
          else
            {
              g_autoptr (XNode) doc = xml_parse (xml, error);
              free (xml);
              if (doc == NULL)
                ok = FALSE;
              else if (pool_type_is_local (x_attr (doc, "type")))
                {
                  g_autofree char *path = x_text_of (x_child (x_child (doc, "target"), "path"));
                  if (path != NULL && g_path_is_absolute (path))
                    g_strv_builder_add (dirs, path);
                }
            }
        }
      virStoragePoolFree (pools[i]);
    }
  free (pools);
  if (!ok)
    return NULL;
  return g_strv_builder_end (dirs);
}

/* ---- the keys of encrypted volumes ---- */

/* The volume whose target path is @path, or NULL (a file outside the
 * pools). libvirt knows volumes by their target paths: a name through a
 * symlink is tried once resolved as well. */
static virStorageVolPtr
vol_by_path (RechainLibvirtHelper *self, const char *path)
{
  virStorageVolPtr vol = virStorageVolLookupByPath (self->conn, path);
  if (vol == NULL)
    {
      virResetLastError ();
      char *real = realpath (path, NULL);
      if (real != NULL && strcmp (real, path) != 0)
        vol = virStorageVolLookupByPath (self->conn, real);
      free (real);
      if (vol == NULL)
        virResetLastError ();
    }
  return vol;
}

/* Sets @error for a secret @what (its uuid or usage: not secret) that
 * libvirt does not give: NOT_PERMITTED (no key for the volume) where the
 * secret is unknown, has no value or is private, libvirt's own error
 * otherwise (a lost connection is no fault of the image). */
static void
set_secret_error (GError **error, RechainLibvirtHelper *self, const char *vol_desc,
                  const char *what, gboolean lookup)
{
  int code = virGetLastErrorCode ();
  if (code != VIR_ERR_NO_SECRET && code != VIR_ERR_INVALID_SECRET)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("%s: its secret %s"), vol_desc, what);
      return;
    }
  virErrorPtr e = virGetLastError ();
  const char *msg = e != NULL && e->message != NULL ? e->message : _("unknown libvirt error");
  if (lookup)
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                 _("%s: %s is encrypted with the secret %s, which libvirt does not know "
                   "(virsh secret-define, or give the key with --key-file): %s"),
                 helper_uri (self), vol_desc, what, msg);
  else
    g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                 _("%s: %s is encrypted with the secret %s, whose value libvirt does not give "
                   "(virsh secret-set-value; a private secret is never given; or give the key "
                   "with --key-file): %s"),
                 helper_uri (self), vol_desc, what, msg);
  virResetLastError ();
}

static gboolean
helper_add_keys (RechainVolumeHelper *helper, const char *path, RechainKeyring *keyring,
                 GCancellable *cancellable, GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return FALSE;
  virStorageVolPtr vol = vol_by_path (self, path);
  if (vol == NULL)
    return TRUE; /* not a volume: libvirt keeps no key for it */

  gboolean ok = FALSE;
  virStoragePoolPtr pool = virStoragePoolLookupByVolume (vol);
  virResetLastError ();
  g_autofree char *vol_desc = g_strdup_printf (_("volume \"%s\" of pool \"%s\" (%s)"),
                                               virStorageVolGetName (vol),
                                               pool ? virStoragePoolGetName (pool) : "?", path);
  virSecretPtr secret = NULL;
  g_autoptr (XNode) doc = NULL;
  g_autofree char *what = NULL;
  char *xml = virStorageVolGetXMLDesc (vol, 0);
  if (xml == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, "%s", vol_desc);
      goto out;
    }
  doc = xml_parse (xml, error);
  free (xml);
  if (doc == NULL)
    goto out;
  XNode *enc = x_child (x_child (doc, "target"), "encryption");
  if (enc == NULL)
    {
      /* libvirt knows of no key: the image's own refusal (no key was
       * given for it) says what to do */
      ok = TRUE;
      goto out;
    }
  const char *format = x_attr (enc, "format");
  if (g_strcmp0 (format, "luks") != 0)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: %s has encryption format \"%s\": rechain takes the keys of LUKS "
                     "volumes only (<encryption format='luks'>)"),
                   helper_uri (self), vol_desc, format ? format : "default");
      goto out;
    }
  XNode *sec = x_child (enc, "secret");
  const char *type = x_attr (sec, "type");
  const char *uuid = x_attr (sec, "uuid");
  const char *usage = x_attr (sec, "usage");
  if (sec == NULL || (uuid == NULL && usage == NULL))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_NOT_PERMITTED,
                   _("%s: %s is encrypted, but its <encryption> names no secret"),
                   helper_uri (self), vol_desc);
      goto out;
    }
  what = uuid ? g_strdup (uuid) : g_strdup_printf ("usage=%s", usage);
  if (g_strcmp0 (type, "passphrase") != 0)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED,
                   _("%s: %s: its secret %s is of type \"%s\": rechain takes secrets of type "
                     "\"passphrase\" only"),
                   helper_uri (self), vol_desc, what, type ? type : "?");
      goto out;
    }
  secret = uuid ? virSecretLookupByUUIDString (self->conn, uuid)
                : virSecretLookupByUsage (self->conn, VIR_SECRET_USAGE_TYPE_VOLUME, usage);
  if (secret == NULL)
    {
      set_secret_error (error, self, vol_desc, what, TRUE);
      goto out;
    }
  size_t size = 0;
  unsigned char *value = virSecretGetValue (secret, &size, 0);
  if (value == NULL)
    {
      set_secret_error (error, self, vol_desc, what, FALSE);
      goto out;
    }
  /* The keyring copies it into its locked memory; this copy (libvirt's
   * heap) is wiped at once, and nothing here ever prints it. */
  GBytes *bytes = g_bytes_new_static (value, size);
  ok = rechain_keyring_add_passphrase (keyring, path, bytes, error);
  g_bytes_unref (bytes);
  explicit_bzero (value, size);
  free (value);

out:
  if (secret != NULL)
    virSecretFree (secret);
  if (pool != NULL)
    virStoragePoolFree (pool);
  virStorageVolFree (vol);
  return ok;
}

/* ---- the volumes of a pool ---- */

/* Every volume of the pool, after a refresh: pool-wide selection
 * (--clones-of) must see the clones made with qemu-img behind libvirt's
 * back, as resolving one name does. */
static GPtrArray *
helper_list_volumes (RechainVolumeHelper *helper, const char *pool_name, GCancellable *cancellable,
                     GError **error)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) helper;
  if (!ensure_connected (self, error))
    return NULL;
  virStoragePoolPtr pool = virStoragePoolLookupByName (self->conn, pool_name);
  if (pool == NULL)
    {
      set_virt_error (error, self, G_IO_ERROR_NOT_FOUND, _("no storage pool \"%s\""), pool_name);
      return NULL;
    }
  if (virStoragePoolIsActive (pool) != 1)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("%s: storage pool \"%s\" is not active (virsh pool-start %s)"),
                   helper_uri (self), pool_name, pool_name);
      virStoragePoolFree (pool);
      return NULL;
    }
  if (virStoragePoolRefresh (pool, 0) < 0)
    virResetLastError (); /* list what libvirt knows, then */
  virStorageVolPtr *vols = NULL;
  int n = virStoragePoolListAllVolumes (pool, &vols, 0);
  if (n < 0)
    {
      set_virt_error (error, self, G_IO_ERROR_FAILED, _("cannot list the volumes of storage pool \"%s\""),
                      pool_name);
      virStoragePoolFree (pool);
      return NULL;
    }
  g_autoptr (GPtrArray) volumes = g_ptr_array_new_with_free_func (g_object_unref);
  gboolean ok = TRUE;
  for (int i = 0; i < n; i++)
    {
      if (ok && g_cancellable_set_error_if_cancelled (cancellable, error))
        ok = FALSE;
      if (ok)
        {
          GError *local = NULL;
          RechainVolume *v = volume_from_vol (self, pool, vols[i], &local);
          if (v != NULL)
            g_ptr_array_add (volumes, v);
          else if (g_error_matches (local, RECHAIN_ERROR, RECHAIN_ERROR_UNSUPPORTED))
            g_error_free (local); /* not a local file: never a clone rechain moves */
          else
            {
              g_propagate_error (error, local);
              ok = FALSE;
            }
        }
      virStorageVolFree (vols[i]);
    }
  free (vols);
  virStoragePoolFree (pool);
  if (!ok)
    return NULL;
  return g_steal_pointer (&volumes);
}

static void
helper_iface_init (RechainVolumeHelperInterface *iface)
{
  iface->resolve = helper_resolve;
  iface->get_users = helper_get_users;
  iface->changed = helper_changed;
  iface->get_storage_dirs = helper_get_storage_dirs;
  iface->add_keys = helper_add_keys;
  iface->list_volumes = helper_list_volumes;
}

/* ---- GObject ---- */

static void
helper_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) object;
  if (id == PROP_URI)
    self->uri = g_value_dup_string (value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
helper_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) object;
  if (id == PROP_URI)
    g_value_set_string (value, self->conn_uri ? self->conn_uri : self->uri);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
helper_finalize (GObject *object)
{
  RechainLibvirtHelper *self = (RechainLibvirtHelper *) object;
  if (self->conn != NULL)
    virConnectClose (self->conn);
  g_free (self->uri);
  g_free (self->conn_uri);
  G_OBJECT_CLASS (rechain_libvirt_helper_parent_class)->finalize (object);
}

static void
rechain_libvirt_helper_class_init (RechainLibvirtHelperClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->set_property = helper_set_property;
  object_class->get_property = helper_get_property;
  object_class->finalize = helper_finalize;
  g_object_class_override_property (object_class, PROP_URI, "uri");
}

static void
rechain_libvirt_helper_class_finalize (RechainLibvirtHelperClass *klass)
{
}

static void
rechain_libvirt_helper_init (RechainLibvirtHelper *self)
{
}

void
rechain_libvirt_helper_register (GIOModule *module)
{
  if (virInitialize () < 0)
    g_warning (_("libvirt failed to initialize"));
  virSetErrorFunc (NULL, ignore_libvirt_error);
  rechain_libvirt_helper_register_type (G_TYPE_MODULE (module));
}
