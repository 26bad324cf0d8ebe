"""`slurm-exporter check` on recorded answers: PrivateData (issue 9, item 6)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from exporter.check import run_check
from exporter.settings import load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm-26.05"
URL = "http://slurm-head:6820"
V = "v0.0.45"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as m:
        m.get(URL + "/openapi/v3").respond(200, content=(FIXTURES / "openapi_v3.json").read_bytes())
        for e in ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses"):
            m.get(f"{URL}/slurm/{V}/{e}/").respond(
                200, content=(FIXTURES / f"{V}_{e}.json").read_bytes()
            )
        m.get(f"{URL}/slurm/{V}/shares").respond(  # no "/" after shares
            200, content=(FIXTURES / f"{V}_shares.json").read_bytes()
        )
        m.get(f"{URL}/slurm/{V}/conf").respond(200, json={"slurm_conf": {"PrivateData": []}})
        yield m


def _jobs_of(user: str) -> bytes:
    """The recorded /jobs as a user below Operator sees it with PrivateData=jobs."""
    doc = json.loads((FIXTURES / f"{V}_jobs.json").read_text())
    doc["jobs"] = [j for j in doc["jobs"] if j["user_name"] == user]
    return json.dumps(doc).encode()


def _diag(pending: int, running: int) -> bytes:
    doc = json.loads((FIXTURES / f"{V}_diag.json").read_text())
    doc["statistics"].update(jobs_pending=pending, jobs_running=running)
    return json.dumps(doc).encode()


def _check(key_file: Path, user: str = "exporter") -> tuple[int, str]:
    out = io.StringIO()
    args = ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", user]
    return run_check(load_settings(args), out), out.getvalue()


def test_jobs_hidden_by_private_data_make_check_fail_and_say_what_to_do(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(f"{URL}/slurm/{V}/jobs/").respond(200, content=_jobs_of("exporter"))
    mock.get(f"{URL}/slurm/{V}/diag/").respond(200, content=_diag(7, 2))
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json={"slurm_conf": {"PrivateData": ["jobs"]}})
    code, out = _check(key_file)
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("[FAIL] private data"))
    assert "PrivateData=jobs" in line and "slurmctld counts 9" in line
    assert "sacctmgr modify user exporter set adminlevel=operator" in line


def test_hidden_jobs_are_found_without_conf_too(mock: respx.MockRouter, key_file: Path) -> None:
    """Before v0.0.45 there is no /conf: sdiag's counts against the jobs seen tell."""
    mock.get(f"{URL}/slurm/{V}/jobs/").respond(200, content=_jobs_of("exporter"))
    mock.get(f"{URL}/slurm/{V}/diag/").respond(200, content=_diag(3, 1))
    mock.get(f"{URL}/slurm/{V}/conf").respond(404, content=b"Unable to find requested URL")
    code, out = _check(key_file)
    assert code == 1 and "[FAIL] private data" in out and "adminlevel=operator" in out


def test_private_data_set_but_nothing_to_compare_is_a_warning(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(f"{URL}/slurm/{V}/jobs/").respond(200, content=_jobs_of("exporter"))
    mock.get(f"{URL}/slurm/{V}/diag/").respond(200, content=_diag(0, 0))
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json={"slurm_conf": {"PrivateData": ["jobs"]}})
    code, out = _check(key_file)
    assert code == 0, out
    assert "[warn] private data: PrivateData=jobs is set" in out


def test_other_users_jobs_visible_means_nothing_is_hidden(
    mock: respx.MockRouter, key_file: Path
) -> None:
    # root's and alice's jobs are in the recorded answer: the exporter's user sees them all
    mock.get(f"{URL}/slurm/{V}/diag/").respond(200, content=_diag(50, 20))
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json={"slurm_conf": {"PrivateData": ["jobs"]}})
    code, out = _check(key_file)
    assert code == 0 and "private data" not in out, out


def test_nodes_denied_by_private_data_say_what_to_do(
    mock: respx.MockRouter, key_file: Path
) -> None:
    denied = {"errors": [{"error_number": 2002, "error": "Access/permission denied",
                          "description": "Failure to query nodes"}]}
    mock.get(f"{URL}/slurm/{V}/nodes/").respond(500, json=denied)
    code, out = _check(key_file)
    line = next(x for x in out.splitlines() if x.startswith("[FAIL] endpoint nodes"))
    assert code == 1 and "PrivateData=nodes" in line and "adminlevel=operator" in line


def test_a_pending_array_counts_its_tasks_as_sdiag_does(
    mock: respx.MockRouter, key_file: Path
) -> None:
    # root's jobs alone, as root sees them: 6 pending records, one an array of 4 tasks
    # (1-4%2), and 2 running; sdiag counts 9 pending tasks and 2 running: nothing hidden
    mock.get(f"{URL}/slurm/{V}/jobs/").respond(200, content=_jobs_of("root"))
    mock.get(f"{URL}/slurm/{V}/diag/").respond(200, content=_diag(9, 2))
    code, out = _check(key_file, user="root")
    assert code == 0 and "private data" not in out, out


# ------------------------------------------- Slurm's own metrics (issue 13, item 3)
NATIVE = Path(__file__).parent.parent / "fixtures" / "slurm-26.05-native"
CTLD = "http://slurm-head:6817/metrics"
PAGES = ("jobs", "nodes", "partitions", "jobs-users-accts", "scheduler")


def _conf(**changes: object) -> dict[str, object]:
    """The 26.05 lab's /conf with MetricsType set, slurmctld on slurm-head:6817."""
    doc: dict[str, Any] = json.loads((NATIVE / f"{V}_conf.json").read_text())
    doc["slurm_conf"].update(SlurmctldPort=6817, controllers=[{"address": "slurm-head"}])
    doc["slurm_conf"].update(changes)
    return doc


def _native_pages(m: respx.MockRouter, url: str = CTLD, extra: bytes = b"") -> None:
    """slurmctld's pages as the 26.05 lab served them (its job mix running)."""
    for page in PAGES:
        body = (NATIVE / f"metrics_{page}.txt").read_bytes()
        m.get(f"{url}/{page}").respond(200, content=body + (extra if page == "jobs" else b""))


def _line(out: str, what: str) -> str:
    return next(x for x in out.splitlines() if x.partition("]")[2].lstrip().startswith(what))


def test_native_metrics_found_through_slurm_conf_and_no_name_shared(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json=_conf())
    _native_pages(mock)
    code, out = _check(key_file)
    assert code == 0, out
    line = _line(out, "native metrics")
    assert line.startswith("[ok]") and f"at {CTLD}/{{jobs,nodes,partitions," in line
    assert "(259 names)" in line and "none is one of the exporter's" in line
    names = _line(out, "metric names")
    assert names.startswith("[ok]") and "of the 259 of Slurm's metrics/openmetrics" in names


def test_a_name_slurmctld_serves_that_is_ours_is_reported(
    mock: respx.MockRouter, key_file: Path
) -> None:
    """A later Slurm may add one of our names: check says which, and why it matters."""
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json=_conf())
    _native_pages(mock, extra=b"# TYPE slurm_jobs_cpus gauge\nslurm_jobs_cpus 5\n")
    code, out = _check(key_file)
    line = _line(out, "native metrics")
    assert line.startswith("[warn]") and "also serves slurm_jobs_cpus:" in line
    assert "1 not in the exporter's list" not in out and code == 0


def test_without_metrics_type_slurmctld_serves_none(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json=_conf(MetricsType=None))
    code, out = _check(key_file)  # and no request to slurmctld (respx would refuse it)
    line = _line(out, "native metrics")
    assert code == 0 and "[ok]   native metrics: slurmctld serves none (MetricsType is" in line


def test_native_metrics_behind_a_token_say_so(mock: respx.MockRouter, key_file: Path) -> None:
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json=_conf(PrivateData=["jobs"]))
    for page in PAGES:
        mock.get(f"{CTLD}/{page}").respond(401)
    _, out = _check(key_file)
    line = _line(out, "native metrics")
    assert line.startswith("[warn]") and "HTTP 401" in line and "MetricsAuthUsers" in line


def test_before_v0045_only_the_configured_url_tells(
    mock: respx.MockRouter, key_file: Path
) -> None:
    """slurmrestd shows no slurm.conf before v0.0.45 (25.11 serves up to v0.0.44)."""
    mock.get(f"{URL}/slurm/{V}/conf").respond(404, content=b"Unable to find requested URL")
    code, out = _check(key_file)
    assert code == 0 and "native metrics: unknown: " in out and "--native-metrics-url" in out
    url = "http://ctld.example:6817/metrics"
    _native_pages(mock, url)
    args = ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter",
            "--native-metrics-url", url + "/"]
    out_io = io.StringIO()
    assert run_check(load_settings(args), out_io) == 0
    assert f"at {url}/{{jobs," in _line(out_io.getvalue(), "native metrics")


def test_slurmctld_unreachable_is_a_warning(mock: respx.MockRouter, key_file: Path) -> None:
    mock.get(f"{URL}/slurm/{V}/conf").respond(200, json=_conf())
    mock.get(f"{CTLD}/jobs").mock(side_effect=httpx.ConnectError("Connection refused"))
    code, out = _check(key_file)
    line = _line(out, "native metrics")
    assert code == 0 and line.startswith("[warn]") and "Connection refused" in line
    # what to look at, not the exception's class
    assert "ConnectError" not in line and "--native-metrics-url" in line, line


def test_a_name_of_ours_in_the_native_list_fails_check(
    mock: respx.MockRouter, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter import native

    monkeypatch.setattr(native, "NATIVE_METRICS", {"slurm_jobs_by_state": ("jobs", "", "", "")})
    code, out = _check(key_file)
    line = _line(out, "metric names")
    assert code == 1, out
    assert line.startswith("[FAIL] metric names: slurm_jobs_by_state: also names of Slurm's")

def test_accounting_asks_for_the_last_minute_only(
    mock: respx.MockRouter, key_file: Path
) -> None:
    jobs = Path(__file__).parent.parent / "fixtures" / "slurm-26.05-slurmdbd"
    route = mock.get(url__startswith=f"{URL}/slurmdb/{V}/jobs/").respond(
        200, content=(jobs / f"slurmdb_{V}_jobs.json").read_bytes()
    )
    out = io.StringIO()
    args = ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user",
            "exporter", "--collector-accounting"]
    run_check(load_settings(args), out)
    params = route.calls.last.request.url.params
    start, end = (int(params[k].removeprefix("uts")) for k in ("start_time", "end_time"))
    assert end - start == 60  # never the whole history
    assert "endpoint accounting" in out.getvalue() and "9 items" in out.getvalue()


def test_accounting_without_slurmrestd_slurmdbd_plugins_says_so(
    mock: respx.MockRouter, key_file: Path
) -> None:
    mock.get(url__startswith=f"{URL}/slurmdb/").respond(404, text="Not Found")
    out = io.StringIO()
    args = ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user",
            "exporter", "--collector-accounting"]
    assert run_check(load_settings(args), out) != 0
    line = next(x for x in out.getvalue().splitlines() if "endpoint accounting" in x)
    assert "serves no /slurmdb/ path" in line and "wrong API version" not in line
