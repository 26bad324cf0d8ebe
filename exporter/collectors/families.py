"""What every collector builds its families with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import RpcStat

Key = tuple[str, ...]

ABSENT = " Absent series mean 0."


def gauge(
    name: str, documentation: str, labels: Sequence[str], values: Mapping[Key, float]
) -> GaugeMetricFamily:
    """A gauge family with one sample per key (label values in `labels` order), sorted so
    that the exposition does not depend on the order of the input."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for key in sorted(values):
        family.add_metric(key, values[key])
    return family


def rpc_families(
    stats: Iterable[RpcStat], label: str, names: tuple[str, str], helps: tuple[str, str]
) -> list[Metric]:
    """An RPC table (sdiag's, slurmdbd's) as two counters by `label`: calls and seconds
    (`names` and `helps` in that order). Rows that share a name are summed, so that no
    sample is duplicated."""
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for row in stats:
        counts[row.name] = counts.get(row.name, 0) + row.count
        seconds[row.name] = seconds.get(row.name, 0.0) + row.total_time_seconds
    calls = CounterMetricFamily(names[0], helps[0], labels=[label])
    time = CounterMetricFamily(names[1], helps[1], labels=[label])
    for name in sorted(counts):
        calls.add_metric([name], counts[name])
        time.add_metric([name], seconds[name])
    return [calls, time]
