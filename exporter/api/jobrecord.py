"""Job records of `/jobs`: the fields we read have the same names in every generation.

Only their shapes differ (a state string in 22.05, a list of words later; plain or
`{set, infinite, number}` numbers), which `Num` and `state_words` absorb, so both
adapters decode jobs into `RawJob` and convert them here, as sdiag.py does for `/diag`.
"""

from __future__ import annotations

import msgspec

from exporter.api import normalise as norm
from exporter.api.decoding import Num, optional_int
from exporter.api.model import ArrayRecord, Job


class RawJob(msgspec.Struct, gc=False):
    job_id: int
    job_state: tuple[str, ...] | str | None = None  # tuples: hashable memo keys
    partition: str | None = None
    user_name: str | None = None
    account: str | None = None
    state_reason: str | None = None
    cpus: Num = None
    node_count: Num = None
    tasks: Num = None
    memory_per_node: Num = None  # MiB
    memory_per_cpu: Num = None  # MiB
    tres_req_str: str | None = None
    tres_alloc_str: str | None = None
    tres_per_job: str | None = None
    tres_per_node: str | None = None
    tres_per_task: str | None = None
    gres_detail: tuple[str, ...] | None = None
    name: str | None = None
    array_job_id: Num = None  # 0 or unset: not an array
    array_task_id: Num = None  # unset on an array's meta record
    array_task_string: str | None = None  # the meta record's tasks: "1-4,7-999%10"


def state_words(value: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    """A state as words: 22.05 gives one string, v0.0.40+ a list of base and flag words."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# Jobs and nodes come by the hundred thousand but with few distinct shapes: what the
# rules in normalise.py derive from a job's state and resource fields, or a node's
# state and GRES strings, is computed once per distinct value within one answer.
JobMemo = dict[tuple[object, ...], tuple[str, bool, norm.JobResources]]


def to_job(raw: RawJob, memo: JobMemo) -> Job:
    key = (
        raw.job_state,
        raw.tres_alloc_str,
        raw.tres_req_str,
        raw.cpus,
        raw.node_count,
        raw.tasks,
        raw.memory_per_node,
        raw.memory_per_cpu,
        raw.tres_per_job,
        raw.tres_per_node,
        raw.tres_per_task,
        raw.gres_detail,
    )
    derived = memo.get(key)
    if derived is None:
        derived = memo[key] = derive_job(raw)
    state, pending, res = derived
    array = _array(raw) if raw.array_job_id else None
    # positional: Job's field order (this runs 100k times a cycle)
    return Job(
        raw.job_id,
        state,
        raw.partition or "",
        raw.user_name or "",
        raw.account or "",
        raw.state_reason or "None",
        res.cpus,
        res.memory_bytes,
        res.nodes,
        res.gpus,
        pending,
        _tasks(array, raw.array_task_string) if pending else 1,
        array,
    )


def _array(raw: RawJob) -> ArrayRecord | None:
    array_job_id = optional_int(raw.array_job_id)
    if not array_job_id:
        return None
    return ArrayRecord(array_job_id, optional_int(raw.array_task_id), raw.name or "")


def _tasks(array: ArrayRecord | None, task_string: str | None) -> int:
    """Tasks a pending record stands for: those listed by an array's meta record."""
    if array is None or array.task_id is not None or not task_string:
        return 1
    return norm.array_task_count(task_string) or 1


def derive_job(raw: RawJob) -> tuple[str, bool, norm.JobResources]:
    words = state_words(raw.job_state)
    facts = norm.JobFacts(
        pending=norm.job_is_pending(words),
        tres_alloc=raw.tres_alloc_str or "",
        tres_req=raw.tres_req_str or "",
        cpus=optional_int(raw.cpus),
        node_count=optional_int(raw.node_count),
        tasks=optional_int(raw.tasks),
        memory_per_node_mib=optional_int(raw.memory_per_node),
        memory_per_cpu_mib=optional_int(raw.memory_per_cpu),
        tres_per_job=raw.tres_per_job or "",
        tres_per_node=raw.tres_per_node or "",
        tres_per_task=raw.tres_per_task or "",
        gres_detail=raw.gres_detail or (),
    )
    return norm.job_state(words), facts.pending, norm.job_resources(facts)
