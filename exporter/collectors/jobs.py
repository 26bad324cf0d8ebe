"""Job metrics: what `squeue` shows, summed by state and partition, user and account.

Job states are squeue's (%T, lower case). Job counts are squeue's lines: a pending
job array counts once, with the pending tasks that slurmctld split off it under the
same name and partition (squeue merges them into the array's line). CPUs, memory and
GPUs are what the job holds when it has resources and what it asked for otherwise
(see model.Job), for every task of a pending array. A pending job submitted to several
partitions has them all in its partition label ("a,b"), as squeue prints it.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import Metric

from exporter.api.model import ANY_GPU_TYPE, Job
from exporter.collectors.families import ABSENT, Key, gauge

_RESOURCES = (
    " (allocated when the job holds resources, requested while it waits, for every task "
    "of a pending job array)"
)
_REASON = (
    "pending reason code (squeue %r prints the same, or slurmctld's longer description "
    "when it gives one: ReqNodeNotAvail, Reserved for maintenance)"
)


def _array_lines(jobs: Sequence[Job]) -> dict[int, tuple[str, str]]:
    """The (name, partition) of each pending array's meta record, by array id."""
    return {
        job.array.job_id: (job.array.name, job.partition)
        for job in jobs
        if job.pending and job.array is not None and job.array.task_id is None
    }


def _on_its_array_line(job: Job, arrays: dict[int, tuple[str, str]]) -> bool:
    """Whether plain squeue shows this record on its array's line rather than its own.

    Mirrors _combine_pending_array_tasks() in src/squeue/print.c (slurm-22-05-11-1 to
    slurm-26-05-3-1): a pending split-off task joins its array's pending meta record when
    name and partition match. (Its other test, task id < the meta record's bitmap size,
    always holds: that bitmap has MaxArraySize bits, and task ids are below it.)
    """
    array = job.array
    return (
        array is not None
        and array.task_id is not None
        and job.pending
        and arrays.get(array.job_id) == (array.name, job.partition)
    )


class _Sums:
    """Sums over the jobs, keyed by label tuples."""

    def __init__(self) -> None:
        self.by_sp: dict[Key, list[int]] = {}  # (state, partition) -> [jobs, cpus, mem]
        self.gpus_spt: dict[Key, int] = {}
        self.pending: dict[Key, int] = {}  # (partition, reason) -> squeue lines
        self.pending_tasks: dict[Key, int] = {}  # (partition, reason) -> tasks
        self.by_user: dict[Key, list[int]] = {}  # (user, state) -> [jobs, cpus, gpus]
        self.by_account: dict[Key, list[int]] = {}


def _add(table: dict[Key, list[int]], key: Key, a: int, b: int, c: int) -> None:
    acc = table.get(key)
    if acc is None:
        acc = table[key] = [0, 0, 0]
    acc[0] += a
    acc[1] += b
    acc[2] += c


def _sum_jobs(jobs: Sequence[Job], per_user: bool, per_account: bool) -> _Sums:
    sums = _Sums()
    arrays = _array_lines(jobs)
    for job in jobs:
        state, tasks = job.state, job.tasks
        line = 0 if arrays and _on_its_array_line(job, arrays) else 1
        cpus = job.cpus * tasks
        _add(sums.by_sp, (state, job.partition), line, cpus, job.memory_bytes * tasks)

        ngpus = 0
        for gtype, n in job.gpus.items():
            if n > 0:
                gkey = (state, job.partition, gtype)
                sums.gpus_spt[gkey] = sums.gpus_spt.get(gkey, 0) + n * tasks
                ngpus += n * tasks

        pkey = (job.partition, job.reason)
        if state == "pending" and line:
            sums.pending[pkey] = sums.pending.get(pkey, 0) + 1
        if job.pending:
            sums.pending_tasks[pkey] = sums.pending_tasks.get(pkey, 0) + tasks
        if per_user:
            _add(sums.by_user, (job.user, state), line, cpus, ngpus)
        if per_account:
            _add(sums.by_account, (job.account, state), line, cpus, ngpus)
    return sums


def collect_jobs(
    jobs: Sequence[Job], *, per_user: bool = True, per_account: bool = True
) -> list[Metric]:
    """Job count, CPU, memory and GPU families; per-user/per-account ones when enabled."""
    sums = _sum_jobs(jobs, per_user, per_account)
    families: list[Metric] = [
        gauge(
            "slurm_jobs_by_state",
            "Number of jobs by squeue state and partition, as plain squeue lists them: a "
            "pending job array counts once, with the pending tasks split off it under the "
            "same name and partition." + ABSENT,
            ["state", "partition"],
            {k: v[0] for k, v in sums.by_sp.items() if v[0]},
        ),
        gauge(
            "slurm_jobs_cpus",
            "CPUs of jobs by squeue state and partition" + _RESOURCES + "." + ABSENT,
            ["state", "partition"],
            {k: v[1] for k, v in sums.by_sp.items()},
        ),
        gauge(
            "slurm_jobs_memory_bytes",
            "Memory of jobs by squeue state and partition" + _RESOURCES + ", in bytes."
            + ABSENT,
            ["state", "partition"],
            {k: v[2] for k, v in sums.by_sp.items()},
        ),
        gauge(
            "slurm_jobs_gpus",
            "GPUs of jobs by squeue state, partition and GPU type" + _RESOURCES + "; type "
            f'"{ANY_GPU_TYPE}" for GPUs requested without a type (e.g. --gpus=2).' + ABSENT,
            ["state", "partition", "type"],
            sums.gpus_spt,
        ),
        gauge(
            "slurm_jobs_pending_by_reason",
            "Pending jobs by partition and " + _REASON + ", counted as slurm_jobs_by_state counts "
            "them (a pending job array once, under the reason of its meta record)." + ABSENT,
            ["partition", "reason"],
            sums.pending,
        ),
        gauge(
            "slurm_jobs_pending_tasks",
            "Pending tasks by partition and " + _REASON + ": every task of a pending job "
            "array counts, as in sdiag's Jobs pending and squeue -r (which leaves out the "
            "last task of an array listed as first-last:step)." + ABSENT,
            ["partition", "reason"],
            sums.pending_tasks,
        ),
    ]
    if per_user:
        families += _owner_families("user", "user", "by user", sums.by_user)
    if per_account:
        families += _owner_families("account", "account", "by Slurm account", sums.by_account)
    return families


def _owner_families(
    prefix: str, label: str, by: str, table: dict[Key, list[int]]
) -> list[Metric]:
    return [
        gauge(
            f"slurm_{prefix}_jobs_by_state",
            f"Number of jobs {by} and squeue state, counted as slurm_jobs_by_state counts them."
            + ABSENT,
            [label, "state"],
            {k: v[0] for k, v in table.items() if v[0]},
        ),
        gauge(
            f"slurm_{prefix}_cpus",
            f"CPUs of jobs {by} and squeue state" + _RESOURCES + "." + ABSENT,
            [label, "state"],
            {k: v[1] for k, v in table.items()},
        ),
        gauge(
            f"slurm_{prefix}_gpus",
            f"GPUs of jobs (all types) {by} and squeue state" + _RESOURCES + "." + ABSENT,
            [label, "state"],
            {k: v[2] for k, v in table.items() if v[2] > 0},
        ),
    ]
