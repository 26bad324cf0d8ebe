"""The normalised shape every collector sees, whatever API version answered.

Adapters (one per API generation) turn slurmrestd's JSON into these types; the
collectors never look at raw JSON. Units are base units: bytes, seconds.
Vocabulary is Slurm's own command-line one: job states as squeue prints them
(lower case), node states as sinfo prints them (lower case, no suffix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")

# GPU type label used when a job asked for GPUs without naming a type
# (e.g. `--gpus=2`): Slurm may pick any type for it.
ANY_GPU_TYPE = "any"


@dataclass(frozen=True, slots=True)
class Meta:
    """What slurmrestd says about itself in every answer's `meta`."""

    api_version: str  # the data parser that answered, e.g. "v0.0.45"
    slurm_release: str  # e.g. "26.05.5"
    cluster: str  # cluster name ("" where the API version does not say)


@dataclass(frozen=True, slots=True)
class RpcStat:
    """One row of sdiag's RPC tables, by message type or by user."""

    name: str  # message type (e.g. "REQUEST_PING") or user name
    count: int
    total_time_seconds: float


@dataclass(frozen=True, slots=True)
class Diag:
    """slurmctld's scheduler statistics (`sdiag`).

    Cycle times are in seconds (Slurm reports microseconds). Counters such as
    jobs_submitted reset when Slurm resets its statistics (daily at midnight
    or `sdiag -r`); `stats_since` is when that last happened.
    """

    server_thread_count: int = 0
    agent_queue_size: int = 0
    agent_count: int = 0
    agent_thread_count: int = 0
    dbd_agent_queue_size: int = 0
    schedule_cycle_last_seconds: float = 0.0
    schedule_cycle_max_seconds: float = 0.0
    schedule_cycle_mean_seconds: float = 0.0
    # None: not reported by the API version (the metric is left out, not 0)
    schedule_cycle_sum_seconds: float | None = None  # v0.0.36-v0.0.40 lack it
    schedule_cycle_total: int = 0
    schedule_cycle_mean_depth: int = 0
    schedule_cycle_per_minute: int = 0
    # a running total since the statistics reset, not the last cycle's: slurmctld adds 1
    # per job looked at (job_scheduler.c); None in v0.0.36-v0.0.40, which lack it
    schedule_cycle_depth: int | None = None
    schedule_queue_length: int = 0
    jobs_submitted: int = 0
    jobs_started: int = 0
    jobs_completed: int = 0
    jobs_canceled: int = 0
    jobs_failed: int = 0
    jobs_pending: int = 0
    jobs_running: int = 0
    bf_active: bool = False
    bf_backfilled_jobs: int = 0
    bf_last_backfilled_jobs: int = 0
    bf_cycle_counter: int = 0
    bf_cycle_last_seconds: float = 0.0
    bf_cycle_max_seconds: float | None = None  # None: not reported (v0.0.40)
    bf_cycle_mean_seconds: float = 0.0
    bf_cycle_sum_seconds: float | None = None  # None: not reported (22.05)
    bf_depth_mean: int = 0
    bf_last_depth: int | None = None  # None: v0.0.36-v0.0.38 lack it
    bf_last_depth_try: int | None = None  # None: v0.0.36-v0.0.38 lack it
    bf_queue_len: int = 0
    bf_table_size: int | None = None  # None: v0.0.36, v0.0.37 lack it
    bf_when_last_cycle: float = 0.0  # unix time, 0 = never
    stats_since: float = 0.0  # unix time of the last statistics reset (req_time_start)
    rpcs_by_message_type: tuple[RpcStat, ...] = ()
    rpcs_by_user: tuple[RpcStat, ...] = ()


class ArrayRecord(msgspec.Struct, frozen=True, gc=False):
    """What ties a record of `/jobs` to its job array (for records of an array only)."""

    job_id: int  # the array's job id (array_job_id)
    # the task of a split-off record; None for the array's meta record, which holds
    # the tasks not split off yet (array_task_string)
    task_id: int | None
    name: str  # squeue merges a pending task into its meta record's line by name


class Job(msgspec.Struct, frozen=True, gc=False):
    """One job record of `/jobs` (an unexpanded array counts once, as in squeue).

    A msgspec Struct rather than a dataclass: 100k of them are built per cycle, and a
    Struct is built in a tenth of the time, without being tracked by the GC.
    """

    job_id: int
    state: str  # squeue's %T, lower case: pending, running, completing, completed, ...
    partition: str
    user: str
    account: str
    # the reason code (state_reason: Priority, Resources, JobHeldUser, ...; "None" when
    # none). squeue's %r prints the longer state_description instead when slurmctld set
    # one ("ReqNodeNotAvail, Reserved for maintenance"), whose node lists and free text
    # would make a label of unbounded cardinality.
    reason: str
    cpus: int  # allocated when it has resources, requested otherwise
    memory_bytes: int  # allocated when it has resources, requested otherwise
    nodes: int
    # GPUs by type: allocated (from tres_alloc_str / gres_detail) when the job
    # holds resources, requested (tres_per_job / tres_per_node x nodes /
    # tres_per_task x tasks) otherwise. ANY_GPU_TYPE when no type was named.
    # Jobs with the same resources may share this dict: never modify it.
    gpus: dict[str, int] = msgspec.field(default_factory=dict)
    pending: bool = False  # the base state is PENDING (whatever state squeue prints)
    # Tasks the record stands for: every task of a pending array's meta record (its
    # array_task_string), 1 for any other record. cpus, memory_bytes and gpus are per task.
    tasks: int = 1
    array: ArrayRecord | None = None  # None: not a record of a job array


class Node(msgspec.Struct, frozen=True, gc=False):
    """One node of `/nodes` (a msgspec Struct for the same reason as Job)."""

    name: str
    state: str  # sinfo's %T, lower case, without the */~/#/!/%/$/@ suffix
    flags: tuple[str, ...]  # every raw state word upper case, e.g. ("IDLE", "DRAIN")
    partitions: tuple[str, ...]
    cpus: int
    alloc_cpus: int
    real_memory_bytes: int
    alloc_memory_bytes: int
    free_memory_bytes: int | None  # as the OS reports it; None when unknown
    cpu_load: float | None  # load average (Slurm reports it x100); None when unknown
    # by type, from `gres` / `gres_used`; nodes with the same strings may share these
    # dicts: never modify them
    gpus_total: dict[str, int] = msgspec.field(default_factory=dict)
    gpus_alloc: dict[str, int] = msgspec.field(default_factory=dict)
    # why the node is down/drained/failing, as `sinfo -R` shows it: the free text, when it
    # was set (Unix time; None when Slurm does not know) and the user who set it ("" when
    # unknown); every API version has all three (v0.0.36-38 and v0.0.40+ alike)
    reason: str = ""
    reason_time: int | None = None
    reason_user: str = ""


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    state: str  # up, down, drain, inactive (lower case)
    total_cpus: int
    total_nodes: int
    nodes: str  # Slurm hostlist expression, e.g. "node[1-10]"
    max_time_seconds: float | None  # None = unlimited
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class ControllerPing:
    hostname: str
    responding: bool
    latency_seconds: float | None  # None where the API version does not say
    mode: str = ""  # primary / backup ... ("" where the API version does not say)


@dataclass(frozen=True, slots=True)
class Response(Generic[T]):
    """An adapter's result: the data plus the answer's meta and non-fatal warnings."""

    meta: Meta
    data: T
    warnings: tuple[str, ...] = ()
    # the answer's `last_update` (unix time), for asking next time only for changes
    # (`?update_time=`); None where the API version does not give it
    last_update: int | None = None
    # slurmrestd said nothing changed since the update_time asked for (the data is empty
    # then, not zero: keep the previous answer's)
    unchanged: bool = False


@dataclass(frozen=True, slots=True)
class Share:
    """One association of `/shares` (sshare's line): an account's, or a user's in an
    account. Values are slurmctld's (src/common/assoc_mgr.c, assoc_mgr_get_shares); None
    where Slurm sends "no value" (the root's shares are NO_VAL, as sshare's blank)."""

    name: str  # the account, or the user
    parent: str  # the parent account; for a user, its account
    partition: str  # "" unless the user's association is for one partition
    user: bool
    shares_raw: int | None  # RawShares; None: NO_VAL (root) or "parent" (FS_USE_PARENT)
    shares_norm: float | None  # NormShares
    usage_raw: int  # RawUsage: decayed TRES-billing-seconds
    usage_norm: float | None  # NormUsage
    usage_effective: float | None  # EffectvUsage
    fairshare_factor: float | None  # FairShare
    level_fs: float | None  # LevelFS: may be +inf (usage 0)
    tres_run_seconds: tuple[tuple[str, int], ...] = ()  # TRESRunMins x 60


# --- reservations and licenses (issue 11) -------------------------------------------
@dataclass(frozen=True, slots=True)
class Reservation:
    """One reservation of `/reservations`, as `scontrol show reservation` shows it."""

    name: str
    start_time: float  # unix time (StartTime)
    end_time: float | None  # unix time (EndTime); None where Slurm gives none
    node_count: int  # NodeCnt
    core_count: int  # CoreCnt
    nodes: tuple[str, ...]  # Nodes=, the host list expanded
    flags: tuple[str, ...]  # upper case, in scontrol's order: ("MAINT", "IGNORE_JOBS", ...)
    partition: str  # PartitionName ("" when none)


@dataclass(frozen=True, slots=True)
class License:
    """One license of `/licenses`, as `scontrol show license` shows it."""

    name: str
    total: float  # an int, or math.inf: INFINITE (25.11+)
    used: int
    free: float  # an int, or math.inf when Total is INFINITE
    reserved: int
    remote: bool  # served by slurmdbd (sacctmgr add resource)
    # v0.0.40+ only (None before): what the license manager last said (remote licenses)
    last_consumed: int | None = None
    last_deficit: int | None = None
    last_update: float | None = None  # unix time; None also when never (0)
    # 25.11+ (v0.0.44+): a hierarchical resource's layer, several sharing one name; ""
    # for an ordinary license
    nodes: str = ""


# --- accounting (issue 12) -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountedJob:
    """One record of slurmdbd's `/slurmdb/vX/jobs` (sacct's line, without -X's steps).

    slurmrestd always asks with JOBCOND_FLAG_DUP: a requeued job comes as one record per
    run, told apart by the submit time (job_id and submit are the record's key). Times
    are Unix seconds, 0 when unset.
    """

    job_id: int
    submit: int
    eligible: int
    start: int
    end: int
    elapsed: int  # seconds run (sacct's Elapsed: end - start, less time suspended)
    # sacct's State, lower case, base state only: completed, running, cancelled, ...;
    # "requeued" for a run that ended in a requeue
    state: str
    partition: str
    account: str
    user: str
    # resources were allocated: a job cancelled while pending has start == end
    # (slurmctld's job_mgr.c:5205-5210 in slurm-24-11-5-1) but nothing allocated
    started: bool
    cpus: int  # allocated (AllocTRES cpu)
    memory_bytes: int  # allocated (AllocTRES mem)
    gpus: dict[str, int]  # allocated GPUs by type; "" where the TRES names none
    # from the steps, asked for only with --accounting-efficiency (None: not asked or
    # not measured): user + system CPU time of every step, and the largest RSS of a
    # task of any step (sacct's TotalCPU and MaxRSS)
    cpu_used_seconds: float | None = None
    max_rss_bytes: int | None = None
