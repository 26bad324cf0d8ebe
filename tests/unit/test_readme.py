"""The README cannot drift from the code: metrics table, flags, test command."""

from __future__ import annotations

from pathlib import Path

from exporter.settings import Settings
from tests.metrics_doc import readme_with_table

TOP = Path(__file__).resolve().parents[2]
README = (TOP / "README.md").read_text()


def test_metrics_table_is_what_the_collectors_produce() -> None:
    assert readme_with_table(README) == README, (
        "README's metrics table is out of date: run python3 -m tests.metrics_doc --write"
    )


def test_every_flag_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    ci = (TOP / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
