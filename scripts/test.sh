#!/usr/bin/env bash
# Runs ALL of tern's tests on a fresh Debian/Ubuntu machine (as root, or with sudo for apt):
# installs the toolchains the tests need, builds the guest images from Debian packages (cached
# outside the clone), checks formatting and lints, and runs every test with the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
# tool:package; riscv64 user-mode tests build static programs with Debian's cross compiler and
# compare floating point with Debian's qemu-riscv64.
for tool in gcc:gcc make:make ld:binutils as:binutils cpio:cpio xz:xz-utils \
    riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu riscv64-linux-gnu-as:binutils-riscv64-linux-gnu \
    qemu-riscv64:qemu-user dtc:device-tree-compiler; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool##*:}")
done
# Static linking needs the cross libc (not always pulled in by the compiler package).
[ -e /usr/riscv64-linux-gnu/lib/libc.a ] || need_pkgs+=(libc6-dev-riscv64-cross linux-libc-dev-riscv64-cross)
if ((${#need_pkgs[@]})); then
    echo "== installing ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

echo "== guest images (scripts/guests/build.sh)"
TERN_GUEST_DIR="$(scripts/guests/build.sh --print-dir)"
export TERN_GUEST_DIR
echo "   using $TERN_GUEST_DIR"
TERN_GUEST_DIR_RISCV64="$(scripts/guests/build.sh --only riscv64 --print-dir)"
export TERN_GUEST_DIR_RISCV64
echo "   using $TERN_GUEST_DIR_RISCV64"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== cargo test (release)"
cargo test --workspace --release -- --test-threads=2
