"""Job metrics: what `squeue` shows, summed by state and partition, user and account.

Job states are squeue's (%T, lower case); a job array that is not expanded yet
counts once, as in squeue. CPUs, memory and GPUs are what the job holds when it
has resources and what it asked for otherwise (see model.Job). A pending job
submitted to several partitions has them all in its partition label ("a,b"),
as squeue prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import ANY_GPU_TYPE, Job

_ABSENT = " Absent series mean 0."
_RESOURCES = " (allocated when the job holds resources, requested while it waits)"

Key = tuple[str, ...]


def _gauge(
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Mapping[Key, float],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for key in sorted(values):
        family.add_metric(key, values[key])
    return family


def collect_jobs(
    jobs: Sequence[Job], *, per_user: bool = True, per_account: bool = True
) -> list[Metric]:
    """Job count, CPU, memory and GPU families; per-user/per-account ones when enabled."""
    # One pass over the jobs, summing into dicts keyed by label tuples.
    by_sp: dict[tuple[str, str], list[int]] = {}  # (state, partition) -> [jobs, cpus, mem]
    gpus_spt: dict[Key, int] = {}
    pending: dict[Key, int] = {}
    by_user: dict[tuple[str, str], list[int]] = {}  # (user, state) -> [jobs, cpus, gpus]
    by_account: dict[tuple[str, str], list[int]] = {}

    for job in jobs:
        state = job.state
        key = (state, job.partition)
        acc = by_sp.get(key)
        if acc is None:
            acc = by_sp[key] = [0, 0, 0]
        acc[0] += 1
        acc[1] += job.cpus
        acc[2] += job.memory_bytes

        ngpus = 0
        if job.gpus:
            for gtype, n in job.gpus.items():
                if n > 0:
                    gkey = (state, job.partition, gtype)
                    gpus_spt[gkey] = gpus_spt.get(gkey, 0) + n
                    ngpus += n

        if state == "pending":
            pkey = (job.partition, job.reason)
            pending[pkey] = pending.get(pkey, 0) + 1

        if per_user:
            ukey = (job.user, state)
            acc = by_user.get(ukey)
            if acc is None:
                acc = by_user[ukey] = [0, 0, 0]
            acc[0] += 1
            acc[1] += job.cpus
            acc[2] += ngpus
        if per_account:
            akey = (job.account, state)
            acc = by_account.get(akey)
            if acc is None:
                acc = by_account[akey] = [0, 0, 0]
            acc[0] += 1
            acc[1] += job.cpus
            acc[2] += ngpus

    families: list[Metric] = [
        _gauge(
            "slurm_jobs",
            "Number of jobs by squeue state and partition (a pending job array counts once)."
            + _ABSENT,
            ["state", "partition"],
            {k: v[0] for k, v in by_sp.items()},
        ),
        _gauge(
            "slurm_jobs_cpus",
            "CPUs of jobs by squeue state and partition" + _RESOURCES + "." + _ABSENT,
            ["state", "partition"],
            {k: v[1] for k, v in by_sp.items()},
        ),
        _gauge(
            "slurm_jobs_memory_bytes",
            "Memory of jobs by squeue state and partition" + _RESOURCES + ", in bytes."
            + _ABSENT,
            ["state", "partition"],
            {k: v[2] for k, v in by_sp.items()},
        ),
        _gauge(
            "slurm_jobs_gpus",
            "GPUs of jobs by squeue state, partition and GPU type" + _RESOURCES + "; type "
            f'"{ANY_GPU_TYPE}" for GPUs requested without a type (e.g. --gpus=2).' + _ABSENT,
            ["state", "partition", "type"],
            gpus_spt,
        ),
        _gauge(
            "slurm_jobs_pending",
            "Pending jobs by partition and pending reason as squeue %r prints it (Priority, "
            "Resources, Dependency, ...)." + _ABSENT,
            ["partition", "reason"],
            pending,
        ),
    ]
    if per_user:
        families += [
            _gauge(
                "slurm_user_jobs",
                "Number of jobs by user and squeue state." + _ABSENT,
                ["user", "state"],
                {k: v[0] for k, v in by_user.items()},
            ),
            _gauge(
                "slurm_user_cpus",
                "CPUs of jobs by user and squeue state" + _RESOURCES + "." + _ABSENT,
                ["user", "state"],
                {k: v[1] for k, v in by_user.items()},
            ),
            _gauge(
                "slurm_user_gpus",
                "GPUs of jobs (all types) by user and squeue state" + _RESOURCES + "." + _ABSENT,
                ["user", "state"],
                {k: v[2] for k, v in by_user.items() if v[2] > 0},
            ),
        ]
    if per_account:
        families += [
            _gauge(
                "slurm_account_jobs",
                "Number of jobs by Slurm account and squeue state." + _ABSENT,
                ["account", "state"],
                {k: v[0] for k, v in by_account.items()},
            ),
            _gauge(
                "slurm_account_cpus",
                "CPUs of jobs by Slurm account and squeue state" + _RESOURCES + "." + _ABSENT,
                ["account", "state"],
                {k: v[1] for k, v in by_account.items()},
            ),
            _gauge(
                "slurm_account_gpus",
                "GPUs of jobs (all types) by Slurm account and squeue state"
                + _RESOURCES
                + "."
                + _ABSENT,
                ["account", "state"],
                {k: v[2] for k, v in by_account.items() if v[2] > 0},
            ),
        ]
    return families
