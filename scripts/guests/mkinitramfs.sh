#!/bin/bash
# Pack tern's test-guest initramfs: a gzip'd newc cpio holding busybox, the project's /init
# (init.sh next to this script) and, optionally, kernel modules with a load order.
#
# usage: mkinitramfs.sh OUT.cpio.gz BUSYBOX [MODDIR MODULE...]
#   BUSYBOX  a statically linked busybox for the guest architecture (never run on the host)
#   MODDIR   the lib/modules/<release> directory of an extracted kernel package
#   MODULE   module names (virtio_blk, ...); each is shipped with everything it depends on
#
# Debian's x86_64 kernel builds virtio as modules, so the guest cannot see its disk without
# them. Dependencies come from each module's own .modinfo "depends=" field (read with
# readelf), so neither kmod nor a depmod run is needed; /lib/modules/load-order lists the
# .ko files with every module after its dependencies, and /init insmods them in that order.
# Compressed modules (.ko.xz/.ko.zst/.ko.gz) are stored decompressed: busybox insmod cannot
# decompress.
#
# Reproducible: every entry gets the mtime SOURCE_DATE_EPOCH (default 1700000000), owner
# 0:0 and an explicit mode, names are sorted, cpio --reproducible numbers the inodes, and
# gzip -n leaves out the name and time. Same inputs, same bytes.
#
# Needs root (mknod for /dev/console, which the kernel opens before it runs /init), GNU cpio,
# gzip, readelf (binutils); xz/zstd only for compressed modules.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
die() {
    echo "mkinitramfs.sh: $*" >&2
    exit 1
}
if [ $# -lt 2 ] || [ $# -eq 3 ]; then
    echo "usage: mkinitramfs.sh OUT.cpio.gz BUSYBOX [MODDIR MODULE...]" >&2
    exit 2
fi
OUTF=$1
BB=$2
shift 2
for c in cpio gzip readelf mknod; do
    command -v "$c" >/dev/null || die "missing $c"
done
[ -f "$BB" ] || die "no busybox binary at $BB"
[ "$(id -u)" = 0 ] || die "needs root (mknod /dev/console)"
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

R=$(mktemp -d "${TMPDIR:-/tmp}/tern-initramfs.XXXXXX")
trap 'rm -rf "$R"' EXIT
umask 022
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,root,etc,lib/modules}
install -m 755 "$BB" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
install -m 755 "$HERE/init.sh" "$R/init"
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3

if [ $# -gt 0 ]; then
    MODDIR=$1
    shift
    [ -d "$MODDIR" ] || die "no module directory $MODDIR"
    # Index: module name (dashes read as underscores, as the kernel does) -> path.
    declare -A PATH_OF STATE
    while IFS= read -r -d '' f; do
        b=${f##*/}
        b=${b%.ko*}
        PATH_OF[${b//-/_}]=$f
    done < <(find "$MODDIR" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
    ORDER=()
    # add NAME: stage the module (decompressed), then its dependencies, then list it.
    add() {
        local name=${1//-/_} src rel dst dep
        case ${STATE[$name]:-} in
            listed) return 0 ;;
            visiting) die "dependency cycle through module $name" ;;
        esac
        src=${PATH_OF[$name]:-}
        [ -n "$src" ] || die "module $name not found under $MODDIR"
        STATE[$name]=visiting
        rel=${src#"$MODDIR"/}
        case $rel in
            *.ko.xz) rel=${rel%.xz} ;;
            *.ko.zst) rel=${rel%.zst} ;;
            *.ko.gz) rel=${rel%.gz} ;;
        esac
        dst="$R/lib/modules/$rel"
        mkdir -p "${dst%/*}"
        case $src in
            *.ko.xz) xz -dc "$src" > "$dst" ;;
            *.ko.zst) zstd -qdc "$src" > "$dst" ;;
            *.ko.gz) gzip -dc "$src" > "$dst" ;;
            *) cp "$src" "$dst" ;;
        esac
        chmod 644 "$dst"
        for dep in $(readelf -p .modinfo "$dst" | sed -n 's/^ *\[ *[0-9a-f]*\] *depends=//p' | tr ',' ' '); do
            add "$dep"
        done
        STATE[$name]=listed
        ORDER+=("$rel")
    }
    for m in "$@"; do
        add "$m"
    done
    printf '%s\n' "${ORDER[@]}" > "$R/lib/modules/load-order"
    echo "mkinitramfs.sh: ${#ORDER[@]} modules: $(tr '\n' ' ' < "$R/lib/modules/load-order")" >&2
fi

find "$R" -exec touch -h -d "@$EPOCH" {} +
tmp="$OUTF.tmp.$$"
(cd "$R" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio --quiet --reproducible -o -H newc -R 0:0) | gzip -9 -n > "$tmp"
mv -f "$tmp" "$OUTF"
