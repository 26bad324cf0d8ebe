"""Scheduler statistics: what `sdiag` shows.

slurmctld resets its scheduler statistics daily (at midnight UTC), on `sdiag -r`
and on restart (slurm_scheduler_stats_reset_timestamp_seconds says when it last
did); the counters here then drop to 0, which Prometheus' rate() and increase()
treat as a counter reset. The RPC tables and slurm_backfill_backfilled_jobs_total
are not reset daily, only on `sdiag -r` and restart.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.api.model import Diag, RpcStat
from exporter.collectors.families import rpc_families

_RESET = " Resets with the statistics (daily at midnight UTC, sdiag -r, restart)."
_RPC_RESET = " Resets on sdiag -r and slurmctld restart."
_ABSENT_IN_2205 = "; absent where the API version does not report it (v0.0.36-v0.0.38)"


def _rpc_families(
    stats: Iterable[RpcStat], label: str, calls: str, time: str, what: str
) -> list[Metric]:
    return rpc_families(stats, label, (calls, time), (
        f"sdiag: RPCs slurmctld received, by {what} (count).{_RPC_RESET}",
        f"sdiag: Time slurmctld spent processing RPCs, by {what} (total_time), in seconds."
        + _RPC_RESET,
    ))


def collect_diag(diag: Diag, *, per_user: bool = True) -> list[Metric]:
    """sdiag's gauges and counters, and its RPC tables by message type and (when
    per_user) by user: one series per user who sent an RPC since the last sdiag -r."""
    d = diag
    gauges: list[tuple[str, str, float | None]] = [
        ("slurm_scheduler_threads", "sdiag: Server thread count: slurmctld threads "
         "currently processing RPCs.", d.server_thread_count),
        ("slurm_scheduler_agent_queue_size", "sdiag: Agent queue size: outgoing RPCs "
         "(e.g. to slurmd) waiting for an agent thread.", d.agent_queue_size),
        ("slurm_scheduler_agents", "sdiag: Agent count: agents sending outgoing RPCs.",
         d.agent_count),
        ("slurm_scheduler_agent_threads", "sdiag: Agent thread count: threads used by the "
         "agents.", d.agent_thread_count),
        ("slurm_scheduler_dbd_agent_queue_size", "sdiag: DBD Agent queue size: messages to "
         "slurmdbd waiting to be sent; grows when slurmdbd is slow or down.",
         d.dbd_agent_queue_size),
        ("slurm_scheduler_cycle_last_seconds", "sdiag: Main schedule statistics, Last cycle: "
         "duration of the last main scheduling cycle, in seconds.",
         d.schedule_cycle_last_seconds),
        ("slurm_scheduler_cycle_max_seconds", "sdiag: Main schedule statistics, Max cycle: "
         "longest main scheduling cycle since the statistics reset, in seconds.",
         d.schedule_cycle_max_seconds),
        ("slurm_scheduler_cycle_mean_seconds", "sdiag: Main schedule statistics, Mean cycle: "
         "mean main scheduling cycle duration since the statistics reset, in seconds.",
         d.schedule_cycle_mean_seconds),
        ("slurm_scheduler_cycle_mean_depth", "sdiag: Main schedule statistics, Mean depth "
         "cycle: mean number of jobs looked at per main scheduling cycle.",
         d.schedule_cycle_mean_depth),
        ("slurm_scheduler_cycles_per_minute", "sdiag: Main schedule statistics, Cycles per "
         "minute since the statistics reset.", d.schedule_cycle_per_minute),
        ("slurm_scheduler_queue_length", "sdiag: Main schedule statistics, Last queue "
         "length: jobs pending in the last main scheduling cycle.", d.schedule_queue_length),
        # controller.c _foreach_job_running(): a pending array record counts its task_cnt
        ("slurm_scheduler_jobs_pending", "sdiag: Jobs pending, as slurmctld last counted them "
         "(every 30 s): each task of a pending job array counts, as in squeue -r and "
         "slurm_jobs_pending_tasks (slurm_jobs_by_state{state=\"pending\"} counts squeue's lines).",
         d.jobs_pending),
        ("slurm_scheduler_jobs_running", "sdiag: Jobs running, as slurmctld last counted them "
         "(every 30 s).", d.jobs_running),
        ("slurm_scheduler_stats_reset_timestamp_seconds", "sdiag: Data since: when slurmctld "
         "last reset its statistics (daily at midnight UTC, sdiag -r or restart), as a Unix "
         "timestamp.",
         d.stats_since),
        ("slurm_backfill_active", "sdiag: 1 while the backfill scheduler was running when the "
         "statistics were taken, else 0.", 1 if d.bf_active else 0),
        ("slurm_backfill_cycle_last_seconds", "sdiag: Backfilling stats, Last cycle: duration "
         "of the last backfill cycle, in seconds.", d.bf_cycle_last_seconds),
        ("slurm_backfill_cycle_max_seconds", "sdiag: Backfilling stats, Max cycle: longest "
         "backfill cycle since the statistics reset, in seconds; absent where the API "
         "version does not report it (v0.0.40).", d.bf_cycle_max_seconds),
        ("slurm_backfill_cycle_mean_seconds", "sdiag: Backfilling stats, Mean cycle: mean "
         "backfill cycle duration since the statistics reset, in seconds.",
         d.bf_cycle_mean_seconds),
        ("slurm_backfill_depth_mean", "sdiag: Backfilling stats, Depth Mean: mean number of "
         "jobs looked at per backfill cycle.", d.bf_depth_mean),
        ("slurm_backfill_last_depth", "sdiag: Backfilling stats, Last depth cycle: jobs "
         "looked at in the last backfill cycle" + _ABSENT_IN_2205 + ".", d.bf_last_depth),
        ("slurm_backfill_last_depth_try", "sdiag: Backfilling stats, Last depth cycle (try "
         "sched): jobs in the last backfill cycle that had a chance to start on available "
         "resources" + _ABSENT_IN_2205 + ".",
         d.bf_last_depth_try),
        ("slurm_backfill_queue_length", "sdiag: Backfilling stats, Last queue length: jobs "
         "pending in the last backfill cycle.", d.bf_queue_len),
        ("slurm_backfill_table_size", "sdiag: Backfilling stats, Last table size: time slots "
         "in the last backfill cycle's resource table; absent where the API version does not "
         "report it (v0.0.36, v0.0.37).", d.bf_table_size),
        ("slurm_backfill_last_cycle_timestamp_seconds", "sdiag: Backfilling stats, Last cycle "
         "when: start of the last backfill cycle as a Unix timestamp (0 if none yet).",
         d.bf_when_last_cycle),
    ]
    counters: list[tuple[str, str, float | None]] = [
        ("slurm_scheduler_cycles", "sdiag: Main schedule statistics, Total cycles: main "
         "scheduling cycles run." + _RESET, d.schedule_cycle_total),
        ("slurm_scheduler_cycle_seconds", "sdiag: Time spent in main scheduling cycles "
         "(slurmctld's sum of cycle times), in seconds; absent where the API version does "
         "not report it (v0.0.36-v0.0.40)." + _RESET, d.schedule_cycle_sum_seconds),
        # schedule_cycle_depth is slurmctld's running total (job_scheduler.c adds 1 per job
        # looked at; statistics.c reset_stats() zeroes it), which sdiag divides by the
        # cycle count to print "Mean depth cycle" (src/sdiag/sdiag.c): not a last value.
        ("slurm_scheduler_cycle_depth", "sdiag: Main schedule statistics: jobs looked at by "
         "the main scheduling cycles (slurmctld's running sum of cycle depths; mean depth = "
         "rate of this / rate of slurm_scheduler_cycles_total); absent where the API version "
         "does not report it (v0.0.36-v0.0.40)." + _RESET, d.schedule_cycle_depth),
        ("slurm_scheduler_jobs_submitted", "sdiag: Jobs submitted." + _RESET,
         d.jobs_submitted),
        ("slurm_scheduler_jobs_started", "sdiag: Jobs started." + _RESET, d.jobs_started),
        ("slurm_scheduler_jobs_completed", "sdiag: Jobs completed." + _RESET,
         d.jobs_completed),
        ("slurm_scheduler_jobs_canceled", "sdiag: Jobs canceled." + _RESET, d.jobs_canceled),
        ("slurm_scheduler_jobs_failed", "sdiag: Jobs failed." + _RESET, d.jobs_failed),
        ("slurm_backfill_cycles", "sdiag: Backfilling stats, Total cycles: backfill cycles "
         "run." + _RESET, d.bf_cycle_counter),
        ("slurm_backfill_cycle_seconds", "sdiag: Time spent in backfill cycles (slurmctld's "
         "sum of cycle times), in seconds; absent where the API version does not report it "
         "(22.05)." + _RESET, d.bf_cycle_sum_seconds),
        # last_backfilled_jobs only grows (backfill.c) until reset_stats() zeroes it with
        # the other statistics (statistics.c), unlike backfilled_jobs (only on sdiag -r)
        ("slurm_backfill_backfilled_jobs_since_reset", "sdiag: Backfilling stats, Total "
         "backfilled jobs (since last stats cycle start): jobs started by backfill since the "
         "statistics reset." + _RESET, d.bf_last_backfilled_jobs),
        ("slurm_backfill_backfilled_jobs", "sdiag: Backfilling stats, Total backfilled jobs "
         "(since last slurm start): jobs started by backfill. Resets on sdiag -r and "
         "slurmctld restart, not daily.", d.bf_backfilled_jobs),
    ]
    families: list[Metric] = []
    # value None: not reported by this API version; the family stays, without a sample
    for name, documentation, value in gauges:
        families.append(GaugeMetricFamily(name, documentation, value=value))
    for name, documentation, value in counters:
        families.append(CounterMetricFamily(name, documentation, value=value))
    families += _rpc_families(
        d.rpcs_by_message_type,
        "message_type",
        "slurm_rpc_calls",
        "slurm_rpc_time_seconds",
        "message type",
    )
    if per_user:
        families += _rpc_families(
            d.rpcs_by_user, "user", "slurm_rpc_user_calls", "slurm_rpc_user_time_seconds", "user"
        )
    return families
