#!/usr/bin/env bash
# Convoy's training throughput side by side with PyTorch DDP on the same image
# folder, in one go: ResNet-18 at 112 px, batch 32 per rank, 1 thread per
# rank, 5 warm-up + 30 measured steps, RANKS ranks, AMP none or bf16. Each
# side runs ROUNDS times, alternating (Convoy, PyTorch, Convoy, ...); every
# round is printed and the best of each side counts (the round least
# disturbed by whatever else the machine does).
#
# usage: bench/train_vs_pytorch.sh DIR [RANKS] [AMP] [LAYOUT] [ROUNDS]
#   DIR    an image folder, e.g. from bench/make_imagenet_like.py
#   RANKS  default 2
#   AMP    none (default) or bf16
#   LAYOUT default: channels_last with bf16 only (on both sides); cl:
#          channels_last on both sides in float32 too
#   ROUNDS default 1
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init "$@"
DIR=$1
RANKS=${2:-2}
AMP=${3:-none}
LAYOUT=${4:-default}
ROUNDS=${5:-1}
COMMON=(--batch 32 --image-size 112 --steps 30 --warmup 5 --threads-per-rank 1 --amp "$AMP")
CONVOY_EXTRA=() TORCH_EXTRA=()
[ "$LAYOUT" = cl ] && CONVOY_EXTRA=(--set model.channels_last=true) TORCH_EXTRA=(--channels-last)

cat "$DIR"/*/* > /dev/null  # a warm page cache for both
convoy=() torch=()
for _ in $(seq "$ROUNDS"); do
  convoy+=("$("$CONVOY" bench scaling --image-folder "$DIR" --ranks "$RANKS" "${COMMON[@]}" "${CONVOY_EXTRA[@]}" --json \
    | tee >(cat >&2) | tail -n 1)")
  torch+=("$("$PYTHON" bench/pytorch_ddp.py "$DIR" --ranks "$RANKS" "${COMMON[@]}" "${TORCH_EXTRA[@]}" --json \
    | tee >(cat >&2) | tail -n 1)")
done

"$PYTHON" - "$RANKS" "$AMP" "$LAYOUT" "$ROUNDS" "${convoy[@]}" "${torch[@]}" <<'PY'
import json, sys
ranks, amp, layout, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = [json.loads(s)["results"][-1] for s in sys.argv[5:5 + n]]
t = [json.loads(s)["images_per_sec"] for s in sys.argv[5 + n:5 + 2 * n]]
best = max(c, key=lambda r: r["images_per_sec"])
cl = "channels_last" if amp == "bf16" or layout == "cl" else "contiguous (NCHW)"
print()
print(f"ResNet-18, 112 px, {ranks} rank(s) x 1 thread, batch 32, amp {amp}, {cl} on both sides"
      + (f": best of {n} alternating rounds" if n > 1 else ""))
print(f"{'trainer':<26}{'images/s':>10}" + ("   rounds" if n > 1 else ""))
rounds = lambda xs: ("   " + " ".join(f"{x:.1f}" for x in xs)) if n > 1 else ""
print(f"{'convoy':<26}{best['images_per_sec']:>10.1f}" + rounds([r["images_per_sec"] for r in c]))
print(f"{'pytorch DDP':<26}{max(t):>10.1f}" + rounds(t))
b = best["breakdown_ms"]
step = sum(b.values())
print(f"convoy / pytorch: {best['images_per_sec'] / max(t):.2f}x; convoy step {step:.0f} ms: "
      f"exposed comm {100 * b['exposed_comm'] / step:.1f}%, data wait {100 * b['data_wait'] / step:.1f}%")
PY
