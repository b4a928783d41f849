"""The command line: argument parsing and exit codes only. The work is in pipeline.py (load ->
expand -> check -> emit) and, for the commands over a checked graph, in tools/.

Exit codes: 0 success, 1 errors in the user's input, 2 bad command-line usage,
70 an internal error (a netc bug), 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM),
129 hung up (SIGHUP): 128 + the signal's number, as a shell reports a process it killed.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

from .errors import NetcError, fail
from .limits import BOUNDS, MAXIMA, Limits
from .version import __version__

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

DESCRIPTION = """\
netc compiles convolutional networks written as YAML specs into ONNX models,
checking every layer's shape first (output = (N - F + 2P) / stride + 1).

Run `netc COMMAND --help` for a command's options. Docs: docs/spec.md, docs/cli.md."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netc", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"netc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    c = sub.add_parser("compile", help="check a spec and write its ONNX model",
                       description="Check SPEC and write its ONNX model with initial weights "
                       "(He-normal for conv and dense, identity batchnorm). The same spec and "
                       "seed always give a byte-identical file; it is written atomically.")
    c.add_argument("spec", metavar="SPEC", help="the spec file (.yaml)")
    c.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="where to write the model (default: SPEC's file name with .onnx "
                   "in the current directory: b_fixed.yaml -> b_fixed.onnx)")
    c.add_argument("--seed", type=_seed, default=0, metavar="N",
                   help="seed for the initial weights (default 0)")
    _emission_options(c)
    c.add_argument("--uint8-input", action="store_true",
                   help="make the model's input raw uint8 pixels N×H×W×C, as image libraries "
                   "decode them, with the cast, the change to N×C×H×W and the normalisation "
                   "that the spec's `preprocess:` declares inside the model (resizing and "
                   "cropping stay outside); needs `preprocess:`")
    c.add_argument("--external-data", action="store_true",
                   help="store the weights in a data file beside the model (always done when "
                   "they pass 1.5 GiB, as protobuf cannot hold 2 GiB)")
    _weights_options(c)

    k = sub.add_parser("check", help="check specs without building anything",
                       description="Check every spec given (folders are searched for .yaml and "
                       ".yml files): structure, attributes, shapes and `expect:`. Prints every "
                       "error with its position; exits 1 if any spec has errors. Needs neither "
                       "onnx nor onnxruntime.")
    k.add_argument("paths", nargs="+", metavar="PATH", help="spec files or folders")
    k.add_argument("--format", choices=("text", "json", "github", "sarif"), default="text",
                   help="text (default, to standard error); json (one document); github "
                   "(GitHub Actions workflow commands that annotate the lines); sarif (SARIF "
                   "2.1.0, for code scanning). Machine formats go to standard output, alone")
    k.add_argument("--strict", action="store_true",
                   help="warnings (W2xx) fail the check too: exit 1")
    k.add_argument("--update-expect", action="store_true",
                   help="rewrite each spec's `expect:` block in place with its actual params, "
                   "MACs and output shapes (comments and layout kept; a spec with other errors "
                   "is left alone); prints the files changed")

    s = sub.add_parser("summary", help="per-layer shapes, parameters and MACs",
                       description="Print a table of every layer (name, type, output shape, "
                       "parameters, MACs) and the totals: parameters, MACs, FLOPs (= 2 x MACs), "
                       "weight bytes and activation memory at batch 1.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--format", choices=("text", "json"), default="text",
                   help="text table (default) or JSON")

    e = sub.add_parser("expand", help="print the spec with blocks, repeats and defaults expanded",
                       description="Print SPEC as a flat spec: every block, repeat, branch and "
                       "default expanded, every layer with its full name, its inputs and all its "
                       "attributes. netc reads the result as a spec, and it compiles to the "
                       "identical model.")
    e.add_argument("spec", metavar="SPEC")
    e.add_argument("-o", "--output", metavar="OUT.yaml", help="write to a file instead of "
                   "standard output")

    r = sub.add_parser("run", help="run a spec or an .onnx model in ONNX Runtime",
                       description="Run SPEC (compiled in memory) or MODEL.onnx in ONNX Runtime "
                       "and print each output's name, shape and a summary of its values. "
                       "Without --input, the input is random (standard normal, seed 0).")
    r.add_argument("model", metavar="SPEC_OR_ONNX")
    r.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                   help="input array (.npy, float32); NAME= picks the input of a model with "
                   "several; repeatable")
    r.add_argument("--batch", type=_batch, default=None, metavar="N",
                   help="batch size for random inputs (default 1)")
    r.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                   help="execution provider (default cpu); cuda fails clearly when it is "
                   "unavailable instead of falling back to the CPU")
    r.add_argument("--image", action="append", nargs="+", default=[], metavar="FILE_OR_DIR",
                   help="run on images (PNG, JPEG, ... as Pillow reads them; a folder: its "
                   "image files, sorted), made into the input by the preprocessing the spec or "
                   "model declares (`preprocess:`), and print the top classes of each (of a "
                   "segmentation model, N×classes×H×W: the classes covering most pixels)")
    r.add_argument("--top", type=_positive, default=None, metavar="K",
                   help="with --image: how many classes to print per image (default 5)")
    r.add_argument("--output", metavar="OUT.npy",
                   help="save the output (.npy), or all outputs by name (.npz); with --image, "
                   "a table of the top classes per image (.csv or .jsonl) or the outputs "
                   "(.npy, one row per image)")
    r.add_argument("--masks", metavar="DIR",
                   help="with --image, for a segmentation model (first output N×classes×H×W): "
                   "write each image's class map (the argmax over the classes at each pixel) "
                   "as DIR/<image stem>.png, an 8-bit palette PNG at the output's size (pixel "
                   "value = class index, Pascal VOC's colours); names two images share get "
                   "-2, -3...; DIR is created")
    r.add_argument("--maps", metavar="DIR",
                   help="with --image FILE: write each chosen layer's activation maps as one "
                   "PNG grid per layer (a tile per channel) into DIR")
    r.add_argument("--layers", metavar="NAME,...",
                   help="with --maps: the layers to draw (default: every conv layer)")
    r.add_argument("--seed", type=_seed, default=0, metavar="N",
                   help="seed for the weights when running a spec (default 0)")
    _emission_options(r)
    _weights_options(r)

    w = sub.add_parser("weights", help="write a spec's weights, or extract a model's, to a file",
                       description="Write the weights of SPEC (initial values, named "
                       "`<layer>.<param>` as PyTorch's state_dict keys: a template to fill) or "
                       "the initializers of MODEL.onnx to a .safetensors or .npz file.")
    w.add_argument("source", metavar="SPEC_OR_ONNX")
    w.add_argument("-o", "--output", required=True, metavar="OUT.safetensors",
                   help="the file to write (.safetensors or .npz)")
    w.add_argument("--seed", type=_seed, default=0, metavar="N",
                   help="seed for the initial weights of a spec (default 0)")
    _weights_options(w)
    _bench_parser(sub)
    _tool_parsers(sub)
    _explain_parser(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--limit", action="append", default=[], type=_limit, metavar="NAME=N",
            help="raise (or lower) one of netc's safety limits for this run; repeatable. "
            "Names: " + ", ".join(f"{k} ({v})" for k, v in BOUNDS.items())
            + "; the defaults are in docs/robustness.md")
    return p


def _limit(text: str) -> tuple[str, int]:
    """`--limit NAME=N`: one of netc's safety limits (limits.py), raised or lowered, from 1 to
    the most netc can honour (limits.MAXIMA)."""
    name, equals, value = text.partition("=")
    if name not in BOUNDS:
        raise argparse.ArgumentTypeError(f"unknown limit {name!r}; limits: {', '.join(BOUNDS)}")
    if not equals:
        raise argparse.ArgumentTypeError(f"give the limit a value: {name}=N")
    number = _whole(value.replace("_", ""))
    if number is None:
        raise argparse.ArgumentTypeError(f"{name}={_brief(value)}: give a whole number")
    if not 1 <= number <= MAXIMA[name]:
        raise argparse.ArgumentTypeError(f"{name} must be between 1 and {MAXIMA[name]:,}"
                                         f", not {_brief(value)}")
    return name, number


def _whole(text: str) -> int | float | None:
    """The whole number `text` writes, or None; a number of more than 30 digits (no option
    of netc goes near one) is inf, so that its bound is what is reported, not Python's
    refusal to convert 4,300 digits."""
    digits = text.strip().lstrip("+-")
    if digits.isdigit() and len(digits) > 30:
        return float("-inf") if text.strip().startswith("-") else float("inf")
    try:
        return int(text)
    except ValueError:
        return None


def _brief(text: str) -> str:
    """An option's value as an error message quotes it: at most 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _emission_options(p) -> None:
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="precision of the weights and the computation (default float32); "
                   "float16 halves the model and is faster on GPUs, while the inputs and outputs "
                   "stay float32")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold each batchnorm into the conv before it (the same function, "
                   "within float32 rounding; fewer nodes and tensors)")


def _weights_options(p) -> None:
    p.add_argument("--weights", metavar="FILE", help="load weights by name from a .safetensors "
                   "or .npz file (keys `<layer name>.<weight|bias|running_mean|running_var>`, "
                   "as in a PyTorch state_dict); every mismatch is reported at once")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --weights: initialise tensors the file lacks (and list them) "
                   "instead of failing")


def _integer(low: int, high: int | None = None, what: str = ""):
    """An argparse type: a whole number in [low, high] (high: None for no bound)."""

    def parse(text: str) -> int:
        value = _whole(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"not an integer: {_brief(text)}") from None
        if value < low or (high is not None and value > high):
            bound = ("0 or more" if low == 0 else f"at least {low}") if value < low \
                else f"at most {high:,}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}" if what else
                                             f"must be {bound}")
        return value

    return parse


# Upper bounds of the numeric options: each far past any real use, and within what the
# libraries they reach take (ONNX Runtime's thread count is a C int; a batch is one input
# dimension, bounded as a spec's are: expand.MAX_RANK_DIM), so that a mistyped number is a
# usage error rather than a failure deep inside, or a benchmark that never ends.
MAX_BATCH = 1 << 20
MAX_RUNS = 1_000_000_000  # --iters, --warmup
MAX_SECONDS = 86_400.0  # --seconds: a day


def max_threads() -> int:
    """--threads: at most 4 per CPU this process may use. More only slow ONNX Runtime down
    (its idle threads spin: 1,024 threads on 2 CPUs took a minute for a 0.1 ms model), and
    where thread stacks don't fit the address space (256 threads of 8 MiB under a 2 GiB
    ulimit) ONNX Runtime waits forever for threads it could not create."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 4 * max(1, cpus or 1)


_seed = _integer(0, 2**63 - 1, "the seed")
_positive = _integer(1)
_count = _integer(0)
_batch = _integer(1, MAX_BATCH, "the batch size")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Python code runs, so that they unwind like Ctrl-C:
    every `finally` runs (a half-written temporary file is removed), then `main` exits
    128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_WAKEUP = None  # (read end, write end) of the pipe the signals' numbers are written to


def _terminate(signum, frame) -> None:
    """The first of SIGTERM and SIGHUP raises Terminated with the number of the signal that
    came FIRST: two that arrive while Python runs no bytecode are handled in the order of
    their numbers (SIGHUP's handler first), so the order they came in is read from the
    wakeup pipe, where the C handler writes each number as it arrives. Later ones do nothing
    (`_ignore`): a Python handler, not SIG_IGN, since a signal already pending when its
    handler became SIG_IGN raises OSError ("ignored due to race condition") in the middle
    of the cleanup."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):  # once: a second signal must not cut the cleanup short
        signal.signal(getattr(signal, name), _ignore)
    raise Terminated(_first_signal(signum))


def _ignore(signum, frame) -> None:
    """A SIGTERM or SIGHUP after the first: the cleanup the first started goes on."""


def _first_signal(signum: int) -> int:
    """The first SIGTERM or SIGHUP the wakeup pipe holds, or `signum` where there is none."""
    import signal

    if _WAKEUP is None:
        return signum
    ours = {int(signal.SIGTERM), int(getattr(signal, "SIGHUP", signal.SIGTERM))}
    try:
        data = os.read(_WAKEUP[0], 4096)
    except OSError:  # (empty: BlockingIOError)
        return signum
    return next((n for n in data if n in ours), signum)


def _wakeup_pipe() -> tuple | None:
    """A non-blocking pipe set as signal.set_wakeup_fd, so that _first_signal knows the order
    signals came in; None (nothing changed) where another wakeup fd is in use (an event loop
    calling main) or none can be set."""
    import signal

    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (OSError, ValueError, AttributeError):  # not the main thread; no such call
        os.close(r)
        os.close(w)
        return None
    if previous != -1:  # someone else's: theirs stays
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return None
    return r, w


def _close_wakeup_pipe() -> None:
    global _WAKEUP
    if _WAKEUP is None:
        return
    import signal

    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for fd in _WAKEUP:
        try:
            os.close(fd)
        except OSError:
            pass
    _WAKEUP = None


def _catch_signals() -> dict:
    """Handle SIGTERM and SIGHUP as Ctrl-C is handled (`Terminated`), where their default is
    in force (a caller that ignores them, as `nohup` does, keeps that); returns the previous
    handlers. Only the main thread may set handlers: elsewhere (netc run from a thread),
    nothing changes."""
    import signal

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) != signal.SIG_DFL:
            continue
        try:
            previous[number] = signal.signal(number, _terminate)
        except ValueError:  # not the main thread
            break
    global _WAKEUP
    if previous and _WAKEUP is None:
        _WAKEUP = _wakeup_pipe()
    return previous


def _escaping(error: UnicodeEncodeError) -> tuple[str, int]:
    """The standard streams' error handler: a character the stream cannot encode is written
    escaped, as tools/formats.printable writes it (a file name's byte that is not UTF-8,
    `\\udcff`, as `\\xff`; another lone surrogate as `\\ud800`; in a non-UTF-8 locale, any
    other character as `\\u00d7`): whatever a path or a spec holds, netc's output stays
    text in the stream's encoding, never a traceback and never raw bytes."""
    text = error.object[error.start:error.end]
    return "".join(f"\\x{ord(c) - 0xdc00:02x}" if 0xdc80 <= ord(c) <= 0xdcff else
                   f"\\u{ord(c):04x}" if ord(c) <= 0xffff else f"\\U{ord(c):08x}"
                   for c in text), error.end


def _escaping_streams() -> None:
    """Standard output and error escape what they cannot encode (`_escaping`), instead of
    Python's defaults (stdout: strict, or surrogateescape, which writes a file name's raw
    bytes: not UTF-8; stderr: backslashreplace, another form)."""
    import codecs

    codecs.register_error("netc-escape", _escaping)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "netc-escape":
            try:
                stream.reconfigure(errors="netc-escape")
            except (ValueError, io.UnsupportedOperation):  # closed, or not reconfigurable
                pass


def main(argv: list[str] | None = None) -> int:
    _escaping_streams()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.limits = Limits(**dict(args.limit))  # the last --limit of a name wins
    from .files import forget_inputs

    forget_inputs()  # this run's inputs only (one process may run many commands)
    previous = _catch_signals()
    try:
        return _main(args)
    finally:
        import signal

        for number, handler in previous.items():
            signal.signal(number, handler)
        if previous:
            _close_wakeup_pipe()


def _main(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except NetcError as e:
        print(e.diagnostics.render(), file=sys.stderr)
        if getattr(e, "bug", False):  # ONNX Runtime rejected a model netc built (run.py)
            print("netc: internal error: this is a bug in netc, please report it with the "
                  "spec and this message", file=sys.stderr)
            return EXIT_INTERNAL
        return EXIT_ERRORS
    except Terminated as e:
        import signal

        print(f"netc: terminated by {signal.Signals(e.signum).name}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("netc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except MemoryError:  # a large model on a small machine (or under a ulimit): not a bug
        print(fail("E603", "out of memory: the output's tensors don't fit in the memory this "
                   "process may use", None,
                   hints=["`netc summary SPEC` shows the size of each layer's weights"])
              .diagnostics.render(), file=sys.stderr)
        return EXIT_ERRORS
    except Exception:  # anything else is a bug in netc, never the user's fault
        print("netc: internal error: this is a bug in netc, please report it with the spec "
              "and this trace:", file=sys.stderr)
        import traceback  # (here: only a bug needs it)

        traceback.print_exc()
        return EXIT_INTERNAL


def _checked(path: str, args):
    """Check a spec (within the run's limits), printing its warnings to standard error.
    (run.spec_graph does the same for the commands that run a model; this one keeps numpy,
    which run.py imports, out of `summary`, `expand` and `graph`.)"""
    from .errors import Diagnostics
    from .pipeline import check_file

    warnings = Diagnostics()
    graph = check_file(path, warnings, args.limits)
    if len(warnings):
        print(warnings.render(), file=sys.stderr)
    return graph


def cmd_compile(args) -> int:
    from .pipeline import write

    graph = _checked(args.spec, args)
    out = args.output or _default_onnx(args.spec, graph.name)
    from .files import check_target, output_lock

    check_target(out, ".onnx")  # (before its lock file is made beside it: /dev/null ...)
    emission = _emission(args, graph)
    with output_lock(out):  # (until the sizes are read: another writer may replace the pair)
        files = write(graph, out, emission, external=True if args.external_data else None)
        sizes = " + ".join(f"{os.path.getsize(f):,}" for f in files)
    extra = f", weights in {os.path.basename(files[1])}" if len(files) > 1 else ""
    print(f"wrote {out} ({graph.params:,} params, {sizes} bytes{extra})")
    return EXIT_OK


def _default_onnx(spec: str, name: str) -> str:
    """`compile`'s output without `-o`: the spec FILE's stem + `.onnx` in the current
    directory (`b_fixed.yaml` -> `b_fixed.onnx`, as a compiler names `b.o` after `b.c`), so
    the next `netc run b_fixed.onnx` finds it; the spec's `name:` stays the model's name. A
    spec read from standard input (`-`), or a file without a stem (`.yaml`), falls back to
    NAME.onnx (a valid name: E109 checked it)."""
    stem = os.path.splitext(os.path.basename(spec))[0]
    return f"{stem}.onnx" if spec != "-" and stem and not stem.startswith(".") else f"{name}.onnx"


def _emission(args, graph):
    """The emission options of `compile` and `run` (weights loaded and checked here)."""
    from .pipeline import Emission

    return Emission(args.seed, _loaded(args, graph), args.dtype, args.fold_bn,
                    getattr(args, "uint8_input", False))


def _loaded(args, graph):
    """The weights named by --weights, or None (then every tensor gets its initial value)."""
    from .run import spec_weights

    return spec_weights(args, graph)


def cmd_weights(args) -> int:
    from .files import check_target
    from .weights import initial_weights, onnx_weights, save_weights

    suffix = os.path.splitext(args.output)[1] or None
    if args.source.endswith(".onnx"):
        from .files import note_input
        from .load import regular_file

        regular_file(args.source, "E001")  # (a FIFO, a device, a folder: refused, unread)
        note_input(args.source, "the model")  # (its data files: weights.check_onnx_file)
        check_target(args.output, suffix)  # (before the tensors are read; again when written)
        tensors = onnx_weights(args.source)
    else:
        graph = _checked(args.source, args)
        check_target(args.output, suffix)  # (before --weights is read; its name: when read)
        tensors = initial_weights(graph, args.seed)
        tensors.update(_loaded(args, graph) or {})
    save_weights(args.output, tensors)
    total = sum(int(t.size) for t in tensors.values())
    print(f"wrote {len(tensors)} tensors ({total:,} values) to {args.output}")
    return EXIT_OK


def spec_files(paths: list[str]) -> list[str]:
    """The spec files named, with folders searched recursively for .yaml/.yml files."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, dirs, names in os.walk(path)
                for name in names if name.endswith((".yaml", ".yml"))
            )
            if not found:
                raise fail("E001", f"no .yaml or .yml files in the folder '{path}'", None)
            files += found
        else:
            files.append(path)
    return files


def cmd_check(args) -> int:
    if args.update_expect:
        return _update_expect(args)
    from .tools.formats import Report, check_spec_files, render

    report = Report(strict=args.strict)
    entries = []  # (path, diagnostics already known) or (file, None): to check
    for path in args.paths:
        try:
            entries += [(file, None) for file in spec_files([path])]
        except NetcError as e:  # a folder without specs: reported, and the other paths checked
            entries.append((path, e.diagnostics))
    checked = iter(check_spec_files([p for p, d in entries if d is None], args.limits))
    for path, diagnostics in entries:
        report.add(path, diagnostics if diagnostics is not None else next(checked))
    text = render(report, args.format)
    if args.format == "text":  # diagnostics to standard error, the verdict to standard output
        if text:
            print(text, file=sys.stderr)
        print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    else:  # standard output holds the document alone
        print(text)
        print(report.summary(), file=sys.stderr)
    return EXIT_ERRORS if report.failed else EXIT_OK


def cmd_summary(args) -> int:
    from .tools.report import summary_json, summary_text

    graph = _checked(args.spec, args)
    print(summary_json(graph) if args.format == "json" else summary_text(graph))
    return EXIT_OK


def cmd_run(args) -> int:
    if args.maps is not None and args.masks is not None:
        print("netc run: error: --maps draws the activation maps of layers and --masks writes the "
              "class maps of the output: not both (run twice)", file=sys.stderr)
        return EXIT_USAGE
    if args.maps is not None:  # (an empty value too: it is refused there, not ignored)
        from .tools.maps import run_maps

        return run_maps(args)
    if args.image or args.layers is not None or args.masks is not None:
        from .tools.predict import run_images

        return run_images(args)
    if args.output == "":
        print("netc run: error: --output needs a file name (OUT.npy or OUT.npz)", file=sys.stderr)
        return EXIT_USAGE
    if args.top is not None:
        print("netc run: error: --top goes with --image (the top classes of each image)",
              file=sys.stderr)
        return EXIT_USAGE
    import numpy as np

    from . import run
    from .load import regular_file

    # NAME=FILE, or FILE (a file whose own name holds "=", x=1.npy, is a file)
    items = [item.partition("=") if "=" in item and not (
        os.path.lexists(item) and not os.path.lexists(item.partition("=")[2]))
        else ("", "", item) for item in args.input]
    for _, _, path in items:  # before compiling: a FIFO would block, /dev/zero never end
        regular_file(path, "E602")
    (model, graph), batch = _model_bytes(args), args.batch
    spec = graph is not None
    sess = run.session(model, args.provider, graph=graph)
    if args.output:  # what the outputs' declared types and count already refuse: before the run
        _check_saveable(args.output, sess)
    names = [name for name, _ in run.input_specs(sess)]
    given = {}
    for name, _, path in items:
        if not name:
            if len(names) != 1:
                raise fail("E602", f"the model has {len(names)} inputs ({', '.join(names)}): "
                           "name one with --input NAME=FILE.npy", None)
            name = names[0]
        if name not in names:
            raise fail("E602", f"the model has no input '{name}'", None,
                       hints=[f"inputs: {', '.join(names)}"])
        given[name] = run.check_input(sess, name, _load_npy(path), batch, f"'{path}'", spec)
    # inputs not given are random, at the batch of those given (or --batch, or 1)
    first = next((a.shape[0] for a in given.values() if a.ndim), None)
    feeds = run.random_inputs(sess, batch or first, seed=0, spec=spec) \
        if len(given) < len(names) else {}
    feeds.update(given)
    feeds = {name: feeds[name] for name in names}
    if args.output:  # refused before running, not after: one of the inputs, a device ...
        from .files import check_target

        check_target(args.output, _suffix(args.output))
    results = run.run_model(sess, feeds, graph, model, args.provider)
    outputs = [o.name for o in sess.get_outputs()]
    # (a model from elsewhere may declare an input without dimensions, fed a random scalar,
    # or have no inputs at all: a blank would read as a bug)
    shown = [f"{k} {_dims(v)}" if v.ndim else
             f"{k} a scalar{'' if k in given else ' (shape not declared)'}"
             for k, v in feeds.items()]
    print(f"ran {args.model} on {args.provider} (inputs: {', '.join(shown) or 'none'})")
    for name, value in zip(outputs, results):
        print(f"{name}: {_described(value, np)}")
        if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[1] > 1 \
                and value.shape[0] and value.dtype.kind in "fiub":
            top = value.argmax(axis=1)[:8]
            print(f"  argmax per row: {' '.join(map(str, top))}"
                  + (" ..." if value.shape[0] > 8 else ""))
    if args.output:
        _save(args.output, dict(zip(outputs, results)), np)
    return EXIT_OK


def _described(value, np) -> str:
    """One output of a model as `netc run` prints it: its shape, dtype and values' range. An
    .onnx model from elsewhere may give what netc's never do: no values (a dimension of 0),
    strings, or an ONNX sequence or map (a list or a dict, not an array)."""
    if isinstance(value, list):
        return f"a sequence of {len(value)} value{'s' * (len(value) != 1)} (not a tensor)"
    if isinstance(value, dict):
        return f"a map of {len(value)} entr{'ies' if len(value) != 1 else 'y'} (not a tensor)"
    if not isinstance(value, np.ndarray):
        return f"a {type(value).__name__} (not a tensor)"
    shape = _dims(value) or "a scalar"
    if value.dtype.kind not in "fiub":  # strings (object arrays): no range to give
        return f"{shape} of {'strings' if value.dtype.kind in 'OSU' else value.dtype}"
    head = f"{shape} {value.dtype}"
    if value.size == 0:
        return f"{head}  (no values)"
    return (f"{head}  min {value.min():.4g}  mean {value.mean():.4g}  "
            f"max {value.max():.4g}")


def cmd_expand(args) -> int:
    from .tools.unparse import flat_spec

    _write_text(flat_spec(_checked(args.spec, args)), args.output, ".yaml")
    return EXIT_OK


def _write_text(text: str, output: str | None, suffix: str) -> None:
    """A command's document: to `output` (written atomically; never over one of the
    command's inputs, E603, whose hint names a file ending in `suffix`) or to standard
    output."""
    if output:
        from .files import write_atomic

        write_atomic(output, text.encode("utf-8"), suffix=suffix)
    else:
        sys.stdout.write(text)


def _dims(a) -> str:
    return "×".join(str(d) for d in a.shape)


def _model_bytes(args):
    """(model, graph): an .onnx path as is (its external data lies beside it) and None, or a
    spec compiled in memory and its checked graph (run.load_model, which `--image` shares)."""
    from .run import load_model

    return load_model(args)


def _load_npy(path: str):
    """The array in a .npy file, never unpickled (a stranger's file must not run code).
    numpy.lib.format reads the header; the size it declares is compared with the file's
    before any data is read, so a header that claims 4 GiB in a file of 100 bytes is E602
    ("truncated") without allocating. A file that is not .npy is E602, saying what it is (an
    image, an .npz or PyTorch archive, text, pickle data, a folder or a pipe) and how to give
    it to netc instead."""
    import stat

    import numpy as np

    import warnings

    from .files import note_input
    from .images import sniff
    from .layers.base import volume
    from .weights import npy_header

    note_input(path, "an input array")  # (no output of this run may replace it)
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise fail("E602", f"cannot read '{path}': {reason}", None) from None
    if not stat.S_ISREG(st.st_mode):  # a pipe would block the read forever, a device not end
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a pipe or a " \
            "device)"
        raise fail("E602", f"'{path}' is {what}, not a .npy array", None)
    kind = sniff(path)
    if kind is None:  # readable or not, it is no known format
        try:
            with open(path, "rb") as f:
                kind = None if f.read(6) == b"\x93NUMPY" else "unknown"
        except OSError:
            pass  # reading it below says why
    if kind is not None and kind != "a .npy array":
        raise _not_npy(path, kind)
    try:
        with open(path, "rb") as f:
            # numpy.lib.format's readers, every version np.load reads; shapes checked
            shape, _, dtype, _ = npy_header(f)
            if dtype.hasobject:
                raise ValueError("pickle")
            need = volume(shape) * dtype.itemsize
            held = st.st_size - f.tell()
            if need != held:
                # (bytes past the data, too: the file is not what its header says, and the
                # weights reader refuses such an .npz member as well)
                shown = "×".join(map(str, shape)) or "a scalar"
                what = "is truncated" if need > held else \
                    f"has {held - need:,} bytes past its data"
                raise fail("E602", f"'{path}' {what}: its header declares {shown} values of "
                           f"{dtype} ({need:,} bytes), and the file holds {held:,} bytes "
                           "after it", None,
                           hints=["write the file again: np.save(path, x)"])
            f.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (a Python 2 header: read, not shown)
                return np.lib.format.read_array(f, allow_pickle=False, max_header_size=10000)
    except ValueError as e:
        if "pickle" in str(e):  # numpy's own message would suggest loading it unsafely
            raise fail("E602", f"'{path}' holds Python objects (pickled), not numbers: netc "
                       "never unpickles a file, as that can run any code", None,
                       hints=["save a numeric array in the program that made it: "
                              "np.save(path, np.asarray(x, dtype=np.float32))"]) from None
        raise fail("E602", f"cannot read '{path}' as a .npy array: {e}", None) from None
    except (OSError, EOFError) as e:
        reason = getattr(e, "strerror", None) or str(e) or "the file ends early"
        raise fail("E602", f"cannot read '{path}' as a .npy array: {reason}", None) from None


def _not_npy(path: str, kind: str):
    """E602 for a file given to --input that is `kind` (images.sniff), with the way in."""
    message = f"'{path}' is {kind}, not a .npy array"
    if kind.endswith(" image"):
        return fail("E602", message, None,
                    hints=[f"run on the image with --image {path}: netc makes it the input "
                           "with the preprocessing the model declares (`preprocess:` in its "
                           "spec)"])
    if kind.startswith("a zip archive"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                members = z.namelist()
        except Exception:  # (any archive netc can't list: the message stays the same)
            members = []
        arrays = [m[:-4] for m in members if m.endswith(".npy")]
        if any(m.endswith("data.pkl") for m in members):
            return fail("E602", f"'{path}' is a PyTorch file (torch.save), not a .npy array",
                        None, hints=["save the tensor as .npy: np.save('x.npy', "
                                     "tensor.detach().cpu().numpy())"])
        if arrays:
            return fail("E602", f"'{path}' is an .npz archive of {len(arrays)} array"
                        f"{'s' * (len(arrays) != 1)} ({', '.join(arrays[:8])}"
                        f"{', ...' if len(arrays) > 8 else ''}), not a .npy array", None,
                        hints=[f"save the one to feed as .npy: np.save('x.npy', "
                               f"np.load('{path}')['{arrays[0]}'])"])
        return fail("E602", message, None)
    if kind == "a safetensors file":
        return fail("E602", message, None,
                    hints=["save the tensor to feed as .npy: np.save('x.npy', "
                           f"safetensors.numpy.load_file('{path}')[NAME])"])
    if kind == "Python pickle data":
        return fail("E602", f"'{path}' is Python pickle data, not a .npy array: netc never "
                    "unpickles a file, as that can run any code", None,
                    hints=["save the array with np.save(path, x) in the program that made it"])
    if kind == "text":
        return fail("E602", message, None,
                    hints=["numbers in text? convert them: np.save('x.npy', "
                           f"np.loadtxt('{path}', dtype=np.float32).reshape(...)) with the "
                           "input's shape"])
    if kind == "unknown":
        message = f"'{path}' is not a .npy array: it does not start with the .npy signature"
    return fail("E602", message, None, hints=["save the array with np.save(path, x)"])


def _check_saveable(path: str, sess) -> None:
    """Refuse `run --output` before the model runs (issue 16 item 7), from the session's
    declared outputs: a .npy file holds one array, so a model of several outputs is E603
    (save them to .npz); an output that is not a numeric tensor (a string tensor, an ONNX
    sequence or map) is E602, as `_save` would say after the run."""
    outputs = sess.get_outputs()
    if not path.endswith(".npz") and len(outputs) != 1:
        names = ", ".join(o.name for o in outputs)
        raise fail("E603", f"the model has {len(outputs)} outputs"
                   + (f" ({names})" if names else "") + ": a .npy file holds one; save them "
                   "to a .npz file", None,
                   hints=[f"--output {os.path.splitext(path)[0]}.npz"] if outputs else [])
    for o in outputs:
        kind = str(o.type or "")
        element = kind[len("tensor("):-1] if kind.startswith("tensor(") else None
        # (only what is surely refused: `_save` checks the values again after the run, and
        # an element type numpy lacks, bfloat16, is ONNX Runtime's to convert or refuse)
        if element is None or element == "string":
            what = f"a {element} tensor" if element else f"of type {kind or 'unknown'}"
            raise fail("E602", f"output '{o.name}' is {what}: --output saves numeric tensors "
                       "only", None, hints=["leave out --output to see the outputs' summary"])


def _save(path: str, outputs: dict, np) -> None:
    from .files import write_atomic

    for name, value in outputs.items():  # numpy would pickle anything else
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
            raise fail("E602", f"output '{name}' is {_described(value, np).split('  ')[0]}: "
                       f"--output saves numeric tensors only", None,
                       hints=["leave out --output to see the outputs' summary"])
    buf = io.BytesIO()
    if path.endswith(".npz"):
        from .tools.predict import npz_bytes  # (not np.savez(**outputs): `file`, `allow_pickle`)

        buf.write(npz_bytes(outputs))
    elif len(outputs) == 1:
        np.save(buf, next(iter(outputs.values())))
    else:
        raise fail("E603", f"the model has {len(outputs)} outputs: save them to a .npz file",
                   None)
    write_atomic(path, buf.getvalue(), suffix=_suffix(path))
    print(f"saved {', '.join(outputs)} to {path}")


def _suffix(path: str) -> str:
    return ".npz" if path.endswith(".npz") else ".npy"


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="time a spec or an .onnx model in ONNX Runtime",
                       description="Time SPEC (compiled in memory) or MODEL.onnx in ONNX "
                       "Runtime at each batch size: median and 90th-percentile latency, "
                       "throughput, GFLOP/s from netc's MAC count (for a spec) and the session's "
                       "creation time. Inputs are random; the report goes to standard output, "
                       "progress to standard error.")
    b.add_argument("model", metavar="SPEC_OR_ONNX")
    b.add_argument("--provider", choices=("cpu", "cuda"), default="cpu",
                   help="execution provider (default cpu); cuda fails clearly when it is "
                   "unavailable, never measuring the CPU instead, and binds inputs and outputs "
                   "on the GPU")
    b.add_argument("--batch", type=_batches, default=(1,), metavar="N[,N...]",
                   help="batch sizes, comma-separated (default 1), e.g. 1,8,32")
    b.add_argument("--dtype", choices=("float32", "float16"), default=None,
                   help="precision of a spec's weights and computation (default float32; the "
                   "inputs stay float32); an .onnx model runs as it is, and --dtype must then "
                   "match it")
    b.add_argument("--fold-bn", action="store_true",
                   help="compile the spec with batchnorm folded into the convs")
    b.add_argument("--warmup", type=_integer(0, MAX_RUNS), default=10, metavar="N",
                   help="untimed runs before timing each batch size (default 10)")
    runs = b.add_mutually_exclusive_group()
    runs.add_argument("--iters", type=_integer(1, MAX_RUNS), default=None, metavar="N",
                      help="timed runs per batch size (default: for 3 s and at least 20 runs)")
    runs.add_argument("--seconds", type=_seconds, default=None, metavar="S",
                      help="time each batch size for S seconds instead")
    b.add_argument("--prefer-nhwc", action="store_true",
                   help="CUDA provider option prefer_nhwc=1 (channels-last kernels); cuda only")
    b.add_argument("--threads", type=_integer(1, max_threads()), default=None, metavar="N",
                   help="intra-op threads (default: ONNX Runtime's, one per physical core); "
                   "at most 4 per CPU")
    b.add_argument("--format", choices=("text", "json"), default="text",
                   help="text report (default) or JSON")


def _batches(text: str) -> tuple[int, ...]:
    sizes = []
    for part in text.split(","):
        size = _whole(part)
        if size is None:
            raise argparse.ArgumentTypeError(
                f"not a comma-separated list of batch sizes: {_brief(text)}") from None
        if not 1 <= size <= MAX_BATCH:
            bound = "at least 1" if size < 1 else f"at most {MAX_BATCH:,}"
            raise argparse.ArgumentTypeError(f"batch sizes must be {bound}, not "
                                             f"{_brief(part.strip())}")
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {_brief(text)}") from None
    if not value > 0:  # (nan too)
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:,.0f} seconds (a day), "
                                         f"not {_brief(text)}")
    return value


def cmd_bench(args) -> int:
    from .tools import bench

    options = bench.Options(
        provider=args.provider, batches=args.batch, dtype=args.dtype, fold_bn=args.fold_bn,
        warmup=args.warmup, iters=args.iters, seconds=args.seconds,
        prefer_nhwc=args.prefer_nhwc, threads=args.threads, limits=args.limits)
    problem = bench.usage_problem(args.model, options)
    if problem:
        print(f"netc bench: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    result = bench.bench(args.model, options)
    print(bench.render_json(result) if args.format == "json" else bench.render_text(result))
    return EXIT_OK


def _explain_parser(sub) -> None:
    x = sub.add_parser("explain", help="document an error code, or explain one layer of a spec",
                       usage="netc explain [-h] [CODE | SPEC LAYER]",
                       description="`netc explain E301` prints the documentation of a "
                       "diagnostic code (docs/errors.md): what it means, an example and the fix. "
                       "`netc explain SPEC LAYER` shows one layer (its full name, e.g. "
                       "layer2.0.conv1): each attribute's value and where it came from, its "
                       "inputs, the window arithmetic with the numbers, its output, parameters "
                       "and MACs. Without arguments, lists every code.")
    x.add_argument("target", nargs="?", metavar="CODE|SPEC",
                   help="a code such as E301 or W201, or a spec file")
    x.add_argument("layer", nargs="?", metavar="LAYER", help="with SPEC: the layer's full name")


def cmd_explain(args) -> int:
    from .tools import explain

    if args.target is None:
        sys.stdout.write(explain.code_index())
    elif args.layer is not None:
        sys.stdout.write(explain.explain_layer(args.target, args.layer, args.limits))
    elif explain.CODE_RE.match(args.target) or not (
            args.target.endswith((".yaml", ".yml")) or os.path.isfile(args.target)):
        try:
            sys.stdout.write(explain.explain_code(args.target))
        except explain.UnknownCode as e:
            print(e.render(), file=sys.stderr)
            return EXIT_ERRORS
    else:
        print("netc explain: error: name the layer to explain: netc explain SPEC LAYER "
              "(`netc summary SPEC` lists the layers)", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _update_expect(args) -> int:
    """`netc check --update-expect`: rewrite the `expect:` blocks (netc/tools/expect.py)."""
    from .errors import Diagnostics
    from .tools.expect import update_expect
    from .tools.formats import Report, render

    report, changed, total = Report(), [], 0
    for path in args.paths:
        try:
            found = spec_files([path])
        except NetcError as e:
            report.add(path, e.diagnostics)
            continue
        for file in found:
            total += 1
            warnings = Diagnostics()
            try:
                outcome = update_expect(file, warnings, limits=args.limits)
            except NetcError as e:  # other errors: the file is left as it is
                report.add(file, e.diagnostics)
                continue
            report.add(file, warnings)
            if outcome.changed:
                changed.append(f"updated {file} ({', '.join(outcome.keys_changed)})")
    listing = sys.stdout if args.format == "text" else sys.stderr
    text = render(report, args.format)
    if text:
        print(text, file=sys.stderr if args.format == "text" else sys.stdout)
    for line in changed:
        print(line, file=listing)
    noun = "spec" if total == 1 else "specs"
    print(f"expect: updated {len(changed)} of {total} {noun}", file=listing)
    if report.errors:
        print(report.summary(), file=sys.stderr)
    return EXIT_ERRORS if report.errors else EXIT_OK


def _tool_parsers(sub) -> None:
    sub.add_parser("schema", help="print the JSON Schema of the spec format",
                   description="Print a JSON Schema (draft-07) of the spec format, generated "
                   "from the layer types: editors with the YAML language server complete and "
                   "check specs with it. docs/netc.schema.json holds this output; a spec "
                   "points at it with a first line `# yaml-language-server: "
                   "$schema=<path or URL of netc.schema.json>`.")
    g = sub.add_parser("graph", help="draw a spec as a Mermaid or DOT diagram",
                       description="Print a diagram of SPEC with the shape of each tensor on "
                       "its edge and blocks as nested subgraphs (from the dotted layer names). "
                       "Mermaid renders on GitHub inside a ```mermaid fence; DOT is for graphviz "
                       "(dot -Tsvg). Neither needs a binary to produce.")
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                   help="mermaid (default) or dot")
    g.add_argument("--depth", type=_positive, default=None, metavar="N",
                   help="draw N levels of subgraphs and collapse everything deeper into one "
                   "node per subgraph (1: one node per top-level block)")
    g.add_argument("-o", "--output", metavar="FILE", help="write to a file instead of standard "
                   "output")
    z = sub.add_parser("sizes", help="the input sizes at which a spec checks",
                       description="Check SPEC again with its image input made S×S for each S "
                       "in a range, each layer keeping its declared `round:`. Lists the sizes "
                       "where every layer divides exactly and the joins line up, those where a "
                       "floor/ceil layer rounds, the declared size's verdict, and the smallest "
                       "size that checks. `expect:` is not checked.")
    z.add_argument("spec", metavar="SPEC")
    z.add_argument("--range", type=_size_range, default=None, metavar="LOW:HIGH",
                   help="the sizes to try, both ends included (default: the declared size "
                   "± 32)")
    z.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or JSON, with every size's verdict")


def _size_range(text: str) -> tuple[int, int]:
    low, colon, high = text.partition(":")
    try:
        low_n, high_n = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"write the range as LOW:HIGH, e.g. 200:260, not "
                                         f"{text!r}") from None
    if not colon or not 1 <= low_n <= high_n:
        raise argparse.ArgumentTypeError(f"need 1 <= LOW <= HIGH in LOW:HIGH, not {text!r}")
    if high_n - low_n > 4096 or high_n > 1 << 20:
        raise argparse.ArgumentTypeError("a range spans at most 4096 sizes, up to 1048576")
    return low_n, high_n


def cmd_schema(args) -> int:
    from .tools.schema import render

    sys.stdout.write(render())
    return EXIT_OK


def cmd_graph(args) -> int:
    from .tools import graph

    diagram = graph.build(_checked(args.spec, args), args.depth)
    text = graph.text_of(diagram, args.format)
    note = graph.advice(diagram, args.format, args.depth)
    if note:
        print(note, file=sys.stderr)
    _write_text(text, args.output, ".mmd" if args.format == "mermaid" else ".dot")
    return EXIT_OK


def cmd_sizes(args) -> int:
    import json

    from .tools import sizes

    low, high = args.range or (None, None)
    found = sizes.solve(args.spec, low, high, args.limits)
    print(json.dumps(sizes.to_dict(found), indent=2) if args.format == "json"
          else sizes.render_text(found))
    return EXIT_OK


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "summary": cmd_summary,
            "expand": cmd_expand, "run": cmd_run, "weights": cmd_weights, "bench": cmd_bench,
            "explain": cmd_explain, "schema": cmd_schema, "graph": cmd_graph,
            "sizes": cmd_sizes}
