#!/usr/bin/env python3
"""Compile speed and memory: `netc compile` against torchvision + `torch.onnx.export`.

Every measurement is a whole process (interpreter start, imports, building the weights,
writing the model), run as its own child; wall time is taken around the child and peak RSS
is the child's own `ru_maxrss` from `os.wait4`. The two sides alternate (netc, torch, netc,
torch, ...) so that a noisy machine slows both alike; medians are reported with their ratio.

Then the fast paths, each timed the same way and printed against the targets of issue 5:
`netc check specs` (<= 0.5 s), `netc summary specs/resnet152.yaml` (<= 0.5 s) and a
generated 1,000-block residual net (<= 2 s), written three ways: one block entry with
`repeat: 1000`, 1,000 explicit block entries, and fully flat (`netc expand`, 7,000 layers).

    python benchmarks/compile_speed.py                      # defaults: 5 repetitions
    python benchmarks/compile_speed.py --reps 3 --models resnet50 --dynamo
    python benchmarks/compile_speed.py --no-torch           # netc only (no torch needed)
    python benchmarks/compile_speed.py --no-torch --models "" --baseline-root /tmp/netc-before
                                                # the fast paths against an earlier tree

With `--baseline-root DIR` (a snapshot of an earlier commit, as for --netc-root) each fast-path
command runs with that tree too, right after this one's run (same spec files, same
interpreter), and the paired ratio this/baseline is printed: the machine's speed changes by
more than the difference between two commits, and a ratio from one run does not.

Interpreters: netc runs as `NETC_PYTHON -m netc` (default: /work/bvenv/bin/python, then
/work/venv/bin/python if present, else this interpreter: an environment with netc's
dependencies where netc is not installed in editable mode, whose import hook adds 13 ms to
every start; the tree measured comes first on PYTHONPATH), the torch side as `TORCH_PYTHON` (default /work/tvenv/bin/python if
present, else this interpreter); it needs torch and torchvision
(`pip install torch==2.14.1 torchvision==0.29.1`). Both can be given as flags too.
This is a benchmark, not a test: it prints figures and exits 0 unless a child fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import commit, cpu_name

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MiB = 1024 * 1024
SLOW = 3.0  # seconds: a fast-path command slower than this is timed once after its warm-up


def _default_python(env: str, *candidates: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    return next((c for c in candidates if os.path.exists(c)), sys.executable)


# The torch side: what a user does today to get an ONNX model of a torchvision network.
TORCH_EXPORT = textwrap.dedent("""\
    import sys
    import torch, torchvision
    name, out, exporter = sys.argv[1], sys.argv[2], sys.argv[3]
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(**kwargs).eval()
    x = torch.randn(1, 3, 224, 224)
    if exporter == "torchscript":
        torch.onnx.export(model, (x,), out, opset_version=17, dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    else:  # the dynamo exporter, torch's default since 2.9
        batch = torch.export.Dim("N", min=1, max=1024)
        torch.onnx.export(model, (x,), out, opset_version=17, dynamo=True,
                          input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: batch},))
    """)


def run_child(argv: list[str], cwd: str | None = None, env: dict | None = None,
              quiet: bool = True) -> tuple[float, int, int]:
    """Run one whole process; (wall seconds, peak RSS in bytes, exit status). It runs in a
    scratch folder: `python -m` puts the working directory first on sys.path, which would
    otherwise pick up whatever netc/ sits there instead of --netc-root's."""
    cwd = cwd or tempfile.gettempdir()
    out = subprocess.DEVNULL if quiet else None
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE)
    # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would accumulate the maximum
    # over all children so far); stderr is read after the wait: children here write little
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"  ! {' '.join(argv)} exited {proc.returncode}:\n{textwrap.indent(err[-3000:], '    ')}",
              file=sys.stderr)
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # KiB on Linux
    return wall, rss, proc.returncode


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.0f} ms"


def fmt_mb(b: float) -> str:
    return f"{b / 1e6:,.0f} MB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the generated deep net ------------------------------------------------------------------

BLOCK = """\
netc: 1
name: deep{n}
description: generated {n}-block residual net (benchmarks/compile_speed.py)
inputs:
  image: [N, {c}, 8, 8]
defaults:
  conv: {{bias: false}}
blocks:
  basic:
    args: {{filters: int}}
    layers:
      - conv: {{filters: $filters, kernel: 3, pad: 1}}
        name: conv1
      - batchnorm:
        name: bn1
      - relu
      - conv: {{filters: $filters, kernel: 3, pad: 1}}
        name: conv2
      - batchnorm:
        name: bn2
      - add: {{from: [bn2, input]}}
      - relu
layers:
"""


def deep_specs(folder: Path, n: int, c: int, netc_cmd: list[str], env: dict) -> dict[str, Path]:
    """The n-block net three ways: one block entry with `repeat: n`; n explicit block entries;
    flat, 7n layers written out by hand (as terse as a person would write them). The output of
    `netc expand` is tried too ("expanded"), as it states every attribute of every layer."""
    head = BLOCK.format(n=n, c=c)
    repeat = folder / f"deep{n}_repeat.yaml"
    repeat.write_text(head + f"  - basic: {{filters: {c}}}\n    repeat: {n}\n    name: layer\n")
    explicit = folder / f"deep{n}_explicit.yaml"
    explicit.write_text(head + "".join(
        f"  - basic: {{filters: {c}}}\n    name: layer.{i}\n" for i in range(n)))
    flat = folder / f"deep{n}_flat.yaml"
    lines = [head.split("blocks:")[0] + "layers:\n"]
    for i in range(n):
        b = f"layer.{i}"
        lines.append(
            f"  - conv: {{filters: {c}, kernel: 3, pad: 1}}\n    name: {b}.conv1\n"
            f"  - batchnorm:\n    name: {b}.bn1\n"
            f"  - relu\n"
            f"  - conv: {{filters: {c}, kernel: 3, pad: 1}}\n    name: {b}.conv2\n"
            f"  - batchnorm:\n    name: {b}.bn2\n"
            f"  - add: {{from: [{b}.bn2, {'image' if i == 0 else f'layer.{i - 1}.relu'}]}}\n"
            f"    name: {b}.add\n"
            f"  - relu:\n    name: {b}.relu\n")
    flat.write_text("".join(lines))
    specs = {"repeat": repeat, "explicit": explicit, "flat": flat}
    expanded = folder / f"deep{n}_expanded.yaml"
    done = subprocess.run(netc_cmd + ["expand", str(repeat), "-o", str(expanded)],
                          capture_output=True, text=True, cwd=folder, env=env)
    if done.returncode == 0:
        specs["expanded"] = expanded
    else:
        print(f"  ! netc expand failed, no expanded spec: {done.stderr.strip()[-500:]}",
              file=sys.stderr)
    return specs


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--netc-python", default=_default_python(
                       "NETC_PYTHON", "/work/bvenv/bin/python", "/work/venv/bin/python"),
                   help="interpreter that runs `-m netc` (env NETC_PYTHON)")
    p.add_argument("--torch-python", default=_default_python("TORCH_PYTHON", "/work/tvenv/bin/python"),
                   help="interpreter with torch and torchvision (env TORCH_PYTHON)")
    p.add_argument("--netc-root", default=os.environ.get("NETC_ROOT", str(ROOT)),
                   help="folder holding the netc package and specs/ to measure (env NETC_ROOT; "
                   "default this checkout; e.g. a snapshot of a commit: "
                   "git archive HEAD netc specs | tar -x -C DIR)")
    p.add_argument("--torch-pythonpath", default=os.environ.get("TORCH_PYTHONPATH", ""),
                   help="extra PYTHONPATH for the torch side, e.g. a folder holding onnxscript "
                   "and onnx-ir for --dynamo (env TORCH_PYTHONPATH)")
    p.add_argument("--models", default="resnet50,vgg16,googlenet",
                   help="comma-separated zoo names compiled by both sides (default %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per side (default 5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs of each side first, to fill the file cache (default 1)")
    p.add_argument("--dynamo", action="store_true",
                   help="also time the dynamo exporter once on the first model (about 20 s)")
    p.add_argument("--no-torch", action="store_true", help="netc only")
    p.add_argument("--quick-reps", type=int, default=7,
                   help="repetitions of check/summary/deep-net timings (default 7)")
    p.add_argument("--blocks", type=int, default=1000, help="depth of the generated net")
    p.add_argument("--channels", type=int, default=16, help="width of the generated net")
    p.add_argument("--baseline-root", default=None,
                   help="an earlier tree (like --netc-root) to time the fast paths against, "
                   "interleaved, with paired ratios")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = p.parse_args()

    global SPECS
    netc_root = Path(args.netc_root).resolve()
    SPECS = netc_root / "specs"
    netc = [args.netc_python, "-m", "netc"]
    env = dict(os.environ)
    # the netc side runs that tree, whatever the interpreter has installed
    env["PYTHONPATH"] = os.pathsep.join([str(netc_root)] + [x for x in [env.get("PYTHONPATH")] if x])
    torch_env = dict(os.environ)
    if args.torch_pythonpath:
        torch_env["PYTHONPATH"] = os.pathsep.join(
            [args.torch_pythonpath] + [x for x in [torch_env.get("PYTHONPATH")] if x])
    # byte-compile the tree measured, as `pip install` does: where PYTHONDONTWRITEBYTECODE is
    # set (as on this project's machines) every netc run would otherwise compile its sources
    # again (40 ms), while torch and torchvision come with their byte code
    subprocess.run([args.netc_python, "-m", "compileall", "-q", str(netc_root / "netc")],
                   check=True, stdout=subprocess.DEVNULL)
    base_env = None
    if args.baseline_root:
        base_root = Path(args.baseline_root).resolve()
        base_env = dict(env, PYTHONPATH=os.pathsep.join(
            [str(base_root)] + [x for x in [os.environ.get("PYTHONPATH")] if x]))
        subprocess.run([args.netc_python, "-m", "compileall", "-q", str(base_root / "netc")],
                       check=True, stdout=subprocess.DEVNULL)
    models = [m for m in args.models.split(",") if m]
    results: dict = {"machine": machine(), "compile": {}, "quick": {}}

    print(f"netc:  {args.netc_python} -m netc from {netc_root} {f'at {c} ' if (c := commit(netc_root)) else ''}"
          f"({version(args.netc_python, 'onnx')}, {version(args.netc_python, 'numpy')})")
    if not args.no_torch:
        print(f"torch: {args.torch_python} ({version(args.torch_python, 'torch')}, "
              f"{version(args.torch_python, 'torchvision')})")
    print(f"{os.cpu_count()} CPUs, {args.reps} interleaved repetitions per side, medians; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")

    with tempfile.TemporaryDirectory(prefix="netc-bench-") as tmp:
        tmp = Path(tmp)
        script = tmp / "torch_export.py"
        script.write_text(TORCH_EXPORT)

        # ---- compile: netc vs torch.onnx.export, interleaved ----
        print("compile (whole process)      netc wall   torch wall   speed-up   netc RSS   "
              "torch RSS   RSS target")
        targets = []
        for name in models:
            spec = SPECS / f"{name}.yaml"
            weight_bytes = summary_field(netc, env, spec, "weight_bytes")
            a_cmd = netc + ["compile", str(spec), "-o", str(tmp / f"{name}.netc.onnx")]
            b_cmd = [args.torch_python, str(script), name, str(tmp / f"{name}.torch.onnx"),
                     "torchscript"]
            a, b = [], []
            for i in range(args.warmup + args.reps):
                ra = run_child(a_cmd, env=env)
                rb = None if args.no_torch else run_child(b_cmd, env=torch_env)
                if i >= args.warmup:
                    a.append(ra)
                    if rb:
                        b.append(rb)
            # each torch run against the netc run just before it: steadier than the ratio of
            # medians when the machine's load changes during the benchmark
            pairs = [y[0] / x[0] for x, y in zip(a, b) if x[2] == 0 and y[2] == 0]
            failed = (sum(x[2] != 0 for x in a), sum(x[2] != 0 for x in b))
            if any(failed):
                print(f"  ! {name}: {failed[0]} netc and {failed[1]} torch runs failed and are "
                      f"left out")
            a, b = [x for x in a if x[2] == 0], [x for x in b if x[2] == 0]
            aw, ar = median([x[0] for x in a]), median([x[1] for x in a])
            bw, br = median([x[0] for x in b]), median([x[1] for x in b])
            rss_target = 2 * weight_bytes + 150e6
            row = {"netc_wall_s": [x[0] for x in a], "netc_rss_bytes": [x[1] for x in a],
                   "torch_wall_s": [x[0] for x in b], "torch_rss_bytes": [x[1] for x in b],
                   "weight_bytes": weight_bytes, "netc_failed": failed[0],
                   "torch_failed": failed[1]}
            results["compile"][name] = row
            row["paired_speedup_median"] = median(pairs) if pairs else None
            speed = bw / aw if b else float("nan")
            print(f"  {name:<26} {fmt_s(aw):>9}   {fmt_s(bw) if b else '-':>10}   "
                  f"{(f'{speed:.1f}x' if b else '-'):>8}   {fmt_mb(ar):>8}   {fmt_mb(br) if b else '-':>9}   "
                  f"{fmt_mb(rss_target):>9}")
            if pairs:
                print(f"  {'':<26} paired runs: speed-up median {median(pairs):.1f}x "
                      f"(range {min(pairs):.1f}-{max(pairs):.1f}x); netc "
                      f"{fmt_s(min(x[0] for x in a))}-{fmt_s(max(x[0] for x in a))}, torch "
                      f"{fmt_s(min(x[0] for x in b))}-{fmt_s(max(x[0] for x in b))}")
            if name == "resnet50" and b and a:
                targets.append((f"netc compile resnet50 >= 8x faster than torch export "
                                f"(TorchScript): {speed:.1f}x (medians), {median(pairs):.1f}x "
                                f"(paired)", speed >= 8))
            if name == "resnet50":
                targets.append((f"netc compile resnet50 peak RSS <= 2 x weights + 150 MB "
                                f"= {fmt_mb(rss_target)}: {fmt_mb(ar)}", ar <= rss_target))
            if name == "vgg16":
                targets.append((f"netc compile vgg16 <= 3 s wall: {fmt_s(aw)}", aw <= 3.0))
        if args.dynamo and not args.no_torch and models:
            name = models[0]
            wall, rss, rc = run_child([args.torch_python, str(script), name,
                                       str(tmp / f"{name}.dynamo.onnx"), "dynamo"], env=torch_env)
            aw = median(results["compile"][name]["netc_wall_s"])
            results["compile"][name]["dynamo"] = {"wall_s": wall, "rss_bytes": rss, "rc": rc}
            if rc == 0:
                print(f"  {name + ' (dynamo, once)':<26} {fmt_s(aw):>9}   {fmt_s(wall):>10}   "
                      f"{wall / aw:>7.1f}x   {'':>8}   {fmt_mb(rss):>9}")
            else:
                print(f"  {name + ' (dynamo, once)':<26} failed (exit {rc}): the dynamo exporter "
                      f"needs onnxscript (see --torch-pythonpath)")

        # ---- check, summary and the deep net ----
        deep = deep_specs(tmp, args.blocks, args.channels, netc, env)
        quick = [
            ("netc check specs", netc + ["check", str(SPECS)], 0.5),
            ("netc summary specs/resnet152.yaml", netc + ["summary", str(SPECS / "resnet152.yaml")], 0.5),
            ("netc --version (start-up floor)", netc + ["--version"], None),
        ]
        for how, path in deep.items():
            quick.append((f"netc check {args.blocks}-block net ({how})", netc + ["check", str(path)],
                          2.0 if how != "expanded" else None))
        # linear in depth: the repeat form at a quarter and half the depth
        sweep = {}
        for k in (args.blocks // 4, args.blocks // 2):
            if k >= 1:
                path = tmp / f"deep{k}_repeat.yaml"
                path.write_text(deep["repeat"].read_text().replace(
                    f"repeat: {args.blocks}", f"repeat: {k}").replace(
                    f"name: deep{args.blocks}", f"name: deep{k}"))
                label = f"netc check {k}-block net (repeat)"
                quick.append((label, netc + ["check", str(path)], None))
                sweep[k] = label
        sweep[args.blocks] = f"netc check {args.blocks}-block net (repeat)"

        print(f"\nfast paths (up to {args.quick_reps} runs each, interleaved; 1 run of a "
              f"command slower than {SLOW} s)")
        print(f"  {'':<46} {'median':>8} {'min':>8} {'peak RSS':>9}   target")
        times = {label: [] for label, _, _ in quick}
        base_times = {label: [] for label, _, _ in quick}
        status = {}
        for label, cmd, _ in quick:  # the warm-up round also tells which commands are slow
            wall, rss, rc = run_child(cmd, env=env)
            status[label] = rc
            if args.warmup == 0:
                times[label].append((wall, rss, rc))
            times[label + "#warm"] = wall
        for i in range(args.quick_reps):
            for label, cmd, _ in quick:
                slow = times[label + "#warm"] > SLOW
                if status[label] == 0 and (i == 0 or not slow) and len(times[label]) < args.quick_reps:
                    r = run_child(cmd, env=env)
                    if r[2] == 0:
                        times[label].append(r)
                        if base_env is not None:  # the baseline right after: a pair
                            base_times[label].append(run_child(cmd, env=base_env))
        for label, cmd, target in quick:
            runs = times[label]
            if status[label] != 0 or not runs:
                print(f"  {label:<46} {'failed (exit ' + str(status[label]) + ')':>27}   "
                      f"{'<= ' + str(target) + ' s FAIL' if target else ''}")
                results["quick"][label] = {"failed": True, "target_s": target}
                if target:
                    targets.append((f"{label} <= {target} s: failed", False))
                continue
            walls = [x[0] for x in runs]
            m = median(walls)
            rss = median([x[1] for x in runs])
            results["quick"][label] = {"wall_s": walls, "rss_bytes": [x[1] for x in runs],
                                       "target_s": target}
            tgt = f"<= {target} s {verdict(m <= target)}" if target else ""
            print(f"  {label:<46} {fmt_s(m):>8} {fmt_s(min(walls)):>8} {fmt_mb(rss):>9}   {tgt}")
            if target:
                targets.append((f"{label} <= {target} s: {fmt_s(m)}", m <= target))
            pairs = [x[0] / y[0] for x, y in zip(runs, base_times[label]) if y[2] == 0]
            if pairs:
                base = median([y[0] for y in base_times[label] if y[2] == 0])
                print(f"  {'':<46} baseline {fmt_s(base)}; this / baseline, paired: median "
                      f"{median(pairs):.2f} (range {min(pairs):.2f}-{max(pairs):.2f})")
                results["quick"][label]["baseline_wall_s"] = [y[0] for y in base_times[label]]
        floor = median([x[0] for x in times["netc --version (start-up floor)"]])
        walls = {k: median([x[0] for x in times[label]]) for k, label in sweep.items()
                 if times.get(label)}
        if len(walls) >= 2:
            ks = sorted(walls)
            steps = ", ".join(f"{b} blocks {(walls[b] - floor) / max(walls[a] - floor, 1e-9):.1f}x "
                              f"the work of {a}" for a, b in zip(ks, ks[1:]))
            print(f"  depth scaling (start-up of {fmt_s(floor)} taken off; 2.0x = linear): {steps}")
            results["quick"]["depth_scaling"] = walls

    results["load_average_end"] = os.getloadavg()[0]
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (above {os.cpu_count()}: other "
          f"work shared the cores, absolute times are inflated)")
    print("\ntargets (issue 5)")
    for text, ok in targets:
        print(f"  {verdict(ok)}  {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def summary_field(netc: list[str], env: dict, spec: Path, field: str):
    done = subprocess.run(netc + ["summary", "--format", "json", str(spec)], env=env,
                          capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(done.stdout)[field]


def version(python: str, module: str) -> str:
    done = subprocess.run([python, "-c", f"import importlib.metadata as m; print(m.version('{module}'))"],
                          capture_output=True, text=True)
    return f"{module} {done.stdout.strip()}" if done.returncode == 0 else f"no {module}"


def machine() -> dict:
    return {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


if __name__ == "__main__":
    sys.exit(main())
