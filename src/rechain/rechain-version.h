/* rechain-version.h: visibility of the public API.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#if !defined(__RECHAIN_H_INSIDE__) && !defined(RECHAIN_COMPILATION)
#error "Only <rechain/rechain.h> can be included directly."
#endif

/* Every public function is marked: the library is built with hidden
 * visibility, and librechain-1.sym lists exactly these symbols. */
#define RECHAIN_PUBLIC __attribute__ ((visibility ("default"))) extern
