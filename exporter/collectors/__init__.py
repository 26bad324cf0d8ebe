"""One collector per slurmrestd endpoint, and the table that ties each to its parser.

A collector is a pure function from normalised data (exporter.api.model) to
metric families; the table below says which adapter method decodes the
endpoint's answer and which options of the settings the collector takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.api.adapter import Adapter
from exporter.api.model import Response
from exporter.collectors.accounting import AccountingPoller, Options
from exporter.collectors.diag import collect_diag
from exporter.collectors.jobs import collect_jobs
from exporter.collectors.licenses import collect_licenses
from exporter.collectors.nodes import collect_nodes
from exporter.collectors.partitions import collect_partitions
from exporter.collectors.ping import collect_ping
from exporter.collectors.reservations import collect_reservations
from exporter.collectors.shares import collect_shares
from exporter.settings import Settings


@dataclass(frozen=True, slots=True)
class EndpointCollector:
    endpoint: str
    parse: Callable[[Adapter, bytes], Response[Any]]
    # (data, settings, now): now is the cycle's clock (Unix time), for the collectors that
    # compare times with it (reservations: the next maintenance to come)
    collect: Callable[[Any, Settings, float], list[Metric]]
    # for the large answers: decode the body as it arrives, never whole in memory
    parse_stream: Callable[[Adapter, Iterable[bytes]], Response[Any]] | None = None
    # the request's query (without "?"): what to ask for, where the API can filter
    query: Callable[[Settings], str] | None = None
    # another endpoint whose data this one's metrics join (reservations: the node states);
    # collect then gets (its data, that endpoint's last good data or None), and the cycle
    # calls it once that endpoint's call of the same cycle is done
    joins: str | None = None
    detached: bool = False  # slurmdbd endpoints: called off the cycle, never awaited
    # an endpoint that keeps state across its calls (accounting: its counting window and
    # totals): made once per collection process, from the settings and the start time;
    # the cycle then calls its poll() instead of fetching and collecting itself
    poller: Callable[[Settings, float], AccountingPoller] | None = None


def accounting_poller(settings: Settings, started_at: float) -> AccountingPoller:
    options = Options(
        per_account=settings.accounting_per_account,
        per_user=settings.accounting_per_user,
        efficiency=settings.accounting_efficiency,
    )
    return AccountingPoller(options, started_at, settings.accounting_max_window)


# Slurm would match `users` against user associations only, and let account
# associations pass (src/common/assoc_mgr.c:3427-3436 in slurm-24-11-5-1), so a name no
# user can have (":" ends a passwd name) would leave only the accounts. But slurmrestd
# parses /shares' query from the path's parameters, not the query (ctxt->parameters in
# src/slurmrestd/plugins/openapi/slurmctld/assoc_mgr.c:60, 23.11 to 26.05.3): every
# release tried answers in full whatever the query (lab: 24.11.5). It is sent all the
# same (harmless, and small answers once slurmrestd reads it); the user associations are
# dropped as they are decoded (collect_shares).
NO_USER = "%3A"


COLLECTORS: dict[str, EndpointCollector] = {
    c.endpoint: c
    for c in (
        EndpointCollector(
            "diag",
            lambda a, b: a.parse_diag(b),
            lambda d, s, _now: collect_diag(d, per_user=s.diag_rpc_per_user),
        ),
        EndpointCollector(
            "jobs",
            lambda a, b: a.parse_jobs(b),
            lambda d, s, _now: collect_jobs(
                d, per_user=s.jobs_per_user, per_account=s.jobs_per_account
            ),
            lambda a, chunks: a.parse_jobs_stream(chunks),
        ),
        EndpointCollector(
            "nodes",
            lambda a, b: a.parse_nodes(b),
            lambda d, s, _now: collect_nodes(
                d,
                per_node=s.nodes_per_node,
                unavailable_per_node=s.nodes_unavailable_per_node,
            ),
            lambda a, chunks: a.parse_nodes_stream(chunks),
        ),
        EndpointCollector(
            "partitions",
            lambda a, b: a.parse_partitions(b),
            lambda d, s, _now: collect_partitions(d),
        ),
        EndpointCollector(
            "ping", lambda a, b: a.parse_ping(b), lambda d, s, _now: collect_ping(d)
        ),
        EndpointCollector(
            "shares",
            lambda a, b: a.parse_shares(b),
            lambda d, s, _now: collect_shares(d, per_user=s.shares_per_user),
            lambda a, chunks: a.parse_shares_stream(chunks),
            lambda s: "" if s.shares_per_user else f"users={NO_USER}",
        ),
        EndpointCollector(
            "reservations",
            lambda a, b: a.parse_reservations(b),
            lambda d, s, now: collect_reservations(d[0], d[1], now),
            joins="nodes",
        ),
        EndpointCollector(
            "licenses", lambda a, b: a.parse_licenses(b), lambda d, s, _now: collect_licenses(d)
        ),
        EndpointCollector(
            "accounting",
            lambda a, b: a.parse_accounting_jobs(b),
            lambda d, s, _now: [],  # the poller counts and collects
            detached=True,
            poller=accounting_poller,
        ),
    )
}
