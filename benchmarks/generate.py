"""A synthetic Slurm cluster: real slurmrestd captures grown into N jobs and M nodes.

    python3 -m benchmarks.generate --jobs 100000 --nodes 10000 --out DIR \
        [--versions v0.0.45,v0.0.42,v0.0.38] [--seed 1] [--captures tests/fixtures]

Every answer keeps the exact JSON shape of the release that serves that API version
(jobs and nodes grown from the `slurm-<release>-gpus` captures, partitions rebuilt from
`slurm-<release>`, diag and ping copied), pretty-printed with an indent of 2 as
slurmrestd prints it. The cluster is one model, rendered once per version, so the
counts are the same whatever version is asked. Written to DIR:

- `<version>_{jobs,nodes,partitions,diag,ping}.json`: the answers, as the replay
  server (benchmarks/replay.py) serves them;
- `openapi_v3.json`: the release's /openapi/v3, reduced to the generated versions;
- `truth.json`: the expected counts (jobs by state, partition, user, account, GPU
  type, pending reason; nodes, CPUs, memory and GPUs by state; partitions), derived
  from the model with squeue's and sinfo's rules, never from the exporter's code;
- `manifest.json`: parameters, files, sizes and bytes per job.

Deterministic: the same arguments give byte-identical files. Jobs are written one at a
time from a template with holes (the capture's text, split where the values go), so
100k jobs take seconds and never sit in memory as one string.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURES = TOP / "tests" / "fixtures"
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")

# Which release's captures give each API version its shape.
RELEASE_OF = {
    "v0.0.37": "22.05",
    "v0.0.38": "22.05",
    "v0.0.40": "24.11",
    "v0.0.41": "24.11",
    "v0.0.42": "24.11",
    "v0.0.43": "26.05",
    "v0.0.44": "26.05",
    "v0.0.45": "26.05",
}
SUPPORTED_VERSIONS = tuple(RELEASE_OF)

# The cluster's "now": fixed, so that output does not depend on the clock.
T0 = 1795609664
MIB = 1024 * 1024
GPU_TYPES = ("a100", "h100", "l40s")


def is_legacy(version: str) -> bool:
    """v0.0.36-38 (Slurm 22.05): plain numbers, job state as one word, `gres:` prefixes."""
    return version < "v0.0.40"


# --------------------------------------------------------------------------- model


@dataclass(slots=True)
class NodeModel:
    name: str
    group: str  # cpu, gpu, bigmem
    cpus: int
    sockets: int
    real_mib: int
    gres: list[tuple[str, int]]  # configured GPUs (type, count)
    gres_suffix: str  # "(S:0-1)" or ""
    partitions: list[str] = field(default_factory=list)
    base: str = "IDLE"
    flags: tuple[str, ...] = ()
    state: str = "idle"  # what sinfo %T prints, without suffix
    available: bool = True  # can take jobs: sinfo counts its free CPUs as idle, not other
    alloc_cpus: int = 0
    alloc_mib: int = 0
    gpu_alloc: dict[str, int] = field(default_factory=dict)
    free_mib: int | None = None
    cpu_load: int = 0  # x100, as Slurm reports it
    reason: str = ""


@dataclass(slots=True)
class JobModel:
    job_id: int
    name: str
    user: str
    uid: int
    account: str
    partition: str
    words: tuple[str, ...]  # v0.0.40+ job_state
    legacy_word: str  # v0.0.38 job_state (the word squeue prints)
    state: str  # squeue %T, lower case
    reason: str
    holds: bool  # holds (or held) an allocation: tres_alloc_str is filled
    nodes: int
    cpus: int
    tasks: int
    mem_mib: int  # total
    mem_per_cpu_mib: int | None
    mem_per_node_mib: int | None
    gpu_style: str  # "" or one of GPU_STYLES
    gpu_type: str  # requested type ("" = any) or allocated type
    gpu_count: int  # total GPUs asked for
    per_job: str = ""  # tres_per_job without its gres prefix, e.g. "gpu:h100:2"
    per_node: str = ""
    per_task: str = ""
    alloc_type: str = ""  # GPU type given by the allocation
    node_names: list[str] = field(default_factory=list)
    array_job_id: int = 0
    array_task_id: int | None = None
    array_task_string: str = ""
    array_max_tasks: int = 0
    submit: int = 0
    start: int = 0
    end: int = 0
    time_limit: int | None = None  # minutes; None = UNLIMITED
    priority: int = 1
    qos: str = "normal"

    def gpus(self) -> dict[str, int]:
        """GPUs by type as the exporter documents them: allocated when the job holds
        resources, requested otherwise ("any" for a request without a type)."""
        if not self.gpu_count:
            return {}
        if self.holds:
            return {self.alloc_type: self.gpu_count}
        return {self.gpu_type or "any": self.gpu_count}


# (base, flags, sinfo word, can take jobs, allocation, weight, reason)
NODE_STATES: tuple[tuple[str, tuple[str, ...], str, bool, str, float, str], ...] = (
    ("ALLOCATED", (), "allocated", True, "all", 40.0, ""),
    ("MIXED", (), "mixed", True, "part", 27.0, ""),
    ("IDLE", (), "idle", True, "none", 12.0, ""),
    ("IDLE", ("POWERED_DOWN",), "idle", True, "none", 6.0, ""),
    ("IDLE", ("DRAIN",), "drained", False, "none", 3.0, "hw: DIMM errors"),
    ("MIXED", ("DRAIN",), "draining", False, "part", 1.5, "kernel update"),
    ("ALLOCATED", ("DRAIN",), "draining", False, "all", 1.0, "kernel update"),
    ("DOWN", ("NOT_RESPONDING",), "down", False, "none", 2.0, "Not responding"),
    ("DOWN", ("DRAIN", "NOT_RESPONDING"), "drained", False, "none", 0.5, "Kill task failed"),
    ("DOWN", ("INVALID_REG",), "inval", False, "none", 0.2, "gres/gpu count too low (2 < 4)"),
    ("IDLE", ("COMPLETING",), "completing", True, "none", 1.0, ""),
    ("IDLE", ("FAIL",), "fail", False, "none", 0.5, "ECC errors"),
    ("MIXED", ("FAIL",), "failing", False, "part", 0.3, "ECC errors"),
    ("IDLE", ("MAINTENANCE", "RESERVED"), "maint", True, "none", 1.0, ""),
    ("IDLE", ("RESERVED",), "reserved", True, "none", 1.5, ""),
    ("IDLE", ("PLANNED",), "planned", True, "none", 0.5, ""),
    ("MIXED", ("PLANNED",), "mixed", True, "part", 0.5, ""),
    ("IDLE", ("REBOOT_REQUESTED",), "reboot", True, "none", 0.5, ""),
    ("FUTURE", (), "future", False, "none", 0.5, ""),
)

# (category, weight): what squeue would show
JOB_STATES = (
    ("RUNNING", 35.5),
    ("CONFIGURING", 0.5),
    ("PENDING", 45.0),
    ("COMPLETING", 2.0),
    ("COMPLETED", 7.0),
    ("FAILED", 3.0),
    ("CANCELLED", 4.0),
    ("TIMEOUT", 1.5),
    ("OUT_OF_MEMORY", 0.5),
    ("NODE_FAIL", 0.3),
    ("PREEMPTED", 0.4),
    ("SUSPENDED", 0.3),
)
PENDING_REASONS = (
    ("Priority", 40.0),
    ("Resources", 25.0),
    ("Dependency", 8.0),
    ("QOSMaxJobsPerUserLimit", 5.0),
    ("AssocGrpCpuLimit", 4.0),
    ("JobHeldUser", 4.0),
    ("BeginTime", 3.0),
    ("JobArrayTaskLimit", 3.0),
    ("ReqNodeNotAvail, Reserved for maintenance", 3.0),
    ("DependencyNeverSatisfied", 2.0),
    ("PartitionTimeLimit", 1.0),
    ("Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority "
     "partitions", 1.5),
    ("launch failed requeued held", 0.5),
)
FINAL_REASON = {
    "FAILED": "NonZeroExitCode",
    "TIMEOUT": "TimeLimit",
    "NODE_FAIL": "NodeDown",
    "OUT_OF_MEMORY": "OutOfMemory",
}
# GPU request styles and the tres_per_* field each one fills (sbatch option in comment)
GPU_STYLES = (
    ("gpus_any", 25.0),  # --gpus=N            -> tres_per_job gres/gpu:N
    ("gpus_typed", 20.0),  # --gpus=h100:N     -> tres_per_job gres/gpu:h100:N
    ("gres_typed", 25.0),  # --gres=gpu:a100:K -> tres_per_node gres/gpu:a100:K
    ("per_node_any", 15.0),  # --gpus-per-node=K -> tres_per_node gres/gpu:K
    ("per_task_any", 10.0),  # --gpus-per-task=1 -> tres_per_task gres/gpu:1
    ("per_task_typed", 5.0),  # --gpus-per-task=l40s:1 -> tres_per_task gres/gpu:l40s:1
)
# partition: (node groups or share of them, max time in minutes or None, state, job weight)
PARTITIONS: tuple[tuple[str, int | None, str, float], ...] = (
    ("cpu", 2880, "UP", 50.0),
    ("gpu", 1440, "UP", 15.0),
    ("bigmem", 4320, "UP", 5.0),
    ("long", None, "UP", 10.0),
    ("debug", 30, "UP", 5.0),
    ("preempt", 1440, "UP", 7.0),
    ("interactive", 480, "DRAIN", 3.0),
)
MULTI_PARTITION = "cpu,long"  # what squeue prints for a job pending in both
MULTI_PARTITION_WEIGHT = 5.0


def _pick(rng: random.Random, table: Iterable[tuple[Any, float]]) -> Any:
    items = list(table)
    return rng.choices([i[0] for i in items], weights=[i[1] for i in items])[0]


class _Picker:
    """rng.choices with the cumulative weights computed once (100k draws)."""

    def __init__(self, table: Iterable[tuple[Any, float]]) -> None:
        items = list(table)
        self.values = [i[0] for i in items]
        total = 0.0
        self.cum: list[float] = []
        for i in items:
            total += i[1]
            self.cum.append(total)

    def __call__(self, rng: random.Random) -> Any:
        return rng.choices(self.values, cum_weights=self.cum)[0]


def mem_text(mib: int) -> str:
    """Memory as Slurm writes it in TRES strings (M, or G/T when whole)."""
    if mib and mib % MIB == 0:
        return f"{mib // MIB}T"
    if mib and mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"


def hostlist(names: list[str]) -> str:
    """Compress names of one prefix and fixed-width numbers: cn[00001-00003,00007]."""
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    m = re.match(r"^(.*?)(\d+)$", names[0])
    assert m
    prefix, width = m.group(1), len(m.group(2))
    nums = sorted(int(n[len(prefix):]) for n in names)
    ranges: list[str] = []
    start = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        ranges.append(
            f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}"
        )
        if n is not None:
            start = prev = n
    return f"{prefix}[{','.join(ranges)}]"


def _idx(start: int, count: int) -> str:
    if count == 0:
        return "N/A"
    return str(start) if count == 1 else f"{start}-{start + count - 1}"


@dataclass
class Cluster:
    nodes: list[NodeModel]
    jobs: list[JobModel]
    partition_nodes: dict[str, list[NodeModel]]
    users: int
    accounts: int


def build_cluster(n_jobs: int, n_nodes: int, seed: int, n_users: int = 1000,
                  n_accounts: int = 100) -> Cluster:
    rng = random.Random(seed)
    nodes = _build_nodes(rng, n_nodes)
    part_nodes = _assign_partitions(nodes)
    jobs = _build_jobs(rng, n_jobs, part_nodes, n_users, n_accounts)
    return Cluster(nodes, jobs, part_nodes, n_users, n_accounts)


def _build_nodes(rng: random.Random, n: int) -> list[NodeModel]:
    n_gpu = round(n * 0.15)
    n_big = round(n * 0.05)
    if n >= 3:
        n_gpu, n_big = max(n_gpu, 1), max(n_big, 1)
    elif n == 2:
        n_gpu, n_big = 1, 0
    else:
        n_gpu, n_big = 0, 0
    n_cpu = n - n_gpu - n_big
    gpu_kinds = _Picker(
        [
            ((("a100", 4),), 40.0),
            ((("h100", 8),), 30.0),
            ((("l40s", 4),), 20.0),
            ((("a100", 2), ("h100", 2)), 10.0),
        ]
    )
    states = _Picker([(s, s[5]) for s in NODE_STATES])
    nodes: list[NodeModel] = []
    for i in range(n_cpu):
        cpus = rng.choice((64, 128, 128, 192))
        nodes.append(NodeModel(f"cn{i + 1:05d}", "cpu", cpus, 2, cpus * 4000, [], ""))
    for i in range(n_gpu):
        kind = gpu_kinds(rng)
        suffix = "(S:0-1)" if rng.random() < 0.5 else ""
        nodes.append(NodeModel(f"gn{i + 1:04d}", "gpu", 64, 2, 1024000, list(kind), suffix))
    for i in range(n_big):
        nodes.append(NodeModel(f"bm{i + 1:03d}", "bigmem", 96, 4, 2048000, [], ""))
    for node in nodes:
        base, flags, word, available, alloc, _, reason = states(rng)
        node.base, node.flags, node.state, node.available = base, flags, word, available
        node.reason = reason
        if alloc == "all":
            node.alloc_cpus = node.cpus
        elif alloc == "part":
            node.alloc_cpus = rng.randint(1, node.cpus - 1)
        if node.alloc_cpus:
            share = node.alloc_cpus / node.cpus
            node.alloc_mib = int(node.real_mib * share * rng.uniform(0.3, 0.9)) // 1000 * 1000
        for gtype, count in node.gres:
            if alloc == "all":
                used = rng.randint(max(1, count // 2), count)
            elif alloc == "part":
                used = rng.randint(0, count)
            else:
                used = 0
            node.gpu_alloc[gtype] = used
        asleep = base in ("DOWN", "FUTURE") or "POWERED_DOWN" in flags
        if not asleep:
            node.free_mib = node.real_mib - node.alloc_mib - rng.randint(2000, 20000)
            node.cpu_load = int(node.alloc_cpus * rng.uniform(80, 100))
    return nodes


def _assign_partitions(nodes: list[NodeModel]) -> dict[str, list[NodeModel]]:
    cpu = [n for n in nodes if n.group == "cpu"]
    gpu = [n for n in nodes if n.group == "gpu"]
    big = [n for n in nodes if n.group == "bigmem"]
    members = {
        "cpu": cpu,
        "gpu": gpu,
        "bigmem": big,
        "long": cpu[: max(1, len(cpu) // 2)] if cpu else [],
        "debug": cpu[: max(1, len(cpu) // 50)] + gpu[:1] if cpu else gpu[:1],
        "preempt": list(nodes),
        "interactive": cpu[-max(1, len(cpu) // 20):] if cpu else [],
    }
    for name, *_ in PARTITIONS:
        for node in members[name]:
            node.partitions.append(name)
    return {name: members[name] for name, *_ in PARTITIONS}


def _build_jobs(
    rng: random.Random,
    n: int,
    part_nodes: dict[str, list[NodeModel]],
    n_users: int,
    n_accounts: int,
) -> list[JobModel]:
    users = [f"user{i:04d}" for i in range(1, n_users + 1)]
    # a few heavy users, a long tail (Zipf-like)
    user_cum: list[float] = []
    total = 0.0
    for rank in range(1, n_users + 1):
        total += 1 / rank**0.8
        user_cum.append(total)
    accounts = [f"acct{i:03d}" for i in range(1, n_accounts + 1)]
    primary = {u: accounts[(i * 7) % n_accounts] for i, u in enumerate(users)}
    second = {u: accounts[(i * 13 + 5) % n_accounts] for i, u in enumerate(users)}
    uid = {u: 10000 + i for i, u in enumerate(users)}

    state_pick = _Picker(JOB_STATES)
    reason_pick = _Picker(PENDING_REASONS)
    part_pick = _Picker([(p[0], p[3]) for p in PARTITIONS] + [(MULTI_PARTITION,
                                                               MULTI_PARTITION_WEIGHT)])
    style_pick = _Picker(GPU_STYLES)
    nodes_pick = _Picker([(1, 80.0), (2, 10.0), (4, 6.0), (8, 3.0), (16, 1.0)])
    cpn_pick = _Picker([(1, 20.0), (2, 10.0), (4, 15.0), (8, 15.0), (16, 15.0), (32, 15.0),
                        (64, 10.0)])
    names = ("run_sim", "train", "preprocess", "analysis", "mpi_solver", "render", "bench",
             "jupyter", "sweep", "postproc", "align_reads", "md_equil")

    jobs: list[JobModel] = []
    job_id = 1_000_000
    for _ in range(n):
        job_id += rng.choice((1, 1, 1, 2, 3))
        user = users[rng.choices(range(n_users), cum_weights=user_cum)[0]]
        account = primary[user] if rng.random() < 0.9 else second[user]
        cat = state_pick(rng)
        partition = part_pick(rng)
        if partition == MULTI_PARTITION and cat != "PENDING":
            partition = "cpu"
        pool_name = partition.split(",")[0]
        pool = part_nodes[pool_name] or part_nodes["preempt"]
        if not pool:
            pool_name, pool = "preempt", []

        gpu_job = partition == "gpu" or (partition in ("debug", "preempt") and rng.random() < 0.1)
        nodes = nodes_pick(rng)
        if pool:
            nodes = min(nodes, len(pool))
        cpn = cpn_pick(rng)
        cpus = nodes * cpn
        tasks = cpus if rng.random() < 0.7 else nodes
        if rng.random() < 0.7:
            mpc = rng.choice((1000, 2000, 3800, 4000, 8000))
            mem_per_cpu, mem_per_node, mem = mpc, None, mpc * cpus
        else:
            mpn = rng.choice((16000, 64000, 128000, 250 * 1024, 500 * 1024))
            mem_per_cpu, mem_per_node, mem = None, mpn, mpn * nodes

        words: tuple[str, ...]
        if cat == "RUNNING":
            words, legacy, state = ("RUNNING",), "RUNNING", "running"
        elif cat == "CONFIGURING":
            words, legacy, state = ("RUNNING", "CONFIGURING"), "CONFIGURING", "configuring"
        elif cat == "COMPLETING":
            base = rng.choice(("COMPLETED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"))
            words, legacy, state = (base, "COMPLETING"), "COMPLETING", "completing"
        else:
            words, legacy, state = (cat,), cat, cat.lower()

        if cat == "PENDING":
            reason, holds = reason_pick(rng), False
        elif cat == "FAILED" and rng.random() < 0.1:
            reason, holds = "BadConstraints", False
        elif cat == "CANCELLED" and rng.random() < 0.5:
            reason, holds = "None", False
        else:
            reason, holds = FINAL_REASON.get(cat, "None"), True
        if not pool:
            holds = False

        job = JobModel(
            job_id=job_id,
            name=f"{rng.choice(names)}_{rng.randint(1, 999)}",
            user=user,
            uid=uid[user],
            account=account,
            partition=partition,
            words=words,
            legacy_word=legacy,
            state=state,
            reason=reason,
            holds=holds,
            nodes=nodes,
            cpus=cpus,
            tasks=tasks,
            mem_mib=mem,
            mem_per_cpu_mib=mem_per_cpu,
            mem_per_node_mib=mem_per_node,
            gpu_style="",
            gpu_type="",
            gpu_count=0,
        )
        if gpu_job:
            _add_gpu_request(rng, job, style_pick(rng))
        if holds:
            start = rng.randrange(len(pool))
            picked = [pool[(start + k) % len(pool)] for k in range(nodes)]
            job.node_names = sorted(p.name for p in picked)
            if job.gpu_count:
                types = [t for node in picked for t, _ in node.gres]
                job.alloc_type = job.gpu_type or (types[0] if types else "a100")
        # arrays: unexpanded pending arrays count once (their resources once per task);
        # running tasks each count
        if cat == "PENDING" and rng.random() < 0.1:
            size, limit = rng.choice((10, 100, 500, 1000)), rng.choice((5, 10, 20, 50))
            job.array_job_id = job_id
            job.array_task_string = f"1-{size}%{limit}"
            job.array_max_tasks = limit
            if rng.random() < 0.5:
                job.reason = "JobArrayTaskLimit"
        elif cat in ("RUNNING", "COMPLETED") and rng.random() < 0.15:
            job.array_job_id = max(1_000_000, job_id - rng.randint(1, 5000))
            job.array_task_id = rng.randint(1, 500)
        job.submit = T0 - rng.randint(60, 7 * 86400)
        if holds:
            job.start = min(T0 - 1, job.submit + rng.randint(0, 86400))
        limit_min = rng.choice((30, 60, 240, 720, 1440, 2880, None))
        job.time_limit = limit_min
        if holds and cat not in ("RUNNING", "CONFIGURING", "SUSPENDED"):
            job.end = min(T0, job.start + rng.randint(10, 3600))
        elif holds and limit_min is not None:
            job.end = job.start + limit_min * 60
        job.priority = 0 if reason == "JobHeldUser" else rng.randint(1000, 200000)
        job.qos = rng.choice(("normal", "normal", "normal", "high", "low"))
        jobs.append(job)
    return jobs


def _add_gpu_request(rng: random.Random, job: JobModel, style: str) -> None:
    gtype = rng.choice(GPU_TYPES)
    job.gpu_style = style
    if style == "gpus_any":
        count = rng.choice((1, 2, 4, 8)) * job.nodes
        job.per_job, job.gpu_count = f"gpu:{count}", count
    elif style == "gpus_typed":
        count = rng.choice((1, 2, 4, 8)) * job.nodes
        job.per_job, job.gpu_type, job.gpu_count = f"gpu:{gtype}:{count}", gtype, count
    elif style == "gres_typed":
        k = rng.choice((1, 2, 4))
        job.per_node, job.gpu_type, job.gpu_count = f"gpu:{gtype}:{k}", gtype, k * job.nodes
    elif style == "per_node_any":
        k = rng.choice((1, 2, 4, 8))
        job.per_node, job.gpu_count = f"gpu:{k}", k * job.nodes
    else:
        # --gpus-per-task: a few tasks, one GPU each
        job.tasks = rng.choice((1, 2, 4)) * job.nodes
        if style == "per_task_typed":
            job.per_task, job.gpu_type = f"gpu:{gtype}:1", gtype
        else:
            job.per_task = "gpu:1"
        job.gpu_count = job.tasks


# ------------------------------------------------------------------------- truth


def _inc(d: dict[str, Any], keys: tuple[str, ...], value: int) -> None:
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = d.get(keys[-1], 0) + value


def truth(cluster: Cluster) -> dict[str, Any]:
    """Expected counts, from the model and squeue/sinfo's rules (not the exporter's code)."""
    j: dict[str, Any] = {
        "total": len(cluster.jobs),
        "by_state": {},
        "by_partition": {},
        "by_state_partition": {},
        "cpus_by_state_partition": {},
        "memory_bytes_by_state_partition": {},
        "gpus_by_state_partition_type": {},
        "gpus_by_type": {},
        "pending_by_partition_reason": {},
        "by_user_state": {},
        "cpus_by_user_state": {},
        "gpus_by_user_state": {},
        "by_account_state": {},
        "cpus_by_account_state": {},
        "gpus_by_account_state": {},
        "gpu_request_styles": {},
        "arrays": {"pending_unexpanded": 0, "tasks": 0},
    }
    users: set[str] = set()
    accounts: set[str] = set()
    for job in cluster.jobs:
        s, p = job.state, job.partition
        users.add(job.user)
        accounts.add(job.account)
        _inc(j, ("by_state", s), 1)
        _inc(j, ("by_partition", p), 1)
        _inc(j, ("by_state_partition", s, p), 1)
        # a pending array's resources count for each of its tasks ("1-{size}%{limit}")
        tasks = 1
        if job.array_task_string:
            tasks = int(job.array_task_string.split("%")[0].split("-")[1])
        _inc(j, ("cpus_by_state_partition", s, p), job.cpus * tasks)
        _inc(j, ("memory_bytes_by_state_partition", s, p), job.mem_mib * MIB * tasks)
        gpus = {t: n * tasks for t, n in job.gpus().items()}
        ngpus = sum(gpus.values())
        for t, n in gpus.items():
            _inc(j, ("gpus_by_state_partition_type", s, p, t), n)
            _inc(j, ("gpus_by_type", t), n)
        if job.gpu_style:
            _inc(j, ("gpu_request_styles", job.gpu_style), 1)
        if s == "pending":
            _inc(j, ("pending_by_partition_reason", p, job.reason), 1)
        _inc(j, ("by_user_state", job.user, s), 1)
        _inc(j, ("cpus_by_user_state", job.user, s), job.cpus * tasks)
        _inc(j, ("by_account_state", job.account, s), 1)
        _inc(j, ("cpus_by_account_state", job.account, s), job.cpus * tasks)
        if ngpus:
            _inc(j, ("gpus_by_user_state", job.user, s), ngpus)
            _inc(j, ("gpus_by_account_state", job.account, s), ngpus)
        if job.array_task_string:
            j["arrays"]["pending_unexpanded"] += 1
        elif job.array_task_id is not None:
            j["arrays"]["tasks"] += 1
    j["users"], j["accounts"] = len(users), len(accounts)

    nd: dict[str, Any] = {
        "total": len(cluster.nodes),
        "by_state": {},
        "cpus_by_state": {"allocated": 0, "idle": 0, "other": 0},
        "cpus_configured": 0,
        "memory_total_bytes": 0,
        "memory_allocated_bytes": 0,
        "memory_free_bytes": None,
        "gpus_configured_by_type": {},
        "gpus_allocated_by_type": {},
        "gpus_idle_by_type": {},
        "partition_nodes_by_state": {},
        "partition_cpus_by_state": {},
        "partition_gpus_configured": {},
        "partition_gpus_allocated": {},
    }
    for node in cluster.nodes:
        rest = node.cpus - node.alloc_cpus
        rest_state = "idle" if node.available else "other"
        _inc(nd, ("by_state", node.state), 1)
        nd["cpus_by_state"]["allocated"] += node.alloc_cpus
        nd["cpus_by_state"][rest_state] += rest
        nd["cpus_configured"] += node.cpus
        nd["memory_total_bytes"] += node.real_mib * MIB
        nd["memory_allocated_bytes"] += node.alloc_mib * MIB
        if node.free_mib is not None:
            nd["memory_free_bytes"] = (nd["memory_free_bytes"] or 0) + node.free_mib * MIB
        for t, n in node.gres:
            used = node.gpu_alloc.get(t, 0)
            _inc(nd, ("gpus_configured_by_type", t), n)
            _inc(nd, ("gpus_allocated_by_type", t), used)
            _inc(nd, ("gpus_idle_by_type", t), max(0, n - used) if node.available else 0)
        for p in node.partitions:
            _inc(nd, ("partition_nodes_by_state", p, node.state), 1)
            _inc(nd, ("partition_cpus_by_state", p, "allocated"), node.alloc_cpus)
            _inc(nd, ("partition_cpus_by_state", p, rest_state), rest)
            for cpu_state in ("allocated", "idle", "other"):
                _inc(nd, ("partition_cpus_by_state", p, cpu_state), 0)
            for t, n in node.gres:
                _inc(nd, ("partition_gpus_configured", p, t), n)
                _inc(nd, ("partition_gpus_allocated", p, t), node.gpu_alloc.get(t, 0))

    parts: dict[str, Any] = {}
    for name, max_min, state, _ in PARTITIONS:
        members = cluster.partition_nodes[name]
        parts[name] = {
            "state": state.lower(),
            "total_nodes": len(members),
            "total_cpus": sum(n.cpus for n in members),
            "max_time_seconds": None if max_min is None else max_min * 60,
            "default": name == "debug",
        }
    return {"jobs": j, "nodes": nd, "partitions": parts}


# ------------------------------------------------------------------ text templates

_HOLE = "@@HOLE{}@@"
_HOLE_RE = re.compile(r'"@@HOLE(\d+)@@"')


def dumps_at(value: Any, indent: int) -> str:
    """`value` as json.dumps(indent=2) prints it, for a place `indent` spaces deep."""
    if isinstance(value, dict | list) and value:
        return json.dumps(value, indent=2).replace("\n", "\n" + " " * indent)
    return json.dumps(value)


def wrapped_at(number: int | float | None, indent: int, infinite: bool = False) -> str:
    """A v0.0.40+ number `{set, infinite, number}` as slurmrestd prints it."""
    pad = " " * (indent + 2)
    is_set = number is not None and not infinite
    return (
        f"{{\n{pad}\"set\": {'true' if is_set else 'false'},\n"
        f"{pad}\"infinite\": {'true' if infinite else 'false'},\n"
        f"{pad}\"number\": {json.dumps(number if is_set else 0)}\n{' ' * indent}}}"
    )


class Template:
    """A JSON object's pretty text, split where the values of some fields go.

    `holes` names paths into the object; `render` fills them with ready-made
    JSON text (see dumps_at / wrapped_at), given the depth of each hole.
    """

    def __init__(self, obj: dict[str, Any], holes: dict[str, tuple[str, ...]], indent: int):
        work = copy.deepcopy(obj)
        for i, path in enumerate(holes.values()):
            target = work
            for key in path[:-1]:
                target = target[key]
            if path[-1] in target:
                target[path[-1]] = _HOLE.format(i)
        text = json.dumps(work, indent=2).replace("\n", "\n" + " " * indent)
        pieces = _HOLE_RE.split(text)
        self.parts = pieces[0::2]
        self.names = [list(holes)[int(k)] for k in pieces[1::2]]
        # the depth of each hole: the indentation of the line it is on
        self.indents = [
            len(line) - len(line.lstrip(" "))
            for line in (p.rsplit("\n", 1)[-1] for p in self.parts[:-1])
        ]

    def render(self, values: dict[str, Callable[[int], str] | str]) -> str:
        out = [self.parts[0]]
        for name, indent, part in zip(self.names, self.indents, self.parts[1:], strict=True):
            v = values[name]
            out.append(v if isinstance(v, str) else v(indent))
            out.append(part)
        return "".join(out)


def _doc_parts(doc: dict[str, Any], key: str) -> tuple[str, str]:
    """The text of an answer before and after the value of its data key."""
    work = dict(doc)
    work[key] = _HOLE.format(0)
    text = json.dumps(work, indent=2)
    before, after = text.split(f'"{_HOLE.format(0)}"')
    return before, after


# ------------------------------------------------------------------------ render


@dataclass
class Captures:
    root: Path
    version: str

    @property
    def release(self) -> str:
        return RELEASE_OF[self.version]

    def load(self, endpoint: str, gpus: bool = False) -> dict[str, Any]:
        folder = f"slurm-{self.release}{'-gpus' if gpus else ''}"
        path = self.root / folder / f"{self.version}_{endpoint}.json"
        data: dict[str, Any] = json.loads(path.read_bytes())
        return data

    def has(self, endpoint: str) -> bool:
        return (self.root / f"slurm-{self.release}" / f"{self.version}_{endpoint}.json").exists()

    def raw(self, endpoint: str) -> bytes:
        folder = self.root / f"slurm-{self.release}"
        return (folder / f"{self.version}_{endpoint}.json").read_bytes()


_JOB_STRINGS = (
    "account", "user_name", "group_name", "partition", "name", "state_reason",
    "array_task_string", "batch_host", "tres_req_str", "tres_alloc_str", "tres_per_job",
    "tres_per_node", "tres_per_task", "nodes", "standard_output", "standard_error",
    "stdout_expanded", "stderr_expanded", "current_working_directory", "submit_line",
    "mail_user", "qos", "command",
)
_JOB_INTS = ("job_id", "user_id", "group_id")
_JOB_NUMS = (
    "array_job_id", "array_task_id", "array_max_tasks", "cpus", "node_count", "tasks",
    "memory_per_cpu", "memory_per_node", "submit_time", "eligible_time", "accrue_time",
    "start_time", "end_time", "time_limit", "priority", "last_sched_evaluation",
)
_JOB_OTHER = ("job_state", "gres_detail", "job_resources")


class JobRenderer:
    def __init__(self, caps: Captures) -> None:
        doc = caps.load("jobs", gpus=True)
        by_id = {j["job_id"]: j for j in doc["jobs"]}
        self.legacy = is_legacy(caps.version)
        self.prefix = "gres:" if self.legacy else "gres/"
        ran, never = by_id[4], by_id[15]  # run_sleep (RUNNING), alice_job (PENDING)
        self.wrapped = {k for k in _JOB_NUMS if isinstance(ran.get(k), dict)}
        holes: dict[str, tuple[str, ...]] = {
            k: (k,) for k in (*_JOB_STRINGS, *_JOB_INTS, *_JOB_NUMS, *_JOB_OTHER)
        }
        if isinstance(ran.get("step_id"), dict) and "job_id" in ran["step_id"]:
            holes["step_job_id"] = ("step_id", "job_id")
        self.ran = Template(ran, holes, 4)
        # a job that never ran keeps the capture's job_resources (null, {} or absent)
        self.never = Template(never, {k: v for k, v in holes.items() if k != "job_resources"}, 4)
        self.jr_template = ran.get("job_resources")
        work = dict(doc)
        if "last_update" in work and not self.legacy:
            work["last_update"] = {"set": True, "infinite": False, "number": T0}
        if "last_backfill" in work and not self.legacy:
            work["last_backfill"] = {"set": True, "infinite": False, "number": T0 - 17}
        self.before, self.after = _doc_parts(work, "jobs")

    def _num(self, key: str, value: int | float | None, infinite: bool = False) -> Any:
        if key in self.wrapped:
            return lambda indent: wrapped_at(value, indent, infinite)
        return json.dumps(None if infinite else value)

    def job_resources(self, job: JobModel) -> Any:
        tmpl = self.jr_template
        assert isinstance(tmpl, dict)
        n = len(job.node_names)
        cpus = [job.cpus // n + (1 if i < job.cpus % n else 0) for i in range(n)]
        mems = [job.mem_mib // n] * n
        if isinstance(tmpl.get("nodes"), str):  # up to v0.0.40: a hostlist and per-node entries
            listed = tmpl["allocated_nodes"]
            result = {**tmpl, "nodes": hostlist(job.node_names), "allocated_hosts": n}
            if isinstance(listed, dict):  # v0.0.36-37: {"0": {sockets, cores, memory, cpus}}
                entry0 = next(iter(listed.values()))
                result["allocated_nodes"] = {
                    str(i): {**entry0, "memory": m, "cpus": c}
                    for i, (c, m) in enumerate(zip(cpus, mems, strict=True))
                }
            else:  # v0.0.38: [{sockets, nodename, cpus_used, memory_used, memory_allocated}]
                result["allocated_nodes"] = [
                    {**listed[0], "nodename": name, "memory_allocated": m}
                    for name, m in zip(job.node_names, mems, strict=True)
                ]
            for key in ("allocated_cores", "allocated_cpus"):
                if key in tmpl:
                    result[key] = job.cpus
            return result
        nodes = dict(tmpl["nodes"])
        entry0 = nodes["allocation"][0]
        entries = []
        for i, (name, c, m) in enumerate(zip(job.node_names, cpus, mems, strict=True)):
            e = dict(entry0)
            e["index"], e["name"] = i, name
            e["cpus"] = {"count": c, "used": 0}
            e["memory"] = {"used": 0, "allocated": m}
            e["sockets"] = e["sockets"][:2]  # two-socket nodes (the lab node has five)
            entries.append(e)
        nodes.update(count=n, list=hostlist(job.node_names), allocation=entries)
        return {**tmpl, "nodes": nodes, "cpus": job.cpus}

    def render(self, job: JobModel) -> str:
        p = self.prefix
        req = f"cpu={job.cpus},mem={mem_text(job.mem_mib)},node={job.nodes},billing={job.cpus}"
        alloc = ""
        gres_detail: list[str] = []
        if job.gpu_count:
            req += f",gres/gpu={job.gpu_count}"
            if job.gpu_type:
                req += f",gres/gpu:{job.gpu_type}={job.gpu_count}"
        if job.holds:
            alloc = (f"cpu={job.cpus},mem={mem_text(job.mem_mib)},node={len(job.node_names)},"
                     f"billing={job.cpus}")
            if job.gpu_count:
                alloc += f",gres/gpu={job.gpu_count},gres/gpu:{job.alloc_type}={job.gpu_count}"
                n = len(job.node_names)
                for i in range(n):
                    k = job.gpu_count // n + (1 if i < job.gpu_count % n else 0)
                    gres_detail.append(f"gpu:{job.alloc_type}:{k}(IDX:{_idx(0, k)})")
        home = f"/home/{job.user}"
        out = f"{home}/{job.name}/slurm-{job.job_id}.out"
        running = job.state in ("running", "configuring", "suspended")
        values: dict[str, Any] = {
            "account": json.dumps(job.account),
            "user_name": json.dumps(job.user),
            "group_name": json.dumps(job.user),
            "partition": json.dumps(job.partition),
            "name": json.dumps(job.name),
            "state_reason": json.dumps(job.reason),
            "array_task_string": json.dumps(job.array_task_string),
            "batch_host": json.dumps(job.node_names[0] if job.holds else ""),
            "tres_req_str": json.dumps(req),
            "tres_alloc_str": json.dumps(alloc),
            "tres_per_job": json.dumps(p + job.per_job if job.per_job else ""),
            "tres_per_node": json.dumps(p + job.per_node if job.per_node else ""),
            "tres_per_task": json.dumps(p + job.per_task if job.per_task else ""),
            "nodes": json.dumps(hostlist(job.node_names)),
            "standard_output": json.dumps(out),
            "standard_error": json.dumps(out),
            "stdout_expanded": json.dumps(out),
            "stderr_expanded": json.dumps(out),
            "current_working_directory": json.dumps(f"{home}/{job.name}"),
            "submit_line": json.dumps(
                f"sbatch -J {job.name} -A {job.account} -p {job.partition} -N{job.nodes} "
                f"-n{job.tasks} {home}/{job.name}/job.sh"
            ),
            "mail_user": json.dumps(job.user),
            "qos": json.dumps(job.qos),
            "command": json.dumps(f"{home}/{job.name}/job.sh"),
            "job_id": str(job.job_id),
            "user_id": str(job.uid),
            "group_id": str(job.uid),
            "array_job_id": self._num("array_job_id", job.array_job_id),
            "array_task_id": self._num("array_task_id", job.array_task_id),
            "array_max_tasks": self._num("array_max_tasks", job.array_max_tasks),
            "cpus": self._num("cpus", job.cpus),
            "node_count": self._num("node_count", job.nodes),
            "tasks": self._num("tasks", job.tasks),
            "memory_per_cpu": self._num("memory_per_cpu", job.mem_per_cpu_mib),
            "memory_per_node": self._num("memory_per_node", job.mem_per_node_mib),
            "submit_time": self._num("submit_time", job.submit),
            "eligible_time": self._num("eligible_time", job.submit),
            "accrue_time": self._num("accrue_time", job.submit),
            "start_time": self._num("start_time", job.start),
            "end_time": self._num("end_time", job.end),
            "time_limit": self._num("time_limit", job.time_limit,
                                    infinite=job.time_limit is None),
            "priority": self._num("priority", job.priority),
            "last_sched_evaluation": self._num("last_sched_evaluation",
                                               T0 - 30 if running else job.submit),
            "step_job_id": lambda indent: wrapped_at(job.job_id, indent),
            "job_state": (
                json.dumps(job.legacy_word)
                if self.legacy
                else (lambda indent: dumps_at(list(job.words), indent))
            ),
            "gres_detail": lambda indent: dumps_at(gres_detail, indent),
        }
        if job.holds:
            jr = self.job_resources(job)
            values["job_resources"] = lambda indent: dumps_at(jr, indent)
            return self.ran.render(values)
        return self.never.render(values)


class NodeRenderer:
    def __init__(self, caps: Captures) -> None:
        doc = caps.load("nodes", gpus=True)
        self.legacy = is_legacy(caps.version)
        tmpl = doc["nodes"][0]
        keys = (
            "name", "hostname", "address", "state", "state_flags", "partitions", "cpus",
            "effective_cpus", "alloc_cpus", "alloc_idle_cpus", "idle_cpus", "real_memory",
            "alloc_memory", "free_mem", "free_memory", "cpu_load", "gres", "gres_used",
            "tres", "tres_used", "reason", "sockets", "cores", "last_busy",
            "reason_changed_at", "tres_weighted",
        )
        self.wrapped = {k for k in keys if isinstance(tmpl.get(k), dict)}
        self.template = Template(tmpl, {k: (k,) for k in keys}, 4)
        work = dict(doc)
        if "last_update" in work and not self.legacy:
            work["last_update"] = {"set": True, "infinite": False, "number": T0}
        self.before, self.after = _doc_parts(work, "nodes")

    def _num(self, key: str, value: int | float | None) -> Any:
        if key in self.wrapped:
            return lambda indent: wrapped_at(value, indent)
        return json.dumps(value)

    def render(self, node: NodeModel) -> str:
        gres = ",".join(f"gpu:{t}:{n}{node.gres_suffix}" for t, n in node.gres)
        used_parts, start = [], 0
        for t, n in node.gres:
            a = node.gpu_alloc.get(t, 0)
            used_parts.append(f"gpu:{t}:{a}(IDX:{_idx(start, a)})")
            start += n
        total_gpus = sum(n for _, n in node.gres)
        used_gpus = sum(node.gpu_alloc.values())
        tres = f"cpu={node.cpus},mem={mem_text(node.real_mib)},billing={node.cpus}"
        if total_gpus:
            tres += f",gres/gpu={total_gpus}" + "".join(
                f",gres/gpu:{t}={n}" for t, n in node.gres
            )
        tres_used = ""
        if node.alloc_cpus:
            tres_used = f"cpu={node.alloc_cpus},mem={mem_text(node.alloc_mib)}"
            if used_gpus:
                tres_used += f",gres/gpu={used_gpus}" + "".join(
                    f",gres/gpu:{t}={node.gpu_alloc[t]}" for t, _ in node.gres
                )
        number = int(node.name[2:])
        octet = {"cpu": 1, "gpu": 2, "bigmem": 3}[node.group]
        address = f"10.{octet}.{number // 250}.{number % 250}"
        if self.legacy:
            state: Any = json.dumps(node.base.lower())
        else:
            words = [node.base, *node.flags]
            state = lambda indent: dumps_at(words, indent)  # noqa: E731
        flags = list(node.flags)
        values: dict[str, Any] = {
            "name": json.dumps(node.name),
            "hostname": json.dumps(node.name),
            "address": json.dumps(address),
            "state": state,
            "state_flags": lambda indent: dumps_at(flags, indent),
            "partitions": lambda indent: dumps_at(node.partitions, indent),
            "cpus": self._num("cpus", node.cpus),
            "effective_cpus": self._num("effective_cpus", node.cpus),
            "alloc_cpus": self._num("alloc_cpus", node.alloc_cpus),
            "alloc_idle_cpus": self._num("alloc_idle_cpus", node.cpus - node.alloc_cpus),
            "idle_cpus": self._num("idle_cpus", node.cpus - node.alloc_cpus),
            "real_memory": self._num("real_memory", node.real_mib),
            "alloc_memory": self._num("alloc_memory", node.alloc_mib),
            "free_mem": self._num("free_mem", node.free_mib),
            "free_memory": self._num("free_memory", node.free_mib),
            "cpu_load": self._num("cpu_load", node.cpu_load),
            "gres": json.dumps(gres),
            "gres_used": json.dumps(",".join(used_parts)),
            "tres": json.dumps(tres),
            "tres_used": json.dumps(tres_used),
            "reason": json.dumps(node.reason),
            "sockets": self._num("sockets", node.sockets),
            "cores": self._num("cores", node.cpus // node.sockets),
            "last_busy": self._num("last_busy", T0 - (0 if node.alloc_cpus else 3600)),
            "reason_changed_at": self._num("reason_changed_at", T0 - 7200 if node.reason
                                           else 0),
            "tres_weighted": self._num("tres_weighted", float(node.cpus)),
        }
        return self.template.render(values)


def render_partitions(caps: Captures, cluster: Cluster) -> str:
    doc = caps.load("partitions")
    tmpl = doc["partitions"][0]
    legacy = is_legacy(caps.version)
    parts = []
    for name, max_min, state, _ in PARTITIONS:
        members = cluster.partition_nodes[name]
        cpus = sum(n.cpus for n in members)
        p = copy.deepcopy(tmpl)
        tres = f"cpu={cpus},mem={mem_text(sum(n.real_mib for n in members))},node={len(members)}"
        p["name"] = name
        if legacy:
            p["nodes"] = hostlist_groups([n.name for n in members])
            p["total_nodes"], p["total_cpus"] = len(members), cpus
            p["state"] = state
            p["max_time_limit"] = -1 if max_min is None else max_min
            p["flags"] = ["default"] if name == "debug" else []
            p["tres"] = tres
        else:
            p["nodes"]["configured"] = hostlist_groups([n.name for n in members])
            p["nodes"]["total"] = len(members)
            p["cpus"]["total"] = cpus
            p["partition"]["state"] = [state]
            p["maximums"]["time"] = (
                {"set": False, "infinite": True, "number": 0}
                if max_min is None
                else {"set": True, "infinite": False, "number": max_min}
            )
            if "flags" in p:
                p["flags"] = ["DEFAULT"] if name == "debug" else []
            p["tres"]["configured"] = tres
        parts.append(p)
    doc["partitions"] = parts
    if "last_update" in doc and not legacy:
        doc["last_update"] = {"set": True, "infinite": False, "number": T0}
    return json.dumps(doc, indent=2)


def hostlist_groups(names: list[str]) -> str:
    """A hostlist of several prefixes: cn[00001-00100],gn[0001-0004]."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(re.sub(r"\d+$", "", n), []).append(n)
    return ",".join(hostlist(g) for g in groups.values())


# ------------------------------------------------------------------------- write


def _write_array(path: Path, before: str, after: str, items: Iterator[str],
                 trailer: str) -> tuple[int, int]:
    """Stream `before [item, item, ...] after` to path; returns (bytes, items)."""
    count = 0
    with path.open("wb", buffering=4 << 20) as f:
        f.write(before.encode())
        sep = b"[\n    "
        for text in items:
            f.write(sep)
            f.write(text.encode())
            sep = b",\n    "
            count += 1
        f.write(b"\n  ]" if count else b"[]")
        f.write(after.encode())
        f.write(trailer.encode())
        size = f.tell()
    return size, count


def _unchanged_jobs(jr: JobRenderer) -> str | None:
    """What v0.0.40+ answers to /jobs?update_time=T when no job changed since T: no jobs
    and a warning (slurmrestd's jobs.c); the replay server puts T in place of the 0."""
    if jr.legacy:
        return None
    doc = json.loads(jr.before + "[]" + jr.after)
    doc["warnings"] = [
        {"description": "No job changes since update_time=0", "source": "_op_handler_jobs"}
    ]
    return json.dumps(doc, indent=2) + "\n"


def openapi_for(root: Path, versions: list[str]) -> bytes:
    """The /openapi/v3 of the releases involved, listing only the generated versions."""
    docs = []
    for release in sorted({RELEASE_OF[v] for v in versions}):
        docs.append(json.loads((root / f"slurm-{release}" / "openapi_v3.json").read_bytes()))
    merged = docs[-1]
    paths: dict[str, Any] = {}
    pattern = re.compile(r"^/(slurm|slurmdb)/(v\d+\.\d+\.\d+)/")
    for doc in docs:
        for p, spec in doc.get("paths", {}).items():
            m = pattern.match(p)
            if m is None or m.group(2) in versions:
                paths.setdefault(p, spec)
    merged["paths"] = paths
    return (json.dumps(merged, indent=2) + "\n").encode()


def generate(
    out: Path,
    n_jobs: int,
    n_nodes: int,
    versions: list[str],
    seed: int = 1,
    captures: Path = DEFAULT_CAPTURES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the dataset to `out`; returns the manifest (also written as manifest.json)."""
    for v in versions:
        if v not in RELEASE_OF:
            raise ValueError(f"{v}: not one of {', '.join(SUPPORTED_VERSIONS)}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cluster = build_cluster(n_jobs, n_nodes, seed)
    expected = truth(cluster)
    expected["params"] = {"jobs": n_jobs, "nodes": n_nodes, "seed": seed}
    (out / "truth.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    files: dict[str, int] = {}
    per_job: dict[str, float] = {}
    for version in versions:
        caps = Captures(captures, version)
        t1 = time.perf_counter()
        jr = JobRenderer(caps)
        size, _ = _write_array(
            out / f"{version}_jobs.json", jr.before, jr.after,
            (jr.render(j) for j in cluster.jobs), "\n",
        )
        files[f"{version}_jobs.json"] = size
        unchanged = _unchanged_jobs(jr)
        if unchanged is not None:
            (out / f"{version}_jobs_unchanged.json").write_text(unchanged)
            files[f"{version}_jobs_unchanged.json"] = len(unchanged)
        per_job[version] = round(size / n_jobs) if n_jobs else 0
        nr = NodeRenderer(caps)
        size, _ = _write_array(
            out / f"{version}_nodes.json", nr.before, nr.after,
            (nr.render(n) for n in cluster.nodes), "\n",
        )
        files[f"{version}_nodes.json"] = size
        text = render_partitions(caps, cluster) + "\n"
        (out / f"{version}_partitions.json").write_text(text)
        files[f"{version}_partitions.json"] = len(text)
        # as recorded: their size does not grow with the cluster's (v0.0.37 has no licenses);
        # /shares (v0.0.40+) as the lab without slurmdbd answers it: no associations
        # (benchmarks.shares measures a large one)
        for endpoint in ("diag", "ping", "shares", "reservations", "licenses"):
            if not caps.has(endpoint):
                continue
            body = caps.raw(endpoint)
            (out / f"{version}_{endpoint}.json").write_bytes(body)
            files[f"{version}_{endpoint}.json"] = len(body)
        if log:
            log(f"{version}: {files[f'{version}_jobs.json'] / 1e6:.1f} MB jobs, "
                f"{files[f'{version}_nodes.json'] / 1e6:.1f} MB nodes in "
                f"{time.perf_counter() - t1:.1f} s")
    openapi = openapi_for(captures, versions)
    (out / "openapi_v3.json").write_bytes(openapi)
    manifest = {
        "jobs": n_jobs,
        "nodes": n_nodes,
        "seed": seed,
        "versions": versions,
        "releases": {v: RELEASE_OF[v] for v in versions},
        "last_update": T0,
        "files": files,
        "bytes_per_job": per_job,
        "seconds": round(time.perf_counter() - t0, 2),
        "generator": 1,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--versions", default="v0.0.45",
                    help=f"comma-separated, of {', '.join(SUPPORTED_VERSIONS)}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES,
                    help="folder of slurm-<release>[-gpus] captures (default tests/fixtures)")
    args = ap.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    manifest = generate(args.out, args.jobs, args.nodes, versions, args.seed, args.captures,
                        log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
