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
    exporter_names,
    issue_12_names,
    known_names,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    references,
    rules,
    selectors,
    substitute,
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
        # per target and partition (where jobs started): a default, after overrides
        group = r"group by \(job, instance, partition\) \(\s*" + _STARTED
        per_partition = rf"({group}\{{partition=~\"[^\"]+\"\}}\s*\) \* [0-9.]+\s*or )*"
        per_partition += group + r"\s*\) \* [0-9.]+\s*"
        special = {"node_unavailable_seconds": per_reason, "queue_wait_p90_seconds": per_partition}
        pattern = special.get(r.name.removeprefix(THRESHOLD), per_target)
        assert re.fullmatch(per_target, r.expr) or re.fullmatch(pattern, r.expr), r.expr


_STARTED = "slurm_accounting_job_queue_wait_seconds_count"


def test_a_site_overrides_the_queue_wait_threshold_per_partition() -> None:
    """The site example changes two partitions' thresholds and keeps the shipped default."""
    name = THRESHOLD + "queue_wait_p90_seconds"
    (site,) = [r for r in rules([SITE_THRESHOLDS]) if r.name == name]
    (shipped,) = [r for r in rules([ALERTS / "slurm-thresholds.yml"]) if r.name == name]
    assert re.findall(r'partition="(\w+)"', site.expr) == ["gpu", "debug"]
    default = re.split(r"\s+or\s+", shipped.expr)[-1].strip()
    assert site.expr.rstrip().endswith(default), (site.expr, default)


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
        "slurm-accounting": "slurm-accounting",
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


def _per_period_panels() -> set[tuple[str, str]]:
    """(dashboard, title) of the panels whose points are whole periods: a fixed minimum
    interval of days ("1d"), so that increase(...[$__interval]) is each day's total."""
    return {
        (path.stem, p["title"])
        for path in DASHBOARDS
        for p in panels(load_dashboard(path))
        if re.fullmatch(r"[1-9]\d*d", p.get("interval", ""))
    }


def test_ranges_are_grafana_variables() -> None:
    """rate() and friends over $__rate_interval (or $__range for totals over the range, or
    $__interval for per-day totals in panels whose points are whole days)."""
    per_period = _per_period_panels()
    for q in panel_queries():
        allowed = {"$__rate_interval", "$__range"}
        if (q.dashboard, q.panel) in per_period:
            allowed = {"$__interval"}
        for rng in re.findall(r"\[([^\]]*)\]", q.expr):
            assert rng in allowed, f"{q.id}: [{rng}]"
        if re.search(r"\b(rate|irate|increase)\(", q.expr):
            assert any(a in q.expr for a in allowed), q.id


def test_issue_12_names_are_what_the_exporter_produces() -> None:
    """The accounting dashboard and alerts use the names of issue 12's spec: once the
    exporter has those endpoints, it must produce every one of them."""
    from exporter.settings import ENDPOINTS

    if not {"accounting", "slurmdbd"} <= set(ENDPOINTS):
        pytest.skip("the accounting and slurmdbd endpoints are not merged yet (issue 12)")
    assert issue_12_names() - exporter_names() == set()


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


# ----------------------------------------------------------------------------- accounting
def _accounting_series() -> list[dict[str, str]]:
    """Three hours of every issue 12 family, shaped as its spec says (labels and units)."""
    t = 'job="slurm",instance="head-a:9341"'
    out = [(f'slurm_exporter_build_info{{{t},version="0"}}', "1x180")]
    for h in ("queue_wait", "run"):
        name = f"slurm_accounting_job_{h}_seconds"
        for le, per_minute in (("60", 1), ("3600", 2), ("+Inf", 3)):
            out.append((f'{name}_bucket{{{t},partition="batch",le="{le}"}}', f"0+{per_minute}x180"))
        out += [(f'{name}_count{{{t},partition="batch"}}', "0+3x180"),
                (f'{name}_sum{{{t},partition="batch"}}', "0+900x180")]
    for state, per_minute in (("completed", 3), ("failed", 1)):
        out.append((f'slurm_accounting_jobs_ended_total{{{t},partition="batch",state="{state}"}}',
                    f"0+{per_minute}x180"))
    out += [
        (f'slurm_accounting_cpu_seconds_total{{{t},account="physics"}}', "0+3600x180"),
        (f'slurm_accounting_gpu_seconds_total{{{t},account="physics",gpu_type="a100"}}',
         "0+60x180"),
        (f'slurm_accounting_memory_byte_seconds_total{{{t},account="physics"}}', "0+1e12x180"),
        (f"slurm_accounting_window_end_timestamp_seconds{{{t}}}", "0+60x180"),
        (f'slurm_slurmdbd_rollup_last_run_timestamp_seconds{{{t},period="hourly"}}', "60x180"),
        (f'slurm_slurmdbd_rpcs_total{{{t},rpc="DBD_GET_JOBS_COND"}}', "0+5x180"),
        (f'slurm_slurmdbd_rpc_duration_seconds_total{{{t},rpc="DBD_GET_JOBS_COND"}}', "0+1x180"),
        (f'slurm_slurmdbd_user_rpcs_total{{{t},user="root"}}', "0+5x180"),
        (f'slurm_slurmdbd_user_rpc_duration_seconds_total{{{t},user="root"}}', "0+1x180"),
    ]
    for gauge in ("last_duration", "max_duration"):
        out.append((f'slurm_slurmdbd_rollup_{gauge}_seconds{{{t},period="hourly"}}', "300x180"))
    for endpoint in ("accounting", "slurmdbd"):
        out += [
            (f'slurm_exporter_endpoint_up{{{t},endpoint="{endpoint}"}}', "1x180"),
            (f'slurm_exporter_endpoint_duration_seconds{{{t},endpoint="{endpoint}"}}', "0.2x180"),
            (f'slurm_exporter_endpoint_errors_total{{{t},endpoint="{endpoint}",reason="timeout"}}',
             "0x180"),
        ]
    return [{"series": s, "values": v} for s, v in out]


def test_accounting_dashboard_queries_return_data_on_spec_shaped_series(tmp_path: Path) -> None:
    """Every query of the accounting dashboard, run by promtool with the alert rules on
    series shaped as issue 12's spec says, returns a number (not nothing, not NaN): a
    label the spec does not give, or a ratio of nothing, would blank a panel. (With the
    collectors merged, tests/integration/test_dashboards.py runs them on the lab's data.)"""
    windows = {"job": ".*", "instance": ".*", "cluster": ".*",
               "__rate_interval": "1h", "__interval": "1h", "__range": "1h"}  # fmt: skip
    queries = [q for q in panel_queries() if q.dashboard == "slurm-accounting"]
    assert len(queries) > 20
    cases = []
    for q in queries:
        expr = substitute(q.expr, windows)
        # empty when expr has a sample that is a number: NaN != NaN
        cases.append({"eval_time": "120m", "expr": f"absent(({expr}) == ({expr}))",
                      "exp_samples": []})  # fmt: skip
    doc = {
        "rule_files": [str(ALERTS / "slurm-thresholds.yml"), str(ALERTS / "slurm-accounting.yml")],
        "evaluation_interval": "1m",
        "group_eval_order": ["slurm-thresholds", "slurm-accounting-recording", "slurm-accounting"],
        "tests": [{"interval": "1m", "input_series": _accounting_series(),
                   "promql_expr_test": cases}],
    }  # fmt: skip
    (tmp_path / "dashboard.test.yml").write_text(yaml.safe_dump(doc))
    r = _promtool("test", "rules", str(tmp_path / "dashboard.test.yml"))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
