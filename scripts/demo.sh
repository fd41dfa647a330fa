#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: build stackrt, pack the bundled
# stories260K model as BitStack (residual blocks in one load order,
# calibrated on the first 64 stories of the bundled TinyStories text, about
# a minute), show what each RAM budget holds, and generate a story under a
# budget that drops mid-story to 125 KB (3.8 bits per linear weight,
# where the text degrades but stays words; at the minimum it does not) and
# comes back: the blocks move, the story goes on (quality with them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target stk
stk=build/default/stk
model=build/stories260K_bitstack.stk
[ -f "$model" ] || $stk pack tests/data/stories260K.bin "$model" --tokenizer tests/data/tok512.bin \
  --format bitstack --calib tests/data/tinystories_valid_dev.txt --calib-stories 64 --threads "$(nproc)"
$stk info "$model" --budget 200KB | grep -E '^  (BitStack|min budget|at budget)'
echo
$stk run "$model" --budget 200KB --budget-at 120:125KB --budget-at 180:200KB --prompt "Once upon a time" \
  -n 256 --temp 0.8 --seed 42 "$@"
