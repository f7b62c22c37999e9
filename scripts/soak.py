#!/usr/bin/python3
"""Soak test (not in CI): train for about M minutes under
`convoy launch --max-restarts` while SIGKILLing a random process of the run (a
worker or the data service) at random times, then report the restarts, the
steps each restart had to replay (never more than the checkpoint interval),
and the final accuracy.

usage: /usr/bin/python3 scripts/soak.py [--minutes 15] [--config configs/fashion_mnist.pbtxt]
           [--kill-min 20] [--kill-max 80] [--checkpoint-every-steps 50] [--run-dir DIR] [--seed S]
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_processes(run_dir):
    """(pid, role) of the run's workers and data service."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"CONVOY_RUN_DIR={run_dir}".encode() in env and len(cmd) > 1 and cmd[1] in (b"worker", b"data-service"):
            out.append((int(pid), cmd[1].decode()))
    return out


def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "fashion_mnist.pbtxt"))
    ap.add_argument("--kill-min", type=float, default=20, help="shortest time between kills, s")
    ap.add_argument("--kill-max", type=float, default=80, help="longest time between kills, s")
    ap.add_argument("--checkpoint-every-steps", type=int, default=50)
    ap.add_argument("--seconds-per-epoch", type=float, default=25, help="to size the run to --minutes (measured: ~25 s)")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    epochs = max(1, round(args.minutes * 60 / args.seconds_per_epoch))
    run_dir = os.path.abspath(args.run_dir or os.path.join(ROOT, "runs", f"soak-{time.strftime('%Y%m%d-%H%M%S')}"))
    binary = os.path.join(ROOT, "build", "convoy")
    cmd = [binary, "launch", "--nproc-per-node", "2", args.config, "--run-dir", run_dir, "--max-restarts", "1000",
           "--checkpoint-every-steps", str(args.checkpoint_every_steps), "--set", f"train.epochs={epochs}",
           "--set", "train.log_every_steps=1"]
    print(f"soak: {epochs} epochs, kills every {args.kill_min:.0f}-{args.kill_max:.0f} s, run directory {run_dir}",
          flush=True)
    t0 = time.time()
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    log = open(os.path.join(os.path.dirname(run_dir), os.path.basename(run_dir) + ".log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    kills = []
    kill_until = t0 + args.minutes * 60 * 0.85
    next_kill = t0 + rng.uniform(args.kill_min, args.kill_max)
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.time()
            if now < next_kill or now > kill_until:
                continue
            victims = run_processes(run_dir)
            if victims:
                pid, role = rng.choice(victims)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append((round(now - t0, 1), role, pid))
                    print(f"soak: t={now - t0:.0f}s killed {role} (pid {pid})", flush=True)
                except ProcessLookupError:
                    pass
            next_kill = now + rng.uniform(args.kill_min, args.kill_max)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
    proc.wait()
    wall = time.time() - t0

    metrics = read_metrics(run_dir)
    restarts = [m for m in metrics if m["event"] == "restart"]
    # Steps replayed by each restart: the last step taken before it, minus
    # the step its checkpoint resumed from.
    replayed, last_step = [], 0
    for m in metrics:
        if m["event"] == "train":
            last_step = max(last_step, m["step"])
        elif m["event"] == "resume":
            replayed.append(last_step - m["step"])
    lost_beyond_interval = [r for r in replayed if r > args.checkpoint_every_steps]
    evals = [m for m in metrics if m["event"] == "eval" and m["split"] == "test"]
    end = [m for m in metrics if m["event"] == "end"]
    report = {
        "exit_code": proc.returncode,
        "wall_minutes": round(wall / 60, 1),
        "epochs": epochs,
        "kills": len(kills),
        "killed": [f"{role}@{t}s" for t, role, _ in kills],
        "restarts": len(restarts),
        "steps_replayed_per_restart": replayed,
        "checkpoint_interval_steps": args.checkpoint_every_steps,
        "restarts_losing_more_than_the_interval": len(lost_beyond_interval),
        "final_step": end[-1]["global_step"] if end else None,
        "final_test_accuracy": evals[-1]["accuracy"] if evals else None,
        "param_checksum": end[-1]["param_checksum"] if end else None,
        "leftover_processes": len(run_processes(run_dir)),
        "leftover_shm": len([n for n in os.listdir("/dev/shm") if n.startswith("convoy-")]),
    }
    print(json.dumps(report, indent=2))
    ok = proc.returncode == 0 and not lost_beyond_interval and report["leftover_processes"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
