#!/usr/bin/env bash
# The tests that run several threads, built with ThreadSanitizer: the thread
# pool's own tests (claims, take-over of a stalled worker's range, sleeping
# and waking, stop and restart) and whole sessions at 1, 2 and 3 threads
# (identical results), one of them a BitStack model big enough for its
# products to be shared out (bitstack_threads_test). The pool is
# lock-free (atomics, then a futex to sleep), so this is what checks that
# every handoff is ordered. Only those three test binaries are built. (The
# BitStack test that changes the budget between tokens at 2 threads passes
# here too, but packing its model under TSan takes about 14 minutes: run it
# with
#   cmake --build build/tsan --target bitstack_budget_test &&
#   build/tsan/tests/bitstack_budget_test --gtest_filter='*AcrossBudgetChanges*'.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset tsan >/dev/null
cmake --build --preset tsan
# halt_on_error: the first race fails the test that hit it.
TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" ctest --preset tsan -j "$(nproc)"
