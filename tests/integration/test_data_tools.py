"""convoy pack and convoy bench data through the CLI, read back with
independent tools (Python's tarfile, GNU tar), and the data service's memory
staying flat over many epochs of a real `convoy launch` run."""
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import unittest

from helpers import (BIN, has_train_line, make_folder, make_segmentation_set, read_metrics, run, shm_segments,
                     subcommand_pids, wait_for, write_config)

BENCH_KEYS = {"images_per_sec", "images_per_sec_per_thread", "threads", "cpu_seconds_per_image", "peak_rss_mb"}


def webdataset_samples(tar_path):
    """A tar shard read by WebDataset's documented rules
    (webdataset.tariterators): members in order, regular files only; a
    member's key is its path up to the first dot of its file name and the
    rest is the extension (base_plus_ext); consecutive members with one key
    are one sample (group_by_keys), which may not hold an extension twice."""
    samples = []
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            match = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", member.name)
            assert match, f"{member.name}: no key.extension"
            key, ext = match.groups()
            if not samples or samples[-1]["__key__"] != key:
                samples.append({"__key__": key})
            assert ext not in samples[-1], f"{member.name}: {ext} twice in sample {key}"
            samples[-1][ext] = tar.extractfile(member).read()
    return samples


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


class PackTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="convoy-pack-")
        self.folder = make_folder(os.path.join(self.tmp.name, "images"), classes=3, per_class=15)
        self.pack = os.path.join(self.tmp.name, "pack")

    def tearDown(self):
        self.tmp.cleanup()

    def test_shards_are_webdataset_tars_that_match_the_index(self):
        r = run(["pack", self.folder, self.pack, "--shard-size", "60KB"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("packed 45 images", r.stdout)
        with open(os.path.join(self.pack, "classes.txt")) as f:
            classes = f.read().split()
        self.assertEqual(classes, ["class_0", "class_1", "class_2"])
        with open(os.path.join(self.pack, "index.tsv")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "# convoy-pack 1")
        index = [line.split("\t") for line in lines[1:]]
        self.assertEqual(len(index), 45)
        shards = sorted({row[0] for row in index})
        self.assertGreater(len(shards), 1)
        seen = 0
        for shard in shards:
            path = os.path.join(self.pack, shard)
            # GNU tar lists it.
            listing = subprocess.run(["tar", "-tf", path], capture_output=True, text=True, check=True).stdout.split()
            with tarfile.open(path) as tar, open(path, "rb") as raw:
                members = tar.getmembers()
                self.assertEqual([m.name for m in members], listing)
                # WebDataset: consecutive members sharing a key, image then label.
                for img, cls in zip(members[0::2], members[1::2]):
                    key, ext = img.name.split(".", 1)
                    self.assertIn(ext, ("jpg", "png"))
                    self.assertEqual(cls.name, key + ".cls")
                    row = index[seen]
                    seen += 1
                    self.assertEqual(row[0], shard)
                    self.assertEqual(row[4], key)
                    self.assertEqual(int(row[1]), img.offset_data)
                    self.assertEqual(int(row[2]), img.size)
                    self.assertEqual(tar.extractfile(cls).read().decode(), row[3])
                    # The bytes at the index's offset are the original file's.
                    raw.seek(int(row[1]))
                    data = raw.read(int(row[2]))
                    cls_name = classes[int(row[3])]
                    name = key.split("_", 1)[1]
                    candidates = [os.path.join(self.folder, cls_name, name + e) for e in (".jpg", ".png")]
                    original = next(p for p in candidates if os.path.exists(p))
                    with open(original, "rb") as f:
                        self.assertEqual(data, f.read())
        self.assertEqual(seen, 45)

    def test_a_webdataset_reader_sees_one_sample_per_image(self):
        """By WebDataset's own grouping rule, file names with dots included
        ("cat.1.v2.jpg": a key cut at its first dot would split the image
        from its label), and a segmentation pack's mask beside its image."""
        src = os.path.join(self.folder, "class_1")
        first = sorted(os.listdir(src))[0]
        shutil.copy(os.path.join(src, first), os.path.join(src, "cat.1.v2" + os.path.splitext(first)[1]))
        r = run(["pack", self.folder, self.pack, "--shard-size", "60KB"])
        self.assertEqual(r.returncode, 0, r.stderr)
        shards = sorted(f for f in os.listdir(self.pack) if f.endswith(".tar"))
        samples = [x for shard in shards for x in webdataset_samples(os.path.join(self.pack, shard))]
        self.assertEqual(len(samples), 46)
        self.assertEqual(len({x["__key__"] for x in samples}), 46, "keys are unique across shards")
        with open(os.path.join(self.pack, "classes.txt")) as f:
            classes = f.read().split()
        for x in samples:
            self.assertEqual(set(x) - {"__key__"}, {"cls", "jpg"} if "jpg" in x else {"cls", "png"}, x["__key__"])
            self.assertLess(int(x["cls"].decode()), len(classes))
        self.assertTrue(any(x["__key__"].endswith("_cat") for x in samples))

        seg = make_segmentation_set(os.path.join(self.tmp.name, "seg"), train=6, val=2, test=0)
        seg_pack = os.path.join(self.tmp.name, "seg-pack")
        r = run(["pack", seg, seg_pack])
        self.assertEqual(r.returncode, 0, r.stderr)
        for split, n in (("train", 6), ("val", 2)):
            folder = os.path.join(seg_pack, split)
            samples = [x for shard in sorted(os.listdir(folder)) if shard.endswith(".tar")
                       for x in webdataset_samples(os.path.join(folder, shard))]
            self.assertEqual(len(samples), n)
            for x in samples:
                self.assertEqual(set(x) - {"__key__"}, {"jpg", "cls", "mask.png"}, x["__key__"])

    def test_bench_data_reads_folders_and_packs_and_prints_json(self):
        self.assertEqual(run(["pack", self.folder, self.pack, "--max-side", "40"]).returncode, 0)
        for source in (["--image-folder", self.folder], ["--shards", self.pack]):
            r = run(["bench", "data"] + source + ["--crop", "32", "--batch", "8", "--threads", "2",
                                                  "--seconds", "0.5", "--json"])
            self.assertEqual(r.returncode, 0, r.stderr)
            result = last_json(r.stdout)
            self.assertTrue(BENCH_KEYS <= set(result), result)
            self.assertEqual(result["threads"], 2)
            self.assertGreater(result["images_per_sec"], 0)
            self.assertGreater(result["cpu_seconds_per_image"], 0)
            self.assertEqual(result["corrupt"], 0)

    def test_bench_data_with_data_services_reads_what_a_rank_receives(self):
        """--data-services K: real data-service processes, their batches read
        through the rings by the bench, every pixel: the same pixels for K =
        1, 2 and 3 (the shards' positions gathered as a rank gathers them),
        every image of the epochs but the warm-up batch, and each shard's
        own fill rate."""
        results = {}
        for k in (1, 2, 3):
            r = run(["bench", "data", "--image-folder", self.folder, "--crop", "32", "--batch", "8", "--threads", "1",
                     "--data-services", str(k), "--epochs", "2", "--json"], timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            result = last_json(r.stdout)
            self.assertTrue(BENCH_KEYS <= set(result), result)
            self.assertTrue(result["delivered"])
            self.assertEqual(result["data_services"], k)
            self.assertEqual([s["shard"] for s in result["shards"]], list(range(k)))
            self.assertTrue(all(s["images_per_sec"] > 0 for s in result["shards"]), result["shards"])
            self.assertIn(f"delivered through the rings of {k} data service(s)", r.stdout)
            results[k] = (result["images"], result["pixel_sum"])
        self.assertGreater(results[1][1], 0)
        self.assertEqual(results[1], results[2])
        self.assertEqual(results[1], results[3])

    def test_bench_data_rss_is_flat_over_many_epochs(self):
        r = run(["bench", "data", "--image-folder", self.folder, "--crop", "48", "--batch", "8",
                 "--threads", "2", "--epochs", "40", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        rss = last_json(r.stdout)["rss_anon_mb_by_epoch"]
        self.assertEqual(len(rss), 40)
        # After the first epochs (buffers, caches, allocator pools) nothing grows.
        self.assertLess(max(rss[5:]) - rss[4], 2.0, rss)

    def test_bad_arguments_are_one_line_errors(self):
        r = run(["pack", self.folder])
        self.assertEqual(r.returncode, 2)
        self.assertIn("expected SRC and OUT", r.stderr)
        r = run(["bench", "data", "--image-folder", os.path.join(self.tmp.name, "nowhere")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("does not exist", r.stderr)
        r = run(["bench", "data", "--shards", self.folder])
        self.assertEqual(r.returncode, 2)
        self.assertIn("no index.tsv", r.stderr)


def rss_anon_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class DataServiceMemoryTest(unittest.TestCase):
    def test_data_service_rss_is_flat_across_epochs_of_a_real_run(self):
        with tempfile.TemporaryDirectory(prefix="convoy-mem-") as tmp:
            folder = make_folder(os.path.join(tmp, "images"), classes=2, per_class=12)
            cfg = write_config(tmp, folder, epochs=14)
            run_dir = os.path.join(tmp, "run")
            proc = subprocess.Popen([BIN, "launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir,
                                     "--set", "model.arch=mlp", "--set", "data.batch_size=4"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            samples = []  # (epochs finished, RssAnon MB) of the data-service process

            def sample():
                pid = None
                while proc.poll() is None:
                    pid = pid or next(iter(subcommand_pids(run_dir, "data-service")), None)
                    mb = rss_anon_mb(pid) if pid else None
                    if mb is not None:
                        try:
                            epochs = sum(1 for m in read_metrics(run_dir)
                                         if m.get("event") == "eval" and m.get("split") == "val")
                        except (OSError, ValueError):
                            epochs = 0
                        samples.append((epochs, mb))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            out, _ = proc.communicate(timeout=300)
            sampler.join()
            self.assertEqual(proc.returncode, 0, out)
            early = [mb for e, mb in samples if 2 <= e <= 4]
            late = [mb for e, mb in samples if e >= 10]
            self.assertTrue(early and late, f"too few samples: {samples}")
            # Epoch orders are cached (at most 8) and buffers reused: the
            # service's heap must not grow with the epoch count.
            self.assertLess(max(late) - max(early), 3.0, f"early {early}, late {late}")


def proc_stat(pid):
    """/proc/PID/stat's fields after the command name (state first, then
    ppid, ...; start time is [19]), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root):
    """{pid: start time} of `root` and every process below it, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := proc_stat(entry)):
            parents[int(entry)] = (int(fields[1]), fields[19])
    tree = {root: parents.get(root, (0, ""))[1]}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in parents.items():
            if ppid in tree and pid not in tree:
                tree[pid] = start
                grew = True
    return tree


def still_running(tree):
    """The processes of `tree` that still exist (same pid, same start time)."""
    return [pid for pid, start in tree.items()
            if (fields := proc_stat(pid)) and fields[19] == start and fields[0] != "Z"]


class ChildrenStopWithTheCommandTest(unittest.TestCase):
    """A benchmark that started `convoy launch` forwards a stop signal to it
    and exits only after it (and its workers and data service) have; killed
    outright, its children still stop (PR_SET_PDEATHSIG)."""

    def start_scaling(self, tmp):
        folder = make_folder(os.path.join(tmp, "images"), classes=2, per_class=20)
        out = os.path.join(tmp, "bench")
        p = subprocess.Popen([BIN, "bench", "scaling", "--image-folder", folder, "--model", "cnn", "--image-size", "32",
                              "--batch", "4", "--ranks", "2", "--steps", "1000000", "--warmup", "1",
                              "--run-dir", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        wait_for(lambda: has_train_line(os.path.join(out, "ranks-2")), 120, "the 2-rank launch to train")
        tree = process_tree(p.pid)
        # bench scaling, convoy launch, 2 workers, the data service.
        self.assertGreaterEqual(len(tree), 5, tree)
        return p, tree

    def sigterm_stops_tree(self, p, tree, timeout):
        """SIGTERM to `p`: it exits 128 + 15 and nothing it started outlives
        it. Returns its stderr."""
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=timeout)
        self.assertEqual(p.returncode, 128 + signal.SIGTERM, err)
        self.assertEqual(still_running(tree), [])
        return err

    def test_sigterm_is_forwarded_and_waited_for(self):
        with tempfile.TemporaryDirectory(prefix="convoy-stop-") as tmp:
            p, tree = self.start_scaling(tmp)
            err = self.sigterm_stops_tree(p, tree, 120)
            self.assertIn("stopped by signal 15; the 2-rank launch has ended", err)

    def test_children_stop_when_it_is_killed(self):
        with tempfile.TemporaryDirectory(prefix="convoy-stop-") as tmp:
            p, tree = self.start_scaling(tmp)
            p.kill()
            p.communicate(timeout=10)
            wait_for(lambda: not still_running(tree), 60, "the launch and its processes to stop")

    def test_bench_data_forwards_sigterm_to_its_shards(self):
        with tempfile.TemporaryDirectory(prefix="convoy-stop-") as tmp:
            folder = make_folder(os.path.join(tmp, "images"), classes=2, per_class=20)
            p = subprocess.Popen([BIN, "bench", "data", "--image-folder", folder, "--crop", "32", "--batch", "8",
                                  "--threads", "1", "--data-services", "2", "--seconds", "600"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.addCleanup(lambda: p.poll() is None and p.kill())
            wait_for(lambda: len(process_tree(p.pid)) >= 3, 60, "the two shard processes to start")
            err = self.sigterm_stops_tree(p, process_tree(p.pid), 60)
            self.assertIn("stopped by signal 15; its 2 data-service process(es) have ended", err)

    def test_bench_allreduce_forwards_sigterm(self):
        p = subprocess.Popen([BIN, "bench", "allreduce", "--ranks", "2", "--min-bytes", "1KB", "--max-bytes", "1MB",
                              "--iters", "1000000", "--warmup", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        wait_for(lambda: len(process_tree(p.pid)) >= 3, 60, "the two ranks to start")
        self.sigterm_stops_tree(p, process_tree(p.pid), 60)



class BenchScalingTest(unittest.TestCase):
    def test_scaling_runs_each_world_size_and_writes_json_and_svg(self):
        with tempfile.TemporaryDirectory(prefix="convoy-scaling-") as tmp:
            folder = make_folder(os.path.join(tmp, "images"), classes=2, per_class=20)
            out = os.path.join(tmp, "bench")
            r = run(["bench", "scaling", "--image-folder", folder, "--model", "cnn", "--image-size", "32",
                     "--batch", "4", "--ranks", "1,2", "--steps", "4", "--warmup", "1", "--run-dir", out, "--json"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            result = last_json(r.stdout)
            self.assertEqual([x["ranks"] for x in result["results"]], [1, 2])
            for x in result["results"]:
                self.assertGreater(x["images_per_sec"], 0)
                self.assertEqual(set(x["breakdown_ms"]),
                                 {"data_wait", "forward", "backward", "exposed_comm", "optimizer"})
            self.assertEqual(result["results"][0]["efficiency"], 1)
            with open(os.path.join(out, "scaling.json")) as f:
                self.assertEqual(json.load(f)["results"], result["results"])
            with open(os.path.join(out, "scaling.svg")) as f:
                svg = f.read()
            self.assertTrue(svg.startswith("<svg") and svg.count("<polyline") == 2, svg[:200])
            # The 2-rank run trained exactly warm-up + steps, then stopped.
            ends = [m for m in read_metrics(os.path.join(out, "ranks-2")) if m["event"] == "end"]
            self.assertEqual(ends[-1]["global_step"], 5)


class BenchAllreduceTest(unittest.TestCase):
    def test_allreduce_reports_every_size_from_local_ranks(self):
        r = run(["bench", "allreduce", "--ranks", "2", "--min-bytes", "1KB", "--max-bytes", "1MB", "--iters", "3",
                 "--warmup", "1", "--json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        result = last_json(r.stdout)
        self.assertEqual(result["ranks"], 2)
        # Every size's sum was checked (a wrong one exits 1 naming it).
        self.assertEqual((result["backend"], result["correct"]), ("gloo", True))
        self.assertEqual(r.stdout.count(" ok\n"), 11, r.stdout)
        self.assertEqual([x["bytes"] for x in result["results"]], [1024 << i for i in range(11)])
        for x in result["results"]:
            self.assertGreater(x["time_us"], 0)
            self.assertAlmostEqual(x["busbw_gbps"], x["algbw_gbps"] * 2 * (2 - 1) / 2, places=6)

    def test_allreduce_through_shared_memory(self):
        # 3 ranks: chunks of unequal length; 8 MB spans two 4 MB pieces.
        before = shm_segments()
        r = run(["bench", "allreduce", "--ranks", "3", "--min-bytes", "4", "--max-bytes", "8MB", "--iters", "2",
                 "--warmup", "1", "--device", "cpu", "--transport", "shm", "--json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        result = last_json(r.stdout)
        self.assertEqual((result["ranks"], result["backend"], result["correct"]), (3, "shm", True))
        self.assertEqual(len(result["results"]), 22, r.stdout)
        self.assertIn("gradient all-reduce: shared memory (3 ranks on this host)", r.stdout + r.stderr)
        self.assertEqual(shm_segments() - before, set())

    def test_allreduce_under_mpirun(self):
        from helpers import MPI_ENV
        env = dict(os.environ, **MPI_ENV)
        r = subprocess.run(["mpirun", "-np", "2", BIN, "bench", "allreduce", "--max-bytes", "64KB", "--iters", "2",
                            "--json"], capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(last_json(r.stdout)["ranks"], 2)


if __name__ == "__main__":
    unittest.main()
