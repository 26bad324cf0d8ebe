"""Adapter for the Slurm 22.05 generation: API v0.0.36, v0.0.37, v0.0.38.

What sets this generation apart (see tests/fixtures/slurm-22.05*/README.md):
paths without trailing slash; `meta.Slurm` (capital S) and the version only in
`meta.plugin.type` ("openapi/v0.0.38"); `job_state` is the word squeue prints;
node `state` is the lower-case base state with flags in `state_flags` (none at
all in v0.0.36, which also lacks node partitions and allocations); plain
numbers, with null, -1 or NO_VAL for "unset/unlimited"; ping `{ping: "UP"}`.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from exporter.api import normalise as norm
from exporter.api.acctrecord import RawAccountedJob, state_query, to_accounted_job
from exporter.api.adapter import SLURMDB_PATHS, check_endpoint
from exporter.api.dbdiag import DbdStatistics, to_slurmdbd_diag
from exporter.api.decoding import (
    Envelope,
    Num,
    decode,
    integer,
    optional_int,
)
from exporter.api.errors import SLURM_REST_EMPTY_RESULT, DecodeError
from exporter.api.jobrecord import RawJob
from exporter.api.model import (
    AccountedJob,
    ControllerPing,
    Diag,
    Job,
    License,
    Meta,
    Node,
    Partition,
    Reservation,
    Response,
    Share,
    SlurmdbdDiag,
)
from exporter.api.noderecord import RawNode
from exporter.api.records import stream_jobs, stream_nodes
from exporter.api.resvlic import RawLicense, RawReservation, license_, reservation
from exporter.api.sdiag import Statistics, to_diag

VERSIONS = ("v0.0.36", "v0.0.37", "v0.0.38")


# --- wire types: only the fields we read ------------------------------------------


class _Plugin(msgspec.Struct, gc=False):
    type: str | None = None


class _Release(msgspec.Struct, gc=False):
    release: str | None = None


class _Meta(msgspec.Struct, gc=False):
    plugin: _Plugin | None = None
    slurm: _Release | None = msgspec.field(default=None, name="Slurm")


class _Partition(msgspec.Struct, gc=False):
    name: str
    state: str | None = None  # v0.0.37+; v0.0.36 does not say
    flags: list[str] | None = None  # ["default"] on the default partition
    total_cpus: Num = None
    total_nodes: Num = None
    nodes: str | None = None
    max_time_limit: Num = None  # minutes; -1 / null = unlimited


class _Ping(msgspec.Struct, gc=False):
    hostname: str | None = None
    ping: str | None = None  # "UP" / "DOWN"
    mode: str | None = None


class _Body(Envelope, kw_only=True):
    meta: _Meta | None = None


class _DiagBody(_Body, kw_only=True):
    statistics: Statistics


class _DbdDiagBody(_Body, kw_only=True):
    statistics: DbdStatistics


class _JobsBody(_Body, kw_only=True):
    jobs: list[RawJob]


class _NodesBody(_Body, kw_only=True):
    nodes: list[RawNode]


class _PartitionsBody(_Body, kw_only=True):
    partitions: list[_Partition]


class _PingBody(_Body, kw_only=True):
    pings: list[_Ping]


class _ReservationsBody(_Body, kw_only=True):
    reservations: list[RawReservation]


class _LicensesBody(_Body, kw_only=True):
    licenses: list[RawLicense]


# Built once: a msgspec Decoder compiles its type and is reused for every body.
_diag_decoder = msgspec.json.Decoder(_DiagBody)
_dbd_diag_decoder = msgspec.json.Decoder(_DbdDiagBody)
_jobs_decoder = msgspec.json.Decoder(_JobsBody)
_nodes_decoder = msgspec.json.Decoder(_NodesBody)
_partitions_decoder = msgspec.json.Decoder(_PartitionsBody)
_ping_decoder = msgspec.json.Decoder(_PingBody)
_reservations_decoder = msgspec.json.Decoder(_ReservationsBody)
_licenses_decoder = msgspec.json.Decoder(_LicensesBody)


class _AccountingJobsBody(_Body, kw_only=True):
    jobs: list[RawAccountedJob]


_accounting_jobs_decoder = msgspec.json.Decoder(_AccountingJobsBody)


# --- conversion -----------------------------------------------------------------


def _partition(raw: _Partition) -> Partition:
    minutes = optional_int(raw.max_time_limit)
    return Partition(
        name=raw.name,
        state=(raw.state or "unknown").lower(),
        total_cpus=integer(raw.total_cpus),
        total_nodes=integer(raw.total_nodes),
        nodes=raw.nodes or "",
        max_time_seconds=None if minutes is None or minutes < 0 else float(minutes * 60),
        is_default=any(f.upper() == "DEFAULT" for f in raw.flags or ()),
    )


def _ping(raw: _Ping) -> ControllerPing:
    return ControllerPing(
        hostname=raw.hostname or "",
        responding=(raw.ping or "").upper() == "UP",
        latency_seconds=None,  # 22.05 does not measure it
        mode=raw.mode or "",
    )


class V0036Adapter:
    """Talks v0.0.36, v0.0.37 or v0.0.38 (Slurm 22.05; also served by 23.02)."""

    def __init__(self, version: str) -> None:
        if version not in VERSIONS:
            raise ValueError(f"{version} is not one of {', '.join(VERSIONS)}")
        self._version = version

    @property
    def version(self) -> str:
        return self._version

    def __repr__(self) -> str:
        return f"V0036Adapter({self._version!r})"

    def path(self, endpoint: str) -> str:
        if check_endpoint(endpoint) in SLURMDB_PATHS:  # openapi/dbv0.0.3x: no slash either
            return f"/slurmdb/{self._version}/{SLURMDB_PATHS[endpoint]}"
        return f"/slurm/{self._version}/{endpoint}"

    def _meta(self, meta: _Meta | None) -> Meta:
        plugin_type = meta.plugin.type if meta and meta.plugin else None
        release = meta.slurm.release if meta and meta.slurm else None
        return Meta(
            api_version=norm.version_from_plugin(plugin_type) or self._version,
            slurm_release=release or "",
            cluster="",  # 22.05 does not name the cluster in meta
        )

    def _what(self, endpoint: str) -> str:
        return f"{self._version} /{endpoint}"

    def parse_diag(self, body: bytes) -> Response[Diag]:
        parsed = decode(_diag_decoder, body, self._what("diag"))
        return Response(self._meta(parsed.meta), to_diag(parsed.statistics), parsed.warning_texts())

    def parse_jobs(self, body: bytes) -> Response[list[Job]]:
        # one chunk: the streaming decoder gives the same data and errors as a whole decode
        return self.parse_jobs_stream((body,))

    def parse_jobs_stream(self, chunks: Iterable[bytes]) -> Response[list[Job]]:
        parsed, jobs = stream_jobs(chunks, _jobs_decoder, self._what("jobs"))
        return Response(self._meta(parsed.meta), jobs, parsed.warning_texts())

    def parse_nodes(self, body: bytes) -> Response[list[Node]]:
        return self.parse_nodes_stream((body,))

    def parse_nodes_stream(self, chunks: Iterable[bytes]) -> Response[list[Node]]:
        parsed, nodes = stream_nodes(chunks, _nodes_decoder, self._what("nodes"))
        meta = self._meta(parsed.meta)
        return Response(meta, norm.as_released(nodes, meta.slurm_release), parsed.warning_texts())

    def parse_partitions(self, body: bytes) -> Response[list[Partition]]:
        parsed = decode(_partitions_decoder, body, self._what("partitions"))
        return Response(
            self._meta(parsed.meta),
            [_partition(p) for p in parsed.partitions],
            parsed.warning_texts(),
        )

    def parse_ping(self, body: bytes) -> Response[list[ControllerPing]]:
        parsed = decode(_ping_decoder, body, self._what("ping"))
        return Response(
            self._meta(parsed.meta), [_ping(p) for p in parsed.pings], parsed.warning_texts()
        )

    def parse_shares(self, body: bytes) -> Response[list[Share]]:
        raise DecodeError(f"{self._version} has no /shares (Slurm 23.11, v0.0.40, on)")

    def parse_shares_stream(self, chunks: Iterable[bytes]) -> Response[list[Share]]:
        return self.parse_shares(b"")

    # --- reservations and licenses (issue 11) ---------------------------------------
    def serves(self, endpoint: str) -> bool:
        # 22.05's openapi/v0.0.36 binds neither; v0.0.37 binds /reservations
        # (src/plugins/openapi/v0.0.37/reservations.c), only v0.0.38 /licenses too
        # (src/plugins/openapi/v0.0.38/diag.c:327, at tag slurm-22-05-8-1)
        if endpoint == "shares":  # came with the data_parser generation (v0.0.40, 23.11)
            return False
        if endpoint == "reservations":
            return self._version >= "v0.0.37"
        if endpoint == "licenses":
            return self._version >= "v0.0.38"
        return True

    def parse_reservations(self, body: bytes) -> Response[list[Reservation]]:
        parsed = decode(_reservations_decoder, body, self._what("reservations"))
        return Response(
            self._meta(parsed.meta),
            [reservation(r) for r in parsed.reservations],
            parsed.warning_texts(),
        )

    def parse_licenses(self, body: bytes) -> Response[list[License]]:
        parsed = decode(_licenses_decoder, body, self._what("licenses"))
        return Response(
            self._meta(parsed.meta), [license_(x) for x in parsed.licenses], parsed.warning_texts()
        )

    def parse_slurmdbd(self, body: bytes) -> Response[SlurmdbdDiag]:
        parsed = decode(_dbd_diag_decoder, body, self._what("slurmdb/diag"))
        return Response(
            self._meta(parsed.meta), to_slurmdbd_diag(parsed.statistics), parsed.warning_texts()
        )

    # --- accounting (issue 12) ----------------------------------------------------------
    def accounting_query(self, start: int, end: int, steps: bool) -> str:
        # start_time/end_time go through parse_time(), which takes "uts<Unix time>"
        # (src/common/parse_time.c:421-428; dbv0.0.38/jobs.c:183,203 at slurm-22-05-8-1);
        # the flags default to JOBCOND_FLAG_DUP | JOBCOND_FLAG_NO_TRUNC (jobs.c:552) and
        # skip_steps adds JOBCOND_FLAG_NO_STEP to them (jobs.c:203-205,318-321)
        query = [
            f"start_time=uts{start}",
            f"end_time=uts{end}",
            state_query(
                numbers=self._version < "v0.0.38", requeued=self._version < "v0.0.38"
            ),
        ]
        if not steps:
            query.append("skip_steps=true")
        return "&".join(query)

    def parse_accounting_jobs(self, body: bytes) -> Response[list[AccountedJob]]:
        parsed = decode(
            _accounting_jobs_decoder, body, self._what("slurmdb/jobs"),
            not_errors=frozenset({SLURM_REST_EMPTY_RESULT}),  # a window without jobs
        )
        return Response(
            self._meta(parsed.meta),
            [to_accounted_job(j) for j in parsed.jobs],
            parsed.warning_texts(),
        )
