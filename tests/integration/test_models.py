"""Parity with torchvision 0.14 (Debian's python3-torchvision): the same
weights give the same logits in Convoy and in torchvision, whichever side
made them. Convoy's side runs through tests/tools/model_parity.cpp.

Tolerance: |convoy - torchvision| <= 1e-4 + 1e-4 * |torchvision| per logit,
in float32 and eval mode (BatchNorm running statistics randomised so that
they matter). Both sides run the same ATen kernels; what differs is the order
of a few floating-point sums."""
import os
import shutil
import subprocess
import tempfile
import unittest

import torch
import torchvision
from torchvision.models.vision_transformer import VisionTransformer

from helpers import make_segmentation_set, read_metrics, run, segmentation_launch
from smp_unet import Unet

PARITY = os.environ.get("CONVOY_MODEL_PARITY", "build/tests/model_parity")
CLASSES = 5
RTOL, ATOL = 1e-4, 1e-4


def vit(layers, heads, hidden, mlp, size, patch=16):
    return VisionTransformer(image_size=size, patch_size=patch, num_layers=layers, num_heads=heads,
                             hidden_dim=hidden, mlp_dim=mlp, num_classes=CLASSES)


# Convoy arch -> (torchvision constructor, image height, width). Small
# images keep the test fast; every layer still runs.
MODELS = {
    "resnet18": (lambda h: torchvision.models.resnet18(num_classes=CLASSES), 64, 64),
    "resnet34": (lambda h: torchvision.models.resnet34(num_classes=CLASSES), 64, 48),
    "resnet50": (lambda h: torchvision.models.resnet50(num_classes=CLASSES), 64, 64),
    "vgg11": (lambda h: torchvision.models.vgg11(num_classes=CLASSES), 32, 32),
    "vgg11_bn": (lambda h: torchvision.models.vgg11_bn(num_classes=CLASSES), 32, 32),
    "vgg16": (lambda h: torchvision.models.vgg16(num_classes=CLASSES), 32, 32),
    "vgg19_bn": (lambda h: torchvision.models.vgg19_bn(num_classes=CLASSES), 32, 32),
    "vit_b_16": (lambda h: torchvision.models.vit_b_16(image_size=h, num_classes=CLASSES), 32, 32),
    # torchvision 0.14 has no ViT-Ti/S constructors; its VisionTransformer
    # class with DeiT's shapes is the reference.
    "vit_ti_16": (lambda h: vit(12, 3, 192, 768, h), 48, 48),
    "vit_s_8": (lambda h: vit(12, 6, 384, 1536, h, patch=8), 32, 32),
}


def randomise_statistics_and_head(model):
    """BatchNorm statistics and the (zero-initialised, for ViT) head, so that
    eval-mode logits depend on every tensor."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
        head = {"resnet": "fc.", "vgg": "classifier.6.", "vit": "heads.head.", "unet": "segmentation_head."}
        for name, p in model.named_parameters():
            if any(name.startswith(h) for h in head.values()):
                p.normal_(0, 0.02)


class ParityHelpers:
    """Running Convoy's side (model_parity) and comparing logits."""

    def convoy(self, arch, h, w, state, x, out_state=None):
        inp, out = os.path.join(self.tmp, "x.pt"), os.path.join(self.tmp, "logits.pt")
        # Two entries: LibTorch's unpickler lacks SETITEM, which pickle uses
        # for a dict of one.
        torch.save({"x": x, "unused": torch.zeros(1)}, inp)
        args = [PARITY, arch, str(CLASSES), str(h), str(w), state, inp, out] + ([out_state] if out_state else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return torch.load(out, weights_only=True)["logits"]

    def check_close(self, ours, theirs, what):
        self.assertEqual(tuple(ours.shape), tuple(theirs.shape))
        err = (ours - theirs).abs()
        bound = ATOL + RTOL * theirs.abs()
        self.assertTrue(bool((err <= bound).all()),
                        f"{what}: max |diff| {err.max().item():.3g} over logits up to {theirs.abs().max().item():.3g}")
        self.assertGreater(theirs.std().item(), 1e-3, f"{what}: degenerate logits prove nothing")


class SmpUnetParity(ParityHelpers, unittest.TestCase):
    """Convoy's unet against the SMP-named reference (smp_unet.py): the same
    per-pixel logits for the same weights, whichever side made them, and
    state_dicts that load strictly both ways."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="convoy-unet-parity-")
        torch.set_num_threads(2)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_both_directions(self):
        for encoder, h, w in (("resnet18", 64, 96), ("resnet50", 64, 64)):
            with self.subTest(encoder=encoder):
                arch = "unet:" + encoder
                # SMP -> Convoy
                torch.manual_seed(3)
                ref = Unet(encoder, classes=CLASSES)
                randomise_statistics_and_head(ref)
                ref.eval()
                state = os.path.join(self.tmp, "smp.pt")
                torch.save(dict(ref.state_dict()), state)
                x = torch.randn(2, 3, h, w)
                with torch.no_grad():
                    expected = ref(x)
                self.assertEqual(tuple(expected.shape), (2, CLASSES, h, w))
                ours = self.convoy(arch, h, w, state, x)
                self.check_close(ours, expected, arch + " smp -> convoy")
                # Convoy -> SMP
                out_state = os.path.join(self.tmp, "convoy.pt")
                ours = self.convoy(arch, h, w, "-", x, out_state=out_state)
                ref = Unet(encoder, classes=CLASSES)
                ref.load_state_dict(torch.load(out_state, weights_only=True), strict=True)
                ref.eval()
                with torch.no_grad():
                    theirs = ref(x)
                self.check_close(ours, theirs, arch + " convoy -> smp")


class TorchvisionParity(ParityHelpers, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="convoy-parity-")
        torch.set_num_threads(2)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_torchvision_weights_in_convoy(self):
        for arch, (make, h, w) in MODELS.items():
            with self.subTest(arch=arch):
                torch.manual_seed(1)
                model = make(h)
                randomise_statistics_and_head(model)
                model.eval()
                state = os.path.join(self.tmp, "tv.pt")
                torch.save(dict(model.state_dict()), state)
                x = torch.randn(2, 3, h, w)
                with torch.no_grad():
                    expected = model(x)
                self.check_close(self.convoy(arch, h, w, state, x), expected, arch + " torchvision -> convoy")
                os.remove(state)

    def test_convoy_weights_in_torchvision(self):
        for arch, (make, h, w) in MODELS.items():
            with self.subTest(arch=arch):
                torch.manual_seed(2)
                x = torch.randn(2, 3, h, w)
                state = os.path.join(self.tmp, "convoy.pt")
                ours = self.convoy(arch, h, w, "-", x, out_state=state)
                model = make(h)
                model.load_state_dict(torch.load(state, weights_only=True), strict=True)
                model.eval()
                with torch.no_grad():
                    theirs = model(x)
                self.check_close(ours, theirs, arch + " convoy -> torchvision")
                os.remove(state)

    def test_an_ordered_dict_gets_an_actionable_error(self):
        state = os.path.join(self.tmp, "od.pt")
        torch.save(torchvision.models.resnet18(num_classes=CLASSES).state_dict(), state)
        x = torch.zeros(1, 3, 32, 32)
        inp, out = os.path.join(self.tmp, "x.pt"), os.path.join(self.tmp, "o.pt")
        torch.save({"x": x, "unused": x}, inp)
        r = subprocess.run([PARITY, "resnet18", str(CLASSES), "32", "32", state, inp, out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("torch.save(dict(model.state_dict()), PATH)", r.stderr)

    def test_wrong_architecture_names_the_mismatch(self):
        state = os.path.join(self.tmp, "r18.pt")
        torch.save(dict(torchvision.models.resnet18(num_classes=CLASSES).state_dict()), state)
        inp, out = os.path.join(self.tmp, "x.pt"), os.path.join(self.tmp, "o.pt")
        torch.save({"x": torch.zeros(1, 3, 32, 32), "unused": torch.zeros(1)}, inp)
        r = subprocess.run([PARITY, "resnet34", str(CLASSES), "32", "32", state, inp, out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing: layer1.2.conv1.weight", r.stderr)


class SegmentationDdp(unittest.TestCase):
    """The DDP equivalence with masks, through the whole launch (data
    service, ring, sampler, loss sums all-reduced in the forward pass): one
    rank with batch 4 and two ranks with batch 2, same seed, train the U-Net
    to the same weights and log the same losses. BatchNorm frozen: in
    training mode it normalises each rank's own batch, as PyTorch's DDP
    without SyncBatchNorm. SGD: Adam's first steps turn the float noise of a
    near-zero gradient into a full-size step."""

    def test_one_rank_and_two_train_the_same_unet(self):
        tmp = tempfile.mkdtemp(prefix="convoy-seg-ddp-")
        self.addCleanup(shutil.rmtree, tmp, True)
        root = make_segmentation_set(os.path.join(tmp, "seg"), train=16, val=4)
        weights, losses = {}, {}
        for nproc, batch in ((1, 4), (2, 2)):
            run_dir = os.path.join(tmp, f"ranks{nproc}")
            args = segmentation_launch(root, run_dir, "--set", f"data.batch_size={batch}", "--set", "train.epochs=2",
                                       "--set", "model.freeze_batch_norm=true", "--set", "train.amp=none",
                                       "--set", "optim.optimizer=sgd", "--set", "optim.lr=0.01",
                                       "--set", "optim.momentum=0.9", "--set", "train.log_every_steps=1")
            args[args.index("--nproc-per-node") + 1] = str(nproc)
            r = run(args, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            ckpts = sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.startswith("step-"))
            out = os.path.join(tmp, f"ranks{nproc}.pt")
            r = run(["export", os.path.join(run_dir, "checkpoints", ckpts[-1]), "--format", "torch", out])
            self.assertEqual(r.returncode, 0, r.stderr)
            weights[nproc] = torch.load(out)
            losses[nproc] = [m["loss"] for m in read_metrics(run_dir) if m.get("event") == "train"]
        self.assertEqual(len(losses[1]), 8)  # 2 epochs of 16 images / 4
        self.assertGreater(max(losses[1]) - min(losses[1]), 0.05, "it trained")
        # Float sums in another order drift apart a little, step by step:
        # measured 4e-5 (relative) by the 7th step, 1.3e-5 in the weights.
        self.assertEqual(losses[1][0], losses[2][0])
        for a, b in zip(losses[1], losses[2]):
            self.assertAlmostEqual(a, b, delta=2e-4 * max(1.0, abs(a)))
        self.assertEqual(sorted(weights[1]), sorted(weights[2]))
        worst = max(float((weights[1][k].float() - weights[2][k].float()).abs().max()) for k in weights[1])
        self.assertLess(worst, 1e-4, "largest weight difference")


if __name__ == "__main__":
    unittest.main()
