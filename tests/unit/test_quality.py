"""House rules that CI enforces: ruff and mypy --strict clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *cmd], cwd=TOP, capture_output=True, text=True, check=False
    )


def test_ruff() -> None:
    r = _run("ruff", "check", "exporter", "tests")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict() -> None:
    r = _run("mypy", "exporter")
    assert r.returncode == 0, r.stdout + r.stderr
