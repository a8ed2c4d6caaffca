/* qcow2.h: the qcow2 on-disk format (QEMU docs/interop/qcow2.txt) as pure
 * functions over buffers. No I/O, no threads, no GObject: everything here can
 * be fed arbitrary bytes by a fuzzer.
 *
 * Errors are RECHAIN_ERROR_INVALID_IMAGE (malformed) or
 * RECHAIN_ERROR_UNSUPPORTED (valid but not implemented); messages name the
 * field, and callers prefix them with the file name.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>
#include "rechain/rechain-error.h"

G_BEGIN_DECLS

#define RECHAIN_QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define RECHAIN_QCOW2_V2_HEADER_LENGTH 72u
#define RECHAIN_QCOW2_V3_HEADER_LENGTH 104u

#define RECHAIN_QCOW2_MIN_CLUSTER_BITS 9u
#define RECHAIN_QCOW2_MAX_CLUSTER_BITS 21u
#define RECHAIN_QCOW2_MAX_BACKING_NAME 1023u

/* Limits a crafted image cannot exceed. QEMU's own implementation limits
 * are the same (32 MiB L1 table, 8 MiB refcount table), so every image QEMU
 * can open, rechain can too. */
#define RECHAIN_QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define RECHAIN_QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
#define RECHAIN_QCOW2_MAX_EXTENSIONS 64u
#define RECHAIN_QCOW2_MAX_SNAPSHOTS 65536u
/* The fixed part of a snapshot table entry (QEMU's QCowSnapshotHeader). */
#define RECHAIN_QCOW2_SNAPSHOT_HEADER_SIZE 40u
#define RECHAIN_QCOW2_MAX_BITMAPS 65535u

/* Incompatible feature bits */
#define RECHAIN_QCOW2_INCOMPAT_DIRTY        (1ull << 0)
#define RECHAIN_QCOW2_INCOMPAT_CORRUPT      (1ull << 1)
#define RECHAIN_QCOW2_INCOMPAT_DATA_FILE    (1ull << 2)
#define RECHAIN_QCOW2_INCOMPAT_COMPRESSION  (1ull << 3)
#define RECHAIN_QCOW2_INCOMPAT_EXTL2        (1ull << 4)
#define RECHAIN_QCOW2_INCOMPAT_KNOWN        0x1full
/* Compatible feature bits */
#define RECHAIN_QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* Autoclear feature bits */
#define RECHAIN_QCOW2_AUTOCLEAR_BITMAPS      (1ull << 0)
#define RECHAIN_QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)
#define RECHAIN_QCOW2_AUTOCLEAR_KNOWN        0x3ull

/* Header extension types */
#define RECHAIN_QCOW2_EXT_END            0x00000000u
#define RECHAIN_QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define RECHAIN_QCOW2_EXT_FEATURE_TABLE  0x6803f857u
#define RECHAIN_QCOW2_EXT_BITMAPS        0x23852875u
#define RECHAIN_QCOW2_EXT_CRYPTO         0x0537be77u
#define RECHAIN_QCOW2_EXT_DATA_FILE      0x44415441u

typedef enum {
  RECHAIN_QCOW2_CRYPT_NONE = 0,
  RECHAIN_QCOW2_CRYPT_AES = 1,
  RECHAIN_QCOW2_CRYPT_LUKS = 2,
} RechainQcow2CryptMethod;

typedef enum {
  RECHAIN_QCOW2_COMPRESSION_ZLIB = 0,
  RECHAIN_QCOW2_COMPRESSION_ZSTD = 1,
} RechainQcow2CompressionType;

/* One header extension, kept as raw bytes so that a rewrite of the header
 * reproduces every extension (known or not) exactly. */
typedef struct {
  guint32 type;
  GBytes *data; /* the extension's payload, without padding */
} RechainQcow2Extension;

typedef struct {
  guint8 type; /* 0 incompatible, 1 compatible, 2 autoclear */
  guint8 bit;
  char name[47]; /* NUL-terminated copy of the 46-byte field */
} RechainQcow2FeatureName;

/* The header of a qcow2 image, parsed and validated. */
typedef struct {
  guint32 version;
  guint64 backing_file_offset;
  guint32 backing_file_size;
  guint32 cluster_bits;
  guint64 size;
  guint32 crypt_method;
  guint32 l1_size;
  guint64 l1_table_offset;
  guint64 refcount_table_offset;
  guint32 refcount_table_clusters;
  guint32 nb_snapshots;
  guint64 snapshots_offset;
  guint64 incompatible_features;
  guint64 compatible_features;
  guint64 autoclear_features;
  guint32 refcount_order;
  guint32 header_length;
  guint8 compression_type;

  /* Bytes of the header beyond the fields rechain knows (offset 105 up to
   * header_length): kept so a rewrite preserves them. May be NULL. */
  GBytes *extra_header;

  /* Every extension in on-disk order, including the known ones below. */
  GPtrArray *extensions; /* of RechainQcow2Extension* */

  /* Decoded known extensions (NULL / 0 when absent) */
  char *backing_file;   /* the backing name as stored, NUL-terminated */
  char *backing_format; /* backing format extension */
  char *data_file;      /* external data file name extension */
  GArray *feature_names; /* of RechainQcow2FeatureName */
  gboolean has_bitmaps_ext;
  guint32 nb_bitmaps;
  guint64 bitmap_directory_size;
  guint64 bitmap_directory_offset;
  gboolean has_crypto_ext;
  guint64 crypto_header_offset;
  guint64 crypto_header_length;
} RechainQcow2Header;

void rechain_qcow2_header_free (RechainQcow2Header *header);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainQcow2Header, rechain_qcow2_header_free)

/* rechain_qcow2_header_parse:
 * @buf: the first bytes of the file (at least the whole first cluster if the
 *   file has that many; fewer only for a file shorter than that)
 * @len: bytes in @buf
 * @file_size: size of the image file, to bound every offset
 *
 * Parses and validates the header, the extensions and the backing file name.
 * Everything a later stage uses is checked here: cluster_bits 9..21, L1 and
 * refcount table offsets aligned and inside the file, their sizes bounded,
 * header_length, extension lengths, backing name length and placement,
 * refcount_order 0..6, unknown incompatible bits, compression type.
 * Encrypted images are accepted (crypt_method 1 or 2; LUKS needs its
 * crypto header pointer extension): what needs their data refuses them
 * later. Dirty and corrupt bits
 * are reported in the header, not refused: opening code decides.
 *
 * Details: a version other than 2 or 3 is RECHAIN_ERROR_UNSUPPORTED, as are
 * unknown incompatible bits and compression types other than zlib/zstd.
 * Without a backing_file_offset, backing_file_size is normalised to 0; a
 * backing name of size 0 means no backing file (backing_file NULL). The
 * extension area ends at backing_file_offset when set, else at the end of
 * the first cluster (or of @buf, if shorter). */
RechainQcow2Header *rechain_qcow2_header_parse (const guint8 *buf,
                                                gsize len,
                                                guint64 file_size,
                                                GError **error);

/* Serializes @header into a zero-filled buffer of @cluster_size bytes: the
 * header (header_length bytes, unknown trailing fields preserved), every
 * extension of header->extensions in order, the end marker, then
 * header->backing_file. Sets header->backing_file_offset/size to match.
 * Fails (RECHAIN_ERROR_INVALID_ARGUMENT) if it does not fit in one cluster. */
guint8 *rechain_qcow2_header_serialize (RechainQcow2Header *header,
                                        GError **error);

/* Replaces, adds (when @format is non-NULL) or removes (NULL) the backing
 * format extension in header->extensions and header->backing_format. The
 * backing format extension is inserted first if it was absent, as QEMU does.
 * Sets header->backing_file to @backing_file; NULL (or "") removes the
 * backing file and, since a format alone describes nothing, the format
 * extension too. The offset is assigned by rechain_qcow2_header_serialize. */
void rechain_qcow2_header_set_backing (RechainQcow2Header *header,
                                       const char *backing_file,
                                       const char *backing_format);

/* Name of feature @bit of @type, from the feature name table, or NULL. */
const char *rechain_qcow2_header_feature_name (const RechainQcow2Header *header,
                                               guint8 type,
                                               guint bit);

static inline guint64
rechain_qcow2_cluster_size (const RechainQcow2Header *h)
{
  return G_GUINT64_CONSTANT (1) << h->cluster_bits;
}

static inline gboolean
rechain_qcow2_has_extl2 (const RechainQcow2Header *h)
{
  return (h->incompatible_features & RECHAIN_QCOW2_INCOMPAT_EXTL2) != 0;
}

/* ---- Geometry: derived sizes used by mapping code ---- */

typedef struct {
  guint32 cluster_bits;
  guint64 cluster_size;
  gboolean extended_l2;      /* 128-bit L2 entries, 32 subclusters */
  guint32 l2_bits;           /* log2 of entries per L2 table */
  guint64 l2_entries;        /* entries per L2 table */
  guint32 subcluster_bits;   /* log2 of subcluster size (== cluster_bits without extended L2) */
  guint64 subcluster_size;
  guint32 subclusters;       /* per cluster: 32 with extended L2, else 1 */
  guint32 compressed_offset_bits; /* x = 62 - (cluster_bits - 8) */
  gboolean external_data;    /* data clusters live in an external data file */
  gboolean zero_flag_allowed; /* v3 without extended L2: bit 0 means zero */
} RechainQcow2Geometry;

void rechain_qcow2_geometry_init (RechainQcow2Geometry *geom,
                                  const RechainQcow2Header *header);

/* ---- L1 / L2 entries ---- */

#define RECHAIN_QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9..55 */
#define RECHAIN_QCOW2_OFLAG_COPIED     (1ull << 63)
#define RECHAIN_QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define RECHAIN_QCOW2_OFLAG_ZERO       (1ull << 0)

/* Decodes an L1 entry into the L2 table's offset (0: no L2 table).
 * Fails if reserved bits are set or the offset is not cluster aligned. */
gboolean rechain_qcow2_l1_entry_decode (const RechainQcow2Geometry *geom,
                                        guint64 entry,
                                        guint64 *l2_offset,
                                        GError **error);

typedef enum {
  RECHAIN_QCOW2_SUBCLUSTER_UNALLOCATED, /* read from the backing file */
  RECHAIN_QCOW2_SUBCLUSTER_ZERO,        /* reads as zeros */
  RECHAIN_QCOW2_SUBCLUSTER_DATA,        /* data at host_offset + sc * subcluster_size */
  RECHAIN_QCOW2_SUBCLUSTER_COMPRESSED,  /* the whole cluster is compressed */
} RechainQcow2SubclusterType;

typedef struct {
  gboolean compressed;
  /* Standard clusters: host offset of the cluster (may be 0 for a zero or
   * unallocated cluster; with an external data file it equals the guest
   * offset and can legitimately be 0). */
  guint64 host_offset;
  /* Compressed clusters: byte offset and length (in bytes, a bound: the
   * stream may end earlier) of the compressed data. */
  guint64 compressed_offset;
  guint64 compressed_length;
  /* Per-subcluster state; only the first geom->subclusters are used. */
  guint8 type[32]; /* RechainQcow2SubclusterType */
  gboolean copied; /* bit 63 */
} RechainQcow2L2Entry;

/* Decodes one L2 entry. @bitmap is the second 64-bit word with extended L2
 * and ignored otherwise. Fails (INVALID_IMAGE) on reserved bits, misaligned
 * offsets, a subcluster both allocated and zero, a compressed cluster with
 * a non-zero bitmap, compressed clusters in an image with an external data
 * file, a zero flag in a v2 image. */
gboolean rechain_qcow2_l2_entry_decode (const RechainQcow2Geometry *geom,
                                        guint64 entry,
                                        guint64 bitmap,
                                        RechainQcow2L2Entry *out,
                                        GError **error);

/* ---- Refcounts ---- */

/* Reads entry @index of a refcount block of refcount_bits = 1 << @order. */
guint64 rechain_qcow2_refblock_get (const guint8 *block, guint32 order, guint64 index);
void rechain_qcow2_refblock_set (guint8 *block, guint32 order, guint64 index, guint64 value);

/* ---- Compressed clusters ---- */

/* Inflates one compressed cluster: @in holds at most @in_len bytes of the
 * stream (raw deflate for zlib, a zstd frame sequence for zstd); exactly
 * @out_len bytes must come out. Trailing input bytes are ignored. */
gboolean rechain_qcow2_decompress (RechainQcow2CompressionType type,
                                   const guint8 *in,
                                   gsize in_len,
                                   guint8 *out,
                                   gsize out_len,
                                   GError **error);

/* Compresses @len bytes into @out (capacity @out_cap) with @type: raw
 * deflate for zlib, one zstd frame for zstd. Returns FALSE without an error
 * when the result does not fit in @out_cap. */
gboolean rechain_qcow2_compress (RechainQcow2CompressionType type,
                                 const guint8 *in,
                                 gsize len,
                                 guint8 *out,
                                 gsize out_cap,
                                 gsize *out_len,
                                 GError **error);

/* ---- Snapshot table and bitmap directory (for info and for writers that
 * must not free clusters an internal snapshot still uses) ---- */

typedef struct {
  guint64 l1_table_offset;
  guint32 l1_size;
  char *id;
  char *name;
  guint32 date_sec;
  guint32 date_nsec;
  guint64 vm_clock_nsec;
  guint64 vm_state_size;
  guint64 disk_size; /* 0 if not recorded */
  gint64 icount; /* instruction count (record/replay), -1 if not recorded */
} RechainQcow2Snapshot;

/* Parses @nb snapshot table entries from @buf (the table's bytes: from
 * snapshots_offset, up to at most the end of the file). Every entry must fit
 * in @len (the padding of the last one may be cut off). Checks each L1 table
 * offset (aligned, inside @file_size) and size. id and name are made valid
 * UTF-8. Returns a GArray of RechainQcow2Snapshot that frees the strings. */
GArray *rechain_qcow2_snapshots_parse (const guint8 *buf,
                                       gsize len,
                                       guint32 nb,
                                       const RechainQcow2Geometry *geom,
                                       guint64 file_size,
                                       GError **error);

typedef struct {
  guint64 table_offset;
  guint32 table_size;
  guint32 flags;
  guint8 type;
  guint8 granularity_bits;
  char *name;
} RechainQcow2Bitmap;

#define RECHAIN_QCOW2_BITMAP_IN_USE (1u << 0)
#define RECHAIN_QCOW2_BITMAP_AUTO   (1u << 1)

/* Parses @nb bitmap directory entries from @buf (@len: normally the
 * header's bitmap_directory_size; trailing bytes after the last entry are
 * ignored). Refuses reserved flags, types other than 1, granularity_bits
 * > 63, empty or > 1023-byte names, duplicate names, nonzero padding and
 * bitmap tables that are misaligned or outside @file_size. Names are made
 * valid UTF-8. Returns a GArray of RechainQcow2Bitmap that frees the names. */
GArray *rechain_qcow2_bitmaps_parse (const guint8 *buf,
                                     gsize len,
                                     guint32 nb,
                                     const RechainQcow2Geometry *geom,
                                     guint64 file_size,
                                     GError **error);

G_END_DECLS
