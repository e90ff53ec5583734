#!/bin/bash
# Build tern's Linux test guests from Debian packages, into a cache outside the clone.
#
# usage: scripts/guests/build.sh [--only SET]... [--print-dir] [--no-build] [--refresh]
#                                [--verify] [--record]
#   SET          x86_64 (the default), riscv64, riscv64-mini, or all
#   --print-dir  stdout gets only the set's directory (one line per set); progress stays on
#                stderr and the informational lines are left out
#   --no-build   do not download or build: print the directory of the last good set
#                (current-SET) and fail if there is none; never needs root or network
#   --refresh    forget which package versions were used last time and ask apt again
#                (picks up a newer Debian kernel when the pinned one has gone)
#   --verify     also re-hash the cached outputs against their MANIFEST
#   --record     write the outputs' sha256 into expected.sha256 (after an intended change)
#   --prune      afterwards, delete set directories and compiled kernels that no current-SET
#                link uses (old builds otherwise stay, ~100 MB each)
#
# Environment:
#   TERN_CACHE              cache root (default $HOME/.cache/tern); outputs go to
#                           $TERN_CACHE/guests/, downloaded .debs to $TERN_CACHE/guests/debs/
#   TERN_GUESTS_STRICT=1    a mismatch with expected.sha256 is an error, not a warning
#   TERN_GUESTS_NO_INSTALL=1  never apt-get install missing host tools; just say what is missing
#   TERN_GUESTS_RV_SUITES   Debian suites tried in order for riscv64 packages (default
#                           "trixie forky")
#   TERN_GUESTS_JOBS        make -j for the riscv64-mini kernel (default nproc)
#
# Every set lives in $TERN_CACHE/guests/SET-KEY/, where KEY is a sha256 over the .deb files'
# sha256s and these scripts' sha256s, so a set is rebuilt exactly when an input changed; a run
# whose set already exists does no work. SET-KEY/MANIFEST names the packages, versions and the
# sha256 of every output; $TERN_CACHE/guests/current-SET is a symlink to the newest good set.
#
# Package versions are pinned (x86_64: the versions the reference images in
# /work/shared/guests were made from; riscv64: trixie's, which this mirror serves again; the
# reference had to fall back to forky). When Debian no longer serves a pinned version, the
# current one is used instead, with a warning, and the versions actually used are remembered
# (guests/resolved-SET) so later runs stay offline; --refresh asks apt again.
#
# Outputs (file names are part of the interface; tests use them):
#   x86_64/       bzImage  vmlinux (PVH ELF)  initramfs.cpio.gz  kernel-config.gz
#                 kernel-drivers.txt  MANIFEST
#   riscv64/      Image  Image.gz  initramfs.cpio.gz  fw_dynamic.bin  kernel-config.gz
#                 kernel-drivers.txt  MANIFEST
#   riscv64-mini/ Image  Image.gz  initramfs.cpio.gz  fw_dynamic.bin  kernel-config.gz
#                 kernel-drivers.txt  MANIFEST
#
# Exit status: 0 ok, 1 failure (the message names the missing piece), 2 bad usage,
# 3 output differs from expected.sha256 while TERN_GUESTS_STRICT=1.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TERN_CACHE:-${HOME:?HOME or TERN_CACHE must be set}/.cache/tern}
G=$CACHE/guests
DEBS=$G/debs
EXPECTED=$HERE/expected.sha256
RV_SUITES=${TERN_GUESTS_RV_SUITES:-"trixie forky"}
export SOURCE_DATE_EPOCH=1700000000

QUIET=0
log() { if [ "$QUIET" = 0 ]; then echo "build.sh: $*" >&2; fi; }
warn() { echo "build.sh: warning: $*" >&2; }
die() {
    echo "build.sh: error: $*" >&2
    exit 1
}
usage() {
    sed -n '3,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------
# Pinned packages: "SET GROUP NAME ARCH VERSION APT". A group is re-resolved as a whole when
# one of its pins cannot be downloaded (a kernel's packages must come from one release).
# APT is "sys" (the host's apt configuration: bookworm amd64 + all) or "rv" (a private
# riscv64 configuration under the cache, the host's sources are never changed).
PINS="
x86_64 kernel linux-image-6.1.0-56-amd64 amd64 6.1.192-2 sys
x86_64 busybox busybox-static amd64 1:1.35.0-4+deb12u1+b1 sys
riscv64 kernel linux-image-6.12.117+deb13-riscv64 riscv64 6.12.117-1 rv
riscv64 busybox busybox-static riscv64 1:1.37.0-6+b9 rv
riscv64 opensbi opensbi all 1.1-2 sys
riscv64-mini source linux-source-6.1 all 6.1.192-2 sys
riscv64-mini busybox busybox-static riscv64 1:1.37.0-6+b9 rv
riscv64-mini opensbi opensbi all 1.1-2 sys
"
# Scripts whose content goes into every set's key.
SCRIPTS="build.sh mkinitramfs.sh init.sh extract-vmlinux.sh"

# ---------------------------------------------------------------------------------------
# Host tools: command -> Debian package that provides it.
declare -A TOOL_PKG=(
    [dpkg-deb]=dpkg [cpio]=cpio [xz]=xz-utils [gzip]=gzip [readelf]=binutils
    [flock]=util-linux [sha256sum]=coreutils [zstd]=zstd [make]=make [gcc]=gcc
    [bc]=bc [flex]=flex [bison]=bison [perl]=perl
    [riscv64-linux-gnu-gcc]=gcc-riscv64-linux-gnu
)
need_tools() {
    local c missing=() pkgs=()
    for c in "$@"; do
        if ! command -v "$c" >/dev/null; then
            missing+=("$c")
            pkgs+=("${TOOL_PKG[$c]:-$c}")
        fi
    done
    [ ${#missing[@]} = 0 ] && return 0
    if [ "${TERN_GUESTS_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ]; then
        die "missing ${missing[*]}: run as root, or apt-get install -y --no-install-recommends ${pkgs[*]}"
    fi
    log "installing ${pkgs[*]} (for ${missing[*]})"
    apt_install "${pkgs[@]}" || die "apt-get install ${pkgs[*]} failed (needed for ${missing[*]})"
    for c in "${missing[@]}"; do
        command -v "$c" >/dev/null || die "still missing $c after installing ${TOOL_PKG[$c]:-$c}"
    done
}
apt_install() {
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 || rc=$?
    if [ $rc != 0 ]; then
        sys_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
    fi
}
need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (apt-get, mknod); run as root or use --no-build"
}

# ---------------------------------------------------------------------------------------
# apt contexts. "sys": the host's configuration, `apt-get update` only when a download fails
# or there are no lists. "rv": a private configuration for riscv64 in $G/apt-rv/.
SYS_UPDATED=0
sys_update() {
    [ "$SYS_UPDATED" = 1 ] && return 0
    need_root "apt-get update"
    log "apt-get update"
    apt-get update >&2 || die "apt-get update failed"
    SYS_UPDATED=1
}
sys_lists_missing() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

RV_SUITE=""
RV_UPDATED=0
rv_opts() {
    local A=$G/apt-rv/$1
    printf '%s\n' -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$A/etc" \
        -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=/dev/null" \
        -o "APT::Architecture=riscv64" -o "APT::Architectures::=riscv64"
}
host_mirror() {
    local m
    m=$(awk '/^URIs: *http[^ ]*\/debian\/?$/ && !n++ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '/^deb / && $2 ~ /\/debian\/?$/ && !n++ {print $2}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${m:-http://deb.debian.org/debian}"
}
# rv_setup [update]: pick the first suite whose riscv64 index downloads and verifies.
rv_setup() {
    local s A mirror opts
    if [ -n "$RV_SUITE" ] && { [ "${1:-}" != update ] || [ "$RV_UPDATED" = 1 ]; }; then
        return 0
    fi
    mirror=$(host_mirror)
    for s in $RV_SUITES; do
        A=$G/apt-rv/$s
        mkdir -p "$A/etc" "$A/lists/partial" "$A/cache/archives/partial"
        cat > "$A/etc/tern-riscv64.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $s
Components: main
Architectures: riscv64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        mapfile -t opts < <(rv_opts "$s")
        if [ "${1:-}" != update ] && compgen -G "$A/lists/*_Packages*" >/dev/null; then
            RV_SUITE=$s
            return 0
        fi
        need_root "apt-get update (riscv64, $s)"
        log "apt-get update for riscv64 packages from $s"
        if apt-get "${opts[@]}" update > "$A/update.log" 2>&1 && ! grep -q '^E:' "$A/update.log"; then
            RV_SUITE=$s
            RV_UPDATED=1
            return 0
        fi
        warn "riscv64 index of $s unusable: $(grep -m1 '^E:' "$A/update.log" || tail -n1 "$A/update.log")"
    done
    die "no usable riscv64 suite among: $RV_SUITES (set TERN_GUESTS_RV_SUITES)"
}
apt_ctx() { # CTX apt-get|apt-cache ARGS...
    local ctx=$1 tool=$2 opts=()
    shift 2
    if [ "$ctx" = rv ]; then
        rv_setup
        mapfile -t opts < <(rv_opts "$RV_SUITE")
    fi
    "$tool" "${opts[@]}" "$@"
}
update_ctx() {
    if [ "$1" = rv ]; then rv_setup update; else sys_update; fi
}

# ---------------------------------------------------------------------------------------
# .deb cache: $DEBS/NAME_VERSION_ARCH.deb (":" in the version as %3a, like apt-get download)
# with NAME_VERSION_ARCH.deb.sha256 next to it. Pool files never change under one name, so
# a cached file is reused without asking the network.
deb_path() { echo "$DEBS/${1}_${3//:/%3a}_${2}.deb"; }
deb_cached() {
    local p
    p=$(deb_path "$@")
    [ -s "$p" ] && [ -s "$p.sha256" ]
}
# fetch NAME ARCH VERSION CTX: download one exact version; non-zero when apt cannot serve it.
fetch() {
    local name=$1 arch=$2 ver=$3 ctx=$4 p spec tmp
    deb_cached "$name" "$arch" "$ver" && return 0
    need_root "downloading $name"
    p=$(deb_path "$name" "$arch" "$ver")
    spec="$name=$ver"
    if [ "$arch" != all ] && [ "$ctx" = sys ]; then spec="$name:$arch=$ver"; fi
    mkdir -p "$DEBS"
    tmp=$(mktemp -d "$DEBS/.download.XXXXXX")
    chmod 777 "$tmp" # apt downloads as its _apt user
    # Pick the apt configuration here, not inside the subshells below, so that the suite
    # choice and the "lists updated" flags survive.
    if [ "$ctx" = rv ]; then rv_setup; elif sys_lists_missing; then sys_update; fi
    log "apt-get download $spec"
    if ! (cd "$tmp" && apt_ctx "$ctx" apt-get download "$spec" >&2 2>"$tmp/err"); then
        if ! { [ "$ctx" = sys ] && [ "$SYS_UPDATED" = 1 ]; } && ! { [ "$ctx" = rv ] && [ "$RV_UPDATED" = 1 ]; }; then
            log "download of $spec failed ($(grep -m1 '^E:' "$tmp/err" || true)); updating the package lists"
            update_ctx "$ctx"
        fi
        if ! (cd "$tmp" && apt_ctx "$ctx" apt-get download "$spec" >&2 2>"$tmp/err"); then
            log "cannot download $spec: $(grep -m1 '^E:' "$tmp/err" || true)"
            rm -rf "$tmp"
            return 1
        fi
    fi
    set -- "$tmp"/*.deb
    if [ $# != 1 ] || [ ! -f "$1" ]; then
        rm -rf "$tmp"
        die "apt-get download $spec gave no single .deb"
    fi
    mv -f "$1" "$p"
    sha256sum "$p" | cut -d' ' -f1 > "$p.sha256"
    rm -rf "$tmp"
}
candidate() { # CTX NAME: the version apt would install now
    apt_ctx "$1" apt-cache policy "$2" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'
}
# What to use when a pinned group cannot be downloaded: today's packages of the same role.
# Prints "NAME ARCH VERSION CTX" lines.
fallback_group() { # SET GROUP
    local set=$1 group=$2 img v p
    case "$set:$group" in
        x86_64:kernel)
            img=$(apt_ctx sys apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1\.0-[0-9]+-amd64$/ && !n++ {print $2}')
            [ -n "$img" ] || die "cannot find the current linux-image-6.1.0-*-amd64 (apt-cache depends linux-image-amd64)"
            echo "$img amd64 $(candidate sys "$img") sys"
            ;;
        riscv64:kernel)
            img=$(apt_ctx rv apt-cache depends linux-image-riscv64 | awk '/Depends: linux-image-[0-9]/ && !n++ {print $2}')
            [ -n "$img" ] || die "cannot find the current riscv64 kernel (apt-cache depends linux-image-riscv64, suite $RV_SUITE)"
            echo "$img riscv64 $(candidate rv "$img") rv"
            # Newer Debian splits the kernel into linux-binary/-modules/-base packages.
            for p in $(apt_ctx rv apt-cache depends "$img" | awk '/Depends: linux-(binary|modules|base)-[0-9]/ {print $2}'); do
                echo "$p riscv64 $(candidate rv "$p") rv"
            done
            ;;
        *)
            awk -v s="$set" -v g="$group" '$1 == s && $2 == g {print $3, $4, $6}' <<< "$PINS" |
                while read -r p a c; do
                    v=$(candidate "$c" "$p")
                    if [ -z "$v" ] || [ "$v" = "(none)" ]; then die "apt has no $p ($a) at all"; fi
                    echo "$p $a $v $c"
                done
            ;;
    esac
}
# resolve SET: make sure the set's .debs are cached; sets RES to "NAME ARCH VERSION FROM"
# lines (FROM: host-apt, or riscv64:SUITE). Runs in this shell (not in $(...)) so the apt
# state it sets up is kept. Remembers the answer in $G/resolved-SET (keyed by the pins),
# so later runs need no apt at all.
RES=""
from_label() {
    if [ "$1" = rv ]; then echo "riscv64:$RV_SUITE"; else echo host-apt; fi
}
resolve() {
    local set=$1 pins pinsum rf groups g name arch ver ctx chosen=() ok
    pins=$(awk -v s="$set" '$1 == s' <<< "$PINS")
    pinsum=$(sha256sum <<< "$pins" | cut -c1-16)
    rf=$G/resolved-$set
    if [ "$REFRESH" = 0 ] && [ -f "$rf" ] && [ "$(head -n1 "$rf")" = "pins $pinsum" ]; then
        ok=1
        while read -r name arch ver ctx; do
            deb_cached "$name" "$arch" "$ver" || ok=0
        done < <(tail -n +2 "$rf")
        if [ "$ok" = 1 ]; then
            RES=$(tail -n +2 "$rf")
            return 0
        fi
    fi
    groups=$(awk '{print $2}' <<< "$pins" | awk '!seen[$0]++')
    for g in $groups; do
        ok=1
        while read -r _ _ name arch ver ctx; do
            if ! fetch "$name" "$arch" "$ver" "$ctx"; then ok=0; break; fi
        done < <(awk -v g="$g" '$2 == g' <<< "$pins")
        if [ "$ok" = 1 ]; then
            while read -r _ _ name arch ver ctx; do
                chosen+=("$name $arch $ver $(from_label "$ctx")")
            done < <(awk -v g="$g" '$2 == g' <<< "$pins")
            continue
        fi
        warn "$set: pinned $g package(s) no longer available from Debian; using the current ones (see MANIFEST)"
        local fb
        fb=$(fallback_group "$set" "$g")
        [ -n "$fb" ] || die "$set: cannot resolve the $g packages"
        while read -r name arch ver ctx; do
            fetch "$name" "$arch" "$ver" "$ctx" || die "$set: cannot download $name $ver ($arch)"
            chosen+=("$name $arch $ver $(from_label "$ctx")")
        done <<< "$fb"
    done
    mkdir -p "$G"
    { echo "pins $pinsum"; printf '%s\n' "${chosen[@]}"; } > "$rf.tmp"
    mv -f "$rf.tmp" "$rf"
    RES=$(printf '%s\n' "${chosen[@]}")
}

# ---------------------------------------------------------------------------------------
# Helpers used by the set builders.
# config_table CONFIG TITLE OPTION...: one "OPTION value" line each (n when not set).
config_table() {
    local cfg=$1 o v
    echo "# $2: y = built in, m = module, n = not set"
    shift 2
    for o in "$@"; do
        v=$(sed -n "s/^CONFIG_$o=\(.*\)/\1/p" "$cfg")
        printf '%-30s %s\n' "$o" "${v:-n}"
    done
}
deb_of() { # RESOLVED NAME-REGEX: path of the resolved .deb whose name matches
    local name arch ver ctx
    while read -r name arch ver ctx; do
        if [[ $name =~ ^$2$ ]]; then
            deb_path "$name" "$arch" "$ver"
            return 0
        fi
    done <<< "$1"
    die "internal: no package matching $2"
}
first_existing() {
    local f
    for f in "$@"; do
        if [ -e "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

# build_x86_64 RESOLVED OUT WORK
build_x86_64() {
    local res=$1 out=$2 work=$3 kdeb kv cfg
    need_tools dpkg-deb cpio gzip xz readelf
    kdeb=$(deb_of "$res" 'linux-image-[0-9].*')
    log "x86_64: unpacking $(basename "$kdeb")"
    dpkg-deb -x "$kdeb" "$work/k"
    dpkg-deb -x "$(deb_of "$res" busybox-static)" "$work/bb"
    kv=$(ls "$work/k/lib/modules")
    [ "$(wc -w <<< "$kv")" = 1 ] || die "x86_64: expected one kernel release in the package, got: $kv"
    cfg=$work/k/boot/config-$kv
    cp "$work/k/boot/vmlinuz-$kv" "$out/bzImage"
    gzip -9 -n < "$cfg" > "$out/kernel-config.gz"
    config_table "$cfg" "$(basename "$kdeb" .deb) ($kv)" \
        SERIAL_8250 SERIAL_8250_CONSOLE VIRTIO VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES VIRTIO_PCI \
        VIRTIO_BLK VIRTIO_NET VIRTIO_CONSOLE VIRTIO_BALLOON HW_RANDOM_VIRTIO BLK_DEV_INITRD RD_GZIP \
        DEVTMPFS X86_X2APIC KVM_GUEST PVH HPET ACPI PCI SERIAL_8250_NR_UARTS MODULE_SIG \
        MODULE_SIG_FORCE RANDOMIZE_BASE KERNEL_XZ > "$out/kernel-drivers.txt"
    log "x86_64: extracting the PVH vmlinux"
    "$HERE/extract-vmlinux.sh" "$out/bzImage" "$out/vmlinux"
    local mods=()
    # Debian builds virtio as modules: ship them, /init loads them in dependency order.
    if grep -q '^CONFIG_VIRTIO=m' "$cfg"; then
        mods=("$work/k/lib/modules/$kv" virtio_mmio virtio_pci virtio_blk virtio_net virtio_console)
        grep -q '^CONFIG_HW_RANDOM_VIRTIO=m' "$cfg" && mods+=(virtio_rng)
    fi
    "$HERE/mkinitramfs.sh" "$out/initramfs.cpio.gz" "$work/bb/bin/busybox" "${mods[@]}"
    echo "kernel_release=$kv"
    echo "initramfs_modules=$(gzip -dc "$out/initramfs.cpio.gz" | cpio --quiet -i --to-stdout lib/modules/load-order 2>/dev/null | tr '\n' ' ')"
}

# riscv64 kernels: Debian's Image (or vmlinuz, gzip'd), stored raw (Image) and gzip'd.
store_rv_image() { # KERNEL_FILE OUT
    case $(head -c2 "$1" | od -An -tx1 | tr -d ' \n') in
        1f8b) gzip -dc "$1" > "$2/Image" ;;
        *) cp "$1" "$2/Image" ;;
    esac
    gzip -9 -n < "$2/Image" > "$2/Image.gz"
}
store_opensbi() { # RESOLVED OUT WORK
    local f
    dpkg-deb -x "$(deb_of "$1" opensbi)" "$3/sbi"
    f=$(first_existing "$3"/sbi/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin) ||
        die "opensbi package has no generic/fw_dynamic.bin"
    cp "$f" "$2/fw_dynamic.bin"
}
RV_OPTIONS="SERIAL_8250 SERIAL_8250_CONSOLE SERIAL_OF_PLATFORM SERIAL_EARLYCON_RISCV_SBI HVC_RISCV_SBI
    VIRTIO VIRTIO_MMIO VIRTIO_PCI VIRTIO_BLK VIRTIO_NET VIRTIO_CONSOLE HW_RANDOM_VIRTIO BLK_DEV_INITRD
    RD_GZIP DEVTMPFS SMP FPU RISCV_ISA_C RISCV_ISA_V RISCV_ISA_ZBB RISCV_ISA_SVPBMT RISCV_ISA_ZICBOM
    EFI ACPI PCI NET POWER_RESET_SYSCON_POWEROFF RTC_DRV_GOLDFISH SIFIVE_PLIC MODULES
    MODULE_COMPRESS_XZ"

# build_riscv64 RESOLVED OUT WORK: Debian's stock riscv64 kernel, nothing compiled.
build_riscv64() {
    local res=$1 out=$2 work=$3 name arch ver ctx modroot kv kimg cfg bb
    need_tools dpkg-deb cpio gzip xz readelf zstd
    while read -r name arch ver ctx; do
        case $name in linux-*) dpkg-deb -x "$(deb_path "$name" "$arch" "$ver")" "$work/k" ;; esac
    done <<< "$res"
    dpkg-deb -x "$(deb_of "$res" busybox-static)" "$work/bb"
    # Modules in /lib/modules (older) or /usr/lib/modules (merged /usr, split packages).
    modroot=$work/k
    [ -d "$work/k/usr/lib/modules" ] && modroot=$work/k/usr
    kv=$(ls "$modroot/lib/modules")
    [ "$(wc -w <<< "$kv")" = 1 ] || die "riscv64: expected one kernel release, got: $kv"
    kimg=$(first_existing "$work"/k/boot/vmlinu[xz]-"$kv" "$modroot/lib/modules/$kv"/vmlinu[xz]) ||
        die "riscv64: no kernel image in the kernel packages"
    cfg=$(first_existing "$work/k/boot/config-$kv" "$modroot/lib/modules/$kv/config") ||
        die "riscv64: no kernel config in the kernel packages"
    store_rv_image "$kimg" "$out"
    gzip -9 -n < "$cfg" > "$out/kernel-config.gz"
    # shellcheck disable=SC2086
    config_table "$cfg" "Debian riscv64 kernel ($kv)" $RV_OPTIONS > "$out/kernel-drivers.txt"
    local mods=() m
    for m in VIRTIO_MMIO:virtio_mmio VIRTIO_BLK:virtio_blk VIRTIO_NET:virtio_net \
        VIRTIO_CONSOLE:virtio_console HW_RANDOM_VIRTIO:virtio_rng; do
        grep -q "^CONFIG_${m%%:*}=m" "$cfg" && mods+=("${m#*:}")
    done
    if [ ${#mods[@]} -gt 0 ]; then mods=("$modroot/lib/modules/$kv" "${mods[@]}"); fi
    bb=$(first_existing "$work"/bb/bin/busybox "$work"/bb/usr/bin/busybox) || die "riscv64: no busybox in busybox-static"
    "$HERE/mkinitramfs.sh" "$out/initramfs.cpio.gz" "$bb" "${mods[@]}"
    store_opensbi "$res" "$out" "$work"
    echo "kernel_release=$kv"
}

# build_riscv64_mini RESOLVED OUT WORK: linux 6.1 from bookworm's linux-source-6.1,
# cross-compiled: tinyconfig plus what the tests need, everything built in, no modules.
MINI_OPTIONS="MMU ARCH_RV64I SOC_VIRT NONPORTABLE RISCV_ISA_C FPU PRINTK PRINTK_TIME TTY
    SERIAL_8250 SERIAL_8250_CONSOLE SERIAL_OF_PLATFORM SERIAL_EARLYCON RISCV_SBI_V01 HVC_RISCV_SBI
    SERIAL_EARLYCON_RISCV_SBI BLOCK BLK_DEV VIRTIO_MENU VIRTIO_MMIO VIRTIO_BLK HW_RANDOM
    HW_RANDOM_VIRTIO BLK_DEV_INITRD RD_GZIP BINFMT_ELF BINFMT_SCRIPT PROC_FS SYSFS DEVTMPFS FUTEX
    POSIX_TIMERS MULTIUSER POWER_RESET POWER_RESET_SYSCON_POWEROFF"
# compile_mini_kernel SOURCE_DEB KDIR: KDIR/{Image,config,kernel.release}.
compile_mini_kernel() {
    local sdeb=$1 kdir=$2 src o
    mkdir -p "$kdir/work"
    log "riscv64-mini: unpacking linux-source-6.1"
    dpkg-deb --fsys-tarfile "$sdeb" | tar -xO ./usr/src/linux-source-6.1.tar.xz | xz -dc | tar -x -C "$kdir/work"
    src=$kdir/work/linux-source-6.1
    local mk=(make -C "$src" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-
        "KBUILD_BUILD_TIMESTAMP=@$SOURCE_DATE_EPOCH" KBUILD_BUILD_USER=tern KBUILD_BUILD_HOST=tern)
    "${mk[@]}" tinyconfig >&2
    for o in $MINI_OPTIONS; do "$src/scripts/config" --file "$src/.config" --enable "$o"; done
    "$src/scripts/config" --file "$src/.config" --disable MODULES --disable SMP
    "${mk[@]}" olddefconfig >&2
    for o in $MINI_OPTIONS; do
        grep -q "^CONFIG_$o=y" "$src/.config" || log "riscv64-mini: note: CONFIG_$o is not set after olddefconfig"
    done
    log "riscv64-mini: compiling (minutes)"
    "${mk[@]}" -j"${TERN_GUESTS_JOBS:-$(nproc)}" Image >&2
    cp "$src/arch/riscv/boot/Image" "$kdir/Image"
    cp "$src/.config" "$kdir/config"
    cp "$src/include/config/kernel.release" "$kdir/kernel.release"
    rm -rf "$kdir/work"
}
build_riscv64_mini() {
    local res=$1 out=$2 work=$3 sdeb kkey kdir
    need_tools dpkg-deb cpio gzip xz readelf make gcc bc flex bison perl riscv64-linux-gnu-gcc
    # The compiled kernel is cached on its own inputs only (source package, compiler, the
    # compile step and options), so changing /init or the packing does not recompile it.
    sdeb=$(deb_of "$res" linux-source-6.1)
    kkey=$({
        cat "$sdeb.sha256"
        riscv64-linux-gnu-gcc --version | head -n1
        declare -f compile_mini_kernel
        echo "$MINI_OPTIONS $SOURCE_DATE_EPOCH"
    } | sha256sum | cut -c1-16)
    kdir=$G/kernel-riscv64-mini-$kkey
    if [ ! -f "$kdir/kernel.release" ]; then
        rm -rf "$kdir.tmp" # left over from an interrupted compile
        compile_mini_kernel "$sdeb" "$kdir.tmp"
        mv "$kdir.tmp" "$kdir"
    else
        log "riscv64-mini: compiled kernel cached in $kdir"
    fi
    store_rv_image "$kdir/Image" "$out"
    gzip -9 -n < "$kdir/config" > "$out/kernel-config.gz"
    # shellcheck disable=SC2086
    config_table "$kdir/config" "linux-source-6.1 mini (riscv64, no modules)" $RV_OPTIONS > "$out/kernel-drivers.txt"
    dpkg-deb -x "$(deb_of "$res" busybox-static)" "$work/bb"
    "$HERE/mkinitramfs.sh" "$out/initramfs.cpio.gz" "$(first_existing "$work"/bb/bin/busybox "$work"/bb/usr/bin/busybox)"
    store_opensbi "$res" "$out" "$work"
    echo "kernel_release=$(cat "$kdir/kernel.release")"
    echo "kernel_cache=$kdir"
    echo "compiler=$(riscv64-linux-gnu-gcc --version | head -n1)"
}

# ---------------------------------------------------------------------------------------
# set_key SET RESOLVED: sha256 over the set name, the .debs' sha256s and the scripts' sha256s
# (plus the cross compiler's version for the compiled kernel).
set_key() {
    local set=$1 name arch ver ctx s
    {
        echo "set $set"
        while read -r name arch ver ctx; do
            echo "deb $name $arch $ver $(cat "$(deb_path "$name" "$arch" "$ver").sha256")"
        done <<< "$2"
        for s in $SCRIPTS; do echo "script $s $(sha256sum < "$HERE/$s" | cut -d' ' -f1)"; done
        if [ "$set" = riscv64-mini ]; then
            echo "compiler $(riscv64-linux-gnu-gcc --version 2>/dev/null | head -n1 || echo none)"
        fi
    } | sha256sum | cut -c1-16
}

# check_expected SET DIR: compare the MANIFEST's output hashes with expected.sha256.
check_expected() {
    local set=$1 dir=$2 got f h bad=0 had=0 epk gpk
    [ -f "$EXPECTED" ] || {
        warn "no $EXPECTED: outputs not checked (run with --record after a good build)"
        return 0
    }
    while read -r h f; do
        case $f in "$set"/*) ;; *) continue ;; esac
        had=1
        got=$(awk -v f="${f#"$set"/}" '$2 == f && length($1) == 64 {print $1}' "$dir/MANIFEST")
        if [ "$got" != "$h" ]; then
            bad=1
            warn "$set: ${f#"$set"/} sha256 ${got:-missing} differs from expected.sha256 ($h)"
        fi
    done < <(grep -E '^[0-9a-f]{64}  ' "$EXPECTED")
    if [ "$had" = 0 ]; then
        warn "$set: expected.sha256 has no hashes for this set (run with --record after a good build)"
        return 0
    fi
    [ "$bad" = 0 ] && { log "$set: outputs match expected.sha256"; return 0; }
    epk=$(sed -n "s/^# packages $set: //p" "$EXPECTED")
    gpk=$(packages_line "$dir/MANIFEST")
    if [ "$epk" != "$gpk" ]; then
        warn "$set: Debian moved: the packages differ from those expected.sha256 was recorded with"
        warn "  recorded: $epk"
        warn "  now:      $gpk   (details: $dir/MANIFEST)"
    else
        warn "$set: same packages as recorded but different outputs: the scripts changed (run --record if intended) or the build is not reproducible"
    fi
    if [ "${TERN_GUESTS_STRICT:-0}" = 1 ]; then
        echo "build.sh: error: $set differs from expected.sha256 (TERN_GUESTS_STRICT=1)" >&2
        exit 3
    fi
}
packages_line() { # MANIFEST: "name=version ..." of the packages used
    awk '$1 == "package" {printf "%s%s=%s", (n++ ? " " : ""), $2, $3} END {print ""}' "$1"
}
record_expected() { # SET DIR
    local set=$1 dir=$2 tmp
    tmp=$EXPECTED.tmp.$$
    {
        if [ -f "$EXPECTED" ]; then
            grep -v -e "^# packages $set: " -e "^[0-9a-f]\{64\}  $set/" "$EXPECTED" || true
        else
            echo "# sha256 of the outputs of scripts/guests/build.sh, checked after every build."
            echo "# Rewrite a set's lines with: scripts/guests/build.sh --only SET --record"
        fi
        echo "# packages $set: $(packages_line "$dir/MANIFEST")"
        grep -E '^[0-9a-f]{64}  ' "$dir/MANIFEST" | sed "s|  |  $set/|"
    } > "$tmp"
    mv -f "$tmp" "$EXPECTED"
    log "$set: recorded output hashes in $EXPECTED"
}

# ensure_set SET: build the set if its keyed directory does not exist; prints the directory.
ensure_set() {
    local set=$1 res key dir work out info f
    resolve "$set"
    res=$RES
    if [ "$set" = riscv64-mini ] && ! command -v riscv64-linux-gnu-gcc >/dev/null; then
        need_tools riscv64-linux-gnu-gcc
    fi
    key=$(set_key "$set" "$res")
    dir=$G/$set-$key
    if [ -f "$dir/MANIFEST" ]; then
        log "$set: up to date ($dir)"
        if [ "$VERIFY" = 1 ]; then
            (cd "$dir" && grep -E '^[0-9a-f]{64}  ' MANIFEST | sha256sum --quiet -c -) >&2 ||
                die "$set: $dir does not match its MANIFEST (delete the directory to rebuild)"
        fi
    else
        need_root "building $set"
        log "$set: building into $dir"
        work=$(mktemp -d "$G/.work-$set.XXXXXX")
        out=$G/.out-$set-$key.$$
        CLEANUP+=("$work" "$out")
        rm -rf "$out"
        mkdir -p "$out"
        # Built into a scratch directory, renamed at the end: a set directory with a MANIFEST
        # is always complete.
        case $set in
            x86_64) info=$(build_x86_64 "$res" "$out" "$work") ;;
            riscv64) info=$(build_riscv64 "$res" "$out" "$work") ;;
            riscv64-mini) info=$(build_riscv64_mini "$res" "$out" "$work") ;;
        esac
        {
            echo "# tern guest set $set, made by scripts/guests/build.sh from Debian packages"
            echo "set=$set"
            echo "key=$key"
            local name arch ver ctx
            while read -r name arch ver ctx; do
                echo "package $name $ver $arch from=$ctx sha256=$(cat "$(deb_path "$name" "$arch" "$ver").sha256")"
            done <<< "$res"
            awk -v s="$set" '$1 == s {print "pinned", $3, $5, $4}' <<< "$PINS"
            for f in $SCRIPTS; do echo "script $f sha256=$(sha256sum < "$HERE/$f" | cut -d' ' -f1)"; done
            echo "$info"
            (cd "$out" && for f in *; do [ "$f" = MANIFEST ] || sha256sum "$f"; done)
        } > "$out/MANIFEST"
        rm -rf "$work"
        chmod -R a+rX "$out"
        mv "$out" "$dir"
        log "$set: built"
    fi
    if [ "$(readlink "$G/current-$set" 2>/dev/null)" != "$set-$key" ]; then
        ln -sfn "$set-$key" "$G/current-$set.tmp"
        mv -Tf "$G/current-$set.tmp" "$G/current-$set"
    fi
    if [ "$RECORD" = 1 ]; then record_expected "$set" "$dir"; else check_expected "$set" "$dir"; fi
    [ "$QUIET" = 1 ] || cat "$dir/MANIFEST" >&2
    echo "$dir"
}

# ---------------------------------------------------------------------------------------
SETS=()
NOBUILD=0
REFRESH=0
VERIFY=0
RECORD=0
PRUNE=0
while [ $# -gt 0 ]; do
    case $1 in
        --only)
            [ $# -ge 2 ] || usage
            case $2 in
                x86_64 | riscv64 | riscv64-mini) SETS+=("$2") ;;
                all) SETS+=(x86_64 riscv64 riscv64-mini) ;;
                *) echo "build.sh: unknown set '$2' (x86_64, riscv64, riscv64-mini, all)" >&2; exit 2 ;;
            esac
            shift 2
            ;;
        --only=*) set -- --only "${1#--only=}" "${@:2}" ;;
        --print-dir) QUIET=1; shift ;;
        --no-build) NOBUILD=1; shift ;;
        --refresh) REFRESH=1; shift ;;
        --verify) VERIFY=1; shift ;;
        --record) RECORD=1; shift ;;
        --prune) PRUNE=1; shift ;;
        -h | --help) usage ;;
        *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
[ ${#SETS[@]} -gt 0 ] || SETS=(x86_64)

if [ "$NOBUILD" = 1 ]; then
    for s in "${SETS[@]}"; do
        [ -f "$G/current-$s/MANIFEST" ] || die "no built $s set in $G (run scripts/guests/build.sh --only $s)"
        readlink -f "$G/current-$s"
    done
    exit 0
fi

mkdir -p "$G" || die "cannot create the cache directory $G (set TERN_CACHE)"
CLEANUP=()
trap 'rm -rf "${CLEANUP[@]}"' EXIT
command -v flock >/dev/null || die "missing flock (util-linux)"
# One builder at a time per cache; a second caller waits, then finds the set built.
# (A user who cannot write the cache can still take the lock through a read-only open.)
if ! { exec 9>> "$G/.lock"; } 2>/dev/null; then
    exec 9< "$G/.lock" || die "cannot open $G/.lock"
fi
if ! flock -n 9; then
    log "waiting for another build.sh using $G"
    flock 9
fi
for s in "${SETS[@]}"; do
    ensure_set "$s"
done
if [ "$PRUNE" = 1 ]; then
    keep=" "
    for l in "$G"/current-*; do
        [ -L "$l" ] || continue
        keep+="$(readlink "$l") "
        k=$(sed -n 's|^kernel_cache=.*/||p' "$l/MANIFEST" 2>/dev/null || true)
        [ -n "$k" ] && keep+="$k "
    done
    for d in "$G"/x86_64-* "$G"/riscv64-* "$G"/kernel-riscv64-mini-*; do
        [ -d "$d" ] || continue
        case $keep in *" ${d##*/} "*) continue ;; esac
        log "pruning ${d##*/}"
        rm -rf "$d"
    done
fi
