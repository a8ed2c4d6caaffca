#!/bin/sh
# Sets up, builds, and runs rechain on a sample image chain it creates.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup-debian.sh"
"$top/scripts/build.sh"
rechain="$top/build/src/tool/rechain"

dir=$(mktemp -d /tmp/rechain-demo-XXXXXX)
cd "$dir"
echo "== Sample chain in $dir: base.qcow2 <- mid.qcow2 <- overlay.qcow2"
qemu-img create -q -f qcow2 base.qcow2 1G
qemu-io -f qcow2 -c 'write -P 0xaa 0 64M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
qemu-io -f qcow2 -c 'write -P 0xcc 16M 8M' mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 overlay.qcow2
qemu-io -f qcow2 -c 'write -P 0xbb 4M 1M' overlay.qcow2 >/dev/null
qemu-img convert -O raw overlay.qcow2 before.raw

echo "== rechain info --backing-chain overlay.qcow2"
"$rechain" info --backing-chain overlay.qcow2
echo
echo "== rechain map overlay.qcow2"
"$rechain" map overlay.qcow2
echo
echo "== rechain rebase --dry-run --output=human -b base.qcow2 -F qcow2 overlay.qcow2   (plan: drop mid)"
"$rechain" rebase --dry-run --output=human -b base.qcow2 -F qcow2 overlay.qcow2
echo
echo "== rechain rebase -p --output=human -b base.qcow2 -F qcow2 overlay.qcow2"
"$rechain" rebase -p --output=human -b base.qcow2 -F qcow2 overlay.qcow2
"$rechain" info overlay.qcow2 | grep '^backing'
echo
echo "== rechain rebase --output=json -b '' overlay.qcow2   (flatten: no backing file)"
"$rechain" rebase --output=json -b '' overlay.qcow2
echo
echo "== Checking with QEMU's own tools"
qemu-img check -q overlay.qcow2 && echo "qemu-img check: no errors"
qemu-img compare -q -f raw -F qcow2 before.raw overlay.qcow2 && echo "qemu-img compare: guest content unchanged"
qemu-img info overlay.qcow2 | grep -q '^backing file' && echo "unexpected backing file" && exit 1
echo "overlay.qcow2 is standalone now"
