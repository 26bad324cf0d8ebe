"""Reservation metrics: what `scontrol show reservation` says of each reservation, and the
state of its nodes from `/nodes`: this cycle's answer, or while /nodes fails its last
good one, until --stale-data-max-age drops it (the cycle passes None then).

Once past its end a reservation is moved to its next period when it recurs and purged
otherwise, but only once its jobs are done (unless FLEX; src/slurmctld/reservation.c
job_resv_check(), lines 7359-7381 at slurm-24-11-5-1), so each one listed is current, to
come, or past its end while its jobs run on (the dashboard's "Reservations now" counts
start <= time() < end). The next
maintenance is the earliest MAINT start still to come: a current MAINT reservation (which
may be permanent) has its own start and end series. Times are Unix timestamps: PromQL
does the subtraction (`... - time()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.metrics_core import Metric

from exporter.api.model import Node, Reservation
from exporter.collectors.families import Key, gauge

_RESERVATION = ("reservation",)


def _node_counts(resv: Reservation, nodes: Mapping[str, Node]) -> tuple[int, int, int]:
    """(busy, down, drained) among the reservation's nodes: busy runs jobs (allocated
    CPUs: allocated, mixed, completing or draining), down is DOWN or FAIL without DRAIN
    (sinfo's down, fail, failing), drained has DRAIN set (drained or draining: sinfo
    prints a drained down node "drained", node_state_string tests DRAIN before DOWN and
    FAIL, src/common/slurm_protocol_defs.c:3446 at slurm-24-11-5-1)."""
    busy = down = drained = 0
    for name in resv.nodes:
        node = nodes.get(name)
        if node is None:
            continue  # not in /nodes (yet): counted nowhere
        busy += node.alloc_cpus > 0 or node.state in ("allocated", "mixed", "completing")
        drain = "DRAIN" in node.flags
        down += not drain and not {"DOWN", "FAIL"}.isdisjoint(node.flags)
        drained += drain
    return busy, down, drained


def collect_reservations(
    reservations: Sequence[Reservation], nodes: Sequence[Node] | None, now: float
) -> list[Metric]:
    """Per reservation its times, sizes, flags and partition; how many of its nodes are
    busy, down or drained (left out when `nodes` is None: /nodes not collected, or
    failing for longer than --stale-data-max-age); and the start of the next maintenance
    reservation after `now` (Unix time)."""
    by_name: dict[str, Reservation] = {}
    for resv in reservations:
        by_name.setdefault(resv.name, resv)
    info: dict[Key, float] = {}
    start: dict[Key, float] = {}
    end: dict[Key, float] = {}
    node_count: dict[Key, float] = {}
    core_count: dict[Key, float] = {}
    for name, resv in by_name.items():
        info[(name, resv.partition, ",".join(resv.flags))] = 1
        start[(name,)] = resv.start_time
        if resv.end_time is not None:
            end[(name,)] = resv.end_time
        node_count[(name,)] = resv.node_count
        core_count[(name,)] = resv.core_count
    families: list[Metric] = [
        gauge(
            "slurm_reservation_info",
            "1 for each reservation slurmctld holds (current, to come, or past its end "
            "while its jobs run), with its PartitionName (\"\" when none) and Flags in "
            "the order scontrol show reservation prints them (e.g. "
            "MAINT,IGNORE_JOBS,SPEC_NODES; PURGE_COMP without its time; flags scontrol "
            "does not print last).",
            ("reservation", "partition", "flags"),
            info,
        ),
        gauge(
            "slurm_reservation_start_timestamp_seconds",
            "The reservation's StartTime, as a Unix timestamp (in the past: it is current).",
            _RESERVATION,
            start,
        ),
        gauge(
            "slurm_reservation_end_timestamp_seconds",
            "The reservation's EndTime, as a Unix timestamp.",
            _RESERVATION,
            end,
        ),
        gauge("slurm_reservation_nodes_configured", "The reservation's NodeCnt.",
              _RESERVATION, node_count),
        gauge("slurm_reservation_cores_configured", "The reservation's CoreCnt.",
              _RESERVATION, core_count),
    ]
    if nodes is not None:
        families.extend(_node_state_families(by_name, nodes))
    families.append(_next_maint(by_name.values(), now))
    return families


# where the node states come from: a failing /nodes leaves its last good answer in use
_SOURCE = (
    " From /nodes: this cycle's answer, or while /nodes fails its last good one, left out "
    "once older than --stale-data-max-age (slurm_exporter_endpoint_up{endpoint=\"nodes\"} "
    "says which)."
)


def _node_state_families(
    by_name: Mapping[str, Reservation], nodes: Sequence[Node]
) -> list[Metric]:
    known = {n.name: n for n in nodes}
    busy: dict[Key, float] = {}
    down: dict[Key, float] = {}
    drained: dict[Key, float] = {}
    for name, resv in by_name.items():
        busy[(name,)], down[(name,)], drained[(name,)] = _node_counts(resv, known)
    return [
        gauge(
            "slurm_reservation_nodes_busy",
            "Nodes of the reservation that run jobs now (allocated CPUs: allocated, mixed, "
            "completing or draining in sinfo)."
            + _SOURCE,
            _RESERVATION,
            busy,
        ),
        gauge(
            "slurm_reservation_nodes_down",
            "Nodes of the reservation that are down now (DOWN or FAIL, not drained: sinfo's "
            "down, fail, failing)."
            + _SOURCE,
            _RESERVATION,
            down,
        ),
        gauge(
            "slurm_reservation_nodes_drained",
            "Nodes of the reservation with DRAIN set now (sinfo's drained or draining)."
            + _SOURCE,
            _RESERVATION,
            drained,
        ),
    ]


def _next_maint(reservations: Iterable[Reservation], now: float) -> Metric:
    starts = [r.start_time for r in reservations if "MAINT" in r.flags and r.start_time > now]
    return gauge(
        "slurm_reservation_maint_next_start_timestamp_seconds",
        "StartTime of the earliest reservation with the MAINT flag that has not started "
        "yet, as a Unix timestamp: the next maintenance; absent when none is to come. "
        "Current ones: slurm_reservation_start_timestamp_seconds and "
        "slurm_reservation_info{flags=~\"(.*,)?MAINT(,.*)?\"}.",
        (),
        {(): min(starts)} if starts else {},
    )
