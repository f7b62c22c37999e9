#!/usr/bin/env bash
# Convoy's input pipeline side by side with PyTorch's DataLoader on the same
# image folder, one after the other in one go: random-resized-crop 224 +
# flip, batch 64, THREADS decode threads / DataLoader workers.
#
# usage: bench/data_vs_torchvision.sh DIR [THREADS] [SECONDS]
#   DIR      an image folder, e.g. from bench/make_imagenet_like.py
#   THREADS  default: the number of cores
#   SECONDS  measuring time of each side (default 20)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init "$@"
DIR=$1
THREADS=${2:-$(nproc)}
SECONDS_EACH=${3:-20}

# Both read the folder once first, so neither pays for a cold page cache.
cat "$DIR"/*/* > /dev/null

convoy_json=$("$CONVOY" bench data --image-folder "$DIR" --threads "$THREADS" --batch 64 --crop 224 \
  --seconds "$SECONDS_EACH" --json | tee >(cat >&2) | tail -n 1)
torch_json=$("$PYTHON" bench/torchvision_data.py "$DIR" --workers "$THREADS" --batch 64 --crop 224 \
  --seconds "$SECONDS_EACH" --json | tee >(cat >&2) | tail -n 1)

"$PYTHON" - "$convoy_json" "$torch_json" "$THREADS" <<'PY'
import json, sys
c, t, threads = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print()
print(f"{'pipeline':<34}{'images/s':>10}{'per thread':>12}")
print(f"{'convoy bench data':<34}{c['images_per_sec']:>10.0f}{c['images_per_sec_per_thread']:>12.0f}")
print(f"{'torchvision DataLoader':<34}{t['images_per_sec']:>10.0f}{t['images_per_sec_per_thread']:>12.0f}")
print(f"convoy / torchvision at {threads} thread(s): {c['images_per_sec'] / t['images_per_sec']:.2f}x")
PY
