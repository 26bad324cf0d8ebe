"""Faults that need the real daemons (scripts/slurmlab.sh): slurmctld down while slurmrestd
is up, and a clock skewed by minutes against a real slurmrestd's token check.

The cluster is the session's shared `lab`; a test that stops slurmctld starts it again
before it ends, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection, Snapshot
from exporter.settings import load_settings
from tests.integration.lab import Lab

ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")


def samples(snap: Snapshot) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(snap.exposition.decode())
        for s in fam.samples
    }


def value(snap: Snapshot, name: str, **labels: str) -> float:
    return samples(snap)[(name, frozenset(labels.items()))]


def series(snap: Snapshot, prefix: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {k: v for k, v in samples(snap).items() if k[0].startswith(prefix)}


def collection(lab: Lab, *extra: str, clock_skew: float = 0.0) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", lab.url, "--jwt-key-file", lab.key, "--jwt-user", lab.user,
         "--timeout", "30", *extra]
    )
    tokens = MintedToken(Path(lab.key), lab.user, settings.jwt_lifespan,
                         clock=lambda: time.time() + clock_skew)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens)


@pytest.fixture
def ctld_restored(lab: Lab) -> Iterator[Lab]:
    """The lab; slurmctld is started again at the end (a no-op when it runs)."""
    try:
        yield lab
    finally:
        lab.run("start-ctld")


def test_slurmctld_down_while_slurmrestd_is_up(ctld_restored: Lab) -> None:
    lab = ctld_restored
    coll = collection(lab)
    try:
        good = coll.run_once()
        assert good.all_up, good.failures
        host = next(dict(k[1])["controller"] for k in series(good, "slurm_controller_up"))
        assert value(good, "slurm_controller_up", controller=host) == 1
        jobs_before = series(good, "slurm_jobs_by_state")
        assert jobs_before

        lab.run("stop-ctld")
        bad = coll.run_once()  # never raises; slurmrestd takes a few seconds to give up
        failed = dict(bad.failures)
        if lab.release == "22.05":
            # 22.05 answers everything with 500 "Unspecified error" (-1), as it answers a
            # refused token: reason auth, and the message names both causes
            assert set(failed) == set(ENDPOINTS), bad.failures
            expected = "auth"
        else:
            # ping still answers and reports the controller down
            assert value(bad, "slurm_exporter_endpoint_up", endpoint="ping") == 1
            assert value(bad, "slurm_controller_up", controller=host) == 0
            assert set(failed) >= {"diag", "jobs"}, bad.failures
            expected = "slurm_error"
        for endpoint, failure in failed.items():
            if failure.reason == "timeout":
                # slurmrestd may still be waiting on slurmctld (MessageTimeout, retries) when
                # --timeout ends, even /diag on an idle machine (26.05, seen in CI): a fault,
                # reported as such, that still names slurmctld
                assert "raise --timeout" in failure.message, failure.message
                assert "slurmctld" in failure.message, failure.message
                continue
            assert failure.reason == expected, (endpoint, failure.message)
            text = failure.message.lower()
            assert "slurm controller" in text or "slurmctld" in text, failure.message
            assert "scontrol ping" in failure.message
            assert value(bad, "slurm_exporter_endpoint_up", endpoint=endpoint) == 0
            assert value(bad, "slurm_exporter_endpoint_last_success_timestamp_seconds",
                         endpoint=endpoint) == value(
                good, "slurm_exporter_endpoint_last_success_timestamp_seconds",
                endpoint=endpoint)
        assert series(bad, "slurm_jobs_by_state") == jobs_before  # the last good data, kept

        lab.run("start-ctld")
        again = coll.run_once()
        assert again.all_up, again.failures
        assert value(again, "slurm_controller_up", controller=host) == 1
        assert series(again, "slurm_jobs_by_state") == jobs_before  # start-ctld keeps the state
    finally:
        coll.close()


@pytest.mark.parametrize("skew", [-300.0, 300.0])
def test_clock_skewed_by_minutes_against_real_slurmrestd(lab: Lab, skew: float) -> None:
    """Tokens minted by a host whose clock is 5 minutes off: slurmrestd checks `exp` on
    its own clock only, so a 30-minute token is accepted either way (an `iat` in the
    future included)."""
    coll = collection(lab, clock_skew=skew)
    try:
        snap = coll.run_once()
        assert snap.all_up, snap.failures
        expiry = value(snap, "slurm_exporter_token_expiry_timestamp_seconds")
        assert abs(expiry - (time.time() + 1800 + skew)) < 60
    finally:
        coll.close()


def test_clock_skew_beyond_the_lifespan_is_an_auth_failure_that_says_so(lab: Lab) -> None:
    coll = collection(lab, "--jwt-lifespan", "60", clock_skew=-600.0)
    try:
        snap = coll.run_once()
        assert not snap.all_up
        failures = dict(snap.failures)
        # slurmrestd answers a refused token on /shares with 500 and a bare error -1
        # ("slurm_associations_get_shares() failed"), which after 22.05 is not taken for a
        # refused token (exporter.api.errors.refuses_tokens_with_bare_error)
        shares = failures.pop("shares", None)
        assert shares is None or shares.reason == "slurm_error", shares
        assert {f.reason for f in failures.values()} == {"auth"}, snap.failures
        assert any("clock" in f.message for f in failures.values())
    finally:
        coll.close()
