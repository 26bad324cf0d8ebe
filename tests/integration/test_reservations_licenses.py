"""Reservations and licenses against `scontrol show reservation` / `show license`, value
by value, on every release whose API has the endpoints (22.05: v0.0.38, the newest).

Beside the job mix's license job (-L matlab:2) and its two reservations to come on node1
(maint_window, MAINT, in a day, while node1 runs jobs; alice_resv in two days), this
module adds for its own tests, and removes afterwards: a current reservation of licenses
only (no nodes, so no job's scheduling changes: lic_now, fluent:1, ANY_NODES) and a
remote license served by slurmdbd (ansys@flexhost, 10).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab
from tests.integration.test_live import Samples, minted, run_exporter

REMOTE = "ansys@flexhost"


@pytest.fixture(scope="module")
def extras(lab: Lab) -> Iterator[Lab]:
    allowed = "percentallowed=100" if lab.release == "22.05" else "allowed=100"
    lab.slurm("scontrol", "create", "reservation", "reservationname=lic_now", "starttime=now",
              "duration=60", "users=root", "licenses=fluent:1", "flags=any_nodes")
    lab.slurm("sacctmgr", "-i", "add", "resource", "name=ansys", "server=flexhost",
              "count=10", "type=license", "cluster=slurmlab", allowed)
    yield lab
    lab.slurm("scontrol", "delete", "reservation=lic_now")
    lab.slurm("sacctmgr", "-i", "delete", "resource", "name=ansys", "server=flexhost")


def _records(text: str, key: str) -> dict[str, dict[str, str]]:
    """`scontrol -o show ...` lines as {name: {field: value}} (values may hold '=')."""
    out = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if key in fields:
            out[fields[key]] = fields
    return out


def _scontrol(lab: Lab, *what: str) -> str:
    # SLURM_TIME_FORMAT=%s: times as Unix timestamps, whatever the cluster's time zone
    return lab.slurm("env", "SLURM_TIME_FORMAT=%s", "scontrol", "-o", "show", *what)


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {labels[label]: v for labels, v in samples.get(name, [])}


def _node_counts(lab: Lab, hostlist: str) -> tuple[int, int, int]:
    """(busy, down, drained) as scontrol show node says: CPUAlloc > 0, State has DOWN or
    FAIL, State has DRAIN."""
    if hostlist in ("", "(null)"):
        return 0, 0, 0
    busy = down = drained = 0
    for name in lab.slurm("scontrol", "show", "hostnames", hostlist).split():
        node = _records(lab.slurm("scontrol", "-o", "show", "node", name), "NodeName")[name]
        words = set(node["State"].split("+"))
        busy += int(node["CPUAlloc"]) > 0
        down += bool(words & {"DOWN", "FAIL"})
        drained += "DRAIN" in words
    return busy, down, drained


def _exporter(lab: Lab) -> Samples:
    code, samples, stderr = run_exporter("--once", *minted(lab))
    assert code == 0, stderr
    return samples


def test_reservations_equal_scontrol_show_reservation(extras: Lab) -> None:
    lab = extras
    samples = _exporter(lab)
    truth = _records(_scontrol(lab, "reservation"), "ReservationName")
    assert {"maint_window", "alice_resv", "lic_now"} <= set(truth)
    info = {labels["reservation"]: labels for labels, _ in samples["slurm_reservation_info"]}
    assert set(info) == set(truth)
    start = _by_label(samples, "slurm_reservation_start_timestamp_seconds", "reservation")
    end = _by_label(samples, "slurm_reservation_end_timestamp_seconds", "reservation")
    nodes = _by_label(samples, "slurm_reservation_nodes_configured", "reservation")
    cores = _by_label(samples, "slurm_reservation_cores_configured", "reservation")
    busy = _by_label(samples, "slurm_reservation_nodes_busy", "reservation")
    down = _by_label(samples, "slurm_reservation_nodes_down", "reservation")
    drained = _by_label(samples, "slurm_reservation_nodes_drained", "reservation")
    for name, r in truth.items():
        assert info[name]["flags"] == r["Flags"], name
        assert info[name]["partition"] == ("" if r["PartitionName"] == "(null)"
                                           else r["PartitionName"]), name
        assert (start[name], end[name]) == (int(r["StartTime"]), int(r["EndTime"])), name
        assert (nodes[name], cores[name]) == (int(r["NodeCnt"]), int(r["CoreCnt"])), name
        assert (busy[name], down[name], drained[name]) == _node_counts(lab, r["Nodes"]), name
    # the job mix runs jobs on node1, which the maintenance to come reserves
    assert busy["maint_window"] == 1
    maint = [int(r["StartTime"]) for r in truth.values() if "MAINT" in r["Flags"].split(",")]
    [(_, next_maint)] = samples["slurm_reservation_maint_next_start_timestamp_seconds"]
    assert next_maint == min(maint)


def test_licenses_equal_scontrol_show_license(extras: Lab) -> None:
    lab = extras
    samples = _exporter(lab)
    truth = _records(_scontrol(lab, "license"), "LicenseName")
    assert {"matlab", "fluent", REMOTE} <= set(truth)
    fields = {
        "configured": "Total", "used": "Used", "free": "Free", "reserved": "Reserved",
        "last_consumed": "LastConsumed", "last_deficit": "LastDeficit",
        "last_update_timestamp_seconds": "LastUpdate",
    }
    for suffix, key in fields.items():
        got = _by_label(samples, f"slurm_license_{suffix}", "license")
        # LastConsumed, LastDeficit and LastUpdate: only where scontrol shows them
        want = {name: float(r[key]) for name, r in truth.items() if key in r}
        assert got == want, suffix
    remote = _by_label(samples, "slurm_license_remote", "license")
    assert remote == {n: float(r["Remote"] == "yes") for n, r in truth.items()}
    # the job mix's job holds matlab:2; lic_now reserves fluent:1
    assert (truth["matlab"]["Used"], truth["fluent"]["Reserved"]) == ("2", "1")
