/* rechain-dump: writes the guest-visible content of an image, through its
 * whole backing chain, to a raw file. A test helper: its output is compared
 * byte for byte with `qemu-img convert -O raw`.
 *
 * Usage: rechain-dump [-f FMT] [-U] IMAGE OUTPUT
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "chain/chain.h"

#define CHUNK (4u * 1024 * 1024)

int
main (int argc, char **argv)
{
  g_autofree char *format = NULL;
  gboolean force_share = FALSE;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, "Image format", "FMT" },
    { "force-share", 'U', 0, G_OPTION_ARG_NONE, &force_share, "Take no locks", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("IMAGE OUTPUT");
  g_autoptr(GError) error = NULL;
  g_autoptr(RechainChain) chain = NULL;
  g_autofree guint8 *buf = g_malloc (CHUNK);
  guint64 size;
  int out;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 3)
    {
      g_printerr ("usage: rechain-dump [-f FMT] [-U] IMAGE OUTPUT\n");
      return 2;
    }
  chain = rechain_chain_open (argv[1], format,
                              force_share ? RECHAIN_CHAIN_OPEN_FORCE_SHARE : 0,
                              RECHAIN_CACHE_WRITEBACK, RECHAIN_CACHE_WRITEBACK, &error);
  if (!chain)
    {
      g_printerr ("rechain-dump: %s\n", error->message);
      return 3;
    }
  out = open (argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0)
    {
      perror (argv[2]);
      return 1;
    }
  size = rechain_layer_get_virtual_size (rechain_chain_get_top (chain));
  for (guint64 pos = 0; pos < size; pos += CHUNK)
    {
      gsize len = (gsize) MIN ((guint64) CHUNK, size - pos);
      if (!rechain_chain_read (chain, 0, pos, buf, len, &error))
        {
          g_printerr ("rechain-dump: %s\n", error->message);
          return 3;
        }
      if (pwrite (out, buf, len, (off_t) pos) != (ssize_t) len)
        {
          perror (argv[2]);
          return 1;
        }
    }
  if (ftruncate (out, (off_t) size) != 0 || close (out) != 0)
    {
      perror (argv[2]);
      return 1;
    }
  return 0;
}
