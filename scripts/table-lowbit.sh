#!/usr/bin/env bash
# Prints the README's low-bit table for stories260K: held-out story ppl and
# bits per linear weight (scales included) per packing, round-to-nearest and
# calibrated side by side where both exist. Calibration: the first 64 stories
# of the dev text; scoring: the rest (233,160 predictions).
#   scripts/table-lowbit.sh [BUILD_DIR] ["ARGS" ...]
# Each ARGS is one packing's `stk pack` options; a leading "calib " adds the
# calibration options. Default: the README's rows.
# (STK=PATH runs that stk binary instead of BUILD_DIR/stk; THREADS=N scores with N threads.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
shift || true
if [ $# -eq 0 ]; then
  set -- "--format q8" "--format q4" "calib --format q4" "calib --format q4k" "calib --bpw 5.0" "--format q3" \
    "calib --format q3" "calib --format q3k" "calib --bpw 4.0 --bpw-candidates q4k,q4kg32,q3k,q3kg32" \
    "calib --format q2" "calib --format q2k" "calib --bpw 3.0" "calib --format t2k" \
    "calib --format q4k --distill 40" "calib --bpw 5.0 --distill 40" \
    "calib --bpw 4.0 --bpw-candidates q4k,q4kg32,q3k,q3kg32 --distill 40" "calib --bpw 3.0 --distill 40"
fi
stk=${STK:-$build/stk}
threads=${THREADS:-2}
text=tests/data/tinystories_valid_dev.txt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/" <<<"$2"; }
score() { $stk ppl "$1" --text $text --stories 64: --threads "$threads" --json 2>/dev/null | tail -1; }
$stk pack tests/data/stories260K.bin "$out/f32.stk" --tokenizer tests/data/tok512.bin --format f32 >/dev/null 2>&1
f32=$(field ppl "$(score "$out/f32.stk")")
echo "f32 ppl $f32" >&2
echo "| stk pack options | bits per linear weight | ppl | vs f32 |"
echo "|---|---|---|---|"
for spec in "$@"; do
  args=($spec)
  label="${spec#calib }"
  extra=()
  if [ "${args[0]}" = calib ]; then
    args=("${args[@]:1}")
    extra=(--calib $text --calib-stories 64)
    label="$label (calibrated)"
  fi
  $stk pack tests/data/stories260K.bin "$out/m.stk" --tokenizer tests/data/tok512.bin "${args[@]}" "${extra[@]}" --threads "$threads" \
    >/dev/null 2>&1
  j=$(score "$out/m.stk")
  p=$(field ppl "$j")
  echo "| \`$label\` | $(field linear_bpw "$j") | $p | $(awk -v p="$p" -v d="$f32" 'BEGIN{printf "%+.1f%%", 100*(p/d-1)}') |"
done
