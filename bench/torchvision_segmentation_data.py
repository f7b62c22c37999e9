#!/usr/bin/env python3
"""PyTorch's segmentation input pipeline, timed: the peer of `convoy bench
data` on a segmentation_folder set (image + mask).

A Dataset of (image, mask) file pairs (ROOT/train/*.jpg with
ROOT/trainannot/*.png, as bench/make_segmentation_set.py writes them), one
geometric draw applied to both with torchvision's functional transforms
(RandomResizedCrop's parameters, horizontal and vertical flip, a quarter
turn, a rotation of up to --degrees; the mask with nearest-neighbour), then
ColorJitter on the image, to uint8 tensors: what an SMP training script's
dataset does. DataLoader(batch, shuffle, num_workers=WORKERS). Prints
images/s; with --json the last line is one JSON object.

usage: /usr/bin/python3 bench/torchvision_segmentation_data.py ROOT
       [--workers 2] [--batch 16] [--crop 256] [--degrees 15] [--seconds 10] [--json]
"""
import argparse
import json
import os
import random
import sys

from loader_timing import time_loader

try:
    import torch
    from PIL import Image
    from torchvision import transforms
    import torchvision.transforms.functional as F
except ImportError as e:
    sys.exit(f"torchvision_segmentation_data: {e}; run it with /usr/bin/python3 "
             "(Debian's python3-torch and python3-torchvision)")


class Pairs(torch.utils.data.Dataset):
    def __init__(self, root, crop, degrees):
        images, masks = os.path.join(root, "train"), os.path.join(root, "trainannot")
        by_key = {os.path.splitext(m)[0]: os.path.join(masks, m) for m in os.listdir(masks)}
        self.items = [(os.path.join(images, f), by_key[os.path.splitext(f)[0]]) for f in sorted(os.listdir(images))]
        self.crop, self.degrees = crop, degrees
        self.jitter = transforms.ColorJitter(0.2, 0.2, 0.2, 0.05)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        image = Image.open(self.items[i][0]).convert("RGB")
        mask = Image.open(self.items[i][1])
        top, left, h, w = transforms.RandomResizedCrop.get_params(image, (0.25, 1.0), (3 / 4, 4 / 3))
        size = [self.crop, self.crop]
        image = F.resized_crop(image, top, left, h, w, size, F.InterpolationMode.BILINEAR)
        mask = F.resized_crop(mask, top, left, h, w, size, F.InterpolationMode.NEAREST)
        if random.random() < 0.5:
            image, mask = F.hflip(image), F.hflip(mask)
        if random.random() < 0.5:
            image, mask = F.vflip(image), F.vflip(mask)
        angle = 90 * random.randrange(4) + random.uniform(-self.degrees, self.degrees)
        image = F.rotate(image, angle, F.InterpolationMode.BILINEAR)
        mask = F.rotate(mask, angle, F.InterpolationMode.NEAREST, fill=255)
        image = self.jitter(image)
        return F.pil_to_tensor(image), torch.as_tensor(F.pil_to_tensor(mask)[0], dtype=torch.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--degrees", type=float, default=15)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ds = Pairs(args.root, args.crop, args.degrees)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0)
    print(f"torchvision segmentation data: {args.root}: {len(ds)} pairs, crop {args.crop}, batch {args.batch}, "
          f"{args.workers} DataLoader worker(s)", flush=True)
    images, elapsed = time_loader(loader, args.seconds)
    ips = images / elapsed
    print(f"torchvision segmentation data: {ips:.0f} images/s with {args.workers} worker(s); "
          f"{images} images in {elapsed:.1f} s", flush=True)
    if args.json:
        print(json.dumps({"images_per_sec": ips, "workers": args.workers, "images": images,
                          "seconds": elapsed, "crop": args.crop, "batch": args.batch}))


if __name__ == "__main__":
    main()
