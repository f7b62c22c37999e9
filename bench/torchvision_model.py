#!/usr/bin/python3
"""torchvision's side of bench/model_vs_torchvision.sh: forward + backward
images/s of one torchvision model on random input, exactly as
`convoy bench model` measures Convoy's (cross-entropy on random labels,
gradients zeroed each step, no optimizer step)."""
import argparse
import json
import time

import torch
import torchvision


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the first GPU)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    kwargs = {"num_classes": a.classes}
    if a.arch.startswith("vit_"):
        kwargs["image_size"] = a.image_size
    dev = torch.device(a.device)
    model = getattr(torchvision.models, a.arch)(**kwargs).to(dev)
    x = torch.randn(a.batch, 3, a.image_size, a.image_size, device=dev)
    y = torch.randint(a.classes, (a.batch,), device=dev)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()

    def step():
        model.zero_grad(set_to_none=False)
        with torch.autocast(dev.type, dtype=torch.float16 if a.amp == "fp16" else torch.bfloat16,
                            enabled=a.amp != "none"):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    s = time.perf_counter() - t0
    ips = a.batch * a.steps / s
    print(f"torchvision {a.arch} on {a.device}: batch {a.batch}, {a.image_size}x{a.image_size}, {torch.get_num_threads()} "
          f"thread(s), amp {a.amp}{', channels_last' if a.channels_last else ''}: {ips:.1f} images/s "
          f"({1e3 * s / a.steps:.1f} ms/step)")
    if a.json:
        print(json.dumps({"arch": a.arch, "batch": a.batch, "image_size": a.image_size,
                          "threads": torch.get_num_threads(), "device": a.device, "amp": a.amp, "channels_last": a.channels_last,
                          "images_per_sec": ips, "ms_per_step": 1e3 * s / a.steps}))


if __name__ == "__main__":
    main()
