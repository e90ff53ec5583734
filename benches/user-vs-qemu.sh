#!/usr/bin/env bash
# The user-mode benchmark programs of benches/user/, built for the guest architecture, under
# tern's JIT (`tern user`), under qemu-<arch> 7.2 (Debian's qemu-user, /usr/bin) and 10.0
# (bookworm-backports' qemu-user, extracted into a cache directory), and natively (the same
# source built for x86_64). Each round runs every program once under each, alternating, so
# load on the shared machine hits all of them alike. Every run's output must equal the native
# checksum line. Prints per-program medians, the reference (the faster QEMU), ratio =
# reference / tern (> 1: tern is faster), tern / native, the geometric mean of the ratios,
# and the translation cost per guest instruction (`tern user --stats`, one extra run each).
#
#   benches/user-vs-qemu.sh [--arch riscv64|x86_64] [ROUNDS]
#       (default riscv64, 5 rounds; needs riscv64-linux-gnu-gcc, gcc, make, awk, qemu-user;
#        fetches QEMU 10.0 itself)
#
# Environment: QEMU10_DIR (default ~/.cache/tern/qemu-10) where the 10.0 .deb is extracted;
# PROGRAMS (default: all) to run a subset, e.g. PROGRAMS="intloop float"; TERN (default
# target/release/tern, built here) to measure another tern binary.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=riscv64
if [ "${1:-}" = --arch ]; then
    arch="${2:-}"
    shift 2
fi
rounds="${1:-5}"
usage="usage: $0 [--arch riscv64|x86_64] [ROUNDS]"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
case "$arch" in
    riscv64) guest_dir=rv64 ;;
    x86_64) guest_dir=x86_64 ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
programs=(${PROGRAMS:-intloop memory recursion interp float manyfuncs})
out="$(pwd)/target/bench-user"
qemu10_dir="${QEMU10_DIR:-$HOME/.cache/tern/qemu-10}"
qemu72=/usr/bin/qemu-$arch

for tool in riscv64-linux-gnu-gcc gcc make awk "$qemu72"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

# QEMU 10.0: bookworm-backports' qemu-user (its binaries are static), downloaded with
# apt-get into a private apt state (a throw-away sources list and lists directory, so the
# system's apt configuration is untouched and the installed 7.2 stays) and unpacked with
# dpkg -x, never installed.
find_qemu10() {
    local b
    for b in "$qemu10_dir/usr/bin/qemu-$arch" "$qemu10_dir/usr/bin/qemu-$arch-static"; do
        [ -x "$b" ] && { echo "$b"; return 0; }
    done
    return 1
}
# shellcheck source=benches/lib/fetch-qemu10.sh
source benches/lib/fetch-qemu10.sh
qemu10="$(find_qemu10)" || {
    fetch_qemu10 "$qemu10_dir" "$qemu10_dir/usr/bin/qemu-$arch" qemu-user
    qemu10="$(find_qemu10)"
} || {
    echo "no qemu-$arch in $qemu10_dir after extracting the backports package" >&2
    exit 2
}
v72="$("$qemu72" --version | head -1)"
v10="$("$qemu10" --version | head -1)"
case "$v10" in *" 10."*) ;; *) echo "expected QEMU 10.x in $qemu10, found: $v10" >&2; exit 2 ;; esac

if [ -z "${TERN:-}" ]; then
    cargo build --release --quiet
fi
tern="${TERN:-target/release/tern}"
make -s -C benches/user OUT="$out" >/dev/null

# One timed run: appends seconds to $times/<prog>.<runner>; the output must be $expected.
times="$(mktemp -d)"
trap 'rm -rf "$times"' EXIT
run() {
    local prog="$1" runner="$2" t0 t1 got status
    shift 2
    t0=$EPOCHREALTIME
    set +e
    got="$("$@" </dev/null 2>"$times/stderr")"
    status=$?
    set -e
    t1=$EPOCHREALTIME
    if [ "$status" -ne 0 ] || [ "$got" != "${expected[$prog]}" ]; then
        echo "FAIL: $prog under $runner: exit status $status, output '$got'," \
            "expected '${expected[$prog]}'" >&2
        head -5 "$times/stderr" >&2
        exit 1
    fi
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$times/$prog.$runner"
}

declare -A expected
for p in "${programs[@]}"; do
    expected[$p]="$("$out/x86_64/$p")"
    [[ "${expected[$p]}" == "$p checksum "* ]] || { echo "bad native output of $p" >&2; exit 1; }
done

echo "guest:    $arch ($out/$guest_dir)"
echo "tern:     $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty'), $tern user (JIT)"
echo "qemu 7.2: $qemu72 ($v72)"
echo "qemu 10:  $qemu10 ($v10)"
echo "rounds:   $rounds, alternating tern / qemu 7.2 / qemu 10 / native per program and round"
echo "host:     $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for p in "${programs[@]}"; do
    for r in $(seq "$rounds"); do
        run "$p" tern "$tern" user "$out/$guest_dir/$p"
        run "$p" q72 "$qemu72" "$out/$guest_dir/$p"
        run "$p" q10 "$qemu10" "$out/$guest_dir/$p"
        run "$p" native "$out/x86_64/$p"
    done
    echo "  $p: $rounds rounds, checksums agree (${expected[$p]##* })" >&2
done

median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
printf "| %-9s | %9s | %9s | %9s | %9s | %9s | %14s | %12s |\n" program "native s" "tern s" \
    "qemu 7.2 s" "qemu 10 s" "ref s" "ref / tern" "tern / native"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for p in "${programs[@]}"; do
    awk -v p="$p" -v n="$(median "$times/$p.native")" -v t="$(median "$times/$p.tern")" \
        -v a="$(median "$times/$p.q72")" -v b="$(median "$times/$p.q10")" 'BEGIN {
        ref = a < b ? a : b; which = a < b ? "7.2" : "10"
        printf "| %-9s | %9.3f | %9.3f | %10.3f | %9.3f | %5.3f (%s) | %14.2f | %12.2f |\n", p, n, t, a, b, ref, which, ref / t, t / n
    }'
done | tee "$times/table"
awk -F'|' '{ l += log($8 + 0); n++ } END {
    printf "\ngeometric mean of ref / tern over %d programs: %.2f (target >= 2, and no program < 1)\n", n, exp(l / n)
}' "$times/table"

# Translation cost: one more run of each program with --stats (not timed).
echo
echo "translation cost (tern user --stats):"
for p in "${programs[@]}"; do
    "$tern" user --stats "$out/$guest_dir/$p" 2>&1 >/dev/null </dev/null |
        sed -n "s/^tern: translated /  $p: /p"
done
