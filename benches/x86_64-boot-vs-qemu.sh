#!/usr/bin/env bash
# x86_64 full-system boot of the same Debian guest under tern's JIT (`tern run --accel tcg`)
# and under qemu-system-x86_64 -accel tcg, machines microvm and pc, QEMU 7.2 (Debian's
# qemu-system-x86, /usr/bin) and 10.0 (bookworm-backports' qemu-system-x86, extracted into a
# cache directory): the same bzImage, initramfs and command line, 512 MiB, one vCPU, no
# network. `tern run --accel kvm` runs once per round too and is reported on its own: it is
# what `--accel auto` picks when /dev/kvm works, so the tcg/kvm ratio is what auto-selection
# saves.
#
# Per run, measured from the spawn of the emulator (the console is read line by line and every
# line timestamped as it arrives):
#   init  wall time until the TERN-GUEST-INIT-OK line (the first line /init prints)
#   exit  wall time until the emulator exits (the guest powers off after TERN-GUEST-DONE)
#   md5   the guest's own time for md5sum of 64 MiB of zeros: B - A of its line
#         "TERN-MD5: <sum> ok (guest uptime A -> B)" (the guest clock follows the host's, so
#         this is wall time too, without boot and firmware)
# Each round runs every selected engine once, in the order of the table, so load on the
# shared machine hits all of them alike. Prints the medians, the reference (the fastest QEMU
# column, per measure), the ratio tern tcg / reference (< 1: tern is faster) against the same
# targets as the riscv64 comparison (init <= 0.5, md5 < 1), and tern tcg / tern kvm.
#
#   benches/x86_64-boot-vs-qemu.sh [ROUNDS]      (default 5; needs python3 and the guest set
#                                                 of scripts/guests/build.sh)
#
# Environment:
#   ONLY        engines to run, comma or space separated (default: all). Engines: tern (tern
#               tcg), kvm (tern kvm), q72-microvm, q72-pc, q10-microvm, q10-pc; groups: qemu
#               (all four QEMU runs), q72, q10, microvm, pc. E.g. ONLY=qemu, ONLY=tern,q72.
#   GUEST_DIR   the guest set (default: scripts/guests/build.sh --no-build --print-dir)
#   QEMU10_DIR  where the 10.0 .debs are extracted (default ~/.cache/tern/qemu-10-system,
#               shared with the riscv64 script)
#   TERN        a tern binary to measure (default target/release/tern, built here)
#   RUN_TIMEOUT seconds before a tern tcg run counts as hung (default 600)
#   QEMU_TIMEOUT  the same for QEMU runs (default 120; a good one takes under 10 s)
#   KVM_TIMEOUT   the same for tern kvm runs (default 120)
#   QEMU_ATTEMPTS attempts per QEMU run and round before it gives no sample (default 3): QEMU
#               microvm hangs at boot when its TSC calibration fails (see run() below)
#   APPEND      kernel command line (default "console=ttyS0")
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [ROUNDS]" >&2; exit 2; }
qemu10_dir="${QEMU10_DIR:-$HOME/.cache/tern/qemu-10-system}"
run_timeout="${RUN_TIMEOUT:-600}"
qemu_timeout="${QEMU_TIMEOUT:-120}"
kvm_timeout="${KVM_TIMEOUT:-120}"
qemu_attempts="${QEMU_ATTEMPTS:-3}"
[[ "$qemu_attempts" =~ ^[1-9][0-9]*$ ]] || { echo "QEMU_ATTEMPTS: a positive count" >&2; exit 2; }
qemu72=/usr/bin/qemu-system-x86_64
append="${APPEND:-console=ttyS0}"
mem=512M
all_engines=(tern q72-microvm q72-pc q10-microvm q10-pc kvm)

# selected ENGINE: whether ONLY asks for it.
only="$(echo "${ONLY:-}" | tr ',' ' ')"
selected() {
    local e="$1" w
    [ -n "$only" ] || return 0
    for w in $only; do
        case "$w" in
            "$e") return 0 ;;
            qemu) [[ "$e" == q* ]] && return 0 ;;
            q72 | q10) [[ "$e" == "$w"-* ]] && return 0 ;;
            microvm | pc) [[ "$e" == q*-"$w" ]] && return 0 ;;
            tern | kvm | q72-microvm | q72-pc | q10-microvm | q10-pc) ;;
            *) echo "ONLY: unknown engine '$w' (tern kvm qemu q72 q10 microvm pc" \
                "q72-microvm q72-pc q10-microvm q10-pc)" >&2; exit 2 ;;
        esac
    done
    return 1
}
wanted=()
for e in "${all_engines[@]}"; do
    if selected "$e"; then wanted+=("$e"); fi
done
[ "${#wanted[@]}" -gt 0 ] || { echo "ONLY='${ONLY:-}' selects no engine" >&2; exit 2; }
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }
wants_prefix() { [[ " ${wanted[*]} " == *" $1"* ]]; }

if [ -n "${GUEST_DIR:-}" ]; then
    guest_dir="$GUEST_DIR"
else
    guest_dir="$(scripts/guests/build.sh --no-build --print-dir 2>/dev/null | head -1)" ||
        guest_dir=""
    [ -n "$guest_dir" ] || { echo "no x86_64 guest set: run scripts/guests/build.sh" >&2; exit 2; }
fi
kernel="$guest_dir/bzImage"
initrd="$guest_dir/initramfs.cpio.gz"
for f in "$kernel" "$initrd"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/guests/build.sh" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 2; }

# QEMU 7.2: Debian's own package.
if wants_prefix q72 && [ ! -x "$qemu72" ]; then
    echo "installing qemu-system-x86 (QEMU 7.2)" >&2
    apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2
fi
v72=""
if wants_prefix q72; then v72="$("$qemu72" --version | head -1)"; fi

# QEMU 10.0: bookworm-backports' qemu-system-x86 and qemu-system-data (its ROMs: qboot for
# microvm, linuxboot_dma.bin for -kernel on pc), downloaded with apt-get into a private apt
# state (a throw-away sources list and lists directory, so the system's apt configuration is
# untouched and the installed 7.2 stays) and unpacked with dpkg -x, never installed.
# Libraries the binary needs that are not on the host (dependencies of the package that are
# not installed) are downloaded from bookworm and bookworm-backports and extracted next to it;
# the binary runs with LD_LIBRARY_PATH. Firmware that qemu-system-data only links to from
# other packages (SeaBIOS's bios-256k.bin) comes from the host's /usr/share/qemu, searched
# after 10.0's own data directory.
qemu10="$qemu10_dir/usr/bin/qemu-system-x86_64"
qemu10_data="$qemu10_dir/usr/share/qemu"
qemu10_libpath="$qemu10_dir/usr/lib/x86_64-linux-gnu:$qemu10_dir/lib/x86_64-linux-gnu"
qemu10_note=""
# shellcheck source=benches/lib/fetch-qemu10.sh
source benches/lib/fetch-qemu10.sh
v10=""
if wants_prefix q10; then
    if [ ! -x "$qemu10" ] || [ ! -d "$qemu10_data" ]; then
        fetch_qemu10 "$qemu10_dir" "$qemu10" qemu-system-x86 qemu-system-data || echo "fetching QEMU 10.0 failed" >&2
    fi
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
    if [ -n "$qemu10_note" ]; then
        echo "NOTE: $qemu10_note; leaving out the QEMU 10.0 columns" >&2
        keep=()
        for e in "${wanted[@]}"; do [[ "$e" == q10-* ]] || keep+=("$e"); done
        wanted=("${keep[@]}")
        [ "${#wanted[@]}" -gt 0 ] || { echo "nothing left to run" >&2; exit 1; }
    fi
fi

tern="${TERN:-target/release/tern}"
tern_version=""
if wants tern || wants kvm; then
    if [ -z "${TERN:-}" ]; then
        cargo build --release --quiet
    fi
    tern_version="$("$tern" --version | head -1)"
fi
if wants kvm && ! [ -r /dev/kvm ] && ! [ -w /dev/kvm ]; then
    echo "NOTE: /dev/kvm is not usable; leaving out the tern kvm column" >&2
    keep=()
    for e in "${wanted[@]}"; do [ "$e" = kvm ] || keep+=("$e"); done
    wanted=("${keep[@]}")
    [ "${#wanted[@]}" -gt 0 ] || { echo "nothing left to run" >&2; exit 1; }
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT


# run ENGINE ROUND COMMAND...: appends "init exit md5" to $work/ENGINE. A failed tern tcg run
# ends the script. A failed QEMU run is counted in $work/ENGINE.fail (with its cause) and
# retried, up to QEMU_ATTEMPTS times in all; a failed tern kvm run is counted and not retried
# (it is a side measure); a round where every attempt failed has no sample for that engine. (QEMU's microvm has no HPET or ACPI PM timer, so when its TSC calibration against
# the PIT fails on a loaded host, Linux has no clock to calibrate against and hangs: the
# failure this comparison exists to show tern does not have.)
run() {
    local engine="$1" round="$2" log attempt=1 timeout="$run_timeout" attempts=1 cause
    shift 2
    if [[ "$engine" == q* ]]; then
        timeout="$qemu_timeout"
        attempts="$qemu_attempts"
    elif [ "$engine" = kvm ]; then
        timeout="$kvm_timeout"
    fi
    while :; do
        log="$work/$engine.$round.$attempt.console"
        if python3 benches/lib/measure_boot.py "$timeout" "$log" "$@" >>"$work/$engine"; then
            echo "  round $round $engine: $(tail -1 "$work/$engine")" >&2
            return
        fi
        if [ "$engine" = tern ]; then
            tail -n 20 "$log" "$log.stderr" >&2
            exit 1
        fi
        cause="$(grep -m1 -o -E "tsc: Unable to calibrate against PIT|Kernel panic[^\r]*" \
            "$log" | head -1)" || cause=""
        [ -n "$cause" ] || cause="$(tail -n 1 "$log.stderr" | cut -c1-100)"
        [ -n "$cause" ] || cause="$(tail -n 1 "$log" | tr -d '\r' | cut -c1-100)"
        [ -n "$cause" ] || cause="no console output, $(cat "$log.problem" 2>/dev/null)"
        echo "$round $attempt $cause" >>"$work/$engine.fail"
        echo "  round $round $engine: attempt $attempt FAILED (last console line or cause:" \
            "'$cause')" >&2
        if [ "$attempt" -ge "$attempts" ]; then
            echo "  round $round $engine: giving up, no sample this round" >&2
            return
        fi
        attempt=$((attempt + 1))
    done
}

# The QEMU machines: no default devices (no VGA, NIC, floppy or CD-ROM: tern has none of
# them either), the serial port on stdio, ACPI power-off ends the run, a reset too.
# microvm boots the bzImage through its default firmware (qboot) with its ISA serial port
# and ACPI (hardware-reduced, like tern's machine); pc through SeaBIOS and linuxboot_dma.
qemu_common=(-accel tcg -m "$mem" -smp 1 -nodefaults -no-user-config -display none
             -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$append")
microvm=(-M microvm)
pc=(-M pc)
tern_args=(run --memory "$mem" --kernel "$kernel" --initrd "$initrd" --append "$append")
qemu10_run=(env "LD_LIBRARY_PATH=$qemu10_libpath" "$qemu10" -L "$qemu10_data" -L /usr/share/qemu)

if wants tern || wants kvm; then
    echo "tern:     $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty')," \
        "$tern ($tern_version) ${tern_args[0]} --accel tcg|kvm ${tern_args[*]:1:2}"
fi
[ -z "$v72" ] || echo "qemu 7.2: $qemu72 ($v72)"
if wants_prefix q10; then
    echo "qemu 10:  $qemu10 ($v10), data $qemu10_data then /usr/share/qemu"
elif [ -n "$qemu10_note" ]; then
    echo "qemu 10:  $qemu10_note"
fi
echo "guest:    $guest_dir (bzImage, initramfs.cpio.gz), append '$append'"
echo "qemu:     qemu-system-x86_64 -M microvm|pc ${qemu_common[*]}"
echo "rounds:   $rounds, alternating ${wanted[*]}"
echo "host:     $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for r in $(seq "$rounds"); do
    for e in "${wanted[@]}"; do
        case "$e" in
            tern) run tern "$r" "$tern" "${tern_args[0]}" --accel tcg "${tern_args[@]:1}" ;;
            q72-microvm) run "$e" "$r" "$qemu72" "${microvm[@]}" "${qemu_common[@]}" ;;
            q72-pc) run "$e" "$r" "$qemu72" "${pc[@]}" "${qemu_common[@]}" ;;
            q10-microvm) run "$e" "$r" "${qemu10_run[@]}" "${microvm[@]}" "${qemu_common[@]}" ;;
            q10-pc) run "$e" "$r" "${qemu10_run[@]}" "${pc[@]}" "${qemu_common[@]}" ;;
            kvm) run kvm "$r" "$tern" "${tern_args[0]}" --accel kvm "${tern_args[@]:1}" ;;
        esac
    done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end" >&2

# median FILE COLUMN (nan when the engine did not run)
median() {
    [ -s "$1" ] || { echo nan; return; }
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
for e in "${all_engines[@]}"; do : >>"$work/$e"; done
echo
printf "| %-18s | %8s | %11s | %8s | %10s | %8s | %18s | %10s | %-15s | %8s | %9s |\n" measure \
    "tern tcg" "7.2 microvm" "7.2 pc" "10 microvm" "10 pc" "reference s" "tern / ref" target \
    "tern kvm" "tcg / kvm"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
col=1
for m in "init marker (wall)" "exit (wall)" "md5 64 MiB (guest)"; do
    meds=()
    for e in "${all_engines[@]}"; do meds+=("$(median "$work/$e" "$col")"); done
    awk -v m="$m" -v c="$col" -v t="${meds[0]}" -v a="${meds[1]}" -v b="${meds[2]}" \
        -v x="${meds[3]}" -v y="${meds[4]}" -v k="${meds[5]}" 'function f(v) {
            return v == "nan" ? "n/a" : sprintf("%.3f", v)
        }
        BEGIN {
        n = split("7.2 microvm,7.2 pc,10 microvm,10 pc", names, ",")
        v[1] = a; v[2] = b; v[3] = x; v[4] = y
        ref = "nan"; which = ""
        for (i = 1; i <= n; i++)
            if (v[i] != "nan" && (ref == "nan" || v[i] + 0 < ref + 0)) { ref = v[i]; which = names[i] }
        r = (t != "nan" && ref != "nan") ? t / ref : "nan"
        if (r == "nan") target = "-"
        else if (c == 1) target = r <= 0.5 ? "<= 0.5: met" : "<= 0.5: NOT met"
        else if (c == 3) target = r < 1 ? "< 1: met" : "< 1: NOT met"
        else target = "-"
        refs = ref == "nan" ? "n/a" : sprintf("%.3f (%s)", ref, which)
        rs = r == "nan" ? "n/a" : sprintf("%.2f", r)
        kr = (t != "nan" && k != "nan") ? sprintf("%.1f", t / k) : "n/a"
        printf "| %-18s | %8s | %11s | %8s | %10s | %8s | %18s | %10s | %-15s | %8s | %9s |\n",
            m, f(t), f(a), f(b), f(x), f(y), refs, rs, target, f(k), kr
    }'
    col=$((col + 1))
done
echo
for e in "${wanted[@]}"; do
    [ -s "$work/$e.fail" ] || continue
    n_ok="$(grep -c . "$work/$e")" || n_ok=0
    echo "$e: $(grep -c . "$work/$e.fail") failed attempts, $n_ok good runs; causes:" \
        "$(cut -d' ' -f3- "$work/$e.fail" | sort | uniq -c | sed 's/^ *//' | paste -sd ';' -)"
done
echo
echo "medians of $rounds runs (seconds); reference = the fastest QEMU per measure;" \
    "tern / ref < 1: tern faster; tcg / kvm: the JIT against KVM on this host (--accel auto picks KVM only with VT-x/SVM)"
