/* cmd-map.c: rechain map — where each region of the guest-visible content
 * comes from, in the terms of qemu-img map.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>

#include <glib-unix.h>

#include <rechain/rechain.h>
#include "tool.h"

/* Maps are built a slice at a time so that memory stays bounded however
 * large and fragmented the image is. */
#define MAP_SLICE (G_GUINT64_CONSTANT (1) << 30)

static void
print_extent (const RechainExtent *e, RechainImage *top, ToolOutputFormat format, gboolean first)
{
  gboolean data = e->kind == RECHAIN_EXTENT_DATA;
  gboolean present = e->kind != RECHAIN_EXTENT_UNALLOCATED;
  RechainImage *holder = top;
  gboolean encrypted;
  gboolean has_offset;

  for (gint d = 0; d < e->depth && holder; d++)
    holder = rechain_image_get_backing_image (holder);
  /* As qemu-img: the offset of encrypted data is not where its guest bytes
   * can be read, so it is not shown (the map itself needs no key). */
  encrypted = holder && rechain_image_get_encryption_format (holder) != NULL;
  has_offset = e->host_offset != RECHAIN_NO_HOST_OFFSET && !e->compressed && !encrypted;

  if (format == TOOL_OUTPUT_JSON)
    {
      printf ("%s{ \"start\": %" G_GUINT64_FORMAT ", \"length\": %" G_GUINT64_FORMAT ", "
              "\"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
              first ? "" : ",\n", e->offset, e->length, e->depth,
              present ? "true" : "false", data ? "false" : "true", data ? "true" : "false");
      if (e->compressed)
        printf (", \"compressed\": true");
      if (has_offset)
        printf (", \"offset\": %" G_GUINT64_FORMAT, e->host_offset);
      printf ("}");
      return;
    }

  /* Human output lists only what holds data, as qemu-img map does. */
  if (!data)
    return;
  {
    if (has_offset)
      printf ("%#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %s\n",
              e->offset, e->length, e->host_offset, rechain_image_get_path (holder));
    else
      printf ("%#-19" G_GINT64_MODIFIER "x %#-19" G_GINT64_MODIFIER "x %-19s %s\n",
              e->offset, e->length,
              e->compressed ? _("compressed") : encrypted ? _("encrypted") : "-",
              rechain_image_get_path (holder));
  }
}

/* Whether @e continues @last (as the library merges extents inside one
 * call). */
static gboolean
continues (const RechainExtent *last, const RechainExtent *e)
{
  if (last->kind != e->kind || last->depth != e->depth || last->compressed != e->compressed ||
      last->offset + last->length != e->offset)
    return FALSE;
  if (last->host_offset == RECHAIN_NO_HOST_OFFSET)
    return e->host_offset == RECHAIN_NO_HOST_OFFSET;
  return e->host_offset == last->host_offset + last->length;
}

static gboolean
on_signal (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_CONTINUE;
}

int
cmd_map (int argc, char **argv)
{
  g_autofree char *format = NULL;
  g_autofree char *output = NULL;
  g_auto(ToolSource) source = { 0 };
  gboolean force_share = FALSE;
  ToolProgressOptions progress_options = { 0 };
  g_autoptr(ToolProgress) progress = NULL;
  gboolean interrupted = FALSE;
  guint sigint, sigterm;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, N_("Image format (qcow2 or raw; probed if not given)"), N_("FMT") },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, N_("Open even if another process has the image open for writing (takes no locks)"), NULL },
    { "output", 0, 0, G_OPTION_ARG_STRING, &output, N_("Output format: human (default) or json"), N_("FORMAT") },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (N_("IMAGE"));
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainImage) image = NULL;
  ToolOutputFormat out_format;
  RechainExtent pending = { 0 };
  int status;
  gboolean have_pending = FALSE, first = TRUE;
  guint64 size;

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Show, for each region of the guest-visible content, "
                                           "which image of the chain holds it."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  tool_source_add_entries (context, &source);
  tool_progress_add_entries (context, &progress_options);
  tool_progress_rewrite_args (argc, argv);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      tool_progress_options_clear (&progress_options);
      return tool_usage_error (context, "%s", error->message);
    }
  progress = tool_progress_new (&progress_options, &error);
  tool_progress_options_clear (&progress_options);
  if (error)
    return tool_usage_error (context, "%s", error->message);
  if (argc != 2)
    return tool_usage_error (context, _("expected exactly one IMAGE"));
  if (!tool_parse_output (output, &out_format, &error))
    return tool_fail (error);

  image = tool_source_open (&source, argv[1], format,
                                    force_share ? RECHAIN_IMAGE_OPEN_FORCE_SHARE : 0, &error);
  if (!image)
    return tool_fail (error);
  tool_print_warnings (rechain_image_get_warnings (image));

  /* Ctrl-C between two slices stops cleanly, with exit status 6. */
  sigint = g_unix_signal_add (SIGINT, on_signal, &interrupted);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, &interrupted);
  status = TOOL_EXIT_OK;

  if (out_format == TOOL_OUTPUT_JSON)
    printf ("[");
  else
    printf ("%-19s %-19s %-19s %s\n", _("Offset"), _("Length"), _("Mapped to"), _("File"));

  size = rechain_image_get_virtual_size (image);
  tool_progress_update (progress, 0, size);
  for (guint64 pos = 0; pos < size; pos += MAP_SLICE)
    {
      g_autoptr(GPtrArray) extents = NULL;
      guint64 len = MIN (MAP_SLICE, size - pos);

      while (g_main_context_iteration (NULL, FALSE))
        ;
      if (interrupted)
        {
          g_set_error (&error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("%s: cancelled"), argv[1]);
          break;
        }
      extents = rechain_image_get_extents (image, pos, len, &error);
      if (!extents)
        break;
      /* Carry the last extent of a slice over, so that an extent spanning
       * a slice boundary is printed once. */
      for (guint i = 0; i < extents->len; i++)
        {
          const RechainExtent *e = g_ptr_array_index (extents, i);
          if (have_pending && continues (&pending, e))
            {
              pending.length += e->length;
              continue;
            }
          if (have_pending)
            {
              print_extent (&pending, image, out_format, first);
              first = FALSE;
            }
          pending = *e;
          have_pending = TRUE;
        }
      tool_progress_update (progress, pos + len, size);
    }
  g_source_remove (sigint);
  g_source_remove (sigterm);
  if (error)
    {
      if (out_format == TOOL_OUTPUT_JSON)
        printf ("]\n");
      fflush (stdout);
      tool_progress_end (progress, FALSE);
      return tool_fail (error);
    }
  if (have_pending)
    print_extent (&pending, image, out_format, first);
  if (out_format == TOOL_OUTPUT_JSON)
    printf ("]\n");
  if (fflush (stdout) != 0)
    status = TOOL_EXIT_IO;
  tool_progress_end (progress, status == TOOL_EXIT_OK);
  return status;
}
