#!/bin/bash
# Extract the uncompressed ELF vmlinux from an x86 bzImage whose payload is XZ-compressed
# (Debian's kernels are built with CONFIG_KERNEL_XZ=y).
#
# Why: with CONFIG_PVH=y the ELF carries a XEN_ELFNOTE_PHYS32_ENTRY note (note type 0x12,
# owner "Xen") giving a 32-bit protected-mode entry point. A VMM can load the ELF segments
# and jump there directly, skipping the real-mode setup code and the in-guest decompression
# of the bzImage (seconds under an emulator).
#
# How (the approach of the kernel's scripts/extract-vmlinux): look for the XZ stream magic
# FD 37 7A 58 5A 00 in the file, decompress the stream found there, and keep the result if it
# is an ELF file; try the next occurrence otherwise. Then require the PVH note.
#
# usage: extract-vmlinux.sh BZIMAGE OUT
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: extract-vmlinux.sh BZIMAGE OUT" >&2
    exit 2
fi
in=$1
out=$2
for c in xz readelf grep; do
    command -v "$c" >/dev/null || { echo "extract-vmlinux.sh: missing $c" >&2; exit 1; }
done
[ -r "$in" ] || { echo "extract-vmlinux.sh: cannot read $in" >&2; exit 1; }

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
found=""
# shellcheck disable=SC2013 # one decimal offset per line
for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$in" | cut -d: -f1); do
    # --single-stream: stop at the end of the first stream; the bzImage goes on after it.
    # (Input through a process substitution: tail's SIGPIPE must not count as a failure.)
    if xz -dc --single-stream < <(tail -c +$((off + 1)) "$in") > "$tmp" 2>/dev/null &&
        [ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        found=$off
        break
    fi
done
[ -n "$found" ] || { echo "extract-vmlinux.sh: no XZ stream holding an ELF file in $in" >&2; exit 1; }

# readelf names the note "Unknown note type: (0x00000012)" or XEN_ELFNOTE_PHYS32_ENTRY,
# depending on the binutils version; match both.
if ! readelf -n "$tmp" | grep -A0 -E '^ *Xen ' | grep -qiE '0x00000012|PHYS32_ENTRY'; then
    echo "extract-vmlinux.sh: $in: the extracted ELF has no PVH entry note (Xen, type 0x12)" >&2
    exit 1
fi
mv -f "$tmp" "$out"
echo "extract-vmlinux.sh: $out: ELF with PVH entry note, $(stat -c %s "$out") bytes (XZ stream at offset $found)" >&2
