#!/bin/sh
# Sets up, builds and runs the whole test suite; the last line reads
# "N passed, M failed". SANITIZE=1 builds with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-asan instead.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/setup-debian.sh" --tests || exit 1

if [ "${SANITIZE:-0}" = 1 ]; then
  builddir=build-asan
  set -- -Db_sanitize=address,undefined -Db_lundef=false
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
else
  builddir=build
fi
BUILDDIR=$builddir "$top/scripts/build.sh" "$@" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

meson test -C "$builddir" --print-errorlogs --num-processes 2 ${MESON_TEST_ARGS:-}
status=$?
/usr/bin/python3 "$top/scripts/test-summary.py" "$builddir/meson-logs/testlog.json" || status=1
exit $status
