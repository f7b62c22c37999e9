"""Who may join a job: the rendezvous store and the data service admit only
processes holding the job's token (a stranger is refused with a logged
reason and the job completes), the store listens on loopback only for a
one-node run, and the data service's socket is 0600 in a 0700 directory."""
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from helpers import (BIN, TempDirMixin, has_train_line, make_folder, processes_mentioning, read_metrics, run, shm_segments,
                     wait_for, write_config)

STRANGER = os.environ.get("CONVOY_STRANGER", "build/tests/stranger")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(port):
    """Local addresses listening on TCP `port`, from /proc/net/tcp."""
    out = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            addr, port_hex = cols[1].split(":")
            if cols[3] == "0A" and int(port_hex, 16) == port:  # LISTEN
                out.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


class SecurityTest(TempDirMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="convoy-security-")
        cls.root = make_folder(os.path.join(cls._tmp.name, "images"), classes=3, per_class=40)
        cls.config = write_config(cls._tmp.name, cls.root, epochs=30)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_strangers_are_refused_and_the_job_completes(self):
        tmp = self.make_tmp()
        run_dir = os.path.join(tmp, "run")
        port = free_port()
        log_path = os.path.join(tmp, "launch.log")
        shm_before = shm_segments()
        with open(log_path, "w") as log:
            proc = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir,
                                     "--master-port", str(port), "--set", "train.max_steps=400"],
                                    stdout=log, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: has_train_line(run_dir), 120, "training")
        self.assertIsNone(proc.poll(), "the run ended before the strangers came")

        # The store listens on loopback only.
        self.assertEqual(listeners(port), ["127.0.0.1"])
        # The data service's socket: 0600, in a directory only we can enter.
        with open(log_path) as f:
            path = re.search(r"serving 2 rank\(s\) on (\S+) ", f.read()).group(1)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)

        # A process without the token: refused by the store...
        env = {k: v for k, v in os.environ.items() if k != "CONVOY_JOB_TOKEN"}
        env["CONVOY_SOCKET_DIR"] = os.path.dirname(path)
        r = subprocess.run([STRANGER, "store", "127.0.0.1", str(port)], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("refused this process: wrong job token", r.stdout)
        # ...and by the data service, even though (as root) it can open the socket.
        r = subprocess.run([STRANGER, "data", os.path.basename(path)], capture_output=True, text=True, timeout=60,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("refused: wrong job token", r.stdout)

        # The job goes on to the end, and logged both refusals.
        rc = proc.wait(timeout=300)
        with open(log_path) as f:
            log = f.read()
        self.assertEqual(rc, 0, log[-3000:])
        self.assertRegex(log, r"\[worker 0\].*rendezvous: refused a connection from 127\.0\.0\.1:\d+: wrong job token")
        self.assertRegex(log, r"\[data\].*refused a client claiming rank 0: wrong job token; the job goes on")
        ends = [m for m in read_metrics(run_dir) if m.get("event") == "end"]
        self.assertEqual(len(ends), 1)
        wait_for(lambda: not processes_mentioning(run_dir), 20, "no process of the run left")
        self.assertFalse(os.path.exists(path), "the data service's socket was left behind")
        self.assertEqual(shm_segments() - shm_before, set())

    def test_a_worker_with_another_token_cannot_join(self):
        """A rank started by hand with the wrong token fails at the store with
        a message that says why, instead of hanging or joining."""
        tmp = self.make_tmp()
        port = free_port()
        env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "CONVOY_JOB_TOKEN": "right-token"}
        rank0 = subprocess.Popen([BIN, "worker", self.config, "--run-dir", os.path.join(tmp, "run")],
                                 env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 text=True)
        self.addCleanup(lambda: rank0.poll() is None and rank0.kill())
        wait_for(lambda: listeners(port), 60, "rank 0's store")
        r = run(["worker", self.config, "--set", "distributed.timeout_s=10"],
                env={**env, "RANK": "1", "CONVOY_JOB_TOKEN": "wrong-token"}, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)  # a user error
        self.assertIn(f"the rendezvous store at 127.0.0.1:{port} refused this process: wrong job token", r.stderr)
        rank0.kill()
        rank0.wait()

    def test_several_nodes_need_a_shared_token_port_and_run_dir(self):
        r = run(["launch", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "1", "--master-addr",
                 "127.0.0.1", "--master-port", "29500", "--run-dir", "x", self.config],
                env={"CONVOY_JOB_TOKEN": ""})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("set CONVOY_JOB_TOKEN to the same secret on every node", r.stderr)
        r = run(["launch", "--nproc-per-node", "1", "--nnodes", "2", self.config], env={"CONVOY_JOB_TOKEN": "t"})
        self.assertIn("give --master-addr (node 0's address) and --master-port", r.stderr)
        r = run(["launch", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", self.config])
        self.assertIn("--node-rank must be between 0 and 1", r.stderr)


if __name__ == "__main__":
    unittest.main()
