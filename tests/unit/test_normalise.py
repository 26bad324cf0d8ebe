"""The small parsers and state rules of exporter.api.normalise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.api import normalise as norm
from exporter.api.model import ANY_GPU_TYPE

MIB = 1024 * 1024
GIB = 1024 * MIB


# --- job state: job_state_string() precedence --------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["RUNNING"], "running"),
        (["PENDING"], "pending"),
        (["RUNNING", "COMPLETING"], "completing"),
        (["COMPLETED", "COMPLETING"], "completing"),
        (["PENDING", "REQUEUED"], "requeued"),
        (["PENDING", "REQUEUE_HOLD"], "requeue_hold"),
        (["PENDING", "REQUEUED", "REQUEUE_HOLD"], "requeued"),
        (["RUNNING", "CONFIGURING"], "configuring"),
        (["RUNNING", "CONFIGURING", "COMPLETING"], "completing"),
        (["COMPLETED", "STAGE_OUT", "CONFIGURING"], "stage_out"),
        (["RUNNING", "SIGNALING"], "signaling"),
        (["PENDING", "RESV_DEL_HOLD"], "resv_del_hold"),
        (["RUNNING", "STOPPED"], "stopped"),
        (["PENDING", "SPECIAL_EXIT"], "special_exit"),
        (["FAILED", "LAUNCH_FAILED"], "failed"),  # LAUNCH_FAILED is never shown
        (["PENDING", "POWER_UP_NODE"], "pending"),
        (["OUT_OF_MEMORY"], "out_of_memory"),
        (["NODE_FAIL"], "node_fail"),
        (["RUNNING", "SOME_NEW_FLAG"], "running"),
        (["SOME_NEW_BASE"], "some_new_base"),
        ([], "unknown"),
        (["COMPLETING"], "completing"),  # 22.05 sends the decided word
        (["running"], "running"),
    ],
)
def test_job_state(words: list[str], expected: str) -> None:
    assert norm.job_state(words) == expected


def test_job_is_pending() -> None:
    assert norm.job_is_pending(["PENDING", "REQUEUED"])
    assert not norm.job_is_pending(["RUNNING", "COMPLETING"])
    assert not norm.job_is_pending([])


# --- node state: node_state_string() ------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["IDLE"], "idle"),
        (["ALLOCATED"], "allocated"),
        (["MIXED"], "mixed"),
        (["DOWN"], "down"),
        (["FUTURE"], "future"),
        (["UNKNOWN"], "unknown"),
        (["IDLE", "DRAIN"], "drained"),
        (["ALLOCATED", "DRAIN"], "draining"),
        (["MIXED", "DRAIN"], "draining"),
        (["IDLE", "DRAIN", "COMPLETING"], "draining"),
        (["DOWN", "DRAIN"], "drained"),
        (["IDLE", "DRAIN", "NOT_RESPONDING"], "drained"),  # DRAINED*
        (["DOWN", "NOT_RESPONDING"], "down"),  # DOWN*
        (["IDLE", "POWERED_DOWN"], "idle"),  # IDLE~
        (["IDLE", "POWERING_UP"], "idle"),  # IDLE#
        (["IDLE", "POWER_DOWN", "POWER_DRAIN", "POWER_DOWN_ASAP"], "idle"),  # IDLE!
        (["IDLE", "CLOUD", "POWERED_DOWN"], "idle"),
        (["UNKNOWN", "POWERED_DOWN"], "powered_down"),
        (["UNKNOWN", "CLOUD"], "cloud"),
        (["IDLE", "RESERVED"], "reserved"),
        (["IDLE", "RESERVED", "NOT_RESPONDING"], "idle"),  # IDLE* wins
        (["IDLE", "PLANNED"], "planned"),
        (["MIXED", "PLANNED"], "mixed"),  # MIXED-
        (["IDLE", "BLOCKED"], "blocked"),
        (["IDLE", "MAINTENANCE"], "maint"),
        (["ALLOCATED", "MAINTENANCE"], "allocated"),  # ALLOCATED$
        (["IDLE", "DRAIN", "MAINTENANCE"], "drained"),  # DRAINED$
        (["IDLE", "REBOOT_REQUESTED"], "reboot"),
        (["DOWN", "REBOOT_ISSUED"], "reboot"),  # REBOOT^
        (["MIXED", "REBOOT_REQUESTED"], "mixed"),  # MIXED@
        (["IDLE", "DRAIN", "REBOOT_REQUESTED"], "reboot"),  # reboot before drain
        (["ALLOCATED", "DRAIN", "REBOOT_REQUESTED"], "draining"),  # DRAINING@
        (["IDLE", "FAIL"], "fail"),
        (["ALLOCATED", "FAIL"], "failing"),
        (["MIXED", "FAIL"], "failing"),
        (["IDLE", "COMPLETING"], "completing"),
        (["ALLOCATED", "COMPLETING"], "allocated"),  # ALLOCATED+
        (["DOWN", "COMPLETING"], "down"),
        (["IDLE", "INVALID_REG"], "inval"),
        (["DOWN", "INVALID_REG", "DRAIN"], "inval"),
        (["UNKNOWN", "RESUME"], "resume"),
        (["ERROR"], "error"),
        (["INVALID"], "invalid"),  # NO_VAL in v0.0.40+
        (["invalid"], "invalid"),  # v0.0.36 for an unknown base
        (["allocated"], "allocated"),  # 22.05 lower-case base, no flags
        (["idle", "DRAIN"], "drained"),  # 22.05 state + state_flags
        (["IDLE", "SHINY_NEW_FLAG"], "idle"),
        (["SHINY_NEW_BASE"], "shiny_new_base"),
        ([], "unknown"),
    ],
)
def test_node_state(words: list[str], expected: str) -> None:
    assert norm.node_state(words) == expected


@given(st.lists(st.sampled_from(sorted(norm.NODE_BASE_STATES | {"DRAIN", "FAIL", "CLOUD"}))))
def test_node_state_never_has_a_suffix(words: list[str]) -> None:
    state = norm.node_state(words)
    assert state == state.lower()
    assert not set(state) & set("*~#!%$@^-+")


# --- units ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100M", 100 * MIB),
        ("1300M", 1300 * MIB),
        ("2G", 2 * GIB),
        ("1.50G", int(1.5 * GIB)),
        ("512K", 512 * 1024),
        ("1T", 1024 * GIB),
        ("100", 100 * MIB),
        ("7m", 7 * MIB),
        ("", None),
        ("lots", None),
        ("-1M", None),
    ],
)
def test_parse_memory(text: str, expected: int | None) -> None:
    assert norm.parse_memory(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("4", 4), ("0", 0), ("2K", 2048), (" 3 ", 3), ("x", None), ("", None)]
)
def test_parse_count(text: str, expected: int | None) -> None:
    assert norm.parse_count(text) == expected


# --- TRES ---------------------------------------------------------------------------


def test_parse_tres() -> None:
    tres = norm.parse_tres("cpu=1,mem=100M,node=1,billing=1,gres/gpu=1,gres/gpu:a100=1")
    assert tres == {
        "cpu": "1",
        "mem": "100M",
        "node": "1",
        "billing": "1",
        "gres/gpu": "1",
        "gres/gpu:a100": "1",
    }
    assert norm.tres_count(tres, "cpu") == 1
    assert norm.tres_memory(tres) == 100 * MIB
    assert norm.parse_tres("") == {}
    assert norm.parse_tres(None) == {}
    assert norm.parse_tres("junk,,=3,cpu=2") == {"cpu": "2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu=1,mem=100M,node=1,billing=1,gres/gpu=1,gres/gpu:a100=1", {"a100": 1}),
        ("cpu=1,gres/gpu=1,gres/gpu:h100=1", {"h100": 1}),
        ("gres/gpu=4", {ANY_GPU_TYPE: 4}),
        ("gres/gpu=3,gres/gpu:a100=1", {"a100": 1, ANY_GPU_TYPE: 2}),
        ("gres/gpu=3,gres/gpu:a100=2,gres/gpu:h100=1", {"a100": 2, "h100": 1}),
        ("gres/gpu:a100=2", {"a100": 2}),  # typed only (AccountingStorageTRES=gres/gpu:a100)
        ("gres/gpu=0", {}),
        ("cpu=1,mem=100M,node=1,billing=1", None),  # accounting does not track GPUs
        ("cpu=2,gres/shard=4", None),
    ],
)
def test_tres_gpus(text: str, expected: dict[str, int] | None) -> None:
    assert norm.tres_gpus(norm.parse_tres(text)) == expected


# --- GRES -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu:a100:2,gpu:h100:2", {"a100": 2, "h100": 2}),
        ("gpu:a100:2(IDX:0-1),gpu:h100:1(IDX:2)", {"a100": 2, "h100": 1}),
        ("gpu:a100:2(S:0-1),gpu:h100:2(S:0)", {"a100": 2, "h100": 2}),
        ("gpu:a100:2(IDX:0,2),gpu:h100:1(IDX:1)", {"a100": 2, "h100": 1}),  # comma in IDX
        ("gpu:4", {ANY_GPU_TYPE: 4}),
        ("gpu:4(S:0-1)", {ANY_GPU_TYPE: 4}),
        ("gpu:0", {}),
        ("gpu:(null):0", {}),
        ("gpu:(null):2", {ANY_GPU_TYPE: 2}),
        ("gpu:a100:0(IDX:N/A),gpu:h100:0(IDX:N/A)", {}),
        ("gpu:a100:1(IDX:0),gpu:h100:0(IDX:)", {"a100": 1}),  # gres_detail item
        ("gpu:tesla", {"tesla": 1}),
        ("gpu", {ANY_GPU_TYPE: 1}),
        ("mps:100,gpu:a100:1,shard:8", {"a100": 1}),
        ("gpu:a100:1,gpu:a100:2", {"a100": 3}),
        ("", {}),
        (None, {}),
        ("(null)", {}),
        ("N/A", {}),
        # tres_per_* forms
        ("gres/gpu:h100:2", {"h100": 2}),
        ("gres/gpu:4", {ANY_GPU_TYPE: 4}),
        ("gres/gpu", {ANY_GPU_TYPE: 1}),
        ("gres:gpu:1", {ANY_GPU_TYPE: 1}),  # 22.05 spelling
        ("gres:gpu:h100:2", {"h100": 2}),
        ("gres/gpu:a100:1,gres/gpu:h100:1", {"a100": 1, "h100": 1}),
        ("gres/shard:2", {}),
        ("license/matlab:1", {}),
    ],
)
def test_gres_gpus(text: str | None, expected: dict[str, int]) -> None:
    assert norm.gres_gpus(text) == expected


@given(st.text())
def test_gres_and_tres_parsers_never_raise(text: str) -> None:
    for count in norm.gres_gpus(text).values():
        assert count > 0
    norm.tres_gpus(norm.parse_tres(text))
    norm.parse_memory(text)
    norm.parse_count(text)


@given(
    st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8),
        st.integers(min_value=1, max_value=64),
        max_size=4,
    )
)
def test_gres_gpus_reads_what_slurm_writes(by_type: dict[str, int]) -> None:
    # Slurm needs a letter in a type name to tell it from a count.
    by_type = {f"t{name}": count for name, count in by_type.items()}
    text = ",".join(f"gpu:{name}:{count}(IDX:0-{count - 1})" for name, count in by_type.items())
    assert norm.gres_gpus(text) == by_type


# --- job resources ---------------------------------------------------------------------


def test_running_job_counts_allocated_gpus_from_tres() -> None:
    res = norm.job_resources(
        norm.JobFacts(
            pending=False,
            tres_alloc="cpu=4,mem=2G,node=1,billing=4,gres/gpu=1,gres/gpu:a100=1",
            tres_req="cpu=1,mem=100M,node=1,billing=1,gres/gpu=1",
            gres_detail=["gpu:a100:1(IDX:0),gpu:h100:0(IDX:)"],
            tres_per_job="gres/gpu:1",
        )
    )
    assert (res.cpus, res.memory_bytes, res.gpus) == (4, 2 * GIB, {"a100": 1})


def test_running_job_without_gpu_accounting_uses_gres_detail() -> None:
    res = norm.job_resources(
        norm.JobFacts(
            pending=False,
            tres_alloc="cpu=2,mem=200M,node=2,billing=2",
            gres_detail=["gpu:a100:1(IDX:0),gpu:h100:0(IDX:)", "gpu:a100:2(IDX:0-1)"],
            tres_per_job="gres/gpu:1",
        )
    )
    assert res.gpus == {"a100": 3}
    assert (res.cpus, res.memory_bytes, res.nodes) == (2, 200 * MIB, 2)


def test_running_job_with_only_untyped_gpu_accounting_takes_types_from_gres_detail() -> None:
    # AccountingStorageTRES=gres/gpu: the TRES string has the total but no types
    res = norm.job_resources(
        norm.JobFacts(
            pending=False,
            tres_alloc="cpu=2,mem=200M,node=1,billing=2,gres/gpu=2",
            gres_detail=["gpu:a100:2(IDX:0-1)"],
        )
    )
    assert res.gpus == {"a100": 2}
    # typed entries that account for only part of the total: gres_detail again
    part = norm.JobFacts(
        pending=False,
        tres_alloc="cpu=2,node=2,gres/gpu=3,gres/gpu:a100=2",
        gres_detail=["gpu:a100:2(IDX:0-1)", "gpu:h100:1(IDX:2)"],
    )
    assert norm.job_resources(part).gpus == {"a100": 2, "h100": 1}
    # no gres_detail (a finished job): the untyped total stays, as "any"
    gone = norm.JobFacts(pending=False, tres_alloc="cpu=2,node=1,gres/gpu=2")
    assert norm.job_resources(gone).gpus == {ANY_GPU_TYPE: 2}


def test_gres_detail_of_count_only_gpus_reads_the_count_in_parentheses() -> None:
    # GPUs without File= have no index bitmap: slurmctld writes "gpu:a100(CNT:2)"
    # (src/stepmgr/gres_stepmgr.c:2007 at slurm-24-11-7-1; gres_ctld.c:1745 at 22.05.11)
    counted = norm.JobFacts(
        pending=False, tres_alloc="cpu=2,node=1,gres/gpu=2", gres_detail=["gpu:a100(CNT:2)"]
    )
    assert norm.job_resources(counted).gpus == {"a100": 2}
    untyped = norm.JobFacts(
        pending=False, tres_alloc="cpu=2,node=1,gres/gpu=2", gres_detail=["gpu(CNT:2)"]
    )
    assert norm.job_resources(untyped).gpus == {ANY_GPU_TYPE: 2}
    # gres_detail naming fewer GPUs than the TRES total: the rest stay, untyped
    short = norm.JobFacts(
        pending=False, tres_alloc="cpu=2,node=2,gres/gpu=3", gres_detail=["gpu:a100:2(IDX:0-1)"]
    )
    assert norm.job_resources(short).gpus == {"a100": 2, ANY_GPU_TYPE: 1}


def test_pending_job_counts_requested_gpus() -> None:
    per_job = norm.JobFacts(pending=True, tres_per_job="gres/gpu:h100:2", node_count=1)
    per_node = norm.JobFacts(pending=True, tres_per_node="gres/gpu:4", node_count=3)
    per_task = norm.JobFacts(pending=True, tres_per_task="gres/gpu:a100:1", tasks=8)
    untyped = norm.JobFacts(pending=True, tres_per_job="gres/gpu")
    assert norm.job_resources(per_job).gpus == {"h100": 2}
    assert norm.job_resources(per_node).gpus == {ANY_GPU_TYPE: 12}
    assert norm.job_resources(per_task).gpus == {"a100": 8}
    assert norm.job_resources(untyped).gpus == {ANY_GPU_TYPE: 1}


def test_pending_job_ignores_a_stale_allocation() -> None:
    # A requeued job is pending again; what it held before no longer counts.
    res = norm.job_resources(
        norm.JobFacts(
            pending=True,
            tres_alloc="cpu=8,mem=8G,node=1,gres/gpu=2",
            tres_req="cpu=2,mem=1G,node=1,billing=2",
            tres_per_node="gres/gpu:1",
            node_count=1,
        )
    )
    assert (res.cpus, res.memory_bytes, res.gpus) == (2, GIB, {ANY_GPU_TYPE: 1})


def test_requested_memory_falls_back_to_per_node_and_per_cpu() -> None:
    per_node = norm.JobFacts(pending=True, memory_per_node_mib=900, node_count=2, cpus=1)
    per_cpu = norm.JobFacts(pending=True, memory_per_cpu_mib=100, cpus=3, node_count=1)
    nothing = norm.JobFacts(pending=True)
    assert norm.job_resources(per_node).memory_bytes == 1800 * MIB
    assert norm.job_resources(per_cpu).memory_bytes == 300 * MIB
    assert norm.job_resources(per_cpu).cpus == 3
    assert norm.job_resources(nothing) == norm.JobResources(0, 0, 0, {})


def test_job_that_never_ran_reports_its_request() -> None:
    # e.g. cancelled while pending, or refused at submit: no tres_alloc_str.
    res = norm.job_resources(
        norm.JobFacts(pending=False, tres_req="cpu=1,mem=100M,node=1", tres_per_job="gres/gpu:8")
    )
    assert (res.cpus, res.memory_bytes, res.nodes, res.gpus) == (1, 100 * MIB, 1, {"any": 8})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data_parser/v0.0.45", "v0.0.45"),
        ("openapi/v0.0.38", "v0.0.38"),
        ("openapi/slurmctld", None),
        ("", None),
        (None, None),
    ],
)
def test_version_from_plugin(text: str | None, expected: str | None) -> None:
    assert norm.version_from_plugin(text) == expected


# --- job arrays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-1000%10", 1000),  # %N: array_max_tasks, not a task
        ("1-999:2", 500),  # step form, end included (1, 3, ..., 999)
        ("0-30:3", 11),
        ("1-4,7-999%10", 997),
        ("2-3%1", 2),
        ("5", 1),
        ("0", 1),
        ("", None),
        ("%4", None),
        ("1-9:x", None),
        ("1-5:0", 5),  # never printed by Slurm; no division by zero
        # cut by SLURM_BITSTR_LEN: the last, maybe partial, item is left out
        ("1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31,33,35,37,39,41,43...%4", 21),
        ("1-100,200-2...", 100),
    ],
)
def test_array_task_count(text: str, expected: int | None) -> None:
    assert norm.array_task_count(text) == expected
