"""What the admin reads: one line per problem, Slurm's parsed reason rather than a raw body.

The answers are real 26.05 ones to a token signed with the wrong key (recorded from the
lab: /partitions 511 with an empty `errors`, /ping 200 with the node "not responding" for
"Protocol authentication error"); tests/integration/test_errors_live.py runs the same
against real slurmrestd 26.05 and 22.05.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import respx

from exporter.auth import MintedToken, StaticToken
from exporter.check import run_check
from exporter.client import SlurmrestdClient, classify_error
from exporter.cycle import Collection
from exporter.errors import EndpointFailure
from exporter.settings import load_settings

TOP = Path(__file__).resolve().parents[2]
FIXTURES = TOP / "tests" / "fixtures" / "slurm-26.05"
URL = "http://slurm-head:6820"
V45 = URL + "/slurm/v0.0.45"
ENDPOINTS = ("diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses")


@pytest.fixture
def wrong_key_answers() -> Iterator[respx.MockRouter]:
    """slurmrestd 26.05 answering a token signed with another key than the cluster's."""
    refused = (FIXTURES / "v0.0.45_diag_expired_token.json").read_bytes()
    with respx.mock(assert_all_called=False) as m:
        m.get(URL + "/openapi/v3").respond(
            200, content=(FIXTURES / "openapi_v3.json").read_bytes()
        )
        for e in ("diag", "jobs", "nodes", "reservations", "licenses"):
            m.get(f"{V45}/{e}/").respond(511, content=refused)
        m.get(url__startswith=f"{V45}/shares").respond(511, content=refused)
        m.get(f"{V45}/partitions/").respond(
            511, content=(FIXTURES / "v0.0.45_partitions_wrong_key.json").read_bytes()
        )
        m.get(f"{V45}/ping/").respond(
            200, content=(FIXTURES / "v0.0.45_ping_wrong_key.json").read_bytes()
        )
        yield m


def _minted(key_file: Path) -> list[str]:
    return ["--slurmrestd-url", URL, "--jwt-key-file", str(key_file), "--jwt-user", "exporter"]


# ---------------------------------------------------------------- item 5: parsed reasons
def test_a_refused_token_never_quotes_slurmrestds_json() -> None:
    body = (FIXTURES / "v0.0.45_partitions_wrong_key.json").read_bytes()
    failure = classify_error("/slurm/v0.0.45/partitions/", 511, body)
    assert failure.reason == "auth"
    assert "\n" not in failure.message and "{" not in failure.message
    assert failure.message.endswith("[HTTP 511: no error details]")


def test_a_body_that_is_not_json_is_quoted_on_one_line() -> None:
    failure = classify_error("/x", 502, b"<html>\r\n<body>Bad\n   Gateway</body>\n</html>\n")
    assert failure.reason == "http_error"
    assert "<html> <body>Bad Gateway</body> </html>" in failure.message


def test_check_says_every_refusal_is_auth_in_one_line_each(
    wrong_key_answers: respx.MockRouter, key_file: Path
) -> None:
    out = io.StringIO()
    assert run_check(load_settings(_minted(key_file)), out) == 1
    text = out.getvalue()
    assert "{" not in text and '"errors"' not in text
    for e in ENDPOINTS:
        [row] = [ln for ln in text.splitlines() if ln.startswith(f"[FAIL] endpoint {e}:")]
        path = "shares" if e == "shares" else f"{e}/"  # /shares has no "/"
        assert f"[FAIL] endpoint {e}: [auth] GET /slurm/v0.0.45/{path}: slurmrestd refused" in row


# ----------------------------------------------------------- item 8: one line per problem
def test_the_log_says_one_line_for_a_cause_shared_by_every_endpoint(
    wrong_key_answers: respx.MockRouter, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(_minted(key_file))
    tokens = MintedToken(key_file, "exporter", 1800)
    coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    try:
        with caplog.at_level(logging.INFO):
            coll.run_once()
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        [line] = [s for s in said if "failed" in s]
        assert line.startswith(
            "diag, jobs, nodes, partitions, ping, shares, reservations, licenses failed [auth]: "
            "slurmrestd"
        )
        assert "[HTTP 511: Protocol authentication error (error 1007); HTTP 511: no error " \
               "details; HTTP 200: Protocol authentication error (error 1007)]" in line
        assert not any("retrying" in s for s in said)  # the retry is no news
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            coll.run_once()  # the same again: not repeated
        assert not caplog.records
    finally:
        coll.close()


def test_once_prints_one_line_for_one_problem() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "exporter", "--once", "--auth", "none",
         "--slurmrestd-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, cwd=TOP, timeout=60, check=False,
    )
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert line.startswith(
        "slurm-exporter: diag, jobs, nodes, partitions, ping, shares, reservations, licenses "
        "failed [connect]: GET /openapi/v3: "
        "connection refused"
    )


def test_a_static_token_expiring_soon_is_said_once_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = float(int(time.time()))
    token = jwt.encode({"exp": int(now) + 600, "sun": "u"}, b"k" * 32, "HS256")
    src = StaticToken(token, None, lambda: now)
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            src.credentials()
    assert len(caplog.records) == 1 and "expires in 600 s" in caplog.text


def test_a_short_key_is_said_once_at_start_in_our_words(tmp_path: Path) -> None:
    from exporter.auth import start_up_check

    key = tmp_path / "short.key"
    key.write_bytes(b"k" * 18)
    key.chmod(0o600)
    [warning] = start_up_check(MintedToken(key, "exporter", 1800))
    assert warning.startswith("the JWT key is only 18 bytes: an HS256 key should be at least 32")
    p = subprocess.run(
        [sys.executable, "-m", "exporter", "--once", "--log-level", "warning",
         "--slurmrestd-url", "http://127.0.0.1:9", "--jwt-key-file", str(key),
         "--jwt-user", "exporter"],
        capture_output=True, text=True, cwd=TOP, timeout=60, check=False,
    )
    assert "InsecureKeyLengthWarning" not in p.stderr and "api_jwt.py" not in p.stderr
    assert p.stderr.count("the JWT key is only 18 bytes") == 1
    assert len(p.stderr.splitlines()) == 2  # that, and the connection refused


def test_a_failure_message_is_grouped_only_with_its_own_cause() -> None:
    from exporter.cycle import failure_lines  # (new with the grouping)

    a = EndpointFailure("timeout", "GET /slurm/v0.0.45/jobs/: no complete answer")
    b = EndpointFailure("connect", "GET /slurm/v0.0.45/nodes/: connection refused")
    assert failure_lines([("jobs", a), ("nodes", b)]) == [
        "jobs failed [timeout]: GET /slurm/v0.0.45/jobs/: no complete answer",
        "nodes failed [connect]: GET /slurm/v0.0.45/nodes/: connection refused",
    ]


def test_minted_tokens_are_pyjwts_byte_for_byte_without_its_warning() -> None:
    import warnings

    from exporter.auth import hs256_token

    claims: dict[str, object] = {"iat": 1700000000, "exp": 1700001800, "sun": "exporter"}
    for key in (b"k" * 18, b"s" * 32, b"\x00\xff" * 40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = jwt.encode(claims, key, algorithm="HS256")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # none from ours
            assert hs256_token(claims, key) == expected
