"""Collectors: exact values on small hand-built data, golden expositions, promtool, speed.

Golden files live in tests/golden/<collector>.prom; regenerate them with
`UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_collectors.py` and review the diff.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.model import (
    ANY_GPU_TYPE,
    ArrayRecord,
    ControllerPing,
    Diag,
    Job,
    Node,
    Partition,
    RpcStat,
)
from exporter.api.versions import adapter_for
from exporter.collectors import COLLECTORS
from exporter.collectors.diag import collect_diag
from exporter.collectors.jobs import collect_jobs
from exporter.collectors.nodes import collect_nodes
from exporter.collectors.nodes_out import collect_unavailable
from exporter.collectors.partitions import collect_partitions
from exporter.collectors.ping import collect_ping
from exporter.settings import load_settings

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
GiB = 1 << 30

# --------------------------------------------------------------------------- helpers


class _Families:
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render(families: Sequence[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode("utf-8")


def family(families: Sequence[Metric], name: str) -> Metric:
    found = [f for f in families if f.name == name]
    assert len(found) == 1, f"{name}: {len(found)} families"
    return found[0]


def values(families: Sequence[Metric], name: str) -> dict[tuple[str, ...], float]:
    """A family's samples as {label values in label order: value}."""
    out: dict[tuple[str, ...], float] = {}
    for sample in family(families, name).samples:
        key = tuple(sample.labels.values())
        assert key not in out, f"duplicate sample {name}{sample.labels}"
        out[key] = sample.value
    return out


def scalar(families: Sequence[Metric], name: str) -> float:
    vals = values(families, name)
    assert list(vals) == [()], vals
    return vals[()]


def names(families: Sequence[Metric]) -> list[str]:
    return [f.name for f in families]


# --------------------------------------------------------------------------- data


def node(
    name: str,
    state: str,
    flags: tuple[str, ...],
    partitions: tuple[str, ...],
    cpus: int,
    alloc_cpus: int = 0,
    *,
    mem: int = 256 * GiB,
    alloc_mem: int = 0,
    free_mem: int | None = 200 * GiB,
    load: float = 0.0,
    gpus: dict[str, int] | None = None,
    gpus_alloc: dict[str, int] | None = None,
    reason: str = "",
    reason_time: int | None = None,
    reason_user: str = "",
) -> Node:
    return Node(
        name=name,
        state=state,
        flags=flags,
        partitions=partitions,
        cpus=cpus,
        alloc_cpus=alloc_cpus,
        real_memory_bytes=mem,
        alloc_memory_bytes=alloc_mem,
        free_memory_bytes=free_mem,
        cpu_load=load,
        gpus_total=gpus or {},
        gpus_alloc=gpus_alloc or {},
        reason=reason,
        reason_time=reason_time,
        reason_user=reason_user,
    )


NODES = [
    node("cn01", "idle", ("IDLE",), ("cpu", "all"), 64, load=0.02),
    node("cn02", "mixed", ("MIXED",), ("cpu", "all"), 64, 40, alloc_mem=160 * GiB, load=39.5),
    node(
        "gn01", "allocated", ("ALLOCATED",), ("gpu", "all"), 32, 32,
        mem=512 * GiB, alloc_mem=400 * GiB, free_mem=90 * GiB, load=31.0,
        gpus={"a100": 4}, gpus_alloc={"a100": 4},
    ),
    # draining: its job keeps 8 CPUs and 1 GPU; the rest can take nothing new
    node(
        "gn02", "draining", ("MIXED", "DRAIN"), ("gpu",), 32, 8,
        mem=512 * GiB, alloc_mem=64 * GiB, free_mem=440 * GiB, load=8.0,
        gpus={"a100": 4}, gpus_alloc={"a100": 1}, reason="bad DIMM",
        reason_time=1_700_000_000, reason_user="alice",
    ),
    node("cn03", "down", ("DOWN", "NOT_RESPONDING"), ("cpu",), 64, free_mem=None,
         reason="Not responding", reason_time=1_700_000_100, reason_user="slurm"),
    # slurmd reports more GPUs in use than configured: idle must not go negative
    node(
        "gn03", "mixed", ("MIXED",), ("gpu", "all"), 32, 4,
        mem=512 * GiB, alloc_mem=32 * GiB, free_mem=470 * GiB, load=4.0,
        gpus={"h100": 2}, gpus_alloc={"h100": 3},
    ),
    # powered down by power saving (sinfo: idle~): still takes jobs
    node("gn04", "idle", ("IDLE", "POWERED_DOWN"), ("gpu",), 16, mem=128 * GiB,
         free_mem=None, gpus={"l4": 2}),
    node("cn04", "drained", ("IDLE", "DRAIN"), ("cpu", "all"), 64, reason="disk full",
         reason_time=1_700_000_200, reason_user="root"),
    node("cn05", "fail", ("IDLE", "FAIL"), ("cpu",), 8, mem=32 * GiB, free_mem=30 * GiB,
         reason="failing fan"),
]


def job(
    job_id: int,
    state: str,
    partition: str,
    user: str,
    account: str,
    cpus: int,
    mem: int,
    *,
    reason: str = "None",
    gpus: dict[str, int] | None = None,
) -> Job:
    return Job(
        job_id=job_id,
        state=state,
        partition=partition,
        user=user,
        account=account,
        reason=reason,
        cpus=cpus,
        memory_bytes=mem,
        nodes=1,
        gpus=gpus or {},
        pending=state == "pending",
    )


JOBS = [
    job(101, "running", "cpu", "alice", "physics", 64, 128 * GiB),
    job(102, "running", "gpu", "bob", "chem", 16, 64 * GiB, gpus={"a100": 2}),
    job(103, "running", "gpu", "bob", "chem", 8, 32 * GiB, gpus={"a100": 1, "h100": 1}),
    # untyped request (--gpus=2)
    job(104, "pending", "gpu", "carol", "physics", 8, 16 * GiB, reason="Resources",
        gpus={ANY_GPU_TYPE: 2}),
    job(105, "pending", "cpu", "alice", "physics", 128, 256 * GiB, reason="Priority"),
    job(106, "pending", "cpu", "dave", "chem", 4, 8 * GiB, reason="Priority"),
    job(107, "pending", "cpu,gpu", "carol", "physics", 2, 4 * GiB, reason="Dependency"),
    job(108, "completing", "cpu", "alice", "physics", 1, 1 * GiB),
    job(109, "pending", "gpu", "bob", "chem", 4, 8 * GiB, reason="Resources", gpus={"l4": 1}),
    job(110, "running", "gpu", "carol", "physics", 4, 8 * GiB, gpus={"h100": 0}),
]

DIAG = Diag(
    server_thread_count=3,
    agent_queue_size=0,
    agent_count=0,
    agent_thread_count=0,
    dbd_agent_queue_size=2,
    schedule_cycle_last_seconds=0.000512,
    schedule_cycle_max_seconds=0.0421,
    schedule_cycle_mean_seconds=0.000734,
    schedule_cycle_sum_seconds=1.0963,
    schedule_cycle_total=1494,
    schedule_cycle_mean_depth=12,
    schedule_cycle_per_minute=2,
    schedule_cycle_depth=9,
    schedule_queue_length=7,
    jobs_submitted=412,
    jobs_started=398,
    jobs_completed=371,
    jobs_canceled=12,
    jobs_failed=3,
    jobs_pending=7,
    jobs_running=14,
    bf_active=False,
    bf_backfilled_jobs=2211,
    bf_last_backfilled_jobs=37,
    bf_cycle_counter=690,
    bf_cycle_last_seconds=0.001823,
    bf_cycle_max_seconds=0.25,
    bf_cycle_mean_seconds=0.0021,
    bf_cycle_sum_seconds=1.449,
    bf_depth_mean=6,
    bf_last_depth=5,
    bf_last_depth_try=3,
    bf_queue_len=5,
    bf_table_size=4,
    bf_when_last_cycle=1764072000.0,
    stats_since=1764028800.0,
    rpcs_by_message_type=(
        RpcStat("REQUEST_PARTITION_INFO", 2880, 0.412),
        RpcStat("REQUEST_JOB_INFO", 2880, 3.918),
        RpcStat("REQUEST_NODE_INFO", 2880, 1.207),
        RpcStat("MESSAGE_NODE_REGISTRATION_STATUS", 96, 0.05),
        RpcStat("REQUEST_PING", 1440, 0.031),
    ),
    rpcs_by_user=(
        RpcStat("slurm", 8640, 5.5),
        RpcStat("root", 1536, 0.12),
        RpcStat("alice", 220, 0.6),
    ),
)

PARTITIONS = [
    Partition("gpu", "up", 112, 4, "gn[01-04]", 86400.0),
    Partition("cpu", "up", 264, 5, "cn[01-05]", 172800.0, is_default=True),
    Partition("debug", "drain", 16, 1, "gn04", None),
    Partition("old", "inactive", 0, 0, "", 3600.0),
]

PINGS = [
    ControllerPing("ctl2", False, None, "backup"),
    ControllerPing("ctl1", True, 0.00123, "primary"),
]

# --------------------------------------------------------------------------- nodes


def test_nodes_each_node_counts_once_by_sinfo_state() -> None:
    fams = collect_nodes(NODES)
    assert values(fams, "slurm_nodes_by_state") == {
        ("allocated",): 1,
        ("down",): 1,
        ("drained",): 1,
        ("draining",): 1,
        ("fail",): 1,
        ("idle",): 2,
        ("mixed",): 2,
    }
    assert sum(values(fams, "slurm_nodes_by_state").values()) == len(NODES)


def test_nodes_cpus_split_like_sinfo() -> None:
    fams = collect_nodes(NODES)
    # allocated: every node's allocated CPUs, the draining gn02's 8 included
    # idle: unallocated on cn01 64, cn02 24, gn01 0, gn03 28, gn04 (powered down) 16
    # other: unallocated on gn02 (draining) 24, cn03 (down) 64, cn04 (drained) 64, cn05 (fail) 8
    assert values(fams, "slurm_cpus") == {
        ("allocated",): 40 + 32 + 8 + 4,
        ("idle",): 64 + 24 + 28 + 16,
        ("other",): 24 + 64 + 64 + 8,
    }
    assert scalar(fams, "slurm_cpus_configured") == 376
    assert sum(values(fams, "slurm_cpus").values()) == 376
    # sinfo (_update_sinfo in src/sinfo/sinfo.c) counts FAIL and FUTURE nodes' as idle
    assert "sinfo counts fail and future ones idle" in family(fams, "slurm_cpus").documentation


def test_nodes_memory() -> None:
    fams = collect_nodes(NODES)
    assert scalar(fams, "slurm_memory_total_bytes") == (4 * 256 + 3 * 512 + 128 + 32) * GiB
    assert scalar(fams, "slurm_memory_allocated_bytes") == (160 + 400 + 64 + 32) * GiB
    # cn03 and gn04 do not report free memory
    assert scalar(fams, "slurm_memory_free_bytes") == (200 * 3 + 90 + 440 + 470 + 30) * GiB
    assert values(collect_nodes([NODES[4]]), "slurm_memory_free_bytes") == {}


def test_nodes_gpus_idle_only_where_usable_and_never_negative() -> None:
    fams = collect_nodes(NODES)
    assert values(fams, "slurm_gpus_configured") == {("a100",): 8, ("h100",): 2, ("l4",): 2}
    assert values(fams, "slurm_gpus_allocated") == {("a100",): 5, ("h100",): 3, ("l4",): 0}
    # a100: gn01 full, gn02's 3 free ones are on a draining node; h100: 2 - 3 -> 0
    assert values(fams, "slurm_gpus_idle") == {("a100",): 0, ("h100",): 0, ("l4",): 2}


def test_nodes_gpus_idle_with_allocation_under_unknown_type() -> None:
    n = node("g", "mixed", ("MIXED",), ("gpu",), 8, 1, gpus={"a100": 4, "v100": 2},
             gpus_alloc={"gpu": 5})
    fams = collect_nodes([n])
    assert values(fams, "slurm_gpus_idle") == {("a100",): 0, ("v100",): 1, ("gpu",): 0}
    assert sum(values(fams, "slurm_gpus_idle").values()) == 6 - 5


def test_nodes_per_partition_counts_shared_nodes_in_each() -> None:
    fams = collect_nodes(NODES)
    assert values(fams, "slurm_partition_nodes_by_state") == {
        ("all", "allocated"): 1,
        ("all", "drained"): 1,
        ("all", "idle"): 1,
        ("all", "mixed"): 2,
        ("cpu", "down"): 1,
        ("cpu", "drained"): 1,
        ("cpu", "fail"): 1,
        ("cpu", "idle"): 1,
        ("cpu", "mixed"): 1,
        ("gpu", "allocated"): 1,
        ("gpu", "draining"): 1,
        ("gpu", "idle"): 1,
        ("gpu", "mixed"): 1,
    }
    assert sum(values(fams, "slurm_partition_nodes_by_state").values()) == 14 > len(NODES)
    assert values(fams, "slurm_partition_cpus_by_state") == {
        ("all", "allocated"): 40 + 32 + 4,
        ("all", "idle"): 64 + 24 + 28,
        ("all", "other"): 64,
        ("cpu", "allocated"): 40,
        ("cpu", "idle"): 64 + 24,
        ("cpu", "other"): 64 + 64 + 8,
        ("gpu", "allocated"): 32 + 8 + 4,
        ("gpu", "idle"): 28 + 16,
        ("gpu", "other"): 24,
    }
    assert values(fams, "slurm_partition_gpus_configured") == {
        ("all", "a100"): 4,
        ("all", "h100"): 2,
        ("gpu", "a100"): 8,
        ("gpu", "h100"): 2,
        ("gpu", "l4"): 2,
    }
    assert values(fams, "slurm_partition_gpus_allocated") == {
        ("all", "a100"): 4,
        ("all", "h100"): 3,
        ("gpu", "a100"): 5,
        ("gpu", "h100"): 3,
        ("gpu", "l4"): 0,
    }


def test_nodes_per_node_off_by_default() -> None:
    per_node = [n for n in names(collect_nodes(NODES)) if n.startswith("slurm_node_")]
    # the unavailable nodes' own series have their own flag (tests/unit/test_nodes_out.py)
    assert per_node == ["slurm_node_unavailable_info",
                        "slurm_node_unavailable_since_timestamp_seconds"]


def test_nodes_per_node() -> None:
    fams = collect_nodes(NODES, per_node=True)
    assert values(fams, "slurm_node_state")[("gn02", "draining")] == 1
    assert len(values(fams, "slurm_node_state")) == len(NODES)
    assert values(fams, "slurm_node_cpus_configured")[("gn02",)] == 32
    assert values(fams, "slurm_node_cpus_allocated")[("gn02",)] == 8
    assert values(fams, "slurm_node_memory_total_bytes")[("gn01",)] == 512 * GiB
    assert values(fams, "slurm_node_memory_allocated_bytes")[("gn01",)] == 400 * GiB
    free = values(fams, "slurm_node_free_memory_bytes")
    assert free[("gn01",)] == 90 * GiB
    assert ("cn03",) not in free and ("gn04",) not in free
    assert values(fams, "slurm_node_cpu_load")[("cn02",)] == 39.5
    assert values(fams, "slurm_node_gpus_configured") == {
        ("gn01", "a100"): 4,
        ("gn02", "a100"): 4,
        ("gn03", "h100"): 2,
        ("gn04", "l4"): 2,
    }
    assert values(fams, "slurm_node_gpus_allocated") == {
        ("gn01", "a100"): 4,
        ("gn02", "a100"): 1,
        ("gn03", "h100"): 3,
        ("gn04", "l4"): 0,
    }


def test_nodes_empty() -> None:
    fams = collect_nodes([], per_node=True)
    assert values(fams, "slurm_nodes_by_state") == {}
    assert values(fams, "slurm_cpus") == {("allocated",): 0, ("idle",): 0, ("other",): 0}
    assert scalar(fams, "slurm_cpus_configured") == 0
    assert values(fams, "slurm_node_state") == {}


# --------------------------------------------------------------------------- jobs


def test_jobs_by_state_and_partition() -> None:
    fams = collect_jobs(JOBS)
    assert values(fams, "slurm_jobs_by_state") == {
        ("completing", "cpu"): 1,
        ("pending", "cpu"): 2,
        ("pending", "cpu,gpu"): 1,
        ("pending", "gpu"): 2,
        ("running", "cpu"): 1,
        ("running", "gpu"): 3,
    }
    assert values(fams, "slurm_jobs_cpus") == {
        ("completing", "cpu"): 1,
        ("pending", "cpu"): 132,
        ("pending", "cpu,gpu"): 2,
        ("pending", "gpu"): 12,
        ("running", "cpu"): 64,
        ("running", "gpu"): 28,
    }
    assert values(fams, "slurm_jobs_memory_bytes") == {
        ("completing", "cpu"): 1 * GiB,
        ("pending", "cpu"): 264 * GiB,
        ("pending", "cpu,gpu"): 4 * GiB,
        ("pending", "gpu"): 24 * GiB,
        ("running", "cpu"): 128 * GiB,
        ("running", "gpu"): 104 * GiB,
    }


def test_jobs_gpus_by_type_only_where_positive() -> None:
    fams = collect_jobs(JOBS)
    assert values(fams, "slurm_jobs_gpus") == {
        ("pending", "gpu", ANY_GPU_TYPE): 2,  # --gpus=2, no type named
        ("pending", "gpu", "l4"): 1,
        ("running", "gpu", "a100"): 3,
        ("running", "gpu", "h100"): 1,  # job 110's h100: 0 leaves no sample
    }


def test_jobs_pending_by_reason() -> None:
    fams = collect_jobs(JOBS)
    assert values(fams, "slurm_jobs_pending_by_reason") == {
        ("cpu", "Priority"): 2,
        ("cpu,gpu", "Dependency"): 1,
        ("gpu", "Resources"): 2,
    }


def array_record(
    job_id: int, array_id: int, task_id: int | None, *, state: str = "pending",
    partition: str = "debug", name: str = "big", tasks: int = 1,
    reason: str = "JobHeldUser",
) -> Job:
    """A record of a job array of 4-CPU, 1 GiB, one-a100 tasks."""
    return Job(
        job_id, state, partition, "alice", "physics", reason, 4, GiB, 1, {"a100": 1},
        pending=state == "pending", tasks=tasks, array=ArrayRecord(array_id, task_id, name),
    )


# Array 19 of 1000 tasks: task 5 split off with the same name and partition (squeue shows
# it on 19's line), task 6 moved to partition batch and task 1000 renamed (own lines),
# task 7 split off and held by the admin (same line, its own reason); array 8: task 1
# runs, tasks 2-3 pend.
ARRAYS = [
    array_record(19, 19, None, tasks=996),  # 19_[1-4,8-999]
    array_record(20, 19, 5),
    array_record(21, 19, 6, partition="batch"),
    array_record(22, 19, 1000, name="other"),
    array_record(23, 19, 7, reason="JobHeldAdmin"),
    array_record(8, 8, None, tasks=2, name="small", reason="JobArrayTaskLimit"),
    array_record(9, 8, 1, state="running", name="small", reason="None"),
]


def test_jobs_count_as_plain_squeue_lists_them_and_every_pending_task_as_demand() -> None:
    fams = collect_jobs(ARRAYS)
    # squeue: 19_[1-5,7-999], 19_6 (batch), 19_1000 (other name), 8_[2-3%1], 8_1
    assert values(fams, "slurm_jobs_by_state") == {
        ("pending", "batch"): 1,
        ("pending", "debug"): 3,
        ("running", "debug"): 1,
    }
    assert values(fams, "slurm_jobs_pending_by_reason") == {
        ("batch", "JobHeldUser"): 1,
        ("debug", "JobArrayTaskLimit"): 1,
        ("debug", "JobHeldUser"): 2,
    }
    # sdiag's jobs_pending and squeue -r: every task, 996 + 4 split off + 2 = 1002
    assert values(fams, "slurm_jobs_pending_tasks") == {
        ("batch", "JobHeldUser"): 1,
        ("debug", "JobArrayTaskLimit"): 2,
        ("debug", "JobHeldAdmin"): 1,
        ("debug", "JobHeldUser"): 998,
    }
    assert values(fams, "slurm_jobs_cpus") == {
        ("pending", "batch"): 4,
        ("pending", "debug"): 4 * (996 + 3 + 2),
        ("running", "debug"): 4,
    }
    assert values(fams, "slurm_jobs_memory_bytes")[("pending", "debug")] == 1001 * GiB
    assert values(fams, "slurm_jobs_gpus")[("pending", "debug", "a100")] == 1001
    assert values(fams, "slurm_user_jobs_by_state") == {
        ("alice", "pending"): 4, ("alice", "running"): 1
    }
    assert values(fams, "slurm_user_cpus")[("alice", "pending")] == 4 * 1002
    assert values(fams, "slurm_account_gpus")[("physics", "pending")] == 1002


def test_a_task_whose_array_line_is_gone_has_its_own_line() -> None:
    # the meta record is gone (every task split off): no line to merge into
    tasks = [array_record(20, 19, 5), array_record(21, 19, 6)]
    assert values(collect_jobs(tasks), "slurm_jobs_by_state") == {("pending", "debug"): 2}
    # running tasks are never merged, even beside their pending meta record
    mixed = [array_record(19, 19, None, tasks=3), array_record(20, 19, 5, state="running")]
    assert values(collect_jobs(mixed), "slurm_jobs_by_state") == {
        ("pending", "debug"): 1,
        ("running", "debug"): 1,
    }


def test_jobs_per_user_and_account() -> None:
    fams = collect_jobs(JOBS)
    assert values(fams, "slurm_user_jobs_by_state") == {
        ("alice", "completing"): 1,
        ("alice", "pending"): 1,
        ("alice", "running"): 1,
        ("bob", "pending"): 1,
        ("bob", "running"): 2,
        ("carol", "pending"): 2,
        ("carol", "running"): 1,
        ("dave", "pending"): 1,
    }
    assert values(fams, "slurm_user_cpus") == {
        ("alice", "completing"): 1,
        ("alice", "pending"): 128,
        ("alice", "running"): 64,
        ("bob", "pending"): 4,
        ("bob", "running"): 24,
        ("carol", "pending"): 10,
        ("carol", "running"): 4,
        ("dave", "pending"): 4,
    }
    assert values(fams, "slurm_user_gpus") == {
        ("bob", "pending"): 1,
        ("bob", "running"): 4,
        ("carol", "pending"): 2,
    }
    assert values(fams, "slurm_account_jobs_by_state") == {
        ("chem", "pending"): 2,
        ("chem", "running"): 2,
        ("physics", "completing"): 1,
        ("physics", "pending"): 3,
        ("physics", "running"): 2,
    }
    assert values(fams, "slurm_account_cpus") == {
        ("chem", "pending"): 8,
        ("chem", "running"): 24,
        ("physics", "completing"): 1,
        ("physics", "pending"): 138,
        ("physics", "running"): 68,
    }
    assert values(fams, "slurm_account_gpus") == {
        ("chem", "pending"): 1,
        ("chem", "running"): 4,
        ("physics", "pending"): 2,
    }


BASE_JOB_FAMILIES = [
    "slurm_jobs_by_state",
    "slurm_jobs_cpus",
    "slurm_jobs_memory_bytes",
    "slurm_jobs_gpus",
    "slurm_jobs_pending_by_reason",
    "slurm_jobs_pending_tasks",
]
USER_FAMILIES = ["slurm_user_jobs_by_state", "slurm_user_cpus", "slurm_user_gpus"]
ACCOUNT_FAMILIES = ["slurm_account_jobs_by_state", "slurm_account_cpus", "slurm_account_gpus"]


def test_jobs_per_user_and_account_switches() -> None:
    assert names(collect_jobs(JOBS)) == BASE_JOB_FAMILIES + USER_FAMILIES + ACCOUNT_FAMILIES
    assert names(collect_jobs(JOBS, per_user=False)) == BASE_JOB_FAMILIES + ACCOUNT_FAMILIES
    assert names(collect_jobs(JOBS, per_account=False)) == BASE_JOB_FAMILIES + USER_FAMILIES
    off = collect_jobs(JOBS, per_user=False, per_account=False)
    assert names(off) == BASE_JOB_FAMILIES
    assert values(off, "slurm_jobs_by_state") == values(collect_jobs(JOBS), "slurm_jobs_by_state")


def test_jobs_empty_still_emits_families() -> None:
    fams = collect_jobs([])
    assert names(fams) == BASE_JOB_FAMILIES + USER_FAMILIES + ACCOUNT_FAMILIES
    assert all(not f.samples for f in fams)
    text = render(fams)
    assert "# TYPE slurm_jobs_by_state gauge" in text
    assert "Absent series mean 0." in text


# --------------------------------------------------------------------------- diag, partitions, ping


def test_diag_values_and_counter_names() -> None:
    fams = collect_diag(DIAG)
    assert scalar(fams, "slurm_scheduler_cycle_last_seconds") == 0.000512
    assert scalar(fams, "slurm_backfill_active") == 0
    assert scalar(collect_diag(Diag(bf_active=True)), "slurm_backfill_active") == 1
    # client_python names counter families without _total and appends it to the sample
    cycles = family(fams, "slurm_scheduler_cycles")
    assert cycles.type == "counter"
    assert [(s.name, s.value) for s in cycles.samples] == [("slurm_scheduler_cycles_total", 1494)]
    assert values(fams, "slurm_rpc_calls")[("REQUEST_JOB_INFO",)] == 2880
    assert values(fams, "slurm_rpc_user_time_seconds")[("slurm",)] == 5.5
    text = render(fams)
    assert "# TYPE slurm_rpc_calls_total counter\n" in text
    assert 'slurm_rpc_calls_total{message_type="REQUEST_PING"} 1440.0\n' in text


def test_diag_running_sums_are_counters_not_last_values() -> None:
    # schedule_cycle_depth is slurmctld's sum of every cycle's depth since the reset
    # (job_scheduler.c), last_backfilled_jobs a sum of jobs backfilled since the reset
    fams = collect_diag(DIAG)
    assert "slurm_scheduler_cycle_last_depth" not in names(fams)
    assert "slurm_backfill_last_backfilled_jobs" not in names(fams)
    depth = family(fams, "slurm_scheduler_cycle_depth")
    assert depth.type == "counter"
    assert [(s.name, s.value) for s in depth.samples] == [("slurm_scheduler_cycle_depth_total", 9)]
    backfilled = family(fams, "slurm_backfill_backfilled_jobs_since_reset")
    assert backfilled.type == "counter"
    assert [(s.name, s.value) for s in backfilled.samples] == [
        ("slurm_backfill_backfilled_jobs_since_reset_total", 37)
    ]
    assert "daily at midnight UTC" in backfilled.documentation


def test_diag_rpc_per_user_can_be_turned_off() -> None:
    on = collect_diag(DIAG)
    off = collect_diag(DIAG, per_user=False)
    assert {"slurm_rpc_user_calls", "slurm_rpc_user_time_seconds"} <= set(names(on))
    assert set(names(on)) - set(names(off)) == {
        "slurm_rpc_user_calls",
        "slurm_rpc_user_time_seconds",
    }
    assert values(off, "slurm_rpc_calls") == values(on, "slurm_rpc_calls")
    # the flag (default on: today's output, and the cardinality of --jobs-per-user)
    collect = COLLECTORS["diag"].collect
    assert names(collect(DIAG, load_settings(["--auth", "none"]), 0.0)) == names(on)
    flag_off = load_settings(["--auth", "none", "--no-diag-rpc-per-user"])
    assert names(collect(DIAG, flag_off, 0.0)) == names(off)


def test_diag_rpc_rows_with_the_same_name_are_summed() -> None:
    diag = Diag(rpcs_by_user=(RpcStat("alice", 2, 0.5), RpcStat("alice", 3, 0.25)))
    fams = collect_diag(diag)
    assert values(fams, "slurm_rpc_user_calls") == {("alice",): 5}
    assert values(fams, "slurm_rpc_user_time_seconds") == {("alice",): 0.75}


def test_partitions() -> None:
    fams = collect_partitions(PARTITIONS)
    assert values(fams, "slurm_partition_state") == {
        ("cpu", "up"): 1,
        ("debug", "drain"): 1,
        ("gpu", "up"): 1,
        ("old", "inactive"): 1,
    }
    assert values(fams, "slurm_partition_cpus_configured")[("cpu",)] == 264
    assert values(fams, "slurm_partition_nodes_configured")[("gpu",)] == 4
    max_time = values(fams, "slurm_partition_max_time_seconds")
    assert max_time[("cpu",)] == 172800
    assert max_time[("debug",)] == float("inf")
    assert 'slurm_partition_max_time_seconds{partition="debug"} +Inf\n' in render(fams)


def test_ping() -> None:
    fams = collect_ping(PINGS)
    assert values(fams, "slurm_controller_up") == {("ctl1",): 1, ("ctl2",): 0}
    assert values(fams, "slurm_controller_latency_seconds") == {("ctl1",): 0.00123}


# --------------------------------------------------------------------------- exposition


def test_awkward_label_values_survive_exposition() -> None:
    awkward = ['say "hi"', "back\\slash", "two\nlines", "Jürgen_研究室", "tab\there", ""]
    jobs = [
        job(i, "pending", part, user, "acct", 1, GiB, reason=reason)
        for i, (user, part, reason) in enumerate(
            zip(awkward, reversed(awkward), awkward[1:] + awkward[:1], strict=True)
        )
    ]
    text = render(collect_jobs(jobs))
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    users = {s.labels["user"] for s in parsed["slurm_user_jobs_by_state"].samples}
    assert users == set(awkward)
    parts = {s.labels["partition"] for s in parsed["slurm_jobs_by_state"].samples}
    assert parts == set(awkward)
    pending = {
        (s.labels["partition"], s.labels["reason"]): s.value
        for s in parsed["slurm_jobs_pending_by_reason"].samples
    }
    assert pending == {(p, r): 1 for _, p, r in
                       zip(awkward, reversed(awkward), awkward[1:] + awkward[:1], strict=True)}
    if shutil.which("promtool"):
        _promtool(text)


def test_output_does_not_depend_on_input_order() -> None:
    rng = random.Random(7)
    nodes, jobs = list(NODES), list(JOBS)
    rng.shuffle(nodes)
    rng.shuffle(jobs)
    assert render(collect_nodes(nodes, per_node=True)) == render(
        collect_nodes(NODES, per_node=True)
    )
    assert render(collect_jobs(jobs)) == render(collect_jobs(JOBS))
    assert render(collect_partitions(PARTITIONS[::-1])) == render(collect_partitions(PARTITIONS))
    assert render(collect_ping(PINGS[::-1])) == render(collect_ping(PINGS))


GOLDEN_CASES = {
    "diag": lambda: collect_diag(DIAG),
    "jobs": lambda: collect_jobs(JOBS),
    "nodes": lambda: collect_nodes(NODES, per_node=True),
    # the recorded 26.05 answer with a drained and a down node (tests/fixtures/nodes-out.md)
    "nodes_out": lambda: collect_unavailable(_recorded_out_nodes()),
    "partitions": lambda: collect_partitions(PARTITIONS),
    "ping": lambda: collect_ping(PINGS),
}


def _recorded_out_nodes() -> list[Node]:
    fixture = GOLDEN.parent / "fixtures" / "slurm-26.05-nodes-out" / "v0.0.45_nodes.json"
    return list(adapter_for("v0.0.45").parse_nodes(fixture.read_bytes()).data)


def _promtool(text: str) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.path.exists(promtool):
        pytest.skip("promtool not installed")
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    problems = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0 and not problems.strip(), problems


@pytest.mark.parametrize("collector", sorted(GOLDEN_CASES))
def test_golden_exposition(collector: str) -> None:
    text = render(GOLDEN_CASES[collector]())
    path = GOLDEN / f"{collector}.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("collector", sorted(GOLDEN_CASES))
def test_golden_passes_promtool(collector: str) -> None:
    path = GOLDEN / f"{collector}.prom"
    _promtool(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- speed


def synthetic(n_jobs: int, n_nodes: int) -> tuple[list[Job], list[Node]]:
    rng = random.Random(42)
    states = ["pending"] * 3 + ["running"] * 6 + ["completing", "completed"]
    parts = [f"p{i}" for i in range(8)]
    reasons = ["Priority", "Resources", "Dependency", "QOSMaxCpuPerUserLimit"]
    jobs = [
        Job(
            job_id=i,
            state=rng.choice(states),
            partition=rng.choice(parts),
            user=f"user{rng.randrange(2000)}",
            account=f"acct{rng.randrange(200)}",
            reason=rng.choice(reasons),
            cpus=rng.randrange(1, 129),
            memory_bytes=rng.randrange(1, 1 << 38),
            nodes=1,
            gpus={"a100": rng.randrange(1, 9)} if rng.random() < 0.2 else {},
        )
        for i in range(n_jobs)
    ]
    node_states = ["idle", "mixed", "allocated", "drained", "down"]
    nodes = []
    for i in range(n_nodes):
        state = rng.choice(node_states)
        flags = {"drained": ("IDLE", "DRAIN"), "down": ("DOWN",)}.get(state, (state.upper(),))
        gpu = i % 4 == 0
        nodes.append(
            node(
                f"n{i:05d}", state, flags, (rng.choice(parts), "all"), 128,
                rng.randrange(0, 129), load=1.5,
                gpus={"a100": 8} if gpu else None,
                gpus_alloc={"a100": rng.randrange(0, 9)} if gpu else None,
            )
        )
    return jobs, nodes


def test_speed_100k_jobs_10k_nodes() -> None:
    jobs, nodes = synthetic(100_000, 10_000)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        collect_jobs(jobs)
        collect_nodes(nodes)
        best = min(best, time.perf_counter() - start)
    print(f"\ncollect_jobs(100k) + collect_nodes(10k): {best:.3f} s")
    # generous bound so a loaded CI runner does not flake; typical is ~0.15 s
    assert best < 1.0
