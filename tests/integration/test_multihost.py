"""Several hosts, simulated on one machine by network namespaces
(cluster/netns-testbed.sh): 2 hosts x 2 ranks, started by mpirun (its
remote agent replaced by `ip netns exec`) and by one `convoy launch --nnodes`
per host, end with the same parameters as 1 host x 4 ranks; a host whose
cable is pulled mid-run makes the job fail within the timeout naming the
ranks it cannot reach, and with --max-restarts the job restarts and finishes
once the cable is back. Skipped where namespaces cannot be made (not root).
The test bed is removed afterwards whatever happens."""
import os
import re
import subprocess
import tempfile
import time
import unittest

from helpers import (BIN, MPI_ENV, SOURCE_DIR, make_folder, processes_mentioning, read_metrics, shm_segments,
                     skip_unless_usable, wait_for, write_config)

TESTBED = os.path.join(SOURCE_DIR, "cluster", "netns-testbed.sh")
PREFIX = f"cvtb{os.getpid() % 100000}"
ENV = {**os.environ, "CONVOY_TESTBED_PREFIX": PREFIX}
PORT = 29517


def testbed(*args, check=True):
    return subprocess.run([TESTBED, *args], env=ENV, capture_output=True, text=True, check=check)


def namespaces_usable():
    if os.geteuid() != 0:
        return False
    probe = f"{PREFIX}-probe"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    # `ip netns exec` also needs / to be a mount point (a chroot's root is one
    # only when bound onto itself, as scripts/debian-chroot.sh does).
    ok = ok and subprocess.run(["ip", "netns", "exec", probe, "true"], capture_output=True).returncode == 0
    # The test bed's veth pairs need CAP_NET_ADMIN, which a namespace alone
    # does not prove (a container may make one and still refuse links).
    ok = ok and subprocess.run(["ip", "netns", "exec", probe, "ip", "link", "add", "cvp0", "type", "veth", "peer",
                                "name", "cvp1"], capture_output=True).returncode == 0
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def checksum(run_dir):
    return [m for m in read_metrics(run_dir) if m.get("event") == "end"][-1]["param_checksum"]


@skip_unless_usable("netns", namespaces_usable(),
                    "needs root with CAP_NET_ADMIN, network namespaces, veth pairs and `ip netns exec`")
class MultiHostTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="convoy-multihost-")
        cls.tmp = cls._tmp.name
        root = make_folder(os.path.join(cls.tmp, "images"), classes=3, per_class=40)
        cls.config = write_config(cls.tmp, root, epochs=3)
        # The reference: the same config on one host with 4 ranks, summing
        # through Gloo as the hosts do (shared memory, the default on one
        # host, adds 4 ranks' gradients in another order: other roundings).
        base = os.path.join(cls.tmp, "one-host")
        r = subprocess.run([BIN, "launch", "--nproc-per-node", "4", cls.config, "--run-dir", base,
                            "--set", "distributed.grad_transport=c10d"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        cls.expected = checksum(base)
        cls.shm_before = shm_segments()
        try:
            testbed("up", "2")
        except subprocess.CalledProcessError as e:
            testbed("down", check=False)  # tearDownClass does not run after a failed setUpClass
            cls._tmp.cleanup()
            raise AssertionError(f"netns-testbed.sh up failed: {e.stderr}") from e

    @classmethod
    def tearDownClass(cls):
        testbed("down", check=False)
        left = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        cls._tmp.cleanup()
        assert PREFIX not in left and PREFIX not in namespaces, "the test bed was not removed"

    def tearDown(self):
        wait_for(lambda: not processes_mentioning(self.tmp), 30, "no process of the test left")
        self.assertEqual(shm_segments() - self.shm_before, set(), "leftover /dev/shm segments")

    def launch_on(self, host, run_dir, log, *extra, token="multihost-test-token"):
        """One `convoy launch` per host, as on a real cluster: node rank from
        the host, node 0's address as the master."""
        node = int(host[1:])
        env = {**ENV, "CONVOY_JOB_TOKEN": token, "CONVOY_LOG_LEVEL": "debug"}
        proc = subprocess.Popen([TESTBED, "exec", host, BIN, "launch", "--nproc-per-node", "2", "--nnodes", "2",
                                 "--node-rank", str(node), "--master-addr", testbed("addr", "h0").stdout.strip(),
                                 "--master-port", str(PORT), self.config, "--run-dir", run_dir, *extra],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def test_two_hosts_by_mpirun_match_one_host(self):
        run_dir = os.path.join(self.tmp, "mpirun")
        r = subprocess.run(
            ["mpirun", "-np", "4", "-H", "h0:2,h1:2", "--bind-to", "none", "--map-by", "slot",
             "--mca", "plm_rsh_agent", f"{TESTBED} agent",
             # The daemons and the MPI bootstrap talk over the test bed's net.
             # No shared-memory BTL: the "hosts" share /dev/shm and a host name.
             "--mca", "oob_tcp_if_include", "10.77.0.0/24", "--mca", "btl", "tcp,self",
             "--mca", "btl_tcp_if_include", "10.77.0.0/24",
             "-x", "CONVOY_SOCKET_IFNAME=eth0", "-x", "CONVOY_LOG_LEVEL=debug",
             BIN, "worker", self.config, "--run-dir", run_dir],
            env={**ENV, **MPI_ENV}, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertEqual(checksum(run_dir), self.expected)
        out = r.stdout + r.stderr
        # Each host's ranks bound its own address on the chosen interface,
        # and each host ran its own data service.
        for rank, addr in ((0, "10.77.0.1"), (1, "10.77.0.1"), (2, "10.77.0.2"), (3, "10.77.0.2")):
            self.assertRegex(out, rf"rank {rank}: rendezvous at 10\.77\.0\.1:\d+, store and Gloo on {re.escape(addr)}")
        self.assertEqual(len(re.findall(r"serving 2 rank\(s\) on ", out)), 2)

    def test_two_hosts_by_launch_per_node_match_one_host(self):
        run_dir = os.path.join(self.tmp, "launch")
        with open(os.path.join(self.tmp, "launch-h0.log"), "w+") as log0, \
                open(os.path.join(self.tmp, "launch-h1.log"), "w+") as log1:
            p0 = self.launch_on("h0", run_dir, log0)
            p1 = self.launch_on("h1", run_dir, log1)
            self.assertEqual(p0.wait(timeout=300), 0)
            self.assertEqual(p1.wait(timeout=300), 0)
            log1.seek(0)
            out1 = log1.read()
        self.assertEqual(checksum(run_dir), self.expected)
        # No interface named: each host binds the address that routes to the master.
        self.assertRegex(out1, r"rank 2: rendezvous at 10\.77\.0\.1:\d+, store and Gloo on 10\.77\.0\.2")

    def test_slurm_launch_script_with_stand_in_srun(self):
        """cluster/slurm-launch.sbatch as Slurm would run it, with stand-ins
        for `scontrol` (the allocation's hosts) and `srun` (one task per
        host, in that host's namespace, with SLURM_NODEID set): the script's
        master, port, token and node ranks make a job that matches 1 x 4."""
        bin_dir = os.path.join(self.tmp, "fake-slurm")
        os.makedirs(bin_dir, exist_ok=True)
        with open(os.path.join(bin_dir, "scontrol"), "w") as f:
            f.write("#!/bin/sh\n# scontrol show hostnames LIST\necho 10.77.0.1; echo 10.77.0.2\n")
        with open(os.path.join(bin_dir, "srun"), "w") as f:
            f.write("#!/bin/bash\n# srun [options] CMD...: one task per node of the test bed\n"
                    "while [[ $1 == -* ]]; do shift; done\n"
                    "for i in 0 1; do SLURM_NODEID=$i " + TESTBED + " exec h$i \"$@\" & done\n"
                    "rc=0; for j in $(jobs -p); do wait $j || rc=1; done; exit $rc\n")
        for name in ("scontrol", "srun"):
            os.chmod(os.path.join(bin_dir, name), 0o755)
        run_dir = os.path.join(self.tmp, "slurm")
        env = {k: v for k, v in ENV.items() if k != "CONVOY_JOB_TOKEN"}
        env.update({"PATH": bin_dir + ":" + env["PATH"], "SLURM_JOB_NODELIST": "node[1-2]",
                    "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "convoy",
                    "NPROC_PER_NODE": "2", "RUN_DIR": run_dir, "CONVOY": os.path.abspath(BIN)})
        r = subprocess.run(["bash", os.path.join(SOURCE_DIR, "cluster", "slurm-launch.sbatch"), self.config],
                           cwd=SOURCE_DIR, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        self.assertEqual(checksum(run_dir), self.expected)

    def cut_link_run(self, name, max_restarts, timeout_s=8):
        run_dir = os.path.join(self.tmp, name)
        logs = [open(os.path.join(self.tmp, f"{name}-h{i}.log"), "w+") for i in range(2)]
        for f in logs:
            self.addCleanup(f.close)
        extra = ["--set", "train.epochs=400", "--set", f"distributed.timeout_s={timeout_s}",
                 "--max-restarts", str(max_restarts)]
        procs = [self.launch_on(f"h{i}", run_dir, logs[i], *extra) for i in range(2)]
        self.addCleanup(lambda: testbed("link", "h1", "up", check=False))
        wait_for(lambda: os.path.exists(os.path.join(run_dir, "metrics.jsonl"))
                 and sum(1 for m in read_metrics(run_dir) if m.get("event") == "train") >= 3, 120, "training")
        testbed("link", "h1", "down")
        return run_dir, logs, procs, time.time()

    def read(self, log):
        log.seek(0)
        return log.read()

    def test_cut_link_fails_within_the_timeout_naming_the_unreachable_ranks(self):
        run_dir, logs, procs, cut = self.cut_link_run("cut", max_restarts=0)
        rc0 = procs[0].wait(timeout=120)
        failed_after = time.time() - cut
        rc1 = procs[1].wait(timeout=120)
        self.assertEqual((rc0, rc1), (1, 1))
        # distributed.timeout_s's promise: the error at 8 s (the heartbeats
        # are already known), then 0.5 s of settling and the stop; the
        # collective in flight at the cut started at most a step earlier.
        self.assertLess(failed_after, 8 + 3)
        out0, out1 = self.read(logs[0]), self.read(logs[1])
        # h0's side may see the timeout itself, or its local peer closing
        # after its own timeout; either way it names the lost ranks.
        self.assertRegex(out0, r"\[launch\].*error.*rank [01]: .* failed: .*ranks 2, 3 stopped answering")
        self.assertRegex(out1, r"\[launch\].*error.*rank [23]: .* failed: .*rank 0's rendezvous store at "
                               r"10\.77\.0\.1:\d+ is unreachable from rank [23]")

    def test_cut_link_restarts_once_the_link_is_back(self):
        run_dir, logs, procs, cut = self.cut_link_run("cut-restart", max_restarts=4)
        wait_for(lambda: "restart 1/4" in self.read(logs[0]), 60, "node 0's restart")
        time.sleep(2)
        testbed("link", "h1", "up")
        self.assertEqual(procs[0].wait(timeout=300), 0, self.read(logs[0])[-3000:])
        self.assertEqual(procs[1].wait(timeout=300), 0, self.read(logs[1])[-3000:])
        metrics = read_metrics(run_dir)
        self.assertGreaterEqual(len([m for m in metrics if m.get("event") == "restart"]), 1)
        self.assertEqual(len([m for m in metrics if m.get("event") == "end"]), 1)
        self.assertIn("ranks 2, 3 stopped answering", self.read(logs[0]))


if __name__ == "__main__":
    unittest.main()
