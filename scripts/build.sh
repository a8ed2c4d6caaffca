#!/bin/sh
# Configures and builds rechain in BUILDDIR (default: build), with warnings
# as errors. A fresh BUILDDIR is set up with --werror and the meson options
# given as arguments; an existing one keeps its other settings but gets
# werror=true and those options too (meson configure), so CI never builds
# in a directory someone configured without -Werror.
set -eu
cd "$(dirname "$0")/.."
builddir=${BUILDDIR:-build}
if [ -f "$builddir/build.ninja" ]; then
  # only when something changes: meson configure marks the build dir for
  # regeneration even when the values stay the same
  if ! meson introspect "$builddir" --buildoptions |
       /usr/bin/python3 -c '
import json, sys
want = {"werror": True}
for a in sys.argv[1:]:
    if a.startswith("-D") and "=" in a:
        k, v = a[2:].split("=", 1)
        want[k] = v
have = {o["name"]: o["value"] for o in json.load(sys.stdin)}
def same(k, v):
    h = have.get(k)
    if isinstance(h, bool):
        return h == (v is True or str(v).lower() == "true")
    if isinstance(h, list):
        return ",".join(map(str, h)) == str(v)
    return str(h) == str(v)
sys.exit(0 if all(same(k, v) for k, v in want.items()) else 1)
' "$@"; then
    meson configure "$builddir" -Dwerror=true "$@" >/dev/null
  fi
else
  meson setup "$builddir" --werror "$@" >/dev/null
fi
ninja -C "$builddir" >/dev/null
