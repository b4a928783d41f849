"""Invariant (b) of issue 15: no input file and no option value makes any command exit 70.

Every command and every option is taken from netc's own argparse parser (`netc.cli._parser`:
its subparsers and their actions), so that an option added tomorrow is fuzzed without a change
here. Each option gets hostile values by its kind, read off the action itself:

- numbers (an action with a `type` function): 0, -1, 2^63, 10^23, nan, inf, -inf, 1e309, '',
  'x', and the same inside the option's template (`NAME=N`: each limit name; `N[,N...]`;
  `LOW:HIGH`), plus malformed templates (`=`, a name without `=N`, a wrong-case name);
- choices: the right word in the wrong case, '', 'x';
- paths read (positionals and untyped options): a missing file, a folder, a FIFO, /dev/zero (by
  a link, so that no command could ever replace the device), a UNIX socket, an empty file,
  garbage and a truncated file of each format netc reads (.yaml, .onnx, .npy, .npz,
  .safetensors, .png, .jpg), a dangling link, a link loop, a file without read permission, a
  valid file whose name is not UTF-8, one whose name is 255 bytes, and an odd but valid file
  (`_odd`: a model whose outputs are a sequence and an empty tensor, a batch of 0, a 16-bit
  PNG...); every kind with every option, the file's extension varying (netc dispatches on it);
- paths written (`dest` output, or a metavar OUT... or DIR): a folder, a FIFO, a missing
  folder, a path under a file, a dangling link, a name that is not UTF-8, a 255-byte name,
  '';
- and combinations: each command with a few of its options at working values and one hostile.

Each case is a process of its own under a 2 GiB address-space limit, with a timeout that only
catches hangs (it is no performance assertion). The contract: exit 0, 1 or
2; exit 1 prints an `error[E###]` and exit 2 a usage error (`netc CMD: error: ...`); never a
traceback or "internal error"; standard output and standard error are valid UTF-8, and a
`--format json`/`sarif` document parses and holds no lone surrogate.

Cost: about 700 processes, 30 s on two idle cores (budget: 90 s). Most are forked from a
process that has imported netc and its libraries once (`SERVER`: each case is still a process
of its own, with its exit status, memory limit and streams, killed if it hangs); the
combinations run as `python -m netc` itself. Derandomised: NETC_FUZZ_SEED=N draws other
combinations, NETC_FUZZ_SCALE multiplies their number. Working values for an option's
companions (an image for --image, an array for --input, ...) are chosen by `dest`
(`working_value`): an option it does not know still gets every hostile value of its kind.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from netc.cli import _parser
from netc.limits import BOUNDS

ROOT = Path(__file__).resolve().parent.parent
MEMORY = 2 << 30  # bytes of address space per netc process
HANG = 120  # seconds: a case that runs this long is taken to hang (a fast one takes < 2 s)
WORKERS = 2
SCALE = float(os.environ.get("NETC_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("NETC_FUZZ_SEED", "15"))

TINY = """\
netc: 1
name: tiny
inputs:
  image: [N, 3, 8, 8]
preprocess: {resize: [8, 8]}
layers:
  - conv: {filters: 2, kernel: 3, pad: 1}
    name: conv1
  - relu
  - flatten
  - dense: 3
"""

NUMBERS = ["0", "-1", str(2**63), str(10**23), "nan", "inf", "-inf", "1e309", "", "x"]
FORMATS = (".yaml", ".onnx", ".npy", ".npz", ".safetensors", ".png", ".jpg")
INPUT_KINDS = ("missing", "folder", "fifo", "zero", "socket", "empty", "garbage", "truncated",
               "dangling", "loop", "unreadable", "not-utf8", "long", "odd")
OUTPUT_KINDS = ("folder", "fifo", "missing-folder", "under-a-file", "dangling", "not-utf8",
                "long", "empty")


# --- the parser, walked ------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    command: str
    action: argparse.Action

    @property
    def flag(self) -> str | None:
        """The option string (`--batch`), or None for a positional."""
        strings = self.action.option_strings
        return max(strings, key=len) if strings else None

    @property
    def kind(self) -> str:
        a = self.action
        if a.nargs == 0:
            return "flag"
        if a.choices is not None:
            return "choice"
        if a.type is not None and a.type is not str:
            return "number"
        metavar = str(a.metavar or "")
        if a.dest == "output" or metavar.startswith("OUT") or metavar == "DIR":
            return "output"
        return "input"

    def __str__(self) -> str:
        return f"{self.command} {self.flag or self.action.dest}"


@functools.lru_cache(maxsize=1)
def commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options() -> list[Option]:
    found = []
    for name, parser in commands().items():
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                found.append(Option(name, action))
    return found


# --- the files -----------------------------------------------------------------------------------


class Files:
    """The working and hostile files, in one folder (`folder`), made once per module."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.spec = folder / "tiny.yaml"
        self.spec.write_text(TINY, encoding="utf-8")
        good = folder / "good"
        good.mkdir()
        self.good = {".yaml": self.spec}
        rng = np.random.default_rng(0)
        np.save(good / "x.npy", rng.standard_normal((1, 3, 8, 8), dtype=np.float32))
        self.good[".npy"] = good / "x.npy"
        np.savez(good / "x.npz", image=np.load(good / "x.npy"))
        self.good[".npz"] = good / "x.npz"
        from PIL import Image

        pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(good / "x.png")
        Image.fromarray(pixels).save(good / "x.jpg")
        self.good[".png"], self.good[".jpg"] = good / "x.png", good / "x.jpg"
        netc_ok("compile", self.spec, "-o", good / "x.onnx")
        netc_ok("weights", self.spec, "-o", good / "x.safetensors")
        self.good[".onnx"], self.good[".safetensors"] = good / "x.onnx", good / "x.safetensors"
        self.hostile = folder / "hostile"
        self.hostile.mkdir()
        self.sockets = []
        self.made: dict[tuple[str, str], str] = {}
        for kind in INPUT_KINDS:
            for ext in FORMATS:
                self.made[kind, ext] = self._make(kind, ext)
        self.outputs = folder / "outputs"
        self.outputs.mkdir()

    def _make(self, kind: str, ext: str) -> str:
        h = self.hostile
        if kind == "not-utf8":
            path = os.fsencode(h) + b"/\xff\xfe-" + ext[1:].encode() + ext.encode()
            shutil.copyfile(self.good[ext], path)
            return os.fsdecode(path)
        if kind == "long":
            path = h / ("l" * (255 - len(ext)) + ext)
            shutil.copyfile(self.good[ext], path)
            return str(path)
        path = h / f"{kind}{ext}"
        if kind == "folder":
            path.mkdir()
            (path / f"inside{ext}").write_bytes(self.good[ext].read_bytes())
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            path.symlink_to("/dev/zero")  # a link: a command that replaced its output...
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            self.sockets.append(s)
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "garbage":
            path.write_bytes(random.Random(ext).randbytes(300))
        elif kind == "truncated":
            data = self.good[ext].read_bytes()
            path.write_bytes(data[: max(1, len(data) * 2 // 3)])
        elif kind == "dangling":
            path.symlink_to(h / "nowhere" / f"nothing{ext}")
        elif kind == "loop":
            path.symlink_to(path.name)
        elif kind == "unreadable":
            shutil.copyfile(self.good[ext], path)
            path.chmod(0)
        elif kind == "odd":
            _odd(path, ext)
        return str(path)  # "missing": not made

    def output(self, kind: str, ext: str, tag: str) -> str:
        """A path to write of `kind`, fresh for case `tag`."""
        base = self.outputs / tag
        base.mkdir()
        if kind == "folder":
            (base / f"out{ext}").mkdir()
            return str(base / f"out{ext}")
        if kind == "fifo":
            os.mkfifo(base / f"out{ext}")
            return str(base / f"out{ext}")
        if kind == "missing-folder":
            return str(base / "no" / "such" / f"out{ext}")
        if kind == "under-a-file":  # a file where a folder is meant
            (base / "file").write_bytes(b"x")
            return str(base / "file" / f"out{ext}")
        if kind == "dangling":
            (base / f"out{ext}").symlink_to(base / "no" / "such")
            return str(base / f"out{ext}")
        if kind == "not-utf8":
            return os.fsdecode(os.fsencode(base) + b"/\xff-out" + ext.encode())
        if kind == "long":
            return str(base / ("o" * (255 - len(ext)) + ext))
        return ""

    def working(self, tag: str, ext: str) -> str:
        base = self.outputs / tag
        base.mkdir(exist_ok=True)
        return str(base / f"ok{ext}")


def _odd(path: Path, ext: str) -> None:
    """A well-formed file of the format that netc's own never are: a spec whose text holds a
    lone surrogate (a YAML escape) in its name and labels, a model whose outputs are a
    sequence and an empty tensor, arrays and tensors with no values, a 16-bit grayscale PNG,
    a CMYK JPEG."""
    if ext == ".yaml":
        path.write_text(TINY.replace("name: tiny", 'name: "t\\ud800"')
                        + 'labels: ["\\udcff", b, c]\n', encoding="utf-8")
    elif ext == ".onnx":
        import onnx
        from onnx import TensorProto as T
        from onnx import helper as h

        ints = [h.make_tensor(n, T.INT64, [1], [v]) for n, v in (("s", 0), ("e", 0), ("a", 1))]
        graph = h.make_graph(
            [h.make_node("SequenceConstruct", ["image"], ["seq"]),
             h.make_node("Slice", ["image", "s", "e", "a"], ["empty"])], "odd",
            [h.make_tensor_value_info("image", T.FLOAT, ["N", 3, 8, 8])],
            [h.make_tensor_sequence_value_info("seq", T.FLOAT, None),
             h.make_tensor_value_info("empty", T.FLOAT, ["N", 0, 8, 8])], initializer=ints)
        onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8),
                  str(path))
    elif ext == ".npy":
        np.save(path, np.zeros((0, 3, 8, 8), np.float32))
    elif ext == ".npz":
        with open(path, "wb") as f:
            np.savez(f, image=np.zeros((0, 3, 8, 8), np.float32), **{"conv1.weight": np.zeros(0)})
    elif ext == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"conv1.weight": np.zeros((0, 3, 3, 3), np.float32),
                   "conv1.bias": np.zeros((2,), np.float32)}, str(path))
    elif ext == ".png":
        from PIL import Image

        Image.fromarray(np.full((9, 7), 40000, np.uint16)).save(path)
    else:
        from PIL import Image

        Image.new("CMYK", (7, 9), (10, 20, 30, 40)).save(path, format="JPEG")


def extension(option: Option) -> str:
    """The extension an option's metavar names (OUT.onnx, FILE.npy), else .yaml."""
    m = re.search(r"\.(\w+)", str(option.action.metavar or ""))
    return f".{m[1]}" if m else ".yaml"


def working_value(option: Option, files: Files, tag: str) -> list[str]:
    """A value with which the option works, as argv words (after its flag)."""
    a = option.action
    if option.kind == "choice":
        return [str(a.choices[0])]
    if option.kind == "number":
        metavar = str(a.metavar or "")
        if "NAME=" in metavar:
            return ["layers=100000"]
        if ":" in metavar:
            return ["8:9"]
        return ["1"]
    if option.kind == "output":
        if str(a.metavar) == "DIR":
            return [files.working(tag, "-dir")]
        return [files.working(tag, extension(option))]
    dest = a.dest
    if dest == "image":
        return [str(files.good[".png"])]
    if dest == "input":
        return [str(files.good[".npy"])]
    if dest == "weights":
        return [str(files.good[".safetensors"])]
    if dest == "layers":
        return ["conv1"]
    if dest == "layer":
        return ["conv1"]
    return [str(files.spec)]


def hostile_values(option: Option) -> list[str]:
    """The hostile values of a number or choice option."""
    a = option.action
    if option.kind == "choice":
        word = str(a.choices[0])
        return [word.upper() if word != word.upper() else word.lower(), "", "x", word + " "]
    metavar = str(a.metavar or "")
    if "NAME=" in metavar:
        names = list(BOUNDS)
        values = [f"{names[i % len(names)]}={v}" for i, v in enumerate(NUMBERS)]
        return values + ["=", names[0], f"={NUMBERS[2]}", names[0].upper() + "=1",
                         f"{names[0]}=1=2", "nope=1"]
    if ":" in metavar:
        return [f"{v}:{v}" for v in NUMBERS] + [f"1:{v}" for v in NUMBERS[2:]] + [":", "1:"]
    if "[,N" in metavar:
        return NUMBERS + [f"1,{v}" for v in NUMBERS[2:4]] + [",", "1,,2"]
    return list(NUMBERS)


# --- running -------------------------------------------------------------------------------------


def netc_ok(*args):
    result = subprocess.run([sys.executable, "-m", "netc", *map(str, args)],
                            capture_output=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")


@dataclass
class Case:
    argv: list[str]
    what: str


@dataclass
class Outcome:
    code: int | None  # None: killed after HANG seconds
    out: bytes
    err: bytes


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def python_m_netc(case: Case, cwd: Path) -> Outcome:
    """The case as `python -m netc ...`, a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run([sys.executable, "-m", "netc", *case.argv], capture_output=True,
                                timeout=HANG, preexec_fn=_limit_memory, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return Outcome(None, e.stdout or b"", e.stderr or b"")
    return Outcome(result.returncode, result.stdout, result.stderr)


# A process that imports netc and the libraries its commands load (numpy, onnx, ONNX Runtime,
# Pillow) once, then forks a child per case: the child is a process of its own (its own exit
# status, memory limit, standard streams, killed if it hangs) that runs what `python -m netc`
# runs (`raise SystemExit(main())`), without paying half a second of imports each time.
# Cases come as JSON lines on its standard input, outcomes go back the same way.
SERVER = r"""
import base64, json, os, resource, sys, tempfile, time, traceback
import netc.cli, netc.pipeline, netc.run, netc.tools.bench, netc.tools.predict, netc.weights
import numpy, onnx, onnxruntime, PIL.Image
memory, hang = int(sys.argv[1]), float(sys.argv[2])
results = os.fdopen(os.dup(1), "w")
folder = tempfile.mkdtemp(prefix="netc-fuzz-")
for line in sys.stdin:
    argv = json.loads(line)
    paths = [os.path.join(folder, name) for name in ("out", "err")]
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, path in zip((1, 2), paths):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.argv = ["netc", *argv]
            try:
                code = netc.cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (e.code is not None)
            except BaseException:  # as the interpreter would: a traceback, exit 1
                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    deadline = time.monotonic() + hang
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            code = None
            break
        time.sleep(0.002)
    out, err = (open(p, "rb").read() for p in paths)
    results.write(json.dumps({"code": code, "out": base64.b64encode(out).decode(),
                              "err": base64.b64encode(err).decode()}) + "\n")
    results.flush()
"""


class Forker:
    """A SERVER process: `run(case)` gives the case's Outcome."""

    def __init__(self, cwd: Path):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(MEMORY), str(HANG)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, env=env, text=True,
            encoding="utf-8", errors="surrogatepass")

    def run(self, case: Case) -> Outcome:
        import base64

        self.process.stdin.write(json.dumps(case.argv) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the fork server died"
        got = json.loads(line)
        return Outcome(got["code"], base64.b64decode(got["out"]), base64.b64decode(got["err"]))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def broken(case: Case, outcome: Outcome) -> str | None:
    """What in `outcome` breaks the contract, or None."""
    out, err, code = outcome.out, outcome.err, outcome.code
    shown = err.decode("utf-8", "backslashreplace")[-2500:]
    if code is None:
        return f"{case.what}: still running after {HANG} s (a hang)\n{shown}"
    if code not in (0, 1, 2):
        return f"{case.what}: exit {code}\n{shown}"
    for name, data in (("standard output", out), ("standard error", err)):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"{case.what}: {name} is not UTF-8 ({e})\n{data[:400]!r}"
    text = err.decode("utf-8")
    if "Traceback" in text or "internal error" in text:
        return f"{case.what}: a traceback\n{shown}"
    if code == 1 and not re.search(r"error\[E\d{3}\]", text):
        return f"{case.what}: exit 1 without an error code\n{shown}"
    if code == 2 and not re.search(r"^(usage: |netc(?: \w+)?: error: )", text, re.M):
        return f"{case.what}: exit 2 without a usage error\n{shown}"
    fmt = re.search(r"--format[= ](json|sarif)\b", " ".join(case.argv))
    if code in (0, 1) and fmt and out.strip():
        try:
            doc = json.loads(out)
        except ValueError as e:
            return f"{case.what}: --format {fmt[1]} printed invalid JSON ({e})\n{out[:400]!r}"
        bad = [s for s in _strings(doc) if re.search("[\ud800-\udfff]", s)]
        if bad:
            return f"{case.what}: --format {fmt[1]} holds a lone surrogate: {bad[0]!r}"
    return None


def _strings(doc):
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield k
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)


def run_all(cases: list[Case], cwd: Path, forked: bool = True) -> None:
    """Run the cases, WORKERS at a time (forked by a SERVER, or each as `python -m netc`), and
    fail listing every one that broke the contract."""
    servers = [Forker(cwd) for _ in range(WORKERS)] if forked else []
    lanes = [cases[i::WORKERS] for i in range(WORKERS)]

    def lane(i: int) -> list[str]:
        found = []
        for case in lanes[i]:
            outcome = servers[i].run(case) if forked else python_m_netc(case, cwd)
            problem = broken(case, outcome)
            if problem:
                found.append(problem)
        return found

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            problems = [p for found in pool.map(lane, range(WORKERS)) for p in found]
    finally:
        for server in servers:
            server.close()
    assert not problems, f"{len(problems)} of {len(cases)} cases broke the contract:\n\n" + \
        "\n\n".join(problems[:40])


# --- the cases -----------------------------------------------------------------------------------

# options that keep a run short (bench's default is 3 s per batch size); dropped when the
# option fuzzed is one of them or excludes them
QUICK = {"bench": ["--iters", "1", "--warmup", "0"]}


def invocation(command: str, files: Files, tag: str, fuzzed: Option | None = None,
               value: list[str] | None = None) -> list[str]:
    """argv for `command` with its positionals and required options at working values, and
    `fuzzed` given `value` (words): the one option that is wrong."""
    parser = commands()[command]
    skip = set()
    if fuzzed is not None:
        skip.add(fuzzed.action.dest)
        for group in parser._mutually_exclusive_groups:
            if fuzzed.action in group._group_actions:
                skip.update(a.dest for a in group._group_actions)
    argv = [command]
    quick = QUICK.get(command, [])
    for i in range(0, len(quick), 2):
        if quick[i].lstrip("-").replace("-", "_") not in skip:
            argv += quick[i:i + 2]
    positionals = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        option = Option(command, action)
        if fuzzed is not None and action is fuzzed.action:
            if option.flag is None:
                positionals += value
            elif len(value) == 1 and value[0].startswith("-"):
                argv.append(f"{option.flag}={value[0]}")  # (else argparse takes it for a flag)
            else:
                argv += [option.flag, *value]
        elif option.flag is None:
            positionals += working_value(option, files, tag)
        elif action.required and action.dest not in skip:
            argv += [option.flag, *working_value(option, files, tag)]
    return argv + positionals


def with_value(option: Option, value: list[str], files: Files, tag: str) -> list[str]:
    return invocation(option.command, files, tag, option, value)


def number_and_choice_cases(files: Files) -> list[Case]:
    cases = []
    for option in options():
        if option.kind not in ("number", "choice"):
            continue
        for value in hostile_values(option):
            tag = f"n{len(cases)}"
            cases.append(Case(with_value(option, [value], files, tag),
                              f"{option} {value!r}"))
    return cases


def input_cases(files: Files) -> list[Case]:
    cases = []
    inputs = [o for o in options() if o.kind == "input"]
    for i, option in enumerate(inputs):
        for j, kind in enumerate(INPUT_KINDS):
            ext = FORMATS[(i + j) % len(FORMATS)]
            path = files.made.get((kind, ext)) or str(files.hostile / f"{kind}{ext}")
            tag = f"i{len(cases)}"
            cases.append(Case(with_value(option, [path], files, tag),
                              f"{option} {kind}{ext} ({path!r})"))
    return cases


def output_cases(files: Files) -> list[Case]:
    cases = []
    for option in [o for o in options() if o.kind == "output"]:
        for kind in OUTPUT_KINDS:
            tag = f"o{len(cases)}"
            path = files.output(kind, extension(option), tag)
            argv = with_value(option, [path], files, tag)
            if option.action.dest in ("masks", "maps", "layers"):
                argv += ["--image", str(files.good[".png"])]
            cases.append(Case(argv, f"{option} {kind} ({path!r})"))
    return cases


def combination_cases(files: Files, n: int) -> list[Case]:
    """`n` draws: a command, up to three of its options at working values, one hostile."""
    rng = random.Random(SEED)
    by_command: dict[str, list[Option]] = {}
    for option in options():
        if option.flag is not None:
            by_command.setdefault(option.command, []).append(option)
    cases = []
    names = sorted(by_command)
    for k in range(n):
        command = names[k % len(names)]
        chosen = rng.sample(by_command[command], min(len(by_command[command]),
                                                      rng.randint(1, 4)))
        hostile, companions = chosen[0], chosen[1:]
        tag = f"c{k}"
        if hostile.kind in ("number", "choice"):
            value = [rng.choice(hostile_values(hostile))]
        elif hostile.kind == "input":
            kind, ext = rng.choice(INPUT_KINDS), rng.choice(FORMATS)
            value = [files.made.get((kind, ext)) or str(files.hostile / f"{kind}{ext}")]
        elif hostile.kind == "output":
            value = [files.output(rng.choice(OUTPUT_KINDS), extension(hostile), tag)]
        else:
            value = []
        argv = with_value(hostile, value, files, tag) if hostile.kind != "flag" \
            else invocation(command, files, tag) + [hostile.flag]
        for companion in companions:
            if companion.kind == "flag":
                argv.append(companion.flag)
            else:
                argv += [companion.flag, *working_value(companion, files, tag + "w")]
        cases.append(Case(argv, " ".join(argv[1:])))
    return cases


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    made = Files(tmp_path_factory.mktemp("options-fuzz"))
    yield made
    for s in made.sockets:
        s.close()


def test_every_option_is_fuzzed():
    """The walk finds the options (a parser refactored so that it finds none fails here), and
    each option is of a kind that gets hostile values."""
    found = options()
    assert len({o.command for o in found}) >= 11
    kinds = {o.kind for o in found}
    assert {"number", "choice", "input", "output", "flag"} <= kinds, kinds
    for option in found:
        if option.kind in ("number", "choice"):
            assert hostile_values(option), option


def test_hostile_numbers_and_choices(files):
    run_all(number_and_choice_cases(files), files.folder)


def test_hostile_input_files(files):
    run_all(input_cases(files), files.folder)


def test_hostile_output_paths(files):
    run_all(output_cases(files), files.folder)


def test_hostile_combinations(files):
    """Each as `python -m netc` itself, as a user runs it (the others are forked)."""
    run_all(combination_cases(files, max(1, round(60 * SCALE))), files.folder, forked=False)
