"""The slurmrestd client against mocked HTTP: every failure gets the right reason."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from exporter.api.errors import SlurmErrorEntry
from exporter.auth import Credentials
from exporter.client import SlurmrestdClient, _root_cause, classify_slurm_errors
from exporter.errors import EndpointFailure
from exporter.settings import load_settings

URL = "http://slurm-head:6820"
PATH = "/slurm/v0.0.42/diag/"


def _slurm_error(number: int, error: str, description: str = "") -> bytes:
    # the shape of a real 511 answer (see tests/fixtures/*/v0.0.4x_diag_expired_token.json)
    return json.dumps(
        {
            "errors": [
                {
                    "description": description,
                    "error_number": number,
                    "error": error,
                    "source": "op_handler_diag",
                }
            ],
            "warnings": [],
        }
    ).encode()


class CountingTokens:
    description = "test tokens"

    def __init__(self, renewable: bool = True) -> None:
        self.n = 0
        self.renewable = renewable

    def credentials(self) -> Credentials:
        return Credentials(token=f"token-{self.n}", user="exporter", expires_at=None)

    def renew(self, refused: Credentials | None = None) -> bool:
        if self.renewable:
            self.n += 1
        return self.renewable

    def renewals(self) -> dict[str, int]:
        return {"success": self.n, "failure": 0}


def _client(tokens: CountingTokens | None = None, **flags: str) -> SlurmrestdClient:
    args = ["--slurmrestd-url", URL, "--auth", "none"]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", v]
    return SlurmrestdClient(load_settings(args), tokens or CountingTokens())


@respx.mock
def test_sends_both_slurm_headers_and_returns_the_body() -> None:
    route = respx.get(URL + PATH).respond(200, content=b'{"statistics": {}}')
    answer = _client().get(PATH)
    assert answer.body == b'{"statistics": {}}' and answer.status == 200
    req = route.calls.last.request
    assert req.headers["X-SLURM-USER-TOKEN"] == "token-0"
    assert req.headers["X-SLURM-USER-NAME"] == "exporter"


@pytest.mark.parametrize(
    ("status", "body", "path"),
    [
        (401, b"Authentication failure", PATH),  # no token, 24.11+
        (511, _slurm_error(1007, "Protocol authentication error"), PATH),  # expired/bad, 24.11+
        (500, _slurm_error(1007, "Protocol authentication error"), PATH),  # 24.05
        (500, b"Authentication does not apply to request", PATH),  # 25.11 without a token
        (500, _slurm_error(-1, "Unspecified error", "request failed"), "/slurm/v0.0.38/diag"),
    ],
)
@respx.mock
def test_auth_failures_renew_the_token_and_retry_once(
    status: int, body: bytes, path: str
) -> None:
    route = respx.get(URL + path).mock(
        side_effect=[httpx.Response(status, content=body), httpx.Response(200, content=b"{}")]
    )
    tokens = CountingTokens()
    assert _client(tokens).get(path).status == 200
    assert [c.request.headers["X-SLURM-USER-TOKEN"] for c in route.calls] == [
        "token-0",
        "token-1",
    ]


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.42", "v0.0.45"])
@respx.mock
def test_500_with_only_error_minus_1_is_not_a_refused_token_after_2205(version: str) -> None:
    """23.11-26.05.2 answer /nodes?update_time= so when partitions did not change
    (slurmrestd's nodes.c): not the token. No renewal, no retry; slurm_error."""
    path = f"/slurm/{version}/nodes/?update_time=1"
    body = _slurm_error(-1, "Unspecified error", "Unable to query partitions")
    route = respx.get(URL + path).respond(500, content=body)
    tokens = CountingTokens()
    with pytest.raises(EndpointFailure) as e:
        _client(tokens).get(path)
    assert e.value.reason == "slurm_error" and "Unable to query partitions" in e.value.message
    assert "refused the token" not in e.value.message
    assert len(route.calls) == 1 and tokens.n == 0


@respx.mock
def test_auth_failure_that_persists_is_reported_as_auth() -> None:
    respx.get(URL + PATH).respond(511, content=_slurm_error(1007, "Protocol authentication error"))
    with pytest.raises(EndpointFailure) as e:
        _client().get(PATH)
    assert e.value.reason == "auth" and e.value.status == 511
    assert PATH in e.value.message and "jwt_key" in e.value.message
    assert "token-" not in e.value.message  # never the token itself


@respx.mock
def test_no_retry_when_the_token_cannot_be_renewed() -> None:
    route = respx.get(URL + PATH).respond(401, content=b"Authentication failure")
    with pytest.raises(EndpointFailure, match="refused the token"):
        _client(CountingTokens(renewable=False)).get(PATH)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, b"Unable to find requested URL endpoint.", "not_found"),
        (502, b"Bad Gateway", "http_error"),
        (503, b"", "http_error"),
        (500, _slurm_error(1001, "Unable to contact slurm controller (connect failure)"),
         "slurm_error"),
        (302, b"", "http_error"),
    ],
)
@respx.mock
def test_http_failures_are_classified(status: int, body: bytes, reason: str) -> None:
    respx.get(URL + PATH).respond(status, content=body, headers={"Location": "http://evil/"})
    with pytest.raises(EndpointFailure) as e:
        _client().get(PATH)
    assert e.value.reason == reason
    assert f"HTTP {status}" in e.value.message and PATH in e.value.message


@respx.mock
def test_redirects_are_never_followed() -> None:
    respx.get(URL + PATH).respond(307, headers={"Location": "http://elsewhere:80/steal"})
    other = respx.get("http://elsewhere:80/steal").respond(200)
    with pytest.raises(EndpointFailure, match="redirect, not followed"):
        _client().get(PATH)
    assert other.call_count == 0


@respx.mock
def test_connection_refused_says_what_to_check() -> None:
    respx.get(URL + PATH).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(EndpointFailure) as e:
        _client().get(PATH)
    assert e.value.reason == "connect"
    assert "connection refused" in e.value.message and "6820" in e.value.message


def test_a_cause_chain_that_loops_is_followed_once() -> None:
    """Exceptions can be each other's context (one raised again while the other is
    handled): the root cause is still found (it once looped forever, hanging the
    endpoint's thread)."""
    first = httpx.ConnectError("no route")
    second = RuntimeError("while handling it")
    first.__context__, second.__context__ = second, first
    assert _root_cause(first) is second  # the whole loop seen once, no OSError in it
    refused = ConnectionRefusedError(111, "Connection refused")
    second.__context__ = refused
    refused.__context__ = first
    assert _root_cause(first) is refused


@respx.mock
def test_timeout() -> None:
    respx.get(URL + PATH).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(EndpointFailure) as e:
        _client(timeout="2.5").get(PATH)
    assert e.value.reason == "timeout" and "2.5 s" in e.value.message


def test_unix_socket_that_does_not_exist(tmp_path: Path) -> None:
    settings = load_settings(
        ["--slurmrestd-url", f"unix://{tmp_path}/nope.sock", "--auth", "none"]
    )
    with pytest.raises(EndpointFailure) as e:
        SlurmrestdClient(settings, CountingTokens()).get(PATH)
    assert e.value.reason == "connect" and "socket does not exist" in e.value.message


def test_real_connection_refused() -> None:
    # port 9 on loopback: nothing listens there
    settings = load_settings(["--slurmrestd-url", "http://127.0.0.1:9", "--auth", "none"])
    with pytest.raises(EndpointFailure) as e:
        SlurmrestdClient(settings, CountingTokens()).get(PATH)
    assert e.value.reason == "connect" and "connection refused" in e.value.message


@respx.mock
def test_2205_errno_spelling_is_understood() -> None:
    # 22.05's /nodes and /partitions answer a bad token with "errno" instead of "error_number"
    path = "/slurm/v0.0.38/nodes"
    respx.get(URL + path).respond(
        500, content=b'{"errors": [{"error": "Unspecified error", "errno": -1}], "nodes": []}'
    )
    with pytest.raises(EndpointFailure) as e:
        _client(CountingTokens(renewable=False)).get(path)
    assert e.value.reason == "auth"


def test_slurmdbd_down_behind_partitions_names_slurmdbd() -> None:
    # 26.05's /partitions asks slurmdbd too; stopped, the lab answered this
    err = SlurmErrorEntry(111, "Connection refused", "Slurmdb query failed", "slurmdb_qos_get")
    failure = classify_slurm_errors("/slurm/v0.0.45/partitions/", 500, [err])
    assert failure is not None and failure.reason == "slurm_error"
    assert "slurmdbd is down" in failure.message and "scontrol ping" not in failure.message
    # slurmctld's own failures still point at slurmctld
    ctld = SlurmErrorEntry(1001, "Unable to contact slurm controller (connect failure)")
    other = classify_slurm_errors("/slurm/v0.0.45/jobs/", 500, [ctld])
    assert other is not None and "scontrol ping" in other.message
