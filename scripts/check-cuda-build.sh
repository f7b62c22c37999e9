#!/usr/bin/env bash
# Compiles and links Convoy's CUDA configuration (NCCL process groups, CUDA
# autocast, pinned host-to-device copies: worker/cuda_*.cpp) against Debian
# trixie's CUDA LibTorch 2.6 (libtorch-cuda-dev, contrib), with trixie's CUDA
# toolkit and NCCL (non-free), inside a trixie chroot made once with
# debootstrap and cached outside the clone (scripts/debian-chroot.sh). No GPU
# is needed: this proves the GPU path builds and links; it cannot run it
# (scripts/gpu-smoke.sh does, on a GPU machine). Needs root.
#
# usage: scripts/check-cuda-build.sh
# First run: debootstrap and about 3 GB of packages, then a full build into
# build-cuda/; later runs reuse the chroot and ccache.
#
# cuDNN: trixie's libtorch-cuda-2.6 depends on nvidia-cudnn, an installer
# package that downloads cuDNN from NVIDIA in its postinst and fails offline.
# The chroot gets a local stand-in package of that name with no files instead,
# and the link ignores symbols that LibTorch's own shared libraries leave
# unresolved (see CONVOY_LIBTORCH=cuda-link in scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian-chroot.sh
dir=$(trixie_chroot trixie-cuda)

if ! chroot_has "$dir" nvidia-cudnn; then
  echo "check-cuda-build: installing a stand-in nvidia-cudnn package (no download)" >&2
  stub=$dir/tmp/nvidia-cudnn-stub
  rm -rf "$stub"
  mkdir -p "$stub/DEBIAN"
  cat > "$stub/DEBIAN/control" <<'EOF'
Package: nvidia-cudnn
Version: 9.0.0.312~cuda12+convoy1
Architecture: amd64
Maintainer: Convoy <convoy@localhost>
Description: stand-in for the cuDNN download installer (link checks only)
 Satisfies libtorch-cuda's dependency without downloading cuDNN; ships no files.
EOF
  chroot "$dir" dpkg-deb --build /tmp/nvidia-cudnn-stub /tmp/nvidia-cudnn-stub.deb >&2
  chroot "$dir" dpkg -i /tmp/nvidia-cudnn-stub.deb >&2
  chroot "$dir" apt-mark hold nvidia-cudnn >&2
  rm -rf "$stub" "$dir/tmp/nvidia-cudnn-stub.deb"
fi

start=$(date +%s)
in_chroot "$dir" "CONVOY_LIBTORCH=cuda-link CONVOY_BUILD_DIR=build-cuda bash scripts/setup.sh"
# What the build must contain: the CUDA files were compiled in, and the
# binary links LibTorch's CUDA and NCCL code (it cannot start here: no cuDNN).
in_chroot "$dir" '
  set -e
  grep -q "CONVOY_WITH_CUDA:BOOL=ON" build-cuda/CMakeCache.txt || { echo "check-cuda-build: CMake did not enable CUDA" >&2; exit 1; }
  ldd build-cuda/convoy | grep -E "libtorch_cuda|libc10_cuda|libnccl" || { echo "check-cuda-build: convoy does not link CUDA LibTorch" >&2; exit 1; }'
echo "check-cuda-build: CUDA configuration built and linked in $(($(date +%s) - start)) s"
