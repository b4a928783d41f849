"""specs/unet.yaml against an independent PyTorch U-Net: the one in milesial's Pytorch-UNet
(github.com/milesial/Pytorch-UNet, unet/unet_parts.py and unet/unet_model.py), the most used
PyTorch implementation, written out below as it is there (UNet(3, 2, bilinear=False)).

The spec's layer names are that module's paths, so its state_dict loads into the compiled
model by name; the ONNX model must then compute what the module computes, and have its number
of parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference U-Net is a PyTorch module "
                            "(pip install torch)")
safetensors_torch = pytest.importorskip("safetensors.torch")

import onnxruntime as ort  # noqa: E402

import netc  # noqa: E402
from netc.cli import main  # noqa: E402

nn, F = torch.nn, torch.nn.functional
ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "unet.yaml"


# --- milesial/Pytorch-UNet, unet/unet_parts.py and unet/unet_model.py (bilinear=False) ------

class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv (the transposed-conv variant)"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        diff_y = x2.size()[2] - x1.size()[2]
        diff_x = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels, n_classes):
        super().__init__()
        self.inc = DoubleConv(n_channels, 64)
        self.down1 = Down(64, 128)
        self.down2 = Down(128, 256)
        self.down3 = Down(256, 512)
        self.down4 = Down(512, 1024)
        self.up1 = Up(1024, 512)
        self.up2 = Up(512, 256)
        self.up3 = Up(256, 128)
        self.up4 = Up(128, 64)
        self.outc = OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)

# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    """The reference U-Net with random weights and random batchnorm statistics (fresh ones are
    the identity, which would hide a batchnorm applied to the wrong tensor)."""
    torch.manual_seed(0)
    model = UNet(3, 2).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.normal_(1, 0.1, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
    return model


def test_parameter_count_is_the_reference_modules(reference):
    graph = netc.check_spec(SPEC)
    assert graph.params == sum(p.numel() for p in reference.parameters())


def test_weight_names_are_the_reference_state_dict_keys(reference):
    graph = netc.check_spec(SPEC)
    keys = [k for k in reference.state_dict() if not k.endswith("num_batches_tracked")]
    assert [w.name for w in graph.weights] == keys
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert all(w.shape == shapes[w.name] for w in graph.weights)


def test_compiled_with_its_weights_computes_what_the_reference_computes(reference, tmp_path):
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    weights = tmp_path / "unet.safetensors"
    safetensors_torch.save_file(reference.state_dict(), str(weights))
    out = tmp_path / "unet.onnx"
    assert main(["compile", str(SPEC), "--weights", str(weights), "-o", str(out)]) == 0
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"image": x.numpy()})
    assert got.shape == expected.shape == (2, 2, 256, 256)
    relative = np.abs(got - expected).max() / np.abs(expected).max()
    assert relative < 1e-5, f"relative error {relative:.2e}"


def test_netc_torch_loads_the_reference_state_dict(reference):
    import netc.torch

    model = netc.torch.build(SPEC)
    result = model.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.train(False)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5


def test_macs_are_what_torch_counts(reference):
    """netc's MACs against PyTorch's own FLOP counter on the reference module (2 FLOPs per
    multiply-accumulate of each conv and transposed conv, which is all netc counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    graph = netc.check_spec(SPEC)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        reference(torch.zeros(1, 3, 256, 256))
    assert 2 * graph.macs == counter.get_total_flops()
