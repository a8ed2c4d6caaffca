/* rebase-unsafe.c: change only the backing name and format.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>

#include "job/rebase.h"
#include "rechain/rechain-i18n-private.h"

/* Formats QEMU knows as backing files; in unsafe mode the new backing file
 * is not opened, so a name from this list is recorded even if rechain
 * itself cannot read that format. */
static const char *const qemu_formats[] = {
  "raw", "qcow2", "qcow", "qed", "vmdk", "vdi", "vhdx", "vpc", "luks",
  "parallels", "dmg", "cloop", "bochs", "vvfat", "host_device", "file",
};

gboolean
rechain_rebase_check_target (const char *backing_file, const char *backing_format,
                             GError **error)
{
  gboolean has_backing = backing_file && *backing_file;

  if (!has_backing)
    return TRUE;
  if (strlen (backing_file) > RECHAIN_QCOW2_MAX_BACKING_NAME)
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("the backing file name is %zu bytes long; qcow2 allows at most %u"),
                   strlen (backing_file), RECHAIN_QCOW2_MAX_BACKING_NAME);
      return FALSE;
    }
  if (rechain_path_is_pseudo (backing_file) && !g_str_has_prefix (backing_file, "file:"))
    {
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("'%s' is a json: or protocol pseudo-filename; rechain only records local "
                   "file names as backing files"), backing_file);
      return FALSE;
    }
  if (!backing_format)
    {
      /* As current qemu-img: recording a backing file without its format
       * would make every later open probe it, which is unsafe. */
      g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
                   _("the backing format must be given with -F when -b names a file "
                   "(for example -F qcow2 or -F raw)"));
      return FALSE;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (qemu_formats); i++)
    if (g_str_equal (backing_format, qemu_formats[i]))
      return TRUE;
  g_set_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT,
               _("unknown backing format '%s'"), backing_format);
  return FALSE;
}

gboolean
rechain_rebase_unsafe (const RechainRebaseOptions *options, GError **error)
{
  /* declared first, so released after the chain is closed */
  g_autoptr(RechainLease) lease = NULL;
  g_autoptr(RechainChain) chain = NULL;
  gboolean has_backing = options->backing_file && *options->backing_file;

  if (!rechain_rebase_check_target (options->backing_file, options->backing_format, error))
    return FALSE;

  if (has_backing && options->confine.backing_root)
    {
      g_autofree char *path = rechain_path_resolve (options->image, options->backing_file, error);
      if (!path ||
          !rechain_path_check_root (options->confine.backing_root, path, options->image, error))
        return FALSE;
    }

  chain = rechain_chain_open_full (options->image, options->format,
                                   RECHAIN_CHAIN_OPEN_WRITE | RECHAIN_CHAIN_OPEN_NO_BACKING |
                                     rechain_rebase_chain_flags (options),
                                   options->cache, options->cache, &options->confine, error);
  if (!chain ||
      !rechain_rebase_take_lease (options, rechain_chain_get_top (chain), &lease, error))
    return FALSE;

  return rechain_layer_write_backing (rechain_chain_get_top (chain),
                                      has_backing ? options->backing_file : NULL,
                                      has_backing ? options->backing_format : NULL,
                                      error);
}

gboolean
rechain_rebase_unsafe_images (const RechainRebaseOptions *options, RechainRebaseReport *report,
                              GError **error)
{
  RechainRebaseOptions one = *options;

  report->dry_run = options->dry_run;
  for (guint i = 0; options->images[i]; i++)
    {
      RechainRebaseImageReport *ir = g_new0 (RechainRebaseImageReport, 1);
      GError *local = NULL;

      ir->image = g_strdup (options->images[i]);
      g_ptr_array_add (report->images, ir);
      one.image = options->images[i];
      if (!options->dry_run && !rechain_rebase_unsafe (&one, &local))
        ir->error = g_error_copy (local);
      /* the header is rewritten and the image closed, or it failed */
      if (options->image_done)
        options->image_done (i, ir, options->image_done_data);
      if (local)
        {
          g_propagate_error (error, local);
          return FALSE;
        }
    }
  return TRUE;
}
