#!/usr/bin/env python3
"""PyTorch's input pipeline on an image folder, timed: the peer of
`convoy bench data`.

ImageFolder + RandomResizedCrop(CROP) + RandomHorizontalFlip + ToTensor +
Normalize, DataLoader(batch 64, shuffle, num_workers=WORKERS): what a
torchvision training script does. Prints images/s; with --json the last line
is one JSON object.

usage: /usr/bin/python3 bench/torchvision_data.py DIR [--workers N]
       [--batch 64] [--crop 224] [--seconds 10] [--json]
"""
import argparse
import json
import sys

from loader_timing import time_loader

try:
    import torch
    from torchvision import datasets, transforms
except ImportError as e:
    sys.exit(f"torchvision_data: {e}; run it with /usr/bin/python3 "
             "(Debian's python3-torch and python3-torchvision)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tf = transforms.Compose([
        transforms.RandomResizedCrop(args.crop),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = datasets.ImageFolder(args.dir, transform=tf)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, drop_last=False)
    print(f"torchvision data: {args.dir}: {len(ds)} images, crop {args.crop}, "
          f"batch {args.batch}, {args.workers} DataLoader worker(s)", flush=True)
    images, elapsed = time_loader(loader, args.seconds)
    ips = images / elapsed
    per = ips / max(args.workers, 1)
    print(f"torchvision data: {ips:.0f} images/s with {args.workers} worker(s) = "
          f"{per:.0f} images/s per worker; {images} images in {elapsed:.1f} s", flush=True)
    if args.json:
        print(json.dumps({"bench": "torchvision_data", "images_per_sec": ips,
                          "images_per_sec_per_thread": per, "threads": args.workers,
                          "images": images, "seconds": elapsed, "batch": args.batch,
                          "crop": args.crop}))


if __name__ == "__main__":
    main()
