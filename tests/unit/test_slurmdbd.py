"""slurmdbd's own statistics (/slurmdb/vX/diag): every API version's recorded answer,
golden expositions, and the answer of a user without AdminLevel=Administrator.

Golden files: tests/golden/slurmdbd/<release>_<version>.prom; regenerate them with
`UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_slurmdbd.py` and review the diff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.model import ROLLUP_PERIODS, Rollup, SlurmdbdDiag
from exporter.api.versions import adapter_for
from exporter.auth import token_source_from_settings
from exporter.check import run_check
from exporter.client import SlurmrestdClient, classify_error
from exporter.collectors import COLLECTORS
from exporter.collectors.slurmdbd import collect_slurmdbd
from exporter.cycle import Collection, Snapshot
from exporter.settings import DEFAULT_INTERVALS, load_settings
from tests.fakerestd import ENDPOINTS, FakeSlurmrestd, Fault
from tests.unit.test_collectors import _promtool, render

TOP = Path(__file__).resolve().parents[2]
FIXTURES = TOP / "tests" / "fixtures"
GOLDEN = TOP / "tests" / "golden" / "slurmdbd"
KEY = b"slurmdbd-test-key-0123456789abcd!"

# (release, API version) of every recorded /slurmdb/vX/diag answer
RECORDED = [
    ("22.05", "v0.0.36"), ("22.05", "v0.0.37"), ("22.05", "v0.0.38"),
    ("24.11", "v0.0.40"), ("24.11", "v0.0.41"), ("24.11", "v0.0.42"),
    ("26.05", "v0.0.42"), ("26.05", "v0.0.43"), ("26.05", "v0.0.44"), ("26.05", "v0.0.45"),
]
DENIED = [
    (release, version, who)
    for release, version in RECORDED
    for who in ("non_admin_user", "operator_user")
]
# the status slurmrestd answers a refusal with: 422 from 26.05 on, which maps slurmdbd's
# errors so (http_status_from_error(), src/common/http.c:471-484 in slurm-26-05-3-1)
DENIED_STATUS = {"22.05": 500, "24.11": 500, "26.05": 422}


def recorded(release: str, version: str, case: str = "") -> bytes:
    name = f"slurmdb_{version}_diag{'_' + case if case else ''}.json"
    return (FIXTURES / f"slurm-{release}-slurmdbd" / name).read_bytes()


def parsed(release: str, version: str, case: str = "") -> SlurmdbdDiag:
    return adapter_for(version).parse_slurmdbd(recorded(release, version, case)).data


# ----------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("release", "version"), RECORDED)
def test_every_version_gives_the_three_slots_in_seconds(release: str, version: str) -> None:
    diag = adapter_for(version).parse_slurmdbd(recorded(release, version)).data
    assert [r.period for r in diag.rollups] == list(ROLLUP_PERIODS)
    hourly, daily, monthly = diag.rollups
    # slurmdbd's own rollup ran once at start; the recorded microseconds, in seconds
    usec = {"22.05": 518, "24.11": 356, "26.05": 512}[release]
    assert hourly == Rollup("hourly", 1, diag.stats_since, usec / 1e6, usec / 1e6, usec / 1e6)
    assert daily == Rollup("daily", 0, None, 0.0, 0.0, 0.0)
    assert monthly == Rollup("monthly", 0, None, 0.0, 0.0, 0.0)
    assert diag.stats_since > 1.7e9
    by_type = {r.name: r for r in diag.rpcs_by_type}
    assert by_type["SLURM_PERSIST_INIT"].count > 0
    assert 0 < by_type["SLURM_PERSIST_INIT"].total_time_seconds < 1  # microseconds / 1e6
    assert {u.name for u in diag.rpcs_by_user} >= {"root", "slurm"}


def test_a_rollup_asked_by_a_user_is_the_second_slot() -> None:
    """On the 22.05 lab, 'sacctmgr roll 2024-01-01T00:00:00' took 7.5 s of wall time:
    the "user" slot (the API's later "daily") says 7356140 microseconds."""
    for version in ("v0.0.36", "v0.0.37", "v0.0.38"):
        diag = parsed("22.05", version, "user_rollup")
        _, daily, _ = diag.rollups
        assert daily == Rollup("daily", 2, 1796069236.0, 7.35614, 7.35614, 7.362426)


def test_a_rollup_asked_by_a_user_is_daily_from_v0041() -> None:
    """On the 26.05 lab, 'sacctmgr roll 2024-01-01T00:00:00' took 24.4 s of wall time;
    `sacctmgr show stats` printed it under "User RPC rollup call", the API as "daily"."""
    hourly, daily, monthly = parsed("26.05", "v0.0.45", "user_rollup").rollups
    assert daily == Rollup("daily", 1, 1796069627.0, 24.30896, 24.30896, 24.30896)
    assert hourly.runs == 1 and hourly.last_seconds == 0.000114 and monthly.runs == 0


def test_list_and_slots_shapes_read_alike() -> None:
    """24.11's v0.0.40 (a list of the slots that ran) and v0.0.41 (three named slots):
    the same statistics of the same slurmdbd."""
    old, new = parsed("24.11", "v0.0.40"), parsed("24.11", "v0.0.41")
    assert old.rollups == new.rollups
    assert old.stats_since == new.stats_since


def test_paths_follow_each_generation() -> None:
    assert adapter_for("v0.0.38").path("slurmdbd") == "/slurmdb/v0.0.38/diag"
    assert adapter_for("v0.0.42").path("slurmdbd") == "/slurmdb/v0.0.42/diag/"


# ------------------------------------------------------------------------- collector
@pytest.mark.parametrize(("release", "version"), RECORDED)
def test_golden_exposition(release: str, version: str) -> None:
    text = render(collect_slurmdbd(parsed(release, version)))
    path = GOLDEN / f"{release}_{version}.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")
    _promtool(text)


def test_golden_with_a_user_rollup() -> None:
    text = render(collect_slurmdbd(parsed("22.05", "v0.0.38", "user_rollup")))
    path = GOLDEN / "22.05_v0.0.38_user_rollup.prom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_values_and_absent_last_run() -> None:
    got = _values(render(collect_slurmdbd(parsed("22.05", "v0.0.38", "user_rollup"))))
    assert got[("slurm_slurmdbd_rollup_runs_total", (("period", "daily"),))] == 2
    assert got[("slurm_slurmdbd_rollup_duration_seconds_total", (("period", "daily"),))] == (
        7.362426
    )
    assert got[("slurm_slurmdbd_rollup_last_duration_seconds", (("period", "hourly"),))] == (
        0.000137
    )
    # a slot that never ran has no last-run time (not 1970)
    assert ("slurm_slurmdbd_rollup_last_run_timestamp_seconds", (("period", "monthly"),)) not in got
    assert got[("slurm_slurmdbd_stats_start_timestamp_seconds", ())] == 1796069209
    assert got[("slurm_slurmdbd_rpcs_total", (("rpc", "DBD_GET_STATS"),))] > 0
    assert any(k[0] == "slurm_slurmdbd_user_rpcs_total" for k in got)


def test_per_user_series_follow_the_flag() -> None:
    settings = load_settings(["--auth", "none", "--no-slurmdbd-rpc-per-user"])
    families = COLLECTORS["slurmdbd"].collect(parsed("24.11", "v0.0.42"), settings, 0.0)
    names = {f.name for f in families}
    assert "slurm_slurmdbd_rpcs" in names
    assert not any(n.startswith("slurm_slurmdbd_user_") for n in names)


def test_settings_off_by_default_every_60_s_detached() -> None:
    settings = load_settings(["--auth", "none"])
    assert "slurmdbd" not in settings.enabled_endpoints()
    assert settings.slurmdbd_rpc_per_user
    assert DEFAULT_INTERVALS["slurmdbd"] == 60.0 and settings.interval_of("slurmdbd") == 60.0
    on = load_settings(["--auth", "none", "--collector-slurmdbd",
                        "--collector-slurmdbd-interval", "120"])
    assert "slurmdbd" in on.enabled_endpoints() and on.interval_of("slurmdbd") == 120.0
    assert COLLECTORS["slurmdbd"].detached


# --------------------------------------------------------------- AdminLevel below Admin
@pytest.mark.parametrize(("release", "version", "who"), DENIED)
def test_a_user_below_administrator_is_forbidden_not_a_refused_token(
    release: str, version: str, who: str
) -> None:
    path, status = adapter_for(version).path("slurmdbd"), DENIED_STATUS[release]
    failure = classify_error(path, status, recorded(release, version, who), user="exporter")
    assert failure.reason == "forbidden", failure.message
    line = failure.message
    assert path in line and f"HTTP {status}" in line and "AdminLevel=Administrator" in line
    assert "sacctmgr -i modify user where name=exporter set adminlevel=Administrator" in line
    assert "\n" not in line


def test_access_denied_elsewhere_stays_a_slurm_error() -> None:
    # slurmctld's PrivateData=nodes: another cause, another fix (check's Operator hint)
    body = recorded("24.11", "v0.0.40", "non_admin_user")
    assert classify_error("/slurm/v0.0.42/nodes/", 500, body).reason == "slurm_error"


@pytest.fixture
def srv() -> Iterator[FakeSlurmrestd]:
    with FakeSlurmrestd("26.05", key=KEY) as s:
        s.routes["/slurmdb/v0.0.45/diag/"] = recorded("26.05", "v0.0.45")
        yield s


def _collection(srv: FakeSlurmrestd, tmp_path: Path, *extra: str) -> Collection:
    key = tmp_path / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    settings = load_settings(
        ["--slurmrestd-url", srv.url, "--jwt-key-file", str(key), "--jwt-user", "exporter",
         "--timeout", "2", "--collector-slurmdbd", *extra]
    )
    tokens = token_source_from_settings(settings)
    return Collection(settings, SlurmrestdClient(settings, tokens), tokens)


def _sample(snap: Snapshot, name: str, **labels: str) -> float:
    return _values(snap.exposition.decode())[(name, tuple(sorted(labels.items())))]


def test_forbidden_renews_no_token_and_spares_every_other_endpoint(
    srv: FakeSlurmrestd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    denied = recorded("26.05", "v0.0.45", "non_admin_user")
    srv.fault("/slurmdb/v0.0.45/diag/", Fault(422, denied))
    coll = _collection(srv, tmp_path)
    try:
        with caplog.at_level(logging.WARNING):
            snap = coll.run_once()
            snap = coll.run_once()
    finally:
        coll.close()
    for e in ENDPOINTS:
        assert _sample(snap, "slurm_exporter_endpoint_up", endpoint=e) == 1, snap.failures
    assert _sample(snap, "slurm_exporter_endpoint_up", endpoint="slurmdbd") == 0
    assert _sample(snap, "slurm_exporter_endpoint_errors_total", endpoint="slurmdbd",
                   reason="forbidden") == 2
    assert _sample(snap, "slurm_exporter_endpoint_errors_total", endpoint="slurmdbd",
                   reason="auth") == 0
    # the first token only, and the refused path asked once a cycle (no retry)
    assert _sample(snap, "slurm_exporter_token_renewals_total", result="success") == 1
    asked = [p for p, _ in srv.requests if p.startswith("/slurmdb/")]
    assert asked == ["/slurmdb/v0.0.45/diag/"] * 2
    lines = [r.getMessage() for r in caplog.records if "slurmdbd" in r.getMessage()]
    assert len(lines) == 1, lines  # said once, when it started
    assert lines[0].startswith("slurmdbd failed [forbidden]: GET /slurmdb/v0.0.45/diag/")
    assert "name=exporter set adminlevel=Administrator" in lines[0]


def test_administrator_then_up(srv: FakeSlurmrestd, tmp_path: Path) -> None:
    coll = _collection(srv, tmp_path)
    try:
        snap = coll.run_once()
    finally:
        coll.close()
    assert snap.all_up, snap.failures
    assert _sample(snap, "slurm_slurmdbd_rollup_runs_total", period="hourly") == 1


def test_check_prints_the_sacctmgr_command(srv: FakeSlurmrestd, tmp_path: Path) -> None:
    import io

    srv.fault("/slurmdb/v0.0.45/diag/", Fault(422, recorded("26.05", "v0.0.45",
                                                              "operator_user")))
    key = tmp_path / "jwt.key"
    key.write_bytes(KEY)
    key.chmod(0o600)
    settings = load_settings(
        ["--slurmrestd-url", srv.url, "--jwt-key-file", str(key), "--jwt-user", "exporter",
         "--collector-slurmdbd"]
    )
    out = io.StringIO()
    assert run_check(settings, out) == 1
    line = next(x for x in out.getvalue().splitlines() if "endpoint slurmdbd" in x)
    assert line.startswith("[FAIL] endpoint slurmdbd: [forbidden]")
    assert "'sacctmgr -i modify user where name=exporter set adminlevel=Administrator'" in line
    assert "PrivateData" not in line  # slurmctld's hint is for another cause


def test_2205_v0036_answers_500_with_complete_statistics(tmp_path: Path) -> None:
    """22.05's dbv0.0.36 answers 500 however well it went (parse.c:2527): the recorded
    answer, with no error and the statistics, is a good one."""
    with FakeSlurmrestd("22.05", key=KEY) as srv:
        body = recorded("22.05", "v0.0.36")
        srv.fault("/slurmdb/v0.0.36/diag", Fault(500, body))
        coll = _collection(srv, tmp_path, "--api-version", "v0.0.36")
        client = coll._client
        try:
            answer = client.get("/slurmdb/v0.0.36/diag")
            assert answer.status == 500 and answer.body == body
            # a 500 with the same body on v0.0.38 (or any other path) is still a failure
            srv.fault("/slurmdb/v0.0.38/diag", Fault(500, body))
            with pytest.raises(Exception, match="HTTP 500"):
                client.get("/slurmdb/v0.0.38/diag")
        finally:
            coll.close()


def test_without_slurmdbd_a_404_says_so_and_versions_are_not_looked_for_again(
    srv: FakeSlurmrestd, tmp_path: Path
) -> None:
    """slurmrestd without slurmdbd serves no /slurmdb/ path: 404 whatever the version."""
    del srv.routes["/slurmdb/v0.0.45/diag/"]
    coll = _collection(srv, tmp_path)
    try:
        coll.run_once()
        snap = coll.run_once()
    finally:
        coll.close()
    (endpoint, failure), = snap.failures
    assert endpoint == "slurmdbd" and failure.reason == "not_found"
    assert "without slurmdbd" in failure.message and "--collector-slurmdbd" in failure.message
    assert [p for p, _ in srv.requests].count("/openapi/v3") == 1
    for e in ENDPOINTS:
        assert _sample(snap, "slurm_exporter_endpoint_up", endpoint=e) == 1
