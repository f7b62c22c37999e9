#!/usr/bin/env bash
# Convoy's segmentation input pipeline (image + mask) side by side with a
# PyTorch DataLoader doing the same with torchvision's functional
# transforms, on the same segmentation set, one after the other in one go:
# random-resized-crop 256 (scale 0.25-1), horizontal and vertical flip, a
# quarter turn, a rotation up to 15 degrees (the mask nearest-neighbour),
# colour jitter on the image; batch 16; THREADS decode threads / DataLoader
# workers.
#
# usage: bench/segmentation_data_vs_torchvision.sh ROOT [THREADS] [SECONDS]
#   ROOT     a segmentation set, e.g. from bench/make_segmentation_set.py
#   THREADS  default: 2
#   SECONDS  measuring time of each side (default 20)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_init "$@"
ROOT=$(realpath "$1")
THREADS=${2:-2}
SECONDS_EACH=${3:-20}
classes=$(wc -l < "$ROOT/classes.txt")

config=$(mktemp --suffix=.pbtxt)
trap 'rm -f "$config"' EXIT
cat > "$config" <<PBTXT
data {
  segmentation_folder { root: "$ROOT" mask_values: [$(seq -s, 0 $((classes - 1)))] }
  batch_size: 16
  image { height: 256 width: 256 channels: 3 }
  train_augment {
    random_resized_crop: true rrc_scale_min: 0.25
    horizontal_flip: true vertical_flip: true rotate90: true rotate_degrees: 15
    brightness: 0.2 contrast: 0.2 saturation: 0.2 hue: 0.05
  }
}
model { arch: "unet" }  # what reads such data (no model runs in bench data)
PBTXT

# Both read the set once first, so neither pays for a cold page cache.
cat "$ROOT"/train/* "$ROOT"/trainannot/* > /dev/null

convoy_json=$("$CONVOY" bench data "$config" --threads "$THREADS" --seconds "$SECONDS_EACH" --json \
  | tee >(cat >&2) | tail -n 1)
torch_json=$("$PYTHON" bench/torchvision_segmentation_data.py "$ROOT" --workers "$THREADS" --batch 16 --crop 256 \
  --seconds "$SECONDS_EACH" --json | tee >(cat >&2) | tail -n 1)

"$PYTHON" - "$convoy_json" "$torch_json" "$THREADS" <<'PY'
import json, sys
c, t, threads = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print()
print(f"{'pipeline (image + mask, 256 px)':<36}{'images/s':>10}")
print(f"{'convoy bench data':<36}{c['images_per_sec']:>10.0f}")
print(f"{'torchvision DataLoader':<36}{t['images_per_sec']:>10.0f}")
print(f"convoy / torchvision at {threads} thread(s): {c['images_per_sec'] / t['images_per_sec']:.2f}x")
PY
