#!/usr/bin/env python3
"""The graphs ONNX Runtime actually runs: netc's model against PyTorch's export, node by node.

For each network: torchvision's model (random weights), its `torch.onnx.export` (TorchScript
exporter, opset 17, dynamic batch), and `netc compile SPEC --weights` on its state_dict; then
each model through ONNX Runtime's CPU optimiser (ORT_ENABLE_ALL, the graph written out with
`optimized_model_filepath`), and the two optimised graphs compared in execution order: each
node's op, domain, attributes (an explicit default `dilations` of ones left out) and the
shapes of its weights. Names differ and are ignored. It prints "identical" or the difference.

This explains `latency.py`'s ratios: where the graphs are identical, netc's model and PyTorch's
export run the same kernels on the same data, and their latencies can differ only by noise.

    python benchmarks/ort_graphs.py                      # resnet50, vgg16, googlenet
    python benchmarks/ort_graphs.py --models resnet18

Needs torch, torchvision, onnx, onnxruntime and safetensors; netc from this checkout.
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def optimised(path: Path, ort, onnx):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(path.with_suffix(".ort.onnx"))
    options.log_severity_level = 3  # the warning that NCHWc graphs are machine-specific
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(options.optimized_model_filepath)


def signature(model, onnx) -> list[str]:
    """One line per node, in order: op, domain, attributes, weight shapes ('x' for data)."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    lines = []
    for n in model.graph.node:
        attrs = sorted((a.name, onnx.helper.get_attribute_value(a)) for a in n.attribute
                       if not (a.name == "dilations" and set(a.ints) == {1}))
        inputs = [shapes.get(i, "x") for i in n.input]
        lines.append(f"{n.domain or 'ai.onnx'}:{n.op_type} {attrs} {inputs}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet50,vgg16,googlenet")
    args = p.parse_args()
    import onnx
    import onnxruntime as ort
    import safetensors.torch
    import torch
    import torchvision

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x)}
    with tempfile.TemporaryDirectory(prefix="netc-graphs-") as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
            model = getattr(torchvision.models, name)(**kwargs).eval()
            weights = tmp / f"{name}.safetensors"
            safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                        str(weights))
            exported = tmp / f"{name}.torch.onnx"
            torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(exported),
                              opset_version=17, dynamo=False, input_names=["image"],
                              output_names=["logits"],
                              dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
            compiled = tmp / f"{name}.netc.onnx"
            subprocess.run([sys.executable, "-m", "netc", "compile", str(ROOT / "specs" / f"{name}.yaml"),
                            "--weights", str(weights), "-o", str(compiled)],
                           check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
            a = signature(optimised(exported, ort, onnx), onnx)
            b = signature(optimised(compiled, ort, onnx), onnx)
            if a == b:
                print(f"{name}: identical ({len(a)} nodes)")
                continue
            print(f"{name}: torch export {len(a)} nodes, netc {len(b)}; the differences "
                  f"(- export, + netc):")
            for line in difflib.unified_diff(a, b, lineterm="", n=0):
                if not line.startswith(("---", "+++", "@@")):
                    print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
