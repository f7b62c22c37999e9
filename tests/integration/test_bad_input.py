"""Bad input ends in a one-line actionable error and a non-zero exit, never a
crash or a hang: missing dataset, misspelt field, corrupt image, unknown
subcommand or option; for segmentation, a missing mask folder, a mask of
another size, a pixel that is no class id, an unreadable mask."""
import os
import unittest

import numpy as np
from PIL import Image

from helpers import TempDirMixin, make_folder, make_segmentation_set, processes_mentioning, read_metrics, run, \
    segmentation_launch, shm_segments, wait_for, write_config


class BadInputTest(TempDirMixin, unittest.TestCase):
    def setUp(self):
        self.tmp = self.make_tmp()

    def one_line_error(self, r):
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        return lines[0]

    def test_missing_dataset_path(self):
        cfg = write_config(self.tmp, "no/such/images")
        run_dir = os.path.join(self.tmp, "run")
        line = self.one_line_error(run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir]))
        self.assertIn("data.image_folder.root", line)
        self.assertIn("no/such/images", line)
        self.assertIn("does not exist", line)
        self.assertFalse(os.path.exists(run_dir), "nothing starts before the config is valid")

    def test_misspelt_config_field(self):
        root = make_folder(os.path.join(self.tmp, "images"), per_class=2)
        text = open(write_config(self.tmp, root)).read().replace("batch_size: 8", "batch_sise: 8")
        cfg = write_config(self.tmp, root, name="typo.pbtxt", text=text)
        line = self.one_line_error(run(["launch", "--nproc-per-node", "2", cfg]))
        self.assertIn("typo.pbtxt:7:", line)
        self.assertIn('no field named "batch_sise"', line)
        line = self.one_line_error(run(["launch", "--nproc-per-node", "2", cfg.replace("typo", "folder"),
                                        "--set", "optim.momentun=0.5"]))
        self.assertIn("--set optim.momentun=0.5", line)

    def test_corrupt_image_strict_fails_with_the_file_named(self):
        root = make_folder(os.path.join(self.tmp, "images"), per_class=6, corrupt=2)
        cfg = write_config(self.tmp, root, epochs=1, strict="true")
        run_dir = os.path.join(self.tmp, "run")
        before = shm_segments()
        r = run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir], timeout=120)
        self.assertNotEqual(r.returncode, 0)
        last = r.stderr.strip().splitlines()[-1]
        self.assertIn("corrupt image", last)
        self.assertIn("corrupt_", last)
        self.assertIn("data.strict", last, "the hint says how to skip instead")
        wait_for(lambda: not processes_mentioning(run_dir), 15, "no process left")
        self.assertEqual(shm_segments() - before, set())

    def test_corrupt_image_is_skipped_and_counted_by_default(self):
        root = make_folder(os.path.join(self.tmp, "images"), per_class=6, corrupt=2)
        cfg = write_config(self.tmp, root, epochs=2)
        run_dir = os.path.join(self.tmp, "run")
        r = run(["launch", "--nproc-per-node", "2", cfg, "--run-dir", run_dir], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skipping corrupt image", r.stderr)
        self.assertIn("corrupt image(s) in total", r.stderr)
        self.assertTrue(any(m["event"] == "eval" for m in read_metrics(run_dir)))

    def first_mask(self, root):
        masks = sorted(os.listdir(os.path.join(root, "trainannot")))
        return os.path.join(root, "trainannot", masks[0]), os.path.splitext(masks[0])[0]

    def test_missing_mask_folder_is_named_before_anything_starts(self):
        root = make_segmentation_set(os.path.join(self.tmp, "seg"))
        os.rename(os.path.join(root, "trainannot"), os.path.join(root, "elsewhere"))
        run_dir = os.path.join(self.tmp, "run")
        line = self.one_line_error(run(segmentation_launch(root, run_dir)))
        self.assertIn("data.segmentation_folder.root", line)
        self.assertIn(f"needs train/ and trainannot/ (images and their masks); {root}/trainannot does not exist", line)
        self.assertFalse(os.path.exists(run_dir), "nothing starts before the data are found")

    def test_bad_masks_strict_fail_with_the_file_named(self):
        root = make_segmentation_set(os.path.join(self.tmp, "seg"))
        path, name = self.first_mask(root)
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(path)  # another size than its image
        r = run(segmentation_launch(root, os.path.join(self.tmp, "size"), "--set", "data.strict=true"), timeout=300)
        self.assertNotEqual(r.returncode, 0)
        last = r.stderr.strip().splitlines()[-1]
        self.assertIn("unusable image/mask pair", last)
        self.assertIn(f"train/{name}.jpg: its mask is 12x10", last)
        self.assertIn("data.strict", last)

        with open(path, "wb") as f:  # unreadable
            f.write(b"not a png at all")
        r = run(segmentation_launch(root, os.path.join(self.tmp, "unreadable"), "--set", "data.strict=true"),
                timeout=300)
        self.assertNotEqual(r.returncode, 0)
        last = r.stderr.strip().splitlines()[-1]
        self.assertIn(f"cannot decode mask {path}", last)

    def test_a_pixel_that_is_no_class_is_skipped_and_counted_by_default(self):
        root = make_segmentation_set(os.path.join(self.tmp, "seg"))
        path, _ = self.first_mask(root)
        with Image.open(path) as m:
            mask = np.array(m)
        mask[3, 5] = 9  # 4 classes: 0..3, and 255 unlabelled
        Image.fromarray(mask).save(path)
        run_dir = os.path.join(self.tmp, "run")
        r = run(segmentation_launch(root, run_dir), timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"skipping unusable image/mask pair (reported once): mask {path}: pixel (5, 3) holds 9, "
                      "which is no class id", r.stderr)
        self.assertRegex(r.stderr, r"skipped \d+ unusable image/mask pair\(s\) in total")
        self.assertTrue(any(m["event"] == "eval" for m in read_metrics(run_dir)))

    def test_unknown_subcommand_and_option(self):
        line = self.one_line_error(run(["trian"]))
        self.assertIn("unknown command 'trian'", line)
        line = self.one_line_error(run(["launch", "--nproc", "2", "x.pbtxt"]))
        self.assertIn("unknown option --nproc", line)
        self.assertIn("--help", line)
        line = self.one_line_error(run(["launch", "--nproc-per-node", "2", "missing.pbtxt"]))
        self.assertIn("missing.pbtxt does not exist", line)


if __name__ == "__main__":
    unittest.main()
