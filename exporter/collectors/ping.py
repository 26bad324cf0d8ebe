"""Controller metrics: what `scontrol ping` says about each slurmctld."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import ControllerPing


def collect_ping(pings: Sequence[ControllerPing]) -> list[Metric]:
    """Whether each configured slurmctld answers, and how fast."""
    up = GaugeMetricFamily(
        "slurm_controller_up",
        "scontrol ping: 1 if the slurmctld on this host (primary or backup) responds, else 0.",
        labels=["controller"],
    )
    latency = GaugeMetricFamily(
        "slurm_controller_latency_seconds",
        "scontrol ping: time the slurmctld on this host took to answer slurmrestd's ping, in "
        "seconds; absent when it does not respond or the API version does not report it.",
        labels=["controller"],
    )
    # One sample per host (the first, should a host be listed twice).
    by_host: dict[str, ControllerPing] = {}
    for ping in pings:
        by_host.setdefault(ping.hostname, ping)
    for host in sorted(by_host):
        ping = by_host[host]
        up.add_metric([host], 1 if ping.responding else 0)
        # the time a failed ping took says nothing about slurmctld
        if ping.responding and ping.latency_seconds is not None:
            latency.add_metric([host], ping.latency_seconds)
    return [up, latency]
