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
from exporter.api.adapter import check_endpoint
from exporter.api.decoding import (
    Envelope,
    Num,
    decode,
    decode_array_stream,
    integer,
    number,
    optional_int,
)
from exporter.api.jobrecord import JobMemo, RawJob, to_job
from exporter.api.model import (
    ControllerPing,
    Diag,
    Job,
    Meta,
    Node,
    Partition,
    Response,
)
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


class _Node(msgspec.Struct, gc=False):
    name: str
    state: str | None = None  # lower-case base state
    state_flags: tuple[str, ...] | None = None  # v0.0.37+
    partitions: tuple[str, ...] | None = None  # v0.0.37+
    cpus: Num = None
    alloc_cpus: Num = None  # v0.0.37+
    real_memory: Num = None  # MiB
    alloc_memory: Num = None  # MiB, v0.0.37+
    free_memory: Num = None  # MiB
    cpu_load: Num = None  # load x 100
    gres: str | None = None
    gres_used: str | None = None
    reason: str | None = None


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


class _JobsBody(_Body, kw_only=True):
    jobs: list[RawJob]


class _NodesBody(_Body, kw_only=True):
    nodes: list[_Node]


class _PartitionsBody(_Body, kw_only=True):
    partitions: list[_Partition]


class _PingBody(_Body, kw_only=True):
    pings: list[_Ping]


# Built once: a msgspec Decoder compiles its type and is reused for every body.
_diag_decoder = msgspec.json.Decoder(_DiagBody)
_jobs_decoder = msgspec.json.Decoder(_JobsBody)
_nodes_decoder = msgspec.json.Decoder(_NodesBody)
_partitions_decoder = msgspec.json.Decoder(_PartitionsBody)
_ping_decoder = msgspec.json.Decoder(_PingBody)
# for answers decoded while they arrive: batches of elements
_job_batch_decoder = msgspec.json.Decoder(list[RawJob])
_node_batch_decoder = msgspec.json.Decoder(list[_Node])


def _all_jobs(body: _JobsBody) -> list[RawJob]:
    return body.jobs


def _all_nodes(body: _NodesBody) -> list[_Node]:
    return body.nodes


# --- conversion -----------------------------------------------------------------


class _NodeMemo:
    """Per-answer memo of node state words and GRES strings (see jobrecord.to_job)."""

    def __init__(self) -> None:
        self.states: dict[object, tuple[str, tuple[str, ...]]] = {}
        self.gres: dict[str | None, dict[str, int]] = {}

    def state(self, base: str | None, flags: tuple[str, ...] | None) -> tuple[str, tuple[str, ...]]:
        key = (base, flags)
        found = self.states.get(key)
        if found is None:
            words = [base or "", *(flags or ())]
            found = self.states[key] = (
                norm.node_state(words),
                tuple(w.upper() for w in words if w),
            )
        return found

    def gpus(self, gres: str | None) -> dict[str, int]:
        found = self.gres.get(gres)
        if found is None:
            found = self.gres[gres] = norm.gres_gpus(gres)
        return found


def _node(raw: _Node, memo: _NodeMemo) -> Node:
    state, flags = memo.state(raw.state, raw.state_flags)
    free = optional_int(raw.free_memory)
    return Node(
        name=raw.name,
        state=state,
        flags=flags,
        partitions=raw.partitions or (),
        cpus=integer(raw.cpus),
        alloc_cpus=integer(raw.alloc_cpus),
        real_memory_bytes=norm.mib_to_bytes(optional_int(raw.real_memory)),
        alloc_memory_bytes=norm.mib_to_bytes(optional_int(raw.alloc_memory)),
        free_memory_bytes=None if free is None or free < 0 else norm.mib_to_bytes(free),
        cpu_load=float(number(raw.cpu_load) or 0) / 100,
        gpus_total=memo.gpus(raw.gres),
        gpus_alloc=memo.gpus(raw.gres_used),
        reason=raw.reason or "",
    )


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
        return f"/slurm/{self._version}/{check_endpoint(endpoint)}"

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
        memo: JobMemo = {}
        jobs: list[Job] = []

        def add(batch: list[RawJob]) -> None:
            jobs.extend([to_job(j, memo) for j in batch])

        parsed = decode_array_stream(
            chunks, "jobs", _job_batch_decoder, _jobs_decoder, _all_jobs, add, self._what("jobs")
        )
        return Response(self._meta(parsed.meta), jobs, parsed.warning_texts())

    def parse_nodes(self, body: bytes) -> Response[list[Node]]:
        return self.parse_nodes_stream((body,))

    def parse_nodes_stream(self, chunks: Iterable[bytes]) -> Response[list[Node]]:
        memo = _NodeMemo()
        nodes: list[Node] = []

        def add(batch: list[_Node]) -> None:
            nodes.extend([_node(n, memo) for n in batch])

        parsed = decode_array_stream(
            chunks, "nodes", _node_batch_decoder, _nodes_decoder, _all_nodes, add,
            self._what("nodes"),
        )
        return Response(self._meta(parsed.meta), nodes, parsed.warning_texts())

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
