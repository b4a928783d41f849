"""Reference tables generated from the code, so the docs cannot drift from it.

`python -m netc.docs` prints the layer reference that docs/spec.md embeds between the
`<!-- layers -->` markers (`--write` updates the file); a test checks that the file holds
exactly this text.
"""

from __future__ import annotations

import inspect

from .layers import REGISTRY, attributes


def _default(spec) -> str:
    if spec.required:
        return "required"
    value = spec.default
    if value is None:
        return "see text"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return str(value[0]) if len(set(value)) == 1 else str(list(value))
    return str(value)


def layer_reference() -> str:
    """Markdown: one section per layer type with its attributes, defaults and docs."""
    out = []
    for kind in sorted(REGISTRY):
        cls = REGISTRY[kind]
        doc = inspect.cleandoc(cls.__doc__ or "")
        out.append(f"### `{kind}`\n\n{doc}\n")
        specs = attributes(cls)
        lo, hi = cls.arity
        if lo > 1:
            out.append(f"Inputs: {lo} or more, named with `from:`.\n")
        if specs:
            out.append("| attribute | default | meaning |\n|---|---|---|")
            for s in specs:
                main = f"; `- {kind}: VALUE` sets it" if cls.main == s.name else ""
                choices = f" One of: {', '.join(s.choices)}." if s.kind == "choice" else ""
                out.append(f"| `{s.name}` | {_default(s)} | {s.doc}{main}.{choices} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


MARKERS = ("<!-- layers -->\n", "<!-- /layers -->")


def embed(text: str, table: str) -> str:
    """`text` with the part between the layer markers replaced by `table`."""
    start = text.index(MARKERS[0]) + len(MARKERS[0])
    end = text.index(MARKERS[1])
    return text[:start] + table + text[end:]


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:  # regenerate the table in docs/spec.md
        path = "docs/spec.md"
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(embed(text, layer_reference()))
    else:
        print(layer_reference())
