#!/usr/bin/env bash
# Sets up if needed, builds, and runs the whole test suite (ctest): unit
# tests, ranks-as-threads tests, and multi-process runs through convoy launch
# and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${CONVOY_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
