#!/usr/bin/env bash
# One model's forward + backward in Convoy (C++) and through Python
# torchvision on the same LibTorch, side by side in one go: same
# architecture, batch, input size, threads and precision, random input.
# Each side runs ROUNDS times, alternating, and the best round counts (the
# least disturbed by whatever else the machine does).
#
# usage: bench/model_vs_torchvision.sh ARCH [BATCH] [THREADS] [AMP] [ROUNDS]
#   ARCH     resnet18 | resnet50 | vgg16 | vit_b_16 | ... (torchvision's name)
#   BATCH    default 32 (at 224x224)
#   THREADS  default: the number of cores
#   AMP      none (default) | bf16 (adds channels_last)
#   ROUNDS   default 3, each of 10 timed steps after 3 warm-up steps
# Convoy's processes keep freed memory for reuse (common/process.h:
# tune_malloc), which Python does not. PEER_MALLOC=same runs the Python side
# with the same glibc settings (MALLOC_MMAP_THRESHOLD_ etc.), to compare the
# model code alone; CONVOY_MALLOC_TUNING=0 turns Convoy's off instead.
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init "$@"
ARCH=$1
BATCH=${2:-32}
THREADS=${3:-$(nproc)}
AMP=${4:-none}
ROUNDS=${5:-3}
EXTRA=()
[ "$AMP" = bf16 ] && EXTRA=(--channels-last)

PEER_ENV=()
if [ "${PEER_MALLOC:-}" = same ]; then
  PEER_ENV=(MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=67108864)
fi

convoy=()
torch=()
for _ in $(seq "$ROUNDS"); do
  convoy+=("$("$CONVOY" bench model --arch "$ARCH" --batch "$BATCH" --threads "$THREADS" --amp "$AMP" \
    "${EXTRA[@]}" --json | tee >(cat >&2) | tail -n 1)")
  torch+=("$(env "${PEER_ENV[@]}" "$PYTHON" bench/torchvision_model.py --arch "$ARCH" --batch "$BATCH" --threads "$THREADS" \
    --amp "$AMP" "${EXTRA[@]}" --json | tee >(cat >&2) | tail -n 1)")
done

"$PYTHON" - "$ROUNDS" "${convoy[@]}" "${torch[@]}" "${PEER_MALLOC:-default}" <<'PY'
import json, sys
n = int(sys.argv[1])
c = [json.loads(s) for s in sys.argv[2:2 + n]]
t = [json.loads(s) for s in sys.argv[2 + n:2 + 2 * n]]
best_c = max(r["images_per_sec"] for r in c)
best_t = max(r["images_per_sec"] for r in t)
print()
print(f"{c[0]['arch']}, batch {c[0]['batch']}, {c[0]['threads']} thread(s), amp {c[0]['amp']}: best of {n}")
print(f"{'side':<36}{'images/s':>10}   rounds")
print(f"{'convoy bench model':<36}{best_c:>10.1f}   " + " ".join(f"{r['images_per_sec']:.1f}" for r in c))
peer = "torchvision (Python)" + (", same malloc" if sys.argv[-1] == "same" else "")
print(f"{peer:<36}{best_t:>10.1f}   " + " ".join(f"{r['images_per_sec']:.1f}" for r in t))
print(f"convoy / torchvision: {best_c / best_t:.3f} ({100 * (best_c / best_t - 1):+.1f}%)")
PY
