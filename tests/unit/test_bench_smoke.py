"""The benchmark's tools at a tiny size: generator -> replay slurmrestd -> `--once`, exact counts.

The benchmark itself (`make bench`) runs the same chain at 1k-100k jobs; this keeps the
chain honest in every test run: the generated answers have slurmrestd's exact shape and
format, the replay server checks tokens like Slurm, and the exporter's output matches
the generator's truth file series for series.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from benchmarks import generate, replay
from benchmarks.expect import differences

TOP = Path(__file__).resolve().parents[2]
VERSIONS = ["v0.0.45", "v0.0.42", "v0.0.38"]
KEY = b"k" * 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-data")
    generate.generate(out, 400, 30, VERSIONS, seed=7)
    (out / "key").write_bytes(KEY)
    (out / "key").chmod(0o600)  # the exporter refuses a key that other users may read
    return out


@pytest.fixture(scope="module")
def server(dataset: Path) -> Iterator[str]:
    srv, _ = replay.start(dataset, KEY)
    yield replay.url_of(srv)
    srv.shutdown()


def _token(**claims: object) -> str:
    body = {"exp": int(time.time()) + 300, "sun": "bench", **claims}
    return jwt.encode(body, KEY, algorithm="HS256")


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_answers_have_slurmrestds_shape_and_format(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["versions"] == VERSIONS
    for version in VERSIONS:
        for endpoint in generate.ENDPOINTS:
            raw = (dataset / f"{version}_{endpoint}.json").read_bytes()
            # pretty-printed with an indent of 2, byte for byte as json.dumps does it
            assert raw == (json.dumps(json.loads(raw), indent=2) + "\n").encode()
        jobs = json.loads((dataset / f"{version}_jobs.json").read_bytes())["jobs"]
        assert len(jobs) == 400
    new = json.loads((dataset / "v0.0.45_jobs.json").read_bytes())["jobs"]
    old = json.loads((dataset / "v0.0.38_jobs.json").read_bytes())["jobs"]
    assert isinstance(new[0]["job_state"], list) and isinstance(old[0]["job_state"], str)
    assert isinstance(new[0]["cpus"], dict) and isinstance(old[0]["cpus"], int)


def test_generator_is_deterministic(tmp_path: Path, dataset: Path) -> None:
    generate.generate(tmp_path, 400, 30, ["v0.0.45"], seed=7)
    for name in ("v0.0.45_jobs.json", "v0.0.45_nodes.json", "truth.json"):
        assert (tmp_path / name).read_bytes() == (dataset / name).read_bytes()


def test_truth_has_the_variety_the_benchmark_needs(dataset: Path) -> None:
    truth = json.loads((dataset / "truth.json").read_text())
    jobs, nodes = truth["jobs"], truth["nodes"]
    assert {"running", "pending", "completing"} <= set(jobs["by_state"])
    assert "cpu,long" in jobs["by_partition"]
    assert "any" in jobs["gpus_by_type"] and len(jobs["gpus_by_type"]) >= 3
    assert {"idle", "mixed", "allocated"} <= set(nodes["by_state"])


def test_once_against_replay_gives_exact_counts(dataset: Path, server: str) -> None:
    truth = json.loads((dataset / "truth.json").read_text())
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-m", "exporter", "--once", "--slurmrestd-url", server,
             "--jwt-key-file", str(dataset / "key"), "--jwt-user", "bench",
             "--api-version", v],
            cwd=TOP, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for v in VERSIONS
    }
    for version, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert differences(truth, out.decode()) == [], version
        assert f'api_version="{version}"'.encode() in out


def test_replay_checks_tokens_like_slurm(server: str) -> None:
    path = "/slurm/v0.0.45/ping/"
    assert _get(server, path)[0] == 401
    assert _get(server, path, {"X-SLURM-USER-TOKEN": "garbage"})[0] == 511
    expired = _token(exp=int(time.time()) - 5)
    assert _get(server, path, {"X-SLURM-USER-TOKEN": expired})[0] == 511
    wrong_key = jwt.encode({"exp": int(time.time()) + 60, "sun": "bench"}, b"x" * 40,
                           algorithm="HS256")
    assert _get(server, path, {"X-SLURM-USER-TOKEN": wrong_key})[0] == 511
    status, body = _get(server, path, {"X-SLURM-USER-TOKEN": _token(),
                                       "X-SLURM-USER-NAME": "alice"})
    assert status == 511 and json.loads(body)["errors"][0]["error_number"] == 1007
    assert _get(server, path, {"X-SLURM-USER-TOKEN": _token()})[0] == 200
    assert _get(server, "/slurm/v0.0.99/ping/", {"X-SLURM-USER-TOKEN": _token()})[0] == 404


def test_replay_update_time(server: str) -> None:
    auth = {"X-SLURM-USER-TOKEN": _token()}
    since = f"?update_time={generate.T0}"
    assert _get(server, "/slurm/v0.0.45/nodes/" + since, auth) == (304, b"")
    status, body = _get(server, "/slurm/v0.0.45/jobs/" + since, auth)
    doc = json.loads(body)
    assert status == 200 and doc["jobs"] == []
    assert doc["warnings"][0]["description"] == f"No job changes since update_time={generate.T0}"
    status, body = _get(server, f"/slurm/v0.0.45/nodes/?update_time={generate.T0 - 1}", auth)
    assert status == 200 and json.loads(body)["nodes"]


def test_replay_faults(server: str) -> None:
    auth = {"X-SLURM-USER-TOKEN": _token()}
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    rule = {"path": "/diag", "status": 503, "times": 1}
    conn.request("POST", "/-/replay/faults", body=json.dumps(rule))
    assert conn.getresponse().read()
    conn.close()
    assert _get(server, "/slurm/v0.0.45/diag/", auth)[0] == 503
    assert _get(server, "/slurm/v0.0.45/diag/", auth)[0] == 200
    fault = replay.Fault.from_spec("path=/ping,truncate=10,times=1")
    assert fault.truncate == 10 and fault.times == 1 and fault.path == "/ping"
