#!/bin/bash
# Make the raw test disk for the virtio-blk checks of the guest /init (init.sh):
# 8 MiB (8388608 bytes), the first 16 bytes are "TERN-DISK-TEST-1", the rest zeros.
# A guest booted with it prints
#   TERN-DISK: vda size=8388608
#   TERN-DISK-HEAD: 5445524e2d4449534b2d544553542d31
#   TERN-DISK-WRITTEN
# and leaves "TERN-DISK-WRITE1" at byte offset 4096 of FILE.
# usage: make-test-disk.sh FILE   (FILE is replaced if it exists)
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: make-test-disk.sh FILE" >&2
    exit 2
fi
out=$1
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
printf 'TERN-DISK-TEST-1' > "$tmp"
truncate -s 8M "$tmp"
mv -f "$tmp" "$out"
