"""`slurm-exporter check` on recorded answers: PrivateData (issue 9, item 6)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from exporter.check import run_check
from exporter.settings import load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm-26.05"
URL = "http://slurm-head:6820"
V = "v0.0.45"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "jwt.key"
    p.write_bytes(b"s" * 32)
    p.chmod(0o600)
    return p


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
    assert "does not serve /slurmdb/" in line and "wrong API version" not in line
