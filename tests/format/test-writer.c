/* test-writer.c: the planning qcow2 writer (RECHAIN_QCOW2_WRITER_PLAN)
 * against the real one. Both run the same calls over copies of an image
 * made by qemu-img, in memory; the planning one must report the same stats
 * and place data at the same host offsets, across commits (after which
 * both read their L2 tables and refcount blocks back: the planning one
 * from its shadow), and leave its image byte for byte as it was. The real
 * writer's result is judged by `qemu-img check`.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include "format/qcow2-writer.h"

static char *tmpdir;

/* ---- an image in memory ---- */

static gboolean
mem_pread (gpointer user, void *buf, gsize len, guint64 offset, GError **error)
{
  GByteArray *b = user;
  gsize have = offset >= b->len ? 0 : (gsize) MIN ((guint64) len, b->len - offset);

  /* past the end reads as zeros, as a hole of a file does */
  memcpy (buf, b->data + offset, have);
  memset ((guint8 *) buf + have, 0, len - have);
  return TRUE;
}

static gboolean
mem_pwrite (gpointer user, const void *buf, gsize len, guint64 offset, GError **error)
{
  GByteArray *b = user;

  if (offset + len > b->len)
    {
      gsize old = b->len;
      g_byte_array_set_size (b, (guint) (offset + len));
      memset (b->data + old, 0, b->len - old);
    }
  memcpy (b->data + offset, buf, len);
  return TRUE;
}

static gboolean
mem_flush (gpointer user, GError **error)
{
  return TRUE;
}

static void
sh (const char *cmd)
{
  g_autofree char *full = g_strdup_printf ("cd '%s' && %s", tmpdir, cmd);
  const char *argv[] = { "/bin/sh", "-c", full, NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     &out, &err, &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    g_error ("%s: %s\n%s%s", cmd, error->message, out ? out : "", err ? err : "");
}

static GByteArray *
load (const char *name)
{
  g_autofree char *path = g_build_filename (tmpdir, name, NULL);
  g_autoptr (GError) error = NULL;
  gchar *data;
  gsize len;

  if (!g_file_get_contents (path, &data, &len, &error))
    g_error ("%s", error->message);
  return g_byte_array_new_take ((guint8 *) data, len);
}

/* ---- the calls both writers get ---- */

typedef struct {
  const char *name;
  const char *create;  /* how the image $IMG is made: qemu-img and qemu-io commands */
  guint64 size, cluster, unit;
  guint64 start;       /* guest offset from which the image allocates nothing */
} Case;

/* The calls for guest units [@first, @end) of @c, every @step-th unit:
 * data, zeros, compressed data, and data placed then put, in turn.
 * Host offsets from place() are appended to @hosts. */
static void
run_calls (RechainQcow2Writer *w, const Case *c, guint64 first, guint64 end, guint64 step,
           GArray *hosts)
{
  g_autofree guint8 *data = g_malloc (c->unit);

  for (guint64 i = first; i < end; i += step)
    {
      guint64 off = c->start + i * c->unit;
      g_autoptr (GError) error = NULL;
      gboolean ok = TRUE;
      guint64 host = 0;

      /* half repetitive (compresses), half not */
      for (gsize k = 0; k < c->unit; k++)
        data[k] = (guint8) (k < c->unit / 2 ? i : ((i * 7919 + k) * 2654435761u) >> 13);
      switch (i % 4)
        {
        case 0:
          ok = rechain_qcow2_writer_write (w, off, c->unit, data, &error);
          break;
        case 1:
          ok = rechain_qcow2_writer_write_zeroes (w, off, c->unit, &error);
          break;
        case 2:
          ok = rechain_qcow2_writer_write_compressed (w, off, c->unit, data, &error);
          break;
        default:
          ok = rechain_qcow2_writer_place (w, off, c->unit, &host, &error) &&
               (host == 0 ? rechain_qcow2_writer_write (w, off, c->unit, data, &error)
                          : rechain_qcow2_writer_put_data (w, host, data, c->unit, &error));
          g_array_append_val (hosts, host);
          break;
        }
      g_assert_no_error (error);
      g_assert_true (ok);
    }
}

/* Everything one writer does to a copy of the image; returns its stats. */
static RechainQcow2WriterStats
run_writer (const Case *c, GByteArray *image, RechainQcow2WriterFlags flags, GArray *hosts)
{
  RechainQcow2IO io = { mem_pread, mem_pwrite, mem_flush, image };
  g_autoptr (GError) error = NULL;
  g_autoptr (RechainQcow2Header) header =
    rechain_qcow2_header_parse (image->data, image->len, image->len, &error);
  g_autoptr (RechainQcow2Writer) w = NULL;
  guint64 units = (c->size - c->start) / c->unit;

  g_assert_no_error (error);
  w = rechain_qcow2_writer_new (header, &io, NULL, image->len, flags, &error);
  g_assert_no_error (error);

  /* every other unit, a commit, then the units in between: the second
   * half goes into the same L2 tables and refcount blocks, read back */
  run_calls (w, c, 0, units, 2, hosts);
  g_assert_true (rechain_qcow2_writer_commit (w, &error));
  g_assert_no_error (error);
  run_calls (w, c, 1, units, 2, hosts);
  /* what the first half wrote is known after the commit */
  g_assert_false (rechain_qcow2_writer_write_zeroes (w, c->start, c->unit, &error));
  g_assert_error (error, RECHAIN_ERROR, RECHAIN_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (rechain_qcow2_writer_commit (w, &error));
  g_assert_no_error (error);
  return *rechain_qcow2_writer_get_stats (w);
}

static void
test_plan_equals_real (gconstpointer data)
{
  const Case *c = data;
  g_autofree char *cmd = g_strdup_printf ("IMG=%s && %s", c->name, c->create);
  g_autoptr (GByteArray) planned = NULL, real = NULL, before = NULL;
  g_autoptr (GArray) plan_hosts = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr (GArray) real_hosts = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autofree char *real_path = g_strdup_printf ("%s/%s.real", tmpdir, c->name);
  g_autofree char *check = g_strdup_printf ("qemu-img check -q -f qcow2 %s.real", c->name);
  g_autoptr (GError) error = NULL;
  RechainQcow2WriterStats ps, rs;

  sh (cmd);
  before = load (c->name);
  planned = load (c->name);
  real = load (c->name);

  ps = run_writer (c, planned, RECHAIN_QCOW2_WRITER_PLAN, plan_hosts);
  rs = run_writer (c, real, RECHAIN_QCOW2_WRITER_NONE, real_hosts);

  g_assert_cmpmem (planned->data, planned->len, before->data, before->len);
  g_assert_cmpuint (rs.clusters_allocated, >, 0);
  g_assert_cmpuint (ps.clusters_allocated, ==, rs.clusters_allocated);
  g_assert_cmpuint (ps.data_bytes, ==, rs.data_bytes);
  g_assert_cmpuint (ps.zero_bytes, ==, rs.zero_bytes);
  g_assert_cmpuint (ps.compressed_clusters, ==, rs.compressed_clusters);
  g_assert_cmpuint (ps.metadata_bytes, ==, rs.metadata_bytes);
  g_assert_cmpuint (ps.flushes, ==, rs.flushes);
  g_assert_cmpuint (ps.l2_tables_copied, ==, rs.l2_tables_copied);
  if (strstr (c->create, "snapshot"))
    g_assert_cmpuint (rs.l2_tables_copied, >, 0);
  g_assert_cmpmem (plan_hosts->data, plan_hosts->len * sizeof (guint64),
                   real_hosts->data, real_hosts->len * sizeof (guint64));

  /* and the real writer's image is a sound one */
  g_file_set_contents (real_path, (const char *) real->data, real->len, &error);
  g_assert_no_error (error);
  sh (check);
}

static const Case cases[] = {
  /* 512-byte clusters and 64-bit refcounts: 64 clusters per refcount block,
   * so the refcount table grows (and moves) too; an internal snapshot shares
   * the first L2 table, which is copied */
  { "grow", "qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 $IMG 3M && "
            "qemu-io -f qcow2 -c 'write -P 1 0 1k' $IMG >/dev/null && "
            "qemu-img snapshot -c s1 $IMG",
    3 << 20, 512, 512, 1024 },
  /* extended L2, 2 KiB subclusters: the first cluster is partly allocated
   * and shared with a snapshot (its data cluster is copied), compression
   * falls back to plain writes for partial clusters */
  { "extl2", "qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on $IMG 8M && "
             "qemu-io -f qcow2 -c 'write -P 1 0 2k' $IMG >/dev/null && "
             "qemu-img snapshot -c s1 $IMG",
    8 << 20, 64 << 10, 2 << 10, 2 << 10 },
  /* whole 64 KiB clusters: compressed clusters packed together */
  { "plain", "qemu-img create -q -f qcow2 $IMG 16M", 16 << 20, 64 << 10, 64 << 10, 0 },
};

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autofree char *qemu_io = g_find_program_in_path ("qemu-io");
  int ret;

  g_test_init (&argc, &argv, NULL);
  if (!qemu_img || !qemu_io)
    {
      g_printerr ("qemu-img/qemu-io not found (install qemu-utils)\n");
      return 1;
    }
  tmpdir = g_dir_make_tmp ("rechain-writer-XXXXXX", &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_strconcat ("/format/writer/plan-equals-real/", cases[i].name, NULL);
      g_test_add_data_func (path, &cases[i], test_plan_equals_real);
    }
  ret = g_test_run ();
  {
    g_autofree char *rm = g_strdup_printf ("rm -rf '%s'", tmpdir);
    g_spawn_command_line_sync (rm, NULL, NULL, NULL, NULL);
  }
  return ret;
}
