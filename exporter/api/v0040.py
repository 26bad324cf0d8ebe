"""Adapter for the data_parser generation: API v0.0.40 and newer (Slurm 23.11+).

What sets this generation apart (see tests/fixtures/slurm-24.11*, -26.05*):
collection paths end in `/`; `meta.slurm` with the cluster name and the
version in `meta.plugin.data_parser`; job and node states are lists of base and
flag words; numbers are `{set, infinite, number}`. Within the generation:
v0.0.42 ping adds `responding`/`primary`, v0.0.45 drops `pinged` and `mode`;
partition `flags` (hence DEFAULT) exist only from v0.0.45. Versions newer than
v0.0.45 are parsed the same way: fields we read have stayed put since v0.0.40.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

from exporter.api import normalise as norm
from exporter.api.acctrecord import RawAccountedJob, state_query, to_accounted_job
from exporter.api.adapter import check_endpoint
from exporter.api.decoding import (
    Envelope,
    Num,
    decode,
    integer,
    number,
    optional_int,
)
from exporter.api.errors import SLURM_AUTH_ERROR, SlurmError, SlurmErrorEntry
from exporter.api.jobrecord import RawJob, state_words
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
)
from exporter.api.noderecord import RawNode
from exporter.api.records import SharesList, stream_jobs, stream_nodes, stream_shares
from exporter.api.resvlic import RawLicense, RawReservation, license_, reservation
from exporter.api.sdiag import Statistics, to_diag

# --- wire types: only the fields we read ------------------------------------------


class _Plugin(msgspec.Struct, gc=False):
    data_parser: str | None = None


class _SlurmInfo(msgspec.Struct, gc=False):
    release: str | None = None
    cluster: str | None = None


class _Meta(msgspec.Struct, gc=False):
    plugin: _Plugin | None = None
    slurm: _SlurmInfo | None = None


class _PartitionNodes(msgspec.Struct, gc=False):
    configured: str | None = None
    total: Num = None


class _PartitionCpus(msgspec.Struct, gc=False):
    total: Num = None


class _PartitionMaximums(msgspec.Struct, gc=False):
    time: Num = None  # minutes


class _PartitionState(msgspec.Struct, gc=False):
    state: list[str] | str | None = None


class _Partition(msgspec.Struct, gc=False):
    name: str
    partition: _PartitionState | None = None
    nodes: _PartitionNodes | None = None
    cpus: _PartitionCpus | None = None
    maximums: _PartitionMaximums | None = None
    flags: list[str] | None = None  # v0.0.45+: ["DEFAULT"]


class _Ping(msgspec.Struct, gc=False):
    hostname: str | None = None
    pinged: str | None = None  # "UP"/"DOWN", up to v0.0.44
    responding: bool | None = None  # v0.0.42+
    latency: Num = None  # microseconds
    mode: str | None = None  # up to v0.0.44
    primary: bool | None = None  # v0.0.42+
    status: str | None = None  # v0.0.45: "No error", or why the ping failed


class _Body(Envelope, kw_only=True):
    meta: _Meta | None = None
    last_update: Num = None  # unix time (jobs, nodes, partitions)


class _DiagBody(_Body, kw_only=True):
    statistics: Statistics


class _JobsBody(_Body, kw_only=True):
    jobs: list[RawJob]


class _NodesBody(_Body, kw_only=True):
    nodes: list[RawNode]


class _PartitionsBody(_Body, kw_only=True):
    partitions: list[_Partition]


class _PingBody(_Body, kw_only=True):
    pings: list[_Ping]


class _SharesBody(_Body, kw_only=True):
    shares: SharesList | None = None


class _ReservationsBody(_Body, kw_only=True):
    reservations: list[RawReservation]


class _LicensesBody(_Body, kw_only=True):
    licenses: list[RawLicense]


# Built once: a msgspec Decoder compiles its type and is reused for every body.
_diag_decoder = msgspec.json.Decoder(_DiagBody)
_jobs_decoder = msgspec.json.Decoder(_JobsBody)
_nodes_decoder = msgspec.json.Decoder(_NodesBody)
_partitions_decoder = msgspec.json.Decoder(_PartitionsBody)
_ping_decoder = msgspec.json.Decoder(_PingBody)
_shares_decoder = msgspec.json.Decoder(_SharesBody)
_reservations_decoder = msgspec.json.Decoder(_ReservationsBody)
_licenses_decoder = msgspec.json.Decoder(_LicensesBody)


class _AccountingJobsBody(_Body, kw_only=True):
    jobs: list[RawAccountedJob]


_accounting_jobs_decoder = msgspec.json.Decoder(_AccountingJobsBody)

_NO_JOB_CHANGES = "No job changes since update_time"
T = TypeVar("T")


# --- conversion -----------------------------------------------------------------


def _partition(raw: _Partition) -> Partition:
    states = state_words(raw.partition.state if raw.partition else None)
    minutes = optional_int(raw.maximums.time if raw.maximums else None)
    return Partition(
        name=raw.name,
        state=states[0].lower() if states else "unknown",
        total_cpus=integer(raw.cpus.total if raw.cpus else None),
        total_nodes=integer(raw.nodes.total if raw.nodes else None),
        nodes=(raw.nodes.configured if raw.nodes else None) or "",
        max_time_seconds=None if minutes is None or minutes < 0 else float(minutes * 60),
        # v0.0.40-v0.0.44 do not say which partition is the default.
        is_default=any(f.upper() == "DEFAULT" for f in raw.flags or ()),
    )


def _ping_mode(raw: _Ping, index: int, count: int) -> str:
    if raw.mode:
        return raw.mode
    # v0.0.45 only says primary yes/no. Up to v0.0.44 slurmrestd named the
    # controller at offset i (the list order) "primary" for 0, "backup" when
    # there are exactly two, else "backup<i>" (data_parser
    # DUMP_FUNC(CONTROLLER_PING_MODE)); rebuild that so labels do not change
    # when a site moves to v0.0.45.
    primary = raw.primary if raw.primary is not None else index == 0
    if primary:
        return "primary"
    return "backup" if count == 2 else f"backup{index}"


def _raise_if_token_refused(pings: list[_Ping]) -> None:
    """A refused token makes ping answer 200 with the controller "not responding" and
    status "Protocol authentication error": that is our token's fault, not slurmctld's."""
    for p in pings:
        if p.status and "authentication" in p.status.lower():
            raise SlurmError(
                [
                    SlurmErrorEntry(
                        error_number=SLURM_AUTH_ERROR,
                        error=p.status,
                        description=f"ping of {p.hostname or 'slurmctld'}",
                        source="ping",
                    )
                ]
            )


def _ping(raw: _Ping, index: int, count: int) -> ControllerPing:
    if raw.responding is not None:
        responding = raw.responding
    else:
        responding = (raw.pinged or "").upper() == "UP"
    latency = number(raw.latency)
    return ControllerPing(
        hostname=raw.hostname or "",
        responding=responding,
        latency_seconds=None if latency is None else norm.usec_to_seconds(latency),
        mode=_ping_mode(raw, index, count),
    )


class V0040Adapter:
    """Talks v0.0.40 and any newer version (Slurm 23.11 onwards)."""

    def __init__(self, version: str) -> None:
        self._version = version

    @property
    def version(self) -> str:
        return self._version

    def __repr__(self) -> str:
        return f"V0040Adapter({self._version!r})"

    def path(self, endpoint: str) -> str:
        # Collections end in "/" in this generation, but for /shares (slurmrestd's
        # openapi/slurmctld registers "/slurm/{data_parser}/shares" without one)
        if check_endpoint(endpoint) == "accounting":
            return f"/slurmdb/{self._version}/jobs/"
        slash = "" if endpoint == "shares" else "/"
        return f"/slurm/{self._version}/{endpoint}{slash}"

    def serves(self, endpoint: str) -> bool:
        return True  # every endpoint of ours, /reservations/ and /licenses/ included

    def _meta(self, meta: _Meta | None) -> Meta:
        parser = meta.plugin.data_parser if meta and meta.plugin else None
        slurm = meta.slurm if meta else None
        return Meta(
            api_version=norm.version_from_plugin(parser) or self._version,
            slurm_release=(slurm.release if slurm else None) or "",
            cluster=(slurm.cluster if slurm else None) or "",
        )

    def _response(self, parsed: _JobsBody | _NodesBody, data: list[T]) -> Response[list[T]]:
        """Jobs' or nodes' answer, with its last_update; `unchanged` when jobs answered
        an update_time with nothing (slurmrestd's jobs.c: no jobs, and this warning)."""
        warnings = parsed.warning_texts()
        unchanged = not data and any(w.startswith(_NO_JOB_CHANGES) for w in warnings)
        return Response(
            self._meta(parsed.meta),
            data,
            warnings,
            last_update=optional_int(parsed.last_update),
            unchanged=unchanged,
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
        return self._response(parsed, jobs)

    def parse_nodes(self, body: bytes) -> Response[list[Node]]:
        return self.parse_nodes_stream((body,))

    def parse_nodes_stream(self, chunks: Iterable[bytes]) -> Response[list[Node]]:
        parsed, nodes = stream_nodes(chunks, _nodes_decoder, self._what("nodes"))
        release = self._meta(parsed.meta).slurm_release
        return self._response(parsed, norm.as_released(nodes, release))

    def parse_partitions(self, body: bytes) -> Response[list[Partition]]:
        parsed = decode(_partitions_decoder, body, self._what("partitions"))
        return Response(
            self._meta(parsed.meta),
            [_partition(p) for p in parsed.partitions],
            parsed.warning_texts(),
        )

    def parse_ping(self, body: bytes) -> Response[list[ControllerPing]]:
        parsed = decode(_ping_decoder, body, self._what("ping"))
        _raise_if_token_refused(parsed.pings)
        count = len(parsed.pings)
        pings = [_ping(p, i, count) for i, p in enumerate(parsed.pings)]
        return Response(self._meta(parsed.meta), pings, parsed.warning_texts())

    def parse_shares(self, body: bytes) -> Response[list[Share]]:
        return self.parse_shares_stream((body,))

    def parse_shares_stream(self, chunks: Iterable[bytes]) -> Response[list[Share]]:
        parsed, shares = stream_shares(chunks, _shares_decoder, self._what("shares"))
        return Response(self._meta(parsed.meta), shares, parsed.warning_texts())

    def parse_reservations(self, body: bytes) -> Response[list[Reservation]]:
        # last_update is left out on purpose: no ?update_time= for this small answer,
        # whose metrics join /nodes' node states anyway
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

    # --- accounting (issue 12) ----------------------------------------------------------
    def accounting_query(self, start: int, end: int, steps: bool) -> str:
        # start_time/end_time: TIMESTAMP (data_parser parsers.c _parse_timestamp()). From
        # v0.0.42 a string of digits is read as a number; v0.0.40 and v0.0.41 hand every
        # string to parse_time() (v0.0.40/parsers.c _parse_timestamp at slurm-24-11-5-1;
        # 24.11 lab: "Parsing of 1796071872 for timestamp failed"), which takes
        # "uts<Unix time>" (src/common/parse_time.c:423): that, for every version.
        # The flags are each a key; once one is
        # given, slurmrestd no longer adds its defaults JOBCOND_FLAG_DUP |
        # JOBCOND_FLAG_NO_TRUNC (src/slurmrestd/plugins/openapi/slurmdbd/jobs.c:92-94):
        # both are asked for by name, whether skip_steps is sent or not
        query = [
            f"start_time=uts{start}",
            f"end_time=uts{end}",
            state_query(repeat=True),
            "show_duplicates=true",
            "disable_truncate_usage_time=true",
        ]
        if not steps:
            query.append("skip_steps=true")
        return "&".join(query)

    def parse_accounting_jobs(self, body: bytes) -> Response[list[AccountedJob]]:
        parsed = decode(_accounting_jobs_decoder, body, self._what("slurmdb/jobs"))
        return Response(
            self._meta(parsed.meta),
            [to_accounted_job(j) for j in parsed.jobs],
            parsed.warning_texts(),
        )
