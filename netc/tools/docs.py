"""Docs maintenance: the parts of the docs that are generated from the code or its output.

- the layer reference that docs/spec.md embeds between the `<!-- layers -->` markers, made
  from the layer classes;
- the example outputs in docs/errors.md, made by running every ```console example again; the
  package ships a copy of that file as `netc/errors.md` (for `netc explain CODE`).

`python -m netc.tools.docs` prints the layer reference; `python -m netc.tools.docs --write`
rewrites both files (run it from the repository root). Tests check that the files hold exactly
this text. Nothing in netc imports this module: it runs the CLI, and is run by developers.
"""

from __future__ import annotations

import inspect

from ..layers import REGISTRY, attributes


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


# --- keeping the shipped copy of docs/errors.md true ----------------------------------------


NOT_CHECKED = "<!-- not checked"


def run_examples(text: str, specs_folder) -> str:
    """docs/errors.md with the output of every ```console example replaced by what its
    commands print now. Each example runs in a fresh folder holding a copy of `specs_folder`
    (as specs/) and, as spec.yaml, the ```yaml block of the same entry; `netc ...` commands run
    in this process, others in bash. An example right after a `<!-- not checked` comment is
    kept as it is (its output depends on the machine)."""
    lines = text.splitlines(keepends=True)
    out, spec, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            spec = None
        if line.startswith("```yaml"):
            end = lines.index("```\n", i + 1)
            spec = "".join(lines[i + 1:end])
        elif line.startswith("```console") and not (out and out[-1].startswith(NOT_CHECKED)):
            end = lines.index("```\n", i + 1)
            commands = [c[2:].rstrip("\n") for c in lines[i + 1:end] if c.startswith("$ ")]
            out.append(line)
            for command, printed in zip(commands, _run(commands, spec, specs_folder)):
                out.append(f"$ {command}\n")
                out.append(printed)
            out.append("```\n")
            i = end + 1
            continue
        out.append(line)
        i += 1
    return "".join(out)


def _run(commands: list[str], spec: str | None, specs_folder) -> list[str]:
    """What each command prints (standard output and error together), run in order."""
    import contextlib
    import io
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    import tempfile

    from ..cli import main

    printed = []
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(specs_folder, os.path.join(folder, "specs"))
        if spec is not None:
            with open(os.path.join(folder, "spec.yaml"), "w", encoding="utf-8") as f:
                f.write(spec)
        for command in commands:
            if command.startswith("netc "):
                here, buf = os.getcwd(), io.StringIO()
                os.chdir(folder)
                try:
                    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                        main(shlex.split(command)[1:])
                finally:
                    os.chdir(here)
                result = buf.getvalue()
            else:
                env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", "")}
                proc = subprocess.run(["bash", "-c", command], cwd=folder, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=120)
                result = proc.stdout
            printed.append(result if not result or result.endswith("\n") else result + "\n")
    return printed


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if sys.argv[1:] == ["--write"]:
        spec_md = root / "docs" / "spec.md"
        spec_md.write_text(embed(spec_md.read_text(encoding="utf-8"), layer_reference()),
                           encoding="utf-8")
        errors_md, shipped = root / "docs" / "errors.md", root / "netc" / "errors.md"
        text = run_examples(errors_md.read_text(encoding="utf-8"), root / "specs")
        errors_md.write_text(text, encoding="utf-8")
        shipped.write_text(text, encoding="utf-8")
        print(f"wrote {spec_md}, {errors_md} and {shipped}")
    elif sys.argv[1:]:
        sys.exit("usage: python -m netc.tools.docs [--write]  (print the layer reference; with "
                 "--write, refresh docs/spec.md's layer table and docs/errors.md's examples, and "
                 "copy docs/errors.md to netc/errors.md)")
    else:
        print(layer_reference())
