#!/usr/bin/env python3
"""Inference latency: netc's ONNX models against PyTorch's export of the same network with the
same weights, in ONNX Runtime, interleaved; PyTorch eager beside them.

For each network:
  1. the PyTorch model: torchvision's (googlenet with aux_logits=False) where torchvision is
     installed, else `netc.torch.build(spec)` (a torch.nn.Module with netc's layer names; the
     GPU machine has no torchvision); batchnorm statistics randomised so that they matter;
  2. its state_dict saved with safetensors, and `netc compile SPEC --weights` on that file
     (plus `--fold-bn` and `--dtype float16` variants where `netc compile` has them);
  3. `torch.onnx.export` of the PyTorch model (TorchScript exporter, opset 17, dynamic batch);
  4. every ONNX model checked against PyTorch eager on the CPU (fp32: relative error
     max|a - b| / max|b| < 1e-4);
  5. timing: all models' sessions (same options: every graph optimisation, same threads) run
     in turns of a few iterations each, rotating, until each has its share of time; median and
     p90 per batch, and the ratio to PyTorch's export (<= 1.00: netc as fast or faster),
     both as a ratio of medians and paired by turn (the median over turns of the two models'
     ratio in the same turn, which cancels slow changes in the machine's load).

    python benchmarks/latency.py                                # CPU, batch 1 and 8
    python benchmarks/latency.py --baseline both --eager        # + netc.torch's export, eager
    python benchmarks/latency.py --provider cuda                # batch 1, 32, 128, IO binding
    python benchmarks/latency.py --models resnet18 --batches 1 --seconds 1   # a quick look

On CUDA, inputs and outputs stay on the device (IO binding); each ONNX model also runs with
the provider option prefer_nhwc (`--no-nhwc` leaves that out); PyTorch eager runs fp32 and
fp16 channels_last under torch.no_grad with cudnn.benchmark on, synchronised each iteration.
A session that does not get the CUDA provider is an error (ONNX Runtime would silently run on
the CPU). Needs torch, onnx, onnxruntime(-gpu), safetensors and netc (this checkout is put on
sys.path); torchvision is optional. Models go to a temporary folder (--workdir to keep them).
This is a benchmark, not a test: it prints figures and exits 0 unless nothing could be timed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from common import commit, cpu_name

# PyTorch's OpenMP threads would otherwise busy-wait after each call, into the next model's turn
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
NETC_ROOT = ROOT  # where netc and specs/ are taken from (--netc-root)
SPECS = ROOT / "specs"
TOLERANCE = 1e-4        # fp32 models against PyTorch eager, max|a - b| / max|b|
FP16_TOLERANCE = 2e-2   # fp16 models against fp32 PyTorch eager (reported, not enforced)
ALL_MODELS = ("resnet50", "vgg16", "googlenet", "resnet18", "alexnet")


def log(*a):
    print(*a, flush=True)


# --- the PyTorch models -------------------------------------------------------------------------

def torchvision_model(name, torchvision):
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(**kwargs)


def randomise_batchnorm(model, torch, seed=1):
    """Fresh batchnorm layers are the identity; random statistics make the comparison mean
    something (and stop an exporter or runtime from folding them away for free)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.normal_(1, 0.1, generator=g)
                m.bias.normal_(0, 0.1, generator=g)


def export(model, torch, path, batch=2):
    x = torch.randn(batch, 3, 224, 224)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), opset_version=17, dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})


def netc_compile_options() -> dict[str, list[str]]:
    """The netc model variants this netc can write: {label: extra compile arguments}."""
    done = subprocess.run([sys.executable, "-m", "netc", "compile", "--help"],
                          capture_output=True, text=True, env=child_env(),
                          cwd=tempfile.gettempdir())
    text = done.stdout
    variants = {"netc": []}
    if "--fold-bn" in text:
        variants["netc fold-bn"] = ["--fold-bn"]
    if "--dtype" in text and "float16" in text:
        variants["netc fp16"] = ["--dtype", "float16"]
    return variants


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(NETC_ROOT)] + [x for x in [env.get("PYTHONPATH")] if x])
    return env


def op_histogram(path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- runners: one thing to time, prepared per batch ---------------------------------------------

class NoCuda(RuntimeError):
    """ONNX Runtime offers the CUDA provider but could not create it: nothing on CUDA can run."""


class OrtRunner:
    def __init__(self, label, path, provider, threads, nhwc=False, ort=None, spin=False,
                 iobinding=None, optimized=None):
        self.label, self.path, self.provider, self.nhwc = label, str(path), provider, nhwc
        # IO binding: always on CUDA (inputs and outputs stay on the device); on the CPU only
        # when asked (--cpu-iobinding, which exercises the CUDA code path on a machine without)
        self.iobinding = provider == "cuda" if iobinding is None else iobinding
        self.device = "cuda" if provider == "cuda" else "cpu"
        self.ort = ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if not spin:  # idle threads sleep at once instead of spinning into the next turn
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if optimized:  # where ONNX Runtime writes the graph it runs (after fusions)
            so.optimized_model_filepath = str(optimized)
        if provider == "cuda":
            opts = {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"}
            if nhwc:
                opts["prefer_nhwc"] = "1"
            providers = [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        start = time.perf_counter()
        self.sess = ort.InferenceSession(self.path, sess_options=so, providers=providers)
        self.load_s = time.perf_counter() - start
        if provider == "cuda" and self.sess.get_providers()[0] != "CUDAExecutionProvider":
            raise NoCuda(f"{label}: ONNX Runtime did not create the CUDA provider "
                               f"(got {self.sess.get_providers()}); refusing to time the CPU")
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.outputs = [(o.name, o.shape, np.float16 if "float16" in o.type else np.float32)
                        for o in self.sess.get_outputs()]

    def run_numpy(self, x):
        return self.sess.run(None, {self.input_name: x.astype(self.input_dtype)})[0]

    def prepare(self, batch, x):
        x = np.ascontiguousarray(x.astype(self.input_dtype))
        if not self.iobinding:
            feeds = {self.input_name: x}
            sess = self.sess
            return lambda: sess.run(None, feeds)
        ort, device = self.ort, self.device
        binding = self.sess.io_binding()
        self._x = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
        binding.bind_ortvalue_input(self.input_name, self._x)
        self._outs = []
        for name, shape, dtype in self.outputs:
            # the batch is the first dimension; any other symbolic one: let ORT allocate
            dims = [batch if i == 0 and not (isinstance(d, int) and d > 0) else d
                    for i, d in enumerate(shape)]
            if dims and all(isinstance(d, int) and d > 0 for d in dims):
                out = ort.OrtValue.ortvalue_from_shape_and_type(dims, dtype, device, 0)
                self._outs.append(out)
                binding.bind_ortvalue_output(name, out)
            else:
                binding.bind_output(name, device, 0)
        sess = self.sess

        def step():
            sess.run_with_iobinding(binding)  # Run synchronises the provider's stream at its end
            binding.synchronize_outputs()     # and this makes sure of it (cheap when done)
        return step

    def close(self):
        self.sess = None
        self._x = None
        self._outs = None


class EagerRunner:
    def __init__(self, label, model, torch, device, half=False, channels_last=False):
        import copy

        self.label, self.torch, self.device = label, torch, device
        self.load_s = float("nan")
        m = copy.deepcopy(model).eval()
        self.dtype = torch.float16 if half else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        m = m.to(device=device, dtype=self.dtype, memory_format=self.memory_format)
        self.model = m

    def prepare(self, batch, x):
        torch = self.torch
        t = torch.from_numpy(x).to(device=self.device, dtype=self.dtype)
        self._x = t.contiguous(memory_format=self.memory_format)
        model, xx = self.model, self._x
        cuda = self.device == "cuda"

        def step():
            with torch.no_grad():
                model(xx)
            if cuda:
                torch.cuda.synchronize()
        return step

    def close(self):
        self.model = None
        self._x = None


def time_cell(runners, batch, x, seconds, min_iters, max_iters, warm_seconds, chunk_seconds,
              deadline):
    """Time every runner at one batch size, interleaved: in turns, each runner a few iterations
    per turn, the order rotating. ({label: [seconds per iteration]}, {label: {turn: mean
    seconds in that turn}}, {label: why it failed})."""
    steps, est, failed = {}, {}, {}
    for r in runners:
        try:
            step = r.prepare(batch, x)
            start = time.perf_counter()
            n = 0
            while n < 3 or (time.perf_counter() - start < warm_seconds and n < 50):
                t0 = time.perf_counter()
                step()
                dt = time.perf_counter() - t0
                n += 1
            steps[r.label], est[r.label] = step, dt
        except Exception as e:  # out of memory, a provider refusing a node...
            failed[r.label] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    times = {label: [] for label in steps}
    turns = {label: {} for label in steps}
    chunk = {label: max(1, min(10, round(chunk_seconds / max(est[label], 1e-6)))) for label in steps}
    labels = list(steps)
    start, turn = time.perf_counter(), 0
    while labels:
        order = labels[turn % len(labels):] + labels[:turn % len(labels)]  # rotate who goes first
        turn += 1
        for label in order:
            step = steps[label]
            try:
                this = []
                for _ in range(chunk[label]):
                    t0 = time.perf_counter()
                    step()
                    this.append(time.perf_counter() - t0)
                times[label].extend(this)
                turns[label][turn] = sum(this) / len(this)
            except Exception as e:
                failed[label] = f"{type(e).__name__}: {str(e)[:200]}"
                labels.remove(label)
                del times[label], turns[label]
        if not labels:
            break
        elapsed = time.perf_counter() - start
        enough = all(len(times[k]) >= min_iters for k in labels)
        if enough and (elapsed >= seconds * len(labels)
                       or all(len(times[k]) >= max_iters for k in labels)
                       or time.monotonic() > deadline):
            break
    return times, turns, failed


def paired_ratio(turns, label, base):
    """Median over turns of (label's mean / base's mean in the same turn): the two ran seconds
    apart, so a change in the machine's load cancels out, unlike in a ratio of medians."""
    a, b = turns.get(label, {}), turns.get(base, {})
    ratios = [a[t] / b[t] for t in a if t in b and b[t] > 0]
    return statistics.median(ratios) if ratios else float("nan")


def paired_interval(turns, label, base, n=2000):
    """A 95 % bootstrap interval of `paired_ratio` (resampling turns), (nan, nan) if too few."""
    a, b = turns.get(label, {}), turns.get(base, {})
    ratios = np.array([a[t] / b[t] for t in a if t in b and b[t] > 0])
    if len(ratios) < 5:
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, size=(n, len(ratios))), axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def stats(ts):
    ts = sorted(ts)
    if not ts:
        return float("nan"), float("nan")
    p90 = ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]
    return statistics.median(ts), p90


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", default="resnet50,vgg16,googlenet",
                   help=f"comma-separated, from {','.join(ALL_MODELS)} (default %(default)s)")
    p.add_argument("--batches", default=None,
                   help="comma-separated batch sizes (default 1,8 on cpu, 1,32,128 on cuda)")
    p.add_argument("--baseline", choices=("auto", "torchvision", "netc-torch", "both"),
                   default="auto", help="which PyTorch model is exported as the baseline: "
                   "torchvision's, netc.torch's, or both (auto: torchvision where installed)")
    p.add_argument("--variants", default=None,
                   help="netc variants to include, from netc,fold-bn,fp16 (default: all that "
                   "`netc compile` offers)")
    p.add_argument("--eager", dest="eager", action="store_true", default=None,
                   help="time PyTorch eager too (default on cuda, off on cpu)")
    p.add_argument("--no-eager", dest="eager", action="store_false")
    p.add_argument("--no-eager-fp16", action="store_true", help="cuda: fp32 eager only")
    p.add_argument("--no-nhwc", action="store_true",
                   help="cuda: leave out the prefer_nhwc sessions (default: each ONNX model "
                   "runs both with and without the provider option prefer_nhwc)")
    p.add_argument("--prefer-nhwc", action="store_true",
                   help="cuda: prefer_nhwc sessions only (ratios then compare nhwc with nhwc)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="intra-op threads for ONNX Runtime and PyTorch on the CPU (default: all)")
    p.add_argument("--spin", action="store_true",
                   help="let ONNX Runtime's idle threads spin (its default; off here, as a "
                   "spinning pool steals the cores from the next model in the rotation)")
    p.add_argument("--cpu-iobinding", action="store_true",
                   help="cpu: run through IO binding (the code path CUDA uses) instead of run()")
    p.add_argument("--no-graph-ops", action="store_true",
                   help="cpu: skip counting the ops of the graphs ONNX Runtime optimises")
    p.add_argument("--no-control", action="store_true",
                   help="leave out the A/A control (PyTorch's export timed a second time, in a "
                   "session of its own: the ratio that noise alone gives)")
    p.add_argument("--seconds", type=float, default=None,
                   help="timed seconds per model and batch size for each runner "
                   "(default 5 on cpu, 0.8 on cuda)")
    p.add_argument("--min-iters", type=int, default=None, help="(default 5 cpu, 20 cuda)")
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--time-limit", type=float, default=None,
                   help="stop starting new measurements after this many seconds "
                   "(the tables then hold what was measured)")
    p.add_argument("--workdir", help="keep the models and weights here (default: a temporary "
                   "folder, deleted after each network)")
    p.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    p.add_argument("--netc-root", default=os.environ.get("NETC_ROOT", str(ROOT)),
                   help="folder holding the netc package and specs/ (env NETC_ROOT; default "
                   "this checkout; e.g. a snapshot: git archive HEAD netc specs | tar -x -C DIR)")
    args = p.parse_args()
    global NETC_ROOT, SPECS
    NETC_ROOT = Path(args.netc_root).resolve()
    SPECS = NETC_ROOT / "specs"
    sys.path.insert(0, str(NETC_ROOT))

    cuda = args.provider == "cuda"
    batches = [int(b) for b in (args.batches or ("1,32,128" if cuda else "1,8")).split(",")]
    seconds = args.seconds if args.seconds is not None else (0.8 if cuda else 5.0)
    min_iters = args.min_iters or (20 if cuda else 5)
    eager = args.eager if args.eager is not None else cuda
    deadline = time.monotonic() + (args.time_limit or 1e9)
    wanted = set((args.variants or "netc,fold-bn,fp16").split(","))

    import onnxruntime as ort
    import torch
    import safetensors.torch
    try:
        import torchvision
    except Exception:  # not installed, or built for another torch
        torchvision = None
    import netc.torch as netc_torch

    torch.set_num_threads(args.threads)
    if args.baseline == "auto":
        baselines = ["torchvision"] if torchvision else ["netc-torch"]
    elif args.baseline == "both":
        baselines = ["torchvision", "netc-torch"]
    else:
        baselines = [args.baseline]
    if "torchvision" in baselines and torchvision is None:
        sys.exit("latency.py: --baseline torchvision needs torchvision (pip install torchvision)")
    if cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit(f"latency.py: this onnxruntime ({ort.__version__}, {ort.__file__}) has no "
                     "CUDA provider: install onnxruntime-gpu (see benchmarks/gpu_check.sh)")
        if not torch.cuda.is_available():
            sys.exit("latency.py: torch sees no CUDA device")
        torch.backends.cudnn.benchmark = True
    variants = {k: v for k, v in netc_compile_options().items()
                if k == "netc" or k.split()[-1] in wanted}

    info = machine(torch, ort, torchvision)
    info["netc"] = f"{netc_torch.__file__.rsplit('/netc/', 1)[0]} {commit(NETC_ROOT)}".strip()
    info.update(provider=args.provider, threads=args.threads, batches=batches,
                baselines=baselines, netc_variants=list(variants), eager=eager)
    info["load_average_start"] = round(os.getloadavg()[0], 2)
    log("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    if cuda:
        def flag(get):
            try:
                return get()
            except Exception:
                return "?"
        log(f"# ORT CUDA provider defaults (cudnn_conv_algo_search EXHAUSTIVE, TF32 as ORT's "
            f"default); torch cudnn.benchmark on, cudnn.allow_tf32="
            f"{flag(lambda: torch.backends.cudnn.allow_tf32)}, matmul.allow_tf32="
            f"{flag(lambda: torch.backends.cuda.matmul.allow_tf32)}")
    missing = {"fold-bn", "fp16"} & wanted - {k.split()[-1] for k in variants}
    if missing:
        log(f"# netc compile has no option for: {', '.join(sorted(missing))} (left out)")

    results = {"machine": info, "models": {}}
    base_label = f"torch-export ({baselines[0]})" + (" nhwc" if cuda and args.prefer_nhwc else "")
    for name in [m for m in args.models.split(",") if m]:
        if time.monotonic() > deadline:
            log(f"\n## {name}: skipped (time limit)")
            continue
        log(f"\n## {name}")
        workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="netc-lat-"))
        workdir.mkdir(parents=True, exist_ok=True)
        runners = []
        try:
            res = results["models"][name] = {"prepare": {}, "ops": {}, "ort_ops": {}, "check": {},
                                             "timing": {}}
            runners = prepare_and_check(name, workdir, baselines, variants, eager, cuda, args,
                                        torch, torchvision, netc_torch, safetensors, ort, res)
            for batch in batches:
                if time.monotonic() > deadline:
                    log(f"  batch {batch}: skipped (time limit)")
                    continue
                x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224),
                                                                 dtype=np.float32)
                times, turns, failed = time_cell(runners, batch, x, seconds, min_iters, args.max_iters,
                                          0.3 if cuda else min(2.0, seconds / 2),
                                          0.05 if cuda else 0.3, deadline)
                base = stats(times.get(base_label, []))[0]
                eager16 = stats(times.get("torch eager fp16 cl", []))[0]
                cell = res["timing"][batch] = {}
                log(f"  batch {batch:<4} {'':<34} {'median':>9} {'p90':>9} {'img/s':>8} "
                    f"{'iters':>5}  vs {base_label}: ratio of medians, paired")
                for r in runners:
                    if r.label in failed:
                        log(f"  {'':<10} {r.label:<34} failed: {failed[r.label]}")
                        cell[r.label] = {"failed": failed[r.label]}
                        continue
                    med, p90 = stats(times[r.label])
                    ratio = med / base if base == base else float("nan")
                    extra = ""
                    if "fp16" in r.label and "eager" not in r.label and eager16 == eager16:
                        extra = f"   vs eager fp16 {med / eager16:.2f}"
                    paired = paired_ratio(turns, r.label, base_label)
                    log(f"  {'':<10} {r.label:<34} {med * 1e3:>7.2f}ms {p90 * 1e3:>7.2f}ms "
                        f"{batch / med:>8.1f} {len(times[r.label]):>5}  {ratio:>5.2f} "
                        f"{paired:>5.2f}{extra}")
                    cell[r.label] = {"median_ms": med * 1e3, "p90_ms": p90 * 1e3,
                                     "iters": len(times[r.label]), "ratio": ratio,
                                     "paired_ratio": paired, "load_s": r.load_s,
                                     "turns": len(turns.get(r.label, {})),
                                     "paired_interval": paired_interval(turns, r.label,
                                                                        base_label),
                                     "paired_vs_eager_fp16": paired_ratio(
                                         turns, r.label, "torch eager fp16 cl")}
        except NoCuda as e:
            log(f"  {e}\n  (its log above says why: CUDA or cuDNN libraries missing?); stopping")
            break
        except Exception:
            log(f"  {name}: failed:\n" + traceback.format_exc())
        finally:
            for r in runners:
                r.close()
            runners = []
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            if not args.workdir:
                for f in workdir.iterdir():
                    f.unlink()
                workdir.rmdir()

    results["load_average_end"] = round(os.getloadavg()[0], 2)
    summary(results, batches, base_label)
    log(f"load average: {info['load_average_start']} at the start, "
        f"{results['load_average_end']} at the end ({os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    timed = any(res.get("timing") for res in results["models"].values())
    return 0 if timed else 1


def prepare_and_check(name, workdir, baselines, variants, eager, cuda, args, torch, torchvision,
                      netc_torch, safetensors, ort, res):
    """Build the PyTorch model(s), export, compile with netc, check numerics; the runners."""
    t0 = time.perf_counter()
    spec = SPECS / f"{name}.yaml"
    torch.manual_seed(0)
    models = {}
    if "torchvision" in baselines:
        models["torchvision"] = torchvision_model(name, torchvision).eval()
        randomise_batchnorm(models["torchvision"], torch)
    if "netc-torch" in baselines:
        m = netc_torch.build(str(spec), seed=0).eval()
        if "torchvision" in models:  # the very same weights, loaded by name
            m.load_state_dict(models["torchvision"].state_dict(), strict=True)
        else:
            randomise_batchnorm(m, torch)
        models["netc-torch"] = m
    reference = models[baselines[0]]
    weights = workdir / f"{name}.safetensors"
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    safetensors.torch.save_file(state, str(weights))
    res["prepare"]["build_s"] = time.perf_counter() - t0

    onnx_files = {}
    for src, model in models.items():
        t = time.perf_counter()
        path = workdir / f"{name}.torch-{src}.onnx"
        export(model, torch, path)
        onnx_files[f"torch-export ({src})"] = path
        res["prepare"][f"export {src} s"] = time.perf_counter() - t
    for label, extra in variants.items():
        t = time.perf_counter()
        path = workdir / f"{name}.{label.replace(' ', '-')}.onnx"
        done = subprocess.run([sys.executable, "-m", "netc", "compile", str(spec), "--weights",
                               str(weights), "-o", str(path)] + extra,
                              capture_output=True, text=True, env=child_env(), cwd=workdir)
        if done.returncode != 0:
            log(f"  ! netc compile {' '.join(extra)} failed: {done.stderr.strip()[-800:]}")
            continue
        onnx_files[label] = path
        res["prepare"][f"compile {label} s"] = time.perf_counter() - t
    log("  prepared in " + ", ".join(f"{k} {v:.1f}s" for k, v in res["prepare"].items()))

    for label, path in onnx_files.items():
        ops = op_histogram(path)
        res["ops"][label] = ops
        log(f"  ops {label:<30} {sum(ops.values()):>4} nodes: "
            + " ".join(f"{k}:{v}" for k, v in ops.items()))

    # numerics, on the CPU: PyTorch eager fp32 against every ONNX model
    xc = np.random.default_rng(7).standard_normal((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(xc)).numpy()
    cpu_runners = {}
    for label, path in onnx_files.items():
        optimized = workdir / f"{path.stem}.ort-cpu.onnx" if not cuda and not args.no_graph_ops else None
        r = OrtRunner(label, path, "cpu", args.threads, ort=ort, spin=args.spin,
                      iobinding=args.cpu_iobinding, optimized=optimized)
        if optimized is not None and optimized.exists():
            ops = op_histogram(optimized)
            res["ort_ops"][label] = ops
            log(f"  ort-opt {label:<28} {sum(ops.values()):>4} nodes: "
                + " ".join(f"{k}:{v}" for k, v in ops.items()))
            for f in optimized.parent.glob(optimized.name + "*"):
                f.unlink()
            if optimized.exists():
                optimized.unlink()
        got = r.run_numpy(xc).astype(np.float32)
        rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        tol = FP16_TOLERANCE if "fp16" in label else TOLERANCE
        verdict = "ok" if rel < tol else "MISMATCH"
        res["check"][label] = {"relative_error": rel, "tolerance": tol, "ok": rel < tol}
        log(f"  check {label:<30} max|onnx - eager| / max|eager| = {rel:.1e} "
            f"(< {tol:g}: {verdict})")
        if cuda:
            r.close()
        else:
            cpu_runners[label] = r

    if not args.no_control:
        # an A/A control: PyTorch's export again, in a session of its own, timed like the
        # others; its ratio to the export is what this machine's noise alone gives
        base = f"torch-export ({baselines[0]})"
        onnx_files[base + " again"] = onnx_files[base]
        if not cuda:
            cpu_runners[base + " again"] = OrtRunner(
                base + " again", onnx_files[base], "cpu", args.threads, ort=ort,
                spin=args.spin, iobinding=args.cpu_iobinding)
    runners = []
    if cuda:
        for label, path in onnx_files.items():
            if args.prefer_nhwc:
                layouts = [True]
            else:
                layouts = ([False] if args.no_nhwc or "fold-bn" in label
                           or label.endswith(" again") else [False, True])
            for nhwc in layouts:
                try:
                    runners.append(OrtRunner(label + (" nhwc" if nhwc else ""), path, "cuda",
                                             args.threads, nhwc=nhwc, ort=ort))
                except NoCuda:
                    raise
                except Exception as e:
                    log(f"  ! {label}{' nhwc' if nhwc else ''}: no CUDA session: "
                        f"{type(e).__name__}: {str(e)[:300]}")
        if eager:
            src = baselines[0]
            runners.append(EagerRunner(f"torch eager fp32 ({src})", reference, torch, "cuda"))
            if not args.no_eager_fp16:
                runners.append(EagerRunner("torch eager fp16 cl", reference, torch, "cuda",
                                           half=True, channels_last=True))
    else:
        runners.extend(cpu_runners.values())
        if eager:
            runners.append(EagerRunner(f"torch eager fp32 ({baselines[0]})", reference, torch,
                                       "cpu"))
    # sessions hold the weights; the files are no longer needed
    log("  sessions: " + ", ".join(f"{r.label} {r.load_s:.1f}s" for r in runners
                                   if isinstance(r, OrtRunner)))
    models.clear()
    return runners


def summary(results, batches, base_label):
    """One line per network and batch: each runner's median as a ratio to PyTorch's export."""
    labels = []
    for res in results["models"].values():
        for cell in res["timing"].values():
            for k in cell:
                if k not in labels:
                    labels.append(k)
    if not labels:
        log("\nnothing was timed")
        return
    log(f"\nmedian latency as a ratio to {base_label} (<= 1.00: as fast or faster); "
        f"its own median in ms")
    short = [k.replace("torch-export", "te").replace("torch eager", "eager") for k in labels]
    widths = [max(6, len(s)) for s in short]
    head = f"{'model':<10} {'batch':>5} {'te ms':>8}  " + "  ".join(
        f"{s:>{w}}" for s, w in zip(short, widths))
    log(head)
    for name, res in results["models"].items():
        for batch, cell in res["timing"].items():
            base = cell.get(base_label, {}).get("median_ms", float("nan"))
            row = []
            for k, w in zip(labels, widths):
                c = cell.get(k)
                row.append(f"{c['median_ms'] / base:>{w}.2f}" if c and "median_ms" in c
                           else f"{'-':>{w}}")
            log(f"{name:<10} {batch:>5} {base:>8.2f}  " + "  ".join(row))
    targets(results, base_label)
    fails = [(n, k) for n, res in results["models"].items()
             for k, c in res["check"].items() if not c["ok"]]
    if fails:
        log("numerical MISMATCH: " + ", ".join(f"{n}/{k}" for n, k in fails))


def verdict(ratio: float) -> str:
    if ratio != ratio:
        return "n/a "
    return "PASS" if ratio <= 1.0 else ("~   " if ratio <= 1.05 else "FAIL")


def targets(results, base_label):
    """Issue 5's latency targets, one line each: netc's model against PyTorch's export (same
    runtime, same layout option), and on CUDA netc fp16 against PyTorch eager fp16."""
    lines = []
    root = base_label[:-len(" nhwc")] if base_label.endswith(" nhwc") else base_label
    for name, res in results["models"].items():
        for batch, cell in res["timing"].items():
            def ms(label):
                return cell.get(label, {}).get("median_ms", float("nan"))
            for layout in ("", " nhwc"):
                base = ms(root + layout)
                for variant in ("netc", "netc fold-bn", "netc fp16", root + " again"):
                    got = ms(variant + layout)
                    if got == got and base == base:
                        # the ratio to the baseline of the same layout, paired by turn
                        paired = cell[variant + layout].get("paired_ratio", float("nan"))
                        low, high = cell[variant + layout].get("paired_interval",
                                                               (float("nan"),) * 2)
                        if layout:
                            paired = float("nan")  # paired_ratio is against the NCHW export
                        control = variant == root + " again"
                        what = "A/A control: the export again" if control else variant + layout
                        # the export was timed in two sessions (the control): against the
                        # geometric mean of both, the order sessions were made in cancels out
                        again = ms(root + " again" + layout)
                        both = "" if control or again != again else (
                            f"; vs both export sessions {got / (base * again) ** 0.5:.3f}")
                        lines.append((got / base, f"{name} b{batch}: {what} / "
                                      f"torch-export{layout} = {got / base:.3f}"
                                      + (f" (paired by turn {paired:.3f}" + (
                                          f", 95% {low:.3f}-{high:.3f}" if low == low else "")
                                         + ")" if paired == paired else "") + both))
            e16 = ms("torch eager fp16 cl")
            fp16 = [(ms(v), v) for v in ("netc fp16", "netc fp16 nhwc") if ms(v) == ms(v)]
            best = min(fp16) if fp16 else (float("nan"), "")
            if e16 == e16 and best[0] == best[0]:
                lines.append((best[0] / e16, f"{name} b{batch}: {best[1]} / torch eager fp16 "
                              f"channels_last = {best[0] / e16:.3f}"
                              + ("   <- issue 5 target (batch 32)" if batch == 32 else "")))
    if lines:
        log("\ntargets, on the ratio of medians (<= 1.00 PASS; ~ within 5%; FAIL); the paired "
            "ratio (median over turns of the two models' ratio) is steadier under changing load")
        for ratio, text in lines:
            log(f"  {verdict(ratio)}  {text}")


def machine(torch, ort, torchvision) -> dict:
    import onnx

    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": getattr(torchvision, "__version__", None), "onnx": onnx.__version__,
            "onnxruntime": ort.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


if __name__ == "__main__":
    sys.exit(main())
