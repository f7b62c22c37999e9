#!/usr/bin/env bash
# Builds Convoy against Debian trixie's LibTorch 2.6 (CPU) and runs the whole
# test suite there: the same scripts/test.sh as CI, inside a trixie chroot
# (debootstrap, cached outside the clone; see scripts/debian-chroot.sh), with
# the build in build-torch2/. Proves worker/dist/c10d_compat.h (and models/autocast.h) against 2.x: the
# c10d Backend split, c10d::Work, the Store interface, the device-generic
# autocast API, CPU kernels for the AMP ops. Needs root. Extra arguments go
# to ctest (e.g. -R integration.launch).
#
# usage: scripts/check-torch2.sh [CTEST ARGS...]
# First run: a few minutes of debootstrap and packages, then a full build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian-chroot.sh
dir=$(trixie_chroot trixie-cpu)
# scripts/setup.sh installs the packages (trixie's names are the same) and
# builds; scripts/test.sh runs ctest.
in_chroot "$dir" "CONVOY_BUILD_DIR=build-torch2 bash scripts/test.sh $*"
