"""Compare slurm-exporter's exposition with a generated dataset's truth.json.

    python3 -m benchmarks.expect DATA_DIR/truth.json < metrics.txt

Exits 0 and prints "exact" when every series of the families below matches the truth,
value for value and label set for label set (no missing, no extra series); else it
lists the differences. Other exporters: read truth.json, whose keys say what they count.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Series = dict[tuple[tuple[str, str], ...], float]


def _flatten(tree: dict[str, Any], labels: tuple[str, ...], skip_zero: bool = False) -> Series:
    out: Series = {}

    def walk(node: Any, values: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*values, k))
            return
        if skip_zero and not node:
            return
        out[tuple(zip(labels, values, strict=True))] = float(node)

    walk(tree, ())
    return out


def _one(value: float | None) -> Series:
    return {} if value is None else {(): float(value)}


def expected_series(truth: dict[str, Any]) -> dict[str, Series]:
    """Metric family -> expected series, for the families that truth.json determines."""
    j, n, parts = truth["jobs"], truth["nodes"], truth["partitions"]
    sp = ("state", "partition")
    us, acs = ("user", "state"), ("account", "state")
    expected: dict[str, Series] = {
        "slurm_jobs_by_state": _flatten(j["by_state_partition"], sp),
        "slurm_jobs_cpus": _flatten(j["cpus_by_state_partition"], sp),
        "slurm_jobs_memory_bytes": _flatten(j["memory_bytes_by_state_partition"], sp),
        "slurm_jobs_gpus": _flatten(
            j["gpus_by_state_partition_type"], ("state", "partition", "type")
        ),
        "slurm_jobs_pending_by_reason": _flatten(
            j["pending_by_partition_reason"], ("partition", "reason")
        ),
        "slurm_user_jobs_by_state": _flatten(j["by_user_state"], us),
        "slurm_user_cpus": _flatten(j["cpus_by_user_state"], us),
        "slurm_user_gpus": _flatten(j["gpus_by_user_state"], us, skip_zero=True),
        "slurm_account_jobs_by_state": _flatten(j["by_account_state"], acs),
        "slurm_account_cpus": _flatten(j["cpus_by_account_state"], acs),
        "slurm_account_gpus": _flatten(j["gpus_by_account_state"], acs, skip_zero=True),
        "slurm_nodes_by_state": _flatten(n["by_state"], ("state",)),
        "slurm_cpus": _flatten(n["cpus_by_state"], ("state",)),
        "slurm_cpus_configured": _one(n["cpus_configured"]),
        "slurm_memory_total_bytes": _one(n["memory_total_bytes"]),
        "slurm_memory_allocated_bytes": _one(n["memory_allocated_bytes"]),
        "slurm_memory_free_bytes": _one(n["memory_free_bytes"]),
        "slurm_gpus_configured": _flatten(n["gpus_configured_by_type"], ("type",)),
        "slurm_gpus_allocated": _flatten(n["gpus_allocated_by_type"], ("type",)),
        "slurm_gpus_idle": _flatten(n["gpus_idle_by_type"], ("type",)),
        "slurm_partition_nodes_by_state": _flatten(
            n["partition_nodes_by_state"], ("partition", "state")
        ),
        "slurm_partition_cpus_by_state": _flatten(
            n["partition_cpus_by_state"], ("partition", "state")
        ),
        "slurm_partition_gpus_configured": _flatten(
            n["partition_gpus_configured"], ("partition", "type")
        ),
        "slurm_partition_gpus_allocated": _flatten(
            n["partition_gpus_allocated"], ("partition", "type")
        ),
        "slurm_partition_state": {
            (("partition", p), ("state", v["state"])): 1.0 for p, v in parts.items()
        },
        "slurm_partition_cpus_configured": {
            (("partition", p),): float(v["total_cpus"]) for p, v in parts.items()
        },
        "slurm_partition_nodes_configured": {
            (("partition", p),): float(v["total_nodes"]) for p, v in parts.items()
        },
        "slurm_partition_max_time_seconds": {
            (("partition", p),): math.inf
            if v["max_time_seconds"] is None
            else float(v["max_time_seconds"])
            for p, v in parts.items()
        },
    }
    return expected


def parse_exposition(text: str) -> dict[str, Series]:
    """Samples of a Prometheus text exposition, by metric name."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = tuple(sorted(s.labels.items()))
            out.setdefault(s.name, {})[key] = float(s.value)
    return out


def differences(truth: dict[str, Any], exposition: str, limit: int = 20) -> list[str]:
    """What differs between the exposition and the truth (empty: exact)."""
    got = parse_exposition(exposition)
    problems: list[str] = []
    for name, want in expected_series(truth).items():
        want = {tuple(sorted(k)): v for k, v in want.items()}
        have = got.get(name, {})
        for key in sorted(want.keys() | have.keys()):
            w, h = want.get(key), have.get(key)
            if w != h:
                labels = ",".join(f"{k}={v!r}" for k, v in key)
                problems.append(f"{name}{{{labels}}}: expected {w}, got {h}")
    return problems[:limit] + ([f"... {len(problems) - limit} more"] if len(problems) > limit
                               else [])


def check_lines(lines: Iterable[str], truth_file: Path) -> list[str]:
    return differences(json.loads(truth_file.read_text()), "".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check_lines(sys.stdin, Path(args[0]))
    for p in problems:
        print(p)
    if not problems:
        print("exact")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
