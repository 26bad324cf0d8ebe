"""Token sources under a controllable clock: renewal, expiry, files, secrecy."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import jwt
import pytest

from exporter.auth import (
    RENEW_AT,
    AuthError,
    MintedToken,
    NoToken,
    ScontrolToken,
    StaticToken,
    TokenFile,
    token_source_from_settings,
)
from exporter.settings import load_settings

KEY = b"k" * 32
# the fake clock is not the real one: check signatures and claims, not time
NO_TIME_CHECKS = {"verify_exp": False, "verify_iat": False}


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "jwt_hs256.key"
    p.write_bytes(KEY)
    p.chmod(0o600)
    return p


def test_minted_token_carries_what_slurm_expects(key_file: Path) -> None:
    clock = FakeClock()
    creds = MintedToken(key_file, "exporter", 1800, clock).credentials()
    claims = jwt.decode(creds.token, KEY, algorithms=["HS256"], options=NO_TIME_CHECKS)
    assert claims == {"iat": int(clock.now), "exp": int(clock.now) + 1800, "sun": "exporter"}
    assert creds.headers() == {
        "X-SLURM-USER-TOKEN": creds.token,
        "X-SLURM-USER-NAME": "exporter",
    }
    assert creds.expires_at == clock.now + 1800


def test_minted_token_is_reused_until_two_thirds_then_renewed(key_file: Path) -> None:
    clock = FakeClock()
    src = MintedToken(key_file, "exporter", 1800, clock)
    first = src.credentials()
    clock.now += 1800 * RENEW_AT - 1
    assert src.credentials() is first
    clock.now += 2
    second = src.credentials()
    assert second.token != first.token
    assert second.expires_at is not None and second.expires_at > clock.now + 1000
    assert src.renewals() == {"success": 2, "failure": 0}


def test_never_hands_out_an_expired_token(key_file: Path) -> None:
    clock = FakeClock()
    src = MintedToken(key_file, "exporter", 1800, clock)
    src.credentials()
    key_file.unlink()  # renewal now fails
    clock.now += 1300  # due (past 2/3) but not expired: keep using the current one
    assert src.credentials().expires_at == pytest.approx(clock.now + 500)
    clock.now += 600  # expired and no renewal possible: refuse
    with pytest.raises(AuthError, match="cannot read the JWT key"):
        src.credentials()
    assert src.renewals()["failure"] == 2


def test_forced_renewal_after_auth_failure(key_file: Path) -> None:
    clock = FakeClock()
    src = MintedToken(key_file, "exporter", 1800, clock)
    first = src.credentials()
    clock.now += 1
    assert src.renew() is True
    assert src.credentials().token != first.token


def test_rotated_key_is_picked_up_at_renewal(key_file: Path) -> None:
    clock = FakeClock()
    src = MintedToken(key_file, "exporter", 1800, clock)
    src.credentials()
    key_file.write_bytes(b"n" * 32)
    src.renew()
    jwt.decode(
        src.credentials().token, b"n" * 32, algorithms=["HS256"], options=NO_TIME_CHECKS
    )


def _token(exp: float, sun: str = "alice", key: bytes = KEY) -> str:
    return jwt.encode({"iat": int(exp) - 1800, "exp": int(exp), "sun": sun}, key, "HS256")


def test_static_token_reports_expiry_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    tok = _token(clock.now + 600)
    src = StaticToken(tok, None, clock)
    with caplog.at_level(logging.WARNING):
        creds = src.credentials()
    assert creds.expires_at == clock.now + 600
    assert creds.user == "alice"  # from the sun claim
    assert "expires in 600 s" in caplog.text
    assert src.renew() is False
    clock.now += 700
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        src.credentials()
    assert "expired 100 s ago" in caplog.text
    assert tok not in caplog.text


def test_static_token_that_is_not_a_jwt_is_refused() -> None:
    with pytest.raises(AuthError, match="not a valid JWT"):
        StaticToken("not-a-token", None)


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    clock = FakeClock()
    p = tmp_path / "token"
    p.write_text(_token(clock.now + 100) + "\n")
    src = TokenFile(p, None, clock)
    first = src.credentials()
    assert first.expires_at == clock.now + 100
    p.write_text("SLURM_JWT=" + _token(clock.now + 5000, sun="bob"))
    os.utime(p, (clock.now + 1, clock.now + 1))
    second = src.credentials()
    assert second.expires_at == clock.now + 5000 and second.user == "bob"
    assert src.renewals()["success"] == 2


def test_scontrol_token_is_parsed(tmp_path: Path) -> None:
    clock = FakeClock()
    fake = tmp_path / "scontrol"
    tok = _token(clock.now + 1800, sun="exporter")
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\necho SLURM_JWT={tok}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    src = ScontrolToken(str(fake), 1800, None, clock)
    creds = src.credentials()
    assert creds.token == tok and creds.user == "exporter"
    assert (tmp_path / "args").read_text().split() == ["token", "lifespan=1800"]


def test_scontrol_failure_is_explained(tmp_path: Path) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\necho 'scontrol: error: Unable to contact slurm controller' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    with pytest.raises(AuthError, match="Unable to contact slurm controller"):
        ScontrolToken(str(fake), 1800, None).credentials()


def test_source_selection(key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JWT", raising=False)
    with pytest.raises(AuthError, match="no credentials"):
        token_source_from_settings(load_settings([]))
    s = load_settings(["--jwt-key-file", str(key_file), "--jwt-user", "exporter"])
    assert isinstance(token_source_from_settings(s), MintedToken)
    monkeypatch.setenv("SLURM_JWT", _token(2e9))
    assert isinstance(token_source_from_settings(load_settings([])), StaticToken)
    assert isinstance(token_source_from_settings(load_settings(["--auth", "none"])), NoToken)


def test_credentials_repr_hides_the_token(key_file: Path) -> None:
    creds = MintedToken(key_file, "exporter", 1800).credentials()
    assert creds.token not in repr(creds)


def test_a_refused_token_already_replaced_is_not_renewed_again(key_file: Path) -> None:
    clock = FakeClock()
    src = MintedToken(key_file, "exporter", 1800, clock)
    refused = src.credentials()
    clock.now += 1
    assert src.renew(refused) is True  # the first thread refused with it: renews
    renewed = src.credentials()
    assert renewed.token != refused.token
    assert src.renew(refused) is True  # the next one refused with it: takes the new one
    assert src.credentials() is renewed and src.renewals()["success"] == 2


def test_five_concurrent_refusals_make_one_scontrol_token_run(tmp_path: Path) -> None:
    """Five endpoints refused at once with the same token: one `scontrol token` run
    renews it for all five (issue 9, item 9), not five."""
    import threading

    import httpx
    import respx

    from exporter.client import SlurmrestdClient

    clock = FakeClock()
    for n in range(1, 10):
        (tmp_path / f"tok{n}").write_text(_token(clock.now + 1800 + n, sun="exporter"))
    runs = tmp_path / "runs"
    fake = tmp_path / "scontrol"
    fake.write_text(
        f"#!/bin/sh\nn=$(( $(cat {runs} 2>/dev/null || echo 0) + 1 ))\necho $n > {runs}\n"
        f"echo SLURM_JWT=$(cat {tmp_path}/tok$n)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    tokens = ScontrolToken(str(fake), 1800, "exporter", clock)
    first = tokens.credentials()
    together = threading.Barrier(5, timeout=10)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["X-SLURM-USER-TOKEN"] == first.token:
            together.wait()  # all five refused before any of them renews
            return httpx.Response(401, content=b"Authentication failure")
        return httpx.Response(200, content=b"{}")

    settings = load_settings(["--slurmrestd-url", "http://slurm-head:6820", "--auth", "none"])
    client = SlurmrestdClient(settings, tokens)
    statuses: list[int] = []
    with respx.mock:
        respx.get(url__startswith="http://slurm-head:6820/").mock(side_effect=answer)
        def call(endpoint: str) -> None:
            statuses.append(client.get(f"/slurm/v0.0.42/{endpoint}/").status)

        threads = [
            threading.Thread(target=call, args=(e,))
            for e in ("diag", "jobs", "nodes", "partitions", "ping")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert statuses == [200] * 5
    assert runs.read_text().strip() == "2"  # the first token, and one renewal
    assert tokens.renewals() == {"success": 2, "failure": 0}
