"""Shared helpers for Convoy's multi-process tests: a generated JPEG folder,
configs, running the binary, and checks that nothing is left behind."""
import glob
import json
import os
import re
import subprocess
import tempfile
import time

BIN = os.environ.get("CONVOY_BIN", "build/convoy")
MAKE_IMAGES = os.environ.get("CONVOY_MAKE_IMAGES", "build/tests/make_image_folder")
SOURCE_DIR = os.environ.get("CONVOY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

# Under mpirun as root (CI), Open MPI needs these; harmless otherwise.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def make_folder(root, classes=4, per_class=40, corrupt=0, min_side=36, max_side=56):
    subprocess.run([MAKE_IMAGES, root, "--classes", str(classes), "--per-class", str(per_class),
                    "--corrupt", str(corrupt), "--min-side", str(min_side), "--max-side", str(max_side)],
                   check=True, stdout=subprocess.DEVNULL)
    return root


FOLDER_CONFIG = """
seed: 5
device: "cpu"
data {{
  image_folder {{ root: "{root}" }}
  val_fraction: 0.2
  batch_size: 8
  image {{ height: 32 width: 32 channels: 3 }}
  train_augment {{ random_resized_crop: true rrc_scale_min: 0.5 horizontal_flip: true }}
  strict: {strict}
}}
model {{ arch: "cnn" width: 8 }}
optim {{ optimizer: "sgd" lr: 0.02 momentum: 0.9 schedule: "constant" }}
train {{ epochs: {epochs} log_every_steps: 2 threads_per_rank: 1 }}
data_service {{ decode_threads: 2 timeout_s: 60 }}
distributed {{ timeout_s: 60 }}
"""


def write_config(directory, root, epochs=3, strict="false", name="folder.pbtxt", text=None):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text if text is not None else FOLDER_CONFIG.format(root=root, epochs=epochs, strict=strict))
    return path


def run(args, timeout=300, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=full_env)


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def processes_mentioning(marker):
    """PIDs whose command line or environment mentions `marker`."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker.encode() in cmd or marker.encode() in env:
            pids.append(int(pid))
    return pids


def subcommand_pids(run_marker, subcommand, shard=None):
    """PIDs of the `convoy SUBCOMMAND` processes of the run named by
    `run_marker` (its run directory); for data services with `shard`, only
    that shard's."""
    pids = []
    for pid in processes_mentioning(run_marker):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if len(cmd) < 2 or cmd[1] != subcommand.encode():
            continue
        if shard is None or (b"--shard" in cmd and cmd[cmd.index(b"--shard") + 1] == str(shard).encode()):
            pids.append(pid)
    return pids


def rank_pid(run_dir, rank, timeout=60):
    """The pid of worker `rank` of the run writing to `run_dir`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid in subcommand_pids(run_dir, "worker"):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in env:
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no worker {rank} found for {run_dir}")


# A run's rings are /dev/shm/convoy-<12-hex run id>-[s<shard>-]r<rank>. The
# unit tests' rings (convoy-test-*) may come and go meanwhile under ctest -j.
RUN_SEGMENT = re.compile(r"convoy-[0-9a-f]{12}-")


def shm_segments():
    return {n for n in os.listdir("/dev/shm") if RUN_SEGMENT.match(n)}


def socket_files():
    """Data-service socket files in this user's socket directories (a run
    removes its own, even when its service was killed)."""
    return set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"convoy-{os.getuid()}-*", "convoy-*")))


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def has_train_line(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    return os.path.exists(path) and '"event":"train"' in open(path).read()


class TempDirMixin:
    def make_tmp(self):
        d = tempfile.TemporaryDirectory(prefix="convoy-it-")
        self.addCleanup(d.cleanup)
        return d.name
