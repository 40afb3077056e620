#!/usr/bin/env bash
# Builds the bare-metal test kernels in examples/kernel-riscv64 and examples/kernel-riscv32 and
# runs each under QEMU (`virt` machine, `-bios none`). A kernel passes only if QEMU exits with
# status 0 (the kernel's exit through the SiFive test device) AND its output has the line
# "<kernel>: all checks passed".
#
# Usage, from anywhere: bash .ci/qemu.sh
# Needs rustup; installs qemu-system-misc (apt) and the two Rust targets when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
started=$SECONDS

# --- Tools ---------------------------------------------------------------------------------------
if ! command -v qemu-system-riscv64 >/dev/null || ! command -v qemu-system-riscv32 >/dev/null; then
    echo "::group::install qemu-system-misc"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends qemu-system-misc
    echo "::endgroup::"
fi
# Run from the repository root, so the targets go to the toolchain rust-toolchain.toml selects,
# which is the one the kernels build with.
rustup target add riscv64gc-unknown-none-elf riscv32imac-unknown-none-elf
qemu-system-riscv64 --version | head -n 1
cargo --version

# --- Build ---------------------------------------------------------------------------------------
# A target directory of their own, so the ELF paths do not depend on CARGO_TARGET_DIR.
target_dir="$root/target/qemu-kernels"
declare -A target=(
    [kernel-riscv64]=riscv64gc-unknown-none-elf
    [kernel-riscv32]=riscv32imac-unknown-none-elf
)
declare -A qemu=(
    [kernel-riscv64]=qemu-system-riscv64
    [kernel-riscv32]=qemu-system-riscv32
)
kernels=(kernel-riscv64 kernel-riscv32)

for k in "${kernels[@]}"; do
    echo "::group::build $k"
    cargo build --release \
        --manifest-path "examples/$k/Cargo.toml" \
        --target "${target[$k]}" \
        --target-dir "$target_dir"
    echo "::endgroup::"
done

# --- Run -----------------------------------------------------------------------------------------
failed=()
for k in "${kernels[@]}"; do
    elf="$target_dir/${target[$k]}/release/$k"
    log="$target_dir/$k.log"
    echo "=== run $k (${qemu[$k]} -machine virt -bios none -m 128M -nographic -kernel $elf)"
    run_started=$SECONDS
    set +e
    timeout 60 "${qemu[$k]}" -machine virt -bios none -m 128M -smp 1 -nographic \
        -kernel "$elf" </dev/null >"$log" 2>&1
    status=$?
    set -e
    cat "$log"
    echo "=== $k: QEMU exit status $status after $((SECONDS - run_started)) s"
    if [ "$status" -eq 124 ]; then
        echo "error: $k timed out after 60 s" >&2
        failed+=("$k")
    elif [ "$status" -ne 0 ]; then
        echo "error: $k: QEMU exited with status $status" >&2
        failed+=("$k")
    elif ! grep -qxF "$k: all checks passed" "$log"; then
        echo "error: $k: QEMU exited 0 but the output lacks \"$k: all checks passed\"" >&2
        failed+=("$k")
    fi
done

echo "=== done in $((SECONDS - started)) s"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "passed: ${kernels[*]}"
