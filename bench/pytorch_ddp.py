#!/usr/bin/env python3
"""PyTorch DistributedDataParallel training on an image folder, timed: the
peer of `convoy bench scaling`.

torchvision's resnet18, ImageFolder + RandomResizedCrop + RandomHorizontalFlip
+ ToTensor + Normalize, a DistributedSampler and a DataLoader with one worker
per rank, DDP over Gloo, SGD; optional bf16 autocast (with channels_last, as
Convoy's bench uses it; --channels-last also in float32). Starts its RANKS processes itself (Debian's torchrun
breaks on Python 3.11), each with THREADS torch threads. Rank 0 prints global
images/s over the measured steps; with --json the last line is one object.

usage: /usr/bin/python3 bench/pytorch_ddp.py DIR [--ranks 2] [--threads-per-rank 1]
       [--batch 32] [--image-size 112] [--steps 30] [--warmup 5] [--amp none|bf16]
       [--channels-last] [--json]
"""
import argparse
import json
import os
import socket
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torchvision
    from torchvision import datasets, transforms
except ImportError as e:
    sys.exit(f"pytorch_ddp: {e}; run it with /usr/bin/python3 (Debian's python3-torch, python3-torchvision)")


def rank_main(rank, args, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(args.ranks))
    torch.set_num_threads(args.threads_per_rank)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(args.image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = datasets.ImageFolder(args.dir, transform=tf)
    sampler = torch.utils.data.distributed.DistributedSampler(ds, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=sampler, num_workers=1,
                                         persistent_workers=True, drop_last=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(ds.classes))
    bf16 = args.amp == "bf16"
    channels_last = bf16 or args.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    total = args.warmup + args.steps
    done, epoch, start = 0, 0, None
    while done < total:
        sampler.set_epoch(epoch)
        epoch += 1
        for x, y in loader:
            if done == args.warmup:
                dist.barrier()
                start = time.perf_counter()
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == total:
                break
    dist.barrier()
    elapsed = time.perf_counter() - start
    if rank == 0:
        queue.put(args.steps * args.batch * args.ranks / elapsed)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads-per-rank", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--channels-last", action="store_true", help="also in float32 (bf16 always uses it)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, args, port, queue)) for r in range(args.ranks)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        sys.exit("pytorch_ddp: a rank failed")
    ips = queue.get()
    print(f"pytorch ddp: {args.ranks} rank(s) x {args.threads_per_rank} thread(s), batch {args.batch}, "
          f"{args.image_size} px, amp {args.amp}: {ips:.1f} images/s", flush=True)
    if args.json:
        print(json.dumps({"bench": "pytorch_ddp", "ranks": args.ranks, "images_per_sec": ips,
                          "batch": args.batch, "amp": args.amp}))


if __name__ == "__main__":
    main()
