"""The big arrays of `/jobs` and `/nodes`, decoded while they arrive: one copy for every
API generation (the elements' fields we read have the same names and shapes once
decoded; see jobrecord.py and noderecord.py), whatever envelope the generation wraps
them in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar, cast

import msgspec

from exporter.api.decoding import Envelope, decode_array_stream
from exporter.api.jobrecord import JobMemo, RawJob, to_job
from exporter.api.model import Job, Node, Share
from exporter.api.noderecord import NodeMemo, RawNode, to_node
from exporter.api.sharerecord import RawShare, quote_specials, to_share


class JobsBody(Protocol):
    jobs: list[RawJob]


class NodesBody(Protocol):
    nodes: list[RawNode]


# an answer's envelope: each generation's own, with a `jobs` or `nodes` list
E = TypeVar("E", bound=Envelope)

# for answers decoded while they arrive: batches of elements
_job_batch_decoder = msgspec.json.Decoder(list[RawJob])
_node_batch_decoder = msgspec.json.Decoder(list[RawNode])
_share_batch_decoder = msgspec.json.Decoder(list[RawShare])


def _all_jobs(body: Envelope) -> list[RawJob]:
    return cast(JobsBody, body).jobs


def _all_nodes(body: Envelope) -> list[RawNode]:
    return cast(NodesBody, body).nodes


def stream_jobs(
    chunks: Iterable[bytes], whole: msgspec.json.Decoder[E], what: str
) -> tuple[E, list[Job]]:
    """The answer's envelope (decoded by `whole`, its array emptied) and its jobs;
    `whole` decodes a JobsBody."""
    memo: JobMemo = {}
    jobs: list[Job] = []

    def add(batch: list[RawJob]) -> None:
        jobs.extend([to_job(j, memo) for j in batch])

    envelope = decode_array_stream(
        chunks, "jobs", _job_batch_decoder, whole, _all_jobs, add, what
    )
    return envelope, jobs


def stream_nodes(
    chunks: Iterable[bytes], whole: msgspec.json.Decoder[E], what: str
) -> tuple[E, list[Node]]:
    """The answer's envelope (decoded by `whole`, its array emptied) and its nodes;
    `whole` decodes a NodesBody."""
    memo = NodeMemo()
    nodes: list[Node] = []

    def add(batch: list[RawNode]) -> None:
        nodes.extend([to_node(n, memo) for n in batch])

    envelope = decode_array_stream(
        chunks, "nodes", _node_batch_decoder, whole, _all_nodes, add, what
    )
    return envelope, nodes


class SharesList(msgspec.Struct, gc=False):
    shares: list[RawShare] = msgspec.field(default_factory=list)


class SharesBody(Protocol):
    shares: SharesList | None


def _all_shares(body: Envelope) -> list[RawShare]:
    shares = cast(SharesBody, body).shares
    return shares.shares if shares else []


def stream_shares(
    chunks: Iterable[bytes], whole: msgspec.json.Decoder[E], what: str
) -> tuple[E, list[Share]]:
    """The answer's envelope and its associations; `whole` decodes a SharesBody. The
    array is one level down (`{"shares": {"shares": [...], "total_shares": N}}`)."""
    shares: list[Share] = []

    def add(batch: list[RawShare]) -> None:
        shares.extend([to_share(s) for s in batch])

    envelope = decode_array_stream(
        quote_specials(chunks), "shares", _share_batch_decoder, whole, _all_shares, add,
        what, indent=4,
    )
    return envelope, shares
