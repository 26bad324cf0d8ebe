"""--web-config-file: TLS and basic auth for /metrics, in the Prometheus exporter toolkit's
`web-config.yml` format (https://prometheus.io/docs/prometheus/latest/configuration/https/)::

    tls_server_config:
      cert_file: /etc/slurm-exporter/tls.crt      # relative paths: to this file's folder
      key_file: /etc/slurm-exporter/tls.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default),
      client_ca_file: /etc/slurm-exporter/ca.crt     #   VerifyClientCertIfGiven
      min_version: TLS12                          # TLS10, TLS11, TLS12 (default), TLS13
      max_version: TLS13
      prefer_server_cipher_suites: true
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2y$10$...                      # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Everything is checked when the exporter starts: a bad file stops it with a message
naming the key. What Python's ssl module cannot do as Go does (`cipher_suites`,
`curve_preferences`, `RequestClientCert`, `RequireAnyClientCert`) is refused rather than
silently ignored. Basic auth protects every path, as the toolkit does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_KEYS = {
    "cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
    "max_version", "prefer_server_cipher_suites", "cipher_suites", "curve_preferences",
}


@functools.cache
def _dummy_hash() -> bytes:
    """A hash of nothing in particular: unknown users cost a bcrypt check too (no user
    enumeration by timing)."""
    import bcrypt

    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(10))


class WebConfigError(Exception):
    """The web config file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class WebConfig:
    path: Path
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web-config.yml; raise WebConfigError with the fix."""
    import yaml

    def fail(msg: str) -> WebConfigError:
        return WebConfigError(f"--web-config-file {path}: {msg}")

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise fail(f"cannot read it: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise fail(f"not valid YAML: {e}") from None
    doc = doc or {}
    if not isinstance(doc, dict):
        raise fail("expected a mapping with tls_server_config, http_server_config, "
                   "basic_auth_users")
    unknown = set(doc) - {"tls_server_config", "http_server_config", "basic_auth_users"}
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    base = path.parent
    tls = _tls_context(doc.get("tls_server_config"), base, fail)
    users = _users(doc.get("basic_auth_users"), fail)
    headers = _headers(doc.get("http_server_config"), fail)
    return WebConfig(path=path, tls=tls, users=users, headers=headers)


def _tls_context(
    conf: Any, base: Path, fail: Callable[[str], WebConfigError]
) -> ssl.SSLContext | None:
    if conf is None:
        return None
    if not isinstance(conf, dict):
        raise fail("tls_server_config must be a mapping")
    unknown = set(conf) - _TLS_KEYS
    if unknown:
        raise fail(f"unknown key(s) in tls_server_config: {', '.join(sorted(map(str, unknown)))}")
    for key in ("cipher_suites", "curve_preferences"):
        if conf.get(key):
            raise fail(
                f"tls_server_config.{key} is not supported by slurm-exporter (Python's ssl "
                "uses OpenSSL's defaults, which Go's names do not map onto); remove it"
            )
    cert, key_file = conf.get("cert_file"), conf.get("key_file")
    if not cert or not key_file:
        raise fail("tls_server_config needs both cert_file and key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(base / str(cert)), str(base / str(key_file)))
    except (OSError, ssl.SSLError) as e:
        raise fail(f"cannot load cert_file {cert} / key_file {key_file}: {e}") from None
    for name, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        value = conf.get(name)
        if value is None:
            continue
        if value not in _TLS_VERSIONS:
            raise fail(f"tls_server_config.{name} {value!r}: one of {', '.join(_TLS_VERSIONS)}")
        setattr(ctx, attr, _TLS_VERSIONS[value])
    if conf.get("min_version") is None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # the toolkit's default
    auth_type = conf.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise fail(
            f"tls_server_config.client_auth_type {auth_type!r} is not supported; use one of "
            f"{', '.join(_CLIENT_AUTH)}"
        )
    ca = conf.get("client_ca_file")
    if ca:
        try:
            ctx.load_verify_locations(cafile=str(base / str(ca)))
        except (OSError, ssl.SSLError) as e:
            raise fail(f"cannot load client_ca_file {ca}: {e}") from None
    elif auth_type != "NoClientCert":
        raise fail(f"client_auth_type {auth_type} needs client_ca_file")
    ctx.verify_mode = _CLIENT_AUTH[auth_type]
    if conf.get("prefer_server_cipher_suites", True):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _users(conf: Any, fail: Callable[[str], WebConfigError]) -> dict[str, bytes]:
    if conf is None:
        return {}
    if not isinstance(conf, dict):
        raise fail("basic_auth_users must be a mapping of user: bcrypt hash")
    import bcrypt

    users = {}
    for user, hashed in conf.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise fail(f"basic_auth_users.{user}: not a bcrypt hash (htpasswd -nBC 10 USER)")
        try:
            bcrypt.checkpw(b"", hashed.encode())
        except ValueError:
            raise fail(f"basic_auth_users.{user}: not a valid bcrypt hash") from None
        users[str(user)] = hashed.encode()
    return users


def _headers(conf: Any, fail: Callable[[str], WebConfigError]) -> tuple[tuple[str, str], ...]:
    if conf is None:
        return ()
    if not isinstance(conf, dict):
        raise fail("http_server_config must be a mapping")
    unknown = set(conf) - {"headers", "http2"}
    if unknown:
        raise fail(f"unknown key(s) in http_server_config: {', '.join(sorted(map(str, unknown)))}")
    headers = conf.get("headers") or {}
    if not isinstance(headers, dict):
        raise fail("http_server_config.headers must be a mapping of header: value")
    return tuple((str(k), str(v)) for k, v in headers.items())


class BasicAuth:
    """WSGI middleware: every path needs one of the users' passwords.

    A bcrypt check costs tens of milliseconds by design; a right password is
    remembered (as a salted SHA-256, never in clear) so that scrapes stay cheap.
    """

    def __init__(self, app: App, users: dict[str, bytes]) -> None:
        self._app = app
        self._users = users
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()
        self._salt = os.urandom(16)  # remembered passwords are salted per process

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return self._app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"),
             ("WWW-Authenticate", 'Basic realm="slurm-exporter", charset="UTF-8"')],
        )
        return [b"Unauthorized\n"]

    def _allowed(self, header: str) -> bool:
        import bcrypt

        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user)
        remembered = hashlib.sha256(
            self._salt + user.encode() + b"\0" + password.encode() + b"\0" + (hashed or b"")
        ).digest()
        with self._lock:
            if hashed is not None and any(hmac.compare_digest(remembered, k) for k in self._ok):
                return True
        ok = bcrypt.checkpw(password.encode(), hashed or _dummy_hash()) and hashed is not None
        if ok:
            with self._lock:
                if len(self._ok) > 1000:
                    self._ok.clear()
                self._ok.add(remembered)
        return ok


def with_headers(app: App, headers: tuple[tuple[str, str], ...]) -> App:
    """Add the configured http_server_config.headers to every answer."""
    if not headers:
        return app

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, hdrs: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*hdrs, *headers], *exc)

        return app(environ, start)

    return wrapped


def protect(app: App, config: WebConfig) -> App:
    """The app with basic auth and the configured headers (TLS is the server's part)."""
    if config.users:
        app = BasicAuth(app, config.users)
    return with_headers(app, config.headers)
