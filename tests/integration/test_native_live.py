"""Slurm's own metrics on a real slurmctld (MetricsType=metrics/openmetrics, 25.11+: the
session's 26.05 lab, conftest.py): `check` finds them and no name the exporter serves is
one of theirs; what slurmctld serves is what exporter/native_names.py lists, and means what
the README says (pending array tasks one by one, memory in MB)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from exporter.native import ENDPOINTS, exposition_names
from exporter.native_names import NATIVE_METRICS
from tests.integration.lab import TOP, Lab
from tests.integration.test_live import minted


def _native_url(lab: Lab) -> str:
    url = lab.env.get("SLURMCTLD_METRICS_URL")
    if not url:
        pytest.skip(f"Slurm {lab.release} has no metrics/openmetrics (25.11+)")
    return url


def _check(*args: str) -> tuple[int, str]:
    p = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args],
        capture_output=True, text=True, cwd=TOP, timeout=120, check=False,
    )  # fmt: skip
    return p.returncode, p.stdout + p.stderr


def _page(url: str, page: str) -> bytes:
    with urllib.request.urlopen(f"{url}/{page}", timeout=30) as r:
        body: bytes = r.read()
        return body


def _value(body: bytes, sample: str) -> float:
    line = next(x for x in body.decode().splitlines() if x.startswith(sample + " "))
    return float(line.rsplit(" ", 1)[1])


def test_check_finds_slurms_own_metrics_and_no_shared_name(lab: Lab) -> None:
    url = _native_url(lab)
    code, out = _check(*minted(lab))
    assert code == 0, out
    pages = ",".join(ENDPOINTS)
    found = f"[ok]   native metrics: slurmctld serves Slurm's own metrics at {url}/{{{pages}}}"
    assert found in out, out
    assert "none is one of the exporter's" in out and "[ok]   metric names: none of the" in out
    # the same from the flag alone, as with 25.11, whose slurmrestd shows no slurm.conf
    code, out = _check(*minted(lab), "--api-version", "v0.0.44", "--native-metrics-url", url)
    assert code == 0 and f"serves Slurm's own metrics at {url}/" in out, out


def test_slurmctld_serves_the_listed_names_with_the_meanings_the_readme_gives(lab: Lab) -> None:
    url = _native_url(lab)
    bodies = {page: _page(url, page) for page in ENDPOINTS}
    served = set().union(*(exposition_names(b) for b in bodies.values()))
    assert served and served <= NATIVE_METRICS.keys(), served - NATIVE_METRICS.keys()
    # a pending array counts each of its tasks (statistics.c:479-502), as squeue -r lists
    # them; plain squeue (and slurm_jobs_by_state) lists the array once
    tasks = lab.slurm("squeue", "-h", "-r", "-t", "PD", "-o", "%i").split()
    lines = lab.slurm("squeue", "-h", "-t", "PD", "-o", "%i").split()
    assert len(tasks) > len(lines), "the job mix has a pending array"
    assert _value(bodies["jobs"], "slurm_jobs_pending") == len(tasks)
    # "_bytes" that are MB: RealMemory (node_conf.h real_memory, MB)
    real = lab.slurm("scontrol", "show", "node", "node1").split("RealMemory=")[1].split()[0]
    assert _value(bodies["nodes"], 'slurm_node_memory_bytes{node="node1"}') == float(real)
