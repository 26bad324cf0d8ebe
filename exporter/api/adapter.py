"""The interface every API-generation adapter implements.

An adapter knows one generation's URLs and JSON shapes and returns the
normalised types of `exporter.api.model`. Parsing raises
`exporter.api.errors.DecodeError` for bodies that are not the expected JSON and
`exporter.api.errors.SlurmError` when the body's `errors` array is not empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, Protocol

from exporter.api.model import (
    AccountedJob,
    ControllerPing,
    Diag,
    Job,
    License,
    Node,
    Partition,
    Reservation,
    Response,
    Share,
)

Endpoint = Literal[
    "diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses",
    "accounting",
]
ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    "diag", "jobs", "nodes", "partitions", "ping", "shares", "reservations", "licenses",
    "accounting",
)


class Adapter(Protocol):
    @property
    def version(self) -> str:
        """The API version this adapter talks, e.g. "v0.0.45"."""
        ...

    def path(self, endpoint: str) -> str:
        """URL path of an endpoint in ENDPOINTS, e.g. "/slurm/v0.0.45/jobs/"."""
        ...

    def serves(self, endpoint: str) -> bool:
        """Whether this API version has the endpoint (/shares: v0.0.40 on; 22.05's
        v0.0.36 has no /reservations, v0.0.36 and v0.0.37 no /licenses)."""
        ...

    def parse_diag(self, body: bytes) -> Response[Diag]: ...

    def parse_jobs(self, body: bytes) -> Response[list[Job]]: ...

    def parse_jobs_stream(self, chunks: Iterable[bytes]) -> Response[list[Job]]:
        """parse_jobs of the body given in pieces, decoded as they come (see
        decoding.decode_array_stream): the answer is never whole in memory."""
        ...

    def parse_nodes(self, body: bytes) -> Response[list[Node]]: ...

    def parse_nodes_stream(self, chunks: Iterable[bytes]) -> Response[list[Node]]: ...

    def parse_partitions(self, body: bytes) -> Response[list[Partition]]: ...

    def parse_ping(self, body: bytes) -> Response[list[ControllerPing]]: ...

    def parse_shares(self, body: bytes) -> Response[list[Share]]: ...

    def parse_shares_stream(self, chunks: Iterable[bytes]) -> Response[list[Share]]: ...

    def parse_reservations(self, body: bytes) -> Response[list[Reservation]]: ...

    def parse_licenses(self, body: bytes) -> Response[list[License]]: ...

    # --- accounting (issue 12): slurmdbd's /slurmdb/vX/jobs ---------------------------
    def accounting_query(self, start: int, end: int, steps: bool) -> str:
        """The query (without "?") asking slurmdbd for the job records with an event in
        [start, end] (Unix times): those that ran then or ended then, pending ones
        left out; their steps only when `steps`."""
        ...

    def parse_accounting_jobs(self, body: bytes) -> Response[list[AccountedJob]]: ...


def check_endpoint(endpoint: str) -> Endpoint:
    """The endpoint, checked; ValueError for anything outside ENDPOINTS."""
    for known in ENDPOINTS:
        if endpoint == known:
            return known
    raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)}")
