/* layer.h: one opened image file (qcow2 or raw), the unit a backing chain is
 * made of. A layer answers two questions about guest offsets: what is
 * allocated where (rechain_layer_map) and what the bytes are
 * (rechain_layer_read). It knows nothing about its backing file: the chain
 * combines layers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>
#include "format/qcow2.h"
#include "format/qcow2-writer.h"
#include "format/luks-header.h"
#include "io/file.h"
#include "chain/extent.h"
#include "chain/keys.h"
#include "chain/trust.h"

G_BEGIN_DECLS

typedef enum {
  RECHAIN_FORMAT_RAW,
  RECHAIN_FORMAT_QCOW2,
} RechainFormat;

/* "raw"/"qcow2" <-> enum; unknown names are RECHAIN_ERROR_UNSUPPORTED */
gboolean rechain_format_from_string (const char *name, RechainFormat *format, GError **error);
const char *rechain_format_to_string (RechainFormat format);

/* Probes the format from the first bytes of @file (qcow2 magic, else raw). */
gboolean rechain_format_probe (RechainFile *file, RechainFormat *format, GError **error);

typedef enum {
  RECHAIN_LAYER_OPEN_READ_ONLY = 0,
  RECHAIN_LAYER_OPEN_WRITE = 1 << 0,
  /* Do not take QEMU image locks at all (-U / force share) */
  RECHAIN_LAYER_OPEN_NO_LOCK = 1 << 1,
  /* Follow the names in this layer's header whoever owns it (see
   * trust.h): its external data file is opened unchecked, and
   * rechain_layer_get_owner() is NULL. */
  RECHAIN_LAYER_OPEN_TRUST_NAMES = 1 << 2,
} RechainLayerOpenFlags;

/* Where the name of a file a layer opens comes from (see trust.h). */
typedef struct {
  const RechainOwner *owner; /* owner of @named_by; NULL: trusted, nothing checked */
  const char *named_by;      /* the image whose header records the name */
  const char *field;         /* which header field: "the backing file at depth 2" */
} RechainNameOrigin;

typedef struct _RechainLayer RechainLayer;

/* Opens @path as @format (NULL: probe, see rechain_format_probe()).
 * qcow2 headers are validated (rechain_qcow2_header_parse), a dirty image
 * is refused for writing, a corrupt one too; the L1 table is loaded and
 * checked. @cache applies to the image and its external data file.
 * @origin (NULL for a file the caller named) says which image's header
 * named @path: if that image's owner could not open it, it is refused
 * (RECHAIN_ERROR_NOT_PERMITTED) before anything is read or locked. */
RechainLayer *rechain_layer_open (const char *path,
                                  const char *format,
                                  RechainLayerOpenFlags flags,
                                  RechainCacheMode cache,
                                  const RechainNameOrigin *origin,
                                  GError **error);
void rechain_layer_free (RechainLayer *layer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainLayer, rechain_layer_free)

const char *rechain_layer_get_path (RechainLayer *layer);
/* The owner of the image file when the names in its header must be
 * checked (another user, and not opened with TRUST_NAMES), else NULL. */
const RechainOwner *rechain_layer_get_owner (RechainLayer *layer);
RechainFormat rechain_layer_get_format (RechainLayer *layer);
RechainFile *rechain_layer_get_file (RechainLayer *layer);
/* The file guest data is stored in: the external data file if any, else
 * the image file itself. */
RechainFile *rechain_layer_get_data_file (RechainLayer *layer);
guint64 rechain_layer_get_virtual_size (RechainLayer *layer);
/* qcow2 only (NULL for raw) */
const RechainQcow2Header *rechain_layer_get_qcow2_header (RechainLayer *layer);
const RechainQcow2Geometry *rechain_layer_get_qcow2_geometry (RechainLayer *layer);
/* Granularity of the map: subcluster size for qcow2, 512 for raw */
guint64 rechain_layer_get_granularity (RechainLayer *layer);
/* Backing file name and format as recorded in the header (NULL if none). */
const char *rechain_layer_get_backing_name (RechainLayer *layer);
const char *rechain_layer_get_backing_format (RechainLayer *layer);

/* Whether @layer is the file with device @dev and inode @ino. */
gboolean rechain_layer_same_file (RechainLayer *layer, dev_t dev, ino_t ino);

/* Appends to @extents (a GArray of RechainExtent) the map of
 * [@offset, @offset + @length) of this layer alone; the range must lie inside
 * the virtual size. Cost follows allocated metadata: unallocated L1 ranges
 * are skipped in one step. */
gboolean rechain_layer_map (RechainLayer *layer,
                            guint64 offset,
                            guint64 length,
                            GArray *extents,
                            GError **error);

/* Decodes every L2 entry of this layer that the map can reach (those below
 * the virtual size), reading each L2 table once, so that a rebase refuses
 * an image whose tables are malformed before it writes anything, instead
 * of when the map reaches the bad entry. RECHAIN_ERROR_INVALID_IMAGE with
 * the same message the map would give. Costs a read of the L2 tables and a
 * zero scan: a 1 TiB image with 64 KiB clusters has 64 MiB of them. */
gboolean rechain_layer_check_tables (RechainLayer *layer, GError **error);

typedef enum {
  RECHAIN_LAYER_ENCRYPTION_NONE,
  RECHAIN_LAYER_ENCRYPTION_AES,  /* qcow2 crypt_method 1 */
  RECHAIN_LAYER_ENCRYPTION_LUKS, /* qcow2 crypt_method 2 */
} RechainLayerEncryption;

RechainLayerEncryption rechain_layer_get_encryption (RechainLayer *layer);
/* The encryption's name as qemu-img's `encrypt.format` gives it ("luks",
 * "aes"), or NULL for an image that is not encrypted. */
const char *rechain_layer_get_encryption_name (RechainLayer *layer);

/* Reads and validates the LUKS header of a LUKS layer (needs no key), for
 * `info`: the same bounds the unlock applies, so a header info describes is
 * one the unlock would accept. RECHAIN_ERROR_INVALID_IMAGE or _UNSUPPORTED,
 * naming the image. */
gboolean rechain_layer_read_luks_header (RechainLayer *layer,
                                         RechainLuksHeader *out,
                                         GError **error);

/* Refuses a layer whose guest data cannot be read or written, naming the
 * image: legacy AES (RECHAIN_ERROR_UNSUPPORTED), and LUKS until the layer
 * is unlocked (RECHAIN_ERROR_NOT_PERMITTED: no key was given for it). Its
 * metadata (header, tables, map) stays usable, so an unsafe rebase, info
 * and map work without a key. */
gboolean rechain_layer_check_data_access (RechainLayer *layer, GError **error);

/* Unlocks a LUKS layer with @passphrase (nothing to do for any other
 * layer, or one unlocked already): reads its LUKS area, tries every active
 * key slot and checks the master-key digest. From then on its data is
 * decrypted by rechain_layer_read() and encrypted by the writers it makes.
 * A passphrase no slot accepts is RECHAIN_ERROR_NOT_PERMITTED, naming the
 * image. Costs the PBKDF2 of every slot tried (seconds at QEMU's default
 * iter-time); layers may be unlocked on different threads at once. */
gboolean rechain_layer_unlock (RechainLayer *layer,
                               const guint8 *passphrase,
                               gsize passphrase_len,
                               GError **error);
gboolean rechain_layer_is_unlocked (RechainLayer *layer);
/* Gives @layer the key of @unlocked, another opening of the same file. */
void rechain_layer_share_key (RechainLayer *layer, RechainLayer *unlocked);

/* The passphrase @keys has for this layer's file (by device and inode),
 * for the step that unlocks encrypted layers; FALSE when it has none or
 * @keys is NULL. */
gboolean rechain_layer_lookup_key (RechainLayer *layer,
                                   const RechainKeyLookup *keys,
                                   const guint8 **data,
                                   gsize *len);

/* Reads guest bytes of this layer alone. Unallocated parts are left
 * untouched in @buf (the chain fills them from the backing); zero parts are
 * zeroed. Past the virtual size is an error. The data of an unlocked LUKS
 * layer is decrypted (IV: its host offset / 512); a compressed cluster in
 * one is invalid (QEMU never writes them). */
gboolean rechain_layer_read (RechainLayer *layer,
                             guint64 offset,
                             void *buf,
                             gsize length,
                             GError **error);

/* Bounds on tables a header points to, so a crafted image cannot make us
 * allocate much: 65536 snapshots of a few hundred bytes each, and QEMU's
 * own 64 MiB limit on bitmap directories. */
#define RECHAIN_LAYER_MAX_SNAPSHOT_TABLE (64u * 1024 * 1024)
#define RECHAIN_LAYER_MAX_BITMAP_DIRECTORY (64u * 1024 * 1024)

/* Internal snapshots and persistent bitmaps of a qcow2 layer (empty arrays
 * for raw), as GArrays of RechainQcow2Snapshot / RechainQcow2Bitmap. */
GArray *rechain_layer_read_snapshots (RechainLayer *layer, GError **error);
GArray *rechain_layer_read_bitmaps (RechainLayer *layer, GError **error);
/* Bytes the image file occupies on the host file system. */
guint64 rechain_layer_get_allocated (RechainLayer *layer);

/* Rewrites the header of a qcow2 layer opened for writing so that it names
 * @backing_file (NULL: none) with @backing_format (NULL: no backing format
 * extension), preserving every other field and extension; one write of the
 * header cluster, then a flush. A name that does not fit in the header
 * cluster is refused before anything is written; after a failed write or
 * flush the file may hold the old header or the new one. */
/* The checks of rechain_layer_write_backing() that need no write: a qcow2
 * image, no raw data file when a backing file is named, a name that fits.
 * A rebase makes them before its first write. */
gboolean rechain_layer_check_backing_change (RechainLayer *layer,
                                             const char *backing_file,
                                             const char *backing_format,
                                             GError **error);
gboolean rechain_layer_write_backing (RechainLayer *layer,
                                      const char *backing_file,
                                      const char *backing_format,
                                      GError **error);

/* A writer for allocating writes into this qcow2 layer, opened for writing
 * (see qcow2-writer.h). Unknown autoclear feature bits are cleared in the
 * header first, as the format requires of writers. The writer updates this
 * layer's header in memory when it moves the refcount table, so a later
 * rechain_layer_write_backing() keeps the new table. The layer's own map
 * and read caches are not updated: do not map or read it afterwards.
 * With RECHAIN_QCOW2_WRITER_PLAN, a planning writer: the layer may be open
 * read-only, and neither its files nor its header are written. */
RechainQcow2Writer *rechain_layer_new_writer (RechainLayer *layer,
                                              RechainQcow2WriterFlags flags,
                                              GError **error);

G_END_DECLS
