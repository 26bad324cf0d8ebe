"""Job records of `/jobs`: the fields we read have the same names in every generation.

Only their shapes differ (a state string in 22.05, a list of words later; plain or
`{set, infinite, number}` numbers), which `Num` and `state_words` absorb, so both
adapters decode jobs into `RawJob` and convert them here, as sdiag.py does for `/diag`.
"""

from __future__ import annotations

import msgspec

from exporter.api import normalise as norm
from exporter.api.decoding import Num, optional_int
from exporter.api.model import Job


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


def state_words(value: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    """A state as words: 22.05 gives one string, v0.0.40+ a list of base and flag words."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# Jobs and nodes come by the hundred thousand but with few distinct shapes: what the
# rules in normalise.py derive from a job's state and resource fields, or a node's
# state and GRES strings, is computed once per distinct value within one answer.
JobMemo = dict[tuple[object, ...], tuple[str, norm.JobResources]]


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
    state, res = derived
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
    )


def derive_job(raw: RawJob) -> tuple[str, norm.JobResources]:
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
    return norm.job_state(words), norm.job_resources(facts)
