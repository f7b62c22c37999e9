"""`mpirun -np 2 convoy worker CONFIG`: local rank 0 starts the node's data
service, MPI tells the ranks where rank 0's store is, training runs as
under convoy launch."""
import os
import shutil
import subprocess
import unittest

from helpers import (BIN, MPI_ENV, TempDirMixin, make_folder, processes_mentioning, read_metrics, shm_segments,
                     wait_for, write_config)


@unittest.skipIf(shutil.which("mpirun") is None, "Open MPI's mpirun is not installed")
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


if __name__ == "__main__":
    unittest.main()
