#!/usr/bin/env bash
# Proves the dependency bundle and scripts/gpu-smoke.sh without a GPU, on a
# stand-in for a GPU machine you do not administer: a Debian trixie chroot
# that holds what such a machine holds and nothing more --
#   python3 with PyTorch 2.x (trixie's python3-torch and python3-torchvision,
#   standing in for pip's), LibTorch's headers and CMake files unpacked from
#   libtorch-dev and Gloo's headers from libgloo-dev, without those
#   packages' dependencies (a wheel carries both in torch/include and
#   torch/share/cmake), cmake, ninja and g++ -- and none of the -dev packages
#   the bundle replaces. Then, inside it:
#   1. without the bundle, CONVOY_SMOKE_DEVICE=cpu scripts/gpu-smoke.sh must
#      fail, saying what is missing and how to make the bundle;
#   2. with it, the same command must build Convoy and pass every check.
# The chroot is made once and cached (scripts/debian-chroot.sh); each run
# builds from nothing (no ccache there, as on a fresh GPU machine) into
# build-standin/. Needs root.
#
# usage: sudo scripts/check-deps-bundle.sh [BUNDLE.tar.xz]
#   (default: ~/.cache/convoy/convoy-deps.tar.xz, made with
#   scripts/make-deps-bundle.sh when it is missing)
# Results (both runs' summary.txt, build.log, smoke.log):
#   ~/.cache/convoy/deps-bundle-check/{without,with}
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "check-deps-bundle: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mounts)"; exit 2; }
. scripts/debian-chroot.sh

bundle=${1:-$CHROOT_CACHE/convoy-deps.tar.xz}
if [ ! -f "$bundle" ]; then
  say "no bundle at $bundle: making it"
  bash scripts/make-deps-bundle.sh "$bundle"
fi
bundle=$(realpath "$bundle")

dir=$(trixie_chroot gpu-box-standin python3 python3-torch python3-torchvision cmake ninja-build g++)
# LibTorch's headers and CMake package, as pip's wheel has them beside the
# libraries: the files of libtorch-dev and libgloo-dev (c10d's headers include
# Gloo's), not their dependencies (libprotobuf-dev, python3-dev).
if [ ! -f "$dir/usr/include/gloo/algorithm.h" ] || [ ! -f "$dir/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake" ]; then
  say "unpacking the files of libtorch-dev and libgloo-dev (without their dependencies)"
  chroot "$dir" bash -c 'cd /tmp && apt-get download libtorch-dev libgloo-dev &&
    for d in libtorch-dev_*.deb libgloo-dev_*.deb; do dpkg-deb -x "$d" /; done && rm -f /tmp/*.deb' >&2
fi
TORCH_PREFIX=/usr/lib/x86_64-linux-gnu/cmake

# Bare: none of what the bundle brings may be there.
present=()
for p in libprotobuf-dev protobuf-compiler libopencv-dev libspdlog-dev libfmt-dev libjpeg62-turbo-dev libjpeg-dev \
    libpng-dev zlib1g-dev libarchive-dev nlohmann-json3-dev libssl-dev libgtest-dev googletest libopenmpi-dev; do
  chroot_has "$dir" "$p" && present+=("$p")
done
for h in google/protobuf opencv4 spdlog fmt jpeglib.h png.h zlib.h archive.h nlohmann openssl gtest; do
  [ -e "$dir/usr/include/$h" ] && present+=("/usr/include/$h")
done
if ((${#present[@]})); then
  say "the stand-in is not bare: ${present[*]}"
  exit 1
fi
say "stand-in: $(chroot "$dir" dpkg-query -W -f='${Version}' python3-torch) python3-torch;" \
  "-dev packages: $(chroot "$dir" dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' '*-dev' 2>/dev/null |
    awk '$1 == "ii" {printf "%s ", $2}')"

results=$CHROOT_CACHE/deps-bundle-check
rm -rf "$results"
mkdir -p "$results"
CHROOT_BINDS=("$(dirname "$bundle"):/bundle" "$results:/results")
smoke="CONVOY_SMOKE_DEVICE=cpu CONVOY_TORCH_PREFIX=$TORCH_PREFIX PYTHON=python3 bash scripts/gpu-smoke.sh"

say "1. without the bundle: must fail"
rm -rf build-standin
set +e
in_chroot "$dir" "CONVOY_BUILD_DIR=build-standin $smoke /results/without" > "$results/without.out" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] || ! grep -q "make-deps-bundle.sh" "$results/without.out"; then
  cat "$results/without.out" >&2
  say "FAILED: without the bundle the smoke should fail and name scripts/make-deps-bundle.sh (exit $rc)"
  exit 1
fi
sed 's/^/  | /' "$results/without.out" >&2

say "2. with the bundle ($(basename "$bundle"), $(($(stat -c %s "$bundle") / 1048576)) MiB): must pass"
rm -rf build-standin
t0=$(date +%s)
if ! in_chroot "$dir" "CONVOY_BUILD_DIR=build-standin CONVOY_DEPS_BUNDLE=/bundle/$(basename "$bundle") $smoke /results/with" \
    > "$results/with.out" 2>&1; then
  tail -n 40 "$results/with.out" >&2
  say "FAILED with the bundle (logs: $results/with)"
  exit 1
fi
grep '^gpu-smoke: built in' "$results/with.out" >&2 || true
cat "$results/with/summary.txt" >&2
say "passed in $(($(date +%s) - t0)) s (logs: $results)"
