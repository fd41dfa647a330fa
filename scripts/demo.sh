#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: build stackrt, pack the bundled
# stories260K model (Q8, with its tok512 tokenizer embedded) and generate a
# story inside a fixed arena.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target stk
build/default/stk pack tests/data/stories260K.bin build/stories260K_q8.stk --format q8 --tokenizer tests/data/tok512.bin
build/default/stk info build/stories260K_q8.stk | tail -3
build/default/stk run build/stories260K_q8.stk --prompt "Once upon a time" -n 256 --temp 0.8 --seed 42 "$@"
