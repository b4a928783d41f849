"""The docs stay true to the code."""

from pathlib import Path

from netc.tools.docs import MARKERS, embed, layer_reference
from netc.layers import REGISTRY, attributes

ROOT = Path(__file__).resolve().parent.parent


def test_spec_doc_holds_the_generated_layer_reference():
    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    assert MARKERS[0] in text
    assert embed(text, layer_reference()) == text, "run `python -m netc.tools.docs --write`"


def test_every_layer_and_attribute_has_a_doc():
    for kind, cls in REGISTRY.items():
        assert cls.__doc__ and "`- " in cls.__doc__, f"{kind} needs a doc with a YAML example"
        for spec in attributes(cls):
            assert spec.doc, f"{kind}.{spec.name} needs a doc"


def test_whole_specs_in_the_spec_doc_check(tmp_path):
    """Every complete spec docs/spec.md shows (a ```yaml block starting `netc: 1`) checks
    without errors or warnings, and has the shapes its comments say where they say one."""
    import re

    import netc

    text = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("netc: 1")]
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(block, encoding="utf-8")
        graph = netc.check_spec(path)
        shapes = {n.name: n.output.shape for n in graph.nodes}
        for line in block.splitlines():
            # `- {conv: ..., name: enc1}    # 16x96x96`: the comment's CxHxW is the layer's
            said = re.search(r"name: ([\w.]+)\}.*#\s*(?:the skip: )?(\d+)x(\d+)x(\d+)", line)
            if said:
                name, c, h, w = said.groups()
                assert shapes[name][1:] == (int(c), int(h), int(w)), line


def _commands():
    """Each command of `netc` (from the parser itself) -> its options: (option strings, the
    choices or None), and its positional arguments' metavars."""
    import argparse

    from netc.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = {}
    for name, parser in sub.choices.items():
        options = [(tuple(a.option_strings), tuple(a.choices) if a.choices else None)
                   for a in parser._actions if a.option_strings]
        positionals = [a.metavar or a.dest for a in parser._actions if not a.option_strings]
        commands[name] = options, positionals
    return commands


def _cli_doc():
    """docs/cli.md as (synopsis lines per command, section text per command, its whole text);
    the synopsis is the first code block, a section runs from `## \\`netc NAME\\`` to the next
    `## `."""
    import re

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    synopsis = re.search(r"```\n(.*?)```", text, re.S).group(1).splitlines()
    lines, sections = {}, {}
    for line in synopsis:
        for part in line.split(" | netc "):  # `netc explain CODE | netc explain SPEC LAYER`
            part = part if part.startswith("netc ") else "netc " + part
            words = part.split()
            if len(words) >= 2 and words[0] == "netc":
                lines.setdefault(words[1], []).append(part)
    for m in re.finditer(r"^## `netc (\w+)`\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        sections[m.group(1)] = m.group(2)
    return lines, sections, text


def _mentioned(option: str, text: str) -> bool:
    """`--fold` is not mentioned by `--fold-bn`: the option must end at a non-name character."""
    import re

    return re.search(re.escape(option) + r"(?![\w-])", text) is not None


def test_every_command_option_is_in_the_cli_doc():
    """Every option of every command (walked from netc.cli's parser, so a new option can't be
    forgotten) is in docs/cli.md's synopsis for that command, with its choices as `a|b`, and in
    the command's section. Options every command has (`--help`, `--limit`) are documented
    once: in a `netc COMMAND ...` synopsis line and a section of their own."""
    commands = _commands()
    lines, sections, text = _cli_doc()
    common = set.intersection(*({o for o, _ in opts} for opts, _ in commands.values()))
    missing = []
    for name, (options, positionals) in commands.items():
        if name not in lines:
            missing.append(f"{name}: no synopsis line `netc {name} ...`")
            continue
        if name not in sections:
            missing.append(f"{name}: no section ## `netc {name}`")
            continue
        synopsis = "\n".join(lines[name])
        for metavar in positionals:
            if not all(m in synopsis for m in metavar.split("|")):
                missing.append(f"{name}: argument {metavar} not in the synopsis")
        for strings, choices in options:
            if strings in common:
                continue
            longest = max(strings, key=len)
            if not any(_mentioned(s, synopsis) for s in strings):
                missing.append(f"{name} {longest}: not in the synopsis")
            elif choices and not any(f"{s} {'|'.join(choices)}" in synopsis for s in strings):
                missing.append(f"{name} {longest}: the synopsis should list {'|'.join(choices)}")
            if not any(_mentioned(s, sections[name]) for s in strings):
                missing.append(f"{name} {longest}: not in its section ## `netc {name}`")
    for strings in common - {("-h", "--help")}:
        longest = max(strings, key=len)
        if not any(_mentioned(s, line) for s in strings for line in lines.get("COMMAND", [])):
            missing.append(f"{longest} (every command): not in a `netc COMMAND ...` synopsis line")
        if not any(_mentioned(s, section) for s in strings
                   for section in __import__("re").findall(r"^## .*\n(?:(?!## ).*\n)*",
                                                         text, __import__("re").M)
                   if not section.startswith("## `netc ")):
            missing.append(f"{longest} (every command): no section of its own")
    assert not missing, "docs/cli.md is missing:\n" + "\n".join(missing)


def test_the_docs_name_no_option_a_command_lacks():
    """The other way round: every option docs/cli.md's synopsis or README's command table
    gives a command is one the command takes (a renamed or removed option is not left in the
    docs), and README's table names every command."""
    import re

    commands = _commands()
    taken = {name: {s for strings, _ in opts for s in strings}
             for name, (opts, _) in commands.items()}
    lines, _, _ = _cli_doc()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"^## Commands\n(.*?)(?=^## |\Z)", readme, re.S | re.M).group(1)
    rows = {}
    for row in re.findall(r"^\| `(netc .*?)` \|", table, re.M):
        for part in row.split("`, `"):  # `netc explain CODE`, `netc explain SPEC LAYER`
            rows.setdefault(part.split()[1], []).append(part)
    wrong = []
    for where, found in (("docs/cli.md synopsis", lines), ("README.md table", rows)):
        for name, parts in found.items():
            if name == "COMMAND" or name.startswith("-"):  # `netc --version`
                continue
            if name not in taken:
                wrong.append(f"{where}: no command {name!r}")
                continue
            for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(parts[0:])):
                if option not in taken[name]:
                    wrong.append(f"{where}: {name} has no option {option}")
    wrong += [f"README.md table: no row for `netc {name}`" for name in commands if name not in rows]
    assert not wrong, "\n".join(wrong)
