"""PyTorch interop: a spec as a trainable `torch.nn.Module` with netc's names and semantics.

    import netc.torch
    model = netc.torch.build("specs/resnet18.yaml", seed=0)   # netc's initial weights
    ...train...
    safetensors.torch.save_file(model.state_dict(), "resnet18.safetensors")
    # netc compile specs/resnet18.yaml --weights resnet18.safetensors

The module's submodules follow the dotted layer names (`layer1.0.conv1` is child `layer1`,
then `0`, then `conv1`), so `state_dict()` keys are netc's weight names, plus the
`num_batches_tracked` counter PyTorch keeps in each batchnorm, which netc ignores (a
counter, not a weight: it only matters for `momentum=None`). Its forward pass computes
what the ONNX model netc emits computes, including netc's padding and rounding rules, which
are not always PyTorch's own: a `round: ceil` window, asymmetric or large padding, or an
average that leaves padding out, is computed here from the exact pads netc's layers give.

PyTorch is imported lazily, the first time a module is built: `import netc` and
`import netc.torch` work without it. The module classes are made on first use too; the
module-level `__getattr__` at the end gives them stable names (`netc.torch.Conv2d`), so a
whole model can still be pickled with `torch.save`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from types import SimpleNamespace

from .ir import Graph, Node
from .weights import DEFAULT_SEED, initial_value

# the module classes this file defines (on first use, once torch is imported)
CLASSES = ("Network", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Add", "Concat")


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
    `num_batches_tracked` counter after its running statistics (netc ignores those keys).
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
                tensor = getattr(module, w.spec.param)
                tensor.copy_(torch.from_numpy(initial_value(w, seed)))
            for name, tensor in module.named_buffers(recurse=False):
                if name == "num_batches_tracked":  # the only tensor that is not a weight
                    tensor.zero_()
    return model


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


@lru_cache(maxsize=None)
def _classes():
    """Define the module classes (they subclass torch's, so they wait for torch's import)."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

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
                module = _module(node)
                _check_weights(node, module)
                self._attach(tuple(node.name.split(".")), module)
                free = tuple(sorted({v.name for v in node.inputs if last_use[v.name] == i}))
                self.steps.append((tuple(node.name.split(".")),
                                   tuple(v.name for v in node.inputs), node.output.name, free))

        def _attach(self, path: tuple[str, ...], module) -> None:
            parent = self
            for part in path[:-1]:
                child = parent._modules.get(part)
                if child is None:
                    child = nn.Module()
                    _add_child(parent, part, child)
                parent = child
            # a container made earlier for deeper layers (`a.b` written before `a`) hands its
            # children to the layer's module, which takes its place
            old = parent._modules.get(path[-1])
            if old is not None:
                for name, child in old._modules.items():
                    _add_child(module, name, child)
            _add_child(parent, path[-1], module)

        def layer(self, name: str):
            """The module of the layer called `name` (dotted)."""
            return self._resolve(tuple(name.split(".")))

        def _resolve(self, path):
            # through `_modules`, not getattr: a layer may share a name with a method, and a
            # user may have replaced a layer's module (model.fc = nn.Linear(...)) since
            module = self
            for part in path:
                module = module._modules[part]
            return module

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
                out = self._resolve(path)(*(values[s] for s in srcs))
                for s in free:  # let intermediate activations go as soon as they are used
                    del values[s]
                values[output] = out
            outs = tuple(values[name] for name in self.output_names)
            return outs[0] if len(outs) == 1 else outs

        def extra_repr(self) -> str:
            return f"name={self.graph.name!r}"

    class Conv2d(nn.Conv2d):
        """nn.Conv2d with netc's pads (top, left, bottom, right), the extra end padding of
        `round: ceil` included: symmetric pads go to the convolution, others to F.pad."""

        def __init__(self, channels, filters, kernel, stride, pads, dilation, groups, bias):
            top, left, bottom, right = pads
            symmetric = top == bottom and left == right
            super().__init__(channels, filters, tuple(kernel), tuple(stride),
                             padding=(top, left) if symmetric else 0,
                             dilation=tuple(dilation), groups=groups, bias=bias)
            self.pads = tuple(pads)
            self.pad_first = None if symmetric else (left, right, top, bottom)

        def forward(self, x):
            if self.pad_first is not None:
                x = F.pad(x, self.pad_first)
            return super().forward(x)

        def extra_repr(self) -> str:
            text = super().extra_repr()
            return text if self.pad_first is None else f"{text}, pads={self.pads}"

    class _Pool(nn.Module):
        def __init__(self, kernel, stride, pads, extra):
            super().__init__()
            self.kernel_size, self.stride = tuple(kernel), tuple(stride)
            self.pads = tuple(pads)  # (top, left, bottom, right) as in the ONNX model
            self.extra = tuple(extra)  # (bottom, right) added by ceil_mode

        def _native(self) -> bool:
            """PyTorch's own padding does it: symmetric and at most half the window. Its
            ceil_mode then keeps the same windows as netc's `round: ceil` (a window that would
            start in the end padding is dropped by both), so the exported graph is a plain
            pool, as torchvision's is."""
            top, left, bottom, right = self.pads
            kh, kw = self.kernel_size
            return top == bottom and left == right and top <= kh // 2 and left <= kw // 2

        @property
        def ceil_mode(self) -> bool:
            return self.extra != (0, 0)

        def _all_pads(self):
            """F.pad's (left, right, top, bottom), the ceil padding included."""
            top, left, bottom, right = self.pads
            return (left, right + self.extra[1], top, bottom + self.extra[0])

        def extra_repr(self) -> str:
            return f"kernel_size={self.kernel_size}, stride={self.stride}, pads={self.pads}" + (
                f", ceil_extra={self.extra}" if self.extra != (0, 0) else "")

    class MaxPool2d(_Pool):
        """ONNX MaxPool: padding never wins the max, and a `round: ceil` window hanging over
        the end sees only the pixels it covers. Both are -inf padding, then a plain pool."""

        def forward(self, x):
            if self._native():
                return F.max_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    ceil_mode=self.ceil_mode)
            x = F.pad(x, self._all_pads(), value=float("-inf"))
            return F.max_pool2d(x, self.kernel_size, self.stride)

    class AvgPool2d(_Pool):
        """ONNX AveragePool: the sum of a window over the pixels it counts. Without
        `include_pad` only input pixels count; with it, the declared padding counts too, but
        never the extra end padding of `round: ceil` (ONNX Runtime's, and PyTorch's, rule)."""

        def __init__(self, kernel, stride, pads, extra, include_pad):
            super().__init__(kernel, stride, pads, extra)
            self.include_pad = bool(include_pad)

        def forward(self, x):
            if self._native():
                return F.avg_pool2d(x, self.kernel_size, self.stride, self.pads[:2],
                                    ceil_mode=self.ceil_mode, count_include_pad=self.include_pad)
            sums = F.avg_pool2d(F.pad(x, self._all_pads()), self.kernel_size, self.stride,
                                divisor_override=1)
            top, left, bottom, right = self.pads
            height, width = x.shape[-2:]
            if self.include_pad:
                counted = x.new_ones((1, 1, height + top + bottom, width + left + right))
                counted = F.pad(counted, (0, self.extra[1], 0, self.extra[0]))
            else:
                counted = F.pad(x.new_ones((1, 1, height, width)), self._all_pads())
            counts = F.avg_pool2d(counted, self.kernel_size, self.stride, divisor_override=1)
            return sums / counts

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, include_pad={self.include_pad}"

    class GlobalAvgPool2d(nn.Module):
        """ONNX GlobalAveragePool: N×C×H×W -> N×C×1×1."""

        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 1)  # exported as GlobalAveragePool, as torchvision's

    class Add(nn.Module):
        """Element-wise sum of two or more tensors (ONNX Add, or Sum for more)."""

        def forward(self, *xs):
            out = xs[0] + xs[1]
            for x in xs[2:]:
                out = out + x
            return out

    class Concat(nn.Module):
        """Concatenation along `dim` (ONNX Concat)."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}"

    made = dict(Network=Network, Conv2d=Conv2d, MaxPool2d=MaxPool2d, AvgPool2d=AvgPool2d,
                GlobalAvgPool2d=GlobalAvgPool2d, Add=Add, Concat=Concat)
    assert tuple(made) == CLASSES
    for name, cls in made.items():
        # pickle finds a class by module and qualified name: netc.torch.<name> (see below)
        cls.__module__, cls.__qualname__ = __name__, name
    globals().update(made)
    return SimpleNamespace(**made)


def __getattr__(name: str):
    # `netc.torch.Conv2d` (and unpickling a saved model) defines the classes on first use
    if name in CLASSES:
        _classes()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build"]
