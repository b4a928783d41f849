"""torchvision's own checkpoints compile with `--weights` without any renaming, and the ONNX
model computes what torchvision's model computes.

Runs where torchvision is installed (it is a benchmark and interop dependency, not a test
requirement: `pip install torch==2.14.1 torchvision==0.29.1`); elsewhere it is skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed "
                                  "(pip install torch==2.14.1 torchvision==0.29.1)")
safetensors_torch = pytest.importorskip("safetensors.torch")

import onnxruntime as ort  # noqa: E402

from netc.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

MODELS = {
    "alexnet": lambda: torchvision.models.alexnet(),
    "vgg16": lambda: torchvision.models.vgg16(),
    "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True),
    "resnet50": lambda: torchvision.models.resnet50(),
    "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(),
    "vgg16_bn": lambda: torchvision.models.vgg16_bn(),
    "resnext50_32x4d": lambda: torchvision.models.resnext50_32x4d(),
    "wide_resnet50_2": lambda: torchvision.models.wide_resnet50_2(),
    "inception_v3": lambda: torchvision.models.inception_v3(
        aux_logits=False, transform_input=False, init_weights=True),
    "mnasnet1_0": lambda: torchvision.models.mnasnet1_0(),
    "densenet121": lambda: torchvision.models.densenet121(),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(),
    "mobilenet_v3_large": lambda: torchvision.models.mobilenet_v3_large(),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(),
    "shufflenet_v2_x1_0": lambda: torchvision.models.shufflenet_v2_x1_0(),
    "regnet_y_400mf": lambda: torchvision.models.regnet_y_400mf(),
    "efficientnet_v2_s": lambda: torchvision.models.efficientnet_v2_s(),
    "convnext_tiny": lambda: torchvision.models.convnext_tiny(),
    # segmentation, without the auxiliary heads; their output is the dict's "out"
    "fcn_resnet50": lambda: torchvision.models.segmentation.fcn_resnet50(
        weights_backbone=None, aux_loss=False),
    "deeplabv3_resnet50": lambda: torchvision.models.segmentation.deeplabv3_resnet50(
        weights_backbone=None, aux_loss=False),
    "lraspp_mobilenet_v3_large": lambda: torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights_backbone=None),
}
# The input size where it is not 224x224 (EfficientNetV2-S: the size its weights are for).
SIZES = {"inception_v3": 299, "efficientnet_v2_s": 384, "fcn_resnet50": 520,
         "deeplabv3_resnet50": 520, "lraspp_mobilenet_v3_large": 520}


def _out(result):
    """A classifier's output, or a segmentation model's `out` (its dict also holds `aux`)."""
    return result["out"] if isinstance(result, dict) else result


def _randomise_batchnorm(model, generator):
    """Fresh batchnorm layers are the identity, fresh layer norms too, and ConvNeXt's
    layer_scale (1e-6) all but hides its blocks: random values make the test meaningful."""
    for module in model.modules():
        with torch.no_grad():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.normal_(1, 0.1, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
            scale = module._parameters.get("layer_scale")
            if scale is not None:
                scale.uniform_(0.5, 1.5, generator=generator)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_checkpoint_compiles_and_matches(name, tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = MODELS[name]().eval()
    _randomise_batchnorm(model, torch.Generator().manual_seed(1))
    weights = tmp_path / f"{name}.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(weights))  # as a user would

    out = tmp_path / f"{name}.onnx"
    assert main(["compile", str(ROOT / "specs" / f"{name}.yaml"), "--weights", str(weights),
                 "-o", str(out)]) == 0

    size = SIZES.get(name, 224)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = _out(model(x)).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"image": x.numpy()})
    relative = np.abs(got - expected).max() / np.abs(expected).max()
    assert relative < 1e-5, f"{name}: relative error {relative:.2e}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_netc_torch_loads_torchvision_state_dict(name):
    """netc.torch builds each zoo spec as a module whose state_dict is torchvision's: it loads
    with nothing missing or unexpected (num_batches_tracked included), and computes what
    torchvision's model computes."""
    import netc.torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    reference = MODELS[name]().eval()
    _randomise_batchnorm(reference, torch.Generator().manual_seed(1))
    model = netc.torch.build(ROOT / "specs" / f"{name}.yaml")
    result = model.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.train(False)
    size = SIZES.get(name, 224)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = _out(reference(x)), model(x)
    relative = ((got - expected).abs().max() / expected.abs().max()).item()
    assert relative < 1e-5, f"{name}: relative error {relative:.2e}"
