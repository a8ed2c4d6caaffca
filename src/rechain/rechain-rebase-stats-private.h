/* rechain-rebase-stats-private.h: how a rebase job makes its stats.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "job/rebase.h"
#include "rechain/rechain-rebase-stats.h"

G_BEGIN_DECLS

/* The stats of a finished (or planned) rebase; takes @report. */
G_GNUC_INTERNAL RechainRebaseStats *rechain_rebase_stats_new_for_report (RechainRebaseReport *report);

/* An image's outcome on its own, while the rebase goes on: a copy of
 * @image, the report entry of a rebase (@dry_run: a plan), that the
 * rebase may then free or change. */
G_GNUC_INTERNAL RechainRebaseImageStats *rechain_rebase_image_stats_new_copy (
  gboolean dry_run, const RechainRebaseImageReport *image);

G_END_DECLS
