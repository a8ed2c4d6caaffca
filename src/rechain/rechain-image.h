/* rechain-image.h: an opened image with its backing chain.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rechain/rechain-enums.h>
#include <rechain/rechain-extent.h>
#include <rechain/rechain-image-info.h>
#include <rechain/rechain-keyring.h>
#include <rechain/rechain-version.h>

G_BEGIN_DECLS

#define RECHAIN_TYPE_IMAGE (rechain_image_get_type ())
RECHAIN_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (RechainImage, rechain_image, RECHAIN, IMAGE, GObject)

RECHAIN_AVAILABLE_IN_ALL RechainImage *rechain_image_open (const char *path,
                                                 const char *format,
                                                 RechainImageOpenFlags flags,
                                                 GCancellable *cancellable,
                                                 GError **error);
RECHAIN_AVAILABLE_IN_ALL RechainImage *rechain_image_open_full (const char *path,
                                                      const char *format,
                                                      RechainImageOpenFlags flags,
                                                      const char *backing_root,
                                                      GCancellable *cancellable,
                                                      GError **error);
RECHAIN_AVAILABLE_IN_0_2 RechainImage *rechain_image_open_with_keyring (const char *path,
                                                                        const char *format,
                                                                        RechainImageOpenFlags flags,
                                                                        const char *backing_root,
                                                                        RechainKeyring *keyring,
                                                                        GCancellable *cancellable,
                                                                        GError **error);
RECHAIN_AVAILABLE_IN_ALL void rechain_image_open_async (const char *path,
                                              const char *format,
                                              RechainImageOpenFlags flags,
                                              int io_priority,
                                              GCancellable *cancellable,
                                              GAsyncReadyCallback callback,
                                              gpointer user_data);
RECHAIN_AVAILABLE_IN_ALL RechainImage *rechain_image_open_finish (GAsyncResult *result,
                                                        GError **error);

RECHAIN_AVAILABLE_IN_ALL const char *rechain_image_get_path (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_image_get_format (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_image_get_virtual_size (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL guint64 rechain_image_get_cluster_size (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_image_get_backing_file (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL const char *rechain_image_get_backing_format (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL RechainImage *rechain_image_get_backing_image (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL guint rechain_image_get_chain_length (RechainImage *image);
RECHAIN_AVAILABLE_IN_ALL const char * const *rechain_image_get_warnings (RechainImage *image);
RECHAIN_AVAILABLE_IN_0_2 RechainKeyring *rechain_image_get_keyring (RechainImage *image);
RECHAIN_AVAILABLE_IN_0_2 const char *rechain_image_get_encryption_format (RechainImage *image);

RECHAIN_AVAILABLE_IN_ALL GPtrArray *rechain_image_get_extents (RechainImage *image,
                                                     guint64 offset,
                                                     guint64 length,
                                                     GError **error);
RECHAIN_AVAILABLE_IN_0_2 RechainImageInfo *rechain_image_get_info (RechainImage *image,
                                                   GError **error);
RECHAIN_AVAILABLE_IN_ALL char *rechain_image_get_info_json (RechainImage *image,
                                                  gboolean backing_chain,
                                                  GError **error);

G_END_DECLS
