"""slurmrestd client: one connection pool, TCP or UNIX socket, every failure classified.

`get()` returns the raw body of a 2xx answer (decoding is the adapters' job), and
`fetch()` hands it to a decoder piece by piece as it arrives (for /jobs and /nodes,
hundreds of MB on a large cluster), or raises EndpointFailure with a reason from
exporter.errors and a message that names the request, the status, the likely cause
and the fix. On an auth failure it asks the token source for a new token once and
retries.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import msgspec

from exporter.api.errors import (
    SLURM_ACCESS_DENIED,
    SLURM_AUTH_ERROR,
    SLURM_DB_CONNECTION,
    SlurmError,
    SlurmErrorEntry,
    complete_despite_its_status,
    needs_slurmdbd_admin,
    parse_errors,
    refuses_tokens_with_bare_error,
)
from exporter.auth import AuthError, Credentials, TokenSource, token_claims
from exporter.errors import EndpointFailure
from exporter.settings import Settings, tls_context

log = logging.getLogger(__name__)
T = TypeVar("T")

# httpcore reads a body 64 KB at a time, with some Python around every read: 15,000
# times for a 1 GB /jobs. Reads of up to 1 MB take ~0.3 s of CPU off such an answer.
# (A private attribute: without it, reads stay at httpcore's default.)
with contextlib.suppress(ImportError, AttributeError):
    from httpcore._sync.http11 import HTTP11Connection

    if getattr(HTTP11Connection, "READ_NUM_BYTES", 0) < 1 << 20:
        HTTP11Connection.READ_NUM_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    status: int
    seconds: float


class _TooSlow(Exception):
    """The answer was still coming in when --timeout ran out."""


class SlurmrestdClient:
    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._tokens = tokens
        self._timeout = settings.timeout
        socket = settings.unix_socket
        self.target = settings.slurmrestd_url
        if transport is None:
            transport = httpx.HTTPTransport(
                uds=socket,
                # no TLS over http:// or a UNIX socket: skip loading the CA bundle (~20 ms)
                verify=_verify(settings) if self.target.startswith("https:") else False,
                retries=0,
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            )
        self._http = httpx.Client(
            base_url="http://localhost" if socket else settings.slurmrestd_url,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout),
            # Never follow a redirect: the token must not travel to another host.
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "slurm-exporter"},
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> Answer:
        """GET path and return a 2xx answer whole; retry once with a renewed token if
        slurmrestd refuses the token."""
        t0 = time.perf_counter()
        status, body = self.fetch(path, _whole)
        return Answer(body, status, time.perf_counter() - t0)

    def fetch(
        self, path: str, sink: Callable[[int, Iterator[bytes]], T], *, accept_304: bool = False
    ) -> T:
        """GET path and hand a 2xx answer to `sink` (status, body in pieces as they arrive),
        returning what it returns: a large answer need never be whole in memory.

        Failures and the token retry are get()'s; what `sink` raises goes through (a
        transport failure while it reads is still classified here). With `accept_304`, a
        304 (asked with update_time, nothing changed) goes to `sink` too, with no body.
        """
        creds = self._credentials(path)
        try:
            return self._fetch_once(path, creds, sink, accept_304)
        except EndpointFailure as first:
            # the refused token goes along: of several endpoints refused at once, only
            # the first renews it (a single `scontrol token` run), the others reuse that
            if first.reason != "auth" or not self._tokens.renew(creds):
                raise
            # debug: a retry that fails is reported as the failure; one that works
            # shows in slurm_exporter_token_renewals_total
            log.debug("GET %s: token refused, retrying once with a renewed token", path)
            return self._fetch_once(path, self._credentials(path), sink, accept_304)

    def _credentials(self, path: str) -> Credentials:
        try:
            return self._tokens.credentials()
        except AuthError as e:
            raise EndpointFailure("auth", f"GET {path}: no usable token: {e}") from None

    def _fetch_once(
        self,
        path: str,
        creds: Credentials,
        sink: Callable[[int, Iterator[bytes]], T],
        accept_304: bool,
    ) -> T:
        deadline = time.perf_counter() + self._timeout
        try:
            with self._http.stream("GET", path, headers=creds.headers()) as resp:
                status = resp.status_code
                chunks = _until(resp.iter_bytes(), deadline)
                if 200 <= status < 300 or (accept_304 and status == 304):
                    return sink(status, chunks)
                body = b"".join(chunks)
        except (httpx.TimeoutException, _TooSlow):
            raise EndpointFailure(
                "timeout",
                f"GET {path}: no complete answer from slurmrestd at {self.target} within "
                f"{self._timeout:g} s; slurmrestd or slurmctld may be overloaded (check "
                "'sdiag'), or raise --timeout",
            ) from None
        except httpx.TransportError as e:
            raise EndpointFailure("connect", self._connect_message(path, e)) from None
        if complete_despite_its_status(path, status, body):
            return sink(status, iter((body,)))
        if creds.token:  # an answer may quote the request (a proxy echoing headers)
            body = _redact(body, creds.token)
        raise classify_error(path, status, body, self.target, acting_user(creds))

    def _connect_message(self, path: str, e: httpx.TransportError) -> str:
        cause = _root_cause(e)
        where = f"slurmrestd at {self.target}"
        if isinstance(cause, PermissionError) or getattr(cause, "errno", None) == errno.EACCES:
            return (
                f"GET {path}: permission denied on the socket of {where}: run the exporter "
                "as a user allowed to open it (socket owner/group/mode)"
            )
        if isinstance(cause, FileNotFoundError):
            return (
                f"GET {path}: {where}: the socket does not exist: is slurmrestd running "
                "with 'slurmrestd unix:/path', and is the path right?"
            )
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(e).lower():
            return (
                f"GET {path}: connection refused by {where}: is slurmrestd running and "
                "listening on that address and port (default :6820)? "
                "Check 'systemctl status slurmrestd' and --slurmrestd-url"
            )
        text = str(cause or e) or type(e).__name__
        if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
            return f"GET {path}: cannot resolve the host of {where}: {text}; check the DNS name"
        if "complete message body" in str(e):
            return (
                f"GET {path}: the connection to {where} broke mid-answer ({e}): slurmrestd "
                "restarted or crashed (check its log), or a proxy cut the answer short"
            )
        if isinstance(e, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return (
                f"GET {path}: {where} closed the connection without answering ({text}): "
                "slurmrestd restarted or crashed (check its log), or a proxy or firewall "
                "cut the connection"
            )
        return f"GET {path}: cannot reach {where}: {text}"


def acting_user(creds: Credentials) -> str | None:
    """The Slurm user the request acts as: X-SLURM-USER-NAME, else the token's `sun`."""
    if creds.user:
        return creds.user
    try:
        sun = token_claims(creds.token).get("sun") if creds.token else None
    except AuthError:  # not a JWT: slurmrestd says so itself
        return None
    return sun if isinstance(sun, str) and sun else None


def _whole(status: int, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    return status, b"".join(chunks)


def _until(chunks: Iterator[bytes], deadline: float) -> Iterator[bytes]:
    """The chunks, then _TooSlow once `deadline` (perf_counter time) has passed.

    httpx's read timeout bounds each read, not the answer: a body trickling in a few
    bytes at a time would hold the cycle forever.
    """
    for chunk in chunks:
        yield chunk
        if time.perf_counter() > deadline:
            raise _TooSlow


def classify_slurm_errors(
    path: str,
    status: int,
    errors: list[SlurmErrorEntry],
    text: str = "",
    envelope: bool = False,
    user: str | None = None,
) -> EndpointFailure | None:
    """The failure an answer's Slurm errors (or auth status) mean, whatever the status:
    `auth` for a refused token, `forbidden` for a user without the privilege, else
    `slurm_error`; None when there is none.

    `text` is the start of the body, quoted only when the body is not slurmrestd's
    JSON (`envelope`): Slurm's parsed errors are the detail, never its raw body. `user`:
    the Slurm user the request acted as, for the fix (None: unknown).
    """
    if _is_auth_failure(path, status, errors, text):
        quoted = "" if envelope else _one_line(text)
        seen = _describe(errors, names_only=True) or quoted or "no error details"
        return EndpointFailure(
            "auth",
            f"GET {path}: slurmrestd refused the token: it is missing, expired (or this "
            "host's clock is off from slurmrestd's by more than the token's lifespan), "
            "signed with another key than the cluster's AuthAltParameters=jwt_key, or "
            "X-SLURM-USER-NAME differs from its 'sun' claim. Fix the key file / user, or "
            f"get a fresh token{_ambiguous_2205(status, errors)} [HTTP {status}: {seen}]",
            status,
        )
    if needs_slurmdbd_admin(path) and any(e.error_number == SLURM_ACCESS_DENIED for e in errors):
        # not the token's fault: renewing it cannot help, and no other endpoint is refused
        return EndpointFailure("forbidden", _admin_needed(path, status, errors, user), status)
    if errors:
        return EndpointFailure(
            "slurm_error",
            f"GET {path}: HTTP {status}, Slurm reports: {_describe(errors)}; "
            f"{_down_hint(path, errors)}",
            status,
        )
    return None


def _down_hint(path: str, errors: list[SlurmErrorEntry]) -> str:
    """Which daemon to look at: slurmdbd for /slurmdb/ and for what slurmrestd got from
    slurmdbd (26.05's /partitions asks it too: "Slurmdb query failed",
    src/plugins/data_parser/v0.0.45/slurmdb_helpers.c:84 in slurm-26-05-3-1), else slurmctld."""
    if (
        path.startswith("/slurmdb/")
        or any(e.error_number == SLURM_DB_CONNECTION for e in errors)
        or any(e.description.startswith("Slurmdb") for e in errors)
    ):
        return (
            "if slurmdbd is down or unreachable from slurmrestd, check "
            "'sacctmgr list cluster' on the slurmrestd host"
        )
    return (
        "if slurmctld is down or unreachable from slurmrestd, check 'scontrol ping' on the "
        "slurmrestd host"
    )


def admin_fix(user: str | None) -> str:
    """The command that gives `user` what slurmdbd's statistics need."""
    return f"sacctmgr -i modify user where name={user or 'USER'} set adminlevel=Administrator"


def _admin_needed(
    path: str, status: int, errors: list[SlurmErrorEntry], user: str | None
) -> str:
    who = f"user {user!r}" if user else "the exporter's Slurm user"
    return (
        f"GET {path}: slurmdbd gives its statistics only to users with "
        f"AdminLevel=Administrator (Operator is not enough), and {who} is not one. Fix: "
        f"'{admin_fix(user)}', or --no-collector-slurmdbd "
        f"[HTTP {status}: {_describe(errors, names_only=True)}]"
    )


def slurm_error_failure(path: str, status: int, error: SlurmError) -> EndpointFailure:
    """The failure for Slurm's errors in a 2xx answer (the adapter's SlurmError)."""
    reported = classify_slurm_errors(path, status, error.errors)
    return reported or EndpointFailure("slurm_error", f"GET {path}: {error}", status)


def _one_line(text: str) -> str:
    """A quoted body on one line: a message is one line per problem."""
    return " ".join(text.split())


def classify_error(
    path: str, status: int, body: bytes, target: str = "", user: str | None = None
) -> EndpointFailure:
    """Turn a non-2xx answer into a failure reason and an actionable message."""
    errors = parse_errors(body)
    text = body[:200].decode("utf-8", "replace").strip()
    if status == 404 and path.startswith("/slurmdb/") and not errors:
        # slurmrestd binds /slurmdb/ only with its slurmdbd plugins loaded
        collector = "accounting" if "/jobs" in path else "slurmdbd"
        return EndpointFailure(
            "not_found",
            f"GET {path}: HTTP 404, slurmrestd serves no /slurmdb/ path: it runs without "
            "slurmdbd (slurm.conf AccountingStorageType=accounting_storage/slurmdbd) or "
            "without its slurmdbd plugins (slurmrestd -s: openapi/slurmdbd from 23.11, "
            f"dbv0.0.38 on 22.05). Fix either, or turn --collector-{collector} off",
            status,
        )
    if status == 404 and not _is_auth_failure(path, status, errors, text):
        return EndpointFailure(
            "not_found",
            f"GET {path}: HTTP 404, slurmrestd does not serve this path: wrong API version? "
            "(it will be discovered again; see 'slurm-exporter check' for the versions served)",
            status,
        )
    envelope = _is_slurmrestd_envelope(body)
    reported = classify_slurm_errors(path, status, errors, text, envelope, user)
    if reported is not None:
        return reported
    if status >= 500 and envelope:
        # what slurmrestd 24.11 answers on /partitions while slurmctld is down: 502 and
        # {"errors": [], "warnings": [], "meta": ...}, Slurm's own answer without details
        return EndpointFailure(
            "slurm_error",
            f"GET {path}: HTTP {status} from slurmrestd itself, without error details: it "
            "got no answer from slurmctld (down, restarting, or unreachable from the "
            "slurmrestd host); check 'scontrol ping' there",
            status,
        )
    if 300 <= status < 400:
        return EndpointFailure(
            "http_error",
            f"GET {path}: HTTP {status} redirect, not followed (the token must not leave "
            f"{target or 'slurmrestd'}): point --slurmrestd-url at slurmrestd itself",
            status,
        )
    detail = "(its JSON, without error details)" if envelope else _one_line(text)
    return EndpointFailure(
        "http_error",
        f"GET {path}: HTTP {status} from slurmrestd: {detail or '(empty body)'}; a proxy "
        "in between, or slurmrestd overloaded? Check slurmrestd's log",
        status,
    )


def _redact(body: bytes, token: str) -> bytes:
    """The body without the token, nor its signature alone (messages quote bodies)."""
    body = body.replace(token.encode(), b"<token>")
    signature = token.rsplit(".", 1)[-1].encode()
    if len(signature) >= 16:
        body = body.replace(signature, b"<token>")
    return body


class _EnvelopeKeys(msgspec.Struct):
    errors: msgspec.Raw = msgspec.Raw(b"")  # empty: the key is absent
    meta: msgspec.Raw = msgspec.Raw(b"")


_envelope_keys = msgspec.json.Decoder(_EnvelopeKeys)


def _is_slurmrestd_envelope(body: bytes) -> bool:
    """Whether the body is a JSON object in slurmrestd's envelope (`errors` or `meta`)."""
    try:
        keys = _envelope_keys.decode(body)
    except msgspec.DecodeError:
        return False
    return len(keys.errors) > 0 or len(keys.meta) > 0


def _ambiguous_2205(status: int, errors: list[SlurmErrorEntry]) -> str:
    """22.05 answers a refused token and an unreachable slurmctld alike: say both."""
    if status == 500 and errors and all(e.error_number == -1 for e in errors):
        return (
            ". Slurm 22.05 answers the same way when slurmctld is down: if the token is "
            "right, check 'scontrol ping' on the slurmrestd host"
        )
    return ""


def _is_auth_failure(path: str, status: int, errors: list[SlurmErrorEntry], text: str) -> bool:
    if status in (401, 403, 511):
        return True
    if any(e.error_number == SLURM_AUTH_ERROR for e in errors):
        return True
    if status == 500 and "authentication" in text.lower():
        return True  # 25.11: 500 "Authentication does not apply to request" without a token
    # 22.05 answers a bad or expired token with 500 and a bare "Unspecified error" (-1);
    # later releases answer other failures so (23.11-26.05.2: /nodes?update_time=)
    return (
        refuses_tokens_with_bare_error(path)
        and status == 500
        and bool(errors)
        and all(e.error_number == -1 for e in errors)
    )


def _describe(errors: list[SlurmErrorEntry], names_only: bool = False) -> str:
    """Slurm's errors, one line; `names_only` leaves out what differs per request
    ("Unable to query jobs"), so that a refused token reads the same everywhere."""
    parts: list[str] = []
    for e in errors[:3]:
        words = [w for w in (e.error, "" if names_only else e.description) if w]
        part = _one_line(f"{' / '.join(words)} (error {e.error_number})")
        if part not in parts:
            parts.append(part)
    return "; ".join(parts)


def _root_cause(e: BaseException) -> BaseException | None:
    """The first OSError down the chain of causes, else the last cause (None: no cause).
    A chain can loop (an exception raised again while it is handled): each is seen once."""
    seen, visited = e, {id(e)}
    while (nxt := seen.__cause__ or seen.__context__) is not None and id(nxt) not in visited:
        visited.add(id(nxt))
        seen = nxt
        if isinstance(seen, OSError):
            return seen
    return seen if seen is not e else None


def _verify(settings: Settings) -> bool | ssl.SSLContext:
    if settings.tls_insecure_skip_verify:
        return False
    if settings.tls_ca_file is not None:
        return tls_context(settings.tls_ca_file)  # checked at start; ValueError if gone since
    return True
