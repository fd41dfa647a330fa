#!/usr/bin/env bash
# Size report: the runtime library (libstackrt.a) per target, and the
# bare-metal example's flash and RAM use. Reads existing build directories
# only (build them first, e.g. with scripts/test-cross.sh).
#
#   scripts/size-report.sh
#
# Environment:
#   STK_HOST_BUILD    host build dir            (default: build/default)
#   STK_BUILD_PREFIX  prefix of the cross dirs  (default: build/, giving
#                     build/aarch64-linux, build/armv7-linux, ... as the presets do)
#   STK_SIZE_LIMIT_CM Cortex-M runtime code budget in bytes (default 122880 = 120 KB);
#                     the script exits 1 if the cortex-m4 library is larger.
#
# "code" of a library = text + data of all its objects (size -t), i.e. what
# the archive holds before the linker drops unused sections; "stripped" = the
# archive's file size after strip --strip-unneeded. For Cortex-M, "linked" is
# what the example actually pulls in from libstackrt.a (from the link map).
set -uo pipefail
cd "$(dirname "$0")/.."

host_dir=${STK_HOST_BUILD:-build/default}
prefix=${STK_BUILD_PREFIX:-build/}
limit=${STK_SIZE_LIMIT_CM:-122880}
status=0

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }

# lib_row NAME DIR TOOLPREFIX
lib_row() {
  local name=$1 dir=$2 tp=$3 lib="$2/libstackrt.a"
  if [ ! -f "$lib" ]; then
    printf '  %-14s %s\n' "$name" "(not built: $lib)"
    return
  fi
  local totals text data bss tmp stripped
  totals=$("${tp}size" -t "$lib" | tail -1)
  text=$(awk '{print $1}' <<<"$totals")
  data=$(awk '{print $2}' <<<"$totals")
  bss=$(awk '{print $3}' <<<"$totals")
  tmp=$(mktemp)
  cp "$lib" "$tmp"
  "${tp}strip" --strip-unneeded "$tmp" 2>/dev/null
  stripped=$(stat -c %s "$tmp")
  rm -f "$tmp"
  local btype
  btype=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$dir/CMakeCache.txt" 2>/dev/null)
  printf '  %-14s code %8d B (%9s)  data %6d  bss %6d  stripped .a %8d B  [%s]\n' \
    "$name" $((text + data)) "$(kb $((text + data)))" "$data" "$bss" "$stripped" "${btype:-?}"
  if [ "$name" = cortex-m4 ] && [ $((text + data)) -gt "$limit" ]; then
    echo "  !! cortex-m4 runtime code $((text + data)) B exceeds the budget of $limit B" >&2
    status=1
  fi
}

echo "== stackrt size report =="
echo "runtime library libstackrt.a (stripped code per target):"
lib_row host "$host_dir" ""
lib_row aarch64-linux "${prefix}aarch64-linux" aarch64-linux-gnu-
lib_row armv7-linux "${prefix}armv7-linux" arm-linux-gnueabihf-
lib_row riscv64-linux "${prefix}riscv64-linux" riscv64-linux-gnu-
lib_row cortex-m4 "${prefix}cortex-m4" arm-none-eabi-
lib_row cortex-m7 "${prefix}cortex-m7" arm-none-eabi-
echo "  Cortex-M budget: $(kb "$limit") for the runtime library (-Os, without the model)"

# Bare-metal example: flash = everything loaded into FLASH (vectors, code,
# rodata incl. the model, exidx, init arrays, .data image); RAM = .data +
# .bss + arena, plus the linker script's stack reservation.
for cpu in cortex-m4 cortex-m7; do
  dir="${prefix}${cpu}"
  elf="$dir/examples/baremetal/stk_baremetal.elf"
  map="$dir/examples/baremetal/stk_baremetal.map"
  [ -f "$elf" ] || { echo "bare-metal example ($cpu): not built ($elf)"; continue; }
  read -r flash ram_data ram_bss arena model < <(arm-none-eabi-size -A "$elf" | awk '
    $1 ~ /^\.(isr_vector|text|rodata|ARM\.exidx|ARM\.extab|preinit_array|init_array|fini_array)$/ { flash += $2 }
    $1 == ".data" { flash += $2; data = $2 }
    $1 == ".bss" { bss = $2 }
    $1 == ".stackrt_arena" { arena = $2 }
    END { printf "%d %d %d %d\n", flash, data, bss, arena }')
  model=$(arm-none-eabi-nm -S "$elf" | awk '$4 == "stk_model_start" { print $2 }')
  model=$((16#${model:-0}))
  stack=$(arm-none-eabi-nm "$elf" | awk '$3 == "__stack_size" { print $1 }')
  stack=$((16#${stack:-0}))
  # Input sections taken from libstackrt.a, from the link map (a long section
  # name puts address and size on the next line).
  linked=0
  if [ -f "$map" ]; then
    linked=$(awk '
      function hex(s,   i, c, v) {
        v = 0; s = tolower(substr(s, 3))
        for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return v
      }
      /^Linker script and memory map/ { on = 1; next }
      !on { next }
      /^ \.[^ ]+$/ { sec = $1; next }
      /^ \.[^ ]+ +0x[0-9a-f]+ +0x[0-9a-f]+ / { sec = $1; size = $3; file = $4 }
      /^ +0x[0-9a-f]+ +0x[0-9a-f]+ [^ ]/ { size = $2; file = $3 }
      file != "" {
        if (file ~ /libstackrt\.a\(/ && sec ~ /^\.(text|rodata|data|ARM\.exidx|ARM\.extab)/) total += hex(size)
        file = ""
      }
      END { print total + 0 }' "$map")
  fi
  echo "bare-metal example ($cpu, $(basename "$elf")):"
  printf '  flash %8d B (%s): model %d B, code+rodata %d B (%s), of which libstackrt %d B (%s)\n' \
    "$flash" "$(kb "$flash")" "$model" $((flash - model)) "$(kb $((flash - model)))" "$linked" "$(kb "$linked")"
  printf '  RAM   %8d B (%s): arena %d B, .data %d B, .bss %d B; plus stack %d B reserved\n' \
    $((ram_data + ram_bss + arena)) "$(kb $((ram_data + ram_bss + arena)))" "$arena" "$ram_data" "$ram_bss" "$stack"
done
exit $status
