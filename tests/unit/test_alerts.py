"""Alert rules and dashboards: promtool, completeness, and only metric names that exist.

A dashboard or rule that names a metric the exporter does not produce fails here, so a
renamed metric cannot silently blank a panel or disarm an alert. The queries themselves are
run against real data in tests/integration/test_dashboards.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promql import (
    ALERTS,
    DASHBOARDS,
    RULE_FILES,
    RULE_TESTS,
    RUNBOOK,
    alerts,
    known_names,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    references,
    rules,
    selectors,
    unknown_names,
)

SITE_THRESHOLDS = ALERTS / "tests" / "site-thresholds.yml"
THRESHOLD = "slurm:alert_threshold:"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool not installed (scripts/ci-setup.sh installs it)")
    return subprocess.run(
        [promtool, *args], cwd=ALERTS.parent, capture_output=True, text=True, check=False
    )


# ----------------------------------------------------------------------------- promtool
def test_promtool_check_rules() -> None:
    files = [str(p.relative_to(ALERTS.parent)) for p in [*RULE_FILES, SITE_THRESHOLDS]]
    r = _promtool("check", "rules", *files)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules() -> None:
    r = _promtool("test", "rules", *(str(p.relative_to(ALERTS.parent)) for p in RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------- names
def test_every_queried_metric_is_produced() -> None:
    """Dashboards, rules and alert templates select only names the exporter produces,
    our recording rules, or Prometheus' own per-target series."""
    refs = references()
    assert len(refs) > 100
    unknown = unknown_names(refs, known_names())
    assert not unknown, "\n".join(f"{where}: {name}" for where, name in unknown)


def test_an_unknown_name_is_caught() -> None:
    """The check above really fails: rename one metric in real queries and rules."""
    refs = references()
    renamed = [(w, e.replace("slurm_nodes_by_state{", "slurm_node_count{")) for w, e in refs]
    found = {name for _, name in unknown_names(renamed, known_names())}
    assert found == {"slurm_node_count"}
    typo = [("x", 'sum by (state) (rate(slurm_jobs_totl{job=~"$job"}[$__rate_interval]))')]
    assert unknown_names(typo, known_names()) == [("x", "slurm_jobs_totl")]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (state) (slurm_nodes_by_state{state=~"down|up"})', {"slurm_nodes_by_state"}),
        ("rate(a_total[5m] offset 1h) / on (job) group_left (c) b_info", {"a_total", "b_info"}),
        ('label_replace(x, "account", "(none)", "account", "")', {"x"}),
        ("time() - (last_ts > 0) * 1e3 or vector(0)", {"last_ts"}),
        ('{__name__="named"} and ignoring (a) c:rule:ratio', {"named", "c:rule:ratio"}),
        ("sum without (endpoint, reason) (increase(e_total[$__range])) > bool inf", {"e_total"}),
    ],
)
def test_metric_names_scanner(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# ----------------------------------------------------------------------------- alerts
def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    out = set()
    for heading in re.findall(r"^#+\s+(.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_alert_is_complete() -> None:
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    names = [a.name for a in alerts()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for a in alerts():
        body = a.body
        assert re.fullmatch(r"\d+[smh]", str(body.get("for", ""))), f"{a.name}: for"
        assert body.get("labels", {}).get("severity") in {"warning", "critical"}, a.name
        ann = body.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), a.name
        assert "{{" in ann["description"], f"{a.name}: the description shows no value"
        assert ann.get("runbook_url") == f"alerts/RUNBOOK.md#{a.name.lower()}", a.name
        assert a.name.lower() in anchors, f"{a.name} has no section in alerts/RUNBOOK.md"


def _rule_tests() -> dict[str, list[tuple[str, int, bool]]]:
    """alertname -> [(test name, eval minute, fires)] over alerts/tests/*.test.yml."""
    out: dict[str, list[tuple[str, int, bool]]] = defaultdict(list)
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc.get("evaluation_interval", "1m") == "1m", path
        for i, test in enumerate(doc["tests"]):
            for case in test.get("alert_rule_test", []):
                minutes = int(str(case["eval_time"]).removesuffix("m"))
                name = f"{path.name}#{i}"
                out[case["alertname"]].append((name, minutes, bool(case["exp_alerts"])))
    return out


def test_every_alert_has_promtool_tests() -> None:
    """Fires with exact labels and annotations just after its `for`, not one evaluation
    (1m) before, and not on healthy input."""
    cases = _rule_tests()
    for a in alerts():
        mine = cases.get(a.name, [])
        firing = {(t, m) for t, m, fires in mine if fires}
        quiet = {(t, m) for t, m, fires in mine if not fires}
        assert firing, f"{a.name}: no test where it fires"
        assert any((t, m - 1) in quiet for t, m in firing), (
            f"{a.name}: no test where it is quiet one evaluation before it fires"
        )
        assert len(quiet) >= 2, f"{a.name}: needs a healthy case besides the one before `for`"
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                for exp in case["exp_alerts"]:
                    assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}
                    assert "severity" in exp["exp_labels"]


def test_thresholds_are_used_documented_and_overridable() -> None:
    records = {r.name for r in rules() if r.kind == "record" and r.name.startswith(THRESHOLD)}
    used = set().union(*(metric_names(a.expr) for a in alerts()))
    assert records <= used, f"unused thresholds: {records - used}"
    table = RUNBOOK.read_text(encoding="utf-8").split("## Thresholds", 1)[1]
    for name in records:
        assert f"`{name.removeprefix(THRESHOLD)}`" in table, f"{name} not in the runbook"
    site = {r.name for r in rules([SITE_THRESHOLDS])}
    assert site == records, "alerts/tests/site-thresholds.yml must define every threshold"
    for r in rules([ALERTS / "slurm-thresholds.yml"]):
        # one series per exporter target, whatever the job is called; per target and reason
        # for the nodes out, where the reasons a site marks as planned get none
        per_target = r"group by \(job, instance\) \(slurm_exporter_build_info\) \* [0-9.]+"
        per_reason = (
            r"group by \(job, instance, reason\) \(\s*slurm_node_unavailable_info"
            r"\{reason!~\"[^\"]+\"\}\s*\) \* [0-9.]+\s*"
        )
        assert re.fullmatch(per_target, r.expr) or (
            r.name == THRESHOLD + "node_unavailable_seconds" and re.fullmatch(per_reason, r.expr)
        ), r.expr


def test_only_the_target_alerts_depend_on_the_job_name() -> None:
    for r in rules():
        uses_job = 'job="slurm"' in r.expr
        assert uses_job == (r.name in {"SlurmExporterDown", "SlurmExporterAbsent"}), r.name


# ----------------------------------------------------------------------------- dashboards
def _all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, panel) for p in DASHBOARDS for panel in panels(load_dashboard(p))]


def test_dashboards_with_fixed_uids() -> None:
    uids = {load_dashboard(p)["uid"]: p.stem for p in DASHBOARDS}
    assert uids == {
        "slurm-cluster-overview": "slurm-cluster-overview",
        "slurm-scheduler": "slurm-scheduler",
        "slurm-exporter-health": "slurm-exporter-health",
        "slurm-nodes-out": "slurm-nodes-out",
        "slurm-fairshare": "slurm-fairshare",
        "slurm-reservations-licenses": "slurm-reservations-licenses",
    }
    for p in DASHBOARDS:
        d = load_dashboard(p)
        assert d["schemaVersion"] >= 39, p
        assert d["id"] is None, f"{p}: exported dashboards carry no database id"
        assert "group_left (cluster) slurm_info" in d["description"], "document the join"
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name in ("job", "instance"):
            v = variables[name]
            assert v["multi"] and v["includeAll"] and v["allValue"] == ".*", (p, name)
            assert v["datasource"]["uid"] == "${datasource}"


def test_every_panel_has_datasource_unit_and_description() -> None:
    for dashboard, p in _all_panels():
        where = f"{dashboard}: {p['title']}"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert p["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert len(p.get("description", "")) > 20, f"{where}: no description"
        assert p["targets"], where
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", where
    for p in DASHBOARDS:
        d = load_dashboard(p)
        ids = [x["id"] for x in panels(d)] + [r["id"] for r in d["panels"] if r["type"] == "row"]
        assert len(ids) == len(set(ids)), f"{p}: panel ids repeat"
        titles = [x["title"] for x in panels(d)]
        assert len(titles) == len(set(titles)), f"{p}: panel titles repeat"


# Grafana's time units: they print a value as a duration ("2.3 hours")
_TIME_UNITS = {"s", "ms", "us", "ns", "m", "h", "d", "dtdurations", "dtdurationms", "clocks"}


def test_usage_in_billing_seconds_is_not_shown_as_a_duration() -> None:
    """RawUsage (slurm_*_usage_billing_seconds) is TRES-billing-seconds, billing weight
    times seconds, not a time: a plain number, with the unit said in the title."""
    for dashboard, p in _all_panels():
        if any("_usage_billing_seconds" in t["expr"] for t in p["targets"]):
            where = f"{dashboard}: {p['title']}"
            assert p["fieldConfig"]["defaults"]["unit"] not in _TIME_UNITS, where
            assert "billing-seconds" in p["title"].lower(), where


def test_every_query_selects_job_and_instance() -> None:
    """So that one cluster, several or all can be picked (Prometheus' own series too)."""
    for q in panel_queries():
        sels = selectors(q.expr)
        assert sels, q.id
        for name, matchers in sels:
            assert 'job=~"$job"' in matchers, f"{q.id}: {name}{matchers}"
            assert 'instance=~"$instance"' in matchers, f"{q.id}: {name}{matchers}"


def test_ranges_are_grafana_variables() -> None:
    """rate() and friends over $__rate_interval (or $__range for totals over the range)."""
    for q in panel_queries():
        for rng in re.findall(r"\[([^\]]*)\]", q.expr):
            assert rng in {"$__rate_interval", "$__range"}, f"{q.id}: [{rng}]"
        if re.search(r"\b(rate|irate|increase)\(", q.expr):
            assert "$__rate_interval" in q.expr or "$__range" in q.expr, q.id


def test_no_collection_cycle_alert_matches_what_the_exporter_serves_before_its_first_cycle() -> (
    None
):
    """SlurmExporterNoCollectionCycle looks for build info without a collection timestamp:
    exactly the page the server process serves until a first snapshot comes."""
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.cycle import first_snapshot

    (rule,) = [a for a in alerts() if a.name == "SlurmExporterNoCollectionCycle"]
    assert metric_names(rule.expr) == {
        "slurm_exporter_build_info", "slurm_exporter_collection_timestamp_seconds"
    }
    page = first_snapshot().exposition.decode()
    names = {s.name for f in text_string_to_metric_families(page) for s in f.samples}
    assert names == {"slurm_exporter_build_info"}
