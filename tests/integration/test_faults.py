"""Fault injection: a killed worker and a killed data service with restarts,
SIGTERM then --resume, a stopped (SIGSTOP) rank, corrupt images of every
kind, and torn checkpoints. Each test ends with no process of the run and no
/dev/shm segment left."""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from helpers import (BIN, TempDirMixin, make_folder, processes_mentioning, rank_pid, read_metrics, run, shm_segments,
                     socket_files, subcommand_pids, wait_for, write_config)

# 64x64 images and a wider CNN: ~20-40 ms a step, so a fault lands mid-run.
FAULT_CONFIG = """
seed: 7
device: "cpu"
data {{
  image_folder {{ root: "{root}" }}
  val_fraction: 0.2
  batch_size: 8
  image {{ height: 64 width: 64 channels: 3 }}
  train_augment {{ random_resized_crop: true horizontal_flip: true }}
}}
model {{ arch: "cnn" width: 16 dropout: 0.2 }}
optim {{ optimizer: "sgd" lr: 0.02 momentum: 0.9 schedule: "cosine" warmup_epochs: 1 }}
train {{ epochs: {epochs} log_every_steps: 1 threads_per_rank: 1 checkpoint_every_steps: 4 keep_checkpoints: 3
         stop_grace_s: 60 }}
data_service {{ decode_threads: 1 timeout_s: {timeout} }}
distributed {{ timeout_s: {timeout} }}
"""


def test_rng(test):
    """The random draws of a fault test (where to kill, when to stop), seeded
    from CONVOY_TEST_SEED when set, else at random; the seed is printed, so
    a failing run can be repeated exactly."""
    seed = int(os.environ.get("CONVOY_TEST_SEED") or random.randrange(1 << 31))
    print(f"{test.id()}: CONVOY_TEST_SEED={seed}", file=sys.stderr)
    return random.Random(seed)


def train_losses(metrics, after_resume=False):
    """{global step: loss} of train lines (from the last resume on, if asked)."""
    if after_resume:
        last = max(i for i, m in enumerate(metrics) if m["event"] == "resume")
        metrics = metrics[last:]
    return {m["step"]: m["loss"] for m in metrics if m["event"] == "train"}


def end_event(metrics):
    ends = [m for m in metrics if m["event"] == "end"]
    return ends[-1] if ends else None


def latest_step(run_dir):
    steps = [m["step"] for m in read_metrics(run_dir) if m["event"] == "train"] if os.path.exists(
        os.path.join(run_dir, "metrics.jsonl")) else []
    return max(steps) if steps else -1


def data_service_pid(run_dir, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = subcommand_pids(run_dir, "data-service")
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError("no data service found")


class FaultTest(TempDirMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="convoy-faults-")
        cls.root = make_folder(os.path.join(cls._tmp.name, "images"), classes=4, per_class=30, min_side=70,
                               max_side=90)
        cls.baseline_dir = os.path.join(cls._tmp.name, "baseline")
        cls.config = cls.write_config(cls._tmp.name, "faults.pbtxt", epochs=5)
        r = run(["launch", "--nproc-per-node", "2", cls.config, "--run-dir", cls.baseline_dir], timeout=300)
        assert r.returncode == 0, r.stderr
        cls.baseline = read_metrics(cls.baseline_dir)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def write_config(cls, directory, name, epochs, timeout=60, root=None, batch_size=8):
        text = FAULT_CONFIG.format(root=root or cls.root, epochs=epochs, timeout=timeout)
        return write_config(directory, root or cls.root, name=name,
                            text=text.replace("batch_size: 8", f"batch_size: {batch_size}"))

    def setUp(self):
        self.tmp = self.make_tmp()
        self.shm_before = shm_segments()
        self.sockets_before = socket_files()

    def assert_clean(self, run_dir):
        wait_for(lambda: not processes_mentioning(run_dir), 20, "no process of the run left")
        self.assertEqual(shm_segments() - self.shm_before, set(), "leftover /dev/shm segments")
        self.assertEqual(socket_files() - self.sockets_before, set(), "leftover data-service sockets")

    def launch(self, run_dir, *extra):
        proc = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir, *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def test_baseline_is_reproducible(self):
        run_dir = os.path.join(self.tmp, "again")
        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(end_event(read_metrics(run_dir))["param_checksum"], end_event(self.baseline)["param_checksum"])
        self.assert_clean(run_dir)

    def test_killed_worker_then_data_service_restart_to_the_same_weights(self):
        run_dir = os.path.join(self.tmp, "faulted")
        total = end_event(self.baseline)["global_step"]
        rng = test_rng(self)
        first, second = rng.randint(3, total // 3), rng.randint(total // 2, 2 * total // 3)
        where = f"(killed at steps {first} and {second})"
        proc = self.launch(run_dir, "--max-restarts", "2")
        wait_for(lambda: latest_step(run_dir) >= first, 120, f"step {first}")
        os.kill(rank_pid(run_dir, 1), signal.SIGKILL)
        # A kill before the first checkpoint restarts from scratch (no
        # "resume" event): wait for the second group's start instead.
        wait_for(lambda: len([m for m in read_metrics(run_dir) if m["event"] == "start"]) >= 2, 120,
                 f"the first restart {where}")
        wait_for(lambda: latest_step(run_dir) >= second, 120, f"step {second} {where}")
        os.kill(data_service_pid(run_dir), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, where + err[-3000:])
        metrics = read_metrics(run_dir)
        # The worker's death restarts the group; the data service's death
        # restarts only the data service (the workers wait and re-ask it).
        restarts = [m for m in metrics if m["event"] == "restart"]
        self.assertEqual([m["attempt"] for m in restarts], [1], where + err[-3000:])
        self.assertIn("worker 1", restarts[0]["reason"])
        self.assertIn("SIGKILL", restarts[0]["reason"])
        service_restarts = [m for m in metrics if m["event"] == "data_service_restart"]
        self.assertEqual(len(service_restarts), 1, where + err[-3000:])
        self.assertIn("data", service_restarts[0]["reason"])
        self.assertEqual(end_event(metrics)["param_checksum"], end_event(self.baseline)["param_checksum"], where)
        self.assert_clean(run_dir)

    def test_restarts_are_bounded(self):
        run_dir = os.path.join(self.tmp, "bounded")

        def starts():
            if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
                return 0
            return len([m for m in read_metrics(run_dir) if m["event"] == "start"])

        proc = self.launch(run_dir, "--max-restarts", "1")
        wait_for(lambda: latest_step(run_dir) >= 2, 120, "training")
        os.kill(rank_pid(run_dir, 0), signal.SIGKILL)
        wait_for(lambda: starts() >= 2, 120, "the restarted group")
        os.kill(rank_pid(run_dir, 0), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("giving up after 1 restart(s): worker 0", err.strip().splitlines()[-1])
        self.assertEqual(len([m for m in read_metrics(run_dir) if m["event"] == "restart"]), 1)
        self.assert_clean(run_dir)

    def test_restart_survives_the_binary_being_replaced(self):
        """A rebuild during a run replaces build/convoy; restarts re-exec the
        launcher's own image (/proc/self/exe), not the path on disk."""
        binary = os.path.join(self.tmp, "convoy-copy")
        shutil.copy2(BIN, binary)
        run_dir = os.path.join(self.tmp, "rebuilt")
        proc = subprocess.Popen([binary, "launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir,
                                 "--max-restarts", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: latest_step(run_dir) >= 3, 120, "training")
        os.unlink(binary)
        os.kill(rank_pid(run_dir, 1), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        metrics = read_metrics(run_dir)
        self.assertEqual(len([m for m in metrics if m["event"] == "restart"]), 1)
        self.assertEqual(end_event(metrics)["param_checksum"], end_event(self.baseline)["param_checksum"])
        self.assert_clean(run_dir)

    def sigterm_then_resume(self, name, baseline, *sets):
        """SIGTERM at a random step, then --resume auto: the resumed steps'
        losses and the final weights are `baseline`'s."""
        run_dir = os.path.join(self.tmp, name)
        total = end_event(baseline)["global_step"]
        stop_at = test_rng(self).randint(5, total - 10)
        proc = self.launch(run_dir, *sets)
        wait_for(lambda: latest_step(run_dir) >= stop_at, 120, f"step {stop_at}")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        self.assertLess(time.time() - t0, 30, "preemption takes one step plus a checkpoint")
        self.assertIn("stop requested: checkpoint at", err)
        self.assert_clean(run_dir)
        stopped_at = latest_step(run_dir)
        self.assertLess(stopped_at, total, "stopped before the end")

        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir, "--resume", "auto", *sets])
        self.assertEqual(r.returncode, 0, r.stderr)
        metrics = read_metrics(run_dir)
        resumed = train_losses(metrics, after_resume=True)
        expected = train_losses(baseline)
        self.assertEqual(min(resumed), stopped_at + 1, "resumes right after the last step taken")
        self.assertEqual(max(resumed), total)
        for step, loss in resumed.items():
            self.assertEqual(loss, expected[step], f"loss at step {step}")
        self.assertEqual(end_event(metrics)["param_checksum"], end_event(baseline)["param_checksum"])
        self.assert_clean(run_dir)

    def test_sigterm_then_resume_repeats_the_same_losses(self):
        self.sigterm_then_resume("preempted", self.baseline)

    def test_resume_is_exact_with_loss_scaling_and_accumulation(self):
        """The same with dynamic loss scaling (its scale and count of good
        steps travel in the checkpoint) and 2 micro-batches per step (the
        checkpoint falls between optimizer steps, never inside one)."""
        sets = ("--set", "train.loss_scaling=dynamic", "--set", "train.accumulation_steps=2")
        base_dir = os.path.join(self.tmp, "scaled")
        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", base_dir, *sets], timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        baseline = read_metrics(base_dir)
        self.assertTrue(all(m.get("loss_scale") == 65536 for m in baseline if m["event"] == "train"),
                        "dynamic loss scaling was on")
        self.sigterm_then_resume("scaled-preempted", baseline, *sets)

    def test_stopped_rank_makes_the_others_fail_within_the_timeout(self):
        timeout = 5
        config = self.write_config(self.tmp, "short.pbtxt", epochs=50, timeout=timeout)
        # The data service's own backstop ("rank 1 stopped taking batches")
        # far off: the collective's timeout is what must catch a stopped rank.
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace(f"decode_threads: 1 timeout_s: {timeout} ", "decode_threads: 1 timeout_s: 120 "))
        run_dir = os.path.join(self.tmp, "sigstop")
        proc = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", config, "--run-dir", run_dir],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: latest_step(run_dir) >= 3, 120, "training")
        victim = rank_pid(run_dir, 1)
        os.kill(victim, signal.SIGSTOP)
        t0 = time.time()
        out, err = proc.communicate(timeout=timeout + 60)
        elapsed = time.time() - t0
        self.assertNotEqual(proc.returncode, 0)
        # distributed.timeout_s's promise: the error at the timeout (the
        # heartbeats are already known), then the launcher's settling and stop.
        self.assertLess(elapsed, timeout + 3, err[-2000:])
        last = err.strip().splitlines()[-1]
        # Rank 0 waits in one of the step's collectives (the gradients', or
        # the logged loss's), and the store's heartbeats name rank 1.
        self.assertRegex(last, r"rank 0: [^:]+ at step \d+ failed: .*\(after 5 s: rank 1 stopped answering", last)
        self.assert_clean(run_dir)

    def test_corrupt_images_of_every_kind_are_skipped_and_counted(self):
        root = os.path.join(self.tmp, "images")
        make_folder(root, classes=4, per_class=10, min_side=40, max_side=60)
        good = os.path.join(root, "class_0", "img_1.jpg")
        data = open(good, "rb").read()
        bad = {
            "class_0/truncated.jpg": data[: len(data) // 2],
            "class_1/garbage.jpg": b"\xff\xd8\xff\xe0 not really a JPEG" * 10,
            "class_2/empty.jpg": b"",
            "class_3/text.png": b"this is a text file with a .png name\n",
        }
        for rel, content in bad.items():
            with open(os.path.join(root, rel), "wb") as f:
                f.write(content)
        os.symlink(os.path.join(root, "does-not-exist.jpg"), os.path.join(root, "class_1", "unreadable.jpg"))
        with open(os.path.join(root, "class_2", "notes.txt"), "w") as f:
            f.write("not an image name: ignored, not counted\n")
        # 45 files: 9 held out for val, 36 train = 3 global batches of 12, so
        # every file is drawn exactly once per epoch.
        config = self.write_config(self.tmp, "corrupt.pbtxt", epochs=2, root=root, batch_size=6)
        run_dir = os.path.join(self.tmp, "corrupt")
        r = run(["launch", "--nproc-per-node", "2", config, "--run-dir", run_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [m for m in read_metrics(run_dir) if m["event"] == "data_errors"]
        self.assertEqual([(m["epoch"], m["count"]) for m in events], [(1, 5), (2, 5)])
        self.assertTrue(all(os.path.basename(e).split(".")[0] in {"truncated", "garbage", "empty", "text",
                                                                   "unreadable"} for e in events[0]["examples"]))
        # Logged once each, however often drawn.
        for name in ["truncated.jpg", "garbage.jpg", "empty.jpg", "text.png", "unreadable.jpg"]:
            logged = [line for line in r.stderr.splitlines() if "skipping corrupt image" in line and name in line]
            self.assertEqual(len(logged), 1, name)
        self.assert_clean(run_dir)

    def test_torn_newest_checkpoint_falls_back_to_the_previous(self):
        run_dir = os.path.join(self.tmp, "torn")
        shutil.copytree(self.baseline_dir, run_dir)
        ckpts = sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.startswith("step-"))
        newest, previous = ckpts[-1], ckpts[-2]
        path = os.path.join(run_dir, "checkpoints", newest)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        flipped = os.path.join(run_dir, "checkpoints", previous)
        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir, "--resume", "auto"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"not resuming from {path}: truncated", r.stderr)
        self.assertIn(f"resuming from {flipped}", r.stderr)
        self.assert_clean(run_dir)

        # A flipped byte fails the checksum just the same.
        with open(flipped, "r+b") as f:
            f.seek(os.path.getsize(flipped) // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir, "--resume", flipped])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("checksum mismatch", r.stderr.strip().splitlines()[-1])
        self.assert_clean(run_dir)


if __name__ == "__main__":
    unittest.main()
