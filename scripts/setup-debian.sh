#!/bin/sh
# Installs what rechain needs to build and test on Debian 12, skipping what
# is already there. Run as root (or with sudo available).
set -eu

packages="meson ninja-build pkg-config gcc libc6-dev gettext
libglib2.0-dev libzstd-dev zlib1g-dev libjson-glib-dev
gobject-introspection libgirepository1.0-dev python3-gi valac gi-docgen libgcrypt20-dev
qemu-utils python3 groff-base man-db bash-completion bsdutils
libvirt-dev libvirt-daemon libvirt-clients qemu-system-x86"
# the tests also make loop file systems (ext4 for ENOSPC; XFS with reflink
# and btrfs for copy offload), run valgrind, and build the fuzzers (clang)
[ "${1:-}" = "--tests" ] && packages="$packages clang libclang-rt-14-dev valgrind e2fsprogs
xfsprogs btrfs-progs util-linux zstd strace"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "Installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
