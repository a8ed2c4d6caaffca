/* rebase.h: the rebase engine.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include "chain/chain.h"
#include "io/lease.h"

G_BEGIN_DECLS

typedef struct _RechainRebaseImageReport RechainRebaseImageReport;

/* Called once per image of a rebase when its outcome is final: switched to
 * the new backing file (and closed), failed (@image->error), or, for a dry
 * run, planned. @index is the image's place in options->images (and in the
 * report). Called on the thread that runs the rebase, in the order the
 * images finish; an image the report lists gets exactly one call, with the
 * outcome the report gives it in the end. */
typedef void (*RechainRebaseImageDone) (guint index, const RechainRebaseImageReport *image,
                                        gpointer user_data);

typedef struct {
  const char *image;          /* path of the image to rebase (unsafe mode) */
  const char * const *images; /* safe mode: one or more overlays sharing one old backing chain */
  const char *format;         /* its format, NULL to probe */
  const char *backing_file;   /* new backing name as written in the header; "" or NULL: none */
  const char *backing_format; /* format of the new backing file, NULL: none recorded */
  RechainCacheMode cache;     /* cache mode for the image */
  RechainCacheMode source_cache; /* cache mode for the backing files read */
  gboolean force_share;       /* -U: take no locks */
  gboolean compress;          /* -c: write copied clusters compressed */
  gboolean dry_run;           /* plan and report, write nothing */
  RechainCopyMode copy_mode;  /* how copied data gets into the image */
  RechainChainConfinement confine; /* directories the backing files must stay in */
  gboolean trust_chain;       /* follow the names in other users' images unchecked (trust.h) */
  /* passphrases of encrypted layers (NULL: none); an unsafe rebase needs
   * none, and the safe engine refuses encrypted layers until it can
   * unlock them with these (rechain_layer_lookup_key) */
  const RechainKeyLookup *keys;
  /* libvirt's lock manager (io/lease.h): every image written is leased
   * from before its first write until it is closed, unless no_leases;
   * lockspace_dir is virtlockd's file_lockspace_dir (NULL: direct leases
   * only). A dry run checks the leases and takes none. */
  gboolean no_leases;
  const char *lockspace_dir;
  /* per-image outcomes as they become final (NULL: none wanted) */
  RechainRebaseImageDone image_done;
  gpointer image_done_data;
} RechainRebaseOptions;

/* What a safe rebase did (or, for a dry run, would do) to one overlay. A
 * dry run runs the same code with a planning qcow2 writer: its numbers are
 * the real run's on the same images (the kernel's clones and copies are
 * predicted from the file systems: they are the only guess). */
struct _RechainRebaseImageReport {
  char *image;
  GError *error;             /* NULL on success */
  guint64 bytes_examined;    /* guest bytes the overlay does not allocate itself */
  guint64 bytes_to_write;    /* guest data bytes written */
  guint64 bytes_to_zero;     /* guest bytes made zero by metadata */
  /* how the written bytes got there (a dry run says how they would) */
  guint64 bytes_shared;      /* blocks shared with the source (reflink) */
  guint64 bytes_copied_in_kernel; /* copy_file_range */
  guint64 bytes_copied_buffered;  /* read and written through buffers */
  guint64 clusters_allocated;
  guint64 compressed_clusters;
  guint64 metadata_bytes;
  guint64 flushes;
};

/* The report of a whole safe rebase: the shared comparison of the old and
 * new backing chains, then one entry per overlay. */
typedef struct {
  guint64 bytes_examined;    /* union of the overlays' unallocated ranges */
  guint64 bytes_same_by_metadata; /* skipped without reading: same layer or both zero */
  guint64 bytes_compared;    /* read from both chains and compared */
  guint64 bytes_read;        /* read from backing files in all */
  guint64 bytes_differing;   /* found or known to differ */
  double seconds;
  gboolean dry_run;
  GPtrArray *images;         /* of RechainRebaseImageReport* */
  /* what the caller should know about a rebase that goes on (data of an
   * encrypted backing chain copied into a plain overlay): of char*,
   * NULL-terminated */
  GPtrArray *warnings;
} RechainRebaseReport;

RechainRebaseReport *rechain_rebase_report_new (void);
void rechain_rebase_report_free (RechainRebaseReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RechainRebaseReport, rechain_rebase_report_free)

/* Called from the rebase with the bytes done of the bytes planned; total
 * may grow once while planning. */
typedef void (*RechainRebaseProgress) (guint64 done, guint64 total, gpointer user_data);

/* Safe rebase of options->images onto options->backing_file: keeps the
 * guest-visible content of every overlay. Fills @report (one entry per
 * overlay, each with its own error). Returns FALSE with @error when the
 * rebase could not start (bad arguments, the chains could not be opened,
 * a new backing chain containing an overlay) or when any overlay failed
 * (the error is then that of the first failure). */
gboolean rechain_rebase_safe (const RechainRebaseOptions *options,
                              RechainRebaseReport *report,
                              RechainRebaseProgress progress,
                              gpointer progress_data,
                              GCancellable *cancellable,
                              GError **error);

/* Checks the backing name and format a rebase is asked to write, before
 * any image is opened: length, pseudo-filenames, -F given whenever a backing
 * file is named, a known format name. */
gboolean rechain_rebase_check_target (const char *backing_file,
                                      const char *backing_format,
                                      GError **error);

/* The chain open flags every rebase uses for the images it reads:
 * FORCE_SHARE for -U, TRUST_NAMES when the chain is trusted. */
static inline RechainChainOpenFlags
rechain_rebase_chain_flags (const RechainRebaseOptions *options)
{
  return (options->force_share ? RECHAIN_CHAIN_OPEN_FORCE_SHARE : 0) |
         (options->trust_chain ? RECHAIN_CHAIN_OPEN_TRUST_NAMES : 0);
}

/* Takes the leases of @layer, an image about to be written (rebase-lease.c):
 * *@lease is NULL when leases are off. FALSE with RECHAIN_ERROR_IN_USE
 * when someone holds one. */
gboolean rechain_rebase_take_lease (const RechainRebaseOptions *options,
                                    RechainLayer *layer,
                                    RechainLease **lease,
                                    GError **error);

/* Unsafe rebase (qemu-img rebase -u): rewrites the backing name and format
 * in the header and nothing else. The new backing file is not opened and
 * need not exist. */
gboolean rechain_rebase_unsafe (const RechainRebaseOptions *options, GError **error);

/* Unsafe rebase of every image of options->images in turn (a dry run
 * writes nothing): one report entry per image tried, each reported to
 * options->image_done as it ends. Stops at the first failure, whose error
 * it returns; the images after it are left out of the report. */
gboolean rechain_rebase_unsafe_images (const RechainRebaseOptions *options,
                                       RechainRebaseReport *report,
                                       GError **error);

G_END_DECLS
