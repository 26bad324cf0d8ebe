"""Accounting (issue 12): slurmdbd's job records for every API version, the counting
window (each event once, whatever the polls), the tally and its families (golden
expositions per recorded version), and the settings.

Golden files: tests/golden/accounting/<release>_<version>.prom; regenerate them with
`UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_accounting.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.model import AccountedJob
from exporter.api.versions import adapter_for
from exporter.collectors.accounting import AccountingPoller, Options, Tally, collect_accounting
from exporter.collectors.window import OVERLAP_SECONDS, Window
from exporter.errors import EndpointFailure
from exporter.settings import ConfigError, load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "accounting"
RECORDED = sorted(FIXTURES.glob("slurm-*-slurmdbd/slurmdb_v*_jobs.json"))


def version_of(path: Path) -> str:
    return path.name.removeprefix("slurmdb_").removesuffix("_jobs.json")


def release_of(path: Path) -> str:
    return path.parent.name.removeprefix("slurm-").removesuffix("-slurmdbd")


def parse(path: Path) -> list[AccountedJob]:
    return adapter_for(version_of(path)).parse_accounting_jobs(path.read_bytes()).data


def job(
    job_id: int = 1,
    *,
    submit: int = 1000,
    eligible: int | None = None,
    start: int = 0,
    end: int = 0,
    state: str = "completed",
    partition: str = "debug",
    account: str = "science",
    user: str = "alice",
    cpus: int = 2,
    memory_bytes: int = 1024**3,
    gpus: dict[str, int] | None = None,
    started: bool | None = None,
    cpu_used: float | None = None,
    max_rss: int | None = None,
) -> AccountedJob:
    return AccountedJob(
        job_id=job_id,
        submit=submit,
        eligible=submit if eligible is None else eligible,
        start=start,
        end=end,
        elapsed=max(end - start, 0) if end else 0,
        state=state,
        partition=partition,
        account=account,
        user=user,
        started=start > 0 if started is None else started,
        cpus=cpus,
        memory_bytes=memory_bytes,
        gpus=gpus or {},
        cpu_used_seconds=cpu_used,
        max_rss_bytes=max_rss,
    )


def render(families: Sequence[Metric]) -> str:
    class _Fams:
        def collect(self) -> Sequence[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fams())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def samples(families: Sequence[Metric]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(render(families)):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(families: Sequence[Metric], name: str, **labels: str) -> float:
    return samples(families).get((name, frozenset(labels.items())), 0.0)


# --- the records, every version ----------------------------------------------------------


def test_every_version_is_recorded() -> None:
    assert [version_of(p) for p in RECORDED] == [
        "v0.0.36", "v0.0.37", "v0.0.38",  # 22.05
        "v0.0.40", "v0.0.41", "v0.0.42",  # 24.11
        "v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45",  # 26.05
    ]


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{release_of(p)}-{version_of(p)}")
def test_records_of_every_version(path: Path) -> None:
    jobs = {j.job_id: j for j in parse(path)}
    assert sorted(jobs) == [1, 2, 3, 4, 5, 6, 7, 11, 12]
    running, failed, cancelled = jobs[1], jobs[2], jobs[4]
    assert running.state == "running" and running.started
    assert (running.partition, running.account, running.user) == ("debug", "root", "root")
    assert running.cpus == 1 and running.memory_bytes == 100 * 1024**2 and not running.gpus
    assert 0 < running.submit <= running.eligible <= running.start
    assert failed.state == "failed" and failed.started and 0 <= failed.end - failed.start <= 1
    # cancelled while pending: slurmctld writes start == end, nothing allocated
    assert cancelled.state == "cancelled" and not cancelled.started and cancelled.cpus == 0
    assert cancelled.start == cancelled.end > 0
    assert jobs[12].account == "physics" and jobs[12].user == "alice"
    assert jobs[12].state == "pending" and not jobs[12].started


@pytest.mark.parametrize(
    ("version", "path"),
    [("v0.0.36", "/slurmdb/v0.0.36/jobs"), ("v0.0.38", "/slurmdb/v0.0.38/jobs"),
     ("v0.0.40", "/slurmdb/v0.0.40/jobs/"), ("v0.0.45", "/slurmdb/v0.0.45/jobs/")],
)
def test_path(version: str, path: str) -> None:
    assert adapter_for(version).path("accounting") == path


def test_query_22_05_times_as_parse_time_takes_them_and_states_by_number_before_v0_0_38() -> (
    None
):
    q36 = adapter_for("v0.0.36").accounting_query(1795608000, 1795608300, steps=False)
    assert q36 == (
        "start_time=uts1795608000&end_time=uts1795608300"
        "&state=1%2C2%2C3%2C4%2C5%2C6%2C7%2C8%2C9%2C10%2C11%2C1024&skip_steps=true"
    )
    q38 = adapter_for("v0.0.38").accounting_query(1795608000, 1795608300, steps=True)
    assert q38.startswith("start_time=uts1795608000&end_time=uts1795608300&state=RUNNING%2C")
    assert "PENDING" not in q38 and "," not in q38
    # dbv0.0.38 would read REQUEUED as PENDING (22.05 lab: pending jobs came back)
    assert q38.split("&")[2].endswith("DEADLINE%2COUT_OF_MEMORY")
    assert "skip_steps" not in q38


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.42", "v0.0.45"])
def test_query_data_parser_spells_out_the_flags_it_would_lose(version: str) -> None:
    q = adapter_for(version).accounting_query(10, 20, steps=False).split("&")
    # "uts": v0.0.40/41 parse only strings parse_time() takes (24.11 lab)
    assert q[:2] == ["start_time=uts10", "end_time=uts20"]
    assert {"show_duplicates=true", "disable_truncate_usage_time=true", "skip_steps=true"} <= set(q)
    # one state per key: a list for slurmrestd (a "," would be refused)
    assert [p for p in q if p.startswith("state=")] == [
        "state=RUNNING", "state=SUSPENDED", "state=COMPLETED", "state=CANCELLED",
        "state=FAILED", "state=TIMEOUT", "state=NODE_FAIL", "state=PREEMPTED",
        "state=BOOT_FAIL", "state=DEADLINE", "state=OUT_OF_MEMORY", "state=REQUEUED",
    ]
    assert "," not in "&".join(q)
    with_steps = adapter_for(version).accounting_query(10, 20, steps=True)
    assert "skip_steps" not in with_steps and "show_duplicates=true" in with_steps


def test_steps_give_cpu_time_and_max_rss() -> None:
    path = FIXTURES / "slurm-24.11-slurmdbd" / "slurmdb_v0.0.42_jobs.json"
    body = json.loads(path.read_bytes())
    step = body["jobs"][0]["steps"][0]
    # a step that used 12.5 s of CPU and 300 MiB at most (tres_usage_in_max)
    step["time"]["total"] = {"seconds": 12, "microseconds": 500000}
    step["tres"]["requested"]["max"] = [
        {"type": "mem", "name": "", "id": 2, "count": 300 * 1024**2}
    ]
    body["jobs"][0]["steps"].append(step)  # two steps: their CPU times add up
    jobs = adapter_for("v0.0.42").parse_accounting_jobs(json.dumps(body).encode()).data
    first = next(j for j in jobs if j.job_id == 1)
    assert first.max_rss_bytes == 300 * 1024**2
    assert first.cpu_used_seconds == 25.0


def test_gpus_by_type_else_untyped() -> None:
    from exporter.api.acctrecord import RawTres, _gpus

    typed = [RawTres("gres", "gpu", 3), RawTres("gres", "gpu:a100", 2),
             RawTres("gres", "gpu:h100", 1), RawTres("cpu", None, 4)]
    assert _gpus(typed) == {"a100": 2, "h100": 1}
    assert _gpus([RawTres("gres", "gpu", 2)]) == {"": 2}
    assert _gpus([RawTres("gres", "gpumem", 2)]) == {}


def test_gpus_of_an_untracked_type_are_not_lost() -> None:
    """AccountingStorageTRES=gres/gpu,gres/gpu:a100 and a job given an a100 and a v100:
    slurmctld adds both to gres/gpu but writes gres/gpu:TYPE only for a tracked type
    (src/stepmgr/gres_stepmgr.c:2122-2138,2146-2165 at slurm-24-11-5-1): the GPUs no
    type accounts for are still allocated, under gpu_type=""."""
    from exporter.api.acctrecord import RawTres, _gpus

    mixed = [RawTres("gres", "gpu", 2), RawTres("gres", "gpu:a100", 1)]
    assert _gpus(mixed) == {"a100": 1, "": 1}


# --- the window ----------------------------------------------------------------------------


def window(started_at: int = 10_000, max_window: int = 3600) -> Window:
    return Window(started_at=started_at, max_window=max_window)


def kinds(events: Sequence[object]) -> list[tuple[str, int]]:
    return [(e.kind, e.job.job_id) for e in events]  # type: ignore[attr-defined]


def test_edges_lower_bound_in_upper_bound_out() -> None:
    w = window()
    at_lo = job(1, start=10_000, end=10_100)
    at_hi = job(2, start=10_300, state="running")
    before = job(3, start=9_999, end=10_050)  # started before counting began
    assert w.chunks(10_300) == [(10_000, 10_300)]
    assert kinds(w.count([at_lo, at_hi, before], 10_000, 10_300)) == [
        ("start", 1), ("end", 1), ("end", 3)
    ]
    # the next poll counts what sat on the edge, once
    lo, hi = w.chunks(10_600)[0]
    assert kinds(w.count([at_lo, at_hi, before], lo, hi)) == [("start", 2)]


def test_overlapping_polls_count_each_event_once() -> None:
    w = window()
    j = job(1, start=10_050, end=10_250)
    total = []
    for now in range(10_100, 12_000, 100):
        for lo, hi in w.chunks(now):
            total += w.count([j], lo, hi)
    assert kinds(total) == [("start", 1), ("end", 1)]


def test_a_late_record_is_counted_within_the_overlap() -> None:
    w = window()
    w.count([], *w.chunks(10_300)[0])  # the end at 10_200 not in slurmdbd yet
    late = job(1, start=10_100, end=10_200)
    lo, hi = w.chunks(10_600)[0]
    assert lo == 10_000  # max(process start, 10_300 - OVERLAP_SECONDS)
    assert kinds(w.count([late], lo, hi)) == [("start", 1), ("end", 1)]


def test_a_record_later_than_the_overlap_is_lost_not_counted_twice() -> None:
    w = window(started_at=0)
    w.count([], *w.chunks(10_000)[0])
    very_late = job(1, start=9_000, end=9_300)  # lands after 10_000 + OVERLAP
    w.count([], *w.chunks(11_000)[-1])
    lo, hi = w.chunks(11_300)[0]
    assert lo == 11_000 - OVERLAP_SECONDS
    assert kinds(w.count([very_late], lo, hi)) == []


def test_a_restart_never_counts_history() -> None:
    first = window(started_at=10_000)
    j = job(1, start=10_100, end=10_200)
    assert len(first.count([j], *first.chunks(10_300)[0])) == 2
    restarted = window(started_at=10_400)  # a new process: a new window, counters reset
    assert restarted.chunks(10_700) == [(10_400, 10_700)]
    assert kinds(restarted.count([j], *restarted.chunks(10_700)[0])) == []


def test_a_failed_poll_then_catch_up() -> None:
    w = window(started_at=10_000)
    w.count([], *w.chunks(10_300)[0])
    # the poll at 10_600 fails: count() is not called, the cursor stays at 10_300
    missed = job(1, start=10_400, end=10_500)
    assert w.chunks(10_900) == [(10_000, 10_900)]
    assert kinds(w.count([missed], *w.chunks(10_900)[0])) == [("start", 1), ("end", 1)]


def test_a_backlog_that_reaches_slurmdbd_after_the_first_good_poll_is_counted() -> None:
    """slurmdbd back: slurmctld's queued ends may land after the first good poll asked
    for them. The next good poll asks the outage's span again; the one after, no more."""
    adapter = adapter_for("v0.0.42")
    poller = AccountingPoller(Options(), started_at=10_000, max_window=100_000)
    in_slurmdbd: list[AccountedJob] = []
    asked: list[int] = []

    def fetch(query: str) -> list[AccountedJob]:
        lo = int(query.split("&")[0].removeprefix("start_time=uts"))
        asked.append(lo)
        if down:
            raise EndpointFailure("timeout", "GET /slurmdb/v0.0.42/jobs/: timed out")
        return [j for j in in_slurmdbd if j.end >= lo]

    down = False
    poller.poll(adapter, fetch, 10_300)
    down = True
    for now in (10_600, 10_900, 11_200):
        with pytest.raises(EndpointFailure):
            poller.poll(adapter, fetch, now)
    down = False
    poller.poll(adapter, fetch, 11_500)  # slurmdbd back, its backlog not in yet
    in_slurmdbd.append(job(1, start=10_350, end=10_400))  # ended while slurmdbd was down
    poller.poll(adapter, fetch, 11_800)
    poller.poll(adapter, fetch, 12_100)
    poller.poll(adapter, fetch, 12_400)
    assert asked[-4:] == [10_000, 10_000, 11_800 - OVERLAP_SECONDS, 12_100 - OVERLAP_SECONDS]
    fams = poller.families()
    assert value(fams, "slurm_accounting_jobs_ended_total", partition="debug",
                 state="completed") == 1
    assert poller.window.seen == {}  # nothing held once the outage's span is asked again


def test_a_long_outage_is_asked_in_chunks_of_max_window() -> None:
    w = window(started_at=10_000, max_window=1000)
    w.count([], *w.chunks(10_300)[0])
    # down for an hour
    chunks = w.chunks(13_900)
    assert chunks == [(9_700 + 300, 11_000), (11_000, 12_000), (12_000, 13_000), (13_000, 13_900)]
    jobs = [job(i, start=10_000 + 1000 * i, end=10_500 + 1000 * i) for i in range(1, 4)]
    counted = []
    for lo, hi in chunks:  # slurmdbd answers each chunk with what touches it
        counted += w.count([j for j in jobs if j.start < hi and j.end >= lo], lo, hi)
    assert sorted(kinds(counted)) == sorted(
        [(k, i) for i in range(1, 4) for k in ("start", "end")]
    )
    assert w.cursor == 13_900


def test_a_failure_in_the_middle_of_the_chunks_keeps_what_was_counted() -> None:
    w = window(started_at=10_000, max_window=1000)
    jobs = [job(1, start=10_100, end=10_200), job(2, start=11_100, end=11_200)]
    first, _second = w.chunks(12_000)
    assert kinds(w.count(jobs, *first)) == [("start", 1), ("end", 1)]
    # the second chunk fails: the cursor is at the first's end
    assert w.cursor == 11_000
    again = w.chunks(12_100)
    assert again[0] == (11_000 - OVERLAP_SECONDS, 11_400)
    counted = []
    for lo, hi in again:
        counted += w.count(jobs, lo, hi)
    assert kinds(counted) == [("start", 2), ("end", 2)]


def test_requeued_runs_are_records_of_their_own() -> None:
    w = window()
    first_run = job(7, submit=10_000, start=10_010, end=10_100, state="requeued")
    second_run = job(7, submit=10_100, start=10_150, end=10_200)
    same_twice = [first_run, second_run, second_run]
    assert kinds(w.count(same_twice, *w.chunks(10_300)[0])) == [
        ("start", 7), ("end", 7), ("start", 7), ("end", 7)
    ]


def test_not_started_and_not_ended_records_have_no_such_event() -> None:
    w = window()
    cancelled_pending = job(1, start=10_050, end=10_050, state="cancelled", started=False)
    running = job(2, start=10_060, end=10_290, state="running")  # end: a truncation artefact
    pending = job(3, start=10_070, end=10_070, state="pending", started=False)
    # held, then cancelled (24.11 lab: eligible 0, start NO_VAL): sacct's default leaves
    # it out, slurmdbd's answer to the states asked has it
    held_cancelled = job(4, eligible=0, start=0, end=10_080, state="cancelled")
    jobs = [cancelled_pending, running, pending, held_cancelled]
    assert kinds(w.count(jobs, *w.chunks(10_300)[0])) == [("end", 1), ("start", 2)]


def test_memory_stays_bounded() -> None:
    w = window(started_at=0)
    now = 0
    for poll in range(200):
        now += 300
        jobs = [job(poll * 100 + i, start=now - 200, end=now - 100) for i in range(100)]
        for lo, hi in w.chunks(now):
            w.count(jobs, lo, hi)
        # the events of the overlap (600 s: two polls) and no more
        assert len(w.seen) <= 2 * 2 * 100 + 2 * 100
    assert len(w.seen) <= 600


def test_every_poll_asks_even_right_at_the_start() -> None:
    w = window(started_at=10_000)
    assert w.chunks(10_000) == [(10_000, 10_000)]
    assert w.count([job(1, start=10_000, end=10_000)], 10_000, 10_000) == []
    assert w.chunks(9_990) == [(10_000, 10_000)]  # a clock set back: nothing, but asked


def test_window_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Window(started_at=0, max_window=0)


# --- the tally -----------------------------------------------------------------------------


def tally_of(jobs: Sequence[AccountedJob], **options: bool) -> list[Metric]:
    w = Window(started_at=0, max_window=10**9)
    t = Tally(Options(**options))
    t.add(w.count(jobs, 0, 10**9))
    return collect_accounting(t, w)


def test_queue_wait_from_eligible() -> None:
    fams = tally_of([
        job(1, submit=100, eligible=160, start=200, state="running"),  # 40 s
        job(2, submit=100, eligible=100, start=5_000, state="running"),  # 4900 s
    ])
    name = "slurm_accounting_job_queue_wait_seconds"
    assert value(fams, name + "_count", partition="debug") == 2
    assert value(fams, name + "_sum", partition="debug") == 40 + 4900
    assert value(fams, name + "_bucket", partition="debug", le="30.0") == 0
    assert value(fams, name + "_bucket", partition="debug", le="60.0") == 1
    assert value(fams, name + "_bucket", partition="debug", le="3600.0") == 1
    assert value(fams, name + "_bucket", partition="debug", le="7200.0") == 2
    assert value(fams, name + "_bucket", partition="debug", le="+Inf") == 2


def test_ended_by_state_run_time_and_usage() -> None:
    fams = tally_of([
        job(1, start=100, end=700, cpus=4, memory_bytes=2 * 1024**3),  # 600 s
        job(2, start=100, end=160, state="timeout", gpus={"a100": 2}),
        job(3, start=50, end=50, state="cancelled", started=False),  # before it started
    ])
    ended = "slurm_accounting_jobs_ended_total"
    assert value(fams, ended, partition="debug", state="completed") == 1
    assert value(fams, ended, partition="debug", state="timeout") == 1
    assert value(fams, ended, partition="debug", state="cancelled") == 1
    run = "slurm_accounting_job_run_seconds"
    assert value(fams, run + "_count", partition="debug") == 2  # not the cancelled one
    assert value(fams, run + "_bucket", partition="debug", le="600.0") == 2
    assert value(fams, run + "_sum", partition="debug") == 660
    assert value(fams, "slurm_accounting_cpu_seconds_total", account="science") == 4 * 600 + 2 * 60
    assert value(fams, "slurm_accounting_gpu_seconds_total", account="science",
                 gpu_type="a100") == 120
    assert value(fams, "slurm_accounting_memory_byte_seconds_total", account="science") == (
        2 * 1024**3 * 600 + 1024**3 * 60
    )


def test_a_resized_jobs_first_record_adds_its_usage_not_an_end() -> None:
    """A job resized while running: slurmctld ends its record in state RESIZING at the
    resize (src/slurmctld/job_mgr.c:15387-15430, as_mysql_job.c:1225-1228 at
    slurm-24-11-5-1) and starts a new one; the first record's allocation x Elapsed is
    usage (sacct shows the RESIZING record even without -D: as_mysql_jobacct_process.c
    :625-627), but the job did not end."""
    from exporter.api.acctrecord import accounted_state

    body = json.loads((FIXTURES / "slurm-24.11-slurmdbd/slurmdb_v0.0.42_jobs.json").read_text())
    rec = next(j for j in body["jobs"] if j["job_id"] == 1)
    rec["state"]["current"] = ["PENDING", "RESIZING"]  # JOB_RESIZING as the data_parser names it
    rec["time"].update(submission=900, eligible=900, start=1000, end=1600, elapsed=600)
    answer = json.dumps({**body, "jobs": [rec]}).encode()
    fams = tally_of(adapter_for("v0.0.42").parse_accounting_jobs(answer).data)
    assert value(fams, "slurm_accounting_cpu_seconds_total", account=rec["account"]) == 600
    assert value(fams, "slurm_accounting_jobs_ended_total", partition=rec["partition"],
                 state="resizing") == 0
    assert value(fams, "slurm_accounting_job_run_seconds_count", partition=rec["partition"]) == 0
    assert accounted_state(("RESIZING",)) == "resizing"  # 22.05: job_state_string()


def test_per_account_and_per_user() -> None:
    jobs = [job(1, start=100, end=200, account="a", user="u"),
            job(2, start=100, end=200, account="b", user="v")]
    fams = tally_of(jobs, per_account=True, per_user=True)
    ended = "slurm_accounting_jobs_ended_total"
    assert value(fams, ended, partition="debug", state="completed", account="a") == 1
    assert value(fams, "slurm_accounting_cpu_seconds_total", account="b", user="v") == 200
    plain = tally_of(jobs)
    assert value(plain, ended, partition="debug", state="completed") == 2


def test_efficiency_only_with_its_flag() -> None:
    j = job(1, start=100, end=200, cpus=2, memory_bytes=1000, cpu_used=150.0, max_rss=450)
    assert "slurm_accounting_job_cpu_efficiency_ratio" not in render(tally_of([j]))
    fams = tally_of([j], efficiency=True)
    cpu = "slurm_accounting_job_cpu_efficiency_ratio"
    mem = "slurm_accounting_job_memory_efficiency_ratio"
    assert value(fams, cpu + "_sum", partition="debug") == 0.75
    assert value(fams, cpu + "_bucket", partition="debug", le="0.7") == 0
    assert value(fams, cpu + "_bucket", partition="debug", le="0.8") == 1
    assert value(fams, mem + "_sum", partition="debug") == 0.45
    # no steps measured: no observation
    bare = tally_of([replace(j, cpu_used_seconds=None, max_rss_bytes=None)], efficiency=True)
    assert value(bare, cpu + "_count", partition="debug") == 0


def test_window_gauges() -> None:
    w = Window(started_at=1_000, max_window=3600)
    w.count([], 1_000, 1_300)
    fams = collect_accounting(Tally(Options()), w)
    assert value(fams, "slurm_accounting_window_start_timestamp_seconds") == 1_000
    assert value(fams, "slurm_accounting_window_end_timestamp_seconds") == 1_300


# --- the poller ----------------------------------------------------------------------------


def test_poller_asks_each_chunk_and_keeps_the_cursor_on_a_failure() -> None:
    adapter = adapter_for("v0.0.42")
    poller = AccountingPoller(Options(), started_at=10_000, max_window=1000)
    asked: list[str] = []
    answers = {10_100: [job(1, start=10_100, end=10_200)]}

    def fetch(query: str) -> list[AccountedJob]:
        asked.append(query)
        lo = int(query.split("&")[0].removeprefix("start_time=uts"))
        if lo >= 11_000:
            raise EndpointFailure("timeout", "GET /slurmdb/v0.0.42/jobs/: timed out")
        return [j for j in answers.get(10_100, []) if lo <= j.start]

    with pytest.raises(EndpointFailure):
        poller.poll(adapter, fetch, 12_500)
    assert [q.split("&")[:2] for q in asked] == [
        ["start_time=uts10000", "end_time=uts11000"],
        ["start_time=uts11000", "end_time=uts12000"],
    ]
    assert poller.window.cursor == 11_000
    fams = poller.families()
    assert value(fams, "slurm_accounting_jobs_ended_total", partition="debug",
                 state="completed") == 1
    assert value(fams, "slurm_accounting_window_end_timestamp_seconds") == 11_000


# --- golden expositions, every version -----------------------------------------------------


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{release_of(p)}-{version_of(p)}")
def test_golden_exposition(path: Path) -> None:
    poller = AccountingPoller(
        Options(per_account=True, per_user=True, efficiency=True), started_at=0,
        max_window=3600,
    )
    # every record counted: the window is the whole recording
    poller.tally.add(poller.window.count(parse(path), 0, 2**31))
    text = render(poller.families())
    golden = GOLDEN / f"{release_of(path)}_{version_of(path)}.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text()


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = load_settings(["--auth", "none"])
    assert not s.collector_accounting and "accounting" not in s.enabled_endpoints()
    on = load_settings(["--auth", "none", "--collector-accounting"])
    assert "accounting" in on.enabled_endpoints()
    assert on.interval_of("accounting") == 300
    assert on.accounting_max_window == 3600
    assert not (on.accounting_per_account or on.accounting_per_user or on.accounting_efficiency)


@pytest.mark.parametrize("bad", ["0", "59", "86401", "nan", "-5", "x"])
def test_a_bad_max_window_fails_at_start_naming_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError, match="--accounting-max-window") as e:
        load_settings(["--auth", "none", f"--accounting-max-window={bad}"])
    assert "unknown flag" not in str(e.value)
    lowest = load_settings(["--auth", "none", "--accounting-max-window=60"])
    assert lowest.accounting_max_window == 60


def test_the_accounting_interval_is_bounded_by_interval_like_any() -> None:
    with pytest.raises(ConfigError, match="--collector-accounting-interval"):
        load_settings(["--auth", "none", "--interval", "60",
                       "--collector-accounting-interval", "30"])


@pytest.mark.parametrize("version", ["v0.0.36", "v0.0.37", "v0.0.38"])
def test_2205_empty_window_is_no_job_not_a_failure(version: str) -> None:
    # 22.05 answers a window without jobs with error 9003 "Nothing found with query"
    body = (FIXTURES / "slurm-22.05-slurmdbd" / f"slurmdb_{version}_jobs_empty.json").read_bytes()
    answer = adapter_for(version).parse_accounting_jobs(body)
    assert answer.data == [] and answer.meta.slurm_release == "22.05.8"
