"""`netc schema`: a JSON Schema of the spec format, generated from the layer registry.

Editors with the YAML language server (VS Code's YAML extension, Neovim, Helix, JetBrains)
read it to complete layer types and attributes, show their docs on hover and flag mistakes as
you type. Like the layer reference in docs/spec.md, it is derived from the layer classes:
their fields (`attributes(cls)`: types, defaults, bounds, choices, docs) and docstrings, so a
new layer type appears here without a second table.

The schema is draft-07, the draft the YAML language server supports best. It is deliberately
a little more permissive than `netc check`, which stays the authority: a block's name can't be
known in advance, so any identifier is accepted as a block use; `$` expressions are accepted
wherever a number or a boolean is; defaults may supply required attributes, so no attribute is
required in a layer entry. What it rejects, netc rejects too.
"""

from __future__ import annotations

import inspect
import json

from ..expand import ALLOWABLE, ARG_TYPES, BLOCK_KEYS, BRANCH_KEYS, COMMON_KEYS, FORMAT_VERSION, \
    MAX_NAME, MAX_RANK_DIM, REPEAT_KEYS, TOP_KEYS
from ..images import COLORS, INTERPOLATIONS, MAX_SIDE, SHIPPED_LABELS
from ..layers import REGISTRY, AttrSpec, attributes, counting_macs
from ..layers.base import INITIALISERS, INITIALISERS_WITH_VALUE, MAX_ITEMS

DRAFT = "http://json-schema.org/draft-07/schema#"
NAME = r"^[A-Za-z_][A-Za-z0-9_]*([.\-][A-Za-z0-9_]+)*$"  # expand.NAME_RE, in JSON's dialect
# expand.LOCAL_NAME_RE: a layer name, which below a block instance or `branches:` may start
# with a digit (the schema can't tell where it is, so it takes this one for every layer name)
LOCAL_NAME = r"^[A-Za-z0-9_]+([.\-][A-Za-z0-9_]+)*$"
IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"  # expand.IDENT_RE: block and argument names
EXPRESSION = {"type": "string", "pattern": r"\$",
              "description": "an expression over the block's arguments, e.g. `$filters * 4`"}
REF = "#/definitions/"


def spec_schema() -> dict:
    """The JSON Schema (draft-07) of a netc spec, as a dict."""
    kinds = sorted(REGISTRY)
    definitions = {
        "name": {"type": "string", "pattern": NAME, "maxLength": MAX_NAME,
                 "description": "letters, digits and `_`, with `.` or `-` between parts "
                 "(`conv1`, `layer1.0.conv1`)"},
        "names": {"oneOf": [{"$ref": REF + "name"},
                            {"type": "array", "items": {"$ref": REF + "name"}, "minItems": 1}]},
        "layer_name": {"type": "string", "pattern": LOCAL_NAME, "maxLength": MAX_NAME,
                       "description": "letters, digits and `_`, with `.` or `-` between parts "
                       "(`conv1`, `layer1.0.conv1`); only inside a block or `branches:` may it "
                       "start with a digit (`\"0\"` gives `<instance>.0`)"},
        "layer_names": {"oneOf": [{"$ref": REF + "layer_name"},
                                  {"type": "array", "items": {"$ref": REF + "layer_name"},
                                   "minItems": 1}]},
        "allow": {"oneOf": [{"enum": list(ALLOWABLE)},
                            {"type": "array", "items": {"enum": list(ALLOWABLE)}}],
                  "description": "warning codes to silence (docs/errors.md): "
                  f"{', '.join(ALLOWABLE)}"},
        "shape": _shape(),
        "layers": {"type": "array", "minItems": 1, "items": {"$ref": REF + "entry"},
                   "description": "the layers, in order; each takes the previous one's output "
                   "unless `from:` says otherwise"},
        "branches": {"type": "array", "minItems": 2,
                     "items": {"oneOf": [{"$ref": REF + "entry"},
                                         {"type": "array", "minItems": 1,
                                          "items": {"$ref": REF + "entry"}},
                                         _named_branch()]},
                     "description": "parallel chains reading the same input, concatenated "
                     "along the channels: each branch is one layer entry, a list of them, or "
                     "`{name: ..., layers: [...]}`"},
        "entry": _entry(kinds),
        "block": _block(),
        "expect": _expect(),
    }
    for kind in kinds:
        definitions[f"attributes.{kind}"] = _attributes(kind, expressions=True)
        definitions[f"defaults.{kind}"] = _attributes(kind, expressions=False)
    properties = {
        "netc": {"const": FORMAT_VERSION, "description": "the format version (required)"},
        "name": {"$ref": REF + "name"},
        "description": {"type": "string",
                        "description": "free text, stored as the ONNX model's doc string"},
        "inputs": {"type": "object", "minProperties": 1,
                   "propertyNames": {"$ref": REF + "name"},
                   "additionalProperties": {"$ref": REF + "shape"},
                   "description": "input names and their shapes: [N, C, H, W] or "
                   "[N, features]; the first dimension may be a name (a symbolic batch)"},
        "preprocess": _preprocess(),
        "labels": {"anyOf": [
            *({"const": name, "description": what}
              for name, (_, what) in SHIPPED_LABELS.items()),
            {"type": "string", "minLength": 1,
             "description": "a file beside the spec, one class name a line"},
            {"type": "array", "minItems": 1, "items": {"type": ["string", "integer"]},
             "description": "the class names, in output order"}],
            "description": "the names of the output's classes (netc run --image prints them)"},
        "defaults": {"type": "object",
                     "properties": {k: {"$ref": REF + f"defaults.{k}"} for k in kinds},
                     "additionalProperties": False,
                     "description": "attribute defaults per layer type, applied wherever an "
                     "attribute is not given (inside blocks too)"},
        "blocks": {"type": "object",
                   "propertyNames": {"pattern": IDENT, "not": {"enum": kinds + ["branches"]}},
                   "additionalProperties": {"$ref": REF + "block"},
                   "description": "parametric sub-graphs, used like layer types"},
        "layers": {"$ref": REF + "layers"},
        "outputs": {"$ref": REF + "names",
                    "description": "the model's outputs (default: the last layer)"},
        "expect": {"$ref": REF + "expect"},
        "allow": {"$ref": REF + "allow",
                  "description": "warning codes silenced in the whole spec, e.g. [W202]"},
    }
    assert list(properties) == list(TOP_KEYS), "every top-level key is described"
    return {
        "$schema": DRAFT,
        "title": "netc spec",
        "description": "A convolutional network for netc, the YAML-to-ONNX network compiler "
                       "(docs/spec.md). Generated by `netc schema`.",
        "type": "object",
        "required": ["netc", "name", "inputs", "layers"],
        "properties": properties,
        "additionalProperties": False,
        "definitions": definitions,
    }


def render() -> str:
    """The schema as the JSON text `netc schema` prints (and docs/netc.schema.json holds)."""
    return json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n"


# --- parts ----------------------------------------------------------------------------------


def _shape() -> dict:
    size = {"type": "integer", "minimum": 1, "maximum": MAX_RANK_DIM}
    batch = {"oneOf": [size, {"type": "string", "pattern": NAME}]}
    return {"type": "array", "items": [batch], "additionalItems": size,
            "anyOf": [{"minItems": 2, "maxItems": 2}, {"minItems": 4, "maxItems": 4}],
            "description": "[N, C, H, W] or [N, features]"}


def _entry(kinds: list[str]) -> dict:
    """A layer entry: a bare type name, or a mapping with one type key and the common keys."""
    count = _number("integer", 1, None, True, None)
    common = {
        "name": {"$ref": REF + "layer_name",
                 "description": "the layer's name (default: its type and a number, `conv1`)"},
        "from": {"$ref": REF + "layer_names",
                 "description": "the layer or input (or list of them) this layer reads "
                 "(default: the previous layer)"},
        "repeat": {"oneOf": [*count["oneOf"], _repeat(count)],
                   "description": "chain this many instances, named `<name>.0`, `<name>.1`, "
                   "...; or `{count: 6, name: \"denselayer{i}\", start: 1}`"},
        "first": {"type": "object", "description": "attributes or arguments that the first "
                  "instance of a repeat overrides"},
        "when": _typed({"type": "boolean"}, True, "keep the layer only when this holds "
                       "(left out, its name stands for its input)"),
        "allow": {"$ref": REF + "allow", "description": "warning codes silenced for this "
                  "layer (for a block use or `branches:`, for all it expands to)"},
    }
    assert list(common) == list(COMMON_KEYS)
    options = [{"type": "string", "description": "a layer type (or block) without attributes",
                "anyOf": [{"enum": kinds}, {"pattern": IDENT}]}]
    for kind in kinds:
        cls = REGISTRY[kind]
        value = {"$ref": REF + f"attributes.{kind}"}
        options.append({"type": "object", "required": [kind],
                        "properties": {kind: {**value, "description": _doc(cls)}, **common},
                        "additionalProperties": False})
    options.append({"type": "object", "required": ["branches"],
                    "properties": {"branches": {"$ref": REF + "branches"}, **common},
                    "additionalProperties": False})
    # a key that is not a common one (a property matching both would have to satisfy both)
    block_key = rf"^(?!({'|'.join(COMMON_KEYS)})$)[A-Za-z_][A-Za-z0-9_]*$"
    block_use = {"oneOf": [{"type": "null"},
                           {"type": "object", "propertyNames": {"pattern": IDENT},
                            "additionalProperties": _scalar_value()}],
                 "description": "a block's arguments"}
    options.append({"type": "object", "description": "the use of a block (one key: the block's "
                    "name, with its arguments)",
                    "properties": common, "patternProperties": {block_key: block_use},
                    "additionalProperties": False, "minProperties": 1,
                    "not": {"anyOf": [{"required": [k]} for k in kinds + ["branches"]]
                            + [{"propertyNames": {"enum": list(COMMON_KEYS)}}]}})
    return {"oneOf": options}


def _repeat(count: dict) -> dict:
    properties = {
        "count": {**count, "description": "the number of instances"},
        "name": {"type": "string", "pattern": r"\{i\}",
                 "description": "the instances' names: `{i}` is the instance's number, "
                 "`{$arg}` a block argument (`denselayer{i}`, `block{$stage}-{i}`)"},
        "start": {**_number("integer", 0, MAX_RANK_DIM, True, None),
                  "description": "the first instance's number (default 0)"},
    }
    assert list(properties) == list(REPEAT_KEYS)
    return {"type": "object", "required": ["count"], "properties": properties,
            "additionalProperties": False}


def _named_branch() -> dict:
    properties = {
        "name": {"$ref": REF + "layer_name",
                 "description": "the branch's name: its layers are `<name>` (one) or "
                 "`<name>.0`, `<name>.1`, ... unless named"},
        "layers": {"$ref": REF + "layers"},
    }
    assert list(properties) == list(BRANCH_KEYS)
    return {"type": "object", "required": list(BRANCH_KEYS), "properties": properties,
            "additionalProperties": False, "description": "a named branch"}


def _block() -> dict:
    arg = {"oneOf": [{"enum": list(ARG_TYPES), "description": "a required argument of this "
                      "type"},
                     {"type": ["integer", "number", "boolean"],
                      "description": "an optional argument with this default"}]}
    properties = {
        "description": {"type": "string"},
        "args": {"type": "object", "propertyNames": {"pattern": IDENT},
                 "additionalProperties": arg,
                 "description": "the block's arguments: a type (int, bool, float) makes a "
                 "required one, a value an optional one with that default"},
        "layers": {"$ref": REF + "layers"},
        "branches": {"$ref": REF + "branches"},
        "output": {"$ref": REF + "name", "description": "the layer whose output is the "
                   "block's (default: the last)"},
    }
    assert list(properties) == list(BLOCK_KEYS)
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "oneOf": [{"required": ["layers"]}, {"required": ["branches"]}],
            "description": "a parametric sub-graph; inside it, `input` names its input and "
            "`$arg` its arguments"}


def _expect() -> dict:
    count = {"type": "integer", "minimum": 0}
    dim = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": NAME}]}
    return {"type": "object", "additionalProperties": False,
            "properties": {
                "params": {**count, "description": "learned parameters (batchnorm's running "
                           "statistics are buffers, not counted)"},
                "macs": {**count, "description": "multiply-accumulates of "
                         f"{counting_macs()} layers per image"},
                "outputs": {"type": "object", "propertyNames": {"$ref": REF + "name"},
                            "additionalProperties": {"type": "array", "items": dim},
                            "description": "output names and their shapes"},
            },
            "description": "numbers the network must have; `netc check` reports a mismatch, "
            "`netc check --update-expect` writes the actual ones"}


def _preprocess() -> dict:
    """`preprocess:` (images.py): how an image file becomes the input."""
    side = {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
    size = {"oneOf": [side, {"type": "array", "items": side, "minItems": 1, "maxItems": 2}]}
    numbers = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3}
    return {
        "type": "object", "additionalProperties": False,
        "description": "how an image becomes the input, as torchvision's Resize, CenterCrop, "
                       "ToTensor and Normalize do it (docs/spec.md)",
        "properties": {
            "input": {"$ref": REF + "name", "description": "the input it makes (default: the "
                      "only N×C×H×W one)"},
            "color": {"enum": list(COLORS), "description": "rgb (3 channels) or grayscale (1); "
                      "default: as the input's channels"},
            "resize": dict(size, description="the shorter side to S, or to [H, W]"),
            "crop": dict(size, description="a centre crop to S×S or [H, W]"),
            "interpolation": {"enum": list(INTERPOLATIONS),
                              "description": "the resize filter (default bilinear)"},
            "scale": {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                                {"type": "string", "pattern": r"^\s*[0-9.]+\s*/\s*[0-9.]+\s*$"}],
                      "description": "pixel values 0..255 are multiplied by it (default 1/255)"},
            "mean": dict(numbers, description="subtracted per channel, after the scale"),
            "std": dict(numbers, description="divided per channel, after the mean"),
        },
    }


def _attributes(kind: str, expressions: bool) -> dict:
    """The value of a layer type's key: its attributes as a mapping, the shorthand for its
    main attribute (a scalar, or a list where the attribute takes one), or nothing."""
    cls = REGISTRY[kind]
    specs = attributes(cls)
    properties = {s.name: _attribute(s, expressions) for s in specs}
    mapping = {"type": "object", "properties": properties, "additionalProperties": False}
    if expressions:  # `- add: {from: [a, b]}`: `from` may sit among the attributes
        mapping["properties"]["from"] = {"$ref": REF + "names"}
    options = [{"type": "null"}, mapping]
    if cls.main is not None:
        main = next(s for s in specs if s.name == cls.main)
        short = _attribute(main, expressions)
        short["description"] = f"shorthand for `{kind}: {{{main.name}: VALUE}}`"
        options.append(short)
    return {"oneOf": options}


def _attribute(spec: AttrSpec, expressions: bool) -> dict:
    """The schema of one attribute's value, from its AttrSpec."""
    doc = spec.doc[:1].upper() + spec.doc[1:] + "."
    if spec.kind == "int":
        out = _number("integer", spec.min, spec.max, expressions, doc, spec.exclusive_max)
    elif spec.kind == "float":
        out = _number("number", spec.min, spec.max, expressions, doc, spec.exclusive_max)
    elif spec.kind == "bool":
        out = _typed({"type": "boolean"}, expressions, doc)
    elif spec.kind == "choice":
        out = {"enum": list(spec.choices), "description": f"{doc} One of: "
               f"{', '.join(spec.choices)}."}
    elif spec.kind == "init":
        names = {"enum": list(INITIALISERS)}
        valued = {"type": "string",
                  "pattern": rf"^({'|'.join(INITIALISERS_WITH_VALUE)})\(.+\)$"}
        out = {"anyOf": [names, valued], "description": doc}
    elif spec.kind in ("pair", "padding", "sides"):
        out = _sizes(spec, expressions, doc)
    elif spec.kind == "scales":
        one = _number("number", spec.min, spec.max, expressions, None)
        options = [_strip(one)] if not expressions else list(one["oneOf"])
        options.append({"type": "array", "items": one, "minItems": 2, "maxItems": 2})
        out = {"oneOf": options, "description": doc}
    elif spec.kind == "ref":  # a layer or input name, resolved as `from:` names are
        out = {"type": "string", "pattern": LOCAL_NAME, "maxLength": MAX_NAME,
               "description": doc}
    elif spec.kind == "ints":
        out = {"type": "array", "items": _number("integer", spec.min, spec.max, expressions, None),
               "minItems": 1, "maxItems": MAX_ITEMS, "description": doc}
    else:  # a new attribute type must be described here
        raise TypeError(f"no schema for attribute kind {spec.kind!r}")
    if spec.optional:
        out = {"oneOf": [{"type": "null"}, _strip(out)], "description": out["description"]}
    if not spec.required and spec.default is not None:
        out["default"] = _json_default(spec.default)
    return out


def _sizes(spec: AttrSpec, expressions: bool, doc: str) -> dict:
    """kernel, stride, dilation (an int or [h, w]); pad (also [t, l, b, r], same, valid);
    sides (an int, [h, w] or [t, l, b, r])."""
    one = _number("integer", spec.min, spec.max, expressions, None)
    options = [_strip(one)] if not expressions else list(one["oneOf"])
    lengths = [2] if spec.kind == "pair" else [2, 4]  # (also as `- maxpool: [2, 3]`)
    for n in lengths:
        options.append({"type": "array", "items": one, "minItems": n, "maxItems": n})
    if spec.kind == "padding":
        options.append({"enum": list(spec.choices)})
    return {"oneOf": options, "description": doc}


def _number(kind: str, lo, hi, expressions: bool, doc: str | None,
            exclusive_max: bool = False) -> dict:
    out = {"type": kind}
    if lo is not None:
        out["minimum"] = lo if kind == "number" else int(lo)
    if hi is not None:
        key = "exclusiveMaximum" if exclusive_max else "maximum"
        out[key] = hi if kind == "number" else int(hi)
    return _typed(out, expressions, doc)


def _typed(schema: dict, expressions: bool, doc: str | None) -> dict:
    """`schema`, or also a `$` expression where block arguments may be used."""
    out = {"oneOf": [schema, EXPRESSION]} if expressions else dict(schema)
    if doc:
        out["description"] = doc
    return out


def _strip(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k != "description"}


def _scalar_value() -> dict:
    return {"oneOf": [{"type": ["integer", "number", "boolean"]}, EXPRESSION]}


def _json_default(value):
    if isinstance(value, tuple):
        return value[0] if len(set(value)) == 1 else list(value)
    return value


def _doc(cls) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
