#!/usr/bin/env python3
"""Writes a semantic-segmentation data set, offline, from the natural photos
shipped in Debian's python3-skimage data folder.

Each image is a crop of one photo (the background) with 1-4 objects pasted
on it. An object is a random smooth shape (a blob whose radius is a sum of a
few random sines) cut out of another photo: each class takes its texture
from its own photo, so the classes can be told apart by what is inside the
shape, not only by its outline. Objects vary in scale (10-45% of the shorter
side), overlap (a later object occludes an earlier one, and the mask says
so) and are colour-jittered. Masks are 8-bit PNGs of class ids (0 is the
background), laid out as Convoy's segmentation_folder reads them:

  OUT/train/ OUT/trainannot/ OUT/val/ OUT/valannot/ OUT/test/ OUT/testannot/

Images are JPEG (quality 90), 256-384 pixels a side.

usage: /usr/bin/python3 bench/make_segmentation_set.py OUT [--train 600]
       [--val 100] [--test 100] [--classes 3] [--seed 0]
"""
import argparse
import math
import os
import random
import sys

try:
    import numpy as np
    from PIL import Image, ImageEnhance
    import skimage.data
except ImportError as e:  # the first python3 on PATH may lack them
    sys.exit(f"make_segmentation_set: {e}; run it with /usr/bin/python3 "
             "(Debian's python3-pil and python3-skimage)")

BACKGROUNDS = ["coffee.png", "chelsea.png", "astronaut.png", "motorcycle_left.png", "rocket.jpg"]
# One texture source per object class, in class order.
OBJECTS = ["hubble_deep_field.jpg", "retina.jpg", "ihc.png", "motorcycle_right.png"]


def load(names):
    folder = os.path.dirname(skimage.data.__file__)
    out = []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            sys.exit(f"make_segmentation_set: {path} is missing (install python3-skimage)")
        out.append(Image.open(path).convert("RGB"))
    return out


def crop(photo, w, h, rng):
    """A random crop of `photo` with w:h's aspect, covering 40-100% of it, at w x h."""
    pw, ph = photo.size
    scale = rng.uniform(0.4, 1.0)
    cw = max(8, min(pw, int(pw * scale)))
    ch = max(8, min(ph, int(cw * h / w)))
    cw = min(cw, int(ch * w / h))
    x, y = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
    img = photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def blob(size, rng):
    """A boolean size x size mask of a smooth random shape around the centre."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    angle, radius = np.arctan2(yy, xx), np.hypot(xx, yy)
    edge = np.full_like(angle, 0.62)
    for k in range(2, 6):  # a few lobes; small amplitudes keep it one piece
        edge += rng.uniform(0.02, 0.12) / k * np.sin(k * angle + rng.uniform(0, 2 * math.pi))
    return radius <= edge * (size / 2)


def make_sample(backgrounds, objects, size, rng):
    w, h = size
    image = crop(rng.choice(backgrounds), w, h, rng)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    pixels = np.asarray(image, np.uint8).copy()
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.randint(1, 4)):
        cls = rng.randrange(len(objects))
        side = int(min(w, h) * rng.uniform(0.10, 0.45))
        shape = blob(side, rng)
        texture = crop(objects[cls], side, side, rng)
        texture = ImageEnhance.Color(texture).enhance(rng.uniform(0.8, 1.2))
        tex = np.asarray(texture, np.uint8)
        x, y = rng.randint(-side // 4, w - 3 * side // 4), rng.randint(-side // 4, h - 3 * side // 4)
        # Paste the shape's part that falls inside the image.
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, w), min(y + side, h)
        if x1 <= x0 or y1 <= y0:
            continue
        s = shape[y0 - y:y1 - y, x0 - x:x1 - x]
        pixels[y0:y1, x0:x1][s] = tex[y0 - y:y1 - y, x0 - x:x1 - x][s]
        mask[y0:y1, x0:x1][s] = cls + 1
    grain = np.random.default_rng(rng.getrandbits(32)).normal(0, 4, pixels.shape)
    pixels = np.clip(pixels.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), Image.fromarray(mask)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--classes", type=int, default=3, help="object classes besides the background (1-4)")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.classes <= len(OBJECTS):
        sys.exit(f"make_segmentation_set: --classes must be 1..{len(OBJECTS)}")
    backgrounds, objects = load(BACKGROUNDS), load(OBJECTS[:args.classes])
    rng = random.Random(args.seed)
    for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
        if count == 0:  # no folder: Convoy holds val out of train instead
            continue
        os.makedirs(os.path.join(args.out, split), exist_ok=True)
        os.makedirs(os.path.join(args.out, split + "annot"), exist_ok=True)
        for i in range(count):
            size = (rng.randint(256, 384), rng.randint(256, 384))
            image, mask = make_sample(backgrounds, objects, size, rng)
            name = f"{split}_{i:05d}"
            image.save(os.path.join(args.out, split, name + ".jpg"), quality=args.quality)
            mask.save(os.path.join(args.out, split + "annot", name + ".png"))
    names = ["background"] + [os.path.splitext(o)[0] for o in OBJECTS[:args.classes]]
    with open(os.path.join(args.out, "classes.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"{args.out}: {args.train}/{args.val}/{args.test} images, classes {', '.join(names)}")


if __name__ == "__main__":
    main()
