"""`mpirun -np 2 convoy worker CONFIG`: local rank 0 starts the node's data
service, MPI tells the ranks where rank 0's store is, training runs as
under convoy launch."""
import os
import shutil
import signal
import subprocess
import unittest

from helpers import (BIN, MPI_ENV, TempDirMixin, has_train_line, make_folder, processes_mentioning, read_metrics,
                     shm_segments, skip_unless_usable, wait_for, write_config)


@skip_unless_usable("mpirun", shutil.which("mpirun") is not None, "Open MPI's mpirun is not installed")
class MpirunTest(TempDirMixin, unittest.TestCase):
    def test_two_ranks_under_mpirun(self):
        tmp = self.make_tmp()
        root = make_folder(os.path.join(tmp, "images"), per_class=16)
        cfg = write_config(tmp, root, epochs=2)
        run_dir = os.path.join(tmp, "run")
        before = shm_segments()
        env = dict(os.environ, **MPI_ENV)
        r = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", BIN, "worker", cfg,
                            "--run-dir", run_dir], capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        metrics = read_metrics(run_dir)
        self.assertEqual(metrics[0]["event"], "start")
        self.assertEqual(metrics[0]["world_size"], 2)
        self.assertEqual([m["epoch"] for m in metrics if m["event"] == "eval"], [1, 2])
        self.assertTrue(os.path.exists(os.path.join(run_dir, "checkpoints", "best.ckpt")))
        self.assertTrue(any(f.startswith("step-") for f in os.listdir(os.path.join(run_dir, "checkpoints"))))
        self.assertIn("[worker 1]", r.stderr, "rank tags come from the worker's own log pattern")
        wait_for(lambda: not processes_mentioning(run_dir), 15, "no process of the run left")
        self.assertEqual(shm_segments() - before, set())

    def mpirun(self, cfg, run_dir, *extra):
        env = dict(os.environ, **MPI_ENV)
        return subprocess.Popen(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", BIN, "worker", cfg,
                                 "--run-dir", run_dir, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)

    def test_two_data_shards_under_mpirun_train_as_launch_does(self):
        """Local rank 0 starts 2 data-service shards; the batches they make
        together are the single service's, so the weights are convoy launch's
        with one service, bit for bit."""
        tmp = self.make_tmp()
        root = make_folder(os.path.join(tmp, "images"), per_class=16)
        cfg = write_config(tmp, root, epochs=2)
        launch_dir = os.path.join(tmp, "launch")
        r = subprocess.run([BIN, "launch", "--nproc-per-node", "2", cfg, "--run-dir", launch_dir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        run_dir = os.path.join(tmp, "mpirun")
        proc = self.mpirun(cfg, run_dir, "--set", "data_service.services_per_node=2")
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        shards = [m["data_shards"] for m in read_metrics(run_dir) if m.get("event") == "train"][-1]
        self.assertEqual([s["shard"] for s in shards], [0, 1])

        def result(d):
            metrics = read_metrics(d)
            losses = [m["loss"] for m in metrics if m["event"] == "train"]
            return [m for m in metrics if m["event"] == "end"][0]["param_checksum"], losses

        self.assertEqual(result(run_dir), result(launch_dir))
        wait_for(lambda: not processes_mentioning(run_dir), 15, "no process of the run left")

    def test_sigusr1_preempts_and_resume_reaches_the_same_weights(self):
        """Slurm's `--signal=USR1@T` reaches the ranks through mpirun."""
        tmp = self.make_tmp()
        root = make_folder(os.path.join(tmp, "images"), per_class=16)
        cfg = write_config(tmp, root, epochs=60)
        full = self.mpirun(cfg, os.path.join(tmp, "full"))
        out, err = full.communicate(timeout=300)
        self.assertEqual(full.returncode, 0, err[-3000:])
        expected = [m for m in read_metrics(os.path.join(tmp, "full")) if m["event"] == "end"][0]["param_checksum"]

        run_dir = os.path.join(tmp, "preempted")
        proc = self.mpirun(cfg, run_dir)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: has_train_line(run_dir), 120, "training")
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err[-3000:])
        self.assertIn("stop requested: checkpoint at", err)
        self.assertFalse(any(m["event"] == "end" for m in read_metrics(run_dir)), "stopped before the end")
        resumed = self.mpirun(cfg, run_dir, "--resume", "auto")
        out, err = resumed.communicate(timeout=300)
        self.assertEqual(resumed.returncode, 0, err[-3000:])
        self.assertIn("resuming from", err)
        end = [m for m in read_metrics(run_dir) if m["event"] == "end"][0]
        self.assertEqual(end["param_checksum"], expected)
        wait_for(lambda: not processes_mentioning(run_dir), 15, "no process of the run left")


if __name__ == "__main__":
    unittest.main()
