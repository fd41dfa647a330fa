#!/usr/bin/env bash
# Cross builds and tests: configure + build + ctest each Linux cross preset
# under qemu user-mode emulation (the whole suite; quality tests use their
# emulation sizes there, see tests/test_support.h), build the Cortex-M
# bare-metal example and check its output under qemu-system-arm against the
# host's greedy output, then print the size report.
#
#   scripts/test-cross.sh [TARGET...]
#     TARGETs: aarch64-linux armv7-linux riscv64-linux aarch64-linux-dotprod
#              cortex-m4 cortex-m7 (default: all six)
#     aarch64-linux-dotprod builds the library with -DSTK_ARM_DOTPROD=ON (the
#     sdot kernels; qemu-aarch64's default CPU has the extension), checks that
#     sdot was emitted, and runs only the kernel tests (Kernels.*, Lowbit.*,
#     LowbitK.*: every kernel against its scalar reference).
#
# Environment:
#   STK_BUILD_PREFIX      prefix of the build dirs (default build/, so build/aarch64-linux
#                         etc., the presets' binaryDir)
#   STK_HOST_BUILD        host build with the `stk` tool (default build/default; built
#                         here if it has no stk yet)
#   STK_CROSS_EXCLUDE     ctest -E regex for the Linux cross targets (default: none)
#   STK_CROSS_INCLUDE     ctest -R regex for the Linux cross targets (default: none)
#   STK_CROSS_JOBS        build and ctest parallelism (default 2)
#   STK_SKIP_DEPS=1       do not run .ci/install-deps
# Exit status: 0 when every step of every target passed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

prefix=${STK_BUILD_PREFIX:-build/}
host_dir=${STK_HOST_BUILD:-build/default}
exclude=${STK_CROSS_EXCLUDE-}
include=${STK_CROSS_INCLUDE-}
jobs=${STK_CROSS_JOBS:-2}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-linux armv7-linux riscv64-linux aarch64-linux-dotprod cortex-m4 cortex-m7)

t_start=$(date +%s)
summary=()
failed=0
note() { echo; echo "=== test-cross: $* ($(date -u +%H:%M:%S))"; }
elapsed() { echo $(($(date +%s) - $1)); }
record() { summary+=("$(printf '%-22s %-9s %s' "$1" "$2" "$3")"); [ "$2" = ok ] || failed=1; }

if [ "${STK_SKIP_DEPS:-0}" != 1 ]; then
  note "installing dependencies"
  .ci/install-deps || { echo "test-cross: .ci/install-deps failed" >&2; exit 1; }
fi

# ---- Host tool: packs the bare-metal model and gives the reference text ----
need_host=0
for t in "${targets[@]}"; do case $t in cortex-m*) need_host=1 ;; esac; done
model="${prefix}baremetal-data/stories260K_q8.stk"
expected="${prefix}baremetal-data/stories260K_q8_greedy_200.txt"
if [ $need_host = 1 ]; then
  note "host stk (packs the bare-metal model)"
  if [ ! -x "$host_dir/stk" ]; then
    { [ -f "$host_dir/CMakeCache.txt" ] || cmake --preset default -B "$host_dir"; } &&
      cmake --build "$host_dir" -j "$jobs" --target stk || { echo "test-cross: host build failed" >&2; exit 1; }
  fi
  mkdir -p "${prefix}baremetal-data"
  "$host_dir/stk" pack tests/data/stories260K.bin "$model" --format q8 --tokenizer tests/data/tok512.bin &&
    "$host_dir/stk" run "$model" -n 200 --temp 0 --scalar-kernels >"$expected" 2>/dev/null ||
    { echo "test-cross: packing or the host reference run failed" >&2; exit 1; }
  echo "packed $model ($(stat -c %s "$model") bytes); host greedy text: $expected ($(stat -c %s "$expected") bytes)"
fi

for t in "${targets[@]}"; do
  dir="${prefix}${t}"
  extra=()
  build_targets=()
  only=$include
  skip=$exclude
  case $t in
    aarch64-linux | armv7-linux | riscv64-linux) ;;
    aarch64-linux-dotprod)
      # The kernels and their tests only: the rest of the suite runs in aarch64-linux.
      build_targets=(--target kernels_test lowbit_kernel_test)
      only='^(Kernels|Lowbit|LowbitK)\.'
      skip="" ;;
    cortex-m4 | cortex-m7)
      extra=(-DSTK_BAREMETAL_MODEL="$root/$model" -DSTK_BAREMETAL_EXPECTED="$root/$expected")
      [[ $model = /* ]] && extra=(-DSTK_BAREMETAL_MODEL="$model" -DSTK_BAREMETAL_EXPECTED="$expected") ;;
    *) echo "test-cross: unknown target $t" >&2; record "$t" error "unknown target"; continue ;;
  esac
  note "$t: configure + build in $dir"
  t0=$(date +%s)
  if ! cmake --preset "$t" -B "$dir" "${extra[@]}" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; record "$t" FAILED "configure (see $dir.configure.log)"; continue
  fi
  if ! cmake --build "$dir" -j "$jobs" "${build_targets[@]}"; then record "$t" FAILED "build"; continue; fi
  if [ "$t" = aarch64-linux-dotprod ]; then
    # -DSTK_ARM_DOTPROD=ON must reach the kernels: their objects use sdot.
    n_sdot=$(aarch64-linux-gnu-objdump -d "$dir/libstackrt.a" | grep -c $'\tsdot\t')
    echo "sdot instructions in $dir/libstackrt.a: $n_sdot"
    if [ "$n_sdot" -eq 0 ]; then record "$t" FAILED "no sdot in libstackrt.a"; continue; fi
  fi
  tb=$(elapsed "$t0")
  note "$t: ctest"
  t1=$(date +%s)
  args=(--test-dir "$dir" -j "$jobs" --output-on-failure --no-tests=error)
  excl=""
  case $t in cortex-m*) ;; *) [ -n "$skip" ] && args+=(-E "$skip") && excl=" (excluded: -E '$skip')" ;; esac
  case $t in cortex-m*) ;; *) [ -n "$only" ] && args+=(-R "$only") && excl="$excl (only: -R '$only')" ;; esac
  ctest "${args[@]}" 2>&1 | tee "$dir.ctest.log"
  rc=${PIPESTATUS[0]}
  tt=$(elapsed "$t1")
  counts=$(grep -E 'tests passed' "$dir.ctest.log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    record "$t" ok "build ${tb}s, tests ${tt}s: ${counts}${excl}"
  else
    record "$t" FAILED "build ${tb}s, tests ${tt}s: ${counts:-ctest failed}"
  fi
done

note "size report"
STK_HOST_BUILD="$host_dir" STK_BUILD_PREFIX="$prefix" scripts/size-report.sh || failed=1

echo
echo "=== test-cross summary (total $(elapsed "$t_start")s)"
printf '%s\n' "${summary[@]}"
exit $failed
