"""Every fault of issue 6 against a real loopback slurmrestd (tests/fakerestd.py).

Each test checks the same three things: the cycle never raises (the process stays
alive), the endpoint's last good data stays in the snapshot with its staleness
visible (`slurm_exporter_endpoint_up 0`, an unchanged last-success timestamp, the
reason counted), and the next cycle after the fault ends is all up again by itself.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.auth import MintedToken, TokenFile, token_source_from_settings
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection, Snapshot
from exporter.settings import load_settings
from tests.fakerestd import (
    ENDPOINTS,
    FIXTURES,
    NODES_UPDATE_TIME_BUG,
    FakeSlurmrestd,
    Fault,
    slurm_error,
)

KEY = b"fault-test-key-0123456789abcdef!"
TOP = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(snap: Snapshot) -> Samples:
    out = {}
    for fam in text_string_to_metric_families(snap.exposition.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(snap: Snapshot, name: str, **labels: str) -> float:
    return samples(snap)[(name, frozenset(labels.items()))]


def up(snap: Snapshot, endpoint: str) -> float:
    return value(snap, "slurm_exporter_endpoint_up", endpoint=endpoint)


def errors(snap: Snapshot, endpoint: str, reason: str) -> float:
    return value(snap, "slurm_exporter_endpoint_errors_total", endpoint=endpoint, reason=reason)


def last_success(snap: Snapshot, endpoint: str) -> float:
    return value(snap, "slurm_exporter_endpoint_last_success_timestamp_seconds",
                 endpoint=endpoint)


def data_of(snap: Snapshot, endpoint: str) -> Samples:
    """The endpoint's own series (not the exporter's health)."""
    prefix = {
        "diag": ("slurm_scheduler_", "slurm_backfill_", "slurm_rpc_"),
        "jobs": ("slurm_jobs", "slurm_user_", "slurm_account_"),
        "nodes": ("slurm_nodes", "slurm_cpus", "slurm_memory_", "slurm_gpus_",
                  "slurm_partition_nodes_by_state", "slurm_partition_cpus_by_state",
                  "slurm_partition_gpus"),
        "partitions": ("slurm_partition_state", "slurm_partition_cpus_configured",
                       "slurm_partition_nodes_configured", "slurm_partition_max_time"),
        "ping": ("slurm_controller_",),
        "reservations": ("slurm_reservation_",),
        "licenses": ("slurm_license_",),
    }[endpoint]
    return {k: v for k, v in samples(snap).items() if k[0].startswith(prefix)}


class Clock:
    """The exporter's wall clock, moved by hand: last-success timestamps tell cycles apart."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "jwt_hs256.key"
    p.write_bytes(KEY)
    p.chmod(0o600)
    return p


@pytest.fixture
def srv() -> Iterator[FakeSlurmrestd]:
    with FakeSlurmrestd("26.05", key=KEY) as s:
        yield s


def make(
    url: str, key_file: Path, *extra: str, tokens: object | None = None
) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", url, "--jwt-key-file", str(key_file), "--jwt-user", "exporter",
         "--timeout", "2", *extra]
    )
    src = tokens if tokens is not None else token_source_from_settings(settings)
    return Collection(settings, SlurmrestdClient(settings, src), src, clock=Clock())  # type: ignore[arg-type]


@pytest.fixture
def coll(srv: FakeSlurmrestd, key_file: Path) -> Iterator[Collection]:
    c = make(srv.url, key_file)
    yield c
    c.close()


def assert_stale_then_recovers(
    coll: Collection,
    good: Snapshot,
    endpoints: tuple[str, ...],
    reason: str,
    end_fault: Callable[[], None],
) -> Snapshot:
    """One faulty cycle: data kept, staleness visible, reason counted; then recovery."""
    bad = coll.run_once()  # never raises: that is the first check
    for e in endpoints:
        assert up(bad, e) == 0, e
        assert errors(bad, e, reason) >= 1, (e, bad.failures)
        assert last_success(bad, e) == last_success(good, e), e  # its age shows
        assert data_of(bad, e) == data_of(good, e), e  # the last good data, kept
        assert data_of(good, e), e  # (and there was data to keep)
    assert value(bad, "slurm_exporter_collection_timestamp_seconds") > value(
        good, "slurm_exporter_collection_timestamp_seconds"
    )
    end_fault()
    again = coll.run_once()
    assert again.all_up, again.failures
    for e in endpoints:
        assert last_success(again, e) > last_success(good, e)
    return again


def first_good(coll: Collection) -> Snapshot:
    snap = coll.run_once()
    assert snap.all_up, snap.failures
    return snap


# --------------------------------------------------------------------- slurmrestd itself
def test_slurmrestd_stopped_and_restarted_mid_run(
    srv: FakeSlurmrestd, coll: Collection
) -> None:
    good = first_good(coll)
    srv.stop()
    assert_stale_then_recovers(coll, good, ENDPOINTS, "connect", srv.start)
    assert srv.port == int(coll._client.target.rsplit(":", 1)[1])  # the same address


@pytest.mark.parametrize(
    ("flags", "max_age"), [((), 5 * 30.0), (("--stale-data-max-age", "600"), 600.0)]
)
def test_a_failing_endpoints_data_is_dropped_when_too_old(
    srv: FakeSlurmrestd,
    key_file: Path,
    flags: tuple[str, ...],
    max_age: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Served while younger than --stale-data-max-age (default 5 x --interval), dropped
    after it, with slurm_exporter_endpoint_data_dropped 1; back when the endpoint is."""
    coll = make(srv.url, key_file, *flags)
    clock = coll._clock
    assert isinstance(clock, Clock)
    try:
        good = first_good(coll)
        srv.fault(srv.path("jobs"), Fault(500, b"oops"))
        young = coll.run_once()
        assert up(young, "jobs") == 0 and data_of(young, "jobs") == data_of(good, "jobs")
        assert value(young, "slurm_exporter_endpoint_data_dropped", endpoint="jobs") == 0
        clock.now = last_success(good, "jobs") + max_age - 60  # younger (a cycle reads
        # the clock a few times, each 1 s later)
        assert data_of(coll.run_once(), "jobs") == data_of(good, "jobs")
        clock.now = last_success(good, "jobs") + max_age + 1  # just older
        old = coll.run_once()
        assert up(old, "jobs") == 0 and data_of(old, "jobs") == {}
        assert value(old, "slurm_exporter_endpoint_data_dropped", endpoint="jobs") == 1
        assert last_success(old, "jobs") == last_success(good, "jobs")
        assert data_of(old, "nodes") == data_of(good, "nodes")  # the others are served
        assert value(old, "slurm_exporter_endpoint_data_dropped", endpoint="nodes") == 0
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            coll.run_once()  # still failing: the log no longer claims to serve its data
        said = [r.getMessage() for r in caplog.records if "jobs failed" in r.getMessage()]
        assert said and not any("serving the last good data" in m for m in said), said
        srv.fault(srv.path("jobs"), None)
        back = coll.run_once()
        assert data_of(back, "jobs") == data_of(good, "jobs")
        assert value(back, "slurm_exporter_endpoint_data_dropped", endpoint="jobs") == 0
    finally:
        coll.close()


def test_slurmrestd_restarted_between_cycles_costs_no_failed_cycle(
    srv: FakeSlurmrestd, coll: Collection
) -> None:
    """Pooled keep-alive connections to the old process must not fail the next cycle."""
    first_good(coll)
    srv.stop()
    srv.start()
    snap = coll.run_once()
    assert snap.all_up, snap.failures


def test_slow_answers_beyond_the_timeout(srv: FakeSlurmrestd, key_file: Path) -> None:
    coll = make(srv.url, key_file, "--timeout", "0.3")
    try:
        good = first_good(coll)
        release = threading.Event()
        srv.fault(srv.path("jobs"), Fault(200, b"{}", hang=release))
        t0 = time.monotonic()

        def end() -> None:
            release.set()
            srv.fault(srv.path("jobs"), None)

        bad = assert_stale_then_recovers(coll, good, ("jobs",), "timeout", end)
        assert time.monotonic() - t0 < 5  # the others did not wait for it
        assert bad.all_up
    finally:
        coll.close()


def test_an_answer_trickling_in_is_cut_at_the_timeout(
    srv: FakeSlurmrestd, key_file: Path
) -> None:
    """A byte now and then resets a read timeout forever; --timeout bounds the request."""
    coll = make(srv.url, key_file, "--timeout", "0.5")
    try:
        good = first_good(coll)
        stop = threading.Event()
        # 100 KB at 64 bytes per 50 ms: 80 s if nothing cut it
        srv.fault(srv.path("jobs"), Fault(200, srv.routes[srv.path("jobs")], trickle=stop))
        t0 = time.monotonic()
        bad = coll.run_once()
        took = time.monotonic() - t0
        assert up(bad, "jobs") == 0 and errors(bad, "jobs", "timeout") == 1, bad.failures
        assert took < 10, took
        assert data_of(bad, "jobs") == data_of(good, "jobs")
        stop.set()
        srv.fault(srv.path("jobs"), None)
        assert coll.run_once().all_up
    finally:
        coll.close()


# --------------------------------------------------------------------- HTTP answers
@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"", "http_error"),
        (500, slurm_error(1001, "Unable to contact slurm controller (connect failure)"),
         "slurm_error"),
        (502, b"<html>Bad Gateway</html>", "http_error"),
        (503, b"Service Unavailable", "http_error"),
        (511, slurm_error(1007, "Protocol authentication error"), "auth"),
        (401, b"Authentication failure", "auth"),
        (404, b"Unable to find requested URL endpoint.", "not_found"),
        # 24.11's /partitions while slurmctld is down: its own envelope, no details
        (502, b'{"errors": [], "warnings": [], "meta": {"plugin": {}}}', "slurm_error"),
    ],
)
def test_http_error_answers(
    srv: FakeSlurmrestd, coll: Collection, status: int, body: bytes, reason: str
) -> None:
    good = first_good(coll)
    for e in ENDPOINTS:
        srv.fault(srv.path(e), Fault(status, body))

    def end() -> None:
        for e in ENDPOINTS:
            srv.fault(srv.path(e), None)
        if status == 404:  # the cycle after a 404 looks for the versions again
            coll.run_once()

    assert_stale_then_recovers(coll, good, ENDPOINTS, reason, end)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(200, b"<html><body>Welcome to nginx!</body></html>"), "decode"),
        (Fault(200, b"\x00\xff\xfe garbage \x80"), "decode"),
        (Fault(200, b""), "decode"),
        (Fault(200, b"   \n"), "decode"),
        (Fault(200, b"null"), "decode"),
        (Fault(200, b"[]"), "decode"),
    ],
    ids=["html", "binary", "empty", "blank", "null", "list"],
)
def test_200_with_garbage_or_empty_body(
    srv: FakeSlurmrestd, coll: Collection, fault: Fault, reason: str
) -> None:
    good = first_good(coll)
    srv.fault_all(fault)
    assert_stale_then_recovers(coll, good, ENDPOINTS, reason, lambda: srv.fault_all(None))


def test_200_with_a_truncated_body(srv: FakeSlurmrestd, coll: Collection) -> None:
    """Cut JSON with a matching length (a proxy's buffer), then a connection that breaks
    mid-body (slurmrestd killed while answering)."""
    good = first_good(coll)
    for e in ENDPOINTS:
        body = srv.routes[srv.path(e)]
        srv.fault(srv.path(e), Fault(200, body[: len(body) // 2]))
    good = assert_stale_then_recovers(coll, good, ENDPOINTS, "decode",
                                      lambda: srv.fault_all(None))
    for e in ENDPOINTS:
        srv.fault(srv.path(e), Fault(200, srv.routes[srv.path(e)], truncate=True))
    assert_stale_then_recovers(coll, good, ENDPOINTS, "connect", lambda: srv.fault_all(None))


def test_a_broken_connection_is_explained(srv: FakeSlurmrestd, coll: Collection) -> None:
    first_good(coll)
    srv.fault(srv.path("jobs"), Fault(200, srv.routes[srv.path("jobs")], truncate=True))
    snap = coll.run_once()
    (endpoint, failure), = snap.failures
    assert endpoint == "jobs" and failure.reason == "connect"
    assert "mid-answer" in failure.message and srv.path("jobs") in failure.message
    srv.fault(srv.path("jobs"), Fault(drop=True))
    (endpoint, failure), = coll.run_once().failures
    assert "closed the connection" in failure.message


def test_200_whose_errors_array_is_not_empty(srv: FakeSlurmrestd, coll: Collection) -> None:
    good = first_good(coll)
    doc = json.loads(srv.routes[srv.path("diag")])
    doc["errors"] = [{"error_number": 1001, "error": "Unable to contact slurm controller",
                      "description": "slurm_get_statistics() failed", "source": "diag"}]
    srv.fault(srv.path("diag"), Fault(200, json.dumps(doc).encode()))
    srv.fault(srv.path("diag"), Fault(200, json.dumps(doc).encode()))
    (endpoint, failure), = coll.run_once().failures
    assert endpoint == "diag" and "Unable to contact slurm controller" in failure.message
    srv.fault(srv.path("diag"), None)
    good = coll.run_once()
    srv.fault(srv.path("diag"), Fault(200, json.dumps(doc).encode()))
    assert_stale_then_recovers(coll, good, ("diag",), "slurm_error",
                               lambda: srv.fault(srv.path("diag"), None))


# --------------------------------------------------------------------- odd JSON
def _jobs_doc(srv: FakeSlurmrestd) -> dict[str, object]:
    doc: dict[str, object] = json.loads(srv.routes[srv.path("jobs")])
    return doc


def test_odd_json_missing_fields_nulls_wrong_types_unknown_enums_huge_numbers(
    srv: FakeSlurmrestd, coll: Collection
) -> None:
    """Field by field odd values: answers the adapter can read still count (the odd field
    as unset or passed through); the others are decode failures with the data kept."""
    first_good(coll)
    base = _jobs_doc(srv)
    jobs = base["jobs"]
    assert isinstance(jobs, list)

    def serve(mutate: Callable[[dict[str, object]], None]) -> Snapshot:
        doc = copy.deepcopy(base)
        mutate(doc)
        srv.fault(srv.path("jobs"), Fault(200, json.dumps(doc).encode()))
        return coll.run_once()

    def job0(doc: dict[str, object]) -> dict[str, object]:
        j = doc["jobs"]
        assert isinstance(j, list)
        first: dict[str, object] = j[0]
        return first

    # tolerated: the answer counts, the odd field is unset
    tolerated = {
        "missing optional fields": lambda d: [job0(d).pop(k) for k in ("partition", "cpus",
                                                                        "user_name")],
        "nulls": lambda d: job0(d).update(partition=None, cpus=None, job_state=None),
        "unknown enum": lambda d: job0(d).update(job_state=["WARPING", "NEW_FLAG"]),
        "huge numbers": lambda d: job0(d).update(
            cpus={"set": True, "infinite": False, "number": 10**40},
            memory_per_node={"set": True, "infinite": False, "number": 1e308}),
        "meta missing": lambda d: d.pop("meta"),
    }
    for name, mutate in tolerated.items():
        snap = serve(mutate)
        assert up(snap, "jobs") == 1, (name, snap.failures)
        assert data_of(snap, "jobs") != {}, name
    unknown = data_of(serve(tolerated["unknown enum"]), "jobs")
    assert "warping" in {dict(k[1]).get("state") for k in unknown}  # passed through
    # refused: a wrong type where a value is needed; the last good data stays
    srv.fault(srv.path("jobs"), None)
    good = coll.run_once()
    refused = {
        "wrong type of the list": lambda d: d.update(jobs={"1": {}}),
        "wrong type of a field": lambda d: job0(d).update(cpus="many"),
        "missing required field": lambda d: job0(d).pop("job_id"),
        "number beyond JSON's double": lambda d: d.update(jobs=[{"job_id": 1, "cpus": 1e999}]),
    }
    for name, mutate in refused.items():
        snap = serve(mutate)
        assert up(snap, "jobs") == 0 and errors(snap, "jobs", "decode") >= 1, name
        assert data_of(snap, "jobs") == data_of(good, "jobs"), name
    srv.fault(srv.path("jobs"), None)
    assert coll.run_once().all_up


def test_a_new_unknown_api_version(srv: FakeSlurmrestd, coll: Collection) -> None:
    """slurmrestd upgraded to serve only v0.0.46: spoken as the newest known version."""
    good = first_good(coll)
    openapi = json.loads(srv.routes["/openapi/v3"])
    openapi["paths"] = {p.replace("v0.0.45", "v0.0.46"): v for p, v in openapi["paths"].items()
                        if "v0.0.45" in p}
    for e in ENDPOINTS:
        body = srv.routes.pop(srv.path(e))
        srv.routes[srv.path(e).replace("v0.0.45", "v0.0.46")] = body
    srv.routes["/openapi/v3"] = json.dumps(openapi).encode()
    bad = coll.run_once()  # v0.0.45 now answers 404
    for e in ENDPOINTS:
        assert up(bad, e) == 0 and errors(bad, e, "not_found") == 1
        assert data_of(bad, e) == data_of(good, e)
    snap = coll.run_once()  # versions discovered again
    assert snap.all_up, snap.failures
    assert coll._adapter is not None and coll._adapter.version == "v0.0.46"


def test_only_versions_the_exporter_cannot_speak(srv: FakeSlurmrestd, key_file: Path) -> None:
    """A slurmrestd that only serves v0.0.39/v0.0.35: not_found on every endpoint, with
    the served and supported versions in the message; the cycle goes on."""
    openapi = {"paths": {"/slurm/v0.0.39/jobs/": {}, "/slurm/v0.0.35/ping": {}}}
    srv.fault("/openapi/v3", Fault(200, json.dumps(openapi).encode()))
    coll = make(srv.url, key_file)
    try:
        snap = coll.run_once()
        for e in ENDPOINTS:
            assert up(snap, e) == 0 and errors(snap, e, "not_found") == 1
        msg = snap.failures[0][1].message
        assert "v0.0.39" in msg and "v0.0.45" in msg and "upgrade" in msg
        srv.fault("/openapi/v3", None)
        assert coll.run_once().all_up
    finally:
        coll.close()


# --------------------------------------------------------------------- tokens and keys
def test_jwt_key_rotated(srv: FakeSlurmrestd, key_file: Path) -> None:
    """The cluster's key changes: the token minted with the old one is refused, the
    exporter re-reads the key file, mints again and retries within the same cycle."""
    coll = make(srv.url, key_file)
    try:
        first_good(coll)
        new_key = b"rotated-key-rotated-key-rotated!"
        srv.key = new_key  # slurmctld/slurmrestd restarted with the new key ...
        snap = coll.run_once()  # ... the file still has the old one
        assert not snap.all_up and errors(snap, "jobs", "auth") == 1
        key_file.write_bytes(new_key)  # the file is updated too
        snap = coll.run_once()
        assert snap.all_up, snap.failures
    finally:
        coll.close()


def test_jwt_key_unreadable_then_readable_again(srv: FakeSlurmrestd, key_file: Path) -> None:
    # tokens of 6 s, renewed at 4 s: the clock is moved past that to force a renewal
    now = [time.time()]
    tokens = MintedToken(key_file, "exporter", 6, clock=lambda: now[0])
    coll = make(srv.url, key_file, tokens=tokens)
    try:
        good = first_good(coll)
        hidden = key_file.with_suffix(".moved")
        key_file.rename(hidden)  # unreadable (gone; a chmod is no obstacle to root)
        now[0] += 10  # the token expired: a new one is needed and cannot be made
        srv.clock = lambda: now[0]

        def end() -> None:
            hidden.rename(key_file)

        assert_stale_then_recovers(coll, good, ENDPOINTS, "auth", end)
        assert tokens.renewals()["failure"] >= 1
    finally:
        coll.close()


def test_token_file_replaced_by_an_expired_token(
    srv: FakeSlurmrestd, key_file: Path, tmp_path: Path
) -> None:
    def token(exp_in: float) -> str:
        now = int(time.time())
        return jwt.encode({"iat": now, "exp": now + int(exp_in), "sun": "exporter"}, KEY,
                          algorithm="HS256")

    token_file = tmp_path / "slurm.jwt"
    token_file.write_text(token(600))
    settings = load_settings(["--slurmrestd-url", srv.url, "--token-file", str(token_file)])
    tokens = TokenFile(token_file, None)
    coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens, clock=Clock())
    try:
        good = first_good(coll)
        token_file.write_text(f"SLURM_JWT={token(-60)}\n")  # a renewer wrote a stale one
        os.utime(token_file, (time.time() + 5, time.time() + 5))  # (mtime must change)
        bad = coll.run_once()
        for e in ENDPOINTS:
            assert up(bad, e) == 0 and errors(bad, e, "auth") == 1
            assert data_of(bad, e) == data_of(good, e)
        expiry = value(bad, "slurm_exporter_token_expiry_timestamp_seconds")
        assert expiry < time.time()  # the expired token is visible as such
        token_file.write_text(token(600))  # the renewer catches up
        os.utime(token_file, (time.time() + 10, time.time() + 10))
        assert coll.run_once().all_up
    finally:
        coll.close()


@pytest.mark.parametrize("skew", [-300.0, 300.0, -1500.0])
def test_clock_skewed_by_minutes(srv: FakeSlurmrestd, key_file: Path, skew: float) -> None:
    """The exporter's clock is off by minutes from slurmrestd's. Minted tokens (30 min)
    are still valid for slurmrestd; with a skew close to the lifespan, a refused token is
    renewed at once and the retry works."""
    tokens = MintedToken(key_file, "exporter", 1800, clock=lambda: time.time() + skew)
    coll = make(srv.url, key_file, tokens=tokens)
    try:
        snap = coll.run_once()
        assert snap.all_up, snap.failures
        for _ in range(3):
            assert coll.run_once().all_up
    finally:
        coll.close()


def test_clock_skew_larger_than_the_token_lifespan_says_so(
    srv: FakeSlurmrestd, key_file: Path
) -> None:
    tokens = MintedToken(key_file, "exporter", 60, clock=lambda: time.time() - 600)
    coll = make(srv.url, key_file, tokens=tokens)
    try:
        snap = coll.run_once()
        assert not snap.all_up
        msg = snap.failures[0][1].message
        assert snap.failures[0][1].reason == "auth" and "clock" in msg
    finally:
        coll.close()


# --------------------------------------------------------------------- name and socket
def test_dns_failure_then_the_name_resolves(
    srv: FakeSlurmrestd, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolver fails (as when the DNS server is down), then answers again."""
    name = "slurm-head.fault-test"
    real = socket.getaddrinfo
    dns_up = threading.Event()

    def getaddrinfo(host: object, *args: object, **kw: object) -> object:
        if host == name:
            if not dns_up.is_set():
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = "127.0.0.1"
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    coll = make(f"http://{name}:{srv.port}", key_file)
    try:
        dns_up.set()
        good = first_good(coll)
        dns_up.clear()
        srv.stop()  # no pooled connection may hide the name lookup
        srv.start()
        bad = coll.run_once()
        msg = bad.failures[0][1].message
        assert "cannot resolve" in msg and name in msg and "DNS" in msg
        for e in ENDPOINTS:
            assert up(bad, e) == 0 and errors(bad, e, "connect") == 1
            assert data_of(bad, e) == data_of(good, e)
        dns_up.set()
        assert coll.run_once().all_up
    finally:
        coll.close()


_CHILD = r"""
import sys
from exporter.auth import NoToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.settings import load_settings

settings = load_settings(["--slurmrestd-url", sys.argv[1], "--auth", "none"])
tokens = NoToken()
coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
for line in sys.stdin:  # one cycle per line from the parent
    snap = coll.run_once()
    fails = [f"{e}|{f.reason}|{f.message}" for e, f in snap.failures]
    print("\t".join([str(int(snap.all_up)), str(len(snap.exposition)), *fails]), flush=True)
"""


def test_unix_socket_with_wrong_permissions() -> None:
    """The exporter's user may not open slurmrestd's socket, then the mode is fixed: the
    same process recovers. As root, the child runs without the capabilities that let
    root open anything (setpriv); otherwise the socket is simply made mode 000."""
    base = Path(tempfile.mkdtemp(prefix="fault-sock-"))
    sock_path = base / "slurmrestd.sock"
    cmd = [sys.executable, "-c", _CHILD, f"unix://{sock_path}"]
    try:
        with _UnixSlurmrestd(sock_path):
            if os.geteuid() == 0:
                os.chown(sock_path, pwd.getpwnam("nobody").pw_uid, -1)
                sock_path.chmod(0o600)  # only nobody may connect
                drop = "-dac_override,-dac_read_search"
                cmd = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *cmd]
            else:
                sock_path.chmod(0o000)
            child = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, cwd=TOP, env={**os.environ, "PYTHONPATH": str(TOP)},
            )
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write("cycle\n")
                child.stdin.flush()
                all_up, _, *fails = child.stdout.readline().rstrip("\n").split("\t")
                assert all_up == "0", fails
                assert fails and all("|connect|" in f for f in fails), fails
                assert "permission denied on the socket" in fails[0]
                sock_path.chmod(0o666)  # fixed
                child.stdin.write("cycle\n")
                child.stdin.flush()
                all_up, size, *fails = child.stdout.readline().rstrip("\n").split("\t")
                assert all_up == "1" and fails == [] and int(size) > 1000
            finally:
                child.stdin.close()
                rc = child.wait(timeout=30)
                assert rc == 0, child.stderr.read() if child.stderr else ""
    finally:
        for p in base.iterdir():
            p.unlink()
        base.rmdir()


class _UnixSlurmrestd:
    """The fake slurmrestd's answers (no token check) on a UNIX socket."""

    def __init__(self, path: Path) -> None:
        from http.server import ThreadingHTTPServer
        from socketserver import UnixStreamServer

        from tests.fakerestd import _Handler

        class Server(UnixStreamServer, ThreadingHTTPServer):  # type: ignore[misc]
            daemon_threads = True

            def server_bind(self) -> None:
                UnixStreamServer.server_bind(self)

            def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
                conn, _ = self.socket.accept()
                return conn, ("local", 0)

        self.fake = FakeSlurmrestd("26.05", key=None)
        self.server = Server(str(path), _Handler)
        self.server.fake = self.fake  # type: ignore[attr-defined]
        self.server.open = set()  # type: ignore[attr-defined]
        self.server.open_lock = threading.Lock()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _UnixSlurmrestd:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_fixture_bodies_are_what_the_fake_serves() -> None:
    # guard: the fake serves the same recorded answers as the other cycle tests
    fake = FakeSlurmrestd("26.05")
    assert fake.routes[fake.path("jobs")] == (
        FIXTURES / "slurm-26.05" / "v0.0.45_jobs.json"
    ).read_bytes()


def test_2205_answer_that_may_be_a_refused_token_or_slurmctld_down(key_file: Path) -> None:
    """22.05 answers both with 500 "Unspecified error" (-1): the message names both."""
    with FakeSlurmrestd("22.05", key=KEY) as srv:
        coll = make(srv.url, key_file)
        try:
            _check_2205_ambiguous_answer(srv, coll)
        finally:
            coll.close()


def _check_2205_ambiguous_answer(srv: FakeSlurmrestd, coll: Collection) -> None:
    good = first_good(coll)
    srv.fault(srv.path("diag"), Fault(500, slurm_error(-1, "Unspecified error", "request failed")))
    bad = assert_stale_then_recovers(coll, good, ("diag",), "auth",
                                     lambda: srv.fault(srv.path("diag"), None))
    assert bad.all_up
    srv.fault(srv.path("diag"), Fault(500, slurm_error(-1, "Unspecified error", "request failed")))
    (_, failure), = coll.run_once().failures
    assert "refused the token" in failure.message and "scontrol ping" in failure.message


# ------------------------------------------------------------ /nodes?update_time= (issue 9)
def _renewals(snap: Snapshot) -> float:
    return value(snap, "slurm_exporter_token_renewals_total", result="success")


def _no_errors(snap: Snapshot) -> bool:
    return not any(
        v for (name, _), v in samples(snap).items()
        if name == "slurm_exporter_endpoint_errors_total"
    )


def test_nodes_update_time_is_not_asked_of_releases_that_answer_it_with_a_500(
    key_file: Path,
) -> None:
    """24.11.5's slurmrestd answers /nodes?update_time= with 500 "Unable to query
    partitions" (-1) once nodes changed: never ask it, and so never fail, renew or retry."""
    with FakeSlurmrestd("24.11", key=KEY) as srv:
        srv.fault(srv.path("nodes"), NODES_UPDATE_TIME_BUG)
        coll = make(srv.url, key_file)
        try:
            snaps = [coll.run_once() for _ in range(4)]
        finally:
            coll.close()
    assert all(s.all_up for s in snaps), snaps[-1].failures
    assert _no_errors(snaps[-1]) and _renewals(snaps[-1]) == 1  # the first token only
    nodes = [q for q in srv.queries if q.startswith(srv.path("nodes"))]
    assert len(nodes) == 4 and not any("update_time=" in q for q in nodes)
    # /jobs answers update_time right on every release: still asked for changes only
    assert any(q.startswith(srv.path("jobs") + "?update_time=") for q in srv.queries)


def test_a_500_to_update_time_means_fetch_in_full_now_not_a_failure(key_file: Path) -> None:
    """26.05.5 answers update_time right (fixed in 26.05.3), so it is asked; should a
    partial answer still fail so, the full one is fetched at once, and no error counted."""
    with FakeSlurmrestd("26.05", key=KEY) as srv:
        coll = make(srv.url, key_file)
        try:
            first = first_good(coll)
            srv.fault(srv.path("nodes"), NODES_UPDATE_TIME_BUG)
            snaps = [coll.run_once() for _ in range(3)]
        finally:
            coll.close()
    assert all(s.all_up for s in snaps), snaps[-1].failures
    assert _no_errors(snaps[-1]) and _renewals(snaps[-1]) == 1
    assert data_of(snaps[-1], "nodes") == data_of(first, "nodes")
    nodes = [q for q in srv.queries if q.startswith(srv.path("nodes"))]
    # the first full, then for each cycle: asked for changes, refused, asked in full
    assert len(nodes) == 7
    assert ["update_time=" in q for q in nodes[1:3]] == [True, False]
