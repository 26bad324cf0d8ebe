"""Every dashboard panel and every alert rule, run by a real Prometheus on real data.

The session's lab cluster (tests/integration/conftest.py: fake typed GPUs, slurmdbd, the job
mix), the exporter reading it (with --nodes-per-node and --shares-per-user, so that the
per-node and per-user panels have data),
and Debian's Prometheus scraping the exporter every second in a job named "slurm" with
alerts/*.yml loaded. Once the rate() windows have samples, every panel query of
dashboards/*.json must return data (except the RARE panels, whose data only appears in rare
conditions), every rule expression must be valid PromQL, the rules must evaluate without
error, and the healthy cluster must raise no alert (but for its spare nodes, out on purpose).
Where the lab's slurmctld serves Slurm's own metrics (25.11+), Prometheus scrapes them too,
in a job "slurm-native", as a site that scrapes both: no panel or rule may read them.

The accounting dashboard (dashboards/slurm-accounting.json) reads the exporter's slurmdbd
endpoints: when the exporter has them, it runs with --collector-accounting and
--collector-slurmdbd (its user made a slurmdbd Administrator for the module, as diag needs),
two rounds of jobs (completed, failed, GPU) end after it started (counting starts with the
process, and a counter only has a rate once it has grown after its first sample), and that
dashboard's queries run over 1 h windows, as accounting counters move once per poll. When the
exporter has no such endpoints, those queries are skipped, saying so.

One release is enough for the dashboards: these tests take the session's `lab` of RELEASE
only (the first of PREFERRED that $SLURMLAB_RELEASES allows), so they share that cluster
with the other integration tests instead of starting one of their own.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.native import ENDPOINTS as NATIVE_PAGES
from exporter.settings import ENDPOINTS
from tests.integration.lab import TOP, Lab, releases
from tests.promql import (
    RULE_FILES,
    PanelQuery,
    Rule,
    panel_queries,
    rules,
    substitute,
    variable_queries,
)

PREFERRED = ("26.05", "24.11", "22.05")
RELEASE = next((r for r in PREFERRED if r in releases()), releases()[0])
# the session-scoped `lab` fixture of conftest.py, for RELEASE only (grouped with the other
# tests of that release: the same cluster, started once)
ON_LAB = pytest.mark.parametrize("lab", [RELEASE], indirect=True, scope="session")
SCRAPE_JOB = "slurm"  # the name the alert rules expect (alerts/RUNBOOK.md)
NATIVE_JOB = "slurm-native"  # slurmctld's own /metrics/* (MetricsType=metrics/openmetrics)

# Panels whose data only exists in rare conditions; their descriptions say so ("RARE").
RARE: dict[tuple[str, str], str] = {
    ("slurm-exporter-health", "Errors in the time range"): (
        "failed calls to slurmrestd in the time range: none on a healthy cluster"
    ),
}

PANEL_QUERIES = panel_queries()
RULES = rules()

# The accounting dashboard and its thresholds need the exporter's slurmdbd endpoints.
ACCOUNTING_DASHBOARD = "slurm-accounting"
ACCOUNTING = {"accounting", "slurmdbd"} <= set(ENDPOINTS)
NO_ACCOUNTING = (
    "the exporter has no accounting/slurmdbd endpoints (issue 12's collectors not merged): "
    "nothing to run the accounting dashboard's queries against"
)
ACCOUNTING_ONLY_THRESHOLDS = {"slurm:alert_threshold:queue_wait_p90_seconds"}
# Jobs that end after the exporter started: completed, failed, and a GPU one (the lab has
# typed GPUs), so that every outcome, usage and wait panel has a series that grows.
# A time limit: the lab's MAINT reservation holds back jobs without one.
ACCOUNTING_JOBS = (
    ("-t", "1", "--wrap", "sleep 1"),
    ("-t", "1", "--wrap", "false"),
    ("-t", "1", "--gres", "gpu:1", "--wrap", "sleep 1"),
)
# The lab's job mix fills node1: MAKES_ROOM is suspended while they run (`scontrol suspend`
# gives its CPUs back: select/cons_tres removes an indefinitely suspended job's cores from
# the node), then resumed; WOULD_TAKE_IT, pending for Priority, is held meanwhile, or it
# would take that CPU first.
MAKES_ROOM, WOULD_TAKE_IT = "run_sleep", "alice_job"
# Accounting counters move once per poll, one job at a time: panels over 1 h windows.
ACCOUNTING_RANGES = {"__rate_interval": "1h", "__interval": "1h", "__range": "1h"}


# ------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds, with the log's tail."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{tail}")
        time.sleep(0.25)


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> dict[str, Any]:
        status, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError:
            answer = {"status": "error", "error": f"HTTP {status}: {body[:300]!r}"}
        return answer

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; fails the test when Prometheus rejects the query."""
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_range(self, expr: str, seconds: int = 30, step: int = 2) -> list[dict[str, Any]]:
        now = time.time()
        answer = self.api(
            "query_range", query=expr, start=str(now - seconds), end=str(now), step=str(step)
        )
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else math.nan


@dataclass
class Stack:
    lab: Lab
    prometheus: Prometheus
    instance: str  # the exporter's target address, as Prometheus labels it
    init_pid: str  # the lab's start that the data comes from
    native: bool  # Prometheus also scrapes slurmctld's own metrics (NATIVE_JOB)

    def assert_same_lab(self) -> None:
        assert _init_pid(self.lab) == self.init_pid, (
            f"the {self.lab.release} lab was restarted by someone else during the test"
        )

    def selections(self) -> dict[str, dict[str, str]]:
        """Grafana's variables: everything (All), and this one cluster picked."""
        return {
            "all": {"job": ".*", "instance": ".*", "cluster": ".*"},
            "one": {"job": SCRAPE_JOB, "instance": self.instance, "cluster": "slurmlab"},
        }


def _init_pid(lab: Lab) -> str:
    """The lab's namespace init pid: which start of the release is running."""
    path = Path(lab.env["SLURMLAB_CHROOT"] + ".run") / "init.pid"
    return path.read_text().strip() if path.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def stack(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The exporter and Prometheus, with enough samples for every rate() window."""
    prometheus_bin = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(prometheus_bin):
        pytest.fail("prometheus is not installed: run scripts/ci-setup.sh (make install)")
    init_pid = _init_pid(lab)
    tmp = tmp_path_factory.mktemp("dashboards")
    exporter_port, prometheus_port = free_port(), free_port()
    instance = f"127.0.0.1:{exporter_port}"

    exporter_log = tmp / "exporter.log"
    accounting: list[str] = []
    if ACCOUNTING:
        # slurmdbd's diag needs AdminLevel=Administrator; put back as it was at the end
        _admin_level(lab, "Administrator")
        accounting = ["--collector-accounting", "--collector-accounting-interval", "2",
                      "--collector-slurmdbd", "--collector-slurmdbd-interval", "2"]
    with exporter_log.open("wb") as log:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--slurmrestd-url", lab.url,
             "--jwt-key-file", lab.key, "--jwt-user", lab.user,
             "--listen-address", instance, "--interval", "2", "--nodes-per-node",
             "--shares-per-user", *accounting],
            cwd=TOP, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    prometheus_log = tmp / "prometheus.log"
    prometheus_proc: subprocess.Popen[bytes] | None = None
    try:
        wait_for(
            "the exporter's first cycle",
            lambda: (
                exporter.poll() is None
                and b"slurm_info{" in http_get(f"http://{instance}/metrics")[1]
            ),
            60,
            exporter_log,
        )
        native = lab.env.get("SLURMCTLD_METRICS_URL")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {"job_name": SCRAPE_JOB, "static_configs": [{"targets": [instance]}]},
                *([_native_scrape_config(native)] if native else []),
            ],
        }
        (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        with prometheus_log.open("wb") as log:
            prometheus_proc = subprocess.Popen(
                [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        prom = Prometheus(f"http://127.0.0.1:{prometheus_port}")
        wait_for(
            "Prometheus ready",
            lambda: http_get(f"{prom.url}/-/ready")[0] == 200,
            60,
            prometheus_log,
        )
        # enough for rate() over any window: 15 scrapes, 4 new collection cycles, and the
        # recording rules evaluated
        cycles = f'slurm_exporter_collection_timestamp_seconds{{job="{SCRAPE_JOB}"}}[1m]'
        recorded = f'job_instance:slurm_nodes_by_state:sum{{job="{SCRAPE_JOB}"}}[1m]'
        wait_for(
            "15 scrapes and 4 collection cycles in Prometheus",
            lambda: (
                prom.value(f"count_over_time({cycles})") >= 15
                and prom.value(f"changes({cycles})") >= 4
                and prom.value(f"count_over_time({recorded})") >= 2
            ),
            120,
            prometheus_log,
        )
        if ACCOUNTING:
            _accounting_jobs_counted(lab, prom, prometheus_log)
        ready = Stack(lab, prom, instance, init_pid, native=bool(native))
        ready.assert_same_lab()
        yield ready
    finally:
        if prometheus_proc is not None:
            _stop(prometheus_proc)
        _stop(exporter)
        if ACCOUNTING:
            _admin_level(lab, "None")


def _admin_level(lab: Lab, level: str) -> None:
    lab.slurm("sacctmgr", "-i", "modify", "user", lab.user, "set", f"adminlevel={level}")


def _accounting_jobs_counted(lab: Lab, prom: Prometheus, log: Path) -> None:
    """Two rounds of ACCOUNTING_JOBS, each counted by the exporter and scraped: the first
    makes the series, the second makes them grow (a rate needs two different samples)."""
    ended = f'sum(slurm_accounting_jobs_ended_total{{job="{SCRAPE_JOB}"}})'
    failed = f'sum(slurm_accounting_jobs_ended_total{{job="{SCRAPE_JOB}", state="failed"}})'
    room = lab.slurm("squeue", "-h", "-t", "R", "-n", MAKES_ROOM, "-o", "%i").split()[0]
    waiting = lab.slurm("squeue", "-h", "-t", "PD", "-n", WOULD_TAKE_IT, "-o", "%i").split()
    for job in waiting:
        lab.slurm("scontrol", "hold", job)
    lab.slurm("scontrol", "suspend", room)
    try:
        for rounds in (1, 2):
            for args in ACCOUNTING_JOBS:
                lab.slurm("sbatch", "-o", "/dev/null", "-e", "/dev/null", *args)

            def counted(n: int = rounds) -> bool:
                return prom.value(ended) >= n * len(ACCOUNTING_JOBS) and prom.value(failed) >= n

            wait_for(f"round {rounds} of the accounting jobs counted and scraped", counted, 240,
                     log)
    finally:
        lab.slurm("scontrol", "resume", room)
        for job in waiting:
            lab.slurm("scontrol", "release", job)
    # the recording rules of alerts/slurm-accounting.yml evaluated on the grown counters
    ratio = f'job_instance_partition:slurm_accounting_jobs_failed:ratio_7d{{job="{SCRAPE_JOB}"}}'
    wait_for("the failure ratio recorded", lambda: not math.isnan(prom.value(ratio)), 60, log)


def _native_scrape_config(url: str) -> dict[str, Any]:
    """slurmctld's pages under /metrics, one target each (README: With Slurm's
    metrics/openmetrics)."""
    parts = urllib.parse.urlsplit(url)
    return {
        "job_name": NATIVE_JOB,
        "static_configs": [
            {"targets": [parts.netloc],
             "labels": {"__metrics_path__": f"{parts.path}/{page}", "page": page}}
            for page in NATIVE_PAGES
        ],
    }  # fmt: skip


# ------------------------------------------------------------------------------ tests
def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample that is a number (not NaN)."""
    for series in result:
        points = series.get("values") or [series["value"]]
        if any(not math.isnan(float(v)) for _, v in points):
            return True
    return False


@ON_LAB
@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.id for q in PANEL_QUERIES])
def test_panel_query_returns_data(stack: Stack, query: PanelQuery) -> None:
    rare = (query.dashboard, query.panel) in RARE
    accounting = query.dashboard == ACCOUNTING_DASHBOARD
    if accounting and not ACCOUNTING:
        pytest.skip(NO_ACCOUNTING)
    for name, selection in stack.selections().items():
        if accounting:
            selection = {**selection, **ACCOUNTING_RANGES}
        expr = substitute(query.expr, selection)
        if query.instant:
            result = stack.prometheus.query(expr)
        else:
            result = stack.prometheus.query_range(expr)
        if not rare:
            assert _has_data(result), f"no data with {name} selected: {expr}"


def test_rare_panels_are_listed_and_say_so() -> None:
    titles = {(q.dashboard, q.panel): q.description for q in PANEL_QUERIES}
    for key, why in RARE.items():
        assert key in titles, f"RARE lists a panel that does not exist: {key}"
        assert "RARE" in titles[key], f"{key} ({why}) must say RARE in its description"
    for key, description in titles.items():
        if "RARE" in description:
            assert key in RARE, f"{key} says RARE but the test does not list it"


@ON_LAB
def test_variables_list_the_lab(stack: Stack) -> None:
    expected = {"cluster": "slurmlab", "job": SCRAPE_JOB, "instance": stack.instance}
    for dashboard, name, query in variable_queries():
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert m, f"{dashboard}: ${name}: {query}"
        selector = substitute(m.group(1), {"cluster": ".*", "job": ".*", "instance": ".*"})
        answer = stack.prometheus.api("series", **{"match[]": selector})
        assert answer["status"] == "success", answer
        values = {s.get(m.group(2)) for s in answer["data"]}
        assert expected[name] in values, f"{dashboard}: ${name} = {values}"


@ON_LAB
@pytest.mark.parametrize("rule", RULES, ids=[f"{r.file}/{r.name}" for r in RULES])
def test_rule_expression_is_valid(stack: Stack, rule: Rule) -> None:
    stack.prometheus.query(rule.expr)  # asserts that Prometheus accepts it


@ON_LAB
def test_rules_evaluate_without_errors(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["data"]["groups"]
    seen = set()
    for group in groups:
        for r in group["rules"]:
            seen.add(r["name"])
            assert r["health"] == "ok", f"{r['name']}: {r.get('lastError')}"
            assert not r["lastEvaluation"].startswith("0001-"), f"{r['name']} never ran"
    assert seen == {r.name for r in RULES}
    # the thresholds exist for the exporter's target
    for r in RULES:
        if r.name in ACCOUNTING_ONLY_THRESHOLDS and not ACCOUNTING:
            continue  # per partition where jobs started: needs the accounting endpoint
        if r.name.startswith("slurm:alert_threshold:"):
            assert stack.prometheus.query(f'{r.name}{{instance="{stack.instance}"}}'), r.name


@ON_LAB
def test_healthy_lab_raises_no_alert(stack: Stack) -> None:
    states = set(stack.lab.slurm("sinfo", "-h", "-N", "-n", "node1", "-o", "%T").split())
    assert states <= {"idle", "mixed", "allocated"}, f"the lab is not healthy: {states}"
    alerts = stack.prometheus.api("alerts")["data"]["alerts"]
    # but for the spare nodes (slurmlab.sh --spare-nodes), out on purpose so that the nodes
    # out panels have data: 2 of 3 nodes, above SlurmNodesUnavailableRatioHigh's 10 %, whose
    # `for` (15m) outlasts these tests; their reasons are too young for SlurmNodesOutLong
    spare = [a for a in alerts if a["labels"]["alertname"] == "SlurmNodesUnavailableRatioHigh"
             and a["state"] == "pending"]
    assert [a for a in alerts if a not in spare] == [], json.dumps(alerts, indent=1)
    stack.assert_same_lab()


@ON_LAB
def test_no_panel_or_rule_reads_slurms_own_metrics(stack: Stack) -> None:
    """Prometheus scrapes both the exporter and slurmctld's own metrics: not one metric name
    that a panel or a rule reads has a series from slurmctld's pages."""
    if not stack.native:
        pytest.skip(f"Slurm {stack.lab.release} has no metrics/openmetrics (25.11+)")
    for page in NATIVE_PAGES:
        assert stack.prometheus.value(f'up{{job="{NATIVE_JOB}",page="{page}"}}') == 1, page
    # the names that collided before the renames are there, from slurmctld alone
    for name in ("slurm_jobs", "slurm_nodes", "slurm_partition_cpus", "slurm_user_jobs"):
        jobs = {s["metric"]["job"] for s in stack.prometheus.query(name)}
        assert jobs == {NATIVE_JOB}, (name, jobs)
    # rules: their expressions and the queries of their annotations
    texts = [q.expr for q in PANEL_QUERIES] + [json.dumps(dict(r.body)) for r in RULES]
    # metric names, not the middle of a recorded one (job_instance:slurm_jobs_failed:ratio)
    read = set(re.findall(r"(?<![:\w])slurm_[a-z0-9_]+(?![:\w])", "\n".join(texts)))
    assert "slurm_jobs_by_state" in read
    for name in sorted(read):
        native = stack.prometheus.query(f'{{__name__="{name}",job="{NATIVE_JOB}"}}')
        assert native == [], f"{name} is also one of slurmctld's own metrics"
