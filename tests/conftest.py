"""Helpers shared by the tests: write a small spec, check and compile it with netc, run it in
ONNX Runtime on the CPU.

    path = make_spec("- conv: {filters: 4, kernel: 3}", ("N", 3, 7, 7))
    graph = check(path)                       # netc's shapes
    [y] = run(compile_bytes(path), random_feeds(graph))   # ONNX Runtime's
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pytest

import netc
from netc.emit import serialize

BATCH = 2  # the batch the tests run at: N in a spec's shapes becomes this


def spec_text(layers: str, inputs, outputs=None, name: str = "t") -> str:
    """The YAML of a spec. `layers` is the text of the `layers:` list (`- relu` lines);
    `inputs` is one shape (`("N", 3, 7, 7)`, named `x`) or a dict of names to shapes."""
    if not isinstance(inputs, dict):
        inputs = {"x": inputs}
    lines = ["netc: 1", f"name: {name}", "inputs:"]
    lines += [f"  {k}: [{', '.join(map(str, shape))}]" for k, shape in inputs.items()]
    lines.append("layers:")
    lines += ["  " + line for line in textwrap.dedent(layers).strip().splitlines()]
    if outputs:
        lines.append(f"outputs: [{', '.join(outputs)}]")
    return "\n".join(lines) + "\n"


class SpecWriter:
    """Writes specs into one folder, each under a new name; calling it returns the path."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.count = itertools.count()

    def __call__(self, layers: str, inputs=("N", 3, 7, 7), outputs=None) -> Path:
        path = self.folder / f"spec{next(self.count)}.yaml"
        path.write_text(spec_text(layers, inputs, outputs), encoding="utf-8")
        return path


@pytest.fixture
def make_spec(tmp_path) -> SpecWriter:
    """`make_spec(layers_yaml, input_shape)` -> the path of a new spec file."""
    return SpecWriter(tmp_path)


@pytest.fixture(scope="module")
def spec_writer(tmp_path_factory) -> SpecWriter:
    """A module-wide SpecWriter, for hypothesis tests (which can't use function fixtures)."""
    return SpecWriter(tmp_path_factory.mktemp("specs"))


def check(path):
    """netc's public check: the checked graph, or NetcError."""
    api = getattr(netc, "check_spec", None)
    if api is None:  # the name before the API settled
        from netc.pipeline import check_file as api
    return api(path)


def compile_bytes(path, seed: int = 0) -> bytes:
    return serialize(netc.compile_spec(path, seed=seed))


def session(model: bytes):
    """A single-threaded CPU session (small models: threads only add start-up time)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the tests compare shapes themselves
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def concrete(shape, batch: int = BATCH) -> tuple[int, ...]:
    """A netc shape with its symbolic batch replaced by `batch`."""
    return tuple(batch if isinstance(d, str) else d for d in shape)


def random_feeds(graph, batch: int = BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(concrete(v.shape, batch)).astype(np.float32)
            for v in graph.inputs}


def run(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session(model).run(None, feeds)
