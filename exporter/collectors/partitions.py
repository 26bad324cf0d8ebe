"""Partition metrics: what `scontrol show partition` / `sinfo -s` say about each partition."""

from __future__ import annotations

import math
from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import Partition


def collect_partitions(partitions: Sequence[Partition]) -> list[Metric]:
    """State, configured CPUs and nodes, and time limit of each partition."""
    state = GaugeMetricFamily(
        "slurm_partition_state",
        "1 for the partition's current state as scontrol shows it (up, down, drain, "
        "inactive); only the current state is exported.",
        labels=["partition", "state"],
    )
    cpus = GaugeMetricFamily(
        "slurm_partition_cpus_configured",
        "CPUs on the partition's nodes (scontrol's TotalCPUs).",
        labels=["partition"],
    )
    nodes = GaugeMetricFamily(
        "slurm_partition_nodes_configured",
        "Nodes in the partition (scontrol's TotalNodes).",
        labels=["partition"],
    )
    max_time = GaugeMetricFamily(
        "slurm_partition_max_time_seconds",
        "The partition's MaxTime (longest time limit a job may have), in seconds; +Inf when "
        "UNLIMITED.",
        labels=["partition"],
    )
    # One sample per partition name (the first, should Slurm ever list one twice).
    by_name: dict[str, Partition] = {}
    for part in partitions:
        by_name.setdefault(part.name, part)
    for name in sorted(by_name):
        part = by_name[name]
        state.add_metric([name, part.state], 1)
        cpus.add_metric([name], part.total_cpus)
        nodes.add_metric([name], part.total_nodes)
        limit = part.max_time_seconds
        max_time.add_metric([name], math.inf if limit is None else limit)
    return [state, cpus, nodes, max_time]
