"""The workflows image-classification users bring, end to end through the
CLI: train, `convoy export` into torchvision, `convoy predict`, `convoy eval`
(one rank and two), fine-tuning with --init-from (a new head, a frozen
backbone), early stopping, and the ready configs in configs/ on data laid
out as their datasets are."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torchvision
from PIL import Image

from helpers import SOURCE_DIR, read_metrics, run

CONFIG = """
seed: 4
device: "cpu"
data {{
  image_folder {{ root: "{root}" }}
  val_fraction: 0.25
  batch_size: 4
  image {{ height: 32 width: 32 channels: 3 }}
  mean: [0.5, 0.4, 0.3]
  std: [0.25, 0.2, 0.3]
}}
model {{ arch: "resnet18" }}
optim {{ lr: 0.01 schedule: "constant" }}
train {{ epochs: {epochs} threads_per_rank: 1 log_every_steps: 2 {train} }}
data_service {{ decode_threads: 1 timeout_s: 60 }}
distributed {{ timeout_s: 60 }}
"""


def make_pngs(root, classes, per_class, size=32, seed=0):
    """RGB PNGs of exactly the model's size: lossless and needing no resize,
    so Python sees the very pixels Convoy sees."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"kind_{c}"), exist_ok=True)
        for i in range(per_class):
            base = np.array([60 + 60 * c, 200 - 50 * c, 90 + 30 * (c % 2)], dtype=np.float64)
            img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(root, f"kind_{c}", f"{i:03d}.png"))
    return root


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run_dir_of(output):
    m = re.search(r"run directory (\S+)", output)
    assert m, output
    return m.group(1)


class Workflows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="convoy-wf-")
        cls.images = make_pngs(os.path.join(cls.tmp, "images"), 3, 8)
        cls.config = write(os.path.join(cls.tmp, "c.pbtxt"),
                           CONFIG.format(root=cls.images, epochs=2, train=""))
        r = run(["launch", "--nproc-per-node", "2", cls.config, "--set", f"run_root={cls.tmp}/runs"])
        assert r.returncode == 0, r.stdout + r.stderr
        cls.run_dir = run_dir_of(r.stdout + r.stderr)
        cls.best = os.path.join(cls.run_dir, "checkpoints", "best.ckpt")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def export(self, ckpt, name):
        out = os.path.join(self.tmp, name)
        r = run(["export", ckpt, "--format", "torch", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_export_loads_into_torchvision_and_predicts_as_convoy_does(self):
        weights = self.export(self.best, "model.pt")
        with open(weights[:-3] + ".classes.json") as f:
            info = json.load(f)
        self.assertEqual(info["classes"], ["kind_0", "kind_1", "kind_2"])
        self.assertEqual(info["arch"], "resnet18")
        model = torchvision.models.resnet18(num_classes=3)
        model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
        model.eval()

        r = run(["predict", "--checkpoint", self.best, "--json", "--topk", "2", "--batch", "5", self.images])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(lines), 24)
        mean = torch.tensor(info["mean"]).view(3, 1, 1)
        std = torch.tensor(info["std"]).view(3, 1, 1)
        disagreements = 0
        for line in lines:
            img = torch.from_numpy(np.asarray(Image.open(line["path"]).convert("RGB")).copy())
            x = ((img.permute(2, 0, 1).float() / 255 - mean) / std).unsqueeze(0)
            with torch.no_grad():
                probs = torch.softmax(model(x), 1)[0]
            top = line["topk"]
            self.assertEqual(len(top), 2)
            self.assertEqual(top[0]["label"], info["classes"][top[0]["index"]])
            disagreements += int(probs.argmax().item() != top[0]["index"])
            self.assertAlmostEqual(probs[top[0]["index"]].item(), top[0]["prob"], delta=1e-4)
            self.assertGreaterEqual(top[0]["prob"], top[1]["prob"])
        self.assertEqual(disagreements, 0)

    def test_predict_device_choice(self):
        args = ["predict", "--checkpoint", self.best, "--json", "--topk", "1", self.images]
        default, cpu = run(args), run(args + ["--device", "cpu"])
        self.assertEqual(cpu.returncode, 0, cpu.stderr)
        self.assertEqual(default.stdout, cpu.stdout)  # auto is the CPU in a build without CUDA
        cuda = run(args + ["--device", "cuda"])
        self.assertNotEqual(cuda.returncode, 0)
        self.assertIn("no CUDA", cuda.stderr)
        self.assertEqual(cuda.stdout, "")
        bad = run(args + ["--device", "tpu"])
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("tpu", bad.stderr)

    def test_eval_reports_every_metric_and_two_ranks_agree_with_one(self):
        results = []
        for ranks in ("1", "2"):
            r = run(["eval", self.config, "--checkpoint", self.best, "--json", "--nproc-per-node", ranks,
                     "--set", f"run_root={self.tmp}/runs"])
            self.assertEqual(r.returncode, 0, r.stderr)
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        one, two = results
        for key in ("loss", "accuracy", "top5", "macro_f1", "micro_f1"):
            self.assertAlmostEqual(one[key], two[key], places=5, msg=key)
        self.assertEqual(one["confusion"], two["confusion"])
        self.assertEqual(one["samples"], 6)  # 25% of 24
        self.assertEqual(sum(map(sum, one["confusion"])), one["samples"])
        correct = sum(one["confusion"][i][i] for i in range(3))
        self.assertAlmostEqual(one["accuracy"], correct / one["samples"], places=5)
        self.assertEqual(one["top5"], 1)  # three classes
        self.assertEqual([c["class"] for c in one["per_class"]], ["kind_0", "kind_1", "kind_2"])
        for c, row in zip(one["per_class"], one["confusion"]):
            self.assertEqual(c["support"], sum(row))
        runs = sorted(d for d in os.listdir(os.path.join(self.tmp, "runs")) if "-eval-" in d)
        svg = os.path.join(self.tmp, "runs", runs[-1], "confusion-val.svg")
        with open(svg) as f:
            self.assertIn("<svg", f.read())
        # Text output, the train split.
        r = run(["eval", self.config, "--checkpoint", self.best, "--split", "train",
                 "--set", f"run_root={self.tmp}/runs"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("train split of", r.stdout)
        self.assertIn("macro F1", r.stdout)

    def test_init_from_with_a_new_head_and_a_frozen_backbone(self):
        weights = self.export(self.best, "start.pt")
        two = make_pngs(os.path.join(self.tmp, "two"), 2, 6, seed=5)
        cfg = write(os.path.join(self.tmp, "ft.pbtxt"), CONFIG.format(root=two, epochs=1, train=""))
        r = run(["launch", cfg, "--init-from", weights, "--set", "model.freeze_backbone=true",
                 "--set", f"run_root={self.tmp}/runs"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("new head (another class count): fc.weight, fc.bias", r.stdout + r.stderr)
        self.assertIn("backbone frozen", r.stdout + r.stderr)
        tuned_path = self.export(os.path.join(run_dir_of(r.stdout + r.stderr), "checkpoints", "best.ckpt"), "tuned.pt")
        tuned = torch.load(tuned_path, weights_only=True)
        start = torch.load(weights, weights_only=True)
        self.assertEqual(tuple(tuned["fc.weight"].shape), (2, 512))
        model = torchvision.models.resnet18(num_classes=2)
        model.load_state_dict(tuned, strict=True)
        for name, _ in model.named_parameters():
            if not name.startswith("fc."):
                self.assertTrue(torch.equal(tuned[name], start[name]), name)

    def test_early_stopping_and_best_metric(self):
        cfg = write(os.path.join(self.tmp, "es.pbtxt"), CONFIG.format(
            root=self.images, epochs=5,
            train='best_metric: "loss" early_stopping_patience: 1 early_stopping_min_delta: 1000'))
        r = run(["launch", cfg, "--set", f"run_root={self.tmp}/runs"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        events = read_metrics(run_dir_of(r.stdout + r.stderr))
        stops = [e for e in events if e["event"] == "early_stop"]
        self.assertEqual(len(stops), 1)
        self.assertEqual(stops[0]["epoch"], 2)  # nothing beats the first loss by 1000
        self.assertEqual(len([e for e in events if e["event"] == "eval"]), 2)
        end = [e for e in events if e["event"] == "end"][0]
        self.assertEqual(end["best_metric"], "loss")
        first_eval = [e for e in events if e["event"] == "eval"][0]
        self.assertAlmostEqual(end["best_value"], first_eval["loss"], places=4)
        self.assertIn("macro_f1", first_eval)
        self.assertIn("confusion", first_eval)


class ReadyConfigs(unittest.TestCase):
    """Each workflow config in configs/ trains a couple of steps on data laid
    out as its dataset is (small images; the architecture as configured)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="convoy-cfg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def launch(self, config, *sets):
        args = ["launch", os.path.join(SOURCE_DIR, "configs", config), "--set", f"run_root={self.tmp}/runs",
                "--set", "data.image.height=32", "--set", "data.image.width=32", "--set", "data.batch_size=4",
                "--set", "train.max_steps=2", "--set", "train.threads_per_rank=1", "--set", "device=cpu",
                "--set", "data_service.decode_threads=1"]
        for s in sets:
            args += ["--set", s]
        r = run(args, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        events = read_metrics(run_dir_of(r.stdout + r.stderr))
        self.assertEqual(events[-1]["event"], "end")
        return events

    def jpeg(self, path, shade):
        img = np.full((40, 48, 3), shade % 256, dtype=np.uint8)
        Image.fromarray(img).save(path, quality=90)

    def test_plant_pathology_one_hot_csv_resnet50(self):
        images = os.path.join(self.tmp, "images")
        os.makedirs(images)
        rows = ["image_id,healthy,multiple_diseases,rust,scab"]
        for i in range(16):
            self.jpeg(os.path.join(images, f"Train_{i}.jpg"), 20 * i)
            hot = [0, 0, 0, 0]
            hot[i % 4] = 1
            rows.append(f"Train_{i}," + ",".join(map(str, hot)))
        csv = write(os.path.join(self.tmp, "train.csv"), "\n".join(rows) + "\n")
        events = self.launch("plant_pathology.pbtxt", f"data.csv.train={csv}", f"data.csv.image_dir={images}")
        self.assertEqual(events[0]["model"], "resnet50")
        self.assertEqual(events[0]["classes"], ["healthy", "multiple_diseases", "rust", "scab"])

    def test_rice_vit_b_16_split_80_20(self):
        root = make_pngs(os.path.join(self.tmp, "rice"), 5, 4, size=40)
        events = self.launch("rice_vit.pbtxt", f"data.image_folder.root={root}")
        self.assertEqual(events[0]["model"], "vit_b_16")
        self.assertEqual(events[0]["steps_per_epoch"], 4)  # 16 of 20 images train, batch 4

    def test_dogs_vs_cats_labels_from_file_names_cnn_and_vgg19_bn(self):
        train = os.path.join(self.tmp, "train")
        os.makedirs(train)
        for i in range(10):
            self.jpeg(os.path.join(train, f"cat.{i}.jpg"), 40)
            self.jpeg(os.path.join(train, f"dog.{i}.jpg"), 200)
        for config, arch in (("dogs_vs_cats.pbtxt", "cnn"), ("dogs_vs_cats_vgg19bn.pbtxt", "vgg19_bn")):
            events = self.launch(config, f"data.file_names.root={train}")
            self.assertEqual(events[0]["model"], arch)
            self.assertEqual(events[0]["classes"], ["cat", "dog"])

    def test_segmentation_unet_on_a_generated_set(self):
        """configs/segmentation.pbtxt end to end on a few images of
        bench/make_segmentation_set.py's kind: 2 ranks, 2 epochs, masks
        through the ring, dice+ce, per-pixel evaluation, best.ckpt by IoU."""
        root = os.path.join(self.tmp, "seg")
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "bench", "make_segmentation_set.py"), root,
                        "--train", "16", "--val", "8", "--test", "8"], check=True, stdout=subprocess.DEVNULL)
        args = ["launch", "--nproc-per-node", "2", os.path.join(SOURCE_DIR, "configs", "segmentation.pbtxt"),
                "--set", f"run_root={self.tmp}/runs", "--set", f"data.segmentation_folder.root={root}",
                "--set", "data.image.height=64", "--set", "data.image.width=64", "--set", "data.batch_size=4",
                "--set", "train.epochs=2", "--set", "data_service.decode_threads=1"]
        r = run(args, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        run_dir = run_dir_of(r.stdout + r.stderr)
        events = read_metrics(run_dir)
        self.assertEqual(events[0]["model"], "unet")
        self.assertEqual(events[0]["classes"], ["background", "hubble_deep_field", "retina", "ihc"])
        evals = [e for e in events if e["event"] == "eval"]
        self.assertEqual(sorted({e["split"] for e in evals}), ["test", "val"])
        def labelled_pixels(split):  # in the original masks (255: unlabelled)
            total = 0
            for name in os.listdir(os.path.join(root, split + "annot")):
                with Image.open(os.path.join(root, split + "annot", name)) as m:
                    total += int((np.array(m) != 255).sum())
            return total

        # Scored at each image's own size (256-384 px), not at the 64 px the
        # model sees: every labelled pixel of the split's masks counts once.
        pixels = {split: labelled_pixels(split) for split in ("val", "test")}
        self.assertGreater(pixels["val"], 8 * 256 * 256 * 0.9)
        for e in evals:
            self.assertTrue(0 <= e["mean_iou"] <= 1 and 0 <= e["mean_dice"] <= 1, e)
            self.assertEqual(e["samples"], pixels[e["split"]], e)
            self.assertEqual(len(e["per_class"]), 4)
            self.assertTrue(all("iou" in c for c in e["per_class"]))
            self.assertEqual(len(e["confusion"]), 4)
        self.assertEqual(events[-1]["best_metric"], "iou")
        self.assertTrue(os.path.exists(os.path.join(run_dir, "checkpoints", "best.ckpt")))
        train = [e for e in events if e["event"] == "train"]
        self.assertTrue(all(e["loss"] > 0 for e in train), train)

        # The report's grid: image | true mask | predicted mask, 4 rows, each
        # a whole image as the model saw it (shorter side 64 px).
        with Image.open(os.path.join(run_dir, "mask-samples.png")) as png:
            grid = np.array(png.convert("RGB"))
        content = ~np.all(grid == 255, axis=(1, 2))
        rows, start = [], None
        for y, c in enumerate(list(content) + [False]):
            if c and start is None:
                start = y
            elif not c and start is not None:
                rows.append((start, y))
                start = None
        self.assertEqual(len(rows), 4, rows)
        palette = {(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (255, 255, 255)}  # VOC's; white: unlabelled
        colours = set()
        for y0, y1 in rows:
            row = grid[y0:y1]
            w = (int(np.nonzero(~np.all(row == 255, axis=(0, 2)))[0].max()) + 1 - 8) // 3
            self.assertEqual(min(y1 - y0, w), 64, (y0, y1, w))
            self.assertLessEqual(max(y1 - y0, w), 96, (y0, y1, w))  # sources: 256-384 px
            for panel in (row[:, w + 4:2 * w + 4], row[:, 2 * w + 8:3 * w + 8]):
                self.assertTrue({tuple(p) for p in panel.reshape(-1, 3)} <= palette)
            colours |= {tuple(p) for p in row[:, w + 4:2 * w + 4].reshape(-1, 3)}
        self.assertGreater(len(colours), 1, "masks with objects")
        with open(os.path.join(run_dir, "report.html")) as f:
            self.assertIn('id="mask-samples" alt="validation images with true and predicted masks" '
                          'src="data:image/png;base64,', f.read())

        # convoy predict: one class-id mask per image at the image's own size.
        out = os.path.join(self.tmp, "masks")
        test_dir = os.path.join(root, "test")
        r = run(["predict", "--checkpoint", os.path.join(run_dir, "checkpoints", "best.ckpt"), "--out", out,
                 "--overlay", "--json", test_dir], timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(len(lines), 8)
        for line in lines:
            with Image.open(line["path"]) as image, Image.open(line["mask"]) as m:
                size, mask = image.size, np.array(m)
            name = os.path.splitext(os.path.basename(line["path"]))[0]
            self.assertEqual(line["mask"], os.path.join(out, name + ".png"))
            self.assertEqual(mask.shape, (size[1], size[0]))
            self.assertEqual((line["width"], line["height"]), size)
            self.assertTrue(mask.max() <= 3, line)
            self.assertEqual(sorted(line["fractions"]), sorted(events[0]["classes"]))
            for c, name in enumerate(events[0]["classes"]):
                self.assertAlmostEqual(line["fractions"][name], float((mask == c).mean()), places=6)
            with Image.open(line["overlay"]) as overlay:
                self.assertEqual(overlay.size, size)

        # convoy eval scores what convoy predict draws: the confusion of the
        # predicted masks against the true ones, at the original size, is
        # eval's (float32 both; the two normalise in a different order, so a
        # pixel on a tie may differ).
        r = run(["eval", os.path.join(SOURCE_DIR, "configs", "segmentation.pbtxt"), "--checkpoint",
                 os.path.join(run_dir, "checkpoints", "best.ckpt"), "--split", "test", "--json",
                 "--set", f"run_root={self.tmp}/runs", "--set", f"data.segmentation_folder.root={root}",
                 "--set", "data.image.height=64", "--set", "data.image.width=64", "--set", "data.batch_size=4",
                 "--set", "train.amp=none"], timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        scored = json.loads(r.stdout.splitlines()[-1])
        confusion = np.zeros((4, 4), dtype=np.int64)
        for line in lines:
            name = os.path.splitext(os.path.basename(line["path"]))[0]
            with Image.open(line["mask"]) as p, Image.open(os.path.join(root, "testannot", name + ".png")) as t:
                predicted, truth = np.array(p).astype(np.int64), np.array(t).astype(np.int64)
            keep = truth != 255
            confusion += np.bincount(truth[keep] * 4 + predicted[keep], minlength=16).reshape(4, 4)
        self.assertEqual(scored["samples"], pixels["test"])
        self.assertEqual(int(confusion.sum()), pixels["test"])
        differing = np.abs(np.array(scored["confusion"]) - confusion).sum() / 2
        self.assertLessEqual(differing, pixels["test"] * 1e-4, (scored["confusion"], confusion.tolist()))

    def test_segmentation_needs_a_segmentation_model(self):
        root = os.path.join(self.tmp, "seg")
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "bench", "make_segmentation_set.py"), root,
                        "--train", "4", "--val", "0", "--test", "0"], check=True, stdout=subprocess.DEVNULL)
        r = run(["launch", os.path.join(SOURCE_DIR, "configs", "segmentation.pbtxt"), "--set", f"run_root={self.tmp}/r",
                 "--set", f"data.segmentation_folder.root={root}", "--set", "model.arch=resnet18"], timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("data.segmentation_folder needs a segmentation model (model.arch: unet)", r.stderr)


if __name__ == "__main__":
    unittest.main()
