"""Which slurmdbd records give accounting events: two cases the 22.05 and 24.11 labs showed
(tests/integration/test_accounting_live.py), each counted as sacct's default window does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exporter.api.errors import SlurmError
from exporter.api.model import AccountedJob
from exporter.api.v0036 import V0036Adapter
from exporter.collectors.window import Window

RAN = AccountedJob(
    job_id=28, submit=1000, eligible=1000, start=1001, end=1002, elapsed=1,
    state="completed", partition="debug", account="science", user="root", started=True,
    cpus=1, memory_bytes=100 * 2**20, gpus={},
)


def test_a_job_cancelled_before_its_begin_time_is_not_counted() -> None:
    # sbatch --begin=now+7days, then scancel: slurmdbd's time_eligible is the begin time,
    # after the window; sacct's default window wants time_eligible < its end
    # (as_mysql_jobacct_process.c:1690-1697 at slurm-24-11-5-1)
    job = replace(RAN, eligible=1000 + 7 * 86400, start=1002, end=1002, started=False,
                  state="cancelled", cpus=0, memory_bytes=0)
    assert Window(started_at=900, max_window=3600).count([job], 900, 1010) == []


def test_slurmdbd_placeholder_without_partition_is_counted_once_complete() -> None:
    # an end reaching slurmdbd before the job's start record: as_mysql_job_complete adds
    # the job from the end message alone, no partition, name "allocation"
    # (as_mysql_job.c:1189-1211 at slurm-22-05-8-1); the start message fills it in later
    placeholder = replace(RAN, partition="")
    window = Window(started_at=900, max_window=3600)
    assert window.count([placeholder], 900, 1010) == []
    found = window.count([RAN], 900, 1020)
    assert [(e.kind, e.job.partition) for e in found] == [("start", "debug"), ("end", "debug")]
    assert window.count([RAN], 900, 1030) == []


def test_22_05_nothing_found_is_an_empty_window() -> None:
    # the 22.05 lab's answer for a window without jobs (HTTP 200)
    body = (b'{"meta": {"plugin": {"type": "openapi/dbv0.0.38"}, "Slurm": {"release": "22.05.8"}},'
            b' "errors": [{"description": "Nothing found", "error_number": 9003,'
            b' "error": "Nothing found with query", "source": "slurmdb_jobs_get"}], "jobs": []}')
    assert V0036Adapter("v0.0.38").parse_accounting_jobs(body).data == []
    other = body.replace(b"9003", b"7000")  # slurmdbd down: still a failure
    with pytest.raises(SlurmError):
        V0036Adapter("v0.0.38").parse_accounting_jobs(other)
