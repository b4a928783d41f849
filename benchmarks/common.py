"""What the benchmark scripts share: which commit they measure, and on which CPU."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def commit(root: Path) -> str:
    """The commit of the netc tree at `root` ("" if unknown)."""
    if (root / "COMMIT").exists():  # a snapshot (git archive) says which commit it is
        return (root / "COMMIT").read_text().strip()
    done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_name() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
