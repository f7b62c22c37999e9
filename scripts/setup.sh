#!/usr/bin/env bash
# Installs Convoy's dependencies from Debian 12's packages and builds
# build/convoy. Idempotent: when everything is installed and built it only
# checks, which takes a second or two.
#
# CONVOY_BUILD_DIR   another build folder (default build)
# CONVOY_LIBTORCH    cpu (default): Debian's libtorch-dev and everything the
#                    tests need; cuda-link: trixie's libtorch-cuda-dev with
#                    the CUDA toolkit and NCCL, build packages only (the tests'
#                    python3-torch conflicts with it), linked without cuDNN's
#                    library (scripts/check-cuda-build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

FLAVOUR=${CONVOY_LIBTORCH:-cpu}
CMAKE_ARGS=()
case $FLAVOUR in
  cpu)
    # LibTorch (CPU) with c10d + Gloo; the headers of the oneDNN it links
    # (Winograd convolutions, models/onednn_conv.cpp)
    # (with a real BLAS: see the recommended packages below)
    TORCH_PACKAGES=(libtorch-dev libgloo-dev libdnnl-dev libopenblas0-openmp)
    ;;
  cuda-link)
    TORCH_PACKAGES=(libtorch-cuda-dev libgloo-cuda-dev libnccl-dev nvidia-cuda-toolkit)
    # Only a link check: cuDNN's library is downloaded by an installer
    # package and is absent offline, so symbols that libtorch_cuda needs
    # from it stay unresolved. Our own code must still resolve fully.
    # The test binaries link too; listing their tests (which runs them) waits
    # for ctest, which cannot run here.
    CMAKE_ARGS=(-DCMAKE_EXE_LINKER_FLAGS=-Wl,--unresolved-symbols=ignore-in-shared-libs
                -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST)
    ;;
  *) echo "setup: CONVOY_LIBTORCH must be cpu or cuda-link" >&2; exit 2 ;;
esac

# Everything is installed with --no-install-recommends, so a package that
# Convoy needs only because another package recommends it is listed here by
# name:
#   libopenblas0-openmp  libtorch1.13 recommends a BLAS; without one its
#                        matrix products (Linear layers, ViT) run on the
#                        reference BLAS, several times slower. The OpenMP
#                        build follows torch::set_num_threads.
# (oneDNN's CMake package requires OpenCL, which libdnnl-dev only
# recommends; CMakeLists.txt finds oneDNN without it.)
PACKAGES=(
  g++ cmake ninja-build ccache pkg-config
  "${TORCH_PACKAGES[@]}"
  libopenmpi-dev openmpi-bin               # mpirun and the MPI bootstrap
  libopencv-dev zlib1g-dev                 # decoding (libpng via OpenCV), gzip'd IDX
  libjpeg62-turbo-dev libarchive-dev       # crop-aware JPEG decoding; tar shards (convoy pack)
  libprotobuf-dev protobuf-compiler        # config schema, control messages
  libspdlog-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev                       # reading metrics.jsonl for the run report
  libssl-dev                               # HMAC-SHA256 for the job-token handshake
)
if [ "$FLAVOUR" = cpu ]; then PACKAGES+=(
  iproute2                                 # tests: network namespaces as hosts (cluster/netns-testbed.sh)
  chromium tmux                            # tests: the report rendered headless; the progress bar in a terminal
  fonts-dejavu-core                        # tests: the report's text measured in Chromium (also what fontconfig pulls in)
  dataset-fashion-mnist                    # the default config's data set
  python3                                  # integration tests (/usr/bin/python3)
  python3-torch python3-torchvision        # the PyTorch peers of the benchmarks (bench/)
  python3-skimage python3-pil python3-numpy  # bench/make_imagenet_like.py's photos
); fi

t_start=$(date +%s)
step="checking packages"
trap 'echo "setup: FAILED while $step (exit $?); the lines above say why" >&2' ERR
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: not root and no sudo; as root, run: apt-get install --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
    SUDO=sudo
  fi
  echo "setup: installing ${missing[*]}"
  step="installing packages (apt-get update)"
  $SUDO apt-get update
  step="installing packages (apt-get install)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
t_packages=$(date +%s)

BUILD=${CONVOY_BUILD_DIR:-build}   # another folder for another toolchain (scripts/check-torch2.sh)
# Configured once; a flavour with its own CMake settings re-applies them.
if [ ! -f "$BUILD/build.ninja" ] || ((${#CMAKE_ARGS[@]})); then
  step="configuring (cmake); a missing library there means a package missing from this script's list"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CMAKE_ARGS[@]}"
fi
step="building (cmake --build $BUILD)"
cmake --build "$BUILD" -j "$(nproc)"
t_built=$(date +%s)
echo "setup: done in $((t_built - t_start)) s (packages $((t_packages - t_start)) s, build $((t_built - t_packages)) s)"
