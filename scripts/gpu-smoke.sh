#!/usr/bin/env bash
# The GPU path in one command, on a machine with NVIDIA GPUs and a
# pip-installed (or pytorch.org) PyTorch: builds what the checks need (convoy
# and its image generator) against that PyTorch's LibTorch -- with the other
# libraries from a dependency bundle (CONVOY_DEPS_BUNDLE, made by
# scripts/make-deps-bundle.sh) or from wherever CMake finds them -- then checks
#   1. NCCL all-reduce: correctness and bus bandwidth per size
#      (convoy bench allreduce; needs 2 or more GPUs),
#   2. a few DDP training steps (ResNet-18, 112 px, generated JPEGs through the
#      data service, pinned asynchronous uploads, NCCL) with fp16 autocast and
#      loss scaling and with bf16 autocast, on 1 GPU and on all of them:
#      finite losses, images/s. With one GPU it also tries 2 ranks on it,
#      which NCCL refuses (a GPU per rank): the row says so,
#   3. ResNet-50 forward + backward images/s at batch 256, bf16,
#      channels_last on the first GPU, beside torchvision on the same GPU,
#   4. convoy predict --device cuda with the checkpoint the bf16 run saved,
# and writes a summary table (summary.txt, also printed), build.log and
# smoke.log into OUTDIR. Exit status 1 when a check fails.
#
# usage: scripts/gpu-smoke.sh [OUTDIR]   (default: $OUT when set, else a new
#                                          folder under /tmp, printed)
# Environment:
#   CONVOY_DEPS_BUNDLE  the dependency bundle: its .tar.xz (unpacked into the
#                       build folder) or an unpacked folder
#   PYTHON              the interpreter with torch (default python3)
#   CONVOY_TORCH_PREFIX LibTorch's CMake prefix (default: torch.utils.cmake_prefix_path)
#   CONVOY_DEPS_PREFIX  more CMake prefixes (;-separated), e.g. a conda environment
#   CONVOY_BUILD_DIR    build folder (default build-gpu)
#   CONVOY_SMOKE_RANKS  ranks for the multi-rank checks (default: the visible
#                       GPUs, at most 8; 2 on the CPU)
#   CONVOY_SMOKE_DEVICE cuda (default); cpu runs the same checks, smaller, on
#                       a CPU build, to test this script where there is no GPU
#   CONVOY_SMOKE_SKIP_BUILD=1  use the build folder as it is
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD=${CONVOY_BUILD_DIR:-build-gpu}
DEVICE=${CONVOY_SMOKE_DEVICE:-cuda}
RESULTS=${1:-${OUT:-}}
[ -n "$RESULTS" ] || RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/convoy-gpu-smoke.XXXXXX")
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/convoy-gpu-smoke-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$RESULTS/smoke.log
: > "$LOG"
say() { echo "gpu-smoke: $*" | tee -a "$LOG" >&2; }
t_start=$(date +%s)

# What PyTorch is here: prefix, version, CUDA, GPUs, C++ ABI, the first GPU's
# compute capability.
if ! facts=$("$PYTHON" -c '
import torch
gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
cap = "%d.%d" % torch.cuda.get_device_capability(0) if gpus else "none"
print(torch.utils.cmake_prefix_path, torch.__version__, torch.version.cuda or "none", gpus,
      int(torch._C._GLIBCXX_USE_CXX11_ABI), cap)' 2>>"$LOG"); then
  say "$PYTHON cannot import torch (set PYTHON to the interpreter that has PyTorch)"
  exit 1
fi
read -r PREFIX TORCH_VERSION TORCH_CUDA GPUS ABI CAPABILITY <<<"$facts"
PREFIX=${CONVOY_TORCH_PREFIX:-$PREFIX}
say "PyTorch $TORCH_VERSION (CUDA $TORCH_CUDA), $GPUS GPU(s) visible (compute capability $CAPABILITY), LibTorch at $PREFIX"
if [ "$DEVICE" = cuda ] && [ "$GPUS" -eq 0 ]; then
  say "no GPU is visible to PyTorch (driver, CUDA_VISIBLE_DEVICES); nothing to check"
  exit 1
fi
if [ "$DEVICE" = cuda ]; then
  RANKS=${CONVOY_SMOKE_RANKS:-$((GPUS > 8 ? 8 : GPUS))}
else
  RANKS=${CONVOY_SMOKE_RANKS:-2}
fi

# The dependency bundle: a folder, or its .tar.xz unpacked once per content.
BUNDLE=""
if [ -n "${CONVOY_DEPS_BUNDLE:-}" ]; then
  if [ -d "$CONVOY_DEPS_BUNDLE" ]; then
    BUNDLE=$(cd "$CONVOY_DEPS_BUNDLE" && pwd)
  elif [ -f "$CONVOY_DEPS_BUNDLE" ]; then
    stamp=$(stat -c '%s %Y' "$CONVOY_DEPS_BUNDLE")
    BUNDLE=$(pwd)/$BUILD/deps-bundle/convoy-deps
    if [ "$(cat "$BUILD/deps-bundle/.stamp" 2>/dev/null)" != "$stamp" ]; then
      say "unpacking $CONVOY_DEPS_BUNDLE"
      rm -rf "$BUILD/deps-bundle"
      mkdir -p "$BUILD/deps-bundle"
      if command -v xz >/dev/null; then
        tar -xJf "$CONVOY_DEPS_BUNDLE" -C "$BUILD/deps-bundle"
      else  # no xz-utils: Python's tarfile reads .tar.xz
        "$PYTHON" -c 'import sys, tarfile
kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' \
          "$CONVOY_DEPS_BUNDLE" "$BUILD/deps-bundle"
      fi
      echo "$stamp" > "$BUILD/deps-bundle/.stamp"
    fi
  else
    say "CONVOY_DEPS_BUNDLE=$CONVOY_DEPS_BUNDLE does not exist (make it with scripts/make-deps-bundle.sh)"
    exit 1
  fi
  [ -f "$BUNDLE/MANIFEST" ] || { say "$CONVOY_DEPS_BUNDLE is not a dependency bundle (no MANIFEST)"; exit 1; }
  say "dependencies from the bundle: $(sed -n 2p "$BUNDLE/MANIFEST")"
fi

BUILD_S=0
if [ -z "${CONVOY_SMOKE_SKIP_BUILD:-}" ]; then
  if [ "$ABI" = 0 ]; then
    say "this LibTorch uses the pre-C++11 string ABI; Protobuf, spdlog and OpenCV (the bundle's"
    say "and Debian's) use the new one and will not link against it. Use a cxx11-ABI LibTorch"
    say "(wheels from 2.7 on, or pytorch.org's 'cxx11 ABI' zip with CONVOY_TORCH_PREFIX=...)."
    exit 1
  fi
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF "-DCMAKE_PREFIX_PATH=$PREFIX;${CONVOY_DEPS_PREFIX:-}"
              # pip wheels keep cuDNN, NCCL and cuBLAS in site-packages/nvidia/*, which
              # libtorch_cuda finds through its own RUNPATH when it runs; the linker
              # cannot see them, hence ignore-in-shared-libs (Convoy's own symbols
              # must still all resolve).
              -DCMAKE_EXE_LINKER_FLAGS=-Wl,--unresolved-symbols=ignore-in-shared-libs)
  command -v ninja >/dev/null && cmake_args+=(-G Ninja)
  [ -n "$BUNDLE" ] && cmake_args+=("-DCONVOY_DEPS_BUNDLE=$BUNDLE")
  if [ "$CAPABILITY" != none ]; then
    # Only the GPU that is here (LibTorch's CMake would otherwise probe or
    # build for a list of architectures).
    cmake_args+=("-DTORCH_CUDA_ARCH_LIST=$CAPABILITY" "-DCMAKE_CUDA_ARCHITECTURES=${CAPABILITY/./}")
  fi
  if nvcc=$(command -v nvcc); then
    cmake_args+=("-DCUDAToolkit_ROOT=$(dirname "$(dirname "$nvcc")")")
  fi
  say "building convoy into $BUILD (log: $RESULTS/build.log)"
  t0=$(date +%s)
  if ! cmake -S . -B "$BUILD" "${cmake_args[@]}" >"$RESULTS/build.log" 2>&1; then
    grep -E 'Could NOT find|CMake Error|not found|No such' "$RESULTS/build.log" | head -n 12 | sed 's/^/  | /' >&2
    say "CMake could not configure (whole log: $RESULTS/build.log)."
    if [ -z "$BUNDLE" ]; then
      say "Besides LibTorch, Convoy needs OpenCV, Protobuf + protoc, spdlog, libjpeg-turbo, libarchive,"
      say "nlohmann-json, OpenSSL and zlib. Where they cannot be installed, make the dependency bundle"
      say "on any Debian or Ubuntu machine where you are root, bring it here and pass it:"
      say "  sudo scripts/make-deps-bundle.sh convoy-deps.tar.xz     (there)"
      say "  CONVOY_DEPS_BUNDLE=convoy-deps.tar.xz scripts/gpu-smoke.sh   (here)"
      say "(or CONVOY_DEPS_PREFIX=<a prefix that has them>, e.g. a conda environment)."
    fi
    exit 1
  fi
  if ! cmake --build "$BUILD" -j "$(nproc)" --target convoy make_image_folder >>"$RESULTS/build.log" 2>&1; then
    grep -E 'error|Error' "$RESULTS/build.log" | head -n 20 | sed 's/^/  | /' >&2
    say "the build failed (whole log: $RESULTS/build.log)"
    exit 1
  fi
  BUILD_S=$(($(date +%s) - t0))
  say "built in $BUILD_S s"
fi
CONVOY=$BUILD/convoy
VERSION=$("$CONVOY" --version | head -n 2 | paste -sd ' ')
say "$VERSION"

rows=()     # "check|result|status"
failed=0
row() { rows+=("$1|$2|$3"); [ "$3" = ok ] || [ "$3" = skipped ] || failed=1; }
last_json() { grep '^{' | tail -n 1; }
report() { "$PYTHON" scripts/gpu_smoke_report.py "$@"; }
# logged COMMAND...: runs it with its output appended to smoke.log.
logged() {
  echo "+ $*" >>"$LOG"
  "$@" 2>>"$LOG" | tee -a "$LOG"
}
[ "$BUILD_S" -gt 0 ] && row "build (convoy, make_image_folder)" "$BUILD_S s" ok

# Sizes: the GPU's, or small ones that a CPU runs in seconds.
if [ "$DEVICE" = cuda ]; then
  size=112 batch=32 steps=20 warmup=5
  model=(--arch resnet50 --batch 256 --image-size 224 --steps 20 --warmup 5)
else
  size=64 batch=16 steps=6 warmup=2
  model=(--arch resnet50 --batch 8 --image-size 128 --steps 2 --warmup 1)
fi
train=(--model resnet18 --image-size "$size" --batch "$batch" --steps "$steps" --warmup "$warmup")
train_label="resnet18, $size px, batch $batch"

# 1. NCCL all-reduce.
if [ "$RANKS" -ge 2 ]; then
  if json=$(logged "$CONVOY" bench allreduce --ranks "$RANKS" --device "$DEVICE" --min-bytes 1KB --max-bytes 256MB \
      --json | last_json) && [ -n "$json" ]; then
    row "all-reduce, $RANKS ranks" "$(report allreduce "$json")" ok
  else
    row "all-reduce, $RANKS ranks" "failed (smoke.log)" FAILED
  fi
else
  row "all-reduce" "1 GPU: NCCL needs a GPU per rank" skipped
fi

# 2. Training steps with fp16 and bf16 autocast, through the whole path.
"$BUILD/tests/make_image_folder" "$WORK/images" --classes 4 --per-class 96 --min-side 96 --max-side 160 >>"$LOG" 2>&1
ranks_list=1
[ "$RANKS" -ge 2 ] && ranks_list=1,$RANKS
for amp in fp16 bf16; do
  if [ "$amp" = fp16 ] && [ "$DEVICE" != cuda ]; then
    row "train fp16 + loss scaling" "needs CUDA" skipped
    continue
  fi
  label="train $amp (${train_label})"
  [ "$amp" = fp16 ] && label="train fp16 + loss scaling (${train_label})"
  # The bf16 run keeps a checkpoint of its last step, for check 4.
  if json=$(logged "$CONVOY" bench scaling --image-folder "$WORK/images" --device "$DEVICE" --ranks "$ranks_list" \
      --amp "$amp" "${train[@]}" --run-dir "$WORK/$amp" --set "train.checkpoint_every_steps=$((steps + warmup))" \
      --json | last_json) && [ -n "$json" ]; then
    if result=$(report train "$json" "$WORK/$amp"); then
      row "$label" "$result" ok
    else
      row "$label" "$result" FAILED
    fi
  else
    row "$label" "failed (smoke.log)" FAILED
  fi
done
# One GPU: two ranks sharing it, which NCCL refuses ("Duplicate GPU").
if [ "$DEVICE" = cuda ] && [ "$GPUS" -eq 1 ]; then
  if json=$(logged timeout 300 "$CONVOY" bench scaling --image-folder "$WORK/images" --device cuda --ranks 2 \
      --amp bf16 "${train[@]}" --run-dir "$WORK/shared" --json | last_json) && [ -n "$json" ] &&
      result=$(report train "$json" "$WORK/shared"); then
    row "train bf16, 2 ranks sharing 1 GPU" "$result" ok
  elif grep -rqi "duplicate gpu" "$WORK/shared" "$LOG" 2>/dev/null; then
    row "train bf16, 2 ranks sharing 1 GPU" "NCCL refuses two ranks on one GPU (Duplicate GPU)" skipped
  else
    row "train bf16, 2 ranks sharing 1 GPU" "failed for another reason (smoke.log)" FAILED
  fi
fi

# 3. ResNet-50 at bf16, channels_last: Convoy and torchvision.
model_args=("${model[@]}" --amp bf16 --channels-last --json)
if c=$(logged "$CONVOY" bench model "${model_args[@]}" --device "$DEVICE" | last_json) && [ -n "$c" ]; then
  t=$(logged "$PYTHON" bench/torchvision_model.py "${model_args[@]}" --device "$DEVICE" | last_json) || t=""
  row "resnet50 fwd+bwd, batch $(report field "$c" batch), bf16, channels_last" "$(report model "$c" "$t")" ok
else
  row "resnet50 fwd+bwd" "failed (smoke.log)" FAILED
fi

# 4. convoy predict on the device, with the bf16 run's checkpoint.
ckpt=$(find "$WORK/bf16/ranks-1/checkpoints" -name 'step-*.ckpt' 2>/dev/null | sort | tail -n 1)
if [ -z "$ckpt" ]; then
  row "predict --device $DEVICE" "no checkpoint from the bf16 run" FAILED
else
  images=$(find "$WORK/images" -type f \( -name '*.jpg' -o -name '*.png' \) | wc -l)
  t0=$(date +%s.%N)
  if logged "$CONVOY" predict --checkpoint "$ckpt" --device "$DEVICE" --json --topk 1 "$WORK/images" \
      >"$WORK/predict.jsonl" && [ "$(grep -c '"topk"' "$WORK/predict.jsonl")" -eq "$images" ]; then
    secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')
    row "predict --device $DEVICE" "$images images in $secs s (whole command), all with a top-1 label" ok
  else
    row "predict --device $DEVICE" "failed or missing images (smoke.log)" FAILED
  fi
fi

{
  echo "Convoy GPU smoke check: $VERSION"
  echo "PyTorch $TORCH_VERSION (CUDA $TORCH_CUDA), $GPUS GPU(s); device $DEVICE;" \
    "dependencies: ${BUNDLE:+bundle }${BUNDLE:-system}; $(($(date +%s) - t_start)) s in all"
  printf '%-48s %-8s %s\n' "check" "status" "result"
  for r in "${rows[@]}"; do
    IFS='|' read -r check result status <<<"$r"
    printf '%-48s %-8s %s\n' "$check" "$status" "$result"
  done
} > "$RESULTS/summary.txt"
echo
cat "$RESULTS/summary.txt"
say "summary, build and check logs in $RESULTS"
exit $failed
