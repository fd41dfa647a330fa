#!/usr/bin/env bash
# Prints the README's format table for stories260K: story ppl on the whole
# dev text, weight bytes, and greedy decode speed (200 positions, one thread,
# best of 5 runs). Usage: scripts/table-formats.sh [BUILD_DIR] [FORMAT...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
shift || true
formats=${*:-f32 q8}
stk=$build/stk
out=$(mktemp -d)
echo "| format | story ppl (dev text, 239432 predictions) | weight bytes | decode tok/s, 1 thread |"
echo "|---|---|---|---|"
for f in $formats; do
  $stk pack tests/data/stories260K.bin "$out/m.stk" --format "$f" --tokenizer tests/data/tok512.bin 2>/dev/null
  json=$($stk ppl "$out/m.stk" --text tests/data/tinystories_valid_dev.txt --json 2>/dev/null | tail -1)
  ppl=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' <<<"$json")
  wb=$(sed -E 's/.*"weight_bytes": ([0-9]+).*/\1/' <<<"$json")
  best=0
  for _ in 1 2 3 4 5; do
    t=$($stk run "$out/m.stk" -n 200 --temp 0 2>&1 >/dev/null | sed -nE 's/achieved tok\/s: ([0-9.]+).*/\1/p')
    best=$(awk -v a="$best" -v b="$t" 'BEGIN{print (b>a)?b:a}')
  done
  echo "| $f | $ppl | $wb | $best |"
done
rm -rf "$out"
