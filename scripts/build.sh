#!/bin/sh
# Configures (once) and builds rechain in BUILDDIR (default: build).
set -eu
cd "$(dirname "$0")/.."
builddir=${BUILDDIR:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" --werror "$@" >/dev/null
ninja -C "$builddir" >/dev/null
