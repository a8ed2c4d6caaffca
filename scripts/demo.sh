#!/bin/sh
# Sets up, builds, and runs rechain on a sample image chain it creates.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup-debian.sh"
"$top/scripts/build.sh"
rechain="$top/build/src/tool/rechain"

dir=$(mktemp -d /tmp/rechain-demo-XXXXXX)
cd "$dir"
echo "== Sample chain in $dir: base.qcow2 <- overlay.qcow2"
qemu-img create -q -f qcow2 base.qcow2 1G
qemu-io -f qcow2 -c 'write -P 0xaa 0 8M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
qemu-io -f qcow2 -c 'write -P 0xbb 4M 1M' overlay.qcow2 >/dev/null
cp base.qcow2 base-moved.qcow2

echo "== rechain info --backing-chain overlay.qcow2"
"$rechain" info --backing-chain overlay.qcow2
echo
echo "== rechain map overlay.qcow2"
"$rechain" map overlay.qcow2
echo
echo "== rechain rebase -u -b base-moved.qcow2 -F qcow2 overlay.qcow2   (the base was moved)"
qemu-img convert -O raw overlay.qcow2 before.raw
"$rechain" rebase -u -b base-moved.qcow2 -F qcow2 overlay.qcow2
"$rechain" info overlay.qcow2 | grep '^backing'
echo "== Checking with QEMU's own tools"
qemu-img check -q overlay.qcow2 && echo "qemu-img check: no errors"
qemu-img compare -q -f raw -F qcow2 before.raw overlay.qcow2 && echo "qemu-img compare: guest content unchanged"
