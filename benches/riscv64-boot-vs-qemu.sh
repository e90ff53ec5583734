#!/usr/bin/env bash
# riscv64 full-system boot of the same Debian guest under tern's JIT (`tern run --arch riscv64`)
# and under qemu-system-riscv64 -M virt -accel tcg, 7.2 (Debian's qemu-system-misc, /usr/bin)
# and 10.0 (bookworm-backports' qemu-system-riscv, extracted into a cache directory): the same
# OpenSBI fw_dynamic.bin, kernel Image, initramfs and command line, 512 MiB, one hart.
#
# Per run, measured from the spawn of the emulator (the console is read line by line and every
# line timestamped as it arrives):
#   init  wall time until the TERN-GUEST-INIT-OK line (the first line /init prints)
#   exit  wall time until the emulator exits (the guest powers off after TERN-GUEST-DONE)
#   md5   the guest's own time for md5sum of 64 MiB of zeros: B - A of its line
#         "TERN-MD5: <sum> ok (guest uptime A -> B)" (both machines' timers follow the host
#         clock, so this is wall time too, without boot and firmware)
# Each round runs tern, QEMU 7.2 and QEMU 10.0 once, in that order, so load on the shared
# machine hits all of them alike. Prints the medians, the reference (the faster QEMU, per
# measure) and the ratio tern / reference (< 1: tern is faster).
#
#   benches/riscv64-boot-vs-qemu.sh [ROUNDS]     (default 5; needs python3, the guest set of
#                                                 scripts/guests/build.sh --only riscv64)
#
# Environment: GUEST_DIR (default ~/.cache/tern/guests/current-riscv64); QEMU10_DIR (default
# ~/.cache/tern/qemu-10-system) where the 10.0 .debs are extracted; TERN (default
# target/release/tern, built here) to measure another tern binary; RUN_TIMEOUT (default 600)
# seconds before a run counts as hung.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ROUNDS]" >&2; exit 2; }
guest_dir="${GUEST_DIR:-$HOME/.cache/tern/guests/current-riscv64}"
qemu10_dir="${QEMU10_DIR:-$HOME/.cache/tern/qemu-10-system}"
run_timeout="${RUN_TIMEOUT:-600}"
qemu72=/usr/bin/qemu-system-riscv64
append="console=ttyS0"
mem=512M

fw="$guest_dir/fw_dynamic.bin"
kernel="$guest_dir/Image"
initrd="$guest_dir/initramfs.cpio.gz"
for f in "$fw" "$kernel" "$initrd"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/guests/build.sh --only riscv64" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 2; }

# QEMU 7.2: Debian's own package.
if [ ! -x "$qemu72" ]; then
    echo "installing qemu-system-misc (QEMU 7.2)" >&2
    apt-get install -y -qq --no-install-recommends qemu-system-misc >&2
fi

# QEMU 10.0: bookworm-backports' qemu-system-riscv (the package that holds
# qemu-system-riscv64 since 9.x; qemu-system-misc only depends on it), downloaded with apt-get
# into a private apt state (a throw-away sources list and lists directory, so the system's apt
# configuration is untouched and the installed 7.2 stays) and unpacked with dpkg -x, never
# installed. The binary is dynamically linked: libraries it needs that are not on the host
# (dependencies of the package that are not installed) are downloaded from bookworm and
# bookworm-backports and extracted next to it, and the binary runs with LD_LIBRARY_PATH.
# No qemu-system-data: -bios names the firmware, so QEMU loads no firmware file of its own.
qemu10="$qemu10_dir/usr/bin/qemu-system-riscv64"
qemu10_libpath="$qemu10_dir/usr/lib/x86_64-linux-gnu:$qemu10_dir/lib/x86_64-linux-gnu"
qemu10_note=""
# shellcheck source=benches/lib/fetch-qemu10.sh
source benches/lib/fetch-qemu10.sh
if [ ! -x "$qemu10" ]; then
    fetch_qemu10 "$qemu10_dir" "$qemu10" qemu-system-riscv || echo "fetching QEMU 10.0 failed" >&2
fi
v72="$("$qemu72" --version | head -1)"
v10=""
if [ ! -x "$qemu10" ]; then
    qemu10_note="QEMU 10.0 not available (no $qemu10 after fetching bookworm-backports)"
elif LD_LIBRARY_PATH="$qemu10_libpath" ldd "$qemu10" | grep -q "not found"; then
    qemu10_note="QEMU 10.0 cannot run, libraries missing: $(LD_LIBRARY_PATH="$qemu10_libpath" \
        ldd "$qemu10" | awk '/not found/ { printf "%s ", $1 }')"
else
    v10="$(LD_LIBRARY_PATH="$qemu10_libpath" "$qemu10" --version 2>&1 | head -1)" || v10=""
    case "$v10" in
        *" 10."*) ;;
        *) qemu10_note="QEMU 10.0 does not run: '$v10'"; v10="" ;;
    esac
fi
[ -z "$qemu10_note" ] || echo "NOTE: $qemu10_note; comparing against QEMU 7.2 only" >&2

if [ -z "${TERN:-}" ]; then
    cargo build --release --quiet
fi
tern="${TERN:-target/release/tern}"
tern_version="$("$tern" --version | head -1)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT


# run ENGINE ROUND COMMAND...: appends "init exit md5" to $work/ENGINE.
run() {
    local engine="$1" round="$2" log
    shift 2
    log="$work/$engine.$round.console"
    if ! python3 benches/lib/measure_boot.py "$run_timeout" "$log" "$@" >>"$work/$engine"; then
        tail -20 "$log" "$log.stderr" >&2
        exit 1
    fi
    echo "  round $round $engine: $(tail -1 "$work/$engine")" >&2
}

engines=(tern q72)
[ -z "$v10" ] || engines+=(q10)
qemu_args=(-M virt -accel tcg -m "$mem" -smp 1 -nographic -bios "$fw" -kernel "$kernel"
           -initrd "$initrd" -append "$append")
echo "tern:     $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty')," \
    "$tern ($tern_version) run --arch riscv64 --memory $mem (JIT)"
echo "qemu 7.2: $qemu72 ($v72)"
if [ -n "$v10" ]; then
    echo "qemu 10:  $qemu10 ($v10)"
else
    echo "qemu 10:  $qemu10_note"
fi
echo "guest:    $guest_dir (Image, initramfs.cpio.gz, fw_dynamic.bin), append '$append'"
echo "qemu:     qemu-system-riscv64 ${qemu_args[*]}"
echo "rounds:   $rounds, alternating ${engines[*]}"
echo "host:     $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for r in $(seq "$rounds"); do
    run tern "$r" "$tern" run --arch riscv64 --memory "$mem" --bios "$fw" --kernel "$kernel" \
        --initrd "$initrd" --append "$append"
    run q72 "$r" "$qemu72" "${qemu_args[@]}"
    [ -z "$v10" ] || run q10 "$r" env "LD_LIBRARY_PATH=$qemu10_libpath" "$qemu10" "${qemu_args[@]}"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end" >&2

# median FILE COLUMN
median() {
    [ -s "$1" ] || { echo nan; return; }
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
: >>"$work/q10"
echo
printf "| %-22s | %8s | %8s | %8s | %12s | %10s | %s |\n" measure "tern s" "qemu 7.2" "qemu 10" \
    "reference s" "tern / ref" "target"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
col=1
for m in "init marker (wall)" "exit (wall)" "md5 64 MiB (guest)"; do
    awk -v m="$m" -v c="$col" -v t="$(median "$work/tern" "$col")" \
        -v a="$(median "$work/q72" "$col")" -v b="$(median "$work/q10" "$col")" 'BEGIN {
        if (b == "nan") { ref = a; which = "7.2"; bs = "n/a" }
        else { ref = a < b ? a : b; which = a < b ? "7.2" : "10"; bs = sprintf("%.3f", b) }
        r = t / ref
        if (c == 1) target = r <= 0.5 ? "<= 0.5: met" : "<= 0.5: NOT met"
        else if (c == 3) target = r < 1 ? "< 1: met" : "< 1: NOT met"
        else target = "-"
        printf "| %-22s | %8.3f | %8.3f | %8s | %6.3f (%s) | %10.2f | %s |\n", m, t, a, bs, ref, which, r, target
    }'
    col=$((col + 1))
done
echo
echo "medians of $rounds runs; reference = the faster QEMU per measure; tern / ref < 1: tern faster"
