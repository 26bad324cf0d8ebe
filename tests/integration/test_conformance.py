"""Conformance with Slurm's own view: GPUs per type, scheduler counters, every auth mode,
the UNIX socket. The cluster has fake typed GPUs and GPU jobs of each request style."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.lab import TOP, Lab
from tests.integration.test_live import (
    by,
    exporter_samples,
    minted,
    run_exporter,
    served_endpoints,
)


def _gres(text: str) -> Counter[str]:
    """'gpu:a100:2(IDX:0-1),gpu:h100:1(IDX:2)' -> {'a100': 2, 'h100': 1}."""
    out: Counter[str] = Counter()
    for m in re.finditer(r"gpu:(\w+):(\d+)", text):
        out[m.group(1)] += int(m.group(2))
    return out


@pytest.mark.parametrize("mode", ["once", "server"])
def test_gpus_per_type_equal_scontrol(
    lab: Lab, mode: str, request: pytest.FixtureRequest
) -> None:
    samples = exporter_samples(lab, mode, request)
    node = lab.slurm("scontrol", "-d", "-o", "show", "node", "node1")
    gres = re.search(r"\bGres=(\S+)", node)
    used = re.search(r"\bGresUsed=(\S+)", node)
    assert gres and used, node
    configured = Counter({k[0]: v for k, v in by(samples, "slurm_gpus_configured", "type").items()})
    allocated = Counter({k[0]: v for k, v in by(samples, "slurm_gpus_allocated", "type").items()})
    assert configured == _gres(gres.group(1)) == Counter({"a100": 2, "h100": 2})
    assert allocated == _gres(used.group(1)) == Counter({"a100": 2, "h100": 1})
    idle = {lab_["type"]: v for lab_, v in samples["slurm_gpus_idle"]}
    assert all(v >= 0 for v in idle.values())


@pytest.mark.parametrize("mode", ["once", "server"])
def test_gpu_jobs_of_every_request_style_are_counted(
    lab: Lab, mode: str, request: pytest.FixtureRequest
) -> None:
    """--gpus=1, --gres=gpu:h100:1 and --gpus-per-node=a100:1 run; two GPU jobs pend."""
    samples = exporter_samples(lab, mode, request)
    gpus = by(samples, "slurm_jobs_gpus", "state", "type")
    assert gpus[("running", "a100")] == 2 and gpus[("running", "h100")] == 1
    # pending: --gpus=h100:2 and --gpus-per-node=4 (no type named)
    assert gpus[("pending", "h100")] == 2 and gpus[("pending", "any")] == 4
    # the same as squeue's allocated TRES of running jobs
    out = lab.slurm("squeue", "-h", "-t", "running", "-O", "tres-alloc:200")
    from_squeue: Counter[str] = Counter()
    for line in out.splitlines():
        for m in re.finditer(r"gres/gpu:(\w+)=(\d+)", line):
            from_squeue[m.group(1)] += int(m.group(2))
    assert from_squeue == Counter({"a100": 2, "h100": 1})


def test_scheduler_counters_move_after_submitting(lab: Lab) -> None:
    _, before, _ = run_exporter("--once", *minted(lab))
    submitted = before["slurm_scheduler_jobs_submitted_total"][0][1]
    lab.slurm("sbatch", "-H", "-J", "counter_probe", "--wrap", "true")
    try:
        deadline = time.monotonic() + 30
        while True:
            code, after, stderr = run_exporter("--once", *minted(lab))
            assert code == 0, stderr
            if after["slurm_scheduler_jobs_submitted_total"][0][1] > submitted:
                break
            assert time.monotonic() < deadline, "jobs_submitted did not move"
            time.sleep(1)
        rpcs = by(after, "slurm_rpc_calls_total", "message_type")
        assert rpcs[("REQUEST_SUBMIT_BATCH_JOB",)] >= 1
    finally:
        lab.slurm("scancel", "--name=counter_probe")


def test_auth_scontrol(lab: Lab, tmp_path: Path) -> None:
    """`--auth scontrol` with the cluster's own scontrol (run inside the lab)."""
    wrapper = tmp_path / "scontrol"
    wrapper.write_text(
        f"#!/bin/sh\nexec bash {TOP}/scripts/slurmlab.sh exec --release {lab.release} "
        '-- scontrol "$@"\n'
    )
    wrapper.chmod(0o755)
    code, samples, stderr = run_exporter(
        "--once", "--slurmrestd-url", lab.url, "--auth", "scontrol",
        "--scontrol-path", str(wrapper), "--jwt-user", lab.user,
    )
    assert code == 0, stderr
    assert {lab_["endpoint"] for lab_, v in samples["slurm_exporter_endpoint_up"] if v} == set(
        served_endpoints(lab.release)
    )
    assert by(samples, "slurm_jobs_by_state", "state", "partition") == lab.squeue_counts()


def test_unix_socket(lab: Lab) -> None:
    socket = lab.env["SLURMRESTD_SOCKET"]
    code, samples, stderr = run_exporter(
        "--once", "--slurmrestd-url", f"unix://{socket}", "--jwt-key-file", lab.key,
        "--jwt-user", lab.user,
    )
    assert code == 0, stderr
    assert by(samples, "slurm_jobs_by_state", "state", "partition") == lab.squeue_counts()
