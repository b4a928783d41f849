"""`netc bench`: how fast a model runs in ONNX Runtime, per batch size.

A spec is compiled in memory (through a temporary folder when its weights are too big for one
protobuf message); an .onnx file is loaded as it is. One session serves every batch size (netc's
models keep the batch symbolic). For each batch size: `warmup` untimed runs, then timed runs
until `iters` runs, or `seconds` have passed, or by default both 3 s and 20 runs. Each run is
timed alone (wall clock), and the report gives the median and 90th percentile, the throughput
at the median (batch / median) and, for a spec, the arithmetic rate from netc's own MAC count
(2 × MACs × batch / median): an .onnx file has no netc count, so that column is n/a.

On CUDA the inputs and outputs stay on the GPU (IO binding), so that the timings measure the
model rather than copies over PCIe. ONNX Runtime is imported lazily, in run.py, as everywhere.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from ..errors import fail
from ..limits import DEFAULT, Limits

DEFAULT_SECONDS = 3.0  # without --iters or --seconds: run for at least this long ...
DEFAULT_MIN_RUNS = 20  # ... and at least this many times
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
              "tensor(uint8)": "uint8"}  # uint8: a model compiled with --uint8-input


@dataclass(frozen=True)
class Options:
    """What `netc bench` measures and how; the defaults are the command line's."""

    provider: str = "cpu"
    batches: tuple[int, ...] = (1,)
    dtype: str | None = None  # a spec's precision (default float32); an .onnx file's, checked
    fold_bn: bool = False
    warmup: int = 10
    iters: int | None = None
    seconds: float | None = None
    prefer_nhwc: bool = False
    threads: int | None = None  # intra-op threads; None leaves ONNX Runtime's default
    seed: int = 0
    limits: Limits = DEFAULT  # the safety limits a spec is checked within


def is_onnx(path: str) -> bool:
    return path.endswith(".onnx")


def usage_problem(path: str, options: Options) -> str | None:
    """What is wrong with this combination of options, if anything (a command-line error)."""
    if options.prefer_nhwc and options.provider != "cuda":
        return ("--prefer-nhwc is an option of the CUDA provider: it has no effect with "
                f"--provider {options.provider}")
    if options.fold_bn and is_onnx(path):
        return "--fold-bn applies when compiling a spec; an .onnx model is benchmarked as it is"
    return None


# --- the model -------------------------------------------------------------------------------


@dataclass
class Model:
    """A model ready for ONNX Runtime, and what netc knows about it."""

    model: bytes | str  # serialized bytes, or the path of an .onnx file
    name: str
    source: str  # "spec" or "onnx"
    dtype: str  # the precision of the weights and the computation
    params: int | None = None  # netc's counts: only for a spec
    macs: int | None = None
    compile_s: float | None = None
    graph: object = None  # netc's checked graph (a spec), to map ONNX Runtime's errors back


def load_model(path: str, options: Options, folder: str) -> Model:
    """Compile a spec in memory (or into `folder` when it is too big), or take an .onnx file."""
    if is_onnx(path):
        return _onnx_model(path, options.dtype)
    from ..errors import Diagnostics
    from ..pipeline import Emission, check_file, runnable

    started = time.perf_counter()
    warnings = Diagnostics()
    graph = check_file(path, warnings, options.limits)
    if len(warnings):
        print(warnings.render(), file=sys.stderr)
    dtype = options.dtype or "float32"
    model = runnable(graph, Emission(options.seed, None, dtype, options.fold_bn), folder)
    return Model(model, graph.name, "spec", dtype, graph.params, graph.macs,
                 time.perf_counter() - started, graph)


def _onnx_model(path: str, wanted: str | None) -> Model:
    from ..load import regular_file

    regular_file(path, "E001")  # (a FIFO, a device, a folder: refused, never read)
    dtype = _onnx_precision(path)
    if wanted and wanted != dtype:
        raise fail("E602", f"'{path}' computes in {dtype}, not {wanted}: --dtype cannot convert "
                   "an .onnx model", None,
                   hints=[f"leave out --dtype to benchmark it in {dtype}",
                          f"or benchmark the spec with --dtype {wanted} (netc compiles it so)"])
    name = os.path.splitext(os.path.basename(path))[0]
    return Model(path, name, "onnx", dtype)


def _onnx_precision(path: str) -> str:
    """The float type that most of a model's weights are stored in (the input's, if none)."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise fail("E604", f"cannot read '{path}' as an ONNX model: {e}", None) from None
    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
             onnx.TensorProto.BFLOAT16: "bfloat16", onnx.TensorProto.DOUBLE: "float64"}
    counts: dict[str, int] = {}
    for t in model.graph.initializer:
        if t.data_type in names:
            size = int(np.prod(t.dims, dtype=np.int64))
            counts[names[t.data_type]] = counts.get(names[t.data_type], 0) + size
    if counts:
        return max(counts, key=counts.get)
    for v in model.graph.input:
        if v.type.tensor_type.elem_type in names:
            return names[v.type.tensor_type.elem_type]
    return "float32"


# --- sessions and inputs ---------------------------------------------------------------------


def open_session(model: Model, options: Options):
    """(session, seconds it took to create)."""
    from .. import run

    ort = run._ort()
    so = ort.SessionOptions()
    if options.threads:
        so.intra_op_num_threads = options.threads
    provider_options = {"prefer_nhwc": "1"} if options.prefer_nhwc else None
    started = time.perf_counter()
    sess = run.session(model.model, options.provider, so, provider_options, graph=model.graph)
    return sess, time.perf_counter() - started


def input_dtypes(sess) -> dict[str, str]:
    """The numpy dtype name of each input: netc bench feeds floats (float32, float16) and
    uint8 pixels (a model compiled with --uint8-input)."""
    found = {}
    for i in sess.get_inputs():
        if i.type not in ORT_DTYPES:
            raise fail("E602", f"input '{i.name}' is a {i.type}: netc bench feeds float32, "
                       "float16 and uint8 inputs only", None)
        found[i.name] = ORT_DTYPES[i.type]
    return found


def check_batches(sess, batches, spec: bool) -> None:
    """Every batch size must fit every input, before any is timed: E602 for a batch that a
    fixed-batch input cannot take (run.fixed_batch_error: the fix is N in the spec's
    `inputs:`), or for an input whose other dimensions are not fixed."""
    from .. import run

    for i in sess.get_inputs():
        shape = list(i.shape)
        if not shape:
            raise fail("E602", f"input '{i.name}' is a scalar: there is no batch to vary", None)
        fixed = run.fixed_batch(shape)
        for batch in batches:
            if fixed is not None and fixed != batch:
                raise run.fixed_batch_error(i.name, shape, f"--batch {batch}", spec)
        if any(not isinstance(d, int) or d < 1 for d in shape[1:]):
            raise fail("E602", f"input '{i.name}' is {run.dims(shape)}: netc bench can vary "
                       "the batch only; every other dimension must be fixed", None)


def random_inputs(sess, batch: int, seed: int = 0, spec: bool = True) -> dict[str, np.ndarray]:
    """Inputs of the model's dtypes with the batch (first dimension) set: standard-normal
    floats, or uniform uint8 pixels 0..255. `spec`: the model came from a spec (for the fix
    of a batch it cannot take)."""
    from .. import run

    check_batches(sess, (batch,), spec)
    rng = np.random.default_rng(seed)
    dtypes = input_dtypes(sess)
    feeds = {}
    for i in sess.get_inputs():
        size = [batch, *i.shape[1:]]
        run.too_large(i.name, size)
        if dtypes[i.name] == "uint8":
            feeds[i.name] = rng.integers(0, 256, size, dtype=np.uint8)
        else:
            x = rng.standard_normal(size, dtype=np.float32)
            feeds[i.name] = x.astype(dtypes[i.name], copy=False)
    return feeds


def runner(sess, feeds: dict[str, np.ndarray], provider: str):
    """A function that runs the model once on `feeds`. On CUDA, inputs and outputs are bound
    on the GPU: the inputs are copied there once, and after the first run the outputs it
    allocated are bound again, so timed runs neither copy nor allocate."""
    if provider == "cpu":
        return lambda: sess.run(None, feeds)
    from .. import run

    ort = run._ort()
    binding = sess.io_binding()
    keep = []  # the device copies of the inputs must outlive the binding
    for name, x in feeds.items():
        value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        keep.append(value)
        binding.bind_ortvalue_input(name, value)
    outputs = [o.name for o in sess.get_outputs()]
    for name in outputs:
        binding.bind_output(name, "cuda", 0)
    binding.synchronize_inputs()
    sess.run_with_iobinding(binding)
    binding.synchronize_outputs()
    for name, value in zip(outputs, binding.get_outputs()):
        keep.append(value)
        binding.bind_ortvalue_output(name, value)

    def once():
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()  # the run is over only when the GPU is done

    once.keep = keep
    return once


# --- measuring -------------------------------------------------------------------------------


class Progress:
    """What a long benchmark (or `netc run --image` over many images) is doing, on standard
    error: on a terminal one line redrawn in place (from the first second on, at most 10
    times a second, erased at the end); otherwise a plain line every 10 seconds, so that logs
    stay short. `prefix` starts each line ("netc bench")."""

    DELAY, REDRAW, PLAIN_EVERY = 1.0, 0.1, 10.0

    def __init__(self, stream=None, tty: bool | None = None, clock=time.monotonic,
                 prefix: str = "netc bench") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock, self.prefix = clock, prefix
        self.start("")

    def start(self, label: str) -> None:
        self.label, self.began, self.last, self.drawn = label, self.clock(), None, False

    def update(self, text) -> None:
        """Show `text` (a string, or a function giving one) if it is time to."""
        now = self.clock()
        if self.tty:
            early = now - self.began < self.DELAY
            if early or (self.last is not None and now - self.last < self.REDRAW):
                return
            line = f"\r\x1b[K{self.prefix}: {self.label}: {text() if callable(text) else text}"
            self.drawn = True
        else:
            if now - (self.last or self.began) < self.PLAIN_EVERY:
                return
            line = f"{self.prefix}: {self.label}: {text() if callable(text) else text}\n"
        self.last = now
        self.stream.write(line)
        self.stream.flush()

    def done(self) -> None:
        """Erase the line drawn in place, if any (before other output, and at the end)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def measure(once, options: Options, progress: Progress) -> tuple[list[float], float]:
    """(seconds of each timed run, seconds of the first run) after the warm-up runs."""
    clock = time.perf_counter
    first = None
    enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of a run would be timed as the model's
    try:
        for i in range(options.warmup):
            t = clock()
            once()
            first = first if first is not None else clock() - t
            progress.update(f"warm-up run {i + 1} of {options.warmup}")
        times: list[float] = []
        started = clock()
        while True:
            t = clock()
            once()
            done = clock()
            times.append(done - t)
            if _enough(len(times), done - started, options):
                break
            progress.update(lambda: _so_far(times, done - started, options))
    finally:
        if enabled:
            gc.enable()
    return times, first if first is not None else times[0]


def _enough(runs: int, elapsed: float, options: Options) -> bool:
    if options.iters is not None:
        return runs >= options.iters
    if options.seconds is not None:
        return elapsed >= options.seconds
    return elapsed >= DEFAULT_SECONDS and runs >= DEFAULT_MIN_RUNS


def _so_far(times: list[float], elapsed: float, options: Options) -> str:
    median = f"median {_ms(float(np.median(times)) * 1e3)} ms so far"
    if options.iters is not None:
        return f"run {len(times)} of {options.iters}, {median}"
    if options.seconds is not None:
        return f"{len(times)} runs, {elapsed:.1f} of {options.seconds:g} s, {median}"
    return (f"{len(times)} runs in {elapsed:.1f} s (until {DEFAULT_SECONDS:g} s and "
            f"{DEFAULT_MIN_RUNS} runs), {median}")


def statistics(times: list[float], batch: int, macs: int | None) -> dict:
    """Median, 90th percentile and the rest, in milliseconds; throughput at the median."""
    t = np.asarray(times)
    median = float(np.median(t))
    return {
        "batch": batch,
        "runs": len(times),
        "median_ms": median * 1e3,
        "p90_ms": float(np.percentile(t, 90)) * 1e3,
        "mean_ms": float(t.mean()) * 1e3,
        "min_ms": float(t.min()) * 1e3,
        "max_ms": float(t.max()) * 1e3,
        "images_per_s": batch / median,
        "gflops": 2 * macs * batch / median / 1e9 if macs is not None else None,
    }


# --- the whole benchmark ---------------------------------------------------------------------


def bench(path: str, options: Options = Options(), progress: Progress | None = None) -> dict:
    """Benchmark a spec or an .onnx model; the result as plain data (what --format json
    prints). Raises NetcError for the user's errors, E601 when the provider is unavailable."""
    progress = progress or Progress()
    folder = tempfile.mkdtemp(prefix="netc-bench-")
    try:
        model = load_model(path, options, folder)
        sess, load_s = open_session(model, options)
        dtypes = input_dtypes(sess)
        check_batches(sess, options.batches, model.source == "spec")  # before any timing
        from .. import run

        result = {
            "model": path,
            "name": model.name,
            "source": model.source,
            "provider": options.provider,
            "execution_providers": sess.get_providers(),
            "device": device_name(options.provider),
            "onnxruntime": run._ort().__version__,
            "dtype": model.dtype,
            "input_dtypes": dtypes,
            "fold_bn": options.fold_bn,
            "io_binding": options.provider == "cuda",
            "prefer_nhwc": options.prefer_nhwc,
            "threads": options.threads,
            "params": model.params,
            "macs": model.macs,
            "compile_s": model.compile_s,
            "load_s": load_s,
            "warmup": options.warmup,
            "iters": options.iters,
            "seconds": options.seconds,
            "results": [],
        }
        for batch in options.batches:
            feeds = random_inputs(sess, batch, options.seed, model.source == "spec")
            # one untimed run first, so that a failure names the layer (run.run_model)
            run.run_model(sess, feeds, model.graph, model.model, options.provider)
            once = runner(sess, feeds, options.provider)
            progress.start(f"batch {batch}")
            try:
                times, first = measure(once, options, progress)
            finally:
                progress.done()
            stats = statistics(times, batch, model.macs)
            stats["first_ms"] = first * 1e3
            result["results"].append(stats)
            del once, feeds
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def device_name(provider: str) -> str:
    """The CPU's model name (from /proc/cpuinfo) and count, or the GPU's name (nvidia-smi)."""
    if provider == "cuda":
        return _gpu_name() or "a CUDA GPU (nvidia-smi did not name it)"
    name = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    name = value.strip()
                    break
    except OSError:
        pass
    if not name:
        import platform

        name = platform.processor() or platform.machine() or "unknown CPU"
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {count} CPU{'s' if count != 1 else ''}"


def _gpu_name() -> str | None:
    command = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.isdigit():  # device 0 of the process is this one of the machine
        command += ["-i", visible]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if out.returncode == 0 and names else None


# --- reports ---------------------------------------------------------------------------------


def render_json(result: dict) -> str:
    from .formats import printable_document  # (a path not UTF-8: `\xff`, as everywhere)

    return json.dumps(printable_document(result), indent=2)


def render_text(result: dict) -> str:
    """A header naming what was measured, where and how, then one row per batch size."""
    r = result
    origin = (f"compiled in memory in {r['compile_s']:.2f} s" if r["source"] == "spec"
              else "as the file is")
    how = r["execution_providers"][0]
    if r["io_binding"]:
        how += ", IO binding (inputs and outputs on the GPU)"
    if r["prefer_nhwc"]:
        how += ", prefer_nhwc"
    how += f", intra-op threads: {r['threads'] or 'ONNX Runtime default'}"
    inputs = sorted(set(r["input_dtypes"].values()))
    dtype = r["dtype"] + (f" (inputs {', '.join(inputs)})" if inputs != [r["dtype"]] else "")
    if r["fold_bn"]:
        dtype += ", batchnorm folded into convs"
    if r["macs"] is not None:
        from .report import human_count

        counts = (f"{r['params']:,} params, {human_count(r['macs'], 'MACs')} per image "
                  "(netc's count)")
    else:
        counts = "MACs n/a: netc counts them from a spec, so GFLOP/s needs the spec"
    if r["iters"] is not None:
        runs = f"{r['iters']} timed"
    elif r["seconds"] is not None:
        runs = f"timed for {r['seconds']:g} s"
    else:
        runs = f"timed for {DEFAULT_SECONDS:g} s and at least {DEFAULT_MIN_RUNS} runs"
    lines = [
        f"netc bench: {r['name']} ({r['model']}, {origin})",
        f"  provider  {r['provider']}: {how}",
        f"  device    {r['device']}; onnxruntime {r['onnxruntime']}",
        f"  dtype     {dtype}",
        f"  model     {counts}",
        f"  session   created in {r['load_s']:.2f} s",
        f"  runs      {r['warmup']} warm-up, then {runs}, per batch size",
        "",
    ]
    rows = [("batch", "runs", "median ms", "p90 ms", "images/s", "GFLOP/s")]
    for s in r["results"]:
        rows.append((str(s["batch"]), str(s["runs"]), _ms(s["median_ms"]), _ms(s["p90_ms"]),
                     f"{s['images_per_s']:,.1f}",
                     f"{s['gflops']:,.1f}" if s["gflops"] is not None else "n/a"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 1000 else f"{value:,.0f}"
