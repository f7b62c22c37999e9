"""What a run shows: TensorBoard event files read back by an independent
reader (TFRecord framing, masked CRC32C, the protobuf wire format decoded by
hand), the merged Chrome-trace timeline, the HTML report rendered by headless
Chromium, the progress bar in a real terminal (tmux) and as plain lines in a
pipe, and the CLI's manners."""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import unittest

from helpers import BIN, make_folder, read_metrics, run, wait_for, write_config


# --- an independent TFRecord + Event reader -------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    """Yields each record's bytes, checking both CRCs of every record."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert len_crc == masked_crc32c(header), f"bad length CRC at byte {pos}"
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert body_crc == masked_crc32c(body), f"bad data CRC at byte {pos}"
        yield body
        pos += 16 + length


def decode_fields(buf):
    """Protobuf wire format: {field number: [values]} (varint, 64-bit,
    length-delimited, 32-bit)."""
    fields, pos = {}, 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(value)
    return fields


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def read_scalars(path):
    """TensorFlow's Event: wall_time 1 (double), step 2, file_version 3,
    summary 5; Summary.value 1; Value.tag 1, simple_value 2 (float)."""
    version, scalars = None, {}
    for record in read_records(path):
        event = decode_fields(record)
        if 3 in event:
            version = event[3][0].decode()
        for summary in event.get(5, []):
            for value in decode_fields(summary).get(1, []):
                v = decode_fields(value)
                tag = v[1][0].decode()
                scalars.setdefault(tag, []).append((event.get(2, [0])[0], struct.unpack("<f", v[2][0])[0]))
    return version, scalars


class RunOutputsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="convoy-obs-")
        folder = make_folder(os.path.join(cls.tmp.name, "images"), classes=4, per_class=40)
        cls.config = write_config(cls.tmp.name, folder, epochs=3)
        cls.run_dir = os.path.join(cls.tmp.name, "run")
        cls.result = run(["launch", "--nproc-per-node", "2", cls.config, "--run-dir", cls.run_dir,
                          "--timeline", "4", "--set", "train.timeline_start=3",
                          "--set", "train.loss_scaling=dynamic"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_run_succeeded(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)

    def test_tensorboard_events_have_valid_crcs_and_the_expected_scalars(self):
        files = [f for f in os.listdir(self.run_dir) if f.startswith("events.out.tfevents.")]
        self.assertEqual(len(files), 1, files)
        version, scalars = read_scalars(os.path.join(self.run_dir, files[0]))
        self.assertEqual(version, "brain.Event:2")
        expected = {"train/loss", "train/lr", "train/images_per_sec", "train/epoch_loss", "eval/val/loss",
                    "eval/val/accuracy", "data/errors", "time/data_wait_ms", "time/forward_ms",
                    "time/backward_ms", "time/exposed_comm_ms", "time/allreduce_total_ms", "time/optimizer_ms",
                    "train/loss_scale", "train/skipped_steps"}
        self.assertTrue(expected <= set(scalars), expected - set(scalars))
        self.assertEqual({v for _, v in scalars["train/loss_scale"]}, {65536.0})
        steps = [s for s, _ in scalars["train/loss"]]
        self.assertEqual(steps, sorted(steps))
        self.assertEqual(len(scalars["eval/val/accuracy"]), 3)
        metrics = [m for m in read_metrics(self.run_dir) if m["event"] == "eval" and m["split"] == "val"]
        for (_, tb), m in zip(scalars["eval/val/accuracy"], metrics):
            self.assertAlmostEqual(tb, m["accuracy"], places=5)

    def test_timeline_is_a_chrome_trace_with_every_rank(self):
        with open(os.path.join(self.run_dir, "timeline.json")) as f:
            trace = json.load(f)
        spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        self.assertEqual({e["pid"] for e in spans}, {0, 1})
        for rank in (0, 1):
            names = {e["name"] for e in spans if e["pid"] == rank}
            self.assertTrue({"data wait", "forward", "backward", "optimizer", "all-reduce bucket 0"} <= names, names)
            steps = {e["args"]["step"] for e in spans if e["pid"] == rank}
            self.assertEqual(steps, {3, 4, 5, 6})
        for e in spans:
            self.assertIsInstance(e["ts"], int)
            self.assertGreaterEqual(e["dur"], 0)
        # One time axis: the ranks' same step overlaps in time.
        f0 = min(e["ts"] for e in spans if e["pid"] == 0 and e["args"]["step"] == 4)
        f1 = min(e["ts"] for e in spans if e["pid"] == 1 and e["args"]["step"] == 4)
        self.assertLess(abs(f0 - f1), 2_000_000)
        names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
        self.assertEqual(names, {"rank 0", "rank 1"})
        self.assertFalse([f for f in os.listdir(self.run_dir) if f.startswith("timeline-rank")])

    def test_report_renders_in_headless_chromium(self):
        report = os.path.join(self.run_dir, "report.html")
        self.assertTrue(os.path.exists(report))
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is missing (scripts/setup.sh installs it)")
        base = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        dom = subprocess.run(base + ["--dump-dom", "file://" + report], capture_output=True, text=True,
                             timeout=120).stdout
        self.assertGreaterEqual(dom.count("<svg"), 6, dom[:2000])
        for title in ("Training loss", "Accuracy", "Learning rate", "Throughput", "Step time"):
            self.assertIn(title, dom)
        polylines = re.findall(r'<polyline[^>]*points="([^"]+)"', dom)
        self.assertTrue(polylines and all(len(p.split()) >= 3 for p in polylines[:4]), polylines[:4])
        shot = os.path.join(self.tmp.name, "report.png")
        subprocess.run(base + ["--window-size=1200,1400", f"--screenshot={shot}", "file://" + report],
                       capture_output=True, timeout=120)
        from PIL import Image
        img = Image.open(shot).convert("RGB")
        pixels = list(img.getdata())
        ink = sum(1 for p in pixels if p != (255, 255, 255)) / len(pixels)
        self.assertGreater(ink, 0.02, "the screenshot is (nearly) blank")
        # The charts' first series colour (#1f77b4) is drawn.
        self.assertGreater(sum(1 for p in pixels if abs(p[0] - 31) < 20 and abs(p[1] - 119) < 20
                               and abs(p[2] - 180) < 20), 200)

    def test_report_layout_measured_in_headless_chromium(self):
        """Every chart's text lies inside its chart, the step-time legend's
        entries do not overlap, epoch axes have whole-number ticks, and the
        summary says on which split the best accuracy was measured, all as
        Chromium lays the page out."""
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is missing (scripts/setup.sh installs it)")
        with open(os.path.join(self.run_dir, "report.html")) as f:
            page = f.read()
        measure = """<script>
const out = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const texts = [...svg.querySelectorAll(':scope > text')].map(t => {
    const b = t.getBBox();
    return {s: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height, ya: t.getAttribute('y')};
  });
  out.push({title: svg.querySelector('title').textContent, width: svg.width.baseVal.value,
            height: svg.height.baseVal.value, texts});
}
const pre = document.createElement('pre');
pre.id = 'layout';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script></body>"""
        measured = os.path.join(self.tmp.name, "measured.html")
        with open(measured, "w") as f:
            f.write(page.replace("</body>", measure))
        dom = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              "file://" + measured], capture_output=True, text=True, timeout=120).stdout
        found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(found, dom[-2000:])
        charts = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                            .replace("&gt;", ">"))
        titles = [c["title"] for c in charts]
        self.assertTrue(any(t.startswith("Confusion matrix") for t in titles), titles)
        for c in charts:
            for t in c["texts"]:
                self.assertGreater(t["w"], 0, f"{c['title']}: text {t['s']!r} has no width (no font?)")
                self.assertGreaterEqual(t["x"], -0.5, f"{c['title']}: {t['s']!r} cut off at the left: {t}")
                self.assertLessEqual(t["x"] + t["w"], c["width"] + 0.5,
                                     f"{c['title']}: {t['s']!r} cut off at the right: {t} (width {c['width']})")
        step = next(c for c in charts if c["title"] == "step-time breakdown")
        legend = [t for t in step["texts"] if " ms (" in t["s"]]
        self.assertEqual(len(legend), 5, [t["s"] for t in step["texts"]])
        for i, a in enumerate(legend):
            for b in legend[i + 1:]:
                apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or
                         a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
                self.assertTrue(apart, f"legend entries overlap: {a} and {b}")
        for title in ("Accuracy", "Evaluation loss"):
            chart = next(c for c in charts if c["title"] == title)
            axis = [t["s"] for t in chart["texts"] if float(t["ya"]) > chart["height"] - 44]
            ticks = [float(s) for s in axis if re.fullmatch(r"-?[\d.]+", s)]
            self.assertTrue(ticks, axis)
            self.assertTrue(all(x == int(x) for x in ticks), f"{title}: epoch ticks {ticks}")
        self.assertIn("<th>best val accuracy</th>", dom)

    def test_report_on_demand(self):
        out = os.path.join(self.tmp.name, "again.html")
        r = run(["report", self.run_dir, "--out", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertIn("<svg", f.read())
        r = run(["report", os.path.join(self.tmp.name, "nowhere")])
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


class ProgressTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="convoy-progress-")
        folder = make_folder(os.path.join(self.tmp.name, "images"), classes=4, per_class=60,
                             min_side=60, max_side=100)
        self.config = write_config(self.tmp.name, folder, epochs=4)

    def tearDown(self):
        self.tmp.cleanup()

    def test_bar_redraws_in_place_in_a_terminal(self):
        self.assertIsNotNone(shutil.which("tmux"), "tmux is missing (scripts/setup.sh installs it)")
        session = f"convoy-test-{os.getpid()}"
        run_dir = os.path.join(self.tmp.name, "tty")
        stream = os.path.join(self.tmp.name, "tty.out")
        go = os.path.join(self.tmp.name, "go")
        # Everything the terminal receives is copied to `stream` (tmux
        # pipe-pane), so no redraw is missed between two looks at the
        # screen; the launch waits until the copy is in place. 96 px: epochs
        # long enough (about a second each here) for a bar to be drawn.
        cmd = (f"while [ ! -e {go} ]; do sleep 0.05; done; "
               f"{os.path.abspath(BIN)} launch --nproc-per-node 2 {self.config} --run-dir {run_dir} "
               f"--set model.width=32 --set data.image.height=96 --set data.image.width=96; sleep 30")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "60", cmd], check=True)
        try:
            subprocess.run(["tmux", "pipe-pane", "-t", session, "-o", f"cat >> {stream}"], check=True)
            open(go, "w").close()

            def received():
                try:
                    with open(stream, errors="replace") as f:
                        return f.read()
                except OSError:
                    return ""

            wait_for(lambda: "all workers finished" in received(), 120, "the run to finish in the terminal")
            final = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                   text=True).stdout
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        # Every state the bar was drawn in (each redraw begins with \r).
        bars = [part for part in re.split(r"[\r\n]", received()) if "ETA" in part and "img/s" in part]
        self.assertIn("all workers finished", final)
        self.assertTrue(bars, "no progress bar seen")
        self.assertTrue(any(re.search(r"\[worker 0\] epoch \d/4 \[[=> ]+\] \d+/\d+", b) for b in bars), bars[:5])
        # Drawn in place: on screen, at most one bar line at any time (none
        # left behind by finished epochs), and the epoch lines are intact.
        self.assertLessEqual(len([line for line in final.splitlines() if "ETA" in line]), 1, final)
        self.assertEqual(len(re.findall(r"epoch \d/4: train loss", final)), 4, final)

    def test_pipe_gets_plain_lines(self):
        run_dir = os.path.join(self.tmp.name, "pipe")
        r = run(["launch", "--nproc-per-node", "2", self.config, "--run-dir", run_dir],
                env={"CONVOY_PROGRESS_INTERVAL": "0.05"})
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout + r.stderr
        self.assertNotIn("\r", text)
        self.assertNotIn("\033", text)
        line = r"\[worker 0\] .*epoch 1/4: \d+/\d+ +\d+ img/s +loss [\d.]+ +lr [\d.e-]+ +ETA (\d+):(\d\d), run (\d+):(\d\d) \(\d+%\)"
        self.assertRegex(text, line)
        # The run's ETA covers three more epochs after this one: never less
        # than the epoch's.
        for m in re.finditer(line, text):
            epoch_eta, run_eta = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
            self.assertGreaterEqual(run_eta, epoch_eta, m[0])


class CliTest(unittest.TestCase):
    def test_version_names_libtorch_and_gpu_support(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"convoy \d+\.\d+\.\d+\nLibTorch \d+\.\d+\.\d+; CUDA: (yes|no); c10d NCCL: (yes|no)")
        self.assertRegex(r.stdout, r"\ndevice auto: (cpu: .* \(flags: .*\)|cuda.*)\nauto settings here")
        self.assertRegex(r.stdout, r"\n  amp auto -> (bf16|none): .*\n  channels_last auto -> (true|false): .*\n"
                                   r"  conv_algorithm auto -> ")
        # With oneDNN held below bf16 (how an AVX2-only CPU is imitated), no
        # CPU counts as computing bf16 natively.
        capped = run(["--version"], env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
        self.assertRegex(capped.stdout, r"\n  amp auto -> none: ")

    def test_every_subcommand_has_help_with_usage_and_example(self):
        for cmd in (["launch"], ["worker"], ["data-service"], ["pack"], ["bench"], ["bench", "data"], ["report"]):
            r = run(cmd + ["--help"])
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: convoy", r.stdout, cmd)
            self.assertIn("example:", r.stdout, cmd)

    def test_errors_are_one_line_with_a_hint(self):
        for cmd in (["launch", "--no-such-flag"], ["nope"], ["bench", "nope"], ["--log-level", "loud", "launch"]):
            r = run(cmd)
            self.assertEqual(r.returncode, 2, cmd)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (cmd, r.stderr))
            self.assertRegex(lines[0], r"error: .*(see|use|benchmarks:|commands:)", cmd)

    def test_log_level_flag_and_environment(self):
        with tempfile.TemporaryDirectory(prefix="convoy-cli-") as tmp:
            folder = make_folder(os.path.join(tmp, "images"), classes=2, per_class=8)
            cfg = write_config(tmp, folder, epochs=1)
            debug = run(["--log-level", "debug", "launch", "--nproc-per-node", "1", cfg, "--run-dir",
                         os.path.join(tmp, "a")])
            self.assertEqual(debug.returncode, 0, debug.stderr)
            self.assertIn(" debug ", debug.stderr)
            quiet = run(["launch", "--nproc-per-node", "1", cfg, "--run-dir", os.path.join(tmp, "b")],
                        env={"CONVOY_LOG_LEVEL": "warn"})
            self.assertEqual(quiet.returncode, 0, quiet.stderr)
            self.assertNotIn(" info ", quiet.stderr + quiet.stdout)



class ReportConfusionTest(unittest.TestCase):
    def test_an_eval_with_a_confusion_matrix_gets_a_heat_map(self):
        with tempfile.TemporaryDirectory(prefix="convoy-report-") as tmp:
            events = [
                {"event": "start", "world_size": 1, "batch_size": 4, "steps_per_epoch": 2, "epochs": 1,
                 "model": "cnn", "parameters": 1000, "global_step": 0, "classes": ["cat", "dog", "fox"]},
                {"event": "train", "epoch": 1, "step": 2, "loss": 1.0, "lr": 0.1, "images_per_sec": 10,
                 "breakdown_ms": {"data_wait": 1, "forward": 2, "backward": 3, "exposed_comm": 0, "optimizer": 1}},
                {"event": "eval", "epoch": 1, "split": "val", "loss": 0.9, "accuracy": 0.5, "samples": 12,
                 "confusion": [[3, 1, 0], [1, 2, 1], [0, 3, 1]]},
            ]
            with open(os.path.join(tmp, "metrics.jsonl"), "w") as f:
                f.write("\n".join(json.dumps(e) for e in events) + "\n{\"event\": \"train\", \"cut sh")
            r = run(["report", tmp])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "report.html")) as f:
                page = f.read()
            self.assertIn("Confusion matrix (val, epoch 1)", page)
            self.assertEqual(page.count("<rect x=\"110"), 3, "one row of cells starts per class")
            for label in ("cat", "dog", "fox"):
                self.assertIn(f">{label}</text>", page)


if __name__ == "__main__":
    unittest.main()
