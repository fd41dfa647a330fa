#!/usr/bin/env bash
# Prints the README's BitStack table for stories260K: held-out story ppl of
# one BitStack pack at the weight bytes of each calibrated low-bit model
# (so every row compares equal bytes), beside that model's own ppl, then the
# BitStack minimum and full budgets. Then the same pack with `--distill 40`
# (its factors and norms trained end to end over random budgets), once on the
# calibration stories alone and once with `--distill-samples 192` (192 more
# stories written by the f32 model); then packs distilled with samples at
# other design depths (`--depth 1`: every block greedy; 2; 4; the default is 3).
# Calibration: the first 64 stories of the dev text (every model); scoring:
# the rest.
#   scripts/table-bitstack.sh [BUILD_DIR] [FORMAT...]     (default: q8 q4k q4 q3k q3 q2k q2)
# (STK=PATH runs that stk binary instead of BUILD_DIR/stk; THREADS=N scores with N threads.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
shift || true
formats=${*:-q8 q4k q4 q3k q3 q2k q2}
stk=${STK:-$build/stk}
threads=${THREADS:-2}
text=tests/data/tinystories_valid_dev.txt
calib=(--calib $text --calib-stories 64)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/" <<<"$2"; }
score() {  # score MODEL [--budget B] -> the JSON line
  $stk ppl "$@" --text $text --stories 64: --threads "$threads" --json 2>/dev/null | tail -1
}
$stk pack tests/data/stories260K.bin "$out/f32.stk" --tokenizer tests/data/tok512.bin --format f32 >/dev/null 2>&1
f32=$(field ppl "$(score "$out/f32.stk")")
$stk pack tests/data/stories260K.bin "$out/bs.stk" --tokenizer tests/data/tok512.bin --format bitstack "${calib[@]}" \
  --threads "$threads" >/dev/null 2>&1
$stk pack tests/data/stories260K.bin "$out/bsd.stk" --tokenizer tests/data/tok512.bin --format bitstack \
  "${calib[@]}" --threads "$threads" --distill 40 >/dev/null 2>&1
for depth in 1 2 3 4; do
  $stk pack tests/data/stories260K.bin "$out/bsd$depth.stk" --tokenizer tests/data/tok512.bin --format bitstack \
    "${calib[@]}" --threads "$threads" --distill 40 --distill-samples 192 --depth $depth >/dev/null 2>&1
done
echo "f32 ppl $f32" >&2
echo "| weight bytes | low-bit model | its ppl | BitStack ppl at those bytes | + distillation | + distillation with samples | --depth 1, same | --depth 2, same | --depth 4, same |"
echo "|---|---|---|---|---|---|---|---|---|"
pct() { awk -v p="$1" -v d="$f32" 'BEGIN{printf "%.3f (%+.0f%%)", p, 100*(p/d-1)}'; }
distilled() {  # distilled BUDGET -> " | ppl" per distilled pack: without samples, then with, default depth first
  for pack in bsd bsd3 bsd1 bsd2 bsd4; do printf ' | %s' "$(pct "$(field ppl "$(score "$out/$pack.stk" --budget "$1")")")"; done
}
for f in $formats; do
  $stk pack tests/data/stories260K.bin "$out/$f.stk" --tokenizer tests/data/tok512.bin --format "$f" "${calib[@]}" \
    >/dev/null 2>&1
  j=$(score "$out/$f.stk")
  wb=$(field weight_bytes "$j")
  b=$(score "$out/bs.stk" --budget "$wb")
  echo "| $wb | $f, calibrated ($(field linear_bpw "$j") bpw) | $(pct "$(field ppl "$j")") | $(pct "$(field ppl "$b")")$(distilled "$wb") |"
done
for b in min full; do
  budget=$($stk info "$out/bs.stk" | sed -nE "s/.*min budget ([0-9]+) bytes.*full budget ([0-9]+) bytes.*/\\$([ $b = min ] && echo 1 || echo 2)/p")
  j=$(score "$out/bs.stk" --budget "$budget")
  # (each pack's own full budget: its kind-1 blocks, and so its bytes, differ a little)
  echo "| $budget | BitStack $b budget | | $(pct "$(field ppl "$j")")$(distilled "$([ $b = min ] && echo "$budget" || echo 1GiB)") |"
done
