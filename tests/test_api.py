"""The Python API (`import netc`): what `netc check` reports, from a path or from text."""

from pathlib import Path

import pytest

import netc
from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "bad"
LENET = ROOT / "specs" / "lenet5.yaml"
WARNED = [BAD / "w201_unused_layer.yaml", BAD / "w202_bias_before_batchnorm.yaml",
          BAD / "w204_floor_drops_rows.yaml"]


def _shapes(graph):
    return [(n.name, n.output.shape) for n in graph.nodes]


@pytest.mark.parametrize("spec", WARNED, ids=lambda p: p.stem)
def test_check_spec_returns_the_warnings_the_cli_prints(spec, capsys):
    """The oracle is the CLI: `netc check` prints exactly the warnings the API hands back."""
    assert main(["check", str(spec)]) == 0
    printed = capsys.readouterr().err
    found = []
    graph = netc.check_spec(spec, warnings=found)
    assert found and all(isinstance(d, netc.Diagnostic) for d in found)
    assert {d.severity for d in found} == {"warning"}
    rendered = netc.Diagnostics()
    for d in found:
        rendered.add(d)
    assert rendered.render() in printed
    for d in found:
        assert d.render().splitlines()[0] in printed
    # a Diagnostics collects them the same way, and the graph is the one without warnings=
    into = netc.Diagnostics()
    assert _shapes(netc.check_spec(str(spec), warnings=into)) == _shapes(graph)
    assert [d.render() for d in into] == [d.render() for d in found]


def test_a_clean_spec_adds_no_warnings_and_existing_calls_still_work():
    found = []
    graph = netc.check_spec(LENET, warnings=found)
    assert found == []
    assert _shapes(netc.check_spec(LENET)) == _shapes(graph)  # the old one-argument call
    assert _shapes(netc.check_spec(str(LENET))) == _shapes(graph)


@pytest.mark.parametrize("spec", [LENET, *WARNED], ids=lambda p: p.stem)
def test_text_checks_like_the_file(spec):
    """`text=` (str or bytes) gives the graph and warnings of the same spec read from a file."""
    from_file, from_text, from_bytes = [], [], []
    graph = netc.check_spec(spec, warnings=from_file)
    text = spec.read_text(encoding="utf-8")
    assert _shapes(netc.check_spec(text=text, warnings=from_text)) == _shapes(graph)
    assert _shapes(netc.check_spec(text=text.encode(), warnings=from_bytes)) == _shapes(graph)
    where = [(d.code, d.message, d.span.line, d.span.col) for d in from_file]
    assert [(d.code, d.message, d.span.line, d.span.col) for d in from_text] == where
    assert [(d.code, d.message, d.span.line, d.span.col) for d in from_bytes] == where


def test_errors_in_text_are_positioned_and_named_like_compile():
    """Errors in text carry the same line:col as from a file; `path` (optional) names the text
    in messages, like Python's compile(source, filename): "<text>" by default."""
    spec = BAD / "e301_lecture_stride3.yaml"
    text = spec.read_text(encoding="utf-8")
    with pytest.raises(netc.NetcError) as from_file:
        netc.check_spec(spec)
    with pytest.raises(netc.NetcError) as from_text:
        netc.check_spec(text=text)
    with pytest.raises(netc.NetcError) as named:
        netc.check_spec("mine.yaml", text=text)
    want = str(from_file.value).replace(str(spec), "{}")
    assert str(from_text.value).replace("<text>", "{}") == want
    assert str(named.value).replace("mine.yaml", "{}") == want
    assert str(from_text.value).startswith("<text>:")
    assert "error[E3" in str(from_text.value)


def test_text_is_never_guessed_from_a_path_argument():
    """A YAML document passed as the path is a missing file, not a spec: text needs text=."""
    with pytest.raises(netc.NetcError) as e:
        netc.check_spec(LENET.read_text(encoding="utf-8"))
    assert "error[E0" in str(e.value)


def test_bad_api_calls_are_type_errors():
    with pytest.raises(TypeError, match="a path, or text="):
        netc.check_spec()
    with pytest.raises(TypeError, match="str or bytes, not int"):
        netc.check_spec(text=3)
    with pytest.raises(TypeError, match="list or netc.Diagnostics, not set"):
        netc.check_spec(LENET, warnings=set())


def test_compile_spec_takes_text_and_warnings():
    pytest.importorskip("onnx", reason="compile_spec builds an onnx.ModelProto")
    spec = BAD / "w201_unused_layer.yaml"
    found = []
    model = netc.compile_spec(text=spec.read_text(encoding="utf-8"), seed=3, warnings=found)
    assert [d.code for d in found] == ["W201", "W201"]
    assert model.SerializeToString() == netc.compile_spec(spec, 3).SerializeToString()


def test_top_level_help_lists_each_command_once(capsys):
    """`netc --help` lists the commands in one place (argparse's, from each command's help)."""
    from netc.cli import _parser

    help_text = _parser().format_help()
    for command in ("compile", "check", "summary", "run", "sizes"):
        assert len([ln for ln in help_text.splitlines()
                    if ln.strip().startswith(command + " ")]) == 1, command


def test_articles_and_plurals_in_messages():
    """"an add layer", "1 input channel": the words are built by errors.a / errors.counted."""
    from netc.errors import a, counted

    assert [a(w) for w in ("add", "avgpool", "upsample", "8x8 filter", "11x11 filter",
                           "18-D input", "uint8 tensor", "conv", "3x3 filter", "100x100")] == [
        "an add", "an avgpool", "an upsample", "an 8x8 filter", "an 11x11 filter",
        "an 18-D input", "a uint8 tensor", "a conv", "a 3x3 filter", "a 100x100"]
    assert (counted(1, "input channel"), counted(3, "input channel")) == (
        "1 input channel", "3 input channels")


def test_the_public_names_are_all_and_only_all():
    """`dir(netc)` shows the API (no `annotations` from a __future__ import) and
    `from netc import *` brings exactly `__all__`."""
    import types

    public = {n for n in dir(netc) if not n.startswith("_")
              and not isinstance(getattr(netc, n), types.ModuleType)}  # (submodules: loaded)
    assert "annotations" not in dir(netc)
    assert public == set(netc.__all__) - {"__version__"}
    space = {}
    exec("from netc import *", space)
    assert set(space) - {"__builtins__"} == set(netc.__all__)
    for name in ("check_spec", "compile_spec"):
        assert getattr(netc, name).__doc__
