#!/usr/bin/env bash
# Installs Convoy's dependencies from Debian 12's packages and builds
# build/convoy. Idempotent: when everything is installed and built it only
# checks, which takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  g++ cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev                 # LibTorch 1.13 (CPU) with c10d + Gloo
  libopenmpi-dev openmpi-bin               # mpirun and the MPI bootstrap
  libopencv-dev zlib1g-dev                 # decoding (libpng via OpenCV), gzip'd IDX
  libjpeg62-turbo-dev libarchive-dev       # crop-aware JPEG decoding; tar shards (convoy pack)
  libprotobuf-dev protobuf-compiler        # config schema, control messages
  libspdlog-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev                       # reading metrics.jsonl for the run report
  libssl-dev                               # HMAC-SHA256 for the job-token handshake
  iproute2                                 # tests: network namespaces as hosts (cluster/netns-testbed.sh)
  chromium tmux                            # tests: the report rendered headless; the progress bar in a terminal
  dataset-fashion-mnist                    # the default config's data set
  python3                                  # integration tests (/usr/bin/python3)
  python3-torch python3-torchvision        # the PyTorch peers of the benchmarks (bench/)
  python3-skimage python3-pil python3-numpy  # bench/make_imagenet_like.py's photos
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

BUILD=${CONVOY_BUILD_DIR:-build}   # another folder for another toolchain (scripts/check-torch2.sh)
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD" -j "$(nproc)"
