"""What every collector builds its families with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily

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
