#!/usr/bin/env bash
# Sets up if needed, builds, and runs the whole test suite (ctest): unit
# tests, ranks-as-threads tests, and multi-process runs through convoy launch
# and mpirun. The last line lists every test that was skipped, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build="${CONVOY_BUILD_DIR:-build}"
rc=0
ctest --test-dir "$build" --output-on-failure -j 2 "$@" || rc=$?
/usr/bin/python3 tests/tools/skip_summary.py "$build"
exit "$rc"
