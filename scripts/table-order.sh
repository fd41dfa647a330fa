#!/usr/bin/env bash
# Prints the README's table of BitStack load orders on stories260K: one pack
# per `--order` (the same blocks, only their order differs; no distillation),
# its pack time, and its held-out story ppl at the weight bytes of the
# calibrated q2, q3k, q4k and q8 models (scripts/table-bitstack.sh prints
# those bytes). Calibration: the first 64 stories of the dev text; scoring:
# the rest.
#   scripts/table-order.sh [BUILD_DIR] [ORDER...]     (default: measured nll uniform gain)
# (STK=PATH runs that stk binary instead of BUILD_DIR/stk; THREADS=N packs and scores with N threads.)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
shift || true
orders=${*:-measured nll uniform gain}
stk=${STK:-$build/stk}
threads=${THREADS:-2}
text=tests/data/tinystories_valid_dev.txt
budgets=(102464 133440 165696 278752)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| --order | pack seconds | ppl at 102,464 B (q2) | at 133,440 B (q3k) | at 165,696 B (q4k) | at 278,752 B (q8) |"
echo "|---|---|---|---|---|---|"
for o in $orders; do
  start=$(date +%s.%N)
  $stk pack tests/data/stories260K.bin "$out/$o.stk" --tokenizer tests/data/tok512.bin --format bitstack \
    --calib $text --calib-stories 64 --threads "$threads" --order "$o" >/dev/null 2>&1
  row="| $o | $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.0f", e - s}') |"
  for b in "${budgets[@]}"; do
    j=$($stk ppl "$out/$o.stk" --budget "$b" --text $text --stories 64: --threads "$threads" --json 2>/dev/null | tail -1)
    row="$row $(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' <<<"$j" | awk '{printf "%.3f", $1}') |"
  done
  echo "$row"
done
