"""slurmdbd's own statistics (/slurmdb/vX/diag) on a real slurmdbd: refused to the
exporter's user below AdminLevel=Administrator (its own reason, nothing else suffers),
then, once it is an Administrator, equal to what `sacctmgr show stats` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.lab import Lab
from tests.integration.test_live import minted, run_exporter, served_endpoints

pytestmark = pytest.mark.lab


def _admin_level(lab: Lab) -> str:
    out = lab.slurm("sacctmgr", "-n", "-P", "show", "user", lab.user, "format=adminlevel")
    return out.strip() or "None"


def _set_admin_level(lab: Lab, level: str) -> None:
    lab.slurm("sacctmgr", "-i", "modify", "user", "where", f"name={lab.user}", "set",
              f"adminlevel={level}")


@pytest.fixture
def restored_level(lab: Lab) -> Iterator[None]:
    before = _admin_level(lab)
    yield
    _set_admin_level(lab, "Administrator" if before.startswith("Admin") else before)


def _sacctmgr_rollups(text: str) -> dict[str, dict[str, float]]:
    """sacctmgr show stats' "Internal DBD rollup" / "User RPC rollup call" blocks."""
    out: dict[str, dict[str, float]] = {}
    for title, period in (("Internal DBD rollup", "hourly"), ("User RPC rollup call", "daily")):
        m = re.search(
            rf"{title} last ran .*\((\d+)\)\s+Last cycle:\s+(\d+)\s+Max cycle:\s+(\d+)\s+"
            r"Total time:\s+(\d+)\s+Total cycles:\s+(\d+)",
            text,
        )
        if m:
            when, last, longest, total, runs = (int(g) for g in m.groups())
            out[period] = {"last_run": when, "last": last / 1e6, "max": longest / 1e6,
                           "total": total / 1e6, "runs": runs}
    return out


@pytest.mark.parametrize("level", ["None", "Operator"])
def test_below_administrator_is_forbidden_and_nothing_else_suffers(
    lab: Lab, level: str, restored_level: None
) -> None:
    _set_admin_level(lab, level)
    code, samples, stderr = run_exporter("--once", "--collector-slurmdbd", *minted(lab))
    assert code == 1, stderr
    lines = [x for x in stderr.splitlines() if "slurmdbd failed" in x]
    assert len(lines) == 1, stderr
    status = 422 if lab.release == "26.05" else 500
    assert "[forbidden]" in lines[0] and f"HTTP {status}" in lines[0], lines[0]
    assert f"sacctmgr -i modify user where name={lab.user} set adminlevel=Administrator" in (
        lines[0]
    )
    up = {lab_["endpoint"]: v for lab_, v in samples["slurm_exporter_endpoint_up"]}
    assert up.pop("slurmdbd") == 0
    assert up == dict.fromkeys(served_endpoints(lab.release), 1.0), stderr
    renewals = {lab_["result"]: v for lab_, v in samples["slurm_exporter_token_renewals_total"]}
    assert renewals.get("success") == 1  # the first token only: not taken for a refusal


def test_administrator_reads_what_sacctmgr_show_stats_prints(
    lab: Lab, restored_level: None
) -> None:
    _set_admin_level(lab, "Administrator")
    code, samples, stderr = run_exporter("--once", "--collector-slurmdbd", *minted(lab))
    assert code == 0, stderr
    shown = _sacctmgr_rollups(lab.slurm("sacctmgr", "show", "stats"))
    assert "hourly" in shown  # slurmdbd's own rollup ran at its start

    def of(name: str) -> dict[str, float]:
        return {lab_["period"]: v for lab_, v in samples[f"slurm_slurmdbd_rollup_{name}"]}

    for period, want in shown.items():
        assert of("runs_total")[period] == want["runs"], period
        assert of("last_duration_seconds")[period] == pytest.approx(want["last"]), period
        assert of("max_duration_seconds")[period] == pytest.approx(want["max"]), period
        assert of("duration_seconds_total")[period] == pytest.approx(want["total"]), period
        assert of("last_run_timestamp_seconds")[period] == want["last_run"], period
    assert of("runs_total")["monthly"] == 0
    rpcs = {lab_["rpc"] for lab_, _ in samples["slurm_slurmdbd_rpcs_total"]}
    assert "DBD_GET_STATS" in rpcs
    users = {lab_["user"] for lab_, _ in samples["slurm_slurmdbd_user_rpcs_total"]}
    assert lab.user in users
