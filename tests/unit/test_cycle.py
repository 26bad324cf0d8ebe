"""The collection cycle over recorded answers of real slurmrestd, with faults injected.

slurmrestd is replaced by respx routes serving the captures in tests/fixtures; the
rest (token, client, discovery, adapters, collectors, snapshot) is the real thing.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from prometheus_client.parser import text_string_to_metric_families

from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection, Snapshot
from exporter.settings import load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures"
URL = "http://slurm-head:6820"
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses")


def samples(snap: Snapshot) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(snap.exposition.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(snap: Snapshot, name: str, **labels: str) -> float:
    return samples(snap)[(name, frozenset(labels.items()))]


def make_collection(key_file: Path, *extra: str) -> Collection:
    settings = load_settings(
        ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter",
         *extra]
    )
    tokens = MintedToken(key_file, "exporter", 1800)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens)


def serve_release(mock: respx.MockRouter, release: str, version: str) -> dict[str, respx.Route]:
    folder = FIXTURES / f"slurm-{release}"
    mock.get(URL + "/openapi/v3").respond(200, content=(folder / "openapi_v3.json").read_bytes())
    slash = "" if version <= "v0.0.38" else "/"
    routes = {}
    for e in ENDPOINTS:
        if e == "shares" and version <= "v0.0.38":
            continue  # /shares came with v0.0.40
        body = (folder / f"{version}_{e}.json").read_bytes()
        end = "" if e == "shares" else slash  # /shares has no "/" (see V0040Adapter.path)
        routes[e] = mock.get(url__startswith=f"{URL}/slurm/{version}/{e}{end}").respond(
            200, content=body
        )
    return routes


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as m:
        yield m


@pytest.mark.parametrize(
    ("release", "version"), [("22.05", "v0.0.38"), ("24.11", "v0.0.42"), ("26.05", "v0.0.45")]
)
def test_full_cycle_on_each_release(
    mock: respx.MockRouter, key_file: Path, release: str, version: str, tmp_path: Path
) -> None:
    serve_release(mock, release, version)
    snap = make_collection(key_file).run_once()
    assert snap.all_up, snap.failures
    served = [e for e in ENDPOINTS if e != "shares" or version > "v0.0.38"]
    for e in served:
        assert value(snap, "slurm_exporter_endpoint_up", endpoint=e) == 1
    # an endpoint the version lacks is not collected, and not reported as failing
    assert {dict(k[1])["endpoint"] for k in samples(snap)
            if k[0] == "slurm_exporter_endpoint_up"} == set(served)
    info = [k for k in samples(snap) if k[0] == "slurm_info"]
    labels = dict(info[0][1])
    assert labels["api_version"] == version and labels["release"].startswith(release)
    assert sum(v for (name, _), v in samples(snap).items() if name == "slurm_nodes_by_state") == 1
    # the whole exposition is valid for Prometheus' own linter
    path = tmp_path / "metrics.prom"
    path.write_bytes(snap.exposition)
    lint = subprocess.run(
        ["promtool", "check", "metrics"], stdin=path.open("rb"), capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_failing_endpoint_keeps_its_last_good_data_and_spares_the_others(
    mock: respx.MockRouter, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    coll = make_collection(key_file)
    first = coll.run_once()
    running = value(first, "slurm_jobs_by_state", state="running", partition="debug")
    success_at = value(
        first, "slurm_exporter_endpoint_last_success_timestamp_seconds", endpoint="jobs"
    )
    routes["jobs"].respond(502, content=b"Bad Gateway")
    with caplog.at_level(logging.WARNING):
        second = coll.run_once()
    assert not second.all_up
    assert value(second, "slurm_exporter_endpoint_up", endpoint="jobs") == 0
    assert value(second, "slurm_exporter_endpoint_errors_total", endpoint="jobs",
                 reason="http_error") == 1
    assert value(second, "slurm_exporter_endpoint_up", endpoint="nodes") == 1
    # stale but kept, with its age visible
    assert value(second, "slurm_jobs_by_state", state="running", partition="debug") == running
    assert value(
        second, "slurm_exporter_endpoint_last_success_timestamp_seconds", endpoint="jobs"
    ) == success_at
    # one clear log line: endpoint, reason, status, path
    lines = [r.getMessage() for r in caplog.records if "jobs failed" in r.getMessage()]
    assert len(lines) == 1
    assert "[http_error]" in lines[0] and "HTTP 502" in lines[0]
    assert "/slurm/v0.0.45/jobs/" in lines[0] and "last good data" in lines[0]
    # and recovery by itself
    routes["jobs"].respond(200, content=(FIXTURES / "slurm-26.05/v0.0.45_jobs.json").read_bytes())
    assert coll.run_once().all_up


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (511, (FIXTURES / "slurm-24.11/v0.0.42_diag_expired_token.json").read_bytes(), "auth"),
        (401, b"Authentication failure", "auth"),
        (404, b"Unable to find requested URL endpoint.", "not_found"),
        (500, b"", "http_error"),
        (200, b"<html>", "decode"),
        (200, b"", "decode"),
        (200, b'{"errors": [{"error_number": 1001, "error": "Unable to contact slurm '
              b'controller (connect failure)", "description": "", "source": ""}], '
              b'"statistics": {}}', "slurm_error"),
    ],
)
def test_each_failure_reason(
    mock: respx.MockRouter, key_file: Path, status: int, body: bytes, reason: str
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    routes["diag"].respond(status, content=body)
    snap = make_collection(key_file).run_once()
    assert value(snap, "slurm_exporter_endpoint_up", endpoint="diag") == 0
    assert value(snap, "slurm_exporter_endpoint_errors_total", endpoint="diag",
                 reason=reason) == 1
    for other in ENDPOINTS[1:]:
        assert value(snap, "slurm_exporter_endpoint_up", endpoint=other) == 1
    assert "slurm_scheduler_threads" not in snap.exposition.decode()  # never had good data


def test_connection_refused_marks_every_endpoint_down(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(URL + "/openapi/v3").mock(side_effect=httpx.ConnectError("Connection refused"))
    snap = make_collection(key_file).run_once()
    for e in ENDPOINTS:
        assert value(snap, "slurm_exporter_endpoint_up", endpoint=e) == 0
        assert value(snap, "slurm_exporter_endpoint_errors_total", endpoint=e,
                     reason="connect") == 1
    assert value(snap, "slurm_exporter_token_expiry_timestamp_seconds") > 0


def test_versions_are_discovered_again_after_a_404(
    mock: respx.MockRouter, key_file: Path
) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    coll = make_collection(key_file)
    assert coll.run_once().all_up
    # slurmrestd upgraded/downgraded underneath: v0.0.45 gone, only 24.11's versions left
    for r in routes.values():
        r.respond(404, content=b"Unable to find requested URL endpoint.")
    serve_release(mock, "24.11", "v0.0.42")
    assert not coll.run_once().all_up
    snap = coll.run_once()
    assert snap.all_up
    info = next(k for k in samples(snap) if k[0] == "slurm_info")
    assert dict(info[1])["api_version"] == "v0.0.42"


def test_explicit_api_version_skips_discovery(mock: respx.MockRouter, key_file: Path) -> None:
    serve_release(mock, "26.05", "v0.0.43")
    openapi = mock.get(URL + "/openapi/v3")
    assert make_collection(key_file, "--api-version", "v0.0.43").run_once().all_up
    assert openapi.call_count == 0


def test_disabled_collectors_are_not_called(mock: respx.MockRouter, key_file: Path) -> None:
    routes = serve_release(mock, "26.05", "v0.0.45")
    snap = make_collection(key_file, "--no-collector-jobs", "--no-collector-diag").run_once()
    assert routes["jobs"].call_count == 0 and routes["diag"].call_count == 0
    assert snap.all_up
    assert ("slurm_exporter_endpoint_up", frozenset({("endpoint", "jobs")})) not in samples(snap)


def test_a_ping_refused_for_our_token_is_an_auth_failure(
    mock: respx.MockRouter, key_file: Path
) -> None:
    # what 26.05 answers a token signed with the wrong key: 200, controller "not responding"
    routes = serve_release(mock, "26.05", "v0.0.45")
    routes["ping"].respond(
        200,
        content=b'{"pings": [{"hostname": "node1", "responding": false, "latency": 10732, '
        b'"primary": true, "status": "Protocol authentication error"}], "errors": [], '
        b'"warnings": []}',
    )
    snap = make_collection(key_file).run_once()
    assert value(snap, "slurm_exporter_endpoint_errors_total", endpoint="ping",
                 reason="auth") == 1
    assert "slurm_controller_up{" not in snap.exposition.decode()


def test_before_the_first_cycle_metrics_say_who_we_are(key_file: Path) -> None:
    from exporter import __version__

    snap = make_collection(key_file).snapshot
    assert samples(snap) == {
        ("slurm_exporter_build_info", frozenset({("version", __version__)})): 1.0
    }
    assert not snap.all_up


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        (b'{"paths": {"/slurm/v0.0.39/jobs/": {}}}', "not_found", "none of which"),
        (b"<html>a proxy</html>", "decode", "really slurmrestd"),
    ],
)
def test_check_and_the_cycle_discover_versions_alike(
    mock: respx.MockRouter, key_file: Path, body: bytes, reason: str, says: str
) -> None:
    """One discovery (exporter.api.discovery.discover) for both: the same failure, worded
    the same, in the cycle's reason and in check's output."""
    import io

    from exporter.check import run_check

    mock.get(URL + "/openapi/v3").respond(200, content=body)
    snap = make_collection(key_file).run_once()
    failures = {f.reason for _, f in snap.failures}
    (message,) = {f.message for _, f in snap.failures}
    assert failures == {reason} and says in message
    out = io.StringIO()
    args = ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter"]
    assert run_check(load_settings(args), out) == 1
    assert message in out.getvalue()
