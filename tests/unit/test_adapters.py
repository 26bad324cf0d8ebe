"""The version adapters over real slurmrestd captures (tests/fixtures, from shared/fixtures).

Expected values come from the raw JSON (read independently with json.loads)
and from the CLI ground truth captured beside the -gpus fixtures (squeue,
scontrol -d show node, sinfo), not from the code under test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.api.errors import DecodeError, SlurmError, UnsupportedVersionError, parse_errors
from exporter.api.model import ANY_GPU_TYPE, ArrayRecord, Job, Node
from exporter.api.v0036 import V0036Adapter
from exporter.api.v0040 import V0040Adapter
from exporter.api.versions import (
    SUPPORTED_VERSIONS,
    adapter_for,
    newest_supported,
    parse_version,
)
from exporter.collectors.diag import collect_diag
from exporter.collectors.nodes import collect_nodes
from tests.unit.test_collectors import values

FIXTURES = Path(__file__).parent.parent / "fixtures"
MIB = 1024 * 1024

RELEASES = {
    "22.05": ("22.05.8", ("v0.0.36", "v0.0.37", "v0.0.38")),
    "24.11": ("24.11.5", ("v0.0.40", "v0.0.41", "v0.0.42")),
    "26.05": ("26.05.5", ("v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45")),
}
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping")

CASES = [(release, v) for release, (_, versions) in RELEASES.items() for v in versions]
CASE_IDS = [f"{release}-{v}" for release, v in CASES]
GPU_CASES = [(f"slurm-{release}-gpus", v) for release, v in CASES]
GPU_CASE_IDS = [f"{release}-gpus-{v}" for release, v in CASES]
ALL_JOB_CASES = [*CASES, *GPU_CASES]
ALL_JOB_CASE_IDS = [*CASE_IDS, *GPU_CASE_IDS]

# squeue (no -t) lists only jobs that are not finished.
FINISHED = {
    "completed",
    "cancelled",
    "failed",
    "timeout",
    "node_fail",
    "preempted",
    "boot_fail",
    "deadline",
    "out_of_memory",
}


def body(folder: str, name: str) -> bytes:
    return (FIXTURES / folder / name).read_bytes()


def raw(folder: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(body(folder, name))
    return loaded


def parse(folder: str, version: str, endpoint: str) -> Any:
    adapter = adapter_for(version)
    return getattr(adapter, f"parse_{endpoint}")(body(folder, f"{version}_{endpoint}.json"))


def raw_number(value: Any) -> Any:
    """A raw JSON number, wrapped (v0.0.40+) or plain."""
    return value["number"] if isinstance(value, dict) else value


def jobs_by_id(folder: str, version: str) -> dict[int, Job]:
    return {j.job_id: j for j in parse(folder, version, "jobs").data}


# --- ground truth files -------------------------------------------------------------


def squeue_states(folder: str) -> Counter[str]:
    """Job states of `squeue -a -o '%i %T %b %P'` in ground_truth_jobs.txt."""
    lines = (FIXTURES / folder / "ground_truth_jobs.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("JOBID STATE"))
    states: Counter[str] = Counter()
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("#"):
            break
        states[line.split()[1].lower()] += 1
    return states


def squeue_alloc_gpus(folder: str) -> dict[int, dict[str, int]]:
    """GPUs by type per running job, from the TRES_ALLOC column of squeue -O."""
    lines = (FIXTURES / folder / "ground_truth_jobs.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("JOBID   NAME"))
    result = {}
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("#"):
            break
        fields = line.split()
        if fields[2] != "RUNNING":
            continue
        alloc = next(f for f in fields if f.startswith("cpu="))
        result[int(fields[0])] = {
            m.group(1): int(m.group(2)) for m in re.finditer(r"gres/gpu:(\w+)=(\d+)", alloc)
        }
    return result


def scontrol_node(folder: str) -> dict[str, str]:
    """key=value pairs of `scontrol -d show node node1`, plus sinfo's STATE."""
    text = (FIXTURES / folder / "ground_truth_node.txt").read_text()
    section = text.split("## scontrol -d show node node1", 1)[1].split("##", 1)[0]
    pairs = dict(re.findall(r"(\w+)=(\S*)", section))
    sinfo = text.split("## sinfo", 1)[1].splitlines()
    pairs["sinfo_state"] = sinfo[2].split()[-1]
    return pairs


def gpu_string_counts(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"gpu:(\w+):(\d+)", text)}


# --- every capture parses, with the right meta ------------------------------------------


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_of_every_version_parses(release: str, version: str, endpoint: str) -> None:
    response = parse(f"slurm-{release}", version, endpoint)
    assert response.meta.api_version == version
    assert response.meta.slurm_release == RELEASES[release][0]
    assert response.meta.cluster == ("" if release == "22.05" else "slurmlab")


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_adapter_paths(release: str, version: str) -> None:
    adapter = adapter_for(version)
    slash = "" if release == "22.05" else "/"
    for endpoint in ENDPOINTS:
        assert adapter.path(endpoint) == f"/slurm/{version}/{endpoint}{slash}"
    # /shares: no trailing "/" (slurmrestd registers it so), and only from v0.0.40
    assert adapter.serves("shares") == (release != "22.05")
    with pytest.raises(ValueError, match="unknown endpoint"):
        adapter.path("licences")


# --- jobs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "version"), [(f"slurm-{r}", v) for r, v in CASES] + GPU_CASES, ids=ALL_JOB_CASE_IDS
)
def test_job_states_and_reasons_match_the_raw_json(folder: str, version: str) -> None:
    raw_jobs = raw(folder, f"{version}_jobs.json")["jobs"]
    jobs = jobs_by_id(folder, version)
    assert len(jobs) == len(raw_jobs) > 0
    for rj in raw_jobs:
        state = rj["job_state"]
        words = [state] if isinstance(state, str) else state
        assert len(words) == 1  # the captures hold no flag states; unit tests cover those
        job = jobs[rj["job_id"]]
        assert job.state == words[0].lower()
        assert job.reason == rj["state_reason"]
        assert job.partition == rj["partition"]
        assert job.user == rj["user_name"]
        assert job.account == rj["account"]


@pytest.mark.parametrize(("folder", "version"), GPU_CASES, ids=GPU_CASE_IDS)
def test_active_job_states_match_squeue(folder: str, version: str) -> None:
    jobs = jobs_by_id(folder, version).values()
    active = Counter(j.state for j in jobs if j.state not in FINISHED)
    assert active == squeue_states(folder) == Counter(running=5, pending=9)


@pytest.mark.parametrize(("folder", "version"), GPU_CASES, ids=GPU_CASE_IDS)
def test_job_gpus_match_the_ground_truth(folder: str, version: str) -> None:
    jobs = jobs_by_id(folder, version)
    truth = squeue_alloc_gpus(folder)
    assert truth == {1: {"a100": 1}, 2: {"h100": 1}, 3: {"a100": 1}, 4: {}, 14: {}}
    for job_id, gpus in truth.items():
        assert jobs[job_id].gpus == gpus, job_id
    assert jobs[16].gpus == {"h100": 2}  # pending --gpus=h100:2
    assert jobs[17].gpus == {ANY_GPU_TYPE: 4}  # pending --gpus-per-node=4
    assert jobs[18].gpus == {ANY_GPU_TYPE: 8}  # refused --gpus=8, reports its request
    with_gpus = {job_id for job_id, job in jobs.items() if job.gpus}
    assert with_gpus == {1, 2, 3, 16, 17, 18}
    running: Counter[str] = Counter()
    for job in jobs.values():
        if job.state == "running":
            running.update(job.gpus)
    # the node's GresUsed: both a100 and one h100
    assert running == Counter(gpu_string_counts(scontrol_node(folder)["GresUsed"]))


def _strip_gpu_tres(data: dict[str, Any]) -> bytes:
    for job in data["jobs"]:
        job["tres_alloc_str"] = ",".join(
            t for t in job["tres_alloc_str"].split(",") if t and not t.startswith("gres/")
        )
        job["tres_req_str"] = ",".join(
            t for t in job["tres_req_str"].split(",") if t and not t.startswith("gres/")
        )
    return json.dumps(data).encode()


@pytest.mark.parametrize(("folder", "version"), GPU_CASES, ids=GPU_CASE_IDS)
def test_job_gpus_without_gpu_accounting_come_from_gres_detail(folder: str, version: str) -> None:
    # Without AccountingStorageTRES=gres/gpu the TRES strings carry no GPUs.
    stripped = _strip_gpu_tres(raw(folder, f"{version}_jobs.json"))
    jobs = {j.job_id: j for j in adapter_for(version).parse_jobs(stripped).data}
    assert {i: jobs[i].gpus for i in (1, 2, 3, 16, 17)} == {
        1: {"a100": 1},
        2: {"h100": 1},
        3: {"a100": 1},
        16: {"h100": 2},
        17: {ANY_GPU_TYPE: 4},
    }


@pytest.mark.parametrize(("folder", "version"), GPU_CASES, ids=GPU_CASE_IDS)
def test_job_cpus_memory_nodes(folder: str, version: str) -> None:
    jobs = jobs_by_id(folder, version)
    for job_id in (1, 2, 3, 4, 14):  # running: allocated, from tres_alloc_str cpu=1,mem=100M
        assert (jobs[job_id].cpus, jobs[job_id].memory_bytes, jobs[job_id].nodes) == (
            1,
            100 * MIB,
            1,
        )
    # pending pend_mem asks --mem=900M on one node, pend_resources 2 cpus x 100M
    by_name = {rj["name"]: rj["job_id"] for rj in raw(folder, f"{version}_jobs.json")["jobs"]}
    pend_mem = jobs[by_name["pend_mem"]]
    pend_res = jobs[by_name["pend_resources"]]
    assert (pend_mem.state, pend_mem.cpus, pend_mem.memory_bytes) == ("pending", 1, 900 * MIB)
    assert (pend_res.state, pend_res.cpus, pend_res.memory_bytes) == ("pending", 2, 200 * MIB)


# --- nodes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "version"), GPU_CASES, ids=GPU_CASE_IDS)
def test_gpu_node_matches_scontrol_and_sinfo(folder: str, version: str) -> None:
    truth = scontrol_node(folder)
    (node,) = parse(folder, version, "nodes").data
    assert isinstance(node, Node)
    assert node.name == "node1"
    assert node.state == truth["sinfo_state"] == "allocated"
    assert node.gpus_total == gpu_string_counts(truth["Gres"]) == {"a100": 2, "h100": 2}
    assert node.gpus_alloc == gpu_string_counts(truth["GresUsed"]) == {"a100": 2, "h100": 1}
    assert node.cpus == int(truth["CPUTot"]) == 5
    assert node.real_memory_bytes == int(truth["RealMemory"]) * MIB
    assert node.free_memory_bytes == int(truth["FreeMem"]) * MIB
    assert node.cpu_load == pytest.approx(float(truth["CPULoad"]))
    if version == "v0.0.36":
        # v0.0.36 reports neither allocations nor partitions nor state flags
        assert (node.alloc_cpus, node.alloc_memory_bytes, node.partitions) == (0, 0, ())
    else:
        assert node.alloc_cpus == int(truth["CPUAlloc"])
        assert node.alloc_memory_bytes == int(truth["AllocMem"]) * MIB
        assert node.partitions == tuple(truth["Partitions"].split(","))


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_plain_node(release: str, version: str) -> None:
    folder = f"slurm-{release}"
    (raw_node,) = raw(folder, f"{version}_nodes.json")["nodes"]
    (node,) = parse(folder, version, "nodes").data
    assert node.state == "allocated"
    assert node.flags == ("ALLOCATED",)
    assert node.cpus == 2
    assert node.real_memory_bytes == 1000 * MIB
    free = raw_number(raw_node.get("free_mem", raw_node.get("free_memory")))
    assert node.free_memory_bytes == free * MIB
    assert node.cpu_load == raw_node["cpu_load"] / 100
    assert (node.gpus_total, node.gpus_alloc) == ({}, {})
    if version != "v0.0.36":
        assert (node.alloc_cpus, node.alloc_memory_bytes) == (2, 200 * MIB)


# --- partitions, diag, ping --------------------------------------------------------------------


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_partitions(release: str, version: str) -> None:
    parts = {p.name: p for p in parse(f"slurm-{release}", version, "partitions").data}
    assert set(parts) == {"debug", "batch"}
    for p in parts.values():
        assert p.state == ("unknown" if version == "v0.0.36" else "up")
        assert (p.total_cpus, p.total_nodes, p.nodes) == (2, 1, "node1")
    assert parts["debug"].max_time_seconds is None  # MaxTime=UNLIMITED
    assert parts["batch"].max_time_seconds == 3600.0  # MaxTime=60
    # v0.0.40-v0.0.44 do not say which partition is the default
    says_default = release == "22.05" or version == "v0.0.45"
    assert parts["debug"].is_default is says_default
    assert parts["batch"].is_default is False


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_diag_matches_the_raw_json(release: str, version: str) -> None:
    folder = f"slurm-{release}"
    stats = raw(folder, f"{version}_diag.json")["statistics"]
    diag = parse(folder, version, "diag").data
    assert diag.schedule_cycle_last_seconds == stats["schedule_cycle_last"] / 1e6
    assert diag.schedule_cycle_max_seconds == stats["schedule_cycle_max"] / 1e6
    assert diag.schedule_cycle_total == stats["schedule_cycle_total"]
    if "schedule_cycle_sum" in stats:
        assert diag.schedule_cycle_sum_seconds == stats["schedule_cycle_sum"] / 1e6
    else:  # 22.05: not reported, so left out rather than reported as 0
        assert diag.schedule_cycle_sum_seconds is None
    if "bf_cycle_max" not in stats:  # v0.0.40
        assert diag.bf_cycle_max_seconds is None
    assert diag.jobs_submitted == stats["jobs_submitted"] == 15
    assert diag.jobs_started == stats["jobs_started"]
    assert diag.server_thread_count == stats["server_thread_count"]
    assert diag.bf_cycle_counter == stats["bf_cycle_counter"]
    assert diag.bf_active is stats["bf_active"]
    assert diag.stats_since == raw_number(stats["req_time_start"]) > 0
    assert diag.bf_when_last_cycle == raw_number(stats["bf_when_last_cycle"])
    # v0.0.36 and v0.0.37 have no RPC tables
    raw_by_type = stats.get("rpcs_by_message_type", [])
    assert bool(raw_by_type) is (version not in ("v0.0.36", "v0.0.37"))
    by_type = {r.name: r for r in diag.rpcs_by_message_type}
    assert len(by_type) == len(raw_by_type)
    for r in raw_by_type:
        assert by_type[r["message_type"]].count == r["count"]
        assert by_type[r["message_type"]].total_time_seconds == r["total_time"] / 1e6
    assert [(u.name, u.count) for u in diag.rpcs_by_user] == [
        (r["user"], r["count"]) for r in stats.get("rpcs_by_user", [])
    ]


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_a_pending_array_stands_for_each_of_its_tasks(release: str, version: str) -> None:
    folder = f"slurm-{release}"
    whole = raw(folder, f"{version}_jobs.json")
    meta = next(j for j in whole["jobs"] if j["name"] == "array")
    n = meta["job_id"]
    jobs = {j.job_id: j for j in parse(folder, version, "jobs").data}
    # `--array=1-4%2`, nothing started (array_task_string "1-4%2")
    assert (jobs[n].pending, jobs[n].tasks, jobs[n].array) == (
        True, 4, ArrayRecord(n, None, "array")
    )
    assert all(j.array is None and j.tasks == 1 for i, j in jobs.items() if i != n)
    # a task split off it (array_task_id set) stands for itself; a meta record whose list
    # slurmrestd cut short ("...") counts the tasks it shows whole
    three = 3 if release == "22.05" else {"set": True, "infinite": False, "number": 3}
    task = {**meta, "job_id": 30, "array_task_id": three, "array_task_string": ""}
    cut = {**meta, "job_id": 31, "array_task_string": "1,3,5,7,9,1...%2"}
    body_ = json.dumps({**whole, "jobs": [task, cut]}).encode()
    split, shortened = adapter_for(version).parse_jobs(body_).data
    assert (split.tasks, split.array) == (1, ArrayRecord(n, 3, "array"))
    assert shortened.tasks == 5


# sdiag keys an API version may not send, and the family each one feeds
_DIAG_OPTIONAL = {
    "schedule_cycle_sum": "slurm_scheduler_cycle_seconds",
    "schedule_cycle_depth": "slurm_scheduler_cycle_depth",
    "bf_cycle_sum": "slurm_backfill_cycle_seconds",
    "bf_cycle_max": "slurm_backfill_cycle_max_seconds",
    "bf_last_depth": "slurm_backfill_last_depth",
    "bf_last_depth_try": "slurm_backfill_last_depth_try",
    "bf_table_size": "slurm_backfill_table_size",
}


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_diag_fields_a_version_does_not_send_are_left_out_not_zero(
    release: str, version: str
) -> None:
    folder = f"slurm-{release}"
    stats = raw(folder, f"{version}_diag.json")["statistics"]
    families = {f.name: f for f in collect_diag(parse(folder, version, "diag").data)}
    for key, name in _DIAG_OPTIONAL.items():
        samples = [(s.name, s.value) for s in families[name].samples]
        if key in stats:
            assert len(samples) == 1, (key, samples)
        else:
            assert samples == [], (key, samples)
    # v0.0.36-v0.0.40 lack schedule_cycle_depth (Slurm's add_skip in v0.0.40)
    assert ("schedule_cycle_depth" in stats) is (version >= "v0.0.41")


@pytest.mark.parametrize(("release", "version"), CASES, ids=CASE_IDS)
def test_ping(release: str, version: str) -> None:
    folder = f"slurm-{release}"
    (raw_ping,) = raw(folder, f"{version}_ping.json")["pings"]
    (ping,) = parse(folder, version, "ping").data
    assert (ping.hostname, ping.responding, ping.mode) == ("node1", True, "primary")
    if release == "22.05":
        assert ping.latency_seconds is None
    else:
        assert ping.latency_seconds == raw_ping["latency"] / 1e6


def test_ping_modes_and_down_controllers() -> None:
    v45 = b'{"pings": [{"hostname": "a", "responding": true, "latency": 5, "primary": true},'
    v45 += b' {"hostname": "b", "responding": false, "latency": 0, "primary": false},'
    v45 += b' {"hostname": "c", "responding": false, "latency": 0, "primary": false}]}'
    pings = adapter_for("v0.0.45").parse_ping(v45).data
    assert [(p.mode, p.responding) for p in pings] == [
        ("primary", True),
        ("backup1", False),
        ("backup2", False),
    ]
    v40 = b'{"pings": [{"hostname": "a", "pinged": "UP", "latency": 5, "mode": "primary"},'
    v40 += b' {"hostname": "b", "pinged": "DOWN", "latency": 9, "mode": "backup"}]}'
    pings = adapter_for("v0.0.40").parse_ping(v40).data
    assert [(p.mode, p.responding) for p in pings] == [("primary", True), ("backup", False)]
    v38 = b'{"pings": [{"hostname": "a", "ping": "DOWN", "status": -1, "mode": "primary"}]}'
    assert adapter_for("v0.0.38").parse_ping(v38).data[0].responding is False


# --- error answers and bad bodies ------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "version", "name", "endpoint", "numbers"),
    [
        ("slurm-22.05", "v0.0.38", "v0.0.38_diag_expired_token.json", "diag", (-1,)),
        ("slurm-24.11", "v0.0.42", "v0.0.42_diag_expired_token.json", "diag", (1007,)),
        ("slurm-26.05", "v0.0.45", "v0.0.45_diag_expired_token.json", "diag", (1007,)),
        ("slurm-22.05", "v0.0.38", "v0.0.38_job_999999_unknown.json", "jobs", (2017,)),
        ("slurm-24.11", "v0.0.42", "v0.0.42_job_999999_unknown.json", "jobs", (2017,)),
        ("slurm-26.05", "v0.0.45", "v0.0.45_job_999999_unknown.json", "jobs", (2017,)),
    ],
)
def test_errors_array_raises_slurm_error(
    folder: str, version: str, name: str, endpoint: str, numbers: tuple[int, ...]
) -> None:
    answer = body(folder, name)
    with pytest.raises(SlurmError) as caught:
        getattr(adapter_for(version), f"parse_{endpoint}")(answer)
    assert caught.value.error_numbers == numbers
    assert caught.value.errors == parse_errors(answer)
    assert str(caught.value).startswith("slurmrestd reported 1 error: ")
    first = raw(folder, name)["errors"][0]
    assert first["error"] in str(caught.value)
    assert first["description"] in str(caught.value)


def test_slurm_error_wins_over_good_data() -> None:
    data = raw("slurm-26.05", "v0.0.45_jobs.json")
    data["errors"] = [{"error_number": 1, "error": "x", "description": "y", "source": "z"}]
    with pytest.raises(SlurmError, match=r"x \(1\): y \[source: z\]"):
        adapter_for("v0.0.45").parse_jobs(json.dumps(data).encode())


def test_parse_errors_is_best_effort() -> None:
    assert parse_errors(body("slurm-22.05", "v0.0.38_diag_no_token.json")) == []
    assert parse_errors(body("slurm-26.05", "v0.0.45_nosuch_wrong_path.json")) == []
    assert parse_errors(b"") == []
    assert parse_errors(b'{"errors": null}') == []
    assert parse_errors(b'{"errors": "nope"}') == []
    (entry,) = parse_errors(b'{"errors": [{"error_number": null, "error": "e"}]}')
    assert (entry.error_number, entry.error, entry.description, entry.source) == (0, "e", "", "")
    (odd,) = parse_errors(b'{"errors": ["boom"]}')
    assert odd.error == "unreadable error entry"


TRUNCATED = body("slurm-26.05", "v0.0.45_jobs.json")[:5000]
BAD_BODIES = {
    "empty": b"",
    "blank": b"  \n",
    "text": b"Authentication failure",
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "truncated": TRUNCATED,
    "not-an-object": b"[]",
    "null": b"null",
    "no-data-key": b'{"meta": {}, "errors": [], "warnings": []}',
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("version", ["v0.0.38", "v0.0.45"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("bad", list(BAD_BODIES), ids=list(BAD_BODIES))
def test_bad_bodies_raise_decode_error(version: str, endpoint: str, bad: str) -> None:
    with pytest.raises(DecodeError) as caught:
        getattr(adapter_for(version), f"parse_{endpoint}")(BAD_BODIES[bad])
    message = str(caught.value)
    assert f"{version} /{endpoint}" in message
    assert len(message) <= 300


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b'{"jobs": {}}', "$.jobs"),
        (b'{"jobs": [{"job_id": "seven"}]}', "$.jobs[0].job_id"),
        (b'{"jobs": [{"job_state": ["RUNNING"]}]}', "job_id"),
        (b'{"jobs": [{"job_id": 1, "cpus": "many"}]}', "$.jobs[0].cpus"),
    ],
)
def test_decode_error_names_the_field(payload: bytes, where: str) -> None:
    for version in ("v0.0.38", "v0.0.45"):
        with pytest.raises(DecodeError, match=re.escape(where)):
            adapter_for(version).parse_jobs(payload)


def test_decode_error_never_quotes_much_of_the_body() -> None:
    with pytest.raises(DecodeError) as caught:
        adapter_for("v0.0.45").parse_jobs(b"A" * 100_000)
    assert "A" * 81 not in str(caught.value)


# --- tolerance ----------------------------------------------------------------------------


def test_unknown_state_words_and_nulls_are_tolerated() -> None:
    jobs = (
        b'{"jobs": [{"job_id": 1, "job_state": ["RUNNING", "WARP_DRIVE"]},'
        b' {"job_id": 2, "job_state": ["HYPERSPACE"], "partition": null, "cpus": null,'
        b'  "tres_alloc_str": null, "gres_detail": null, "memory_per_node": {"set": false,'
        b'  "infinite": true, "number": 0}},'
        b' {"job_id": 3, "job_state": null}], "errors": [], "warnings": null}'
    )
    got = adapter_for("v0.0.45").parse_jobs(jobs)
    assert [(j.state, j.partition, j.cpus, j.memory_bytes) for j in got.data] == [
        ("running", "", 0, 0),
        ("hyperspace", "", 0, 0),
        ("unknown", "", 0, 0),
    ]
    assert got.meta.api_version == "v0.0.45"  # no meta: the adapter's own version
    nodes = (
        b'{"nodes": [{"name": "n1", "state": ["IDLE", "QUANTUM"], "free_mem": {"set": false,'
        b' "infinite": false, "number": 0}}, {"name": "n2", "state": ["TELEPORTING"]}]}'
    )
    n1, n2 = adapter_for("v0.0.45").parse_nodes(nodes).data
    assert (n1.state, n1.flags, n1.free_memory_bytes) == ("idle", ("IDLE", "QUANTUM"), None)
    assert n2.state == "teleporting"
    old = (
        b'{"nodes": [{"name": "n1", "state": "idle", "state_flags": ["DRAIN", "NOT_RESPONDING"],'
        b' "free_memory": 18446744073709551614, "cpu_load": null, "owner": null}]}'
    )
    (node,) = adapter_for("v0.0.38").parse_nodes(old).data
    assert (node.state, node.flags) == ("drained", ("IDLE", "DRAIN", "NOT_RESPONDING"))
    assert (node.free_memory_bytes, node.cpu_load) == (None, None)


@pytest.mark.parametrize("version", ["v0.0.38", "v0.0.40", "v0.0.45"])
def test_an_unknown_cpu_load_is_none_not_zero(version: str) -> None:
    # slurmd has not reported a load yet: NO_VAL (scontrol prints CPULoad=N/A)
    wrapped = version != "v0.0.38"
    no_val = b'{"set": false, "infinite": false, "number": 0}' if wrapped else b"4294967294"
    zero = b'{"set": true, "infinite": false, "number": 0}' if wrapped else b"0"
    body = (
        b'{"nodes": [{"name": "n1", "state": "idle", "cpu_load": ' + no_val + b"},"
        b' {"name": "n2", "state": "idle", "cpu_load": ' + zero + b"}]}"
    )
    n1, n2 = adapter_for(version).parse_nodes(body).data
    assert (n1.cpu_load, n2.cpu_load) == (None, 0.0)
    loads = values(collect_nodes([n1, n2], per_node=True), "slurm_node_cpu_load")
    assert loads == {("n2",): 0.0}


@pytest.mark.parametrize(
    ("version", "release", "state"),
    [
        ("v0.0.38", "22.05.8", "fail"),
        ("v0.0.40", "24.11.5", "fail"),
        ("v0.0.42", "25.11.0", "fail"),
        ("v0.0.42", "25.11.1", "failing"),
        ("v0.0.45", "26.05.5", "failing"),
        ("v0.0.45", "", "failing"),  # release unknown: today's Slurm
    ],
)
def test_mixed_fail_node_as_the_release_prints_it(version: str, release: str, state: str) -> None:
    # node_state_string(): MIXED+FAIL is FAILING only from 25.11.1 (commit aa2733d6ad)
    if version == "v0.0.38":
        node = b'{"name": "n1", "state": "mixed", "state_flags": ["FAIL"]}'
        meta = b'{"Slurm": {"release": "' + release.encode() + b'"}}'
    else:
        node = b'{"name": "n1", "state": ["MIXED", "FAIL"]}'
        meta = b'{"slurm": {"release": "' + release.encode() + b'"}}'
    idle = b'{"name": "n2", "state": ' + (
        b'"idle", "state_flags": ["FAIL"]}' if version == "v0.0.38" else b'["IDLE", "FAIL"]}'
    )
    body = b'{"meta": ' + meta + b', "nodes": [' + node + b", " + idle + b"]}"
    n1, n2 = adapter_for(version).parse_nodes(body).data
    assert (n1.state, n2.state) == (state, "fail")


def test_warnings_are_passed_on() -> None:
    response = parse("slurm-26.05", "v0.0.45", "partitions")
    assert response.warnings == (
        "Slurm accounting storage is disabled. Could not query the following: [TRES].",
    )


# --- versions --------------------------------------------------------------------------------


def test_supported_versions_are_ordered_and_have_adapters() -> None:
    parsed = [parse_version(v) for v in SUPPORTED_VERSIONS]
    assert parsed == sorted(p for p in parsed if p is not None)
    assert SUPPORTED_VERSIONS[0] == "v0.0.36"
    assert SUPPORTED_VERSIONS[-1] == "v0.0.45"
    for v in SUPPORTED_VERSIONS:
        adapter = adapter_for(v)
        assert adapter.version == v
        assert isinstance(adapter, V0036Adapter if v <= "v0.0.38" else V0040Adapter)


@pytest.mark.parametrize("version", ["v0.0.46", "v0.0.50", "v0.1.0", "v1.0.0"])
def test_newer_versions_use_the_newest_adapter(version: str) -> None:
    adapter = adapter_for(version)
    assert isinstance(adapter, V0040Adapter)
    assert adapter.path("jobs") == f"/slurm/{version}/jobs/"
    # a v0.0.45 body read as the newer version: meta still says what answered
    jobs = adapter.parse_jobs(body("slurm-26.05-gpus", "v0.0.45_jobs.json")).data
    assert len(jobs) == 18
    stripped = raw("slurm-26.05", "v0.0.45_ping.json")
    del stripped["meta"]
    assert adapter.parse_ping(json.dumps(stripped).encode()).meta.api_version == version


@pytest.mark.parametrize("version", ["v0.0.39", "v0.0.35", "v0.0.0", "0.0.45", "latest", ""])
def test_unsupported_versions(version: str) -> None:
    with pytest.raises(UnsupportedVersionError):
        adapter_for(version)


@pytest.mark.parametrize(
    ("release", "chosen"), [("22.05", "v0.0.38"), ("24.11", "v0.0.42"), ("26.05", "v0.0.45")]
)
def test_newest_supported_on_what_each_release_serves(release: str, chosen: str) -> None:
    line = (FIXTURES / f"slurm-{release}" / "versions.txt").read_text()
    served = re.search(r"slurm=\[([^\]]*)\]", line)
    assert served is not None
    assert newest_supported(served.group(1).split()) == chosen


def test_newest_supported_edge_cases() -> None:
    assert newest_supported([]) is None
    assert newest_supported(["v0.0.39", "v0.0.35", "nonsense"]) is None
    assert newest_supported(["v0.0.45", "v0.0.46", "v0.0.47"]) == "v0.0.45"
    assert newest_supported(["v0.0.47", "v0.0.46"]) == "v0.0.46"
    assert newest_supported(["v0.0.39", "v0.0.38", "v0.0.37"]) == "v0.0.38"
    assert newest_supported(iter(["v0.0.40", "v0.0.41"])) == "v0.0.41"
