"""`convoy launch`: a 2-rank run on a generated JPEG folder, the run
directory it leaves, and what happens when a worker dies or the launcher
is interrupted. (Restarts, preemption and resume: test_faults.py.)"""
import os
import signal
import subprocess
import unittest

from helpers import (BIN, SOURCE_DIR, TempDirMixin, has_train_line, make_folder, processes_mentioning,
                     rank_pid, read_metrics, run, shm_segments, wait_for, write_config)


def cpu_has_native_bf16():
    """What models/hardware.cpp decides, from the flags the kernels see."""
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")
    capped = onednn.upper() in ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                                "AVX512_MIC", "AVX512_MIC_4OPS") or \
        os.environ.get("ATEN_CPU_CAPABILITY", "") in ("default", "avx2")
    return ("avx512_bf16" in flags or "amx_bf16" in flags) and not capped


class LaunchTest(TempDirMixin, unittest.TestCase):
    def setUp(self):
        self.tmp = self.make_tmp()
        self.root = make_folder(os.path.join(self.tmp, "images"))
        self.shm_before = shm_segments()

    def assert_clean(self, run_dir):
        wait_for(lambda: not processes_mentioning(run_dir), 15, "no process of the run left")
        self.assertEqual(shm_segments() - self.shm_before, set(), "leftover /dev/shm segments")

    def test_two_ranks_learn_and_fill_the_run_directory(self):
        cfg = write_config(self.tmp, self.root, epochs=4)
        run_dir = os.path.join(self.tmp, "run")
        r = run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        for f in ["config.pbtxt", "metrics.jsonl", "checkpoints/best.ckpt", "report.html"]:
            self.assertTrue(os.path.exists(os.path.join(run_dir, f)), f)
        # One checkpoint per epoch end (8 steps each); the last 3 are kept.
        self.assertEqual(sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.startswith("step-")),
                         ["step-0000000016.ckpt", "step-0000000024.ckpt", "step-0000000032.ckpt"])
        with open(os.path.join(run_dir, "config.pbtxt")) as f:
            self.assertIn(self.root, f.read(), "resolved config keeps absolute dataset paths")
        metrics = read_metrics(run_dir)
        train = [m for m in metrics if m["event"] == "train"]
        evals = [m for m in metrics if m["event"] == "eval"]
        self.assertGreaterEqual(len(train), 8)
        for m in train:
            self.assertEqual(set(m), {"event", "epoch", "step", "loss", "lr", "images_per_sec", "breakdown_ms",
                                      "allreduce_total_ms", "data_shards"})
            self.assertGreater(m["images_per_sec"], 0)
            self.assertEqual(set(m["breakdown_ms"]), {"data_wait", "forward", "backward", "exposed_comm", "optimizer"})
        self.assertEqual([(m["epoch"], m["split"]) for m in evals], [(e, "val") for e in range(1, 5)])
        self.assertEqual(evals[0]["samples"], 32, "val is 20% of 160 images, each counted once")
        first = sum(m["loss"] for m in train[:3]) / 3
        last = sum(m["loss"] for m in train[-3:]) / 3
        self.assertLess(last, first * 0.8, f"loss should fall: {first:.3f} -> {last:.3f}")
        self.assertGreater(evals[-1]["accuracy"], 0.5, "4 easy classes: well above chance")
        # Every line of the children is tagged with its role and rank.
        out = r.stdout + r.stderr
        for tag in ["[worker 0]", "[worker 1]", "[data]"]:
            self.assertIn(tag, out)
        self.assertIn("epoch 4/4", out)
        self.assertIn("gradient all-reduce: shared memory (2 ranks on this host)", out)
        self.assert_clean(run_dir)

    def test_time_based_checkpoints_come_mid_epoch_at_their_interval(self):
        """train.checkpoint_every_minutes: besides each epoch end's, a step
        checkpoint whenever that long has passed since the last one, in the
        middle of an epoch too (without the setting there are none there:
        the test above)."""
        cfg = write_config(self.tmp, self.root, epochs=3)
        run_dir = os.path.join(self.tmp, "timed")
        interval = 0.1  # seconds
        r = run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir,
                 "--set", f"train.checkpoint_every_minutes={interval / 60}", "--set", "train.keep_checkpoints=1000",
                 "--set", "data.image.height=96", "--set", "data.image.width=96", "--set", "data.batch_size=2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        steps = read_metrics(run_dir)[0]["steps_per_epoch"]
        folder = os.path.join(run_dir, "checkpoints")
        written = {int(f[5:15]): os.path.getmtime(os.path.join(folder, f))
                   for f in os.listdir(folder) if f.startswith("step-")}
        ordered = sorted(written)
        mid_epoch = [s for s in ordered if s % steps]
        self.assertGreaterEqual(len(mid_epoch), 2, ordered)
        self.assertEqual([s for s in ordered if s % steps == 0], [steps * e for e in range(1, 4)])
        for before, step in zip(ordered, ordered[1:]):
            if step % steps:
                self.assertGreaterEqual(written[step] - written[before], interval, (before, step))
        self.assert_clean(run_dir)

    def test_default_config_runs_a_few_steps(self):
        run_dir = os.path.join(self.tmp, "fmnist")
        cfg = os.path.join(SOURCE_DIR, "configs", "fashion_mnist.pbtxt")
        r = run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir, "--set", "train.epochs=1",
                 "--set", "train.max_steps_per_epoch=20"])
        self.assertEqual(r.returncode, 0, r.stderr)
        evals = {m["split"]: m for m in read_metrics(run_dir) if m["event"] == "eval"}
        self.assertEqual(evals["test"]["samples"], 10000, "all of Fashion-MNIST's test images")
        self.assertEqual(evals["val"]["samples"], 3000)
        self.assertGreater(evals["test"]["accuracy"], 0.3)
        # The shipped config leaves precision and layout to the hardware:
        # bf16 only where this CPU computes it natively.
        amp = "bf16" if cpu_has_native_bf16() else "none"
        out = r.stdout + r.stderr
        self.assertRegex(out, rf"\[worker 0\] .* amp auto -> {amp}: ")
        self.assertIn("channels_last auto -> true: ", out)
        self.assertIn("conv_algorithm auto -> ", out)
        start = [m for m in read_metrics(run_dir) if m["event"] == "start"][0]
        self.assertEqual((start["amp"], start["channels_last"]), (amp, True))
        self.assert_clean(run_dir)

    def start_long_run(self):
        cfg = write_config(self.tmp, self.root, epochs=1000)
        run_dir = os.path.join(self.tmp, "long")
        proc = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: has_train_line(run_dir), 120, "training to start")
        return proc, run_dir

    def test_dead_worker_stops_the_group(self):
        proc, run_dir = self.start_long_run()
        victim = rank_pid(run_dir, 1)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        last = err.strip().splitlines()[-1]
        self.assertIn(f"worker 1 (pid {victim}) failed with killed by signal 9 (SIGKILL)", last)
        self.assert_clean(run_dir)

    def test_sigint_to_launcher_stops_everything_at_once(self):
        proc, run_dir = self.start_long_run()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 128 + signal.SIGINT, err[-2000:])
        self.assert_clean(run_dir)


if __name__ == "__main__":
    unittest.main()
