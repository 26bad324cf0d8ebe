"""Why nodes are out: the recorded answers of every API version agree with `sinfo -R`.

tests/fixtures/slurm-<release>-nodes-out/ hold /nodes as each API version answered it in
the lab with spare1 drained and spare2 downed by `scontrol update ... reason=...`, and
ground_truth_sinfo_R.txt, `SLURM_TIME_FORMAT=%s sinfo -R -h -N -o '%N|%T|%E|%u|%H'` at the
same moment (see tests/fixtures/nodes-out.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.api.model import Node
from exporter.api.versions import adapter_for
from exporter.collectors.nodes_out import REASON_MAX, collect_unavailable, is_out, reason_label
from exporter.settings import load_settings
from tests.unit.test_collectors import names, node, values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = sorted(FIXTURES.glob("slurm-*-nodes-out/v*_nodes.json"))
_SUFFIX = re.compile(r"[*~#!%$@^\-]+$")

Row = tuple[str, str, str, float | None]  # state, reason, set_by, since


def sinfo_r(folder: Path) -> dict[str, Row]:
    """What sinfo -R printed, per node, with the exporter's documented reason rule."""
    rows: dict[str, Row] = {}
    for line in (folder / "ground_truth_sinfo_R.txt").read_text().splitlines():
        name, state, reason, user, stamp = line.split("|")
        user = "" if user == "Unknown" or user.startswith("Unk(") else user
        since = None if stamp == "Unknown" else float(stamp)
        rows[name] = (_SUFFIX.sub("", state), reason_label(reason), user, since)
    return rows


def exported(nodes: list[Node]) -> dict[str, Row]:
    fams = collect_unavailable(nodes)
    since = values(fams, "slurm_node_unavailable_since_timestamp_seconds")
    return {
        name: (state, reason, set_by, since.get((name,)))
        for name, state, reason, set_by in values(fams, "slurm_node_unavailable_info")
    }


def test_recorded_answers_exist_for_every_release() -> None:
    assert {p.parent.name for p in RECORDED} == {
        "slurm-22.05-nodes-out", "slurm-24.11-nodes-out", "slurm-26.05-nodes-out"
    }


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_api_version_agrees_with_sinfo_R(path: Path) -> None:
    version = path.name.split("_")[0]
    nodes = list(adapter_for(version).parse_nodes(path.read_bytes()).data)
    expected = sinfo_r(path.parent)
    assert len(expected) == 2 and all(row[3] for row in expected.values())
    if version == "v0.0.36":
        # v0.0.36 sends the base state only (src/plugins/openapi/v0.0.36/nodes.c:125 in
        # slurm-22-05-11-1, _get_long_node_state(state & NODE_STATE_BASE)): the drained
        # spare1 (base DOWN) is "down" there; reason, user and time still agree
        assert expected["spare1"][0] == "drained"
        expected["spare1"] = ("down", *expected["spare1"][1:])
    assert exported(nodes) == expected
    counts = values(collect_unavailable(nodes), "slurm_nodes_unavailable")
    assert sum(counts.values()) == len(expected)


def test_reason_label_rule() -> None:
    assert reason_label("NHC: check_fs_mount: /scratch not mounted") == (
        "NHC: check_fs_mount: /scratch not mounted"
    )
    assert reason_label("") == "none"
    assert reason_label(" \t\n") == "none"
    assert reason_label("a\tb\r\n\x00\x1b[31mc\x7f\x85d  e ") == "a b [31mc d e"
    long = "x" * 500
    assert reason_label(long) == "x" * (REASON_MAX - 1) + "…"
    assert len(reason_label(long)) == REASON_MAX
    assert reason_label("é" * REASON_MAX) == "é" * REASON_MAX


@pytest.mark.parametrize(
    ("state", "flags", "out"),
    [
        ("drained", ("IDLE", "DRAIN"), True),
        ("draining", ("MIXED", "DRAIN"), True),
        ("down", ("DOWN", "NOT_RESPONDING"), True),
        ("drained", ("DOWN", "DRAIN"), True),
        ("fail", ("IDLE", "FAIL"), True),
        ("failing", ("ALLOCATED", "FAIL"), True),
        ("drained", (), True),  # v0.0.36: no flag words, only sinfo's state name
        ("down", (), True),
        ("idle", ("IDLE", "NOT_RESPONDING"), False),  # idle*: not listed by sinfo -R
        ("idle", ("IDLE", "POWERED_DOWN"), False),
        ("future", ("FUTURE",), False),
        ("maint", ("IDLE", "MAINTENANCE"), False),
        ("mixed", ("MIXED",), False),
    ],
)
def test_out_as_sinfo_R_filters(state: str, flags: tuple[str, ...], out: bool) -> None:
    assert is_out(node("n1", state, flags, ("p",), 4)) is out


def test_the_per_node_series_can_be_turned_off_and_the_count_stays() -> None:
    nodes = [
        node(f"n{i}", "drained", ("IDLE", "DRAIN"), ("p",), 4, reason="NHC: bad disk",
             reason_time=1_700_000_000 + i, reason_user="root")
        for i in range(5000)
    ]
    off = collect_unavailable(nodes, per_node=False)
    assert names(off) == ["slurm_nodes_unavailable"]
    assert values(off, "slurm_nodes_unavailable") == {("NHC: bad disk", "drained"): 5000}
    assert not load_settings(["--auth", "none", "--no-nodes-unavailable-per-node"]) \
        .nodes_unavailable_per_node
    assert load_settings(["--auth", "none"]).nodes_unavailable_per_node


def test_unknown_time_and_user_as_sinfo_prints_them() -> None:
    # slurm.conf's State=DOWN Reason=...: sinfo -R prints TIMESTAMP Unknown (reason_time 0)
    n = node("spare1", "down", ("DOWN",), ("spare",), 1, reason="lab: spare")
    fams = collect_unavailable([n])
    assert values(fams, "slurm_node_unavailable_info") == {("spare1", "down", "lab: spare", ""): 1}
    assert values(fams, "slurm_node_unavailable_since_timestamp_seconds") == {}
