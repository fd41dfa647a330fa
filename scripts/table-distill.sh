#!/usr/bin/env bash
# Prints the README's distillation table for stories260K: held-out story ppl
# of low-bit and sparse packs without end-to-end distillation, with
# `--distill 40` on the 64 calibration stories, and with `--distill 40
# --distill-samples 192` (192 more stories written by the f32 model).
# Calibration: the first 64 stories of the dev text; scoring: the rest.
#   scripts/table-distill.sh [BUILD_DIR]
# (STK=PATH runs that stk binary instead of BUILD_DIR/stk; THREADS=N packs and scores with N threads.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
stk=${STK:-$build/stk}
threads=${THREADS:-2}
text=tests/data/tinystories_valid_dev.txt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/" <<<"$2"; }
score() {  # score MODEL -> the JSON line
  $stk ppl "$1" --text $text --stories 64: --threads "$threads" --json 2>/dev/null | tail -1
}
$stk pack tests/data/stories260K.bin "$out/f32.stk" --tokenizer tests/data/tok512.bin --format f32 >/dev/null 2>&1
f32=$(field ppl "$(score "$out/f32.stk")")
echo "f32 ppl $f32" >&2
pct() { awk -v p="$1" -v d="$f32" 'BEGIN{printf "%.3f (%+.1f%%)", p, 100*(p/d-1)}'; }
echo "| packing (all calibrated) | bits per linear weight | without | --distill 40 | --distill 40 --distill-samples 192 |"
echo "|---|---|---|---|---|"
for args in "--format q4k" "--bpw 4.0 --bpw-candidates q4k,q4kg32,q3k,q3kg32" "--bpw 3.0" \
    "--format f32 --sparsity 2:4 --prune sparsegpt" "--format f32 --sparsity 4:8 --prune sparsegpt"; do
  row="| \`$args\` |"
  bpw=""
  cells=""
  for distill in "" "--distill 40" "--distill 40 --distill-samples 192"; do
    # shellcheck disable=SC2086  # args and distill are word lists
    $stk pack tests/data/stories260K.bin "$out/m.stk" --tokenizer tests/data/tok512.bin $args \
      --calib $text --calib-stories 64 --threads "$threads" $distill >/dev/null 2>&1
    j=$(score "$out/m.stk")
    bpw=$(field linear_bpw "$j")
    cells="$cells $(pct "$(field ppl "$j")") |"
  done
  echo "$row $bpw |$cells"
done
