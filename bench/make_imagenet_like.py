#!/usr/bin/env python3
"""Writes an ImageNet-like JPEG image folder for benchmarks, offline.

OUT/<class>/<class>_<i>.jpg, N classes x M images. Each image is a random
crop of one of the natural photos shipped in Debian's python3-skimage data
folder (the class picks the photo, so the set is learnable), rescaled to a
varied ImageNet-like size (shorter side 330-420, longer up to 640, about
480x410 on average; aspect ratios 3:4 to 16:9, both orientations), randomly
flipped, colour-jittered and given a little sensor grain, and saved as
baseline JPEG with 4:2:0 chroma at quality 90: what a typical ImageNet
training image looks like to a decoder.

usage: /usr/bin/python3 bench/make_imagenet_like.py OUT [--classes 10]
       [--per-class 100] [--quality 90] [--grain 6] [--seed 0]
"""
import argparse
import os
import random
import sys

try:
    import numpy as np
    from PIL import Image, ImageEnhance
    import skimage.data
except ImportError as e:  # the first python3 on PATH may lack them
    sys.exit(f"make_imagenet_like: {e}; run it with /usr/bin/python3 "
             "(Debian's python3-pil and python3-skimage)")

# Colour photographs of real scenes (skimage.data); small or synthetic
# images are left out.
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
          "motorcycle_left.png", "retina.jpg", "hubble_deep_field.jpg",
          "ihc.png", "motorcycle_right.png"]


# (w, h) aspect ratios seen in ImageNet, landscape-heavy like ImageNet.
ASPECTS = [(4, 3), (4, 3), (4, 3), (3, 2), (16, 9), (1, 1), (3, 4), (2, 3)]


def load_photos():
    folder = os.path.dirname(skimage.data.__file__)
    photos = []
    for name in PHOTOS:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            photos.append(Image.open(path).convert("RGB"))
    if not photos:
        sys.exit(f"make_imagenet_like: no photos found in {folder} (install python3-skimage)")
    return photos


def make_image(photo, rng, grain):
    aw, ah = rng.choice(ASPECTS)
    short = rng.randint(330, 420)
    w, h = (short * aw // ah, short) if aw >= ah else (short, short * ah // aw)
    w, h = min(w, 640), min(h, 640)
    # A random crop with the target's aspect ratio covering 35-100% of the photo.
    pw, ph = photo.size
    scale = rng.uniform(0.5, 1.0)
    cw = min(pw, int(pw * scale))
    ch = min(ph, int(cw * h / w))
    cw = min(cw, int(ch * w / h))
    x, y = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
    img = photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    # Sensor grain: real photos carry fine detail that smooth upscaled crops
    # lack, and it is what makes JPEG entropy decoding cost what it does.
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, grain, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grain", type=float, default=6.0,
                    help="std of the added sensor grain in 8-bit levels (default 6: "
                         "about 60 KB per image; 12 gives about 80 KB)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = load_photos()
    total = args.classes * args.per_class
    done = 0
    for c in range(args.classes):
        name = f"class_{c:03d}"
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        for i in range(args.per_class):
            img = make_image(photos[c % len(photos)], rng, args.grain)
            img.save(os.path.join(args.out, name, f"{name}_{i:05d}.jpg"), "JPEG",
                     quality=args.quality, subsampling="4:2:0", optimize=False)
            done += 1
            if done % 200 == 0 or done == total:
                print(f"\rmake_imagenet_like: {done}/{total} images", end="", flush=True)
    print(f"\nmake_imagenet_like: wrote {total} JPEGs to {args.out}")


if __name__ == "__main__":
    main()
