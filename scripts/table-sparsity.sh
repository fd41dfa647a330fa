#!/usr/bin/env bash
# Prints the README's sparsity table for stories260K: held-out story ppl and
# bits per linear weight for each N:M pattern and pruning criterion, values
# in VALUES (default f32). Calibration: the first 64 stories of the dev text;
# scoring: the rest. Usage: scripts/table-sparsity.sh [BUILD_DIR] [VALUES] [PATTERN...]
# (STK=PATH runs that stk binary instead of BUILD_DIR/stk).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/default}
values=${2:-f32}
shift 2 || true
patterns=${*:-1:4 2:4 2:8 4:8 6:8 7:8 12:16}
stk=${STK:-$build/stk}
text=tests/data/tinystories_valid_dev.txt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
score() {  # prints "ppl bpw" of $out/m.stk
  local json
  json=$($stk ppl "$out/m.stk" --text $text --stories 64: --json 2>/dev/null | tail -1)
  echo "$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' <<<"$json") $(sed -E 's/.*"linear_bpw": ([0-9.]+).*/\1/' <<<"$json")"
}
$stk pack tests/data/stories260K.bin "$out/m.stk" --tokenizer tests/data/tok512.bin --format "$values" >/dev/null 2>&1
read -r dense dense_bpw < <(score)
echo "dense $values: ppl $dense, $dense_bpw bits per linear weight" >&2
echo "| pattern | bits per linear weight | magnitude | Wanda | SparseGPT | SparseGPT + distillation |"
echo "|---|---|---|---|---|---|"
for p in $patterns; do
  row="| $p |"
  bpw=""
  cells=""
  for method in magnitude wanda sparsegpt "sparsegpt --distill 40"; do
    calib=()
    [ "$method" != magnitude ] && calib=(--calib $text --calib-stories 64)
    $stk pack tests/data/stories260K.bin "$out/m.stk" --tokenizer tests/data/tok512.bin --format "$values" \
      --sparsity "$p" --prune $method "${calib[@]}" --threads 2 >/dev/null 2>&1
    read -r ppl b < <(score)
    bpw=$b
    cells="$cells $(awk -v p="$ppl" -v d="$dense" 'BEGIN{printf "%.3f (%+.0f%%)", p, 100*(p/d-1)}') |"
  done
  echo "$row $bpw |$cells"
done
