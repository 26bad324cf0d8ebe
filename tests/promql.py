"""What the dashboards and the alert rules query: their PromQL, and the metric names in it.

Shared by tests/unit/test_alerts.py (names, structure, promtool) and
tests/integration/test_dashboards.py (every query run by a real Prometheus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TOP = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((TOP / "dashboards").glob("*.json"))
ALERTS = TOP / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yml"))  # thresholds, exporter, cluster
RULE_TESTS = sorted((ALERTS / "tests").glob("*.test.yml"))
RUNBOOK = ALERTS / "RUNBOOK.md"

# Series that Prometheus itself adds for every target.
PROMETHEUS_NAMES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Grafana's variables, as a test would set them: the selection, and the time ranges.
GRAFANA_RANGES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # file name without .json
    panel: str  # panel title
    ref: str  # refId
    expr: str
    description: str
    instant: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref}"


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    name: str  # alert or record name
    kind: str  # "alert" or "record"
    expr: str
    body: Mapping[str, Any]


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data, including those inside (collapsed) rows."""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def rows(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield p


def panel_queries() -> list[PanelQuery]:
    out: list[PanelQuery] = []
    for path in DASHBOARDS:
        for p in panels(load_dashboard(path)):
            for t in p.get("targets", []):
                out.append(
                    PanelQuery(
                        path.stem,
                        p["title"],
                        t["refId"],
                        t["expr"],
                        p.get("description", ""),
                        bool(t.get("instant")),
                    )
                )
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, query) of every query variable."""
    out = []
    for path in DASHBOARDS:
        for v in load_dashboard(path)["templating"]["list"]:
            if v["type"] == "query":
                q = v["query"]
                out.append((path.stem, v["name"], q["query"] if isinstance(q, dict) else q))
    return out


def rules(paths: list[Path] | None = None) -> list[Rule]:
    out = []
    for path in paths or RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for r in group["rules"]:
                kind = "alert" if "alert" in r else "record"
                out.append(Rule(path.name, group["name"], r[kind], kind, str(r["expr"]), r))
    return out


def alerts() -> list[Rule]:
    return [r for r in rules() if r.kind == "alert"]


def exporter_names() -> set[str]:
    """Every metric name the exporter produces (every optional family switched on)."""
    from tests.metrics_doc import all_families

    names = set()
    for _, fam in all_families():
        names |= series_names(fam.name, fam.type)
    return names


def series_names(family: str, kind: str) -> set[str]:
    """The names of the series a family of this type is exposed as."""
    if kind == "counter":
        return {family + "_total"}
    if kind == "info":
        return {family + "_info"}
    if kind == "histogram":
        return {family + "_bucket", family + "_count", family + "_sum"}
    return {family}


# Issue 12's accounting (/slurmdb/jobs) and slurmdbd (/slurmdb/diag) families, exactly as
# the issue's shared spec names them: the accounting dashboard and alerts select them. They
# are built on other branches; until the exporter has its "accounting" and "slurmdbd"
# endpoints they count as known, and from then on tests/unit/test_alerts.py checks that the
# exporter produces every one (then this list can go).
ISSUE_12_FAMILIES: dict[str, str] = {
    "slurm_accounting_job_queue_wait_seconds": "histogram",
    "slurm_accounting_jobs_ended": "counter",
    "slurm_accounting_job_run_seconds": "histogram",
    "slurm_accounting_cpu_seconds": "counter",
    "slurm_accounting_gpu_seconds": "counter",
    "slurm_accounting_memory_byte_seconds": "counter",
    "slurm_accounting_window_end_timestamp_seconds": "gauge",
    "slurm_accounting_window_start_timestamp_seconds": "gauge",
    "slurm_slurmdbd_rollup_runs": "counter",
    "slurm_slurmdbd_rollup_duration_seconds": "counter",
    "slurm_slurmdbd_rollup_last_duration_seconds": "gauge",
    "slurm_slurmdbd_rollup_max_duration_seconds": "gauge",
    "slurm_slurmdbd_rollup_last_run_timestamp_seconds": "gauge",
    "slurm_slurmdbd_rpcs": "counter",
    "slurm_slurmdbd_rpc_duration_seconds": "counter",
    "slurm_slurmdbd_user_rpcs": "counter",
    "slurm_slurmdbd_user_rpc_duration_seconds": "counter",
    "slurm_slurmdbd_stats_start_timestamp_seconds": "gauge",
}


def issue_12_names() -> set[str]:
    return set().union(*(series_names(f, k) for f, k in ISSUE_12_FAMILIES.items()))


def known_names() -> set[str]:
    """What a query may select: the exporter's names, our recording rules, Prometheus' own
    (and issue 12's, until the exporter has them)."""
    recorded = {r.name for r in rules() if r.kind == "record"}
    return exporter_names() | recorded | PROMETHEUS_NAMES | issue_12_names()


# --------------------------------------------------------------------------- PromQL names
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_MODIFIER = re.compile(r"\b(?:offset|@)\s*-?[\w.$]+")
_IDENT = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
        "group_right", "bool", "offset", "inf", "nan", "start", "end",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions and labels left out).

    A small scanner, not a parser: strings, label matchers, ranges and grouping clauses
    are dropped, and every identifier left that is not a keyword or a function call is a
    metric name. `{__name__="x"}` selectors count as x.
    """
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    while True:
        stripped = _GROUPING.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = _MODIFIER.sub(" ", text)
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end() :].lstrip()
        if word.lower() in _KEYWORDS or rest.startswith("("):
            continue
        names.add(word)
    return names


def variable_metric_names(query: str) -> set[str]:
    """Names in a Grafana variable query: label_values(selector, label) or plain PromQL."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
    return metric_names(m.group(1) if m else query)


_PRINTF = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"')


def template_queries(text: str) -> list[str]:
    """The PromQL that an alert annotation's template runs (`printf "..." ... | query`)."""
    out = []
    for fmt in _PRINTF.findall(text):
        q = fmt.replace('\\"', '"').replace("%q", '"x"')
        out.append(q)
    return out


def substitute(expr: str, selection: Mapping[str, str]) -> str:
    """A panel's query as Grafana would send it: variables replaced by values."""
    values = {**GRAFANA_RANGES, **selection}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|\{[^{}]*\}|\[[^\[\]]*\]'
    r"|(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*|\S"
)


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, "{label matchers}" or "") of every selector in expr."""
    names = metric_names(expr)
    tokens = [m.group(0) for m in _TOKEN.finditer(expr)]
    out = []
    for i, tok in enumerate(tokens):
        if tok in names:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            out.append((tok, nxt if nxt.startswith("{") else ""))
    return out


def references() -> list[tuple[str, str]]:
    """(where, PromQL) of everything the dashboards and rules query."""
    out = [(f"dashboard {q.id}", q.expr) for q in panel_queries()]
    out += [(f"dashboard {d} variable ${v}", q) for d, v, q in variable_queries()]
    for r in rules():
        out.append((f"{r.file} {r.name}", r.expr))
        for key, text in (r.body.get("annotations") or {}).items():
            out += [(f"{r.file} {r.name} annotation {key}", q) for q in template_queries(text)]
    return out


def unknown_names(refs: list[tuple[str, str]], known: set[str]) -> list[tuple[str, str]]:
    """(where, name) of every metric name in refs that is not in known."""
    out = []
    for where, expr in refs:
        names = variable_metric_names(expr) if "label_values(" in expr else metric_names(expr)
        out += [(where, n) for n in sorted(names - known)]
    return out
