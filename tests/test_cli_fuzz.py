"""CLI-level fuzz (issue 7): mutated specs through `netc check` and `netc compile` as
subprocesses under a 2 GiB address-space limit.

The contract: exit status 0 or 1 only (never 70, an internal error, nor a crash), no
"Traceback" and no "internal error" in the output, and in the text output every error line is
`path:line:col: error[E###]: message` (or `netc: error[E###]: message` for a file-less one),
one line per error: the same errors, at the same positions, as netc reports in-process.
`--format json` must give a valid document. A failed compile leaves no file behind; a
successful one leaves a model that onnx loads.

The inputs are the mutations of test_fuzz.py (its strategies, derandomised, so the same files
every run; `NETC_FUZZ_SEED=N` draws others): `NETC_FUZZ_SCALE` (default 1) scales 200
checked files and 32 compiles. Many files
go to one `netc check` run, which accepts many paths; compiles run two at a time.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from netc.errors import CODES
from netc.tools.formats import check_spec_file
from test_fuzz import SEED, SPECS, budget, mutated_spec, spec_like

ROOT = Path(__file__).resolve().parent.parent
MEMORY = 2 << 30  # bytes of address space per netc process
CHUNK = 50  # files per `netc check`

# small specs that reach every layer type, blocks, repeat, `when`, branches and defaults, so
# that a mutant that still checks compiles in a fraction of a second
TINY_RESNET = """\
netc: 1
name: tinyres
inputs:
  image: [N, 3, 16, 16]
defaults:
  conv: {bias: false, round: floor}
blocks:
  basic:
    args: {filters: int, stride: 1, project: false}
    layers:
      - conv: {filters: $filters, kernel: 3, stride: $stride, pad: 1}
        name: conv1
      - batchnorm:
        name: bn1
      - relu
      - conv: {filters: $filters, kernel: 3, pad: 1}
        name: conv2
      - batchnorm:
        name: bn2
      - conv: {filters: $filters, kernel: 1, stride: $stride}
        name: downsample.0
        from: input
        when: $project
      - batchnorm:
        name: downsample.1
        when: $project
      - add: {from: [bn2, downsample.1]}
      - relu
layers:
  - conv: {filters: 4, kernel: 3, stride: 2, pad: 1}
    name: stem
  - maxpool: {kernel: 3, stride: 2, pad: 1, round: floor}
  - basic: {filters: 4}
    repeat: 2
    name: layer1
  - basic: {filters: 8}
    repeat: 2
    first: {stride: 2, project: true}
    name: layer2
  - globalavgpool
  - flatten
  - dense: 10
    name: fc
  - softmax
expect:
  outputs: {softmax1: [N, 10]}
"""

TINY_INCEPTION = """\
netc: 1
name: tinyinc
description: "branches, lrn, avgpool, dropout, leakyrelu, tanh, sigmoid, concat"
inputs:
  x: [N, 3, 12, 12]
blocks:
  mixed:
    args: {a: int, b: int}
    branches:
      - conv: {filters: $a, kernel: 1}
      - [conv: {filters: $b, kernel: 1}, leakyrelu: {alpha: 0.1},
         conv: {filters: $b * 2, kernel: 3, pad: 1}]
      - [maxpool: {kernel: 3, stride: 1, pad: 1}, conv: {filters: $a, kernel: 1}]
layers:
  - conv: {filters: 6, kernel: 3, pad: same, dilation: 2, groups: 3}
  - lrn: {size: 3}
  - mixed: {a: 2, b: 3}
  - avgpool: {kernel: 2, round: ceil, include_pad: true}
  - tanh
  - conv: {filters: 4, kernel: [3, 1], stride: [2, 1], pad: [1, 0, 0, 0], round: ceil}
    name: tall
  - conv: {filters: 4, kernel: 1}
    from: tall
    name: side
  - concat: {from: [tall, side], axis: 1}
  - sigmoid
  - flatten
  - dropout: 0.2
  - dense: {units: 5, init: glorot_uniform}
"""

# what these fuzzers found, kept as fixed inputs
FOUND = [
    # a misspelt attribute inside a block used twice: an internal error (TypeError)
    b"netc: 1\nname: t\ninputs:\n  x: [N, 3, 8, 8]\nblocks:\n  blk:\n    layers:\n"
    b"      - conv: {filters: 3, kernl: 3}\nlayers:\n  - blk:\n    repeat: 2\n",
    # keys with a newline, a CR and an escape sequence, printed raw
    b'netc: 1\nname: t\n"a\\nerror[E999]: b": 1\ninputs:\n  x: [N, 3, 8, 8]\nlayers:\n'
    b'  - conv: {filters: 3, kernel: 3, "x\\ry": 2, "\\e[2J": 1}\n',
    b"netc: 1\nx\x1b[31m: 1\n",
    # a forbidden character or a bad byte after a CR: the wrong line
    b"\r0\x1f", b"\x0b\x00\x80",
]
# a ceil pool whose ceil window would start past the input, before a join: ONNX Runtime
# refused the model (ceil_mode's shape inference keeps the window)
CEIL_JOIN = b"""netc: 1
name: ceiljoin
inputs:
  x: [N, 1, 2, 1]
layers:
  - maxpool: {kernel: 1, stride: [2, 1], round: ceil}
    name: l3
  - maxpool: {kernel: [2, 1], pad: [0, 0, 1, 0]}
    name: l5
  - conv: {filters: 1, kernel: 1, pad: same}
    name: l6b
    from: l3
  - concat: {from: [l6b, l5]}
"""

SMALL_SOURCES = {"lenet5.yaml": SPECS["lenet5.yaml"], "tinyres.yaml": TINY_RESNET,
                 "tinyinc.yaml": TINY_INCEPTION}

ERROR_LINE = re.compile(r"(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)"
                        r"\[(?P<code>[EW]\d{3})\]: \S")
FILELESS = re.compile(r"netc: (error|warning)\[[EW]\d{3}\]: \S")


def collect(strategy, n: int) -> list[bytes]:
    """`n` values of `strategy`, the same on every run (hypothesis, derandomised)."""
    found = []

    @settings(max_examples=n, derandomize=SEED is None, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def gather(value):
        found.append(value)

    if SEED is not None:
        gather = seed(int(SEED))(gather)

    gather()
    return found


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def netc(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "netc", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", errors="backslashreplace", timeout=120,
                          preexec_fn=limit_memory, cwd=cwd, env=env)


def assert_clean(result: subprocess.CompletedProcess, what: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode in (0, 1), f"{what}: exit {result.returncode}\n{out[-3000:]}"
    assert "Traceback" not in out, f"{what}:\n{out[-3000:]}"
    assert "internal error" not in out, f"{what}:\n{out[-3000:]}"
    return out


OTHER_LINE = re.compile(r"(netc: \d+ of \d+ specs? (has|have) (errors|warnings.*)"
                        r"|checked \d+ specs?: no errors.*|wrote .*)\Z")


def heads(text: str) -> list[tuple[str, int, int, str, str]]:
    """The first lines of the diagnostics in a text output: (path, line, col, severity,
    code). A diagnostic's other lines (source, caret, hints, notes) are indented; every
    unindented line is a well-formed first line, or the summary."""
    found = []
    for line in text.split("\n"):
        if not line or line.startswith(" "):
            continue
        m = ERROR_LINE.match(line)
        if m:
            found.append((m["path"], int(m["line"]), int(m["col"]), m["sev"], m["code"]))
            continue
        assert FILELESS.match(line) or OTHER_LINE.match(line), f"a stray line: {line!r}"
    return found


def expected(path: Path) -> list[tuple[str, int, int, str, str]]:
    """What netc reports on the file in-process."""
    return [(str(path), d.span.line, d.span.col, d.severity, d.code)
            for d in check_spec_file(str(path)).sorted()]


def write_all(folder: Path, datas: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(datas):
        path = folder / f"m{i:04d}.yaml"
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def mutants(tmp_path_factory) -> list[Path]:
    n = budget(200)
    datas = collect(mutated_spec(), n - n // 4) + collect(spec_like(), n // 4) + FOUND
    return write_all(tmp_path_factory.mktemp("cli-fuzz"), datas)


def test_check_many_mutants(mutants):
    """`netc check` on the mutants, CHUNK files per run: exit 0/1, one well-formed first line
    per diagnostic, equal to the in-process diagnostics."""
    for start in range(0, len(mutants), CHUNK):
        chunk = mutants[start:start + CHUNK]
        result = netc("check", *chunk)
        out = assert_clean(result, f"netc check {chunk[0].name}..{chunk[-1].name}")
        want = [d for p in chunk for d in expected(p)]
        got = heads(result.stderr)
        assert sorted(got) == sorted(want), "\n".join(
            [f"in-process only: {d}" for d in sorted(set(want) - set(got))]
            + [f"CLI only: {d}" for d in sorted(set(got) - set(want))]) + "\n" + out[-3000:]
        failed = any(sev == "error" for *_, sev, _ in want)
        assert result.returncode == int(failed), out[-3000:]


def test_check_json_many_mutants(mutants):
    """The same files with `--format json`: one valid document on standard output, every
    diagnostic with a documented code and a position."""
    for start in range(0, len(mutants), CHUNK):
        chunk = mutants[start:start + CHUNK]
        result = netc("check", "--format", "json", *chunk)
        assert_clean(result, "netc check --format json")
        doc = json.loads(result.stdout)
        items = doc["diagnostics"] if isinstance(doc, dict) else doc
        assert items or result.returncode == 0
        for d in items:
            assert d["code"] in CODES, d
            assert d["line"] is None or (d["line"] >= 1 and d["col"] >= 1), d


def test_compile_mutants(tmp_path):
    """`netc compile -o` on mutants of small specs: exit 0 with a model onnx loads, or exit 1
    with well-formed errors and no file (nor temporary file) left behind."""
    import onnx

    n = budget(32)
    datas = collect(mutated_spec(SMALL_SOURCES), n - 3) + [
        TINY_RESNET.encode(), TINY_INCEPTION.encode(), CEIL_JOIN]
    folders = []
    for i, data in enumerate(datas):
        folder = tmp_path / f"c{i:03d}"
        folder.mkdir()
        (folder / "spec.yaml").write_bytes(data)
        folders.append(folder)

    def one(folder: Path):
        return folder, netc("compile", "spec.yaml", "-o", "out/model.onnx", cwd=folder)

    for folder in folders:
        (folder / "out").mkdir()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, folders))
    compiled = 0
    for folder, result in results:
        out = assert_clean(result, f"netc compile {folder / 'spec.yaml'}")
        diagnostics = heads(result.stderr)
        assert all(path == "spec.yaml" for path, *_ in diagnostics), out[-3000:]
        left = sorted(p.name for p in (folder / "out").iterdir())
        if result.returncode == 0:
            compiled += 1
            assert left == ["model.onnx"], left
            onnx.checker.check_model(onnx.load(str(folder / "out" / "model.onnx")),
                                     full_check=True)
        else:
            assert any(sev == "error" for *_, sev, _ in diagnostics), out[-3000:]
            assert left == [], f"a failed compile left {left}"
    assert compiled >= 3  # the unmutated specs at least


def test_compile_out_of_memory_is_an_error(tmp_path):
    """Found by the compile fuzz's memory limit: a tensor netc allows (under 2**31 values) that
    doesn't fit in the memory the process may use was a MemoryError, reported as a netc bug
    (exit 70, a traceback). It is an error like a full disk: exit 1, E603, no file left."""
    spec = tmp_path / "big.yaml"
    spec.write_text(SPECS["lenet5.yaml"].replace("dense: 120", "dense: 2000000")
                    .split("expect:")[0])  # 800,000,000 weights: 3.2 GB in float32
    out = tmp_path / "out"
    out.mkdir()
    result = netc("compile", spec, "-o", out / "big.onnx")
    text = assert_clean(result, "netc compile big.yaml")
    assert result.returncode == 1
    assert "error[E603]: out of memory" in text
    assert list(out.iterdir()) == []
