"""Per-endpoint intervals (--collector-X-interval): an endpoint polled less often than
--interval keeps its last answer, and its own health, between its calls; its stale data
counts in its own interval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.settings import ConfigError, load_settings
from tests.unit.test_cycle import FIXTURES, URL, serve_release, value


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as m:
        yield m


def collection(key_file: Path, clock: Clock, *extra: str) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter",
         "--api-version", "v0.0.45", *extra]
    )
    tokens = MintedToken(key_file, "exporter", 1800)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens, clock=clock)


def test_an_endpoint_is_called_at_its_own_interval_and_served_between(
    mock: respx.MockRouter, key_file: Path
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    clock = Clock()
    coll = collection(key_file, clock, "--interval", "30", "--collector-shares-interval", "120")
    first = coll.run_once()
    called_at = value(first, "slurm_exporter_endpoint_last_success_timestamp_seconds",
                      endpoint="shares")
    assert value(first, "slurm_exporter_endpoint_interval_seconds", endpoint="shares") == 120
    assert value(first, "slurm_exporter_endpoint_interval_seconds", endpoint="jobs") == 30
    calls = []
    for _ in range(8):  # 4 minutes of 30 s cycles
        clock.now += 30
        snap = coll.run_once()
        calls.append((routes["shares"].call_count, routes["jobs"].call_count))
        assert snap.all_up
    # /shares at 0, 120 and 240 s; /jobs every cycle
    assert [c[0] for c in calls] == [1, 1, 1, 2, 2, 2, 2, 3]
    assert [c[1] for c in calls] == list(range(2, 10))
    # between its calls its health is that of its last call
    clock.now += 30
    routes["shares"].respond(500, content=b"")
    snap = coll.run_once()  # not due: not called, still up
    assert routes["shares"].call_count == 3
    assert value(snap, "slurm_exporter_endpoint_up", endpoint="shares") == 1
    assert value(snap, "slurm_exporter_endpoint_last_success_timestamp_seconds",
                 endpoint="shares") == called_at + 240


def test_stale_data_counts_in_the_endpoints_own_interval(
    mock: respx.MockRouter, key_file: Path
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    clock = Clock()
    coll = collection(key_file, clock, "--interval", "30", "--collector-shares-interval", "300",
                      "--collector-jobs-interval", "300")
    coll.run_once()
    routes["jobs"].respond(502, content=b"Bad Gateway")
    # its next call, 300 s later, fails; then it is tried every cycle until it answers:
    # after 10 cycles more (300 s), 5 x --interval (150 s) would drop its data; 5 x its
    # own interval (1500 s) keeps it
    clock.now += 300
    coll.run_once()
    assert routes["jobs"].call_count == 2
    for _ in range(10):
        clock.now += 30
        snap = coll.run_once()
    assert routes["jobs"].call_count == 12
    assert value(snap, "slurm_exporter_endpoint_up", endpoint="jobs") == 0
    assert value(snap, "slurm_exporter_endpoint_data_dropped", endpoint="jobs") == 0
    assert any(k.startswith("slurm_jobs_by_state{") for k in snap.exposition.decode().splitlines())
    # the fault ends: up at the next cycle, not up to 300 s later
    jobs = (FIXTURES / "slurm-26.05" / "v0.0.45_jobs.json").read_bytes()
    routes["jobs"].respond(200, content=jobs)
    clock.now += 30
    assert value(coll.run_once(), "slurm_exporter_endpoint_up", endpoint="jobs") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collector-shares-interval", "10"],
         "--collector-shares-interval: must be at least --interval (30 s): an endpoint is "
         "called at most once a cycle (got 10)"),
        (["--collector-jobs-interval", "0"],
         "--collector-jobs-interval: must be from 0.001 to 86400 seconds (got '0')"),
        (["--collector-ping-interval", "abc"],
         "--collector-ping-interval: expected a number (got 'abc')"),
    ],
)
def test_bad_endpoint_intervals_stop_the_exporter(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings([*args, "--auth", "none"])
    assert str(e.value) == message


def test_default_intervals() -> None:
    s = load_settings(["--auth", "none"])
    assert s.interval_of("shares") == 300 and s.interval_of("jobs") == 30
    # never below --interval
    assert load_settings(["--auth", "none", "--interval", "600"]).interval_of("shares") == 600
