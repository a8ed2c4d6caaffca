/* rechain.h: the umbrella header of librechain-1.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define __RECHAIN_H_INSIDE__

#include <rechain/rechain-version.h>
#include <rechain/rechain-enums.h>
#include <rechain/rechain-enum-types.h>
#include <rechain/rechain-error.h>
#include <rechain/rechain-extent.h>
#include <rechain/rechain-snapshot-info.h>
#include <rechain/rechain-bitmap-info.h>
#include <rechain/rechain-luks-slot-info.h>
#include <rechain/rechain-image-info.h>
#include <rechain/rechain-keyring.h>
#include <rechain/rechain-image.h>
#include <rechain/rechain-block-job.h>
#include <rechain/rechain-rebase-stats.h>
#include <rechain/rechain-rebase-job.h>
#include <rechain/rechain-util.h>
#include <rechain/rechain-volume-helper.h>
#include <rechain/rechain-lease.h>
#include <rechain/rechain-fleet-result.h>
#include <rechain/rechain-fleet.h>

#undef __RECHAIN_H_INSIDE__
