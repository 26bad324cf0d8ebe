"""Detached endpoints (issue 12): slurmdbd's are called off the cycle, never awaited, one
call at a time; their health is reported like any endpoint's; the accounting
endpoint's window and counters live across cycles, survive a failing slurmdbd and are
never dropped as stale.

slurmrestd is replaced by respx routes serving recorded answers (26.05, v0.0.45).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.settings import load_settings
from tests.unit.test_cycle import URL, samples, serve_release, value

FIXTURES = Path(__file__).parent.parent / "fixtures"
JOBS = (FIXTURES / "slurm-26.05-slurmdbd" / "slurmdb_v0.0.45_jobs.json").read_bytes()
# the recorded jobs' times: submitted at 1795608732-735, the last event at 1795608737
BEFORE = 1795608700.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as m:
        serve_release(m, "26.05", "v0.0.45")
        yield m


def collection(key_file: Path, clock: Clock, *extra: str) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter",
         "--collector-accounting", *extra]
    )
    tokens = MintedToken(key_file, "exporter", 1800)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens, clock=clock)


class Slurmdbd:
    """A slurmdbd behind slurmrestd that answers when told to, or fails."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        self.fail = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        assert self.release.wait(30), "the test never let slurmdbd answer"
        if self.fail:  # slurmrestd's answer with slurmdbd down
            return httpx.Response(500, json={"jobs": [], "errors": [{
                "description": "Unable to query jobs", "error_number": 7000,
                "error": "Unable to contact slurm controller (connect failure)",
                "source": "slurmdb_jobs_get"}], "warnings": []})
        return httpx.Response(200, content=JOBS)


def ended(snap_or_coll: object) -> float:
    return value(snap_or_coll,  # type: ignore[arg-type]
                 "slurm_accounting_jobs_ended_total", partition="debug", state="failed")


def test_a_slow_slurmdbd_never_delays_the_cycle(mock: respx.MockRouter, key_file: Path) -> None:
    dbd = Slurmdbd()
    mock.get(url__startswith=URL + "/slurmdb/v0.0.45/jobs/").mock(side_effect=dbd)
    clock = Clock(BEFORE)
    coll = collection(key_file, clock)
    clock.now += 300
    durations = []
    try:
        for _ in range(3):  # slurmdbd still thinking: each cycle ends without it
            t0 = time.perf_counter()
            snap = coll.run_once()
            durations.append(time.perf_counter() - t0)
            assert value(snap, "slurm_exporter_endpoint_up", endpoint="nodes") == 1
            assert value(snap, "slurm_exporter_endpoint_up", endpoint="accounting") == 0
        assert max(durations) < 5, durations  # slurmdbd holds its answer 30 s
        assert len(dbd.calls) == 1  # at most one call in flight, never a second
    finally:
        dbd.release.set()
    snap = coll.run_once(wait_detached=True)  # --once waits for it
    assert value(snap, "slurm_exporter_endpoint_up", endpoint="accounting") == 1
    assert snap.all_up, snap.failures
    assert ended(snap) == 1
    assert value(snap, "slurm_accounting_window_start_timestamp_seconds") == BEFORE
    assert value(snap, "slurm_accounting_window_end_timestamp_seconds") == BEFORE + 300
    # the query: the window since the start, the states that start or end jobs
    query = httpx.URL(dbd.calls[0]).params
    assert query["start_time"] == f"uts{int(BEFORE)}"
    assert query["end_time"] == f"uts{int(BEFORE) + 300}"
    assert "PENDING" not in query.get_list("state") and "skip_steps" in query


def test_a_failing_slurmdbd_keeps_the_window_and_the_counters(
    mock: respx.MockRouter, key_file: Path
) -> None:
    dbd = Slurmdbd()
    dbd.release.set()
    mock.get(url__startswith=URL + "/slurmdb/v0.0.45/jobs/").mock(side_effect=dbd)
    clock = Clock(BEFORE)
    # --stale-data-max-age 0 drops any failing endpoint's data at once: not counters
    coll = collection(key_file, clock, "--stale-data-max-age", "0", "--interval", "60",
                      "--collector-accounting-interval", "60")
    clock.now += 60
    snap = coll.run_once(wait_detached=True)
    assert ended(snap) == 1
    dbd.fail = True
    for _ in range(3):
        clock.now += 60
        snap = coll.run_once(wait_detached=True)
        assert value(snap, "slurm_exporter_endpoint_up", endpoint="accounting") == 0
        assert ended(snap) == 1  # still served, not dropped as stale
        assert value(snap, "slurm_accounting_window_end_timestamp_seconds") == BEFORE + 60
        assert value(snap, "slurm_exporter_endpoint_up", endpoint="jobs") == 1
    errors = [v for (n, labels), v in samples(snap).items()
              if n == "slurm_exporter_endpoint_errors_total"
              and ("endpoint", "accounting") in labels]
    assert sum(errors) == 3
    dbd.fail = False
    clock.now += 60
    calls = len(dbd.calls)
    snap = coll.run_once(wait_detached=True)
    # caught up from where the last good poll left off, less the overlap, nothing twice
    params = httpx.URL(dbd.calls[calls]).params
    assert params["start_time"] == f"uts{int(BEFORE)}"  # (the overlap reaches the start)
    assert params["end_time"] == f"uts{int(BEFORE) + 300}"
    assert ended(snap) == 1
    assert value(snap, "slurm_accounting_window_end_timestamp_seconds") == BEFORE + 300


def test_the_first_poll_right_at_the_start_asks_slurmdbd(
    mock: respx.MockRouter, key_file: Path
) -> None:
    route = mock.get(url__startswith=URL + "/slurmdb/v0.0.45/jobs/").respond(404)
    snap = collection(key_file, Clock(BEFORE)).run_once(wait_detached=True)  # --once
    assert route.called
    assert value(snap, "slurm_exporter_endpoint_up", endpoint="accounting") == 0
    assert any("serves no /slurmdb/ path" in f.message for _, f in snap.failures)


def slurmdbd_down(request: httpx.Request) -> httpx.Response:
    """26.05 slurmrestd's answer with slurmdbd stopped (lab, HTTP 502)."""
    return httpx.Response(502, json={"jobs": [], "warnings": [], "errors": [{
        "description": "Failed to open slurmdbd connection", "error_number": 7000,
        "error": "Unable to connect to database", "source": "openapi_get_db_conn"}]})


def test_slurmdbd_down_is_logged_once_and_names_slurmdbd(
    mock: respx.MockRouter, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # each poll asks for another window (end_time in the URL): still the same cause
    mock.get(url__startswith=URL + "/slurmdb/v0.0.45/jobs/").mock(side_effect=slurmdbd_down)
    clock = Clock(BEFORE)
    coll = collection(key_file, clock, "--interval", "60",
                      "--collector-accounting-interval", "60")
    caplog.set_level("INFO", logger="exporter")
    try:
        for _ in range(4):
            clock.now += 60
            coll.run_once(wait_detached=True)
    finally:
        coll.close()
    lines = [r.getMessage() for r in caplog.records
             if r.levelname == "WARNING" and "accounting" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "slurmdbd is down or unreachable" in lines[0], lines[0]
    assert "scontrol ping" not in lines[0], lines[0]
