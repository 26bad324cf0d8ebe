"""Reservations and licenses (issue 11): recorded answers of every API version that has
them, exact values, the join of /reservations with the same cycle's /nodes, golden
expositions.

Golden files: tests/golden/reservations.prom and licenses.prom; regenerate them with
`UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_reservations_licenses.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import respx

from exporter.api.model import License, Node, Reservation
from exporter.api.resvlic import expand_hostlist
from exporter.api.versions import adapter_for
from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.collectors.licenses import collect_licenses
from exporter.collectors.reservations import collect_reservations
from exporter.cycle import Collection
from exporter.settings import load_settings
from tests.unit.test_collectors import _promtool, family, render
from tests.unit.test_cycle import (
    URL,
    make_collection,
    mock,  # noqa: F401 (a fixture)
    samples,
    serve_release,
    value,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"

# (release folder, version) of every recorded answer
RESERVATIONS = [
    ("22.05", "v0.0.37"), ("22.05", "v0.0.38"),
    ("24.11", "v0.0.40"), ("24.11", "v0.0.41"), ("24.11", "v0.0.42"),
    ("26.05", "v0.0.42"), ("26.05", "v0.0.43"), ("26.05", "v0.0.44"), ("26.05", "v0.0.45"),
]
LICENSES = [rv for rv in RESERVATIONS if rv[1] != "v0.0.37"]


def _body(release: str, version: str, endpoint: str) -> bytes:
    return (FIXTURES / f"slurm-{release}" / f"{version}_{endpoint}.json").read_bytes()


# ------------------------------------------------------------------------ adapters
@pytest.mark.parametrize(("release", "version"), RESERVATIONS)
def test_reservations_of_every_version(release: str, version: str) -> None:
    resp = adapter_for(version).parse_reservations(_body(release, version, "reservations"))
    by_name = {r.name: r for r in resp.data}
    maint, alice = by_name["maint_window"], by_name["alice_resv"]
    # scontrol create reservation ... starttime=now+1day duration=120 nodes=node1
    # flags=maint,ignore_jobs
    assert maint.end_time is not None and maint.end_time - maint.start_time == 120 * 60
    assert maint.flags == ("MAINT", "IGNORE_JOBS", "SPEC_NODES")
    assert (maint.nodes, maint.node_count, maint.core_count, maint.partition) == (
        ("node1",), 1, 2, "")
    assert alice.end_time is not None and alice.end_time - alice.start_time == 60 * 60
    assert alice.flags == ("IGNORE_JOBS", "SPEC_NODES")
    assert alice.start_time - maint.start_time == 86400  # now+2days against now+1day


@pytest.mark.parametrize(("release", "version"), LICENSES)
def test_licenses_of_every_version(release: str, version: str) -> None:
    resp = adapter_for(version).parse_licenses(_body(release, version, "licenses"))
    # slurm.conf Licenses=matlab:5,fluent:2; one running job holds -L matlab:2
    by_name = {x.name: x for x in resp.data}
    assert by_name["matlab"] == License(
        "matlab", 5, 2, 3, 0, False,
        *(((0, 0, None)) if version >= "v0.0.40" else (None, None, None)),
    )
    assert (by_name["fluent"].total, by_name["fluent"].used, by_name["fluent"].free) == (2, 0, 2)


def test_22_05_serves_reservations_from_v0_0_37_and_licenses_from_v0_0_38() -> None:
    served = {v: (adapter_for(v).serves("reservations"), adapter_for(v).serves("licenses"))
              for v in ("v0.0.36", "v0.0.37", "v0.0.38", "v0.0.40", "v0.0.45")}
    assert served == {"v0.0.36": (False, False), "v0.0.37": (True, False),
                      "v0.0.38": (True, True), "v0.0.40": (True, True),
                      "v0.0.45": (True, True)}


def test_host_lists_expand_as_slurm_does() -> None:
    assert expand_hostlist("node[1-3,5],gpu01") == ("node1", "node2", "node3", "node5", "gpu01")
    assert expand_hostlist("n[08-10]") == ("n08", "n09", "n10")
    assert expand_hostlist("r[1-2]n[1-2]") == ("r1n1", "r1n2", "r2n1", "r2n2")
    assert expand_hostlist("") == ()


# ---------------------------------------------------------------------- collectors
def _node(name: str, state: str, flags: tuple[str, ...], alloc: int) -> Node:
    return Node(name, state, flags, ("debug",), 4, alloc, 0, 0, None, None)


NODES = [
    _node("n1", "allocated", ("ALLOCATED",), 4),
    _node("n2", "mixed", ("MIXED",), 1),
    _node("n3", "idle", ("IDLE",), 0),
    _node("n4", "draining", ("MIXED", "DRAIN"), 2),
    _node("n5", "drained", ("IDLE", "DRAIN"), 0),
    _node("n6", "down", ("DOWN",), 0),
    _node("n7", "fail", ("IDLE", "FAIL"), 0),
]
RESERVATIONS_NOW = [
    Reservation("maint", 2000.0, 9200.0, 4, 16, expand_hostlist("n[1-4]"),
                ("MAINT", "IGNORE_JOBS"), "debug"),
    Reservation("later_maint", 5000.0, 6000.0, 1, 4, ("n3",), ("MAINT",), ""),
    Reservation("running", 100.0, None, 4, 16, expand_hostlist("n[4-7],gone"),
                ("FLEX", "MAGNETIC"), ""),
    Reservation("not_maint", 50.0, 60.0, 1, 4, ("n3",), ("NO_MAINT",), ""),
]
NOW = 1000.0  # maint and later_maint to come, running and not_maint started


def _values(families: list, name: str) -> dict[str, float]:  # type: ignore[type-arg]
    return {s.labels.get("reservation", s.labels.get("license", "")): s.value
            for s in family(families, name).samples}


def test_reservation_nodes_busy_down_drained_from_the_node_states() -> None:
    fams = collect_reservations(RESERVATIONS_NOW, NODES, NOW)
    # maint n1-n4: allocated, mixed, draining busy; n4 drained too
    # running n4-n7 (+ a node /nodes does not list): n4 busy and drained, n5 drained,
    # n6 (DOWN) and n7 (FAIL) down
    assert _values(fams, "slurm_reservation_nodes_busy") == {
        "maint": 3, "later_maint": 0, "running": 1, "not_maint": 0}
    assert _values(fams, "slurm_reservation_nodes_down") == {
        "maint": 0, "later_maint": 0, "running": 2, "not_maint": 0}
    assert _values(fams, "slurm_reservation_nodes_drained") == {
        "maint": 1, "later_maint": 0, "running": 2, "not_maint": 0}


def test_a_drained_down_node_is_drained_not_down_as_sinfo_prints_it() -> None:
    # DOWN+DRAIN(+NOT_RESPONDING) is "drained*" in sinfo: DRAIN is tested before DOWN and
    # FAIL in node_state_string (src/common/slurm_protocol_defs.c:3446, slurm-24-11-5-1)
    nodes = [_node("s1", "drained", ("DOWN", "DRAIN", "NOT_RESPONDING"), 0),
             _node("s2", "drained", ("IDLE", "FAIL", "DRAIN"), 0)]
    spares = [Reservation("spares", 100.0, None, 2, 8, ("s1", "s2"), ("MAINT",), "")]
    fams = collect_reservations(spares, nodes, NOW)
    assert _values(fams, "slurm_reservation_nodes_down") == {"spares": 0}
    assert _values(fams, "slurm_reservation_nodes_drained") == {"spares": 2}


def _next_maint(reservations: list[Reservation], now: float) -> list[float]:
    fams = collect_reservations(reservations, NODES, now)
    nxt = family(fams, "slurm_reservation_maint_next_start_timestamp_seconds")
    return [s.value for s in nxt.samples]


def test_next_maintenance_is_the_earliest_maint_start_to_come() -> None:
    assert _next_maint(RESERVATIONS_NOW, 1000.0) == [2000.0]
    # maint (2000-9200) under way: the next one is later_maint, not maint's past start
    assert _next_maint(RESERVATIONS_NOW, 2000.0) == [5000.0]
    # both started: none to come, however long maint lasts
    assert _next_maint(RESERVATIONS_NOW, 5000.0) == []
    # NO_MAINT is not MAINT
    assert _next_maint(RESERVATIONS_NOW[2:], 0.0) == []


def test_reservation_node_states_left_out_without_nodes() -> None:
    names = {f.name for f in collect_reservations(RESERVATIONS_NOW, None, NOW)}
    assert "slurm_reservation_start_timestamp_seconds" in names
    assert not {n for n in names if n.startswith("slurm_reservation_nodes_b")}


def test_remote_fields_only_for_remote_licenses() -> None:
    fams = collect_licenses([
        License("matlab", 5, 2, 3, 0, False, 0, 0, None),
        License("ansys", 10, 4, 5, 1, True, 7, 2, 1795600000.0),
    ])
    assert _values(fams, "slurm_license_free") == {"matlab": 3, "ansys": 5}
    assert _values(fams, "slurm_license_remote") == {"matlab": 0, "ansys": 1}
    assert _values(fams, "slurm_license_last_deficit") == {"ansys": 2}
    assert _values(fams, "slurm_license_last_update_timestamp_seconds") == {
        "ansys": 1795600000.0}


GOLDEN_CASES = {
    "reservations": lambda: collect_reservations(RESERVATIONS_NOW, NODES, NOW),
    "licenses": lambda: collect_licenses([
        License("matlab", 5, 2, 3, 0, False, 0, 0, None),
        License("ansys", 10, 4, 5, 1, True, 7, 2, 1795600000.0),
    ]),
}


@pytest.mark.parametrize("collector", sorted(GOLDEN_CASES))
def test_golden_exposition(collector: str) -> None:
    text = render(GOLDEN_CASES[collector]())
    path = GOLDEN / f"{collector}.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    _promtool(text)


# --------------------------------------------------------------------------- cycle
def test_the_cycle_joins_reservations_with_the_same_cycles_nodes(
    mock: respx.MockRouter, key_file: Path  # noqa: F811
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    collection = make_collection(key_file)
    snap = collection.run_once()
    assert snap.all_up, snap.failures
    # node1 runs the lab's jobs: busy in both reservations
    assert value(snap, "slurm_reservation_nodes_busy", reservation="maint_window") == 1
    assert value(snap, "slurm_license_used", license="matlab", nodes="") == 2
    # /nodes fails: the reservations keep the last good node states, not none
    routes["nodes"].respond(500, content=b"{}")
    snap = collection.run_once()
    assert value(snap, "slurm_reservation_nodes_busy", reservation="alice_resv") == 1


def test_an_endpoint_the_version_lacks_is_neither_called_nor_down(
    mock: respx.MockRouter, key_file: Path  # noqa: F811
) -> None:
    folder = FIXTURES / "slurm-22.05"
    calls = []
    for e in ("diag", "jobs", "nodes", "partitions", "ping"):
        calls.append(mock.get(f"{URL}/slurm/v0.0.36/{e}").respond(
            200, content=(folder / f"v0.0.36_{e}.json").read_bytes()))
    lacking = mock.get(url__regex=r".*/(reservations|licenses)$").respond(404)
    snap = make_collection(key_file, "--api-version", "v0.0.36").run_once()
    assert snap.all_up, snap.failures
    assert not lacking.called
    up = {dict(k[1]).get("endpoint") for k in samples(snap) if k[0] == "slurm_exporter_endpoint_up"}
    assert up == {"diag", "jobs", "nodes", "partitions", "ping"}


# ------------------------------------------- recorded with Slurm's own answer beside them
# tests/fixtures/slurm-R-gpus: recorded from the lab of tests/integration (the job mix, and
# the current licenses-only reservation lic_now and the remote license ansys@flexhost that
# tests/integration/test_reservations_licenses.py adds), with `scontrol -o show
# reservation` / `show license` (SLURM_TIME_FORMAT=%s) at the same moment.
def _recorded(endpoint: str) -> list[tuple[str, str]]:
    """(folder, version) of every recorded answer of the endpoint, with Slurm's beside it."""
    return sorted(
        (p.parent.name, p.name.split("_")[0])
        for p in FIXTURES.glob(f"slurm-*-gpus/v0.0.*_{endpoint}.json")
    )


def _scontrol_records(folder: str, what: str, key: str) -> dict[str, dict[str, str]]:
    text = (FIXTURES / folder / f"ground_truth_{what}.txt").read_text()
    out = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        out[fields[key]] = fields
    return out


@pytest.mark.parametrize(("folder", "version"), _recorded("reservations"))
def test_recorded_reservations_equal_scontrol(folder: str, version: str) -> None:
    assert len(_recorded("reservations")) == 9  # 22.05: v0.0.37-38, 24.11: 40-42, 26.05: 42-45
    body = (FIXTURES / folder / f"{version}_reservations.json").read_bytes()
    got = {r.name: r for r in adapter_for(version).parse_reservations(body).data}
    truth = _scontrol_records(folder, "reservations", "ReservationName")
    assert set(got) == set(truth) and "lic_now" in got
    for name, r in truth.items():
        resv = got[name]
        assert ",".join(resv.flags) == r["Flags"], name
        assert (resv.start_time, resv.end_time) == (int(r["StartTime"]), int(r["EndTime"]))
        assert (resv.node_count, resv.core_count) == (int(r["NodeCnt"]), int(r["CoreCnt"]))
        assert ",".join(resv.nodes) == ("" if r["Nodes"] == "(null)" else r["Nodes"])


@pytest.mark.parametrize(("folder", "version"), _recorded("licenses"))
def test_recorded_licenses_equal_scontrol(folder: str, version: str) -> None:
    body = (FIXTURES / folder / f"{version}_licenses.json").read_bytes()
    fams = collect_licenses(adapter_for(version).parse_licenses(body).data)
    truth = _scontrol_records(folder, "licenses", "LicenseName")
    assert "ansys@flexhost" in truth
    fields = {"configured": "Total", "used": "Used", "free": "Free", "reserved": "Reserved",
              "last_consumed": "LastConsumed", "last_deficit": "LastDeficit",
              "last_update_timestamp_seconds": "LastUpdate"}
    for suffix, key in fields.items():
        want = {n: float(r[key]) for n, r in truth.items() if key in r}
        assert _values(fams, f"slurm_license_{suffix}") == want, suffix
    assert _values(fams, "slurm_license_remote") == {
        n: float(r["Remote"] == "yes") for n, r in truth.items()}


def test_an_endpoint_the_new_version_lacks_leaves_no_old_series(
    mock: respx.MockRouter, key_file: Path  # noqa: F811
) -> None:
    """After a version change (discovered again after a 404) to one without /licenses, the
    last licenses of the old version are not served on as if current."""
    serve_release(mock, "22.05", "v0.0.38")
    collection = make_collection(key_file)
    assert "slurm_license_used" in collection.run_once().exposition.decode()
    folder = FIXTURES / "slurm-22.05"
    for e in ("diag", "jobs", "nodes", "partitions", "ping", "reservations"):
        mock.get(f"{URL}/slurm/v0.0.37/{e}").respond(
            200, content=(folder / f"v0.0.37_{e}.json").read_bytes())
    collection._adapter = adapter_for("v0.0.37")  # as discovery would pick it
    snap = collection.run_once()
    assert snap.all_up, snap.failures
    assert "slurm_license_" not in snap.exposition.decode()
    assert "slurm_reservation_info" in snap.exposition.decode()


# ------------------------------------------------------------------------ dashboard
DASHBOARD = Path(__file__).resolve().parent.parent.parent / "dashboards" / (
    "slurm-reservations-licenses.json")
_SERIES = 'job="slurm",instance="h:9341"'


def _panel_value(title: str, series: dict[str, str], at_minutes: int) -> str:
    """What the panel's query gives at `at_minutes` (promtool evaluates it), e.g.
    `{license="x"} 0.5`; `series` are promtool input series (name{labels}: values)."""
    from tests.promql import load_dashboard, panels, substitute
    from tests.unit.test_alerts import _promtool

    panel = next(p for p in panels(load_dashboard(DASHBOARD)) if p["title"] == title)
    expr = substitute(panel["targets"][0]["expr"], {"job": "slurm", "instance": "h:9341"})
    lines = ["evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    lines += [f"      - series: '{s}'\n        values: '{v}'" for s, v in series.items()]
    lines += ["    promql_expr_test:", f"      - expr: '{expr}'",
              f"        eval_time: {at_minutes}m", "        exp_samples: []"]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"panel-{os.getpid()}.test.yml"
    tmp.write_text("\n".join(lines) + "\n")
    try:
        run = _promtool("test", "rules", str(tmp))
    finally:
        tmp.unlink()
    got = (run.stdout + run.stderr).partition("got:")[2]
    got = re.sub(r'[{},]|(__name__|job|instance)="[^"]*"', " ", got)
    return " ".join(got.split()).replace("E+00", "")


def test_license_use_panel_counts_reserved_as_taken() -> None:
    # 4 licenses, 2 used, 2 held by a reservation: none left for other jobs
    got = _panel_value("License use now", {
        f"slurm_license_used{{{_SERIES},license=\"comsol\"}}": "2x5",
        f"slurm_license_reserved{{{_SERIES},license=\"comsol\"}}": "2x5",
        f"slurm_license_configured{{{_SERIES},license=\"comsol\"}}": "4x5",
    }, 1)
    assert got == 'license="comsol" 1', got


def test_reservations_now_panel_leaves_out_those_past_their_end() -> None:
    # at 10m (600 s): "ended" is still listed (its jobs run on, reservation.c:7365-7381),
    # "now" is under way, "open" has no EndTime, "later" has not started
    series = {}
    for name, start, end in (("ended", 0, 300), ("now", 0, 900), ("open", 0, None),
                             ("later", 700, 900)):
        sel = f'{_SERIES},reservation="{name}"'
        series[f"slurm_reservation_start_timestamp_seconds{{{sel}}}"] = f"{start}x20"
        if end is not None:
            series[f"slurm_reservation_end_timestamp_seconds{{{sel}}}"] = f"{end}x20"
    assert _panel_value("Reservations now", series, 10) == "2"


def test_the_cycle_gives_the_next_maintenance_by_its_clock(
    mock: respx.MockRouter, key_file: Path  # noqa: F811
) -> None:
    serve_release(mock, "26.05", "v0.0.45")
    settings = load_settings(["--slurmrestd-url", URL, "--jwt-key-file", str(key_file),
                              "--jwt-user", "exporter"])
    tokens = MintedToken(key_file, "exporter", 1800)
    start = 1795695135.0  # maint_window's StartTime, the only MAINT reservation
    nxt = "slurm_reservation_maint_next_start_timestamp_seconds"
    for now, want in ((start - 1, [start]), (start, [])):
        collection = Collection(settings, SlurmrestdClient(settings, tokens), tokens,
                                clock=lambda now=now: now)
        snap = collection.run_once()
        assert [v for k, v in samples(snap).items() if k[0] == nxt] == want, now
        collection.close()


def test_node_states_of_a_failing_nodes_are_its_last_good_until_too_old(
    mock: respx.MockRouter, key_file: Path  # noqa: F811
) -> None:
    """While /nodes fails the counts come from its last good answer (and the HELP says
    so), until --stale-data-max-age drops it: then they are left out."""
    routes = serve_release(mock, "26.05", "v0.0.45")
    settings = load_settings(["--slurmrestd-url", URL, "--jwt-key-file", str(key_file),
                              "--jwt-user", "exporter", "--stale-data-max-age", "60"])
    tokens = MintedToken(key_file, "exporter", 1800)
    now = [1795600000.0]
    collection = Collection(settings, SlurmrestdClient(settings, tokens), tokens,
                            clock=lambda: now[0])
    busy = "slurm_reservation_nodes_busy"
    assert value(collection.run_once(), busy, reservation="alice_resv") == 1
    routes["nodes"].respond(500, content=b"{}")
    now[0] += 30
    snap = collection.run_once()
    assert value(snap, busy, reservation="alice_resv") == 1
    helps = [line for line in snap.exposition.decode().splitlines()
             if re.match(r"# HELP slurm_reservation_nodes_(busy|down|drained) ", line)]
    assert len(helps) == 3
    for line in helps:
        assert "same cycle" not in line and "last good" in line and "stale" in line, line
    now[0] += 60
    assert busy not in collection.run_once().exposition.decode()
    collection.close()


def test_hierarchical_licenses_sharing_a_name_stay_apart_and_infinite_is_inf() -> None:
    """25.11+: a hierarchical resource is several licenses with one LicenseName, told apart
    by Nodes (scontrol prints each: src/scontrol/info_lics.c:152-165 at slurm-25-11-0-1);
    a Total of INFINITE (Free INFINITE too: slurm_protocol_pack.c
    _unpack_license_info_msg) comes as 4294967295 (data_parser v0.0.44 DUMP_FUNC(UINT32))."""
    import json
    import math

    body = json.loads(_body("26.05", "v0.0.45", "licenses"))
    layer = {"LicenseName": "bw", "Used": 1, "Remote": False, "Reserved": 0,
             "LastConsumed": 0, "LastDeficit": 0, "LastUpdate": 0}
    body["licenses"] += [
        {**layer, "Total": 4294967295, "Free": 4294967295, "Nodes": "n[1-4]"},
        {**layer, "Total": 2, "Free": 1, "Nodes": "n[1-2]"},
        {**layer, "Total": 3, "Free": 2, "Nodes": "n[3-4]"},
    ]
    data = adapter_for("v0.0.45").parse_licenses(json.dumps(body).encode()).data
    fams = collect_licenses(data)

    def by_nodes(name: str) -> dict[tuple[str, str], float]:
        return {(s.labels["license"], s.labels["nodes"]): s.value
                for s in family(fams, name).samples}

    assert by_nodes("slurm_license_configured") == {
        ("matlab", ""): 5, ("fluent", ""): 2,
        ("bw", "n[1-4]"): math.inf, ("bw", "n[1-2]"): 2, ("bw", "n[3-4]"): 3}
    assert by_nodes("slurm_license_free")[("bw", "n[1-4]")] == math.inf
    assert by_nodes("slurm_license_used")[("bw", "n[3-4]")] == 1


def test_reservation_flags_in_scontrols_order() -> None:
    """slurmrestd v0.0.40+ lists flags in its parser's order (WEEKLY before IGNORE_JOBS);
    scontrol in reservation_flags_string()'s; flags scontrol never prints last."""
    import json

    body = json.loads(_body("26.05", "v0.0.45", "reservations"))
    body["reservations"][0]["flags"] = ["MAINT", "WEEKLY", "IGNORE_JOBS", "SKIP",
                                        "SPEC_NODES", "FLEX", "USER_DELETE"]
    data = adapter_for("v0.0.45").parse_reservations(json.dumps(body).encode()).data
    assert data[0].flags == ("MAINT", "FLEX", "IGNORE_JOBS", "WEEKLY", "SPEC_NODES",
                             "USER_DELETE", "SKIP")
