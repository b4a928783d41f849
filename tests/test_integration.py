"""The integration files, exercised as far as possible without GitHub or pre-commit itself:
.pre-commit-hooks.yaml parses and its entry checks the zoo (exit 0) and a bad spec (exit 1),
and the workflows and pre-commit config in docs/ci.md parse and their commands work."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
BAD = ROOT / "tests" / "bad" / "e301_lecture_stride3.yaml"
CI_DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def hooks() -> list[dict]:
    return yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def command(entry: str) -> list[str]:
    """A hook's entry as a command line: the installed `netc` script, as pre-commit's python
    environments have it, or `python -m netc` from a source tree."""
    words = shlex.split(entry)
    assert words[0] == "netc"
    exe = BIN / "netc"
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "netc"]) + words[1:]


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", CI_DOC, re.S)


def test_pre_commit_hook_is_declared_as_pre_commit_reads_it():
    [hook] = hooks()
    assert hook["id"] == "netc-check"
    assert hook["entry"] == "netc check"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])  # pre-commit uses Python's `re.search`
    assert all(pattern.search(str(p.relative_to(ROOT))) for p in SPECS)
    assert pattern.search("nets/net.yml") and not pattern.search("README.md")


def test_pre_commit_entry_passes_the_zoo_and_fails_a_bad_spec():
    [hook] = hooks()
    files = [str(p.relative_to(ROOT)) for p in SPECS]
    good = subprocess.run(command(hook["entry"]) + files, cwd=ROOT, capture_output=True,
                          text=True)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(command(hook["entry"]) + files + [str(BAD.relative_to(ROOT))],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "error[E301]" in bad.stderr and "Traceback" not in bad.stderr


def test_pre_commit_config_in_the_docs_uses_the_hook():
    configs = [yaml.safe_load(block) for block in fenced("yaml") if "repos:" in block]
    assert len(configs) == 1
    [repo] = configs[0]["repos"]
    [use] = repo["hooks"]
    assert use["id"] == hooks()[0]["id"]
    pattern = re.compile(use["files"])
    assert pattern.search("specs/resnet18.yaml") and pattern.search("specs/sub/a.yml")
    assert not pattern.search(".github/workflows/specs.yml")


def workflows() -> list[dict]:
    return [yaml.safe_load(block) for block in fenced("yaml") if "jobs:" in block]


def test_workflows_in_the_docs_parse():
    found = workflows()
    assert len(found) == 2
    for flow in found:
        assert flow["jobs"]["check"]["runs-on"] == "ubuntu-latest"
        runs = [s["run"] for s in flow["jobs"]["check"]["steps"] if "run" in s]
        assert any(r.startswith("netc check") for r in runs)
    sarif = found[1]
    upload = sarif["jobs"]["check"]["steps"][-1]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif")
    assert upload["if"] == "always()" and sarif["permissions"]["security-events"] == "write"


@pytest.mark.skipif(not (BIN / "netc").exists(), reason="netc is not installed as a command")
def test_workflow_commands_run(tmp_path):
    """Each workflow's `netc` steps, run as a shell would run them, in a checkout with the zoo
    (exit 0), then with a bad spec added (exit 1, and an annotation on its line)."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    steps = [s["run"] for flow in workflows() for s in flow["jobs"]["check"]["steps"]
             if s.get("run", "").startswith("netc ")]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(step):
        return subprocess.run(step, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True)

    for step in steps:
        result = run(step)
        assert result.returncode == 0, (step, result.stderr)
    assert json.loads((tmp_path / "netc.sarif").read_text())["version"] == "2.1.0"
    shutil.copy(BAD, tmp_path / "specs" / "bad.yaml")
    github = next(s for s in steps if "--format github" in s)
    result = run(github)
    assert result.returncode == 1
    assert re.search(r"^::error file=specs/bad\.yaml,line=\d+,col=\d+.*title=E301::",
                     result.stdout, re.M), result.stdout
