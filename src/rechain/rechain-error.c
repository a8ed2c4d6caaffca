/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include "rechain/rechain-error.h"

G_DEFINE_QUARK (rechain-error-quark, rechain_error)
