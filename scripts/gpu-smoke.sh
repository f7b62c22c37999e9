#!/usr/bin/env bash
# The GPU path in one command, on a machine with NVIDIA GPUs and a
# pip-installed (or pytorch.org) PyTorch: builds Convoy against that
# PyTorch's LibTorch with whatever OpenCV, Protobuf, spdlog, Open MPI etc.
# CMake finds, then checks
#   1. NCCL all-reduce: correctness and bus bandwidth per size
#      (convoy bench allreduce; needs 2 or more GPUs),
#   2. a few training steps (ResNet-18, 112 px, synthetic JPEGs through the
#      data service, pinned asynchronous copies, NCCL DDP) with fp16 and bf16
#      autocast: finite losses, images/s,
#   3. ResNet-50 forward + backward images/s at batch 256, bf16,
#      channels_last on the first GPU, beside torchvision on the same GPU,
# and prints one summary table. Exit status 1 when a check fails.
#
# usage: scripts/gpu-smoke.sh
# Environment:
#   PYTHON              the interpreter with torch (default python3)
#   CONVOY_TORCH_PREFIX LibTorch's CMake prefix (default: torch.utils.cmake_prefix_path)
#   CONVOY_DEPS_PREFIX  more CMake prefixes (;-separated) for the other
#                       libraries, e.g. a conda environment (README: GPUs)
#   CONVOY_BUILD_DIR    build folder (default build-gpu)
#   CONVOY_SMOKE_RANKS  ranks for 1 and 2 (default: the visible GPUs, at most 8)
#   CONVOY_SMOKE_DEVICE cuda (default); cpu runs the same checks on a CPU
#                       build, to test this script where there is no GPU
#   CONVOY_SMOKE_SKIP_BUILD=1  use the build folder as it is
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD=${CONVOY_BUILD_DIR:-build-gpu}
DEVICE=${CONVOY_SMOKE_DEVICE:-cuda}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/convoy-gpu-smoke.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
say() { echo "gpu-smoke: $*" >&2; }

# What PyTorch is here: prefix, version, CUDA, GPUs, C++ ABI.
read -r PREFIX TORCH_VERSION TORCH_CUDA GPUS ABI < <("$PYTHON" -c '
import torch
print(torch.utils.cmake_prefix_path, torch.__version__, torch.version.cuda or "none",
      torch.cuda.device_count() if torch.cuda.is_available() else 0, int(torch._C._GLIBCXX_USE_CXX11_ABI))')
PREFIX=${CONVOY_TORCH_PREFIX:-$PREFIX}
say "PyTorch $TORCH_VERSION (CUDA $TORCH_CUDA), $GPUS GPU(s) visible, LibTorch at $PREFIX"
if [ "$DEVICE" = cuda ] && [ "$GPUS" -eq 0 ]; then
  say "no GPU is visible to PyTorch (driver, CUDA_VISIBLE_DEVICES); nothing to check"
  exit 1
fi
RANKS=${CONVOY_SMOKE_RANKS:-$((GPUS > 8 ? 8 : (GPUS > 0 ? GPUS : 2)))}

if [ -z "${CONVOY_SMOKE_SKIP_BUILD:-}" ]; then
  if [ "$ABI" = 0 ]; then
    say "this LibTorch uses the pre-C++11 string ABI; the system's Protobuf, spdlog and OpenCV use the"
    say "new one and will not link against it. Use a cxx11-ABI LibTorch (pytorch.org's"
    say "'cxx11 ABI' zip, or wheels from 2.7 on) with CONVOY_TORCH_PREFIX=/path/to/libtorch."
    exit 1
  fi
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  # pip wheels keep cuDNN, NCCL and cuBLAS in site-packages/nvidia/*, which
  # libtorch_cuda finds through its own RUNPATH when it runs; the linker
  # cannot see them, hence ignore-in-shared-libs (Convoy's own symbols must
  # still all resolve).
  if ! cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_PREFIX_PATH="$PREFIX;${CONVOY_DEPS_PREFIX:-}" \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--unresolved-symbols=ignore-in-shared-libs >&2; then
    say "CMake could not configure. Besides LibTorch Convoy needs (Debian/Ubuntu package; conda-forge):"
    say "  Protobuf + protoc (libprotobuf-dev protobuf-compiler; libprotobuf), spdlog (libspdlog-dev; spdlog),"
    say "  OpenCV (libopencv-dev; opencv), libjpeg-turbo (libjpeg62-turbo-dev or libjpeg-turbo8-dev;"
    say "  libjpeg-turbo), libarchive (libarchive-dev; libarchive), nlohmann-json (nlohmann-json3-dev;"
    say "  nlohmann_json), OpenSSL (libssl-dev; openssl), zlib, Open MPI (libopenmpi-dev; openmpi), and"
    say "  the CUDA toolkit's nvcc matching torch.version.cuda (CUDAToolkit_ROOT). Point"
    say "  CONVOY_DEPS_PREFIX at a prefix holding the missing ones (README: GPUs)."
    exit 1
  fi
  cmake --build "$BUILD" -j "$(nproc)" --target convoy make_image_folder >&2
fi
CONVOY=$BUILD/convoy
VERSION=$("$CONVOY" --version | tail -n 1)
say "$VERSION"

rows=()     # "check|result|ok"
failed=0
row() { rows+=("$1|$2|$3"); [ "$3" = ok ] || [ "$3" = skipped ] || failed=1; }
last_json() { grep '^{' | tail -n 1; }
report() { "$PYTHON" scripts/gpu_smoke_report.py "$@"; }

# 1. NCCL all-reduce.
if [ "$RANKS" -ge 2 ]; then
  if json=$("$CONVOY" bench allreduce --ranks "$RANKS" --device "$DEVICE" --min-bytes 1KB --max-bytes 256MB \
      --json | tee >(cat >&2) | last_json) && [ -n "$json" ]; then
    row "all-reduce, $RANKS ranks" "$(report allreduce "$json")" ok
  else
    row "all-reduce, $RANKS ranks" "failed (see above)" FAILED
  fi
else
  row "all-reduce" "1 GPU: NCCL needs a GPU per rank" skipped
fi

# 2. Training steps with fp16 and bf16 autocast, through the whole path.
"$BUILD/tests/make_image_folder" "$OUT/images" --classes 4 --per-class 96 --min-side 96 --max-side 160 >&2
ranks_list=1
[ "$RANKS" -ge 2 ] && ranks_list=1,$RANKS
for amp in fp16 bf16; do
  if [ "$amp" = fp16 ] && [ "$DEVICE" != cuda ]; then
    row "train $amp" "needs CUDA" skipped
    continue
  fi
  if json=$("$CONVOY" bench scaling --image-folder "$OUT/images" --device "$DEVICE" --ranks "$ranks_list" \
      --amp "$amp" --model resnet18 --image-size 112 --batch 32 --steps 20 --warmup 5 --run-dir "$OUT/$amp" \
      --json | tee >(cat >&2) | last_json) && [ -n "$json" ]; then
    if result=$(report train "$json" "$OUT/$amp"); then
      row "train $amp (resnet18, 112 px, batch 32)" "$result" ok
    else
      row "train $amp (resnet18, 112 px, batch 32)" "$result" FAILED
    fi
  else
    row "train $amp" "failed (see above)" FAILED
  fi
done

# 3. ResNet-50 at batch 256, bf16, channels_last: Convoy and torchvision.
model_args=(--arch resnet50 --batch 256 --image-size 224 --amp bf16 --channels-last --steps 20 --warmup 5 --json)
[ "$DEVICE" = cuda ] || model_args=(--arch resnet50 --batch 16 --image-size 224 --amp bf16 --channels-last --steps 2 --warmup 1 --json)
if c=$("$CONVOY" bench model "${model_args[@]}" --device "$DEVICE" | tee >(cat >&2) | last_json) && [ -n "$c" ]; then
  t=$("$PYTHON" bench/torchvision_model.py "${model_args[@]}" --device "$DEVICE" | tee >(cat >&2) | last_json) || t=""
  row "resnet50 fwd+bwd, batch $(report field "$c" batch), bf16, channels_last" "$(report model "$c" "$t")" ok
else
  row "resnet50 fwd+bwd" "failed (see above)" FAILED
fi

echo
echo "Convoy GPU smoke check: $VERSION"
echo "PyTorch $TORCH_VERSION (CUDA $TORCH_CUDA), $GPUS GPU(s); device $DEVICE"
printf '%-48s %-8s %s\n' "check" "status" "result"
for r in "${rows[@]}"; do
  IFS='|' read -r check result status <<<"$r"
  printf '%-48s %-8s %s\n' "$check" "$status" "$result"
done
exit $failed
