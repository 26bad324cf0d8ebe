"""What an admin reads when the token is refused by a real slurmrestd: parsed, one line each.

Each release answers a token signed with the wrong key in its own shape (26.05: 511 with
error 1007 on most endpoints, 511 with an empty `errors` on /partitions, 200 with the error
in /ping; 22.05: 500 with error -1 everywhere): the messages must never quote the raw JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt

from tests.integration.lab import TOP, Lab

ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "reservations", "licenses")


def _wrong_key_token(lab: Lab) -> str:
    now = int(time.time())
    wrong = b"w" * 32  # not the cluster's key
    assert wrong != Path(lab.key).read_bytes()
    return jwt.encode({"iat": now, "exp": now + 600, "sun": lab.user}, wrong, "HS256")


def _run(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLURM_JWT": token}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
        cwd=TOP, env=env, timeout=120, check=False,
    )


def _assert_parsed(text: str, token: str) -> None:
    assert token not in text
    assert '"errors"' not in text and '"meta"' not in text and "{" not in text, text


def test_check_labels_every_refusal_auth_and_quotes_no_json(lab: Lab) -> None:
    token = _wrong_key_token(lab)
    p = _run("check", "--slurmrestd-url", lab.url, token=token)
    assert p.returncode == 1, p.stdout + p.stderr
    _assert_parsed(p.stdout + p.stderr, token)
    rows = {e: [ln for ln in p.stdout.splitlines() if ln.startswith(f"[FAIL] endpoint {e}:")]
            for e in ENDPOINTS}
    for endpoint in ENDPOINTS:
        if endpoint == "ping" and lab.release != "26.05":
            continue  # before v0.0.45, ping answers a refused token with 200 and no error
        assert len(rows[endpoint]) == 1, p.stdout
        assert "[auth]" in rows[endpoint][0] and "refused the token" in rows[endpoint][0]


def test_once_says_a_refused_token_in_one_line(lab: Lab) -> None:
    token = _wrong_key_token(lab)
    p = _run("--once", "--slurmrestd-url", lab.url, "--log-level", "error", token=token)
    assert p.returncode == 1
    _assert_parsed(p.stderr, token)
    lines = p.stderr.splitlines()
    # slurmrestd 23.11-26.05 may answer a refused token on /shares with 500 and a bare
    # error -1, not taken for a refused token after 22.05 (README, Troubleshooting)
    shares = [ln for ln in lines if ln.startswith("slurm-exporter: shares failed [slurm_error]")]
    assert all("slurm_associations_get_shares" in ln for ln in shares), shares
    lines = [ln for ln in lines if ln not in shares]
    assert len(lines) == 1, p.stderr
    assert "failed [auth]: slurmrestd refused the token" in lines[0]
    assert lines[0].startswith("slurm-exporter: diag, jobs, nodes, partitions")
