"""/shares against `sshare -a -l -P`, value by value, on a lab with slurmdbd and
PriorityType=priority/multifactor (Fair Tree, Slurm's default PriorityFlags).

sshare prints what slurmctld sent in the same RPC (src/sshare/process.c): doubles with
"%f" (src/common/print_fields.c, print_fields_double: NO_VAL and INFINITE as a blank,
an infinite LevelFS as "inf"), TRESRunMins as the seconds / 60 (rounded down), and for
accounts no FairShare under Fair Tree. Usage moves every PriorityCalcPeriod: sshare is
read before and after the exporter, and the comparison made when both agree.
"""

from __future__ import annotations

import math

import pytest

from tests.integration.lab import Lab
from tests.integration.test_live import Samples, minted, run_exporter

pytestmark = pytest.mark.lab

Row = dict[str, str]


def _sshare(lab: Lab) -> list[Row]:
    return parse_sshare(lab.slurm("sshare", "-a", "-l", "-P"))


def parse_sshare(text: str) -> list[Row]:
    lines = text.splitlines()
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|"), strict=True)) for line in lines[1:]]


def _shown(value: float | None) -> str:
    """A value as sshare prints it (print_fields_double's "%f")."""
    if value is None:
        return ""
    return "inf" if value == math.inf else f"{value:f}"


def _values(samples: Samples, kind: str, key: tuple[str, ...]) -> dict[str, float]:
    labels = ("account",) if kind == "account" else ("user", "account")
    out = {}
    for name, series in samples.items():
        prefix = f"slurm_{kind}_fairshare_"
        if not name.startswith(prefix) or name.endswith("tres_run_seconds"):
            continue
        for lab_, v in series:
            if tuple(lab_[k] for k in labels) == key:
                out[name.removeprefix(prefix)] = v
    return out


def _run_minutes(samples: Samples, kind: str, key: tuple[str, ...]) -> dict[str, int]:
    labels = ("account",) if kind == "account" else ("user", "account")
    return {
        lab_["tres"]: int(v) // 60
        for lab_, v in samples.get(f"slurm_{kind}_fairshare_tres_run_seconds", [])
        if tuple(lab_[k] for k in labels) == key
    }


def _expected(row: Row) -> dict[str, str]:
    out = {
        "shares": row["RawShares"],
        "shares_normalized": row["NormShares"],
        "usage_billing_seconds": row["RawUsage"],
        "usage_normalized": row["NormUsage"],
        "usage_effective": row["EffectvUsage"],
        "level": row["LevelFS"],
    }
    if row["User"]:
        out["factor"] = row["FairShare"]
    return out


def _got(values: dict[str, float]) -> dict[str, str]:
    names = ("shares", "shares_normalized", "usage_billing_seconds", "usage_normalized",
             "usage_effective", "level", "factor")
    out = {}
    for n in names:
        v = values.get(n)
        if n in ("shares", "usage_billing_seconds"):
            out[n] = "" if v is None else str(int(v))
        else:
            out[n] = _shown(v)
    return out


def differences(rows: list[Row], samples: Samples) -> list[str]:
    """Where the exporter's series (with --shares-per-user) differ from sshare's rows."""
    out = []
    for row in rows:
        user, account = row["User"], row["Account"].strip()
        kind, key = ("user", (user, account)) if user else ("account", (account,))
        got = _got(_values(samples, kind, key))
        want = _expected(row)
        if {k: got[k] for k in want} != want:
            out.append(f"{kind} {key}: sshare {want}, exporter {got}")
        tres = dict(t.split("=") for t in row["TRESRunMins"].split(",") if t)
        run = _run_minutes(samples, kind, key)
        if not run or any(int(tres[t]) != m for t, m in run.items()):
            out.append(f"{kind} {key}: TRESRunMins {tres}, exporter {run}")
    return out


def test_shares_equal_sshare(lab: Lab) -> None:
    if lab.release == "22.05":
        pytest.skip("/shares came with Slurm 23.11 (API v0.0.40)")
    for _ in range(3):
        before = _sshare(lab)
        code, samples, stderr = run_exporter("--once", "--shares-per-user", *minted(lab))
        assert code == 0, stderr
        if _sshare(lab) == before:
            break
    else:
        pytest.fail("sshare's values kept moving")
    assert len(before) >= 7  # root, 2 accounts, 4 user associations
    assert differences(before, samples) == []
    # without --shares-per-user: the accounts only
    code, samples, stderr = run_exporter("--once", *minted(lab))
    assert code == 0, stderr
    assert samples.get("slurm_account_fairshare_shares_normalized")
    assert not any(name.startswith("slurm_user_fairshare") for name in samples)
