"""The exporter against a real slurmrestd: counts equal sinfo's and squeue's, auth works.

Each release's cluster (scripts/slurmlab.sh) runs the job mix of `slurmlab.sh submit`,
which ends quiesced (no job changes state), so Slurm's commands and the exporter see
the same cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.auth import MintedToken
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection
from exporter.settings import load_settings
from tests.integration.lab import TOP, Lab
from tests.integration.serving import Served

ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")
NEWEST = {"22.05": "v0.0.38", "24.11": "v0.0.42", "26.05": "v0.0.45"}

Samples = dict[str, list[tuple[dict[str, str], float]]]


def served_endpoints(release: str) -> tuple[str, ...]:
    """What the exporter collects by default on a release: /shares from 23.11 (v0.0.40)."""
    return ENDPOINTS if release == "22.05" else (*ENDPOINTS, "shares")


def run_exporter(
    *args: str, env: dict[str, str] | None = None
) -> tuple[int, Samples, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TOP,
        env={**os.environ, **(env or {})},
        check=False,
    )
    samples: Samples = {}
    for fam in text_string_to_metric_families(proc.stdout):
        for s in fam.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return proc.returncode, samples, proc.stderr


def by(samples: Samples, name: str, *labels: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for lab, v in samples.get(name, []):
        if v:
            out[tuple(lab[k] for k in labels)] += int(v)
    return out


def minted(lab: Lab) -> list[str]:
    return ["--slurmrestd-url", lab.url, "--jwt-key-file", lab.key, "--jwt-user", lab.user]


def exporter_samples(lab: Lab, mode: str, request: pytest.FixtureRequest) -> Samples:
    """What the exporter says now: one --once run, or the session's server-mode exporter
    (the `served` fixture) at a cycle started after this call, several cycles in."""
    if mode == "server":
        served: Served = request.getfixturevalue("served")
        return served.samples()
    code, samples, stderr = run_exporter("--once", *minted(lab))
    assert code == 0, stderr
    return samples


@pytest.mark.parametrize("mode", ["once", "server"])
def test_once_matches_sinfo_and_squeue(
    lab: Lab, mode: str, request: pytest.FixtureRequest
) -> None:
    """--once, and a server-mode exporter after several cycles (update_time in use)."""
    samples = exporter_samples(lab, mode, request)
    up = {lab_["endpoint"]: v for lab_, v in samples["slurm_exporter_endpoint_up"]}
    assert up == dict.fromkeys(served_endpoints(lab.release), 1.0)
    info = samples["slurm_info"][0][0]
    assert info["api_version"] == NEWEST[lab.release]
    assert info["release"] == lab.env["SLURM_VERSION"]

    nodes = Counter({k[0]: v for k, v in by(samples, "slurm_nodes_by_state", "state").items()})
    assert nodes == lab.sinfo_states()
    assert by(samples, "slurm_jobs_by_state", "state", "partition") == lab.squeue_counts()

    total, alloc = lab.scontrol_node_cpus()
    assert samples["slurm_cpus_configured"][0][1] == total
    assert by(samples, "slurm_cpus", "state")[("allocated",)] == alloc
    # the job mix has jobs in all these states, so the test cannot pass on empty data
    states = {s for s, _ in lab.squeue_counts()}
    assert {"running", "pending", "completed", "failed", "cancelled"} <= states


def test_static_token_from_slurm_jwt(lab: Lab) -> None:
    code, samples, stderr = run_exporter(
        "--once", "--slurmrestd-url", lab.url, env={"SLURM_JWT": lab.token(600)}
    )
    assert code == 0, stderr
    assert by(samples, "slurm_jobs_by_state", "state", "partition") == lab.squeue_counts()
    expiry = samples["slurm_exporter_token_expiry_timestamp_seconds"][0][1]
    assert 0 < expiry - time.time() <= 600


def test_every_served_version_works_when_asked_for(lab: Lab) -> None:
    served = {
        "22.05": ["v0.0.36", "v0.0.37", "v0.0.38"],
        "24.11": ["v0.0.40", "v0.0.41", "v0.0.42"],
        "26.05": ["v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"],
    }[lab.release]
    expected = lab.squeue_counts()
    for version in served:
        code, samples, stderr = run_exporter("--once", "--api-version", version, *minted(lab))
        assert code == 0, f"{version}: {stderr}"
        assert by(samples, "slurm_jobs_by_state", "state", "partition") == expected, version


def test_short_lived_tokens_are_renewed_without_a_failed_request(lab: Lab) -> None:
    """Tokens of 6 s, cycles every 0.5 s for 14 s: several renewals, never a refusal."""
    settings = load_settings([*minted(lab), "--jwt-lifespan", "6", "--interval", "0.5"])
    assert settings.jwt_key_file is not None and settings.jwt_user is not None
    tokens = MintedToken(settings.jwt_key_file, settings.jwt_user, settings.jwt_lifespan)
    seen_tokens: set[str] = set()
    real = tokens.credentials

    def spy():  # type: ignore[no-untyped-def]
        creds = real()
        seen_tokens.add(creds.token)
        assert creds.expires_at is not None and creds.expires_at > time.time()
        return creds

    tokens.credentials = spy  # type: ignore[method-assign]
    coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    stop = threading.Event()
    failures: list[object] = []
    cycles = 0
    deadline = time.monotonic() + 14
    try:
        while time.monotonic() < deadline:
            snap = coll.run_once()
            cycles += 1
            failures.extend(snap.failures)
            stop.wait(0.5)
    finally:
        coll.close()
    assert not failures
    assert cycles >= 10
    assert tokens.renewals()["failure"] == 0
    assert tokens.renewals()["success"] >= 3 and len(seen_tokens) >= 3


def test_wrong_key_is_reported_as_auth(lab: Lab) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile() as bad:
        bad.write(b"x" * 32)
        bad.flush()
        code, samples, stderr = run_exporter(
            "--once", "--slurmrestd-url", lab.url, "--jwt-key-file", bad.name,
            "--jwt-user", lab.user,
        )
    assert code == 1
    reasons = by(samples, "slurm_exporter_endpoint_errors_total", "endpoint", "reason")
    refused = {e for (e, r) in reasons if r == "auth"}
    assert refused >= {"diag", "jobs", "nodes", "partitions"}
    if "ping" not in refused:
        # Before v0.0.45, ping answers a refused token with 200 and the controller "DOWN",
        # without saying why: the exporter can only report what it is told.
        assert lab.release != "26.05"
        assert [v for _, v in samples["slurm_controller_up"]] == [0.0]
    assert "refused the token" in stderr and "jwt_key" in stderr


def test_check_explains_problems(lab: Lab) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "exporter", "check", *minted(lab)],
        capture_output=True, text=True, cwd=TOP, timeout=60, check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout

    def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        p = subprocess.run(
            [sys.executable, "-m", "exporter", "check", *args], capture_output=True, text=True,
            cwd=TOP, timeout=60, env={**os.environ, **(env or {})}, check=False,
        )
        return p.returncode, p.stdout + p.stderr

    # a stopped daemon (nothing listens on port 9 of loopback)
    rc, out = check("--slurmrestd-url", "http://127.0.0.1:9", "--jwt-key-file", lab.key,
                    "--jwt-user", lab.user)
    assert rc == 1 and "connection refused" in out and "is slurmrestd running" in out
    # an expired token: the lifespan is shown, never the token
    key = Path(lab.key).read_bytes()
    now = int(time.time())
    expired = jwt.encode({"iat": now - 4000, "exp": now - 400, "sun": lab.user}, key, "HS256")
    rc, out = check("--slurmrestd-url", lab.url, env={"SLURM_JWT": expired})
    assert rc == 1 and "EXPIRED" in out and expired not in out
    assert "refused the token" in out
    # a wrong API version: the served ones are listed
    rc, out = check("--api-version", "v0.0.99", *minted(lab))
    assert rc == 1 and "v0.0.99 is not served" in out and NEWEST[lab.release] in out
