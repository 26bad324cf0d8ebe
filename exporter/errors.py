"""Why an endpoint failed: a small, fixed set of reasons (the `reason` label)."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "connect",  # no connection: daemon down, wrong host/port, socket missing or forbidden, DNS
    "timeout",  # no (complete) answer within --timeout
    "auth",  # token missing, expired, badly signed, or refused; or no token could be made
    "forbidden",  # the token is good, its user lacks a privilege (slurmdbd's /diag: Admin)
    "not_found",  # 404: wrong API version or path
    "http_error",  # any other non-2xx answer without Slurm error details
    "decode",  # a 2xx answer whose body is not the JSON we expect
    "slurm_error",  # Slurm reported errors (the `errors` array), e.g. slurmctld unreachable
]
REASONS: tuple[Reason, ...] = (
    "connect",
    "timeout",
    "auth",
    "forbidden",
    "not_found",
    "http_error",
    "decode",
    "slurm_error",
)


class EndpointFailure(Exception):
    """One failed call: the reason, and a message that names the cause and the fix."""

    def __init__(self, reason: Reason, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.status = status
