"""Security: no secret in anything the process writes, key file permissions, URL schemes,
redirects, and /metrics behind TLS and basic auth (web-config.yml) with a real client."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import jwt
import pytest

from exporter.auth import AuthError, MintedToken, token_source_from_settings
from exporter.client import SlurmrestdClient
from exporter.cycle import Collection, Snapshot
from exporter.errors import EndpointFailure
from exporter.server import make_app, serve
from exporter.settings import ConfigError, load_settings
from exporter.webconfig import WebConfigError, load_web_config, protect
from tests.fakerestd import FakeSlurmrestd, Fault

TOP = Path(__file__).resolve().parents[2]
SECRET_KEY = b"SeCrEt-KeY-7f1c2a9e4b6d8f0a1c3e5g"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, cwd=TOP,
        timeout=120, env={**os.environ, **(env or {})}, check=False,
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    p = tmp_path / "jwt_hs256.key"
    p.write_bytes(SECRET_KEY)
    p.chmod(0o600)
    return p


@pytest.fixture
def srv() -> Iterator[FakeSlurmrestd]:
    with FakeSlurmrestd("26.05", key=SECRET_KEY) as s:
        yield s


# --------------------------------------------------------------------- no secret leaks
def _secrets_in(text: str, secrets: list[str]) -> list[str]:
    return [s[:12] + "..." for s in secrets if s and s in text]


def test_no_token_or_key_in_anything_the_process_writes(
    srv: FakeSlurmrestd, key_file: Path, tmp_path: Path
) -> None:
    """A full cycle (--once) and `check`, at debug level, with failures that quote the
    request (a proxy echoing headers), a refused token and a good one: stdout, stderr and
    the metrics hold neither the key nor any token the server received."""
    minted = ["--slurmrestd-url", srv.url, "--jwt-key-file", str(key_file), "--jwt-user",
              "exporter", "--log-level", "debug"]
    srv.fault(srv.path("diag"), Fault(400, echo=True))  # the request's headers, token included
    srv.fault(srv.path("ping"), Fault(401, echo=True))
    outputs = [run("--once", *minted), run("check", *minted)]
    # a static token from the environment, and a token file
    now = int(time.time())
    static = jwt.encode({"iat": now, "exp": now + 900, "sun": "exporter"}, SECRET_KEY, "HS256")
    token_file = tmp_path / "token"
    token_file.write_text(f"SLURM_JWT={static}x\n")  # a token signed wrongly: refused
    for args, env in [
        (["--once", "--slurmrestd-url", srv.url, "--log-level", "debug"], {"SLURM_JWT": static}),
        (["check", "--slurmrestd-url", srv.url, "--log-level", "debug"], {"SLURM_JWT": static}),
        (["--once", "--slurmrestd-url", srv.url, "--token-file", str(token_file),
          "--log-level", "debug"], {}),
    ]:
        outputs.append(run(*args, env=env))
    srv.fault(srv.path("diag"), None)
    sent = {h["x-slurm-user-token"] for _, h in srv.requests if "x-slurm-user-token" in h}
    assert len(sent) >= 3  # minted, static, from the file
    secrets = [SECRET_KEY.decode(), base64.b64encode(SECRET_KEY).decode(), SECRET_KEY.hex()]
    for token in sent:
        secrets += [token, token.rsplit(".", 1)[1]]  # the token, and its signature alone
    everything = "\n".join(p.stdout + "\n" + p.stderr for p in outputs)
    assert "slurm_exporter_endpoint_up" in everything and "[FAIL]" in everything
    assert "<token>" in everything  # the echoed header was there, and redacted
    assert _secrets_in(everything, secrets) == []


def test_credentials_never_show_in_a_repr_or_a_failure(key_file: Path) -> None:
    creds = MintedToken(key_file, "exporter", 1800).credentials()
    assert creds.token not in repr(creds) and creds.token not in str(creds)
    failure = EndpointFailure("auth", "x")
    assert creds.token not in repr(failure)


def test_an_echoed_token_is_redacted_from_the_failure(
    srv: FakeSlurmrestd, key_file: Path
) -> None:
    settings = load_settings(["--slurmrestd-url", srv.url, "--jwt-key-file", str(key_file),
                              "--jwt-user", "exporter"])
    tokens = token_source_from_settings(settings)
    srv.fault(srv.path("jobs"), Fault(502, echo=True))
    client = SlurmrestdClient(settings, tokens)
    try:
        with pytest.raises(EndpointFailure) as e:
            client.get(srv.path("jobs"))
    finally:
        client.close()
    token = tokens.credentials().token
    assert token not in e.value.message and token.rsplit(".", 1)[1] not in e.value.message
    assert "<token>" in e.value.message and "HTTP 502" in e.value.message


# --------------------------------------------------------------------- key permissions
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606, 0o666])
def test_a_key_every_user_may_read_is_refused_at_start(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    settings = load_settings(["--jwt-key-file", str(key_file), "--jwt-user", "exporter"])
    with pytest.raises(AuthError) as e:
        token_source_from_settings(settings)
    assert "chmod o-rwx" in str(e.value)
    assert "--jwt-key-file-allow-insecure-permissions" in str(e.value)
    p = run("--once", "--jwt-key-file", str(key_file), "--jwt-user", "exporter")
    assert p.returncode == 2 and "open to every user" in p.stderr and p.stdout == ""
    c = run("check", "--jwt-key-file", str(key_file), "--jwt-user", "exporter")
    assert c.returncode == 2 and "chmod o-rwx" in c.stderr and c.stdout == ""  # as --once


def test_the_flag_allows_it_with_a_warning(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file.chmod(0o644)
    settings = load_settings(["--jwt-key-file", str(key_file), "--jwt-user", "exporter",
                              "--jwt-key-file-allow-insecure-permissions"])
    with caplog.at_level(logging.WARNING):
        tokens = token_source_from_settings(settings)
        assert tokens.credentials().token
        assert tokens.renew()
    warnings = [r.getMessage() for r in caplog.records if "open to every user" in r.getMessage()]
    assert len(warnings) == 1  # at start only: not again at the first mint, nor per renewal
    assert "used anyway" in warnings[0]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o660])
def test_owner_and_group_modes_are_fine(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    settings = load_settings(["--jwt-key-file", str(key_file), "--jwt-user", "exporter"])
    assert token_source_from_settings(settings).credentials().token


def test_a_key_made_world_readable_later_is_refused_then_recovers(
    srv: FakeSlurmrestd, key_file: Path
) -> None:
    now = [time.time()]
    tokens = MintedToken(key_file, "exporter", 6, clock=lambda: now[0])
    settings = load_settings(["--slurmrestd-url", srv.url, "--jwt-key-file", str(key_file),
                              "--jwt-user", "exporter"])
    coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    try:
        assert coll.run_once().all_up
        key_file.chmod(0o644)  # a careless rotation
        now[0] += 10  # renewal due
        srv.clock = lambda: now[0]
        snap = coll.run_once()
        assert not snap.all_up
        assert all(f.reason == "auth" and "open to every user" in f.message
                   for _, f in snap.failures)
        assert b"slurm_jobs_by_state{" in snap.exposition  # last good data kept
        key_file.chmod(0o600)
        assert coll.run_once().all_up
    finally:
        coll.close()


def test_the_key_from_systemds_credentials_directory(
    srv: FakeSlurmrestd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "jwt_key").write_bytes(SECRET_KEY)
    (creds / "jwt_key").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(["--slurmrestd-url", srv.url, "--jwt-user", "exporter"])
    assert settings.jwt_key_file == creds / "jwt_key"
    p = run("--once", "--slurmrestd-url", srv.url, "--jwt-user", "exporter")
    assert p.returncode == 0, p.stderr
    # an explicit flag wins
    other = tmp_path / "other.key"
    other.write_bytes(SECRET_KEY)
    other.chmod(0o600)
    explicit = load_settings(["--jwt-key-file", str(other), "--jwt-user", "exporter"])
    assert explicit.jwt_key_file == other


# --------------------------------------------------------------------- URL and redirects
@pytest.mark.parametrize(
    "url",
    ["ftp://slurm-head:6820", "file:///etc/passwd", "ws://slurm-head:6820",
     "slurm-head:6820", "//slurm-head:6820", "https://", "unix://", "gopher://x"],
)
def test_unsupported_slurmrestd_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(["--slurmrestd-url", url, "--auth", "none"])
    assert str(e.value).startswith("--slurmrestd-url: ")  # where the bad value came from
    p = run("--once", "--slurmrestd-url", url, "--auth", "none")
    assert p.returncode == 2 and "--slurmrestd-url" in p.stderr and p.stdout == ""


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with `answer`; records the headers it was sent."""

    answer: tuple[int, dict[str, str]] = (200, {})
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers = self.answer
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _recorder(host: str, status: int, headers: dict[str, str]) -> ThreadingHTTPServer:
    handler = type("H", (_Recorder,), {"answer": (status, headers), "seen": []})
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_never_follows_a_redirect(key_file: Path, status: int) -> None:
    """slurmrestd's address answers with a redirect to another host (127.0.0.2): the
    exporter does not follow it, so that host never sees the token."""
    elsewhere = _recorder("127.0.0.2", 200, {})
    target = f"http://127.0.0.2:{elsewhere.server_address[1]}/steal"
    restd = _recorder("127.0.0.1", status, {"Location": target})
    try:
        url = f"http://127.0.0.1:{restd.server_address[1]}"
        settings = load_settings(["--slurmrestd-url", url, "--jwt-key-file", str(key_file),
                                  "--jwt-user", "exporter", "--api-version", "v0.0.45"])
        tokens = token_source_from_settings(settings)
        coll = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
        try:
            snap = coll.run_once()
        finally:
            coll.close()
        assert not snap.all_up
        assert all(f.reason == "http_error" and "redirect, not followed" in f.message
                   for _, f in snap.failures)
        assert elsewhere.RequestHandlerClass.seen == []  # type: ignore[attr-defined]
        # one request per endpoint (shares, reservations, licenses included)
        assert len(restd.RequestHandlerClass.seen) == 8  # type: ignore[attr-defined]
    finally:
        for s in (elsewhere, restd):
            s.shutdown()
            s.server_close()


# --------------------------------------------------------------------- TLS and basic auth
PASSWORD = "correct horse battery staple"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test CA", cwd=d)
    for name, ext in [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")]:
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                 cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)
    return d


def _web_config(pki: Path, name: str, text: str) -> Path:
    path = pki / name
    path.write_text(text)
    return path


HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
SNAP = Snapshot(exposition=b"# TYPE x gauge\nx 1.0\n", created_at=1.0, all_up=True)


@pytest.fixture
def tls_server(pki: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    client_auth = getattr(request, "param", "NoClientCert")
    conf = _web_config(pki, f"web-{client_auth}.yml", f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: {client_auth}
  client_ca_file: ca.crt
  min_version: TLS12
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: {HASH}
""")
    web = load_web_config(conf)
    httpd, _ = serve("127.0.0.1", 0, protect(make_app(lambda: SNAP, "/metrics", "x"), web),
                     web.tls)
    yield f"https://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_metrics_over_tls_with_basic_auth(tls_server: str, pki: Path) -> None:
    ca = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with httpx.Client(verify=ca) as c:
        r = c.get(tls_server + "/metrics", auth=("prometheus", PASSWORD))
        assert r.status_code == 200 and r.content == SNAP.exposition
        assert r.headers["x-content-type-options"] == "nosniff"
        assert c.get(tls_server + "/metrics", auth=("prometheus", PASSWORD)).status_code == 200
        for auth in [None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("", "")]:
            r = c.get(tls_server + "/metrics", auth=auth)
            assert r.status_code == 401, auth
            assert r.headers["www-authenticate"].startswith("Basic")
            assert b"x 1.0" not in r.content
        assert c.get(tls_server + "/", auth=None).status_code == 401  # every path
        r = c.get(tls_server + "/metrics", headers={"Authorization": "Basic !!notbase64"})
        assert r.status_code == 401
    # a client that does not trust the CA refuses the server
    with pytest.raises(httpx.ConnectError), httpx.Client() as c:
        c.get(tls_server + "/metrics")
    # plain HTTP to the TLS port gets no metrics (and the server goes on)
    plain = tls_server.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        r = httpx.get(plain + "/metrics", auth=("prometheus", PASSWORD))
        assert b"x 1.0" not in r.content
        raise httpx.HTTPError("answered")
    with httpx.Client(verify=ca) as c:
        assert c.get(tls_server + "/metrics", auth=("prometheus", PASSWORD)).status_code == 200


@pytest.mark.parametrize("tls_server", ["RequireAndVerifyClientCert"], indirect=True)
def test_client_certificates_required(tls_server: str, pki: Path) -> None:
    ca = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with pytest.raises(httpx.HTTPError), httpx.Client(verify=ca) as c:
        c.get(tls_server + "/metrics", auth=("prometheus", PASSWORD))
    with_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with_cert.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    with httpx.Client(verify=with_cert) as c:
        r = c.get(tls_server + "/metrics", auth=("prometheus", PASSWORD))
        assert r.status_code == 200 and r.content == SNAP.exposition


def test_the_cli_serves_tls_and_basic_auth(
    pki: Path, srv: FakeSlurmrestd, key_file: Path
) -> None:
    conf = _web_config(pki, "web-cli.yml", f"""
tls_server_config:
  cert_file: {pki}/server.crt
  key_file: {pki}/server.key
basic_auth_users:
  prometheus: {HASH}
""")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--slurmrestd-url", srv.url, "--jwt-key-file",
         str(key_file), "--jwt-user", "exporter", "--listen-address", f"127.0.0.1:{port}",
         "--web-config-file", str(conf), "--interval", "60"],
        cwd=TOP, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # logged once it listens
        assert f"serving https://127.0.0.1:{port}/metrics with basic auth" in line, line
        ca = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        url = f"https://127.0.0.1:{port}/metrics"
        with httpx.Client(verify=ca) as c:
            assert c.get(url).status_code == 401
            deadline = time.monotonic() + 30
            while True:  # the page is empty until the first cycle ends (another process)
                r = c.get(url, auth=("prometheus", PASSWORD))
                assert r.status_code == 200
                if r.content or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert b"slurm_exporter_build_info" in r.content
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            rest = proc.stderr.read()
            assert PASSWORD not in rest and HASH not in rest


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("tls_server_config:\n  cert_file: server.crt\n", "needs both cert_file and key_file"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "cannot load"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
         "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n",
         "client_auth_type 'RequireAnyClientCert' is not supported"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
         "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
         "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites is not supported"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
         "  min_version: SSL3\n", "min_version 'SSL3'"),
        ("basic_auth_users:\n  alice: secret\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users:\n  alice: $2y$10$short\n", "not a valid bcrypt hash"),
        ("tls_config:\n  cert_file: x\n", "unknown key(s) tls_config"),
        ("- a list\n", "expected a mapping"),
        ("tls_server_config: [\n", "not valid YAML"),
    ],
)
def test_invalid_web_configs_are_refused_at_start(
    pki: Path, srv: FakeSlurmrestd, key_file: Path, text: str, error: str
) -> None:
    conf = _web_config(pki, "bad.yml", text)
    with pytest.raises(WebConfigError) as e:
        load_web_config(conf)
    assert error in str(e.value) and str(conf) in str(e.value)
    p = run("--slurmrestd-url", srv.url, "--jwt-key-file", str(key_file), "--jwt-user",
            "exporter", "--listen-address", "127.0.0.1:1", "--web-config-file", str(conf))
    assert p.returncode == 2 and error in p.stderr
    assert "secret" not in p.stderr or "secret" in error


def test_web_config_without_tls_is_basic_auth_over_http() -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write(json.dumps({"basic_auth_users": {"prometheus": HASH}}))  # JSON is YAML
        f.flush()
        web = load_web_config(Path(f.name))
    assert web.tls is None and web.scheme == "http"
    httpd, _ = serve("127.0.0.1", 0, protect(make_app(lambda: SNAP, "/metrics", "x"), web))
    try:
        base = f"http://127.0.0.1:{httpd.server_port}/metrics"
        assert httpx.get(base).status_code == 401
        assert httpx.get(base, auth=("prometheus", PASSWORD)).content == SNAP.exposition
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_2xx_body_that_quotes_a_token_is_never_shown_in_a_decode_error() -> None:
    import base64

    from exporter.api.errors import describe_body

    def b64(part: bytes) -> bytes:
        return base64.urlsafe_b64encode(part).rstrip(b"=")

    # made here, so that no JWT-looking text is committed
    token = b".".join([b64(b'{"alg":"HS256"}'), b64(b'{"sun":"exporter"}'), b64(b"signature")])
    said = describe_body(b"<html>X-SLURM-USER-TOKEN: " + token + b"</html>")
    assert b"eyJ".decode() not in said and "<token>" in said, said
