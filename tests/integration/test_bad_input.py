"""Bad input ends in a one-line actionable error and a non-zero exit, never a
crash or a hang: missing dataset, misspelt field, corrupt image, unknown
subcommand or option."""
import os
import unittest

from helpers import TempDirMixin, make_folder, processes_mentioning, read_metrics, run, shm_segments, wait_for, \
    write_config


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
