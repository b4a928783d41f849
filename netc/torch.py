"""PyTorch interop: a spec as a trainable `torch.nn.Module` with netc's names and semantics.

    import netc.torch
    model = netc.torch.build("specs/resnet18.yaml", seed=0)   # netc's initial weights
    ...train...
    safetensors.torch.save_file(model.state_dict(), "resnet18.safetensors")
    # netc compile specs/resnet18.yaml --weights resnet18.safetensors

The module's submodules follow the dotted layer names (`layer1.0.conv1` is child `layer1`,
then `0`, then `conv1`), so `state_dict()` keys are netc's weight names, plus the
`num_batches_tracked` counter PyTorch keeps in each batchnorm, which netc ignores (a
counter, not a weight: it only matters for `momentum=None`). A weight named after its layer
(`WeightSpec.own_name`: the `param` layer, ConvNeXt's `features.1.0.layer_scale`) is a
Parameter of the module holding the layer, under the layer's own name, as in torchvision; that
layer has no module of its own, and its output is the Parameter. Its forward pass computes
what the ONNX model netc emits computes, including netc's padding and rounding rules, which
are not always PyTorch's own: a `round: ceil` window, asymmetric or large padding, or an
average that leaves padding out, is computed here from the exact pads netc's layers give.

PyTorch is imported lazily, the first time a module is built: `import netc` and
`import netc.torch` work without it. Each layer type says which module computes it
(`torch_module`), and defines the module classes torch.nn lacks (`torch_classes`, made on first
use); the module-level `__getattr__` at the end gives them stable names (`netc.torch.Conv2d`),
so a whole model can still be pickled with `torch.save`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import SimpleNamespace

from .ir import Graph, Node
from .layers import REGISTRY
from .weights import DEFAULT_SEED, initial_value



def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("netc.torch needs PyTorch: pip install torch") from e
    return torch


def build(spec_or_graph, seed: int = DEFAULT_SEED):
    """A `torch.nn.Module` computing the network of a spec, with netc's initial weights.

    `spec_or_graph` is a spec path (checked with `netc.check_spec`, which raises NetcError
    on a bad spec) or a checked `netc.ir.Graph`. The weights are those `netc compile --seed`
    writes for the same `seed`. The module is in training mode, as PyTorch modules start;
    switch it to evaluation mode (`model.train(False)`) to compare it with the ONNX model (dropout off, batchnorm on its running
    statistics). `forward(*inputs)` takes the spec's inputs in order, each with the spec's
    shape (any batch size), and returns one tensor, or a tuple for several outputs.

    `state_dict()` keys are the names of `graph.weights`, in order, with each batchnorm's
    `num_batches_tracked` counter after its running statistics (netc ignores those keys);
    a Parameter named after its layer (`own_name`) comes before its parent's children, as
    PyTorch orders a module's own parameters.
    """
    torch = _torch()
    if isinstance(spec_or_graph, Graph):
        graph = spec_or_graph
    elif isinstance(spec_or_graph, (str, os.PathLike)):
        from .pipeline import check_file

        graph = check_file(spec_or_graph)
    else:
        raise TypeError(f"build() takes a spec path or a netc.ir.Graph, "
                        f"not {type(spec_or_graph).__name__}")
    # made without storage, then given netc's values: PyTorch's own initialisation would
    # only be overwritten (and takes a while for VGG-16's 138 M parameters)
    with torch.device("meta"):
        model = _classes().Network(graph)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for node in graph.nodes:
            module = model.layer(node.name)
            for w in node.weights:
                tensor = module if w.spec.own_name else getattr(module, w.spec.param)
                tensor.copy_(torch.from_numpy(initial_value(w, seed)))
            if not isinstance(module, torch.nn.Module):
                continue  # a Parameter named after its layer
            for name, tensor in module.named_buffers(recurse=False):
                if name == "num_batches_tracked":  # the only tensor that is not a weight
                    tensor.zero_()
    return model


def _own(node: Node):
    """The weight named after the layer itself (`own_name`), or None: the layer's output is
    then that tensor, a Parameter of the module holding the layer."""
    own = [w for w in node.weights if w.spec.own_name]
    if len(own) > 1 or (own and len(node.weights) > 1):
        raise AssertionError(f"netc.torch: {node.kind} '{node.name}' has a weight named after "
                             "the layer beside other weights")
    return own[0] if own else None


def _module(node: Node):
    """The PyTorch module of one layer (from its class's `torch_module`, so a layer type's
    PyTorch form lives with its shape rule and its ONNX lowering)."""
    return node.layer.torch_module(node.inputs[0].shape, _torch().nn, _classes())


def _check_weights(node: Node, module) -> None:
    """The module's own tensors must be the layer's weights, by name and shape: a layer type
    that gains a weight must gain it here too (a netc bug otherwise, not a user error)."""
    have = {name: tuple(t.shape) for name, t in module.named_parameters(recurse=False)}
    have.update((name, tuple(t.shape)) for name, t in module.named_buffers(recurse=False)
                if name != "num_batches_tracked")
    want = {w.spec.param: tuple(w.shape) for w in node.weights}
    if have != want:
        raise AssertionError(f"netc.torch: the module of {node.kind} '{node.name}' has tensors "
                             f"{have}, but netc names {want}")


def _add_child(parent, name: str, child) -> None:
    """Register `child` as `parent.<name>`, even where `name` is also an attribute of
    nn.Module (a layer called `eval` or `train`): state_dict and load_state_dict only read
    `_modules`, so the keys stay netc's names; attribute access finds the method first."""
    try:
        parent.add_module(name, child)
    except KeyError:
        parent._modules[name] = child


# --- the module classes ---------------------------------------------------------------------


def _classes():
    """The module classes: Network, and those the layer types define (`torch_classes`: they
    subclass torch's, so they wait for torch's import). Collected at each call, so that a layer
    type registered later is found; each class is made once."""
    torch = _torch()
    made = {"Network": _network(torch)}
    for kind in sorted(REGISTRY):
        for name, cls in REGISTRY[kind].torch_classes(torch).items():
            if made.setdefault(name, cls) is not cls:
                raise AssertionError(f"netc.torch: two layer types define a module {name!r}")
    for name, cls in made.items():
        # pickle finds a class by module and qualified name: netc.torch.<name> (see below)
        cls.__module__, cls.__qualname__ = __name__, name
    return SimpleNamespace(**made)


@lru_cache(maxsize=None)
def _network(torch):
    nn = torch.nn

    class Network(nn.Module):
        """A netc graph as a module: children follow the dotted layer names; forward runs
        the layers in the spec's order. `graph` is the checked netc graph it was built from."""

        def __init__(self, graph: Graph) -> None:
            super().__init__()
            # plain attributes first: a layer of the same name then goes to `_modules` only
            self.graph = graph
            self.input_shapes = [(v.name, tuple(v.shape)) for v in graph.inputs]
            self.output_names = [v.name for v in graph.outputs]
            self.steps = []  # (module path, input names, output name, names freed after it)
            last_use = {}
            for i, node in enumerate(graph.nodes):
                for v in node.inputs:
                    last_use[v.name] = i
            for name in self.output_names:
                last_use[name] = len(graph.nodes)
            for i, node in enumerate(graph.nodes):
                own = _own(node)
                if own is not None:
                    self._attach_parameter(tuple(node.name.split(".")), own.shape)
                else:
                    module = _module(node)
                    _check_weights(node, module)
                    self._attach(tuple(node.name.split(".")), module)
                free = tuple(sorted({v.name for v in node.inputs if last_use[v.name] == i}))
                self.steps.append((tuple(node.name.split(".")),
                                   tuple(v.name for v in node.inputs), node.output.name, free))

        def _parent(self, path: tuple[str, ...]):
            parent = self
            for part in path[:-1]:
                child = parent._modules.get(part)
                if child is None:
                    child = nn.Module()
                    _add_child(parent, part, child)
                parent = child
            return parent

        def _attach(self, path: tuple[str, ...], module) -> None:
            parent = self._parent(path)
            # a container made earlier for deeper layers (`a.b` written before `a`) hands its
            # children, and the Parameters named after layers in it, to the layer's module,
            # which takes its place
            old = parent._modules.get(path[-1])
            if old is not None:
                for name, child in old._modules.items():
                    _add_child(module, name, child)
                for name, tensor in old._parameters.items():
                    module._parameters[name] = tensor
            _add_child(parent, path[-1], module)

        def _attach_parameter(self, path: tuple[str, ...], shape) -> None:
            # a weight named after its layer: a Parameter of the parent, under the layer's name
            # (through `_parameters`, like _add_child, where the name is also an attribute)
            parent = self._parent(path)
            tensor = nn.Parameter(torch.empty(shape))
            try:
                parent.register_parameter(path[-1], tensor)
            except KeyError:
                parent._parameters[path[-1]] = tensor

        def layer(self, name: str):
            """The module of the layer called `name` (dotted); for a layer whose weight is
            named after it (`param`), that Parameter."""
            return self._resolve(tuple(name.split(".")))

        def _resolve(self, path):
            # through `_modules`, not getattr: a layer may share a name with a method, and a
            # user may have replaced a layer's module (model.fc = nn.Linear(...)) since
            module = self
            for part in path[:-1]:
                module = module._modules[part]
            found = module._modules.get(path[-1])
            return module._parameters[path[-1]] if found is None else found

        def forward(self, *inputs):
            if len(inputs) != len(self.input_shapes):
                names = ", ".join(name for name, _ in self.input_shapes)
                raise TypeError(f"{self.graph.name} takes {len(self.input_shapes)} input(s) "
                                f"({names}), got {len(inputs)}")
            values = {}
            for (name, shape), x in zip(self.input_shapes, inputs):
                fixed = shape[1:]
                if x.dim() != len(shape) or tuple(x.shape[1:]) != fixed:
                    raise ValueError(f"input '{name}' of {self.graph.name} must have shape "
                                     f"(N, {', '.join(map(str, fixed))}), got {tuple(x.shape)}")
                values[name] = x
            for path, srcs, output, free in self.steps:
                found = self._resolve(path)
                # a Parameter named after its layer is that layer's output
                out = found if isinstance(found, nn.Parameter) else found(
                    *(values[s] for s in srcs))
                for s in free:  # let intermediate activations go as soon as they are used
                    del values[s]
                values[output] = out
            outs = tuple(values[name] for name in self.output_names)
            return outs[0] if len(outs) == 1 else outs

        def extra_repr(self) -> str:
            return f"name={self.graph.name!r}"

    return Network


def __getattr__(name: str):
    # `netc.torch.Conv2d` (and unpickling a saved model) defines the classes on first use
    if not name.startswith("__"):
        found = vars(_classes()).get(name)
        if found is not None:
            return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build"]
