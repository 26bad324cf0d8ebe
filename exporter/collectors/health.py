"""The exporter's own health: per-endpoint status, the token's lifespan, build and Slurm info."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.metrics_core import Metric

from exporter.api.model import Meta
from exporter.errors import REASONS


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    up: bool
    duration_seconds: float
    last_success: float | None  # unix time of the last good answer; None: never
    errors: Mapping[str, int] = field(default_factory=dict)  # cumulative, by reason
    data_dropped: bool = False  # its last good data was too old to serve
    interval_seconds: float | None = None  # its own polling interval (None: unknown)


@dataclass(frozen=True, slots=True)
class TokenHealth:
    expires_at: float | None  # None: no token or no expiry known
    renewals: Mapping[str, int] = field(default_factory=dict)  # by result


def collect_build_info(version: str) -> Metric:
    build = InfoMetricFamily("slurm_exporter_build", "slurm-exporter's version")
    build.add_metric([], {"version": version})
    return build


def collect_health(
    endpoints: Mapping[str, EndpointHealth],
    token: TokenHealth,
    meta: Meta | None,
    version: str,
    cycle_seconds: float,
    cycle_finished_at: float,
) -> list[Metric]:
    up = GaugeMetricFamily(
        "slurm_exporter_endpoint_up",
        "1 if the last call to this slurmrestd endpoint succeeded, 0 if it failed (its "
        "metrics then keep their last good values for --stale-data-max-age, then are "
        "dropped; see the last success timestamp and slurm_exporter_endpoint_data_dropped)",
        labels=["endpoint"],
    )
    dropped = GaugeMetricFamily(
        "slurm_exporter_endpoint_data_dropped",
        "1 if this endpoint has failed for longer than --stale-data-max-age since its last "
        "success and its metrics are no longer served (until it answers again), else 0",
        labels=["endpoint"],
    )
    duration = GaugeMetricFamily(
        "slurm_exporter_endpoint_duration_seconds",
        "Time taken by the last call to this endpoint: request, decoding and aggregation",
        labels=["endpoint"],
    )
    last_success = GaugeMetricFamily(
        "slurm_exporter_endpoint_last_success_timestamp_seconds",
        "Unix time of the last successful call to this endpoint (absent: never succeeded)",
        labels=["endpoint"],
    )
    interval = GaugeMetricFamily(
        "slurm_exporter_endpoint_interval_seconds",
        "Seconds between calls to this endpoint (--collector-X-interval, at least "
        "--interval): its up, duration and last success are those of its last call",
        labels=["endpoint"],
    )
    errors = CounterMetricFamily(
        "slurm_exporter_endpoint_errors",
        "Failed calls to this endpoint, by reason: connect, timeout, auth, forbidden, "
        "not_found, http_error, decode, slurm_error",
        labels=["endpoint", "reason"],
    )
    for name in sorted(endpoints):
        h = endpoints[name]
        up.add_metric([name], 1.0 if h.up else 0.0)
        dropped.add_metric([name], 1.0 if h.data_dropped else 0.0)
        duration.add_metric([name], h.duration_seconds)
        if h.last_success is not None:
            last_success.add_metric([name], h.last_success)
        if h.interval_seconds is not None:
            interval.add_metric([name], h.interval_seconds)
        for reason in REASONS:
            errors.add_metric([name, reason], float(h.errors.get(reason, 0)))

    expiry = GaugeMetricFamily(
        "slurm_exporter_token_expiry_timestamp_seconds",
        "Unix time at which the JWT in use expires (absent: no token, or no expiry in it)",
    )
    if token.expires_at is not None:
        expiry.add_metric([], token.expires_at)
    renewals = CounterMetricFamily(
        "slurm_exporter_token_renewals",
        "Token renewals (minted, scontrol token, token file re-read), by result",
        labels=["result"],
    )
    for result in ("success", "failure"):
        renewals.add_metric([result], float(token.renewals.get(result, 0)))

    families: list[Metric] = [
        up, dropped, duration, last_success, interval, errors, expiry, renewals,
        collect_build_info(version),
    ]
    if meta is not None:
        slurm = InfoMetricFamily(
            "slurm",
            "What slurmrestd says about the cluster in its answers' meta: the API version "
            "in use, the Slurm release and the cluster name",
        )
        slurm.add_metric(
            [],
            {
                "api_version": meta.api_version,
                "release": meta.slurm_release,
                "cluster": meta.cluster,
            },
        )
        families.append(slurm)

    cycle = GaugeMetricFamily(
        "slurm_exporter_collection_duration_seconds",
        "Wall time of the last collection cycle (all endpoints, called concurrently)",
    )
    cycle.add_metric([], cycle_seconds)
    finished = GaugeMetricFamily(
        "slurm_exporter_collection_timestamp_seconds",
        "Unix time at which the last collection cycle finished",
    )
    finished.add_metric([], cycle_finished_at)
    families += [cycle, finished]
    return families
