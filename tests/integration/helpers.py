"""Shared helpers for Convoy's multi-process tests: a generated JPEG folder,
configs, running the binary, and checks that nothing is left behind."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

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


def make_segmentation_set(root, train=8, val=4, test=0):
    """bench/make_segmentation_set.py's kind of set, small: JPEG images and
    PNG class-id masks under root/{train,trainannot,val,valannot,...}."""
    subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "bench", "make_segmentation_set.py"), root,
                    "--train", str(train), "--val", str(val), "--test", str(test)], check=True,
                   stdout=subprocess.DEVNULL)
    return root


def segmentation_launch(root, run_dir, *extra):
    """convoy launch arguments: configs/segmentation.pbtxt on `root`, shrunk
    to a few seconds (64 px, batch 2, one epoch, one decode thread)."""
    return ["launch", "--nproc-per-node", "2", os.path.join(SOURCE_DIR, "configs", "segmentation.pbtxt"),
            "--run-dir", run_dir, "--set", f"data.segmentation_folder.root={root}",
            "--set", "data.image.height=64", "--set", "data.image.width=64", "--set", "data.batch_size=2",
            "--set", "train.epochs=1", "--set", "data_service.decode_threads=1", *extra]


def write_config(directory, root, epochs=3, strict="false", name="folder.pbtxt", text=None):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text if text is not None else FOLDER_CONFIG.format(root=root, epochs=epochs, strict=strict))
    return path


def run(args, timeout=300, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=full_env)


_SCHEMA = None


def metrics_schema():
    """metrics.jsonl's events as `convoy report --schema` states them:
    {event name: [field, ...]} (common/metrics_schema.h)."""
    global _SCHEMA
    if _SCHEMA is None:
        out = subprocess.run([BIN, "report", "--schema"], capture_output=True, text=True, check=True).stdout
        _SCHEMA = {e["event"]: e["fields"] for e in json.loads(out)["metrics.jsonl"]}
    return _SCHEMA


def _has_type(value, kind):
    number = (int, float)
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return value is None or (isinstance(value, number) and not isinstance(value, bool))
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "objects":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind == "matrix":
        return isinstance(value, list) and all(isinstance(r, list) for r in value)
    return False


def schema_errors(obj, fields, where):
    """What in `obj` breaks `fields` (the schema's list for it), as text."""
    by_name = {f["name"]: f for f in fields}
    errors = []
    for key, value in obj.items():
        if key == "event" and where.count(".") == 0:
            continue
        field = by_name.get(key)
        if field is None:
            errors.append(f"{where}: undeclared field '{key}'")
        elif not _has_type(value, field["type"]):
            errors.append(f"{where}: field '{key}' is not of type {field['type']}: {value!r}")
        elif field.get("members"):
            items = [value] if field["type"] == "object" else value
            for item in items:
                errors += schema_errors(item, field["members"], f"{where}.{key}")
    errors += [f"{where}: missing field '{f['name']}'" for f in fields if f["required"] and f["name"] not in obj]
    return errors


def read_metrics(run_dir):
    """Every line of RUN_DIR/metrics.jsonl, each checked against the schema
    the binary states (an AssertionError names the first line off it)."""
    schema = metrics_schema()
    events = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            e = json.loads(line)
            name = e.get("event")
            errors = [f"unknown event {name!r}"] if name not in schema else schema_errors(e, schema[name], name)
            if errors:
                raise AssertionError(f"metrics.jsonl line {n} is off its schema: {errors[0]}\n{line}")
            events.append(e)
    return events


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


def machine_can(what):
    """Whether this machine has what a suite needs, judged apart from the
    suite's own probe: "netns" (root with CAP_NET_ADMIN and `ip`), "mpirun"
    (Open MPI's launcher on PATH)."""
    if what == "netns":
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return False
        with open("/proc/self/status") as f:
            caps = next((int(x.split()[1], 16) for x in f if x.startswith("CapEff:")), 0)
        return bool(caps & (1 << 12))  # CAP_NET_ADMIN
    if what == "mpirun":
        return shutil.which("mpirun") is not None
    raise ValueError(what)


def skip_unless_usable(what, usable, reason):
    """unittest.skipUnless that cannot hide a failure: where the machine has
    what the tests need (machine_can) they run even when `usable` (the
    suite's own probe) says no, so that a broken probe or set-up fails
    instead of skipping. Set CONVOY_ALLOW_SKIP=WHAT to skip anyway."""
    if usable:
        return lambda cls: cls
    if machine_can(what) and what not in os.environ.get("CONVOY_ALLOW_SKIP", "").split(","):
        return lambda cls: cls
    return unittest.skip(reason)

