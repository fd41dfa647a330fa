#!/usr/bin/env bash
# Greedy decode speed of stk (f32, one thread) against llama2.c's run.c built
# with -Ofast -march=native, interleaved in one run so machine load affects
# both alike; prints the best of N runs of each and their ratio.
# Usage: scripts/compare-llama2c.sh PATH/TO/llama2c/run [BUILD_DIR] [N]
# (run.c is not part of this repository; build it yourself beside it.)
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1
build=${2:-build/default}
n=${3:-7}
model=$(mktemp --suffix=.stk)
"$build/stk" pack tests/data/stories260K.bin "$model" --format f32 --tokenizer tests/data/tok512.bin 2>/dev/null
best_stk=0
best_ref=0
for _ in $(seq "$n"); do
  a=$("$build/stk" run "$model" -n 200 --temp 0 2>&1 >/dev/null | sed -nE 's/achieved tok\/s: ([0-9.]+).*/\1/p')
  b=$("$run" tests/data/stories260K.bin -z tests/data/tok512.bin -n 200 -t 0 2>&1 >/dev/null |
      sed -nE 's/achieved tok\/s: ([0-9.]+).*/\1/p')
  best_stk=$(awk -v x="$best_stk" -v y="$a" 'BEGIN{print (y>x)?y:x}')
  best_ref=$(awk -v x="$best_ref" -v y="$b" 'BEGIN{print (y>x)?y:x}')
done
rm -f "$model"
echo "stk f32 1 thread: $best_stk tok/s; llama2.c run: $best_ref tok/s; ratio $(awk -v x="$best_stk" -v y="$best_ref" 'BEGIN{printf "%.2f", x/y}') (best of $n each, interleaved)"
