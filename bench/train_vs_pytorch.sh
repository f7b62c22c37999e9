#!/usr/bin/env bash
# Convoy's training throughput side by side with PyTorch DDP on the same image
# folder, one after the other in one go: ResNet-18 at 112 px, batch 32 per
# rank, 1 thread per rank, 5 warm-up + 30 measured steps, RANKS ranks, AMP
# none or bf16.
#
# usage: bench/train_vs_pytorch.sh DIR [RANKS] [AMP] [LAYOUT]
#   DIR    an image folder, e.g. from bench/make_imagenet_like.py
#   RANKS  default 2
#   AMP    none (default) or bf16
#   LAYOUT default: channels_last with bf16 only (on both sides); cl:
#          channels_last on both sides in float32 too
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init "$@"
DIR=$1
RANKS=${2:-2}
AMP=${3:-none}
LAYOUT=${4:-default}
COMMON=(--batch 32 --image-size 112 --steps 30 --warmup 5 --threads-per-rank 1 --amp "$AMP")
CONVOY_EXTRA=() TORCH_EXTRA=()
[ "$LAYOUT" = cl ] && CONVOY_EXTRA=(--set model.channels_last=true) TORCH_EXTRA=(--channels-last)

cat "$DIR"/*/* > /dev/null  # a warm page cache for both
convoy_json=$("$CONVOY" bench scaling --image-folder "$DIR" --ranks "$RANKS" "${COMMON[@]}" "${CONVOY_EXTRA[@]}" --json \
  | tee /dev/stderr | tail -n 1)
torch_json=$("$PYTHON" bench/pytorch_ddp.py "$DIR" --ranks "$RANKS" "${COMMON[@]}" "${TORCH_EXTRA[@]}" --json \
  | tee /dev/stderr | tail -n 1)

"$PYTHON" - "$convoy_json" "$torch_json" "$RANKS" "$AMP" "$LAYOUT" <<'PY'
import json, sys
c, t, ranks, amp, layout = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cr = c["results"][-1]
cl = "channels_last" if amp == "bf16" or layout == "cl" else "contiguous (NCHW)"
print()
print(f"ResNet-18, 112 px, {ranks} rank(s) x 1 thread, batch 32, amp {amp}, {cl} on both sides")
print(f"{'trainer':<26}{'images/s':>10}")
print(f"{'convoy':<26}{cr['images_per_sec']:>10.1f}")
print(f"{'pytorch DDP':<26}{t['images_per_sec']:>10.1f}")
b = cr["breakdown_ms"]
step = sum(b.values())
print(f"convoy / pytorch: {cr['images_per_sec'] / t['images_per_sec']:.2f}x; convoy step {step:.0f} ms: "
      f"exposed comm {100 * b['exposed_comm'] / step:.1f}%, data wait {100 * b['data_wait'] / step:.1f}%")
PY
