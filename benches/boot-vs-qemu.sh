#!/usr/bin/env bash
# Exec-to-exit wall time and peak RSS of the same tiny PVH guest (boots, prints one line, exits
# through isa-debug-exit) under tern (KVM) and under qemu-system-x86_64 -M microvm -accel kvm,
# runs alternating, medians and ratios printed from this one run.
#
#   benches/boot-vs-qemu.sh [RUNS]        (default 20 runs each; needs /dev/kvm and
#                                          qemu-system-x86, gcc, make)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
mem=128M

command -v qemu-system-x86_64 >/dev/null || {
    echo "qemu-system-x86_64 missing: apt-get install --no-install-recommends qemu-system-x86" >&2
    exit 2
}
[ -e /dev/kvm ] || { echo "SKIPPED (no /dev/kvm)"; exit 0; }

cargo build --release --quiet
out="$(pwd)/target/guests"
make -s -C tests/guests OUT="$out" "$out/tiny.elf" >/dev/null
guest="$out/tiny.elf"
tern=target/release/tern
qemu_version="$(qemu-system-x86_64 --version | head -1)"

measure() { # prints "seconds max_rss_kib exit_status"
    local t0 t1 status rss
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -f "%M" -o /tmp/tern-bench-rss "$@" >/tmp/tern-bench-out 2>/dev/null </dev/null
    status=$?
    set -e
    t1=$(date +%s%N)
    rss=$(tail -1 /tmp/tern-bench-rss)
    grep -q "TERN-TEST hello" /tmp/tern-bench-out || { echo "guest output missing: $*" >&2; exit 1; }
    echo "$(( (t1 - t0) / 1000 )) $rss $status"
}

[ -x /usr/bin/time ] || apt-get install -y -qq --no-install-recommends time >/dev/null

: >/tmp/tern-bench-tern; : >/tmp/tern-bench-qemu
for i in $(seq "$runs"); do
    measure "$tern" run --memory "$mem" --kernel "$guest" --serial stdio >>/tmp/tern-bench-tern
    measure qemu-system-x86_64 -M microvm -accel kvm -m "$mem" -nodefaults -no-user-config \
        -nographic -serial stdio -display none -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest" >>/tmp/tern-bench-qemu
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tern_us=$(cut -d' ' -f1 /tmp/tern-bench-tern | median)
qemu_us=$(cut -d' ' -f1 /tmp/tern-bench-qemu | median)
tern_rss=$(cut -d' ' -f2 /tmp/tern-bench-tern | median)
qemu_rss=$(cut -d' ' -f2 /tmp/tern-bench-qemu | median)
echo "guest: $guest ($mem), $runs alternating runs each"
echo "qemu:  $qemu_version, -M microvm -accel kvm"
awk -v t="$tern_us" -v q="$qemu_us" -v tr="$tern_rss" -v qr="$qemu_rss" 'BEGIN {
    printf "exec-to-exit median: tern %.1f ms, qemu %.1f ms, ratio tern/qemu %.3f\n", t/1000, q/1000, t/q
    printf "peak RSS median:     tern %d KiB, qemu %d KiB, ratio %.3f\n", tr, qr, tr/qr
}'
