"""Errors raised by the adapter layer, and a best-effort reader of error answers.

Three kinds of failure matter to callers, who treat them differently:

* `DecodeError`: the body is not the JSON we expect (garbage, truncated, empty,
  a wrong type on a field we need). A bug or a proxy in the way; retrying the
  same request will not help.
* `SlurmError`: slurmrestd answered in its own format but filled `errors`
  (expired token, slurmctld down, unknown job ...). Carries Slurm's entries.
* `UnsupportedVersionError`: no adapter for an API version.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

# Keep messages short: bodies can be hundreds of megabytes and may carry
# user data; a log line must never quote more than a short prefix.
_MAX_MESSAGE = 300
_MAX_BODY_QUOTE = 80


class ApiError(Exception):
    """Base class of everything the adapter layer raises on purpose."""


class DecodeError(ApiError):
    """The body is not the JSON this adapter expects."""

    def __init__(self, message: str) -> None:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        super().__init__(message)
        self.message = message


class UnsupportedVersionError(ApiError, ValueError):
    """No adapter exists for this API version string."""


# Slurm's "Protocol authentication error" (ESLURM_PROTOCOL_AUTHENTICATION_ERROR):
# an expired, badly signed or mismatched token, answered with 500 (<= 24.05) or 511.
SLURM_AUTH_ERROR = 1007
# ESLURM_ACCESS_DENIED, "Access/permission denied": the token is good, its user lacks the
# privilege (slurmdbd's _get_stats(): src/slurmdbd/proc_req.c:3119-3132 in slurm-24-11-5-1)
SLURM_ACCESS_DENIED = 2002
# ESLURM_DB_CONNECTION, "Unable to connect to database": slurmrestd cannot reach slurmdbd
# (slurm/slurm_errno.h:350 and src/slurmrestd/openapi.c:1724-1727 in slurm-26-05-3-1; 7000
# in slurm-22-05-9-1 too)
SLURM_DB_CONNECTION = 7000
# ESLURM_REST_EMPTY_RESULT, "Nothing found with query": 22.05's /slurmdb/ takes an empty
# list for an error (db_query_list, src/plugins/openapi/dbv0.0.38/api.c:166-170 in
# slurm-22-05-9-1; slurm/slurm_errno.h:322-326, 9000 + 3)
SLURM_REST_EMPTY_RESULT = 9003
# SLURM_NO_CHANGE_IN_DATA: nothing changed since the update_time asked for (older
# slurmrestd report it as an error of /nodes rather than answering 304)
SLURM_NO_CHANGE_IN_DATA = 1900


class SlurmErrorEntry(msgspec.Struct, frozen=True):
    """One entry of slurmrestd's `errors` array."""

    error_number: int = 0
    error: str = ""
    description: str = ""
    source: str = ""

    def __str__(self) -> str:
        text = f"{self.error or 'error'} ({self.error_number})"
        if self.description:
            text += f": {self.description}"
        if self.source:
            text += f" [source: {self.source}]"
        return text


class SlurmError(ApiError):
    """slurmrestd answered with a non-empty `errors` array."""

    def __init__(self, errors: Sequence[SlurmErrorEntry]) -> None:
        self.errors: list[SlurmErrorEntry] = list(errors)
        count = len(self.errors)
        listed = "; ".join(str(e) for e in self.errors) or "(no details)"
        super().__init__(f"slurmrestd reported {count} error{'s' * (count != 1)}: {listed}")

    @property
    def error_numbers(self) -> tuple[int, ...]:
        return tuple(e.error_number for e in self.errors)


_JWT_LIKE = re.compile(rb"eyJ[A-Za-z0-9_=-]*(?:\.[A-Za-z0-9_=-]*){0,2}")


def describe_body(body: bytes) -> str:
    """A short, safe description of a body for error messages."""
    if not body:
        return "empty body"
    # an answer echoing the request (a proxy's error page) may quote the token: what
    # looks like a JWT, or the start of one, is never shown
    quoted = _JWT_LIKE.sub(b"<token>", body[:_MAX_BODY_QUOTE])
    more = "..." if len(body) > _MAX_BODY_QUOTE else ""
    return f"{len(body)} bytes, starting {quoted!r}{more}"


# --- best-effort reading of `errors` -------------------------------------------
# Error answers differ between generations only in what surrounds `errors`, and
# every field of an entry has been seen missing or null somewhere, so every
# field is optional here.


class _RawErrorEntry(msgspec.Struct):
    error_number: int | None = None
    errno: int | None = None  # 22.05 /nodes and /partitions spell error_number this way
    error: str | None = None
    description: str | None = None
    source: str | None = None

    def clean(self) -> SlurmErrorEntry:
        number = self.error_number if self.error_number is not None else self.errno
        return SlurmErrorEntry(
            error_number=number if number is not None else 0,
            error=self.error or "",
            description=self.description or "",
            source=self.source or "",
        )


class _ErrorsOnly(msgspec.Struct):
    errors: list[msgspec.Raw] | None = None


_errors_decoder = msgspec.json.Decoder(_ErrorsOnly)
_entry_decoder = msgspec.json.Decoder(_RawErrorEntry)


def entries_from_raw(raw_entries: Sequence[msgspec.Raw]) -> list[SlurmErrorEntry]:
    """Decode `errors` entries one by one, so one odd entry spoils nothing else.

    An entry that is not an object still counts: Slurm did report an error.
    """
    entries = []
    for raw in raw_entries:
        try:
            entries.append(_entry_decoder.decode(raw).clean())
        except msgspec.DecodeError:
            entries.append(SlurmErrorEntry(error="unreadable error entry"))
    return entries


def parse_errors(body: bytes) -> list[SlurmErrorEntry]:
    """The `errors` entries of any slurmrestd answer, whatever its HTTP status.

    Best effort: returns [] when the body is not JSON (e.g. the plain-text
    `Authentication failure` of a 401) or has no usable `errors` array.
    """
    try:
        parsed = _errors_decoder.decode(body)
    except msgspec.DecodeError:  # also covers ValidationError
        return []
    return entries_from_raw(parsed.errors or ())


_PATH_VERSION = re.compile(r"^/slurm(?:db)?/(v\d+\.\d+\.\d+)/")
# 22.05's API versions (exporter.api.v0036.VERSIONS), named here so that the client,
# below the adapters, need not import them
_BARE_ERROR_AUTH_VERSIONS = frozenset({"v0.0.36", "v0.0.37", "v0.0.38"})


def refuses_tokens_with_bare_error(path: str) -> bool:
    """Whether the API version of `path` answers a refused token with HTTP 500 and only
    error -1 ("Unspecified error"): 22.05's v0.0.36-38 do. Later ones say 401/511 or
    error 1007, and their 500 with error -1 is something else (the /nodes?update_time=
    bug of 23.11-26.05.2, see exporter.api.versions.update_time_usable)."""
    match = _PATH_VERSION.match(path)
    return match is not None and match.group(1) in _BARE_ERROR_AUTH_VERSIONS


_SLURMDBD_DIAG = re.compile(r"^/slurmdb/v\d+\.\d+\.\d+/diag/?(?:\?|$)")


def needs_slurmdbd_admin(path: str) -> bool:
    """Whether `path` is slurmdbd's statistics (/slurmdb/vX/diag), which slurmdbd gives
    only to root, SlurmUser and users with AdminLevel=Administrator, Operator not enough
    (_validate_super_user(): `assoc_mgr_get_admin_level(...) >= SLURMDB_ADMIN_SUPER_USER`,
    src/slurmdbd/proc_req.c:149-158 in slurm-24-11-5-1; the same check in 22.05.8,
    proc_req.c:3132, and 26.05.3, proc_req.c:3051). slurmrestd answers a refusal with
    HTTP 500 and error 2002 on every release (recorded: tests/fixtures/*-slurmdbd/
    slurmdb_v*_diag_non_admin_user.json, *_operator_user.json)."""
    return _SLURMDBD_DIAG.match(path) is not None


_DBV0036_DIAG = re.compile(r"^/slurmdb/v0\.0\.36/diag(?:\?|$)")


class _StatisticsAnswer(msgspec.Struct):
    errors: list[msgspec.Raw] | None = None
    statistics: msgspec.Raw = msgspec.Raw(b"")  # empty: the key is absent


_statistics_answer = msgspec.json.Decoder(_StatisticsAnswer)


def complete_despite_its_status(path: str, status: int, body: bytes) -> bool:
    """Whether an error status hides a complete answer: 22.05's openapi/dbv0.0.36 answers
    /slurmdb/v0.0.36/diag with HTTP 500 however well it went, its dump of the user list
    taking list_for_each()'s count for an error (`if (list_for_each(...))`,
    src/plugins/openapi/dbv0.0.36/parse.c:2527 in slurm-22-05-8-1, where v0.0.37 and
    v0.0.38 test `< 0`). With no error and the statistics, it is a good answer."""
    if status != 500 or _DBV0036_DIAG.match(path) is None:
        return False
    try:
        answer = _statistics_answer.decode(body)
    except msgspec.DecodeError:
        return False
    return not answer.errors and len(answer.statistics) > 0
