"""Accounting conformance on a real slurmdbd (issue 12, "Done when"): after a known job mix
over several accounting windows, the exporter's accounting counters and histograms equal
what `sacct` gives for the same windows, job by job (tests/integration/accounting.py);
a restart of the exporter counts nothing twice (history before its start is never
counted); slurmdbd stopped while jobs start and end, then started again, loses nothing.

It ends every job of the session's lab (the node must be free for the mix), so it runs
last for its release (conftest.py orders it so).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import pytest

from exporter.settings import load_settings
from tests.integration.accounting import END_STATES, Mix, differences, expected, sacct
from tests.integration.lab import Lab
from tests.integration.serving import Samples, ServerExporter, server_exporter

Exporter = AbstractContextManager[ServerExporter]

INTERVAL = 2  # seconds: --interval and --collector-accounting-interval
FLAGS = ("--collector-accounting", "--collector-accounting-interval", str(INTERVAL),
         "--accounting-per-account", "--accounting-per-user")
P = "slurm_accounting_"


def _has_accounting() -> bool:
    try:
        load_settings(["--slurmrestd-url", "http://127.0.0.1:1", "--interval", str(INTERVAL),
                       *FLAGS])
    except BaseException:  # argparse exits on an unknown flag
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _has_accounting(),
    reason="the exporter has no --collector-accounting yet (issue 12 item 1)")


def gauge(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return found[0][1] if found else None


def endpoint_up(samples: Samples) -> float | None:
    for labels, value in samples.get("slurm_exporter_endpoint_up", []):
        if labels.get("endpoint") == "accounting":
            return value
    return None


def counted_after(server: ServerExporter, t: float, timeout: float = 60) -> Samples:
    """The first snapshot whose accounting counters reach past `t` (a good poll after it)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = server.scrape()
        end = gauge(samples, P + "window_end_timestamp_seconds")
        if end is not None and end > t:
            return samples
        assert server.proc.poll() is None, "the exporter exited"
        assert time.monotonic() < deadline, f"no accounting poll past {t} (window end {end})"
        time.sleep(0.2)


def await_poll_failed(server: ServerExporter, timeout: float = 60) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = server.scrape()
        if endpoint_up(samples) == 0:
            return samples
        assert time.monotonic() < deadline, "the accounting endpoint never failed"
        time.sleep(0.2)


def window(samples: Samples) -> tuple[int, int]:
    lo = gauge(samples, P + "window_start_timestamp_seconds")
    hi = gauge(samples, P + "window_end_timestamp_seconds")
    assert lo is not None and hi is not None
    return int(lo), int(hi)


def assert_as_sacct(lab: Lab, server: ServerExporter, tries: int = 1) -> tuple[Samples, set[str]]:
    """The exporter's counters, after a poll from now, equal sacct's events of their
    window; the states that ended in it. With jobs in flight a start or end may reach
    slurmdbd after the poll that covered its time, and sacct (asked after the poll) knows
    it: then the next poll counts it (the overlap), so try again up to `tries` times."""
    diffs: list[str] = []
    for _ in range(tries):
        samples = counted_after(server, time.time())
        lo, hi = window(samples)
        exp = expected(sacct(lab, lo, hi), lo, hi)
        diffs = differences(exp, samples)
        if not diffs:
            return samples, {state for (_, state, _) in exp.ended}
    raise AssertionError("\n".join(diffs))


def exporter(lab: Lab) -> Exporter:
    return server_exporter("--slurmrestd-url", lab.url, "--jwt-key-file", lab.key,
                           "--jwt-user", lab.user, "--timeout", "20", *FLAGS, interval=INTERVAL)


def test_accounting_counts_what_sacct_gives_across_a_restart_and_a_slurmdbd_outage(
        lab: Lab) -> None:
    if lab.env.get("SLURMLAB_SLURMDBD") != "1":
        pytest.skip("the lab runs without slurmdbd")
    mix = Mix(lab)
    with exporter(lab) as first:
        counted_after(first, time.time())  # counting has begun
        # the session's job mix: running jobs (GPUs too) and pending ones, cancelled
        lab.run("exec", "--", "scancel", "--user=root", check=False)
        lab.run("exec", "--", "scancel", "--user=alice", check=False)
        mix.first()
        assert_as_sacct(lab, first, tries=10)  # a window with jobs in flight
        mix.then()
        mix.await_quiet()
        done, states = assert_as_sacct(lab, first)
        assert {"completed", "failed", "timeout", "cancelled", "requeued"} <= states, states
        assert any(labels.get("gpu_type") for labels, _ in done[P + "gpu_seconds_total"])

    mix.ids.clear()
    with exporter(lab) as second:
        fresh = counted_after(second, time.time())
        lo, _ = window(fresh)
        assert lo >= window(done)[1], "the restarted exporter counts from its own start"
        assert not [v for _, v in fresh.get(P + "jobs_ended_total", []) if v], \
            "history counted after a restart"
        mix.job("before_outage", "-A", "science", "--wrap", "true")
        mix.await_quiet()
        lab.run("stop-dbd")
        try:
            await_poll_failed(second)
            # these start and end while slurmdbd is down: slurmctld keeps their records
            mix.job("during_outage", "-A", "science", "--wrap", "sleep 1")
            mix.job("fails_during_outage", "-A", "science", "-p", "batch", "--wrap", "exit 2")
            for name in ("during_outage", "fails_during_outage"):
                mix.await_state(mix.ids[name], "COMPLETED", "FAILED")
            await_poll_failed(second)
        finally:
            lab.run("start-dbd")
        mix.await_quiet()
        after, states = assert_as_sacct(lab, second)
        assert endpoint_up(after) == 1
        assert {"completed", "failed"} <= states
        assert set(states) <= END_STATES
