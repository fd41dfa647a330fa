#!/bin/sh
# Runs the bare-metal example under qemu-system-arm (semihosting) and checks
# that its stdout equals the expected text (the host's greedy output for the
# same packed model: `stk run MODEL -n 200 --temp 0 --scalar-kernels`, whose
# arithmetic is the same as the Cortex-M build's).
#
#   run-qemu.sh ELF [MACHINE] [EXPECTED]
#     MACHINE   qemu board, default mps2-an386 (Cortex-M4F); mps2-an500 for M7
#     EXPECTED  file with the expected stdout; without it the output is only printed
# Environment: QEMU_SYSTEM_ARM (default qemu-system-arm), QEMU_TIMEOUT (s, default 300).
set -eu
elf=${1:?usage: run-qemu.sh ELF [MACHINE] [EXPECTED]}
machine=${2:-mps2-an386}
expected=${3:-}
qemu=${QEMU_SYSTEM_ARM:-qemu-system-arm}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

status=0
timeout "${QEMU_TIMEOUT:-300}" "$qemu" -M "$machine" -nographic -monitor none -serial null \
  -semihosting-config enable=on,target=native -kernel "$elf" >"$out" </dev/null || status=$?
cat "$out"
if [ "$status" -ne 0 ]; then
  echo "run-qemu: $elf exited with status $status under qemu $machine" >&2
  exit 1
fi
if [ -n "$expected" ]; then
  if cmp -s "$out" "$expected"; then
    echo "run-qemu: output matches $expected ($(wc -c <"$out") bytes)" >&2
  else
    echo "run-qemu: output differs from $expected:" >&2
    diff "$expected" "$out" >&2 || true
    exit 1
  fi
fi
