"""The layout of the package, checked from its source with `ast` (docs/architecture.md):

- netc's import graph (imports inside functions included) has no cycle;
- no pipeline stage imports the tools (`netc/tools/`), and nothing at run time imports the
  docs-generation tooling;
- load -> expand -> check -> emit is wired in one place: only pipeline.py calls the stages'
  entry points;
- no module outside `netc/layers/` tests layer kinds (`.kind == "conv"`) or their classes: what
  a command says about a layer comes from the layer's class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "netc"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from ... import` names (relative ones resolved)."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> set[str]:
    """The netc modules that `module` imports, anywhere in its body (functions included). A
    `from X import name` imports X.name when that is a module, else X."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                     for a in node.names]
        else:
            continue
        for name in names:
            # `import netc.torch` names the module; `import netc.x.y` imports netc.x too, but
            # that package's own imports are its edges, not this module's
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("netc") and name != module:
                found.add(name)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as a list."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def path_between(graph, start: str, goal: str) -> list[str]:
    """A shortest import chain from start to goal (for the failure message)."""
    previous, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        if v == goal:
            chain = []
            while v is not None:
                chain.append(v)
                v = previous[v]
            return chain[::-1]
        for w in sorted(graph.get(v, ())):
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return []


def test_the_graph_is_read_from_every_module():
    assert {"netc", "netc.cli", "netc.pipeline", "netc.layers", "netc.layers.conv",
            "netc.tools", "netc.tools.explain"} <= set(MODULES)
    # a lazy import (inside a function) is an edge too
    assert "netc.tools.explain" in GRAPH["netc.cli"]
    assert "netc.pipeline" in GRAPH["netc"]


def test_the_detector_finds_a_cycle():
    """The cycle finder itself, on a graph with a known circle (and a harmless branch)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(GRAPH)
    chains = [" -> ".join(path_between(GRAPH, c[0], c[1]) + path_between(GRAPH, c[1], c[0])[1:])
              for c in found]
    assert not found, "import cycles:\n" + "\n".join(chains)


STAGES = ["netc.source", "netc.errors", "netc.limits", "netc.load", "netc.expr", "netc.expand",
          "netc.check", "netc.ir", "netc.fold", "netc.emit", "netc.proto", "netc.weights",
          "netc.files", "netc.run", "netc.pipeline"]


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_the_tools(stage):
    """The commands over a checked graph live in netc/tools/; the stages never need them."""
    reached, todo = set(), [stage]
    while todo:
        for w in GRAPH[todo.pop()]:
            if w not in reached:
                reached.add(w)
                todo.append(w)
    tools = sorted(m for m in reached if m.startswith("netc.tools"))
    assert not tools, f"{stage} reaches {tools}"


def test_nothing_imports_the_docs_tooling():
    """netc.tools.docs runs the CLI to regenerate the docs; netc itself never imports it."""
    importers = sorted(m for m, deps in GRAPH.items() if "netc.tools.docs" in deps)
    assert importers == []


# The stages' entry points, by the module that defines each. Only pipeline.py uses them (and
# the module itself; emit.py runs the batchnorm fold, an option of emission).
DEFINED_IN = {"load_file": "netc.load", "load_bytes": "netc.load", "flatten": "netc.expand",
              "Checker": "netc.check", "lower": "netc.emit", "model_bytes": "netc.emit",
              "write_model": "netc.emit", "emit": "netc.emit", "fold_batchnorm": "netc.fold"}
ALLOWED = {"fold_batchnorm": {"netc.emit"}}


def entry_points_used(module: str) -> set[str]:
    """The stage entry points `module` imports (`from netc.load import load_file`) or reaches
    through an imported stage module (`load.load_file`)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    used, aliases = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            for alias in node.names:
                if DEFINED_IN.get(alias.name) == target:
                    used.add(alias.name)
                elif f"{target}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DEFINED_IN:
            owner = dotted(node.value)  # `load.load_file`, `netc.load.load_file`
            if DEFINED_IN[node.attr] in (aliases.get(owner), owner):
                used.add(node.attr)
    return used


def dotted(node) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def test_the_entry_point_finder_sees_every_form(tmp_path):
    assert entry_points_used("netc.pipeline") >= {"load_file", "load_bytes", "flatten",
                                                  "Checker", "write_model", "model_bytes",
                                                  "emit"}
    probe = tmp_path / "probe.py"
    MODULES["netc.tools._probe"] = probe
    try:
        for source in ("from ..load import load_file\n", "from .. import load\nload.load_file(p)\n",
                       "import netc.load\nnetc.load.load_file(p)\n",
                       "import netc.check as c\nc.Checker(s, d)\n"):
            probe.write_text(source, encoding="utf-8")
            assert entry_points_used("netc.tools._probe"), source
        probe.write_text("def lower(x): return x.lower()\n", encoding="utf-8")
        assert entry_points_used("netc.tools._probe") == set()
    finally:
        del MODULES["netc.tools._probe"]


def test_the_pipeline_is_wired_in_one_place():
    """load -> expand -> check -> emit: every command goes through pipeline.py."""
    wired = {}
    for module in MODULES:
        for name in entry_points_used(module):
            if module not in {"netc.pipeline", DEFINED_IN[name]} | ALLOWED.get(name, set()):
                wired.setdefault(module, set()).add(name)
    assert not wired, f"stages called outside pipeline.py: {wired}"


def layer_names() -> tuple[set[str], set[str]]:
    """The registered layer kinds, and the names of every layer class in netc/layers/ (its
    modules found on disk, so a new one counts at once)."""
    import importlib
    import inspect

    from netc.layers import REGISTRY
    from netc.layers.base import Layer

    classes = {cls.__name__ for cls in REGISTRY.values()}
    for module in MODULES:
        if module.startswith("netc.layers"):
            classes |= {n for n, obj in vars(importlib.import_module(module)).items()
                        if inspect.isclass(obj) and issubclass(obj, Layer)}
    return set(REGISTRY), classes


# Layer kinds that a module outside netc/layers/ may name: the concat that `branches:` makes.
# ("netc.tools.maps", "Conv"): the ONNX op type of a node in a model netc did not write, whose
# outputs `--maps` draws by default (netc's own layers say it: Layer.drawn_by_default)
ALLOWED_KINDS = {("netc.expand", "concat"), ("netc.tools.maps", "Conv"),
                 # `preprocess:`'s resize and crop steps (torchvision's Resize and CenterCrop),
                 # which share their names with the resize and crop layer types
                 ("netc.images", "resize"), ("netc.images", "crop"),
                 ("netc.tools.schema", "resize"), ("netc.tools.schema", "crop"),
                 ("netc.tools.unparse", "resize")}


def kind_tests(source: str, module: str = "") -> list[str]:
    """Layer knowledge outside the layer classes: a layer kind's name as a string (a test of
    `.kind`, a table keyed by kinds, a `match`), a layer class's name (in isinstance, or as a
    string: `type(x).__name__ == "Conv"`), or a duck-typed probe of a layer's attributes
    (`hasattr(node.layer, "filters")`)."""
    kinds, classes = layer_names()
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and (module, node.value) not in ALLOWED_KINDS:
            if node.value in kinds:
                found.append(f"line {node.lineno}: the layer kind {node.value!r}")
            elif node.value in classes:
                found.append(f"line {node.lineno}: the layer class name {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if names & classes:
                found.append(f"line {node.lineno}: isinstance with {sorted(names & classes)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) \
                and "layer" in ast.unparse(node.args[0]).lower():
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_kind_detector_finds_kind_tests():
    probes = [
        'if node.kind == "conv" or isinstance(layer, Conv): pass\n',
        'x = n.kind in ("maxpool", "avgpool")\n',
        'kind = node.layer.kind\nif kind == "conv": pass\n',
        'label = {"dense": "fc"}.get(node.layer.kind)\n',
        'match node.layer.kind:\n    case "dense":\n        pass\n',
        'ok = type(node.layer).__name__ == "Conv"\n',
        'ok = hasattr(node.layer, "filters")\n',
        'ok = isinstance(x, layers.pool.MaxPool)\n',
    ]
    for source in probes:
        assert kind_tests(source), source
    assert kind_tests('if spec.kind == "int": pass\n') == []  # an attribute kind, not a layer
    assert kind_tests('"""Every conv is checked."""\n') == []  # prose in a docstring
    assert kind_tests('value = getattr(node.layer, spec.name)\n') == []  # attributes by schema


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("netc.layers")))
def test_no_layer_kind_tests_outside_the_layers(module):
    assert kind_tests(MODULES[module].read_text(encoding="utf-8"), module) == []


def test_every_layer_type_defines_what_the_commands_need():
    """A layer type that leaves out its shape rule, lowering, torch module or equation would
    fail in the middle of a command: every registered class defines them."""
    from netc.layers import REGISTRY, Layer

    for kind, cls in REGISTRY.items():
        for method in ("infer", "lower", "torch_module", "equation"):
            assert getattr(cls, method) is not getattr(Layer, method), f"{kind}.{method}"
        assert cls.__doc__ and "`- " in cls.__doc__, f"{kind}: a docstring with a YAML example"


def test_limits_travel_as_a_value(tmp_path, capsys):
    """A --limit reaches every stage through the Limits value the command passes, never by
    rewriting a module's constant: after the run, every module is as it was, and the Python
    API takes its own Limits."""
    import importlib

    from netc.cli import main
    from netc.errors import NetcError
    from netc.limits import DEFAULT, Limits
    from netc.pipeline import check_file

    def constants():
        found = {}
        for module in MODULES:
            if module.startswith("netc.") and module != "netc.__main__":
                mod = importlib.import_module(module)
                found.update({(module, k): v for k, v in vars(mod).items()
                              if k.startswith("MAX_") and isinstance(v, int)})
        return found

    spec = tmp_path / "deep.yaml"
    spec.write_text("netc: 1\nname: deep\ninputs: {x: [N, 3, 8, 8]}\nlayers:\n"
                    + "  - relu\n" * 12, encoding="utf-8")
    before = constants()
    for limit, code in (("bytes=100", "E002"), ("nodes=20", "E010"), ("depth=2", "E005"),
                        ("layers=5", "E112"), ("tensor=100", "E308"), ("params=1", None)):
        assert main(["check", str(spec), "--limit", limit]) == (1 if code else 0), limit
        if code:
            assert f"error[{code}]" in capsys.readouterr().err
        assert constants() == before
    with pytest.raises(NetcError, match="E112"):
        check_file(spec, limits=Limits(layers=5))
    assert check_file(spec).nodes[-1].name == "relu12"
    assert DEFAULT == Limits()


def _hand_written_inits():
    """Every dataclass in netc whose __init__ is written out (init=False, for speed)."""
    import dataclasses
    import importlib
    import inspect

    found = []
    for name in MODULES:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and obj.__module__ == module.__name__
                    and dataclasses.is_dataclass(obj) and not obj.__dataclass_params__.init):
                found.append(obj)
    return found


def test_hand_written_inits_take_the_fields():
    """A dataclass whose __init__ is written out (Span, LayerUse, ir's records) takes exactly
    its fields, in order, with their defaults, and sets each: a field added later can't be
    forgotten there."""
    import dataclasses
    import inspect

    classes = _hand_written_inits()
    assert {c.__name__ for c in classes} >= {"Span", "LayerUse", "Value", "Weight", "Node"}
    for cls in classes:
        fields = dataclasses.fields(cls)
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        assert [p.name for p in params] == [f.name for f in fields], cls
        for p, f in zip(params, fields):
            want = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            assert p.default == want, (cls, f.name)
        args = [object() for p in params]
        made = cls(*args)
        assert [getattr(made, f.name) for f in fields] == args, cls
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, fields[0].name, None)


def test_layers_are_values():
    """Layer types share Layer's equality, hash and repr (by field values, as a dataclass's
    own would be): two checks of a spec give equal layers, and layers that differ in one
    attribute are not equal."""
    import dataclasses

    from netc.layers import REGISTRY, Layer
    from netc.pipeline import check_file

    root = PACKAGE.parent / "specs"
    for spec in ("resnet18.yaml", "convnext_tiny.yaml", "mobilenet_v3_small.yaml"):
        first, second = check_file(root / spec), check_file(root / spec)
        for a, b in zip(first.nodes, second.nodes):
            assert a.layer == b.layer and hash(a.layer) == hash(b.layer), a.name
            assert a.layer is not b.layer
            fields = dataclasses.fields(a.layer)
            assert repr(a.layer) == (f"{type(a.layer).__qualname__}("
                                     + ", ".join(f"{f.name}={getattr(a.layer, f.name)!r}"
                                                 for f in fields) + ")")
            for f in fields:
                value = getattr(a.layer, f.name)
                if isinstance(value, bool):
                    changed = dataclasses.replace(a.layer, **{f.name: not value})
                    assert changed != a.layer and a.layer != changed, (a.name, f.name)
    for cls in REGISTRY.values():
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
        assert cls.__eq__ is Layer.__eq__ and cls.__hash__ is Layer.__hash__, cls
