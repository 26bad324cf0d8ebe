"""The README's metrics table, generated from what the collectors really produce.

    python3 -m tests.metrics_doc          print the table
    python3 -m tests.metrics_doc --write  put it into README.md

tests/unit/test_readme.py fails when README.md and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client.metrics_core import Metric

from exporter.api.model import Meta
from exporter.api.versions import adapter_for
from exporter.collectors import COLLECTORS
from exporter.collectors.health import EndpointHealth, TokenHealth, collect_health
from exporter.settings import load_settings
from exporter.worker import collect_restarts

TOP = Path(__file__).resolve().parents[1]
FIXTURES = TOP / "tests" / "fixtures"
BEGIN = "<!-- metrics table: begin (python3 -m tests.metrics_doc --write) -->"
END = "<!-- metrics table: end -->"

FLAG_OF = {  # families that only exist behind a flag (the first matching prefix wins)
    "slurm_node_unavailable_": "on; --no-nodes-unavailable-per-node",
    "slurm_user_fairshare_": "--shares-per-user; every --collector-shares-interval, 300 s",
    "slurm_account_fairshare_": "on, --collector-shares; every --collector-shares-interval, 300 s",
    "slurm_user_": "--jobs-per-user",
    "slurm_account_": "--jobs-per-account",
    "slurm_node_": "--nodes-per-node",
    "slurm_rpc_user_": "--diag-rpc-per-user",
    "slurm_accounting_job_cpu_efficiency": "--accounting-efficiency",
    "slurm_accounting_job_memory_efficiency": "--accounting-efficiency",
    "slurm_accounting_": "--collector-accounting; every --collector-accounting-interval, "
    "300 s",
}


def all_families() -> list[tuple[str, Metric]]:
    """(collector, family) for every family, every optional one switched on."""
    settings = load_settings([
        "--auth", "none", "--nodes-per-node", "--shares-per-user", "--accounting-per-account",
        "--accounting-per-user", "--accounting-efficiency",
    ])
    adapter = adapter_for("v0.0.45")
    out: list[tuple[str, Metric]] = []

    def recorded(endpoint: str) -> object:
        folder = "slurm-26.05-gpus" if endpoint == "jobs" else "slurm-26.05"
        # with GPUs and with nodes out (tests/fixtures/nodes-out.md)
        folder = "slurm-26.05-nodes-out" if endpoint == "nodes" else folder
        folder = "slurm-26.05-slurmdbd" if endpoint == "shares" else folder
        body = (FIXTURES / folder / f"v0.0.45_{endpoint}.json").read_bytes()
        return COLLECTORS[endpoint].parse(adapter, body).data

    for endpoint, spec in COLLECTORS.items():
        if spec.poller is not None:  # accounting: every recorded record counted
            poller = spec.poller(settings, 0.0)
            body = (FIXTURES / "slurm-26.05-slurmdbd" / "slurmdb_v0.0.45_jobs.json").read_bytes()
            jobs = adapter.parse_accounting_jobs(body).data
            poller.tally.add(poller.window.count(jobs, 0, 2**31))
            out += [(endpoint, fam) for fam in poller.families()]
            continue
        data = recorded(endpoint)
        if spec.joins is not None:
            data = (data, recorded(spec.joins))
        # now 0: every recorded reservation to come
        for fam in spec.collect(data, settings, 0.0):
            out.append((endpoint, fam))
    health = collect_health(
        {"jobs": EndpointHealth(True, 0.1, 1.0, {}, interval_seconds=30.0)},
        TokenHealth(2.0, {}),
        Meta("v0.0.45", "26.05.5", "c"),
        "0",
        0.1,
        1.0,
    )
    out += [("health", fam) for fam in health]
    out.append(("health (server mode)", collect_restarts({})))
    return out


def table() -> str:
    rows = ["| metric | type | labels | collector | help |", "|---|---|---|---|---|"]
    for collector, fam in all_families():
        name = fam.name + ("_total" if fam.type == "counter" else "")
        name = name + "_info" if fam.type == "info" else name
        labels: list[str] = []
        for s in fam.samples:
            labels += [k for k in s.labels if k not in labels]
        # a family the recorded answers leave empty (remote licenses): its declared labels
        labels = labels or list(getattr(fam, "_labelnames", ()))
        flag = next((f for p, f in FLAG_OF.items() if fam.name.startswith(p)), "")
        where = f"{collector} ({flag})" if flag else collector
        kind = "gauge" if fam.type == "info" else fam.type
        doc = fam.documentation.replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {', '.join(labels)} | {where} | {doc} |")
    return "\n".join([BEGIN, *rows, END])


def readme_with_table(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + table() + readme[end:]


if __name__ == "__main__":
    if "--write" in sys.argv:
        path = TOP / "README.md"
        path.write_text(readme_with_table(path.read_text()))
    else:
        print(table())
