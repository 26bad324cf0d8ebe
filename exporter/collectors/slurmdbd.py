"""slurmdbd's own statistics (`sacctmgr show stats`, /slurmdb/vX/diag).

slurmdbd keeps them since its start or the last `sacctmgr clear stats`
(slurm_slurmdbd_stats_start_timestamp_seconds says when): the counters then drop to 0,
which rate() and increase() treat as a counter reset.

The rollup `period` is the API's name of each slot of slurmdbd's rollup statistics
(see exporter.api.dbdiag): "hourly" is slurmdbd's own rollup thread, which runs at start
and at the start of every hour and does the hourly, daily and monthly rollups due in one
pass; "daily" counts the rollups asked for with `sacctmgr roll`; "monthly" stays 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import RpcStat, SlurmdbdDiag
from exporter.collectors.families import rpc_families

_RESET = " Resets on slurmdbd restart and sacctmgr clear stats."
_PERIOD = (
    " period: the API's name of the slot: hourly = slurmdbd's own rollup, run at start and "
    "every hour (each run does the hourly, daily and monthly rollups due); daily = "
    "rollups asked for with sacctmgr roll; monthly = unused."
)


def _rollup_families(diag: SlurmdbdDiag) -> list[Metric]:
    runs = CounterMetricFamily(
        "slurm_slurmdbd_rollup_runs",
        "sacctmgr show stats: rollups run (total_cycles / count)." + _PERIOD + _RESET,
        labels=["period"],
    )
    total = CounterMetricFamily(
        "slurm_slurmdbd_rollup_duration_seconds",
        "sacctmgr show stats: time spent in rollups (total_time), in seconds." + _PERIOD
        + _RESET,
        labels=["period"],
    )
    last = GaugeMetricFamily(
        "slurm_slurmdbd_rollup_last_duration_seconds",
        "sacctmgr show stats: duration of the last rollup (last_cycle), in seconds; 0 "
        "before the first." + _PERIOD,
        labels=["period"],
    )
    longest = GaugeMetricFamily(
        "slurm_slurmdbd_rollup_max_duration_seconds",
        "sacctmgr show stats: longest rollup (max_cycle), in seconds." + _PERIOD + _RESET,
        labels=["period"],
    )
    when = GaugeMetricFamily(
        "slurm_slurmdbd_rollup_last_run_timestamp_seconds",
        "sacctmgr show stats: when the last rollup ended (last ran), as a Unix timestamp; "
        "absent before the first." + _PERIOD,
        labels=["period"],
    )
    for r in diag.rollups:
        runs.add_metric([r.period], r.runs)
        total.add_metric([r.period], r.total_seconds)
        last.add_metric([r.period], r.last_seconds)
        longest.add_metric([r.period], r.max_seconds)
        if r.last_run is not None:
            when.add_metric([r.period], r.last_run)
    return [runs, total, last, longest, when]


def _rpc_families(
    stats: Iterable[RpcStat], label: str, calls: str, time: str, what: str
) -> list[Metric]:
    return rpc_families(stats, label, (calls, time), (
        f"sacctmgr show stats: RPCs slurmdbd received, by {what} (count).{_RESET}",
        f"sacctmgr show stats: time slurmdbd spent processing RPCs, by {what} (total_time), "
        f"in seconds.{_RESET}",
    ))


def collect_slurmdbd(diag: SlurmdbdDiag, *, per_user: bool = True) -> list[Metric]:
    """Rollups by slot, RPCs by message type and (when per_user) by user: one series
    per user who sent slurmdbd an RPC since its statistics started."""
    families = _rollup_families(diag)
    families += _rpc_families(
        diag.rpcs_by_type,
        "rpc",
        "slurm_slurmdbd_rpcs",
        "slurm_slurmdbd_rpc_duration_seconds",
        "message type",
    )
    if per_user:
        families += _rpc_families(
            diag.rpcs_by_user,
            "user",
            "slurm_slurmdbd_user_rpcs",
            "slurm_slurmdbd_user_rpc_duration_seconds",
            "user",
        )
    families.append(
        GaugeMetricFamily(
            "slurm_slurmdbd_stats_start_timestamp_seconds",
            "sacctmgr show stats: Data since: when slurmdbd's statistics started (its "
            "start, or the last sacctmgr clear stats), as a Unix timestamp.",
            value=diag.stats_since,
        )
    )
    return families
