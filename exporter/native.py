"""Slurm's own metrics (slurm.conf MetricsType=metrics/openmetrics, 25.11+) beside the
exporter's: where slurmctld serves them and which names they share with ours.

slurmctld answers plain HTTP on its own port (SlurmctldPort, 6817) under /metrics/ENDPOINT
(src/slurmctld/http.c:402-411 at slurm-25-11-7-1), unless CommunicationParameters has
disable_http. Without MetricsType the pages are there but empty (200, no body: the plugin
is a no-op, src/interfaces/metrics.c:109-111, metrics_serialize_struct returns NULL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from exporter.native_names import NATIVE_METRICS

# the pages under /metrics, one per statistics set (http.c:402-411)
ENDPOINTS = ("jobs", "nodes", "partitions", "jobs-users-accts", "scheduler")

_TYPE_LINE = re.compile(rb"^# TYPE (\S+) ", re.M)
_SAMPLE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.M)


def exposition_names(body: bytes) -> set[str]:
    """The metric names of a text exposition (its # TYPE lines and its samples)."""
    found = set(_TYPE_LINE.findall(body)) | set(_SAMPLE.findall(body))
    return {n.decode() for n in found}


def shared_names(ours: Iterable[str], native: Iterable[str] | None = None) -> list[str]:
    """Our names that are also native ones (the checked-in list when `native` is None)."""
    theirs = set(NATIVE_METRICS if native is None else native)
    return sorted(set(ours) & theirs)


def exposed_name(name: str, kind: str) -> str:
    """The name a family of this type has in the exposition (prometheus_client's rule)."""
    return name + {"counter": "_total", "info": "_info"}.get(kind, "")
