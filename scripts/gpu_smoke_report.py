"""One-line results for scripts/gpu-smoke.sh's summary table, from the JSON
that Convoy's benchmarks print (standard library only).

usage: gpu_smoke_report.py allreduce JSON
       gpu_smoke_report.py train JSON RUN_DIR     (exit 1: a loss is not finite)
       gpu_smoke_report.py model CONVOY_JSON [TORCHVISION_JSON]
       gpu_smoke_report.py field JSON KEY
"""
import json
import math
import sys


def allreduce(j):
    r = j["results"]
    big, peak = r[-1], max(r, key=lambda x: x["busbw_gbps"])
    ok = "correct" if j.get("correct") else "NOT CHECKED"
    return (f"{j['backend']} {ok} at all {len(r)} sizes; busbw {big['busbw_gbps']:.1f} GB/s at "
            f"{big['bytes'] >> 20} MB, peak {peak['busbw_gbps']:.1f} GB/s")


def train(j, run_dir):
    out, finite = [], True
    for r in j["results"]:
        losses, skipped = [], 0
        with open(f"{run_dir}/ranks-{r['ranks']}/metrics.jsonl") as f:
            for line in f:
                e = json.loads(line)
                if e.get("event") == "train":
                    losses.append(e["loss"])
                    skipped = e.get("skipped_steps", skipped)
        if not losses or not all(math.isfinite(x) for x in losses):
            finite = False
        text = f"{r['ranks']} rank(s): {r['images_per_sec']:.0f} img/s"
        if losses:
            text += f", loss {losses[0]:.2f} -> {losses[-1]:.2f}"
        if skipped:
            text += f" ({skipped} fp16 steps skipped)"
        out.append(text)
    return "; ".join(out) + ("" if finite else "; NON-FINITE LOSS"), finite


def model(c, t):
    s = f"convoy {c['images_per_sec']:.0f} img/s on {c['device']}"
    if t:
        s += f"; torchvision {t['images_per_sec']:.0f} img/s ({c['images_per_sec'] / t['images_per_sec']:.2f}x)"
    return s


def main():
    what, args = sys.argv[1], sys.argv[2:]
    if what == "allreduce":
        print(allreduce(json.loads(args[0])))
    elif what == "train":
        text, finite = train(json.loads(args[0]), args[1])
        print(text)
        sys.exit(0 if finite else 1)
    elif what == "model":
        print(model(json.loads(args[0]), json.loads(args[1]) if len(args) > 1 and args[1] else None))
    elif what == "field":
        print(json.loads(args[0])[args[1]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
