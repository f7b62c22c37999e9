#!/usr/bin/env bash
# Makes the dependency bundle: one relocatable prefix with headers, static
# libraries and CMake packages for everything Convoy needs besides LibTorch
# and CUDA (OpenCV, libjpeg-turbo, libpng, zlib, Protobuf + a static protoc,
# spdlog/fmt, nlohmann-json, libarchive, OpenSSL's libcrypto, GoogleTest),
# compressed into OUT (.tar.xz). Unpacked anywhere, it builds Convoy on a
# machine that has a compiler, CMake and PyTorch but none of these libraries
# and no way to install them (a GPU box, a cluster without root):
#
#   cmake -S . -B build -DCONVOY_DEPS_BUNDLE=/path/to/convoy-deps ...
#   CONVOY_DEPS_BUNDLE=convoy-deps.tar.xz scripts/gpu-smoke.sh
#
# The build runs in a Debian 12 root made with debootstrap and cached in
# ~/.cache/convoy/deps-bundle-bookworm (see scripts/debian-chroot.sh), so any
# Debian or Ubuntu machine where you are root can make it; with --here it
# runs on the Debian 12 system it is started on (a container, say) instead.
# What is in it, and why, is in scripts/deps-bundle/build-inside.sh and the
# bundle's MANIFEST.
#
# usage: sudo scripts/make-deps-bundle.sh [--here] OUT.tar.xz
# First run: debootstrap, about 250 MB of packages and sources, then about
# 10 minutes of building on 2 cores; later runs reuse the sources and ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "make-deps-bundle: $*" >&2; }
here=0
if [ "${1:-}" = --here ]; then
  here=1
  shift
fi
if [ $# -ne 1 ] || [[ $1 != *.tar.xz ]]; then
  echo "usage: $0 [--here] OUT.tar.xz" >&2
  exit 2
fi
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap and chroot; with --here, apt-get)"; exit 2; }
out=$(realpath -m "$1")
mkdir -p "$(dirname "$out")"
t0=$(date +%s)
stage=$(mktemp -d "$(dirname "$out")/.convoy-deps.XXXXXX")
trap 'rm -rf "$stage"' EXIT

if ((here)); then
  bash scripts/deps-bundle/build-inside.sh "$stage/convoy-deps"
else
  . scripts/debian-chroot.sh
  dir=$(debian_chroot bookworm deps-bundle-bookworm)
  CHROOT_BINDS=("$stage:/out")
  in_chroot "$dir" "bash scripts/deps-bundle/build-inside.sh /out/convoy-deps"
fi
t1=$(date +%s)
say "compressing"
tar -C "$stage" -cf - convoy-deps | xz -9 -T0 > "$out.part"
mv "$out.part" "$out"
t2=$(date +%s)
unpacked=$(du -sb "$stage/convoy-deps" | cut -f1)
packed=$(stat -c %s "$out")
say "$out: $((packed / 1048576)) MiB compressed, $((unpacked / 1048576)) MiB unpacked;" \
  "built in $((t1 - t0)) s, compressed in $((t2 - t1)) s"
