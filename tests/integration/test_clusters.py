"""Many clusters from one exporter, scraped by a real Prometheus as the README says.

The exporter runs with a three-cluster --config-file: `prod` and `test` are fake
slurmrestds replaying the recorded answers of real Slurm 26.05 and 24.11
(tests/fakerestd.py, with typed GPUs, nodes out and slurmdbd's fairshare, as
tests/metrics_doc.py takes them), `down` is a URL where nothing listens. Debian's
Prometheus scrapes /probe with the README's relabelling (`__address__` ->
`__param_target` -> `cluster` and `instance`, the exporter as `__address__`) and the
exporter's own /metrics. Then: each cluster's series arrive labelled with its name, the
down cluster is reported down and the others are not, and every dashboard panel query
returns data for each working cluster picked by the dashboards' variables (cluster, then
the job and instance it narrows to), as tests/integration/test_dashboards.py runs them.
No lab needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakerestd import FIXTURES, VERSION, FakeSlurmrestd
from tests.integration.test_dashboards import (
    RARE,
    Prometheus,
    _has_data,
    _stop,
    free_port,
    http_get,
    wait_for,
)
from tests.promql import RULE_FILES, PanelQuery, panel_queries, substitute, variable_queries

TOP = Path(__file__).resolve().parents[2]
README = (TOP / "README.md").read_text(encoding="utf-8")
KEY = b"many-clusters-test-key-0123456789"
WORKING = {"prod": "26.05", "test": "24.11"}  # cluster: release of its recorded answers
DOWN = "down"
SCRAPE_JOB = "slurm"
PANEL_QUERIES = panel_queries()


def readme_scrape_configs(exporter: str, targets: list[str]) -> list[dict[str, Any]]:
    """The README's scrape configuration ("Many clusters"), for this exporter's address
    and these clusters."""
    section = README.split("\n## Many clusters\n", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", section, re.S)
                 if "scrape_configs" in b)
    text = block.replace("slurm-exporter-host:9341", exporter)
    jobs: list[dict[str, Any]] = yaml.safe_load(text)["scrape_configs"]
    assert jobs[0]["job_name"] == SCRAPE_JOB and jobs[0]["metrics_path"] == "/probe"
    jobs[0]["static_configs"] = [{"targets": targets}]
    return jobs


def _fake(release: str) -> FakeSlurmrestd:
    """Recorded answers of `release`, with GPUs, nodes out and fairshare."""
    fake = FakeSlurmrestd(release=release, key=KEY)
    version = VERSION[release]
    for path in list(fake.routes):
        endpoint = path.rstrip("/").rsplit("/", 1)[-1]
        folder = {"jobs": "gpus", "reservations": "gpus", "licenses": "gpus",
                  "nodes": "nodes-out", "shares": "slurmdbd"}.get(endpoint)
        if folder is not None:
            fake.routes[path] = (
                FIXTURES / f"slurm-{release}-{folder}" / f"{version}_{endpoint}.json"
            ).read_bytes()
    return fake


def _bump(value: object, by: int) -> object:
    """Every whole number in `value` plus `by` (bools aside)."""
    if isinstance(value, dict):
        return {k: _bump(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [_bump(v, by) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value + by
    return value


def _advance_diag(fakes: list[FakeSlurmrestd], stop: threading.Event) -> None:
    """sdiag's counters move every second, as on a live cluster (a recorded answer alone
    makes every rate() 0/0)."""
    recorded = {id(f): {p: json.loads(b) for p, b in f.routes.items() if "/diag" in p}
                for f in fakes}
    tick = 0
    while not stop.wait(1.0):
        tick += 1
        for fake in fakes:
            for path, body in recorded[id(fake)].items():
                body = dict(body, statistics=_bump(body["statistics"], tick))
                fake.routes[path] = json.dumps(body).encode()


@dataclass
class Stack:
    prometheus: Prometheus
    exporter: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(prometheus_bin):
        pytest.fail("prometheus is not installed: run scripts/ci-setup.sh (make install)")
    tmp = tmp_path_factory.mktemp("clusters")
    key = tmp / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    fakes = {name: _fake(release).start() for name, release in WORKING.items()}
    stop_diag = threading.Event()
    threading.Thread(
        target=_advance_diag, args=(list(fakes.values()), stop_diag), daemon=True
    ).start()
    clusters = {name: {"slurmrestd_url": fake.url} for name, fake in fakes.items()}
    clusters[DOWN] = {"slurmrestd_url": f"http://127.0.0.1:{free_port()}", "timeout": 1}
    config = tmp / "clusters.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "jwt_user": "exporter", "jwt_key_file": str(key), "interval": 2,
        "nodes_per_node": True, "shares_per_user": True, "clusters": clusters,
    }))
    exporter = f"127.0.0.1:{free_port()}"
    exporter_log, prometheus_log = tmp / "exporter.log", tmp / "prometheus.log"
    prometheus_proc: subprocess.Popen[bytes] | None = None
    with exporter_log.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config-file", str(config),
             "--listen-address", exporter],
            cwd=TOP, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(
            "every cluster's first cycle",
            lambda: proc.poll() is None and all(
                f'slurm_exporter_target_last_collection_timestamp_seconds{{target="{n}"}}'
                in http_get(f"http://{exporter}/metrics")[1].decode()
                for n in clusters
            ),
            60,
            exporter_log,
        )
        prometheus_yml = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": readme_scrape_configs(exporter, list(clusters)),
        }
        (tmp / "prometheus.yml").write_text(json.dumps(prometheus_yml))
        with prometheus_log.open("wb") as log:
            prometheus_proc = subprocess.Popen(
                [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{free_port()}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        address = next(a for a in prometheus_proc.args if "listen-address" in str(a))
        prom = Prometheus(f"http://{str(address).split('=', 1)[1]}")
        wait_for("Prometheus ready", lambda: http_get(f"{prom.url}/-/ready")[0] == 200, 60,
                 prometheus_log)
        cycles = f'slurm_exporter_collection_timestamp_seconds{{job="{SCRAPE_JOB}"}}[1m]'
        recorded = f'job_instance:slurm_nodes_by_state:sum{{job="{SCRAPE_JOB}"}}[1m]'
        wait_for(
            "15 scrapes and 4 collection cycles of each cluster in Prometheus",
            lambda: all(
                prom.value(f'count_over_time({cycles.replace("}", f",cluster={n!r}}}")})'
                           .replace("'", '"')) >= 15
                and prom.value(f'changes({cycles.replace("}", f",cluster={n!r}}}")})'
                               .replace("'", '"')) >= 4
                for n in WORKING
            ) and prom.value(f"min(count_over_time({recorded}))") >= 2,
            120,
            prometheus_log,
        )
        yield Stack(prom, exporter)
    finally:
        if prometheus_proc is not None:
            _stop(prometheus_proc)
        _stop(proc)
        stop_diag.set()
        for fake in fakes.values():
            fake.stop()


def test_each_clusters_series_arrive_with_its_cluster_label(stack: Stack) -> None:
    prom = stack.prometheus
    for name in WORKING:
        jobs = prom.query(f'sum(slurm_jobs_by_state{{job="{SCRAPE_JOB}", cluster="{name}"}})')
        assert jobs and float(jobs[0]["value"][1]) > 0, name
        info = prom.query(f'slurm_info{{cluster="{name}"}}')
        assert [s["metric"]["instance"] for s in info] == [name]
    # the two clusters' recorded answers differ: no cluster is served another's snapshot
    releases = {s["metric"]["cluster"]: s["metric"]["release"]
                for s in prom.query("slurm_info")}
    assert {c: r[:5] for c, r in releases.items()} == WORKING


def test_the_down_cluster_is_down_and_the_others_up(stack: Stack) -> None:
    prom = stack.prometheus
    assert prom.value(f'min(up{{job="{SCRAPE_JOB}"}})') == 1  # every probe answers
    up = {s["metric"]["cluster"]: float(s["value"][1]) for s in prom.query(
        f'min by (cluster) (slurm_exporter_endpoint_up{{job="{SCRAPE_JOB}"}})')}
    assert up == {"prod": 1.0, "test": 1.0, DOWN: 0.0}
    targets = {s["metric"]["target"]: float(s["value"][1])
               for s in prom.query('slurm_exporter_target_up{job="slurm-exporter"}')}
    assert targets == {"prod": 1.0, "test": 1.0, DOWN: 0.0}


def test_the_cluster_variable_lists_every_target(stack: Stack) -> None:
    for dashboard, name, query in variable_queries():
        if name != "cluster":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert m, f"{dashboard}: ${name}: {query}"
        answer = stack.prometheus.api("series", **{"match[]": m.group(1)})
        values = {s.get(m.group(2)) for s in answer["data"]}
        assert set(WORKING) <= values, f"{dashboard}: $cluster = {values}"


def _narrowed(prom: Prometheus, cluster: str) -> dict[str, str]:
    """Grafana's selection once `cluster` is picked: the job and instance it narrows to."""
    picked = {"cluster": cluster}
    for variable in ("job", "instance"):
        values = {s["metric"][variable] for s in prom.query(f'slurm_info{{cluster="{cluster}"}}')}
        assert len(values) == 1, f"cluster {cluster} gives {variable} {values}"
        picked[variable] = values.pop()
    return picked


# its data come from /slurmdb/ endpoints only
SLURMDBD_DASHBOARD = "slurm-accounting"


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.id for q in PANEL_QUERIES])
def test_panel_query_returns_data_for_each_cluster(stack: Stack, query: PanelQuery) -> None:
    if (query.dashboard, query.panel) in RARE:
        return
    if query.dashboard == SLURMDBD_DASHBOARD:
        pytest.skip("the replayed clusters have no slurmdbd: test_dashboards.py runs the "
                    "accounting dashboard against the lab's")
    for cluster in WORKING:
        expr = substitute(query.expr, _narrowed(stack.prometheus, cluster))
        if query.instant:
            result = stack.prometheus.query(expr)
        else:
            result = stack.prometheus.query_range(expr)
        assert _has_data(result), f"no data with cluster {cluster} selected: {expr}"
        # and only that cluster's: its series carry its own instance
        instances = {s["metric"].get("instance") for s in result} - {None}
        assert instances <= {cluster}, f"{expr} mixes clusters: {instances}"
